package supervisor

import (
	"bytes"
	"fmt"
	"strings"
)

// DefaultDetachKeys is the sequence that detaches an attached terminal, as
// docker's default.
const DefaultDetachKeys = "ctrl-p,ctrl-q"

// ParseDetachKeys reads a detach sequence in docker's --detach-keys format:
// comma-separated keys, each a single character or ctrl-<key> (a-z, @, [,
// \, ], ^, _). It returns the bytes a terminal sends for them.
func ParseDetachKeys(spec string) ([]byte, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, fmt.Errorf("empty detach keys: give keys like %q", DefaultDetachKeys)
	}
	var out []byte
	for _, k := range strings.Split(spec, ",") {
		k = strings.TrimSpace(k)
		switch {
		case len(k) == 1:
			out = append(out, k[0])
		case strings.HasPrefix(k, "ctrl-") && len(k) == len("ctrl-")+1:
			c := k[len("ctrl-")]
			switch {
			case c >= 'a' && c <= 'z':
				out = append(out, c-'a'+1)
			case c == '@' || c == '[' || c == '\\' || c == ']' || c == '^' || c == '_':
				out = append(out, c-'@')
			default:
				return nil, fmt.Errorf("detach key %q: ctrl- takes a-z, @, [, \\, ], ^ or _", k)
			}
		default:
			return nil, fmt.Errorf("detach key %q: give one character or ctrl-<key>, comma-separated (like %q)", k, DefaultDetachKeys)
		}
	}
	return out, nil
}

// Screen keeps the last lines an agent printed, so a client that attaches
// later sees where the agent is. It is not safe for concurrent use.
type Screen struct {
	max   int
	lines []string
	next  int  // where the next full line goes, once the ring is full
	full  bool // the ring has wrapped
	cur   []byte
}

// NewScreen keeps at most max lines (at least 1).
func NewScreen(max int) *Screen {
	if max < 1 {
		max = 1
	}
	return &Screen{max: max}
}

// maxLine bounds the line being written: a full-screen program may draw
// for long without a newline; past this, the line is kept as one.
const maxLine = 64 << 10

// Write takes terminal output, escape sequences and all; complete lines
// enter the ring.
func (s *Screen) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.cur = append(s.cur, p...)
			if len(s.cur) > maxLine {
				s.push(string(s.cur))
				s.cur = s.cur[:0]
			}
			break
		}
		s.cur = append(s.cur, p[:i]...)
		s.push(string(s.cur))
		s.cur = s.cur[:0]
		p = p[i+1:]
	}
	return n, nil
}

// Bytes is the kept output as the terminal received it: the lines, then
// the line being written. Replayed to a terminal it redraws where the
// agent is.
func (s *Screen) Bytes() []byte {
	lines := s.Lines()
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	out := make([]byte, 0, n)
	for i, l := range lines {
		out = append(out, l...)
		if i < len(lines)-1 || !s.partial() {
			out = append(out, '\n')
		}
	}
	return out
}

func (s *Screen) partial() bool { return len(s.cur) > 0 }

func (s *Screen) push(line string) {
	if !s.full {
		s.lines = append(s.lines, line)
		if len(s.lines) == s.max {
			s.full = true
		}
		return
	}
	s.lines[s.next] = line
	s.next = (s.next + 1) % s.max
}

// Lines are the kept lines, oldest first, and the line being written.
func (s *Screen) Lines() []string {
	out := make([]string, 0, len(s.lines)+1)
	if s.full {
		out = append(out, s.lines[s.next:]...)
		out = append(out, s.lines[:s.next]...)
	} else {
		out = append(out, s.lines...)
	}
	if len(s.cur) > 0 {
		out = append(out, string(s.cur))
	}
	return out
}
