package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"

	"github.com/jackin-dev/jackin/drivers"
)

var _ drivers.Execer = (*Driver)(nil)

// Exec runs opts.Cmd in the running container id, the way `docker exec`
// does, and returns the session at once: the command runs while the
// caller reads its output. Without a terminal, stdout and stderr are
// demultiplexed into two unbuffered pipes, so the caller must read both
// (concurrently) or the command blocks on the one left unread; with a
// terminal, the connection's raw stream is stdout and stderr is empty.
// Stdin writes go straight to the connection; closing it half-closes the
// connection, so the command reads EOF and its output still arrives.
func (d *Driver) Exec(ctx context.Context, id string, opts drivers.ExecOptions) (drivers.ExecSession, error) {
	if len(opts.Cmd) == 0 {
		return nil, errors.New("exec: no command")
	}
	if err := d.ensureNegotiated(ctx); err != nil {
		return nil, err
	}
	what := fmt.Sprintf("run %q in container %s", opts.Cmd[0], shortID(id))
	size := client.ConsoleSize{}
	if opts.Tty && opts.Rows > 0 && opts.Cols > 0 {
		size = client.ConsoleSize{Height: opts.Rows, Width: opts.Cols}
	}
	created, err := d.cli.ExecCreate(ctx, id, client.ExecCreateOptions{
		User:         opts.User,
		TTY:          opts.Tty,
		ConsoleSize:  size,
		AttachStdin:  opts.Stdin,
		AttachStdout: true,
		AttachStderr: true,
		Env:          opts.Env,
		Cmd:          opts.Cmd,
	})
	if err != nil {
		return nil, d.wrap(err, "%s", what)
	}
	att, err := d.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{TTY: opts.Tty, ConsoleSize: size})
	if err != nil {
		return nil, d.wrap(err, "%s", what)
	}
	s := &execSession{d: d, id: created.ID, what: what, att: att.HijackedResponse, tty: opts.Tty, drained: make(chan struct{})}
	if opts.Stdin {
		s.stdin = &execStdin{s: s}
	}
	if opts.Tty {
		s.stdout = &ttyOutput{s: s}
		s.stderr = eofReader{}
		// Engines before API 1.42 ignore the size given at create and
		// start: set it once the command runs, as the docker CLI does.
		if size.Height > 0 && versions.LessThan(d.cli.ClientVersion(), "1.42") {
			go s.initialResize(ctx, size)
		}
	} else {
		outR, outW := io.Pipe()
		errR, errW := io.Pipe()
		s.stdout, s.stderr = outR, errR
		s.pipes = [2]*io.PipeWriter{outW, errW}
		go s.demux(outW, errW)
	}
	return s, nil
}

// execSession is one `docker exec` with its hijacked connection.
type execSession struct {
	d    *Driver
	id   string // the exec's ID
	what string
	att  client.HijackedResponse
	tty  bool

	stdin          io.WriteCloser
	stdout, stderr io.Reader
	pipes          [2]*io.PipeWriter // stdout's and stderr's, without a terminal

	// resizeMu orders resizes; userSized is set by the first Resize the
	// caller makes, after which the initial size is never applied (on an
	// older engine it is set from a goroutine that could otherwise land
	// after the caller's newer size).
	resizeMu  sync.Mutex
	userSized bool

	// drained is closed once the output has been read to its end (or the
	// connection failed or was closed); readErr is why, when not EOF.
	drained   chan struct{}
	drainOnce sync.Once
	readErr   error

	closeOnce sync.Once
	closed    atomic.Bool // set by Close before the connection is closed

	// head keeps the first bytes of output: when the command could not
	// start, they are the engine's reason.
	head headBuf
}

// headBuf keeps the first bytes written to it; past them a write costs a
// length check.
type headBuf struct {
	mu  sync.Mutex
	n   atomic.Int32
	buf [256]byte
}

func (h *headBuf) keep(p []byte) {
	if int(h.n.Load()) >= len(h.buf) || len(p) == 0 {
		return
	}
	h.mu.Lock()
	n := int(h.n.Load())
	c := copy(h.buf[n:], p)
	h.n.Store(int32(n + c))
	h.mu.Unlock()
}

func (h *headBuf) bytes() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buf[:h.n.Load()]
}

func (s *execSession) Stdin() io.WriteCloser { return s.stdin }
func (s *execSession) Stdout() io.Reader     { return s.stdout }
func (s *execSession) Stderr() io.Reader     { return s.stderr }

// finish marks the output drained, with err when it ended other than at
// EOF (and not because Close closed it).
func (s *execSession) finish(err error) {
	s.drainOnce.Do(func() {
		if err != nil && !errors.Is(err, io.EOF) && !s.closed.Load() {
			s.readErr = err
		}
		close(s.drained)
	})
}

// demux splits the multiplexed stream into the two pipes. A pipe write
// returns only once the caller has read it, so nothing is buffered here
// and drained means the caller has every byte.
func (s *execSession) demux(outW, errW *io.PipeWriter) {
	_, err := stdcopy.StdCopy(headWriter{outW, &s.head}, errW, s.att.Reader)
	if err != nil && s.closed.Load() {
		err = nil // Close ended it: readers see EOF
	}
	if err != nil {
		err = s.d.wrap(err, "read the output of %s", s.what)
	}
	s.finish(err)
	outW.CloseWithError(err)
	errW.CloseWithError(err)
}

