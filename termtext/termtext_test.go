package termtext

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

var cases = []struct{ name, in, want string }{
	{"plain", "hello\nworld\n", "hello\nworld\n"},
	{"tab kept", "a\tb\n", "a\tb\n"},
	{"unfinished last line", "a\nb", "a\nb"},
	{"crlf", "one\r\ntwo\r\n", "one\ntwo\n"},
	{"sgr colours", "\x1b[1;31mred\x1b[0m plain\n", "red plain\n"},
	{"csi with private params", "\x1b[?25l\x1b[?2004hx\x1b[?25h\n", "x\n"},
	{"csi cursor moves", "a\x1b[2Ab\x1b[10;20Hc\x1b[K\n", "abc\n"},
	{"osc title bel", "\x1b]0;my title\x07text\n", "text\n"},
	{"osc hyperlink st", "\x1b]8;;http://x.example\x1b\\link\x1b]8;;\x1b\\\n", "link\n"},
	{"osc with utf8", "\x1b]2;tïtle ✓\x07ok\n", "ok\n"},
	{"dcs", "\x1bPq#0;2;0;0;0#1!6~\x1b\\after\n", "after\n"},
	{"apc pm sos", "\x1b_apc\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\z\n", "z\n"},
	{"two-byte escapes", "\x1b7a\x1b8\x1bMb\x1b=c\n", "abc\n"},
	{"charset designation", "\x1b(Bx\x1b)0y\n", "xy\n"},
	{"c0 controls dropped", "a\x00b\x07c\x08d\x7fe\x0ef\n", "abcdef\n"},
	{"lone cr overwrites", "progress 10%\rprogress 50%\rprogress 100%\n", "progress 100%\n"},
	{"cr then escape then text", "old text\r\x1b[Knew\n", "new\n"},
	{"cr at end of line kept", "done\r\n", "done\n"},
	{"double cr before lf", "done\r\r\n", "done\n"},
	{"trailing lone cr", "shown\r", "shown"},
	{"cr then only escape", "kept\r\x1b[K\n", "kept\n"},
	{"utf8 passes", "héllo ✓ 世界\n", "héllo ✓ 世界\n"},
	{"can aborts csi", "\x1b[12\x18ok\n", "ok\n"},
	{"esc restarts sequence", "\x1b[1\x1b[2mok\n", "ok\n"},
	{"newline inside csi", "a\x1b[1\nmb\n", "a\nb\n"},
	{"high byte breaks csi", "\x1b[1é\n", "é\n"},
	{"spinner", "⠋ working\r⠙ working\r⠹ working\r\x1b[2K✓ done\n", "✓ done\n"},
	{"unterminated osc eats to end", "\x1b]0;never ends", ""},
}

