package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/jackin-dev/jackin/agentstate"
)

// maxRequest bounds a request line (a hook's payload is in it).
const maxRequest = 1 << 20

func (s *supervisor) serve(ctx context.Context, ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go s.handle(ctx, conn)
	}
}

// peer is where a session's answers go: the socket's connection, or the
// exec's own stdout the relay handed over.
type peer interface {
	io.Writer
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

func (s *supervisor) handle(ctx context.Context, uc net.Conn) {
	defer uc.Close()
	conn, in, done := s.takeOver(uc)
	defer done()
	br := bufio.NewReaderSize(in, 64<<10)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := readLine(br, maxRequest)
	if err != nil {
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		writeJSONLine(conn, map[string]string{"error": "bad request: " + err.Error()})
		return
	}
	if req.V != ProtocolVersion {
		msg := fmt.Sprintf("this agent's supervisor speaks protocol %d, the client %d: run the same jackin version on the host, or recreate the instance", ProtocolVersion, req.V)
		if req.Op == "attach" {
			_ = WriteFrame(conn, FrameError, []byte(msg))
		} else {
			writeJSONLine(conn, map[string]string{"error": msg})
		}
		return
	}
	switch req.Op {
	case "status":
		writeJSONLine(conn, s.currentStatus())
	case "watch":
		s.watch(ctx, conn, br)
	case "hook":
		rt := s.cfg.Runtime
		if req.Runtime != rt.Name {
			return // a hook of another runtime in the same image: not this agent's
		}
		for _, ev := range rt.Translate(req.Payload) {
			s.emit(ev)
		}
	case "attach":
		s.attach(ctx, conn, br, req)
	case "prompt":
		if err := s.prompt(req.Text); err != nil {
			writeJSONLine(conn, map[string]string{"error": err.Error()})
			return
		}
		writeJSONLine(conn, s.currentStatus())
	case "standby":
		// A client that opened the way ahead of a prompt it types later
		// (the task queue's dispatcher, while the agent works): the next
		// line is that prompt, whenever it comes.
		stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
		defer stop()
		line, err := readLine(br, maxRequest)
		if err != nil {
			return
		}
		var next Request
		if err := json.Unmarshal(line, &next); err != nil || next.Op != "prompt" {
			writeJSONLine(conn, map[string]string{"error": "standby is followed by a prompt request"})
			return
		}
		if err := s.prompt(next.Text); err != nil {
			writeJSONLine(conn, map[string]string{"error": err.Error()})
			return
		}
		writeJSONLine(conn, s.currentStatus())
	default:
		writeJSONLine(conn, map[string]string{"error": "unknown op " + req.Op})
	}
}

// watch sends the status now and at every change, until the client or the
// agent goes.
func (s *supervisor) watch(ctx context.Context, conn peer, br *bufio.Reader) {
	ch := make(chan Status, 16)
	s.mu.Lock()
	s.watchers[ch] = true
	exited := s.exited
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.watchers, ch)
		s.mu.Unlock()
	}()
	if !writeJSONLine(conn, s.currentStatus()) || exited {
		return
	}
	gone := make(chan struct{})
	go func() {
		_, _ = br.ReadByte() // the client closes, or sends anything, to stop
		close(gone)
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-gone:
			return
		case st := <-ch:
			if !writeJSONLine(conn, st) || st.State == string(agentstate.StateExited) {
				return
			}
		}
	}
}

// attach joins a client to the terminal: the recent screen first, then
// the live output; the client's keystrokes go to the agent.
func (s *supervisor) attach(ctx context.Context, conn peer, br *bufio.Reader, req Request) {
	c := &client{out: make(chan []byte, 1024), done: make(chan struct{}), written: make(chan struct{})}
	s.mu.Lock()
	if s.exited || s.ptmx == nil {
		st := s.status
		s.mu.Unlock()
		_ = writeAll(conn, exitFrame(st))
		return
	}
	// The replay and the subscription under one lock: nothing printed in
	// between is lost or shown twice.
	replay := s.screen.Bytes()
	s.clients[c] = true
	ptmx := s.ptmx
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
		c.close()
	}()
	if req.Rows > 0 && req.Cols > 0 {
		_ = pty.Setsize(ptmx, &pty.Winsize{Rows: req.Rows, Cols: req.Cols})
	}
	s.emit(agentstate.Event{Kind: agentstate.EventSeen})
	for len(replay) > 0 {
		n := min(len(replay), maxFrame)
		if WriteFrame(conn, FrameOutput, replay[:n]) != nil {
			return
		}
		replay = replay[n:]
	}

	// Writer: frames to the client until it goes or the agent exits.
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		defer close(c.written)
		for {
			select {
			case f := <-c.out:
				if writeAll(conn, f) != nil {
					c.close()
					return
				}
			case <-c.done:
				// Flush what was queued (the exit frame among it).
				for {
					select {
					case f := <-c.out:
						if writeAll(conn, f) != nil {
							return
						}
					default:
						return
					}
				}
			case <-ctx.Done():
				return
			}
		}
	}()

	// Reader: keystrokes and resizes from the client.
	buf := make([]byte, 32<<10)
	for {
		typ, p, err := ReadFrame(br, buf)
		if err != nil {
			break
		}
		switch typ {
		case FrameInput:
			s.mu.Lock()
			s.lastInput = time.Now()
			if len(s.pendingEcho) < maxPendingEcho {
				s.pendingEcho = append(s.pendingEcho, p[:min(len(p), maxPendingEcho-len(s.pendingEcho))]...)
			}
			if s.terminalLinks {
				s.links.typed()
			}
			s.mu.Unlock()
			if _, err := ptmx.Write(p); err != nil {
				c.close()
			}
		case FrameResize:
			if rows, cols, ok := ParseResize(p); ok && rows > 0 && cols > 0 {
				_ = pty.Setsize(ptmx, &pty.Winsize{Rows: rows, Cols: cols})
			}
		case FrameDetach:
			c.close()
		}
		select {
		case <-c.done:
			<-writerDone
			return
		default:
		}
	}
	c.close()
	<-writerDone
}

