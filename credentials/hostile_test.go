//go:build unix

package credentials

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/schema"
)

// resolveWithin runs Resolve and fails the test if it has not returned
// within limit (the attack is a read that blocks for ever).
func resolveWithin(t *testing.T, r *Resolver, src schema.CredentialSource, limit time.Duration) ([]byte, error) {
	t.Helper()
	type res struct {
		v   []byte
		err error
	}
	done := make(chan res, 1)
	go func() {
		v, err := r.Resolve(context.Background(), src)
		done <- res{v, err}
	}()
	select {
	case got := <-done:
		return got.v, got.err
	case <-time.After(limit):
		t.Fatalf("Resolve of %s has not returned after %s", src.SourceText(), limit)
		return nil, nil
	}
}

// A FIFO as a file source (swapped in after validate, or never seen by
// it) is refused at once: open(2) on a FIFO without a writer blocks for
// ever, and the first signal would not end it.
func TestFileSourceFIFORefusedAtOnce(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "token")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	r := &Resolver{Key: make([]byte, 32), Timeout: time.Minute}
	_, err := resolveWithin(t, r, schema.CredentialSource{Kind: schema.SourceFile, File: fifo}, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), fifo) {
		t.Fatalf("a FIFO file source: %v, want an error naming it and saying it is not a regular file", err)
	}
	// A symlink to a FIFO is the FIFO.
	link := filepath.Join(dir, "link")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	if _, err := resolveWithin(t, r, schema.CredentialSource{Kind: schema.SourceFile, File: link}, 5*time.Second); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a symlink to a FIFO: %v", err)
	}
	// Other non-regular files: a socket, a device, a directory.
	sock := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, p := range []string{sock, "/dev/zero", dir} {
		if _, err := resolveWithin(t, r, schema.CredentialSource{Kind: schema.SourceFile, File: p}, 5*time.Second); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("file source %s: %v, want not a regular file", p, err)
		}
	}
	// A symlink to a regular file is read, as before.
	real := filepath.Join(dir, "real")
	if err := os.WriteFile(real, []byte(canary+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link2 := filepath.Join(dir, "link2")
	if err := os.Symlink(real, link2); err != nil {
		t.Fatal(err)
	}
	if v, err := resolveWithin(t, r, schema.CredentialSource{Kind: schema.SourceFile, File: link2}, 5*time.Second); err != nil || string(v) != canary {
		t.Fatalf("a symlink to a regular file: %q, %v", v, err)
	}
}

// A file source is read under the same deadline as a command: a read that
// hangs (a network filesystem that stopped answering) is abandoned.
func TestFileSourceReadHasADeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	prev := readSource
	readSource = func(string) ([]byte, error) {
		<-release
		return []byte(canary), nil
	}
	defer func() { readSource = prev }()
	r := &Resolver{Key: make([]byte, 32), Timeout: 300 * time.Millisecond}
	start := time.Now()
	_, err := resolveWithin(t, r, schema.CredentialSource{Kind: schema.SourceFile, File: "/nfs/token"}, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") || !strings.Contains(err.Error(), "/nfs/token") {
		t.Fatalf("a hung read: %v, want a timeout naming the file", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the hung read was abandoned after %s", d)
	}
	// Cancelling ends it too.
	ctx, cancel := context.WithCancel(context.Background())
	r.Timeout = time.Minute
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	if _, err := r.Resolve(ctx, schema.CredentialSource{Kind: schema.SourceFile, File: "/nfs/token"}); err == nil || !strings.Contains(err.Error(), "cancel") {
		t.Fatalf("a cancelled read: %v", err)
	}
}

// plainSecret is a secret with no shape any redaction rule knows: a plain
// lowercase word, shorter than a token.
const plainSecret = "tangerinewhale"

// A failing command's stderr is never part of its error, whatever it
// holds: the error names the command, its exit status and how to see the
// output on the operator's own terminal.
func TestCommandStderrNeverInTheError(t *testing.T) {
	r := &Resolver{Key: make([]byte, 32), Timeout: 500 * time.Millisecond}
	for _, tc := range []struct {
		name, body, want string
	}{
		{"exit", "echo 'vault: " + plainSecret + " rejected' >&2; exit 3", "exit status 3"},
		{"timeout", "echo 'vault: " + plainSecret + "' >&2; sleep 5", "timed out after 500ms"},
		{"signal", "echo " + plainSecret + " >&2; kill -9 $$", "signal: killed"},
	} {
		cmd := script(t, tc.body)
		_, err := r.Resolve(context.Background(), schema.CredentialSource{Kind: schema.SourceCommand, Command: []string{cmd, "--flag"}})
		if err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
		msg := err.Error()
		if strings.Contains(msg, plainSecret) {
			t.Errorf("%s: the error repeats the command's stderr: %q", tc.name, msg)
		}
		for _, want := range []string{"command src", tc.want, "stderr is not shown nor kept", "jackin credentials check"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: error %q lacks %q", tc.name, msg, want)
			}
		}
	}
}

// On request (jackin credentials check), a command's stderr goes straight
// to the given writer, the operator's terminal, and still never into the
// error.
func TestCommandStderrOnRequest(t *testing.T) {
	var term strings.Builder
	r := &Resolver{Key: make([]byte, 32), Stderr: &term}
	_, err := r.Resolve(context.Background(), schema.CredentialSource{Kind: schema.SourceCommand, Command: []string{script(t, "echo 'vault: "+plainSecret+"' >&2; exit 3")}})
	if err == nil || strings.Contains(err.Error(), plainSecret) {
		t.Fatalf("error: %v", err)
	}
	if !strings.Contains(term.String(), "vault: "+plainSecret) {
		t.Fatalf("the terminal got %q, want the command's stderr", term.String())
	}
}
