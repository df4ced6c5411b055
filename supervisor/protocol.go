package supervisor

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// The supervisor's socket: an abstract Unix socket, so it exists only in
// the agent container's network namespace. Nothing on the host can reach
// it but through the backend's exec (docker exec), which runs the relay
// (jackin agent-relay) in the container.
const SocketName = "@jackin-supervisor"

// Paths inside the agent container.
const (
	// BinDir holds the jackin binary, mounted read-only.
	BinDir = "/run/jackin/bin"
	// Binary is the supervisor, the hook command and the relay.
	Binary = BinDir + "/jackin"
	// AgentDir is the instance's agent directory, a host directory
	// mounted read-write: the supervisor publishes its state there.
	AgentDir = "/run/jackin/agent"
	// HomeStore is the runtime-home volume: the runtime's home paths are
	// links into it, so they survive recreates.
	HomeStore = "/run/jackin/home"
	// HomeKept is the directory in that volume the homes are kept in,
	// writable by any user: uploaded when the container is created for an
	// agent that is not root (a new volume's root is root's), made by the
	// supervisor itself when it runs as root.
	HomeKept = HomeStore + "/kept"
)

// ProtocolVersion is sent with every request; a supervisor refuses a
// version it does not speak, with a message saying so.
const ProtocolVersion = 1

// Request is the first line a client sends, as JSON.
type Request struct {
	V  int    `json:"v"`
	Op string `json:"op"` // attach, status, watch, hook, prompt, standby (a prompt on the next line)
	// Attach: the client's terminal size (0: keep the current one).
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
	// Hook: the runtime that reports and what it reported.
	Runtime string          `json:"runtime,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
	// Prompt: the text typed into the agent's terminal.
	Text string `json:"text,omitempty"`
}

// Status is what status and watch answer: the agent's state.
type Status struct {
	V       int       `json:"v"`
	Runtime string    `json:"runtime"`
	State   string    `json:"state"`
	Since   time.Time `json:"since"`
	Detail  string    `json:"detail,omitempty"`
	// ExitStatus is the runtime's exit status when State is exited.
	ExitStatus int `json:"exitStatus,omitempty"`
	// Source is how state is learned (hooks, notify, server, terminal).
	Source string `json:"source"`
	// Clients is how many attach clients are connected.
	Clients int `json:"clients"`
	// Warnings are the supervisor's own problems (a settings file it
	// could not read), secret-free.
	Warnings []string `json:"warnings,omitempty"`
	// Seq counts state changes since the supervisor started; Boot tells
	// one supervisor run from the next.
	Seq  int64  `json:"seq"`
	Boot string `json:"boot"`
	// Updated is when the supervisor last wrote this.
	Updated time.Time `json:"updated"`
}

// Frame types of an attach session.
const (
	FrameOutput = 'o' // server → client: terminal output
	FrameExit   = 'x' // server → client: the agent exited (payload: Status JSON)
	FrameError  = 'e' // server → client: a message, then the session ends
	FrameInput  = 'i' // client → server: keystrokes
	FrameResize = 'r' // client → server: rows, cols (uint16 each, big-endian)
	FrameDetach = 'd' // client → server: the client leaves
)

// maxFrame bounds one frame's payload.
const maxFrame = 1 << 20

// WriteFrame writes one frame: type, payload length (uint32, big-endian),
// payload.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > maxFrame {
		return fmt.Errorf("frame of %d bytes is larger than %d", len(payload), maxFrame)
	}
	buf := make([]byte, 5+len(payload))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:5], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one frame; buf is reused when it is large enough.
func ReadFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:5])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes is larger than %d", n, maxFrame)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], buf, nil
}

// ResizePayload encodes a terminal size.
func ResizePayload(rows, cols uint16) []byte {
	var b [4]byte
	binary.BigEndian.PutUint16(b[0:2], rows)
	binary.BigEndian.PutUint16(b[2:4], cols)
	return b[:]
}

// ParseResize decodes a terminal size.
func ParseResize(p []byte) (rows, cols uint16, ok bool) {
	if len(p) != 4 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(p[0:2]), binary.BigEndian.Uint16(p[2:4]), true
}