func exitFrame(st Status) []byte {
	b, _ := json.Marshal(st)
	f := make([]byte, 5+len(b))
	f[0] = FrameExit
	putLen(f[1:5], len(b))
	copy(f[5:], b)
	return f
}

func writeAll(conn peer, b []byte) error {
	_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := conn.Write(b)
	return err
}

func writeJSONLine(conn peer, v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	return writeAll(conn, append(b, '\n')) == nil
}

// readLine reads one line of at most max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var out []byte
	for {
		chunk, err := br.ReadSlice('\n')
		out = append(out, chunk...)
		if len(out) > max {
			return nil, fmt.Errorf("request longer than %d bytes", max)
		}
		if err == nil {
			return out[:len(out)-1], nil
		}
		if err != bufio.ErrBufferFull {
			return nil, err
		}
	}
}

// FDPassMarker is the byte a relay sends with its stdin and stdout (as
// SCM_RIGHTS): the supervisor then reads and writes the exec's own stdio,
// and no process copies each keystroke in between.
const FDPassMarker = 'F'

// takeOver returns where the session reads and writes: the stdin and
// stdout a relay passed along with FDPassMarker, or the connection itself
// (hook clients, and relays that cannot pass descriptors). done releases
// them; closing the connection then lets the relay exit.
func (s *supervisor) takeOver(c net.Conn) (peer, io.Reader, func()) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return c, c, func() {}
	}
	_ = uc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1)
	oob := make([]byte, syscall.CmsgSpace(2*4))
	n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
	_ = uc.SetReadDeadline(time.Time{})
	if err != nil || n == 0 {
		return c, bytes.NewReader(nil), func() {}
	}
	if buf[0] != FDPassMarker || oobn == 0 {
		return c, io.MultiReader(bytes.NewReader(buf[:n]), c), func() {}
	}
	fds := passedFDs(oob[:oobn])
	if len(fds) != 2 {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		return c, bytes.NewReader(nil), func() {}
	}
	// Non-blocking, so the runtime's poller serves them and deadlines work.
	_ = syscall.SetNonblock(fds[0], true)
	_ = syscall.SetNonblock(fds[1], true)
	in := os.NewFile(uintptr(fds[0]), "relay-stdin")
	out := os.NewFile(uintptr(fds[1]), "relay-stdout")
	return &filePeer{in: in, out: out}, in, func() {
		in.Close()
		out.Close()
	}
}

// filePeer is the exec's stdio: reads from in, writes to out.
type filePeer struct{ in, out *os.File }

func (p *filePeer) Write(b []byte) (int, error)        { return p.out.Write(b) }
func (p *filePeer) SetReadDeadline(t time.Time) error  { return p.in.SetReadDeadline(t) }
func (p *filePeer) SetWriteDeadline(t time.Time) error { return p.out.SetWriteDeadline(t) }

func passedFDs(oob []byte) []int {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if got, err := syscall.ParseUnixRights(&m); err == nil {
			fds = append(fds, got...)
		}
	}
	return fds
}

// maxPrompt bounds a prompt typed for an operator tool.
const maxPrompt = 64 << 10

// prompt types text into the agent's terminal, then Enter, when the agent
// waits for a prompt (idle, or done: a finished turn nobody has looked at);
// otherwise it refuses, naming the state. The check and the typing are
// under one lock, so no client's keystrokes come in between. Text of more
// than one line is sent as a bracketed paste, so its newlines do not
// submit it early.
func (s *supervisor) prompt(text string) error {
	if text == "" {
		return fmt.Errorf("an empty prompt")
	}
	if len(text) > maxPrompt {
		return fmt.Errorf("a prompt of %d bytes is longer than %d", len(text), maxPrompt)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status.State
	if s.exited || s.ptmx == nil {
		return fmt.Errorf("the agent has exited")
	}
	if st != string(agentstate.StateIdle) && st != string(agentstate.StateDone) {
		detail := ""
		if s.status.Detail != "" {
			detail = " (" + s.status.Detail + ")"
		}
		return fmt.Errorf("the agent is %s%s: a prompt is typed only into an idle agent; try again when it is idle (jackin wait --for idle,done)", st, detail)
	}
	b := []byte(text)
	if bytes.ContainsAny(b, "\r\n") {
		b = append(append([]byte("\x1b[200~"), b...), "\x1b[201~"...)
	}
	b = append(b, '\r')
	s.lastInput = time.Now()
	if len(s.pendingEcho) < maxPendingEcho {
		s.pendingEcho = append(s.pendingEcho, b[:min(len(b), maxPendingEcho-len(s.pendingEcho))]...)
	}
	if s.terminalLinks {
		s.links.typed()
	}
	if _, err := s.ptmx.Write(b); err != nil {
		return fmt.Errorf("type into the agent's terminal: %w", err)
	}
	return nil
}
