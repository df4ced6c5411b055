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
		ino, _ := fileID(fi)
		return ino
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

	// The copy changed by someone else: copied again. Also when its
	// modification time is set back to the stamp's (the change time
	// cannot be), and when it is no longer executable.
	write(dst, "xx", t0.Add(2*time.Second))
	install("v2")
	fi, _ := os.Lstat(dst)
	if err := os.WriteFile(dst, []byte("zz"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(dst, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	install("v2")
	if err := os.Chmod(dst, 0o644); err != nil {
		t.Fatal(err)
	}
	install("v2")
	if fi, _ := os.Lstat(dst); fi.Mode().Perm() != 0o755 {
		t.Errorf("a copy made non-executable was left so: %v", fi.Mode())
	}

	// The copy replaced by a FIFO, then by a symlink to a file elsewhere.
	os.Remove(dst)
	if err := syscall.Mkfifo(dst, 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
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

	// An interrupted install's temporary copy is removed by the next copy
	// once it is old; a recent one (another jackin copying now) is not.
	old, recent := filepath.Join(dir, ".jackin-111"), filepath.Join(dir, ".jackin-222")
	write(old, "partial", time.Now().Add(-time.Hour))
	write(recent, "partial", time.Now())
	write(src, "v3", t0.Add(3*time.Second))
	install("v3")
	if _, err := os.Lstat(old); !os.IsNotExist(err) {
		t.Errorf("an old partial copy stayed: %v", err)
	}
	if _, err := os.Lstat(recent); err != nil {
		t.Errorf("a recent partial copy was removed: %v", err)
	}
	os.Remove(recent)

	// A stamp that does not parse is no stamp.
	if err := os.WriteFile(installStampPath(dir), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	install("v3")
}

// startInstall makes the directory at once (a machine shares it before the
// copy is done), copies in the background, and joins the copy already
// running for the same directory rather than starting a second.
func TestStartInstallJoinsTheCopyInProgress(t *testing.T) {
	root := t.TempDir()
	src, dir := filepath.Join(root, "jackin-src"), filepath.Join(root, "machines", "f", "i", "supervisor")
	if err := os.WriteFile(src, make([]byte, 64<<20), 0o755); err != nil {
		t.Fatal(err)
	}
	current := func() *install {
		installs.Lock()
		defer installs.Unlock()
		return installs.m[dir]
	}
	waits := make([]func() error, 4)
	var in *install
	for i := range waits {
		w, err := startInstall(src, dir)
		if err != nil {
			t.Fatal(err)
		}
		waits[i] = w
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Fatalf("the directory is not there before the wait: %v", err)
		}
		if i == 0 {
			in = current()
		} else if current() != in {
			t.Errorf("start %d began a copy of its own instead of joining the first", i+1)
		}
	}
	for _, w := range waits {
		if err := w(); err != nil {
			t.Fatal(err)
		}
	}
	if in == nil {
		t.Fatal("no copy was started")
	}
	fi, err := os.Stat(filepath.Join(dir, "jackin"))
	if err != nil || fi.Size() != 64<<20 {
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
	fi2, _ := os.Stat(filepath.Join(dir, "jackin"))
	if a, _ := fileID(fi2); a != func() uint64 { b, _ := fileID(fi); return b }() {
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
