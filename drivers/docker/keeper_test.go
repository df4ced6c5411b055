package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// stdioEngineEnv makes the test binary a stand-in for `ssh HOST docker
// system dial-stdio`: an HTTP server on its stdin and stdout answering
// /_ping, and a line in the file the variable names for each start.
const stdioEngineEnv = "JACKIN_TEST_STDIO_ENGINE"

func init() {
	if log := os.Getenv(stdioEngineEnv); log != "" {
		os.Exit(serveStdioEngine(log))
	}
}

func serveStdioEngine(log string) int {
	f, err := os.OpenFile(log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return 1
	}
	fmt.Fprintf(f, "start %d\n", os.Getpid())
	f.Close()
	ln := &oneConnListener{conn: stdioConn{}, done: make(chan struct{})}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		fmt.Fprintf(w, "OK from %d", os.Getpid())
	}), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			close(ln.done)
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	<-ln.done
	return 0
}

type stdioConn struct{}

func (stdioConn) Read(p []byte) (int, error)       { return os.Stdin.Read(p) }
func (stdioConn) Write(p []byte) (int, error)      { return os.Stdout.Write(p) }
func (stdioConn) Close() error                     { os.Stdout.Close(); return os.Stdin.Close() }
func (stdioConn) LocalAddr() net.Addr              { return cmdAddr("stdio") }
func (stdioConn) RemoteAddr() net.Addr             { return cmdAddr("stdio") }
func (stdioConn) SetDeadline(time.Time) error      { return nil }
func (stdioConn) SetReadDeadline(time.Time) error  { return nil }
func (stdioConn) SetWriteDeadline(time.Time) error { return nil }

// oneConnListener accepts conn once, then blocks until done.
type oneConnListener struct {
	once sync.Once
	conn net.Conn
	done chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.conn })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}
func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return cmdAddr("stdio") }

// stdioEngine is the stand-in's command and the file that counts its starts.
func stdioEngine(t *testing.T) ([]string, func() int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "starts")
	argv := []string{"env", stdioEngineEnv + "=" + log, exe}
	return argv, func() int {
		b, _ := os.ReadFile(log)
		return strings.Count(string(b), "start ")
	}
}

// runKeeper runs a dial keeper for argv in the background until the test
// ends, and waits until its socket answers.
func runKeeper(t *testing.T, argv []string, idle time.Duration) (string, <-chan struct{}) {
	t.Helper()
	dir, ok := sshMuxDir()
	if !ok {
		t.Skip("no private control directory for sockets")
	}
	sock := filepath.Join(dir, fmt.Sprintf("dial-test-%d-%d.sock", os.Getpid(), time.Now().UnixNano()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := RunDialKeeper(ctx, logr.Discard(), sock, argv, idle); err != nil {
			t.Errorf("keeper: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		os.Remove(sock + ".lock")
	})
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err := os.Stat(sock); err == nil {
			return sock, done
		}
		if time.Now().After(deadline) {
			t.Fatalf("keeper socket %s never appeared", sock)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ping sends /_ping over c and returns the body.
func pingOver(t *testing.T, c net.Conn) string {
	t.Helper()
	cli := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return c, nil }}}
	res, err := cli.Get("http://docker/_ping")
	if err != nil {
		t.Fatalf("ping through the kept connection: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b) // c stays open: the caller closes it
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestDialKeeperHandsOutAReadyConnection: the keeper starts the engine's
// command before any command asks, hands that connection (already
// answering) to the first that connects, and starts the next one only
// once that command is done with it.
func TestDialKeeperHandsOutAReadyConnection(t *testing.T) {
	argv, starts := stdioEngine(t)
	sock, _ := runKeeper(t, argv, time.Minute)
	waitFor(t, "the spare connection", func() bool { return starts() == 1 })

	c, err := dialKeeper(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	if got := pingOver(t, c); !strings.HasPrefix(got, "OK from ") {
		t.Fatalf("ping answer %q", got)
	}
	time.Sleep(500 * time.Millisecond) // time enough for a start, were one made
	if n := starts(); n != 1 {
		t.Fatalf("%d starts of the engine's command while a command used its connection, want 1 (the spare)", n)
	}
	c.Close()
	waitFor(t, "the next spare", func() bool { return starts() == 2 })

	// Two at once: the spare and one made on demand.
	c1, err1 := dialKeeper(context.Background(), sock)
	c2, err2 := dialKeeper(context.Background(), sock)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	a, b := pingOver(t, c1), pingOver(t, c2)
	if a == b {
		t.Fatalf("two commands share one engine connection: %q", a)
	}
	c1.Close()
	c2.Close()
}

// TestDialKeeperSaysWhyTheEngineFailed: the command's own words reach the
// command that asked, as from a direct dial.
func TestDialKeeperSaysWhyTheEngineFailed(t *testing.T) {
	sock, _ := runKeeper(t, []string{"sh", "-c", "echo 'ssh: connect to host r9 port 22: Connection refused' >&2; exit 255"}, time.Minute)
	_, err := dialKeeper(context.Background(), sock)
	var refused *keeperRefusal
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "Connection refused") {
		t.Fatalf("err = %v, want the keeper's report with ssh's message", err)
	}
}

// TestDialKeeperLeavesWhenIdle: gone after idle with nothing connected,
// its socket removed; a second keeper for the same socket leaves at once.
func TestDialKeeperLeavesWhenIdle(t *testing.T) {
	argv, _ := stdioEngine(t)
	sock, done := runKeeper(t, argv, 300*time.Millisecond)
	if err := RunDialKeeper(context.Background(), logr.Discard(), sock, argv, time.Minute); err != nil {
		t.Fatalf("second keeper: %v", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the keeper stayed past its idle time")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
	if _, err := dialKeeper(context.Background(), sock); err == nil {
		t.Fatal("a keeper answered after it left")
	}
}

// TestKeptDialerWithoutAKeeper dials directly and starts a keeper for the
// next command; with keepers off it starts none.
func TestKeptDialerWithoutAKeeper(t *testing.T) {
	if _, ok := sshMuxDir(); !ok {
		t.Skip("no private control directory for sockets")
	}
	argv, starts := stdioEngine(t)
	argv = append(argv, fmt.Sprint(time.Now().UnixNano())) // a socket of its own
	marker := filepath.Join(t.TempDir(), "keeper-started")
	keeper := []string{"sh", "-c", `touch "$0"`, marker}

	t.Setenv(DialKeepEnv, "off")
	c, err := keptDialer(logr.Discard(), argv, keeper)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pingOver(t, c)
	c.Close()
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Fatalf("%s=off, yet a keeper was started", DialKeepEnv)
	}

	t.Setenv(DialKeepEnv, "")
	c, err = keptDialer(logr.Discard(), argv, keeper)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pingOver(t, c)
	c.Close()
	waitFor(t, "the keeper's start", func() bool { _, err := os.Stat(marker); return err == nil })
	if n := starts(); n != 2 {
		t.Fatalf("%d direct dials, want 2", n)
	}
}
