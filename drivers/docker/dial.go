package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/moby/moby/client"
)

// DialFunc opens one connection to an engine's API. Each HTTP connection
// the client keeps is one call.
type DialFunc func(ctx context.Context) (net.Conn, error)

// NewDialed returns a driver for an engine reached through dial rather
// than an address from the environment: a remote engine over SSH, the
// engine inside an OrbStack machine. endpoint names it in errors and logs.
// It does not contact the engine; call Ping for that.
func NewDialed(ctx context.Context, log logr.Logger, endpoint string, dial DialFunc) (*Driver, error) {
	_ = ctx // creating a client makes no engine calls
	counter := newCallCounter(log)
	cli, err := client.New(
		// The host is never dialled (dial is): it only shapes request URLs.
		client.WithHost("http://docker.invalid"),
		client.WithDialContext(func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }),
		client.WithHTTPRequestHook(counter.hook),
	)
	if err != nil {
		return nil, fmt.Errorf("configure the Docker engine client for %s: %w", endpoint, err)
	}
	subnets, err := newSubnetAllocator()
	if err != nil {
		return nil, err
	}
	d := &Driver{cli: cli, log: log, counter: counter, endpoint: endpoint, subnets: subnets, serialCalls: true}
	log.V(2).Info("docker client configured", "endpoint", endpoint)
	return d, nil
}

// CommandDialer is a DialFunc that runs argv for each connection and speaks
// to the engine over its stdin and stdout, the way docker's own SSH
// transport runs `docker system dial-stdio` on the far side. env, when not
// nil, replaces the command's environment. The command's stderr is kept
// (its last 4 KiB) for the error of a connection that fails.
func CommandDialer(argv []string, env []string) DialFunc {
	return func(ctx context.Context) (net.Conn, error) {
		if len(argv) == 0 {
			return nil, errors.New("dial: no command given")
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// The connection outlives the dial's context: it ends on Close.
		cmd := exec.Command(argv[0], argv[1:]...)
		if env != nil {
			cmd.Env = env
		}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", strings.Join(argv, " "), err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", strings.Join(argv, " "), err)
		}
		c := &commandConn{argv: argv, cmd: cmd, stdin: stdin, stdout: stdout, stderrDone: make(chan struct{})}
		// stderr through a pipe of our own: its end tells when all of it
		// is in c.stderr, so a connection that ends reports the message.
		er, ew, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", strings.Join(argv, " "), err)
		}
		cmd.Stderr = ew
		if err := cmd.Start(); err != nil {
			er.Close()
			ew.Close()
			return nil, fmt.Errorf("dial %s: %w", strings.Join(argv, " "), err)
		}
		ew.Close()
		go func() {
			defer close(c.stderrDone)
			defer er.Close()
			_, _ = io.Copy(&c.stderr, er)
		}()
		return c, nil
	}
}

// commandConn is a net.Conn over a command's stdin and stdout.
type commandConn struct {
	argv   []string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	stderr tailBuffer
	// stderrDone is closed once the command's stderr is closed (it ended).
	stderrDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

func (c *commandConn) Read(p []byte) (int, error) {
	n, err := c.stdout.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, c.explain(err)
	}
	if errors.Is(err, io.EOF) && n == 0 {
		// stdout closed: the command is ending; its last words on stderr
		// may still be in flight.
		select {
		case <-c.stderrDone:
		case <-time.After(2 * time.Second):
		}
		if msg := strings.TrimSpace(c.stderr.String()); msg != "" {
			// The command ended: what it said is the cause.
			return 0, fmt.Errorf("%s: %s: %w", strings.Join(c.argv, " "), msg, io.EOF)
		}
	}
	return n, err
}

func (c *commandConn) Write(p []byte) (int, error) {
	n, err := c.stdin.Write(p)
	if err != nil {
		return n, c.explain(err)
	}
	return n, nil
}

func (c *commandConn) explain(err error) error {
	if msg := strings.TrimSpace(c.stderr.String()); msg != "" {
		return fmt.Errorf("%s: %s: %w", strings.Join(c.argv, " "), msg, err)
	}
	return fmt.Errorf("%s: %w", strings.Join(c.argv, " "), err)
}

// CloseWrite closes the command's stdin (a hijacked exec's end of input).
func (c *commandConn) CloseWrite() error { return c.stdin.Close() }

// Close ends the command.
func (c *commandConn) Close() error {
	c.closeOnce.Do(func() {
		_ = c.stdin.Close()
		if c.cmd.Process != nil {
			_ = c.cmd.Process.Signal(os.Kill)
		}
		_ = c.cmd.Wait()
	})
	return c.closeErr
}

func (c *commandConn) LocalAddr() net.Addr  { return cmdAddr("local") }
func (c *commandConn) RemoteAddr() net.Addr { return cmdAddr(strings.Join(c.argv, " ")) }

// Deadlines are not supported by a pipe; the HTTP client bounds requests by
// their contexts, which close the connection.
func (c *commandConn) SetDeadline(time.Time) error      { return nil }
func (c *commandConn) SetReadDeadline(time.Time) error  { return nil }
func (c *commandConn) SetWriteDeadline(time.Time) error { return nil }

type cmdAddr string

func (a cmdAddr) Network() string { return "command" }
func (a cmdAddr) String() string  { return string(a) }

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 4096 {
		b.buf = b.buf[len(b.buf)-4096:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// concurrently runs calls at once, or one after another on an engine
// reached through a command per connection (serialCalls): there a second
// concurrent request spawns a second ssh or orb process, which costs far
// more than waiting for the first request's few milliseconds.
func (d *Driver) concurrently(calls ...func()) {
	if d.serialCalls {
		for _, c := range calls {
			c()
		}
		return
	}
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Go(c)
	}
	wg.Wait()
}
