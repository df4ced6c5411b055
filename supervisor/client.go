package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackin-dev/jackin/drivers"
)

// Conn is a connection to an agent's supervisor, through the backend's
// exec of the relay inside the container.
type Conn struct {
	sess drivers.ExecSession
	r    *bufio.Reader
	w    io.WriteCloser
}

// Connect reaches the supervisor of the agent container id.
func Connect(ctx context.Context, ex drivers.Execer, id string) (*Conn, error) {
	sess, err := ex.Exec(ctx, id, drivers.ExecOptions{Cmd: []string{Binary, "agent-relay"}, Stdin: true})
	if err != nil {
		return nil, err
	}
	return &Conn{sess: sess, r: bufio.NewReaderSize(sess.Stdout(), 64<<10), w: sess.Stdin()}, nil
}

// NewConn wraps any stream to a supervisor (tests, and backends that reach
// it another way).
func NewConn(r io.Reader, w io.WriteCloser) *Conn {
	return &Conn{r: bufio.NewReaderSize(r, 64<<10), w: w}
}

// Close ends the connection.
func (c *Conn) Close() error {
	err := c.w.Close()
	if c.sess != nil {
		err = errors.Join(err, c.sess.Close())
	}
	return err
}

func (c *Conn) send(req Request) error {
	req.V = ProtocolVersion
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	_, err = c.w.Write(append(b, '\n'))
	return err
}

// relayError explains an empty answer: the relay could not reach a
// supervisor (an instance created before the supervisor, or a stopped one).
func (c *Conn) relayError(err error) error {
	if c.sess != nil {
		if msg, _ := io.ReadAll(io.LimitReader(c.sess.Stderr(), 4096)); len(bytes.TrimSpace(msg)) > 0 {
			return fmt.Errorf("%s", bytes.TrimSpace(msg))
		}
	}
	if errors.Is(err, io.EOF) {
		return errors.New("the agent's supervisor did not answer (was the instance created by an older jackin? jackin apply recreates it)")
	}
	return err
}

func (c *Conn) readStatus() (Status, error) {
	line, err := readLine(c.r, maxRequest)
	if err != nil {
		return Status{}, c.relayError(err)
	}
	var st Status
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(line, &e) == nil && e.Error != "" {
		return Status{}, errors.New(e.Error)
	}
	if err := json.Unmarshal(line, &st); err != nil {
		return Status{}, fmt.Errorf("the supervisor's answer: %w", err)
	}
	return st, nil
}

// Status asks for the agent's state once.
func (c *Conn) Status() (Status, error) {
	if err := c.send(Request{Op: "status"}); err != nil {
		return Status{}, err
	}
	return c.readStatus()
}

// Prompt types text into the agent's terminal when it waits for a prompt
// (idle or done); the supervisor refuses otherwise, naming the state. It
// returns the agent's status after typing.
func (c *Conn) Prompt(text string) (Status, error) {
	if err := c.send(Request{Op: "prompt", Text: text}); err != nil {
		return Status{}, err
	}
	return c.readStatus()
}

// Standby opens the way for a prompt typed later (PromptLater): the
// connection's cost (an exec into the container) is paid ahead of time,
// not when the agent turns idle.
func (c *Conn) Standby() error {
	return c.send(Request{Op: "standby"})
}

// ErrNoStandby: the standby connection could not take the prompt (the
// supervisor predates standby, or the connection is gone before the
// prompt was sent); nothing was typed, and a new connection's Prompt can
// be used instead.
var ErrNoStandby = errors.New("the standby connection cannot take the prompt")

// PromptLater is Prompt on a connection Standby opened.
func (c *Conn) PromptLater(text string) (Status, error) {
	if err := c.send(Request{Op: "prompt", Text: text}); err != nil {
		return Status{}, fmt.Errorf("%w: %v", ErrNoStandby, err)
	}
	st, err := c.readStatus()
	if err != nil && strings.Contains(err.Error(), "unknown op standby") {
		return Status{}, ErrNoStandby
	}
	return st, err
}

// Watch calls fn with the state now and at every change until fn returns
// false, the agent exits or ctx ends.
func (c *Conn) Watch(ctx context.Context, fn func(Status) bool) error {
	if err := c.send(Request{Op: "watch"}); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	for {
		st, err := c.readStatus()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if !fn(st) || st.State == "exited" {
			return nil
		}
	}
}