// headWriter writes to w, keeping the first bytes in head.
type headWriter struct {
	w    io.Writer
	head *headBuf
}

func (h headWriter) Write(p []byte) (int, error) {
	h.head.keep(p)
	return h.w.Write(p)
}

// ttyOutput is the raw stream of a command with a terminal.
type ttyOutput struct{ s *execSession }

func (o *ttyOutput) Read(p []byte) (int, error) {
	n, err := o.s.att.Reader.Read(p)
	o.s.head.keep(p[:n])
	if err != nil {
		if o.s.closed.Load() {
			err = io.EOF // Close ended it
		}
		o.s.finish(err)
		if !errors.Is(err, io.EOF) {
			err = o.s.d.wrap(err, "read the output of %s", o.s.what)
		}
	}
	return n, err
}

// execStdin writes to the connection; Close half-closes it.
type execStdin struct{ s *execSession }

func (w *execStdin) Write(p []byte) (int, error) { return w.s.att.Conn.Write(p) }

func (w *execStdin) Close() error {
	if err := w.s.att.CloseWrite(); err != nil && !w.s.closed.Load() {
		return w.s.d.wrap(err, "close the input of %s", w.s.what)
	}
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// initialResize sets the terminal's first size on an engine that ignored
// it at start: the command may not run yet, so it retries briefly.
func (s *execSession) initialResize(ctx context.Context, size client.ConsoleSize) {
	for i := range 10 {
		s.resizeMu.Lock()
		if s.userSized {
			s.resizeMu.Unlock()
			return
		}
		err := s.resize(ctx, size.Height, size.Width)
		s.resizeMu.Unlock()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-s.drained:
			return
		case <-time.After(time.Duration(i+1) * 10 * time.Millisecond):
		}
	}
}

// Resize changes the command's terminal size.
func (s *execSession) Resize(ctx context.Context, rows, cols uint) error {
	s.resizeMu.Lock()
	defer s.resizeMu.Unlock()
	s.userSized = true
	return s.resize(ctx, rows, cols)
}

func (s *execSession) resize(ctx context.Context, rows, cols uint) error {
	if !s.tty {
		return fmt.Errorf("resize %s: it has no terminal", s.what)
	}
	if rows == 0 || cols == 0 {
		return nil
	}
	_, err := s.d.cli.ExecResize(ctx, s.id, client.ExecResizeOptions{Height: rows, Width: cols})
	return s.d.wrap(err, "resize the terminal of %s", s.what)
}

// ExecStartError is Wait's error for a command the engine could not
// start (not found, not executable). Code is 127 when the engine says the
// program does not exist (as a shell, and newer engines, say; Docker 20.10
// says 126 for everything), else the engine's status. The engine's message
// also went to the session's output, as docker exec shows it.
type ExecStartError struct {
	What    string
	Code    int
	Message string // the engine's, with its "OCI runtime exec failed" prefix
}

func (e *ExecStartError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "the engine could not start it"
	}
	return fmt.Sprintf("%s: %s (exit status %d)", e.What, msg, e.Code)
}

// startError describes a command that never ran, from the engine's message
// at the start of its output.
func startError(what string, code int, head []byte) *ExecStartError {
	msg := strings.TrimSpace(string(head))
	if i := strings.IndexAny(msg, "\r\n"); i >= 0 {
		msg = msg[:i]
	}
	for _, p := range []string{"OCI runtime exec failed: ", "exec failed: ", "unable to start container process: ", "container_linux.go:380: ", "starting container process caused: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	msg = strings.TrimSuffix(msg, ": unknown")
	low := strings.ToLower(msg)
	if strings.Contains(low, "no such file or directory") || strings.Contains(low, "not found") {
		code = 127
	}
	return &ExecStartError{What: what, Code: code, Message: msg}
}

// Wait waits until the output has been read to its end (the caller reads
// it: Wait does not), then returns the command's exit status from the
// engine. A command that never started is an *ExecStartError, with its
// status (126 or 127).
func (s *execSession) Wait(ctx context.Context) (int, error) {
	select {
	case <-s.drained:
	case <-ctx.Done():
		return -1, fmt.Errorf("wait for %s: %w", s.what, ctx.Err())
	}
	if s.readErr != nil {
		return -1, s.readErr
	}
	// The stream ends once the engine has the exit status; poll a little
	// in case an engine reports it a moment later.
	for i := 0; ; i++ {
		res, err := s.d.cli.ExecInspect(ctx, s.id, client.ExecInspectOptions{})
		if err != nil {
			return -1, s.d.wrap(err, "read the exit status of %s", s.what)
		}
		if !res.Running {
			if res.PID == 0 && res.ExitCode != 0 {
				// It never ran: what it "wrote" is the engine's error.
				se := startError(s.what, res.ExitCode, s.head.bytes())
				return se.Code, se
			}
			return res.ExitCode, nil
		}
		if i == 50 {
			return -1, fmt.Errorf("%s: the engine still reports it running after its output ended", s.what)
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("wait for %s: %w", s.what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close closes the connection; the command may go on running.
func (s *execSession) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.att.Close()
		// Readers see EOF now, and a demux blocked on a pipe nobody
		// reads any more is released.
		for _, w := range s.pipes {
			if w != nil {
				_ = w.Close()
			}
		}
	})
	return nil
}
