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

// startInstall makes the directory at once (a machine shares it before the
// copy is done), copies in the background, and joins the copy already
// running for the same directory rather than starting a second.
func TestStartInstallJoinsTheCopyInProgress(t *testing.T) {
	root := t.TempDir()
	src, dir := filepath.Join(root, "jackin-src"), filepath.Join(root, "machines", "f", "i", "supervisor")
	if err := os.WriteFile(src, make([]byte, 8<<20), 0o755); err != nil {
		t.Fatal(err)
	}
	waits := make([]func() error, 4)
	for i := range waits {
		w, err := startInstall(src, dir)
		if err != nil {
			t.Fatal(err)
		}
		waits[i] = w
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Fatalf("the directory is not there before the wait: %v", err)
		}
	}
	installs.Lock()
	in := installs.m[dir]
	installs.Unlock()
	for _, w := range waits {
		if err := w(); err != nil {
			t.Fatal(err)
		}
	}
	if in == nil {
		t.Fatal("no copy was started")
	}
	fi, err := os.Stat(filepath.Join(dir, "jackin"))
	if err != nil || fi.Size() != 8<<20 {
		t.Fatalf("the copy: %v %v", fi, err)
	}
	// One copy: the directory holds the executable and no leftover
	// temporary file of a second copy.
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %v", entries)
	}
	// Installed: the next start finds the stamp and copies nothing.
	w, err := startInstall(src, dir)
	if err != nil || w() != nil {
		t.Fatalf("second start: %v", err)
	}
	if fi2, _ := os.Stat(filepath.Join(dir, "jackin")); inodeOf(fi2) != inodeOf(fi) {
		t.Error("an installed executable was copied again")
	}

	// A copy that fails (a directory cannot be read as the executable) is
	// reported by the wait, and by AgentPrep.Ready.
	bad := filepath.Join(root, "not-a-file")
	if err := os.Mkdir(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	w, err = startInstall(bad, filepath.Join(root, "other"))
	if err != nil {
		t.Fatal(err)
	}
	p := &AgentPrep{waits: []func() error{w}}
	if err := p.Ready(); err == nil {
		t.Error("a failed copy was not reported")
	}
}
