package reconciler

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// installBinary copies once, and again only when the source or the copy
// changed; a copy that is no longer a regular file (a FIFO that would
// block a reader, a symlink) is replaced without being read.
func TestInstallBinaryCopiesOnlyWhatChanged(t *testing.T) {
	root := t.TempDir()
	src, dir := filepath.Join(root, "jackin-src"), filepath.Join(root, "state", "supervisor")
	dst := filepath.Join(dir, "jackin")
	write := func(p, s string, at time.Time) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	install := func(want string) uint64 {
		t.Helper()
		if err := installBinary(src, dir); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(dst)
		if err != nil || string(b) != want {
			t.Fatalf("copy holds %q (%v), want %q", b, err, want)
		}
		fi, _ := os.Lstat(dst)
		return inodeOf(fi)
	}
	t0 := time.Unix(1_700_000_000, 0)
	write(src, "v1", t0)
	first := install("v1")
	if _, err := os.Stat(installStampPath(dir)); err != nil {
		t.Fatalf("no stamp beside the directory: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the mounted directory holds %v, want the executable alone", entries)
	}
	if again := install("v1"); again != first {
		t.Error("an unchanged source was copied again")
	}

	// A new build at the same path: copied.
	write(src, "v2", t0.Add(time.Second))
	if install("v2") == first {
		t.Error("a changed source was not copied")
	}

	// The copy changed by someone else: copied again.
	write(dst, "xx", t0.Add(2*time.Second))
	install("v2")

	// The copy replaced by a FIFO, then by a symlink to a file elsewhere.
	os.Remove(dst)
	if err := syscall.Mkfifo(dst, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	install("v2")
	outside := filepath.Join(root, "outside")
	write(outside, "keep", t0)
	os.Remove(dst)
	if err := os.Symlink(outside, dst); err != nil {
		t.Fatal(err)
	}
	install("v2")
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Errorf("the symlink's target was written: %q", b)
	}

	// A stamp that does not parse is no stamp.
	if err := os.WriteFile(installStampPath(dir), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	install("v2")
}
