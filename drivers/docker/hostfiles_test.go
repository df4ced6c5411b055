package docker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHostFilesRemotePath: jackin's own files map under the remote
// directories (credentials under the tmpfs one), and every other source is
// the remote host's path, left alone.
func TestHostFilesRemotePath(t *testing.T) {
	h := &HostFiles{Roots: []string{"/state"}, TmpfsRoots: []string{"/dev/shm/jackin-0"}, Dir: DefaultRemoteDir, TmpfsDir: DefaultRemoteTmpfsDir}
	for src, want := range map[string]string{
		"/state/supervisor":         "/var/lib/jackin-remote/state/supervisor",
		"/state/agents/f/a":         "/var/lib/jackin-remote/state/agents/f/a",
		"/dev/shm/jackin-0/f/a/run": "/dev/shm/jackin-remote/dev/shm/jackin-0/f/a/run",
		"/srv/checkouts/app":        "",
		"/statefile":                "",
		"/state/../etc/shadow":      "",
		"/dev/shm/jackin-0-other/x": "",
	} {
		got, ok := h.RemotePath(src)
		if want == "" && ok || want != "" && got != want {
			t.Errorf("%s: %q %v, want %q", src, got, ok, want)
		}
	}
}

// TestFingerprintAndArchive: a tree's fingerprint changes with a file's
// content size or time, and archiving refuses a symbolic link.
func TestFingerprintAndArchive(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "TOKEN")
	if err := os.WriteFile(f, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := fingerprint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := fingerprint(dir); b != a {
		t.Fatal("fingerprint of an unchanged tree changed")
	}
	if err := os.WriteFile(f, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Second)
	if err := os.Chtimes(f, later, later); err != nil {
		t.Fatal(err)
	}
	if b, _ := fingerprint(dir); b == a {
		t.Error("a rewritten file left the fingerprint unchanged")
	}
	if _, _, err := tarOf(dir, "x"); err != nil {
		t.Fatalf("archive: %v", err)
	}
	if err := os.Symlink("/etc/shadow", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tarOf(dir, "x"); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("archive with a symlink: %v, want it refused", err)
	}
}