func TestString(t *testing.T) {
	for _, c := range cases {
		if got := String(c.in); got != c.want {
			t.Errorf("%s: String(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}

// Every case gives the same text however its input is split into writes:
// at every single point, and byte by byte.
func TestSplitWrites(t *testing.T) {
	for _, c := range cases {
		in := []byte(c.in)
		for cut := 0; cut <= len(in); cut++ {
			var b bytes.Buffer
			w := Strip(&b)
			mustWrite(t, w, in[:cut])
			mustWrite(t, w, in[cut:])
			_ = w.Close()
			if b.String() != c.want {
				t.Errorf("%s: split at %d: got %q, want %q", c.name, cut, b.String(), c.want)
			}
		}
		var b bytes.Buffer
		w := Strip(&b)
		for i := range in {
			mustWrite(t, w, in[i:i+1])
		}
		_ = w.Close()
		if b.String() != c.want {
			t.Errorf("%s: byte by byte: got %q, want %q", c.name, b.String(), c.want)
		}
	}
}

func mustWrite(t *testing.T, w *Writer, p []byte) {
	t.Helper()
	n, err := w.Write(p)
	if err != nil || n != len(p) {
		t.Fatalf("Write(%q) = %d, %v", p, n, err)
	}
}

// Lines are written as soon as they end; an unfinished one waits.
func TestStreamsCompleteLines(t *testing.T) {
	var b bytes.Buffer
	w := Strip(&b)
	mustWrite(t, w, []byte("first\nsec"))
	if b.String() != "first\n" {
		t.Fatalf("after the first line: %q", b.String())
	}
	mustWrite(t, w, []byte("ond\r\n"))
	if b.String() != "first\nsecond\n" {
		t.Fatalf("after the second line: %q", b.String())
	}
}

// Flush writes an unfinished line; a later overwrite starts a new line
// rather than appending to what was already written.
func TestFlush(t *testing.T) {
	var b bytes.Buffer
	w := Strip(&b)
	mustWrite(t, w, []byte("$ prompt"))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if b.String() != "$ prompt" {
		t.Fatalf("after Flush: %q", b.String())
	}
	mustWrite(t, w, []byte(" more\n"))
	mustWrite(t, w, []byte("10%"))
	_ = w.Flush()
	mustWrite(t, w, []byte("\r100%\n"))
	if want := "$ prompt more\n10%\n100%\n"; b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
}

// A line that never ends is written out once it is MaxLine long.
func TestLongLineIsBounded(t *testing.T) {
	var b bytes.Buffer
	w := Strip(&b)
	chunk := bytes.Repeat([]byte("x"), 4096)
	for b.Len() == 0 {
		mustWrite(t, w, chunk)
		if len(w.line) > MaxLine+len(chunk) {
			t.Fatalf("line grew to %d bytes without being written", len(w.line))
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("boom") }

func TestDestinationError(t *testing.T) {
	w := Strip(failWriter{})
	if _, err := w.Write([]byte("a\n")); err == nil {
		t.Fatal("want the destination's error")
	}
	if _, err := w.Write([]byte("b\n")); err == nil {
		t.Fatal("want the error again")
	}
}

// Random input, with escape-heavy bytes, never panics, never yields a
// control character other than newline and tab, and gives the same result
// whatever the write boundaries.
func TestRandomInput(t *testing.T) {
	alphabet := []byte("ab \t\n\r\x1b\x1b[];P\\_^X\x07\x18\x1a?0123456789mHK\x00\x7f\x9b\xc3\xa9(")
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 3000; iter++ {
		in := make([]byte, rng.IntN(200))
		for i := range in {
			if rng.IntN(8) == 0 {
				in[i] = byte(rng.IntN(256))
			} else {
				in[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		whole := String(string(in))
		for _, r := range []byte(whole) {
			if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f {
				t.Fatalf("output of %q holds control byte %#x: %q", in, r, whole)
			}
		}
		var b bytes.Buffer
		w := Strip(&b)
		for rest := in; len(rest) > 0; {
			n := 1 + rng.IntN(len(rest))
			mustWrite(t, w, rest[:n])
			rest = rest[n:]
		}
		_ = w.Close()
		if b.String() != whole {
			t.Fatalf("input %q: split writes gave %q, one write %q", in, b.String(), whole)
		}
	}
}

func FuzzStrip(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c.in), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		whole := String(string(in))
		if strings.ContainsAny(whole, "\x1b\r\x00\x07") {
			t.Fatalf("output of %q holds a control character: %q", in, whole)
		}
		c := int(cut) % (len(in) + 1)
		var b bytes.Buffer
		w := Strip(&b)
		_, _ = w.Write(in[:c])
		_, _ = w.Write(in[c:])
		_ = w.Close()
		if b.String() != whole {
			t.Fatalf("split at %d of %q: %q, want %q", c, in, b.String(), whole)
		}
	})
}

func BenchmarkStrip(b *testing.B) {
	chunk := []byte(strings.Repeat("\x1b[32m✓\x1b[0m compiled package foo/bar in 1.2s\r\n\x1b]0;title\x07⠋ working\r", 50))
	w := Strip(discard{})
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = w.Write(chunk)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
