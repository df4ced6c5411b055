package hostpath

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPinNoticesASymlinkSwappedIn(t *testing.T) {
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	cache := filepath.Join(work, "cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	pin, err := PinPath(cache)
	if err != nil {
		t.Fatal(err)
	}
	if err := pin.Verify(); err != nil {
		t.Fatalf("unchanged path: %v", err)
	}
	// The agent's move: replace cache with a link to somewhere else.
	if err := os.Remove(cache); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), cache); err != nil {
		t.Fatal(err)
	}
	err = pin.Verify()
	if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Verify after the swap = %v, want a changed-path error naming the symlink", err)
	}
}

func TestPinNoticesAParentReplaced(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	pin, err := PinPath(src)
	if err != nil {
		t.Fatal(err)
	}
	// Same names, other directories: a rename dance leaves every spelling intact.
	if err := os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "old")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := pin.Verify(); !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "replaced") {
		t.Fatalf("Verify = %v, want a replaced-component error", err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if err := pin.Verify(); !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "no longer exists") {
		t.Fatalf("Verify = %v, want a missing-component error", err)
	}
}

func TestPinResolvesLinksAtValidation(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	pin, err := PinPath(link)
	if err != nil {
		t.Fatal(err)
	}
	if pin.Path != real {
		t.Fatalf("pin path = %s, want the resolved %s", pin.Path, real)
	}
	if len(pin.IDs) != len(Components(real)) {
		t.Fatalf("pin has %d ids for %d components", len(pin.IDs), len(Components(real)))
	}
	// Re-pointing the link the operator wrote does not move the pinned path.
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if err := pin.Verify(); err != nil {
		t.Fatalf("the resolved path is unchanged: %v", err)
	}
}

func TestVerifyBelow(t *testing.T) {
	dir := t.TempDir()
	git := filepath.Join(dir, "repo", ".git")
	if err := os.MkdirAll(filepath.Join(git, "hooks"), 0o755); err != nil {
		t.Fatal(err)
	}
	pin, err := PinPath(git)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyBelow(pin, filepath.Join(git, "hooks")); err != nil {
		t.Fatalf("plain directory below: %v", err)
	}
	if err := os.Remove(filepath.Join(git, "hooks")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/run", filepath.Join(git, "hooks")); err != nil {
		t.Fatal(err)
	}
	if err := VerifyBelow(pin, filepath.Join(git, "hooks")); !errors.Is(err, ErrChanged) {
		t.Fatalf("hooks as a symlink: %v, want ErrChanged", err)
	}
	if err := VerifyBelow(pin, filepath.Join(dir, "elsewhere")); err == nil {
		t.Fatal("a path outside the pinned directory passed")
	}
}

func TestSocketPeerIsThisProcess(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pid, ok := SocketPeer(p, time.Second)
	if !ok || pid != os.Getpid() {
		t.Fatalf("SocketPeer = %d, %v; want this process %d", pid, ok, os.Getpid())
	}
	if _, ok := SocketPeer(filepath.Join(t.TempDir(), "none.sock"), 100*time.Millisecond); ok {
		t.Fatal("a missing socket has a peer")
	}
}
