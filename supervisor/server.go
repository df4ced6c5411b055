package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
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

func (s *supervisor) handle(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReaderSize(conn, 64<<10)
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
	default:
		writeJSONLine(conn, map[string]string{"error": "unknown op " + req.Op})
	}
}

// watch sends the status now and at every change, until the client or the
// agent goes.
func (s *supervisor) watch(ctx context.Context, conn net.Conn, br *bufio.Reader) {
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
func (s *supervisor) attach(ctx context.Context, conn net.Conn, br *bufio.Reader, req Request) {
	c := &client{out: make(chan []byte, 1024), done: make(chan struct{})}
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

func writeAll(conn net.Conn, b []byte) error {
	_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := conn.Write(b)
	return err
}

func writeJSONLine(conn net.Conn, v any) bool {
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