// AttachOptions is a terminal joining an agent's.
type AttachOptions struct {
	In  io.Reader // keystrokes (the terminal in raw mode)
	Out io.Writer // what the agent prints
	// DetachKeys ends the session without stopping the agent.
	DetachKeys []byte
	Rows, Cols uint16
	// Resize delivers the terminal's new sizes.
	Resize <-chan [2]uint16
}

// AttachResult says how an attach ended.
type AttachResult struct {
	Detached bool
	// Exited is set when the agent exited while attached.
	Exited *Status
}

// Attach joins the terminal to the agent's until the detach keys, the
// agent's exit, or the end of In or the connection.
func (c *Conn) Attach(ctx context.Context, o AttachOptions) (AttachResult, error) {
	if err := c.send(Request{Op: "attach", Rows: o.Rows, Cols: o.Cols}); err != nil {
		return AttachResult{}, err
	}
	var wmu sync.Mutex
	write := func(typ byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return WriteFrame(c.w, typ, p)
	}
	type end struct {
		res AttachResult
		err error
	}
	done := make(chan end, 3)
	// detaching is set before the detach frame is written: the supervisor
	// may end the stream before the keystrokes' goroutine reports the
	// detach, and that end is the detach, not a lost supervisor.
	var detaching atomic.Bool
	detach := func() {
		detaching.Store(true)
		_ = write(FrameDetach, nil)
	}
	go func() { // the agent's output
		buf := make([]byte, 64<<10)
		for {
			typ, p, err := ReadFrame(c.r, buf)
			if err != nil {
				if detaching.Load() {
					done <- end{res: AttachResult{Detached: true}}
					return
				}
				done <- end{err: c.relayError(err)}
				return
			}
			switch typ {
			case FrameOutput:
				if _, err := o.Out.Write(p); err != nil {
					done <- end{err: err}
					return
				}
			case FrameExit:
				var st Status
				_ = json.Unmarshal(p, &st)
				done <- end{res: AttachResult{Exited: &st}}
				return
			case FrameError:
				done <- end{err: errors.New(string(p))}
				return
			}
		}
	}()
	go func() { // the operator's keystrokes
		d := &detacher{keys: o.DetachKeys}
		buf := make([]byte, 32<<10)
		for {
			n, err := o.In.Read(buf)
			if n > 0 {
				send, detachNow := d.feed(buf[:n])
				if len(send) > 0 {
					if werr := write(FrameInput, send); werr != nil {
						done <- end{err: werr}
						return
					}
				}
				if detachNow {
					detach()
					done <- end{res: AttachResult{Detached: true}}
					return
				}
			}
			if err != nil {
				// The input ended (not a terminal, or closed): leave
				// without stopping the agent.
				if held := d.flush(); len(held) > 0 {
					_ = write(FrameInput, held)
				}
				detach()
				done <- end{res: AttachResult{Detached: true}}
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			detach()
			return AttachResult{Detached: true}, ctx.Err()
		case sz, ok := <-o.Resize:
			if !ok {
				o.Resize = nil
				continue
			}
			_ = write(FrameResize, ResizePayload(sz[0], sz[1]))
		case e := <-done:
			return e.res, e.err
		}
	}
}

// detacher finds the detach sequence in the keystrokes, as docker does: a
// byte that continues the sequence is held back; when the sequence breaks,
// the held bytes go to the agent after all.
type detacher struct {
	keys []byte
	held int // how many bytes of keys were matched
}

func (d *detacher) feed(p []byte) (send []byte, detach bool) {
	if len(d.keys) == 0 {
		return p, false
	}
	out := make([]byte, 0, len(p)+d.held)
	for _, b := range p {
		if b == d.keys[d.held] {
			d.held++
			if d.held == len(d.keys) {
				return out, true
			}
			continue
		}
		// The held bytes and b: keep the longest tail of them that still
		// starts the sequence, send the rest.
		cand := append(append([]byte{}, d.keys[:d.held]...), b)
		keep := 0
		for k := min(len(cand), len(d.keys)-1); k > 0; k-- {
			if bytes.Equal(cand[len(cand)-k:], d.keys[:k]) {
				keep = k
				break
			}
		}
		out = append(out, cand[:len(cand)-keep]...)
		d.held = keep
	}
	return out, false
}

func (d *detacher) flush() []byte {
	h := d.keys[:d.held]
	d.held = 0
	return h
}
