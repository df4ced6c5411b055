package credentials

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shmBase is a fresh directory name on /dev/shm for one test, removed after it.
func shmBase(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skip("no /dev/shm")
	}
	base := filepath.Join("/dev/shm", "jackin-unit-"+strings.ReplaceAll(t.Name(), "/", "-"))
	os.RemoveAll(base)
	t.Cleanup(func() { os.RemoveAll(base) })
	return base
}

// A base that is a symlink, or that someone else made first, is refused:
// jackin would write values and remove files wherever its owner points.
func TestWriteDirRefusesABaseItDoesNotOwn(t *testing.T) {
	target := t.TempDir() // on disk
	base := shmBase(t)
	if err := os.Symlink(target, base); err != nil {
		t.Fatal(err)
	}
	_, err := WriteDir(base, filepath.Join(base, "f", "i"), map[string][]byte{"V": []byte("canary-value")}, 0o400, 0o700, nil)
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("a symlinked base: %v", err)
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("wrote through the symlink: %v", entries)
	}
	if err == nil || strings.Contains(err.Error(), "canary-value") {
		t.Errorf("error names the value: %v", err)
	}
	os.Remove(base)

	if os.Geteuid() != 0 {
		t.Skip("making a directory owned by another user needs root")
	}
	if err := os.Mkdir(base, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(base, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err = WriteDir(base, filepath.Join(base, "f", "i"), map[string][]byte{"V": []byte("x")}, 0o400, 0o700, nil)
	if err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Fatalf("a base of another user: %v", err)
	}
	if _, err := os.Stat(filepath.Join(base, "f")); err == nil {
		t.Error("wrote into another user's directory")
	}
}

func TestWriteDirStaysBelowItsBase(t *testing.T) {
	base := shmBase(t)
	for _, dir := range []string{base, filepath.Dir(base), filepath.Join(base, "..", "elsewhere")} {
		if _, err := WriteDir(base, dir, map[string][]byte{"V": []byte("x")}, 0o400, 0o700, nil); err == nil {
			t.Errorf("wrote to %s", dir)
		}
	}
}

// A directory left read-only (0500) is still removed with its instance.
func TestRemoveInstanceEmptiesReadOnlyDirectories(t *testing.T) {
	base := shmBase(t)
	dir := filepath.Join(InstanceDir(base, "f", "i"), "egress")
	if _, err := WriteDir(base, dir, map[string][]byte{"V": []byte("x")}, 0o400, 0o500, nil); err != nil {
		t.Fatal(err)
	}
	if err := RemoveInstance(base, "f", "i"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(InstanceDir(base, "f", "i")); !os.IsNotExist(err) {
		t.Errorf("instance directory left: %v", err)
	}
}
