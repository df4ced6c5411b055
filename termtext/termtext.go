// Package termtext turns raw terminal output into plain text as a stream:
// escape sequences and control characters go, and a line rewritten in
// place (a progress bar, a spinner) keeps only what the terminal last
// showed of it.
package termtext

import (
	"bytes"
	"io"
	"sync"
)

// MaxLine is how much of an unfinished line Writer holds before it writes
// it out anyway (as Flush does).
const MaxLine = 64 << 10

// Writer strips terminal output written to it and writes the plain text
// to its destination, a line at a time: a line is held until its newline
// (or Flush, or Close), since a carriage return may still replace it.
// Sequences may be split across writes. It is safe for concurrent use
// (Flush from a timer while another goroutine writes).
//
// What it removes: CSI sequences (ESC [ ... final byte), OSC strings (ESC ]
// ... BEL or ESC \), DCS, SOS, PM and APC strings (up to ESC \), other
// escape sequences (ESC, optional intermediates, final byte), and every C0
// control character and DEL except newline and tab. "\r\n" becomes "\n";
// a lone "\r" followed by more text on the same line means the line was
// overwritten, and only what follows the last one is kept. Bytes from 0x80
// up (UTF-8) pass through unchanged.
type Writer struct {
	mu    sync.Mutex
	dst   io.Writer
	state state
	// line is the current line's text since the last lone CR.
	line []byte
	// cr: a CR was seen; text that follows it (before a newline) replaces
	// the line.
	cr bool
	// partial: part of the current line was already written out (Flush),
	// so a replacement starts a new output line instead.
	partial bool
	out     []byte // reused output buffer
	err     error  // the destination's first error
}

type state uint8

const (
	ground    state = iota
	esc             // after ESC
	escInter        // ESC and intermediate bytes (0x20-0x2f)
	csi             // ESC [ parameters and intermediates
	str             // OSC: until BEL or ST
	strEsc          // ESC inside an OSC
	ctlStr          // DCS, SOS, PM, APC: until ST
	ctlStrEsc       // ESC inside one of those
)

// Strip returns a Writer that writes the plain text of what is written to
// it to dst. Close it to write the last, unfinished line.
func Strip(dst io.Writer) *Writer { return &Writer{dst: dst} }

// String is the plain text of s (its last line included).
func String(s string) string {
	var b bytes.Buffer
	w := Strip(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

// Write strips p and writes every line it completes. It returns len(p)
// unless the destination failed.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	w.out = w.out[:0]
	for i := 0; i < len(p); i++ {
		b := p[i]
		switch w.state {
		case ground:
			// Fast path: a run of printable bytes.
			if b >= 0x20 && b != 0x7f {
				j := i + 1
				for j < len(p) && p[j] >= 0x20 && p[j] != 0x7f {
					j++
				}
				w.text(p[i:j])
				i = j - 1
				continue
			}
			w.control(b)
		case esc:
			w.escape(b)
		case escInter:
			switch {
			case b >= 0x20 && b <= 0x2f:
			case b >= 0x30 && b <= 0x7e:
				w.state = ground
			default:
				w.inSequence(b)
			}
		case csi:
			switch {
			case b >= 0x20 && b <= 0x3f: // parameters, intermediates
			case b >= 0x40 && b <= 0x7e: // final byte
				w.state = ground
			case b >= 0x80:
				// Not part of any CSI: the sequence was broken off; the
				// byte is text.
				w.state = ground
				i--
			default:
				w.inSequence(b)
			}
		case str:
			switch b {
			case 0x07:
				w.state = ground
			case 0x1b:
				w.state = strEsc
			case 0x18, 0x1a:
				w.state = ground
			}
		case ctlStr:
			switch b {
			case 0x1b:
				w.state = ctlStrEsc
			case 0x18, 0x1a:
				w.state = ground
			}
		case strEsc, ctlStrEsc:
			// ESC ends the string (ST is ESC \); anything else after
			// it starts a new escape sequence.
			if b == '\\' {
				w.state = ground
			} else {
				w.state = esc
				w.escape(b)
			}
		}
	}
	if len(w.line) > MaxLine {
		w.flushLine()
	}
	if err := w.emit(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// escape handles the byte after ESC.
func (w *Writer) escape(b byte) {
	switch {
	case b == '[':
		w.state = csi
	case b == ']':
		w.state = str
	case b == 'P' || b == 'X' || b == '^' || b == '_':
		w.state = ctlStr
	case b >= 0x20 && b <= 0x2f:
		w.state = escInter
	case b >= 0x30 && b <= 0x7e:
		w.state = ground
	case b == 0x1b: // ESC ESC: the first is abandoned
	default:
		w.inSequence(b)
	}
}

// inSequence handles a C0 control (or DEL, or a byte from 0x80) inside an
// escape sequence: CAN and SUB cancel it, ESC starts a new one, a newline
// or CR acts as on a terminal, and a byte from 0x80 breaks it off and is
// text.
func (w *Writer) inSequence(b byte) {
	switch {
	case b == 0x18 || b == 0x1a:
		w.state = ground
	case b == 0x1b:
		w.state = esc
	case b == '\n':
		w.newline()
	case b == '\r':
		w.cr = true
	case b >= 0x80:
		w.state = ground
		w.text([]byte{b})
	}
}

// control handles a control byte in text.
func (w *Writer) control(b byte) {
	switch b {
	case 0x1b:
		w.state = esc
	case '\n':
		w.newline()
	case '\r':
		w.cr = true
	case '\t':
		w.text([]byte{'\t'})
	}
}

// text adds printable bytes to the current line; after a lone CR they
// replace it.
func (w *Writer) text(t []byte) {
	if w.cr {
		w.cr = false
		w.line = w.line[:0]
		if w.partial {
			// What was shown is out already: the new text is a new line.
			w.out = append(w.out, '\n')
			w.partial = false
		}
	}
	w.line = append(w.line, t...)
}

func (w *Writer) newline() {
	w.out = append(w.out, w.line...)
	w.out = append(w.out, '\n')
	w.line = w.line[:0]
	w.cr, w.partial = false, false
}

// flushLine moves the unfinished line to the output.
func (w *Writer) flushLine() {
	if len(w.line) == 0 {
		return
	}
	w.out = append(w.out, w.line...)
	w.line = w.line[:0]
	w.partial = true
}

func (w *Writer) emit() error {
	if len(w.out) == 0 {
		return nil
	}
	_, err := w.dst.Write(w.out)
	w.out = w.out[:0]
	if err != nil {
		w.err = err
	}
	return err
}

// Flush writes the unfinished line as it stands. If the terminal later
// overwrites that line, the new text starts a new line of output.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.flushLine()
	return w.emit()
}

// Close writes the unfinished line (without adding a newline). It does not
// close the destination.
func (w *Writer) Close() error {
	return w.Flush()
}
