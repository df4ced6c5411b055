package main

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// parseTOML is the small part of TOML the Codex stand-in needs: key =
// value pairs, [table] headers (keys become "table.key"), strings (basic,
// literal, and their multi-line forms), booleans, arrays (over several
// lines, with comments and trailing commas). Numbers, dates and inline
// tables are kept as their raw text; [[array tables]] are skipped.
func parseTOML(src string) (map[string]any, error) {
	p := &tomlParser{s: src}
	return p.parse()
}

type tomlParser struct {
	s   string
	i   int
	out map[string]any
}

func (p *tomlParser) errf(format string, a ...any) error {
	line := 1 + strings.Count(p.s[:p.i], "\n")
	return fmt.Errorf("toml line %d: %s", line, fmt.Sprintf(format, a...))
}

func (p *tomlParser) eof() bool { return p.i >= len(p.s) }
func (p *tomlParser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.s[p.i]
}

// skip skips blanks, and with newlines also line ends and comments.
func (p *tomlParser) skip(newlines bool) {
	for !p.eof() {
		switch c := p.s[p.i]; {
		case c == ' ' || c == '\t':
			p.i++
		case c == '#':
			for !p.eof() && p.s[p.i] != '\n' {
				p.i++
			}
		case newlines && (c == '\n' || c == '\r'):
			p.i++
		default:
			return
		}
	}
}

func (p *tomlParser) parse() (map[string]any, error) {
	p.out = map[string]any{}
	table := ""
	skipping := false
	for {
		p.skip(true)
		if p.eof() {
			return p.out, nil
		}
		if p.peek() == '[' {
			end := strings.IndexByte(p.s[p.i:], '\n')
			if end < 0 {
				end = len(p.s) - p.i
			}
			header := strings.TrimSpace(p.s[p.i : p.i+end])
			if k := strings.IndexByte(header, '#'); k >= 0 && !strings.ContainsAny(header[:k], `"'`) {
				header = strings.TrimSpace(header[:k])
			}
			p.i += end
			if strings.HasPrefix(header, "[[") {
				skipping = true
				continue
			}
			if !strings.HasSuffix(header, "]") {
				return nil, p.errf("bad table header %q", header)
			}
			skipping = false
			table = normaliseKey(strings.TrimSpace(header[1 : len(header)-1]))
			continue
		}
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		p.skip(false)
		if p.peek() != '=' {
			return nil, p.errf("expected = after %q", key)
		}
		p.i++
		p.skip(false)
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		p.skip(false)
		if !p.eof() && p.peek() != '\n' && p.peek() != '\r' {
			return nil, p.errf("unexpected text after value of %q", key)
		}
		if skipping {
			continue
		}
		if table != "" {
			key = table + "." + key
		}
		p.out[key] = v
	}
}

// key reads a bare, quoted or dotted key.
func (p *tomlParser) key() (string, error) {
	var parts []string
	for {
		p.skip(false)
		switch c := p.peek(); {
		case c == '"' || c == '\'':
			s, err := p.str()
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		default:
			start := p.i
			for !p.eof() && isBare(p.s[p.i]) {
				p.i++
			}
			if p.i == start {
				return "", p.errf("expected a key")
			}
			parts = append(parts, p.s[start:p.i])
		}
		p.skip(false)
		if p.peek() != '.' {
			return strings.Join(parts, "."), nil
		}
		p.i++
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// normaliseKey turns a header like `a . "b"` into "a.b".
func normaliseKey(h string) string {
	q := &tomlParser{s: h}
	if k, err := q.key(); err == nil {
		return k
	}
	return h
}

func (p *tomlParser) value() (any, error) {
	switch c := p.peek(); {
	case c == '"' || c == '\'':
		return p.str()
	case c == '[':
		return p.array()
	case c == '{':
		return p.inlineTable()
	default:
		start := p.i
		for !p.eof() && !strings.ContainsRune(",]}# \t\n\r", rune(p.s[p.i])) {
			p.i++
		}
		raw := p.s[start:p.i]
		switch raw {
		case "true":
			return true, nil
		case "false":
			return false, nil
		case "":
			return nil, p.errf("missing value")
		}
		return tomlRaw(raw), nil
	}
}

// tomlRaw is a value kept as its text: a number or a date.
type tomlRaw string

func (p *tomlParser) array() ([]any, error) {
	p.i++ // [
	var out []any
	for {
		p.skip(true)
		if p.peek() == ']' {
			p.i++
			return out, nil
		}
		if p.eof() {
			return nil, p.errf("unterminated array")
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.skip(true)
		switch p.peek() {
		case ',':
			p.i++
		case ']':
		default:
			return nil, p.errf("expected , or ] in array")
		}
	}
}

// inlineTable is skipped over (kept as its raw text).
func (p *tomlParser) inlineTable() (tomlRaw, error) {
	start, depth := p.i, 0
	for !p.eof() {
		switch c := p.s[p.i]; c {
		case '"', '\'':
			if _, err := p.str(); err != nil {
				return "", err
			}
			continue
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				p.i++
				return tomlRaw(p.s[start:p.i]), nil
			}
		}
		p.i++
	}
	return "", p.errf("unterminated inline table")
}

func (p *tomlParser) str() (string, error) {
	q := p.s[p.i]
	multi := strings.HasPrefix(p.s[p.i:], strings.Repeat(string(q), 3))
	if multi {
		p.i += 3
		// A newline right after the opening delimiter is trimmed.
		if strings.HasPrefix(p.s[p.i:], "\r\n") {
			p.i += 2
		} else if p.peek() == '\n' {
			p.i++
		}
	} else {
		p.i++
	}
	var b strings.Builder
	for {
		if p.eof() {
			return "", p.errf("unterminated string")
		}
		if multi && strings.HasPrefix(p.s[p.i:], strings.Repeat(string(q), 3)) {
			p.i += 3
			return b.String(), nil
		}
		c := p.s[p.i]
		if !multi && c == q {
			p.i++
			return b.String(), nil
		}
		if !multi && c == '\n' {
			return "", p.errf("newline in string")
		}
		if q == '"' && c == '\\' {
			p.i++
			if p.eof() {
				return "", p.errf("unterminated escape")
			}
			e := p.s[p.i]
			p.i++
			switch e {
			case 'b':
				b.WriteByte('\b')
			case 't':
				b.WriteByte('\t')
			case 'n':
				b.WriteByte('\n')
			case 'f':
				b.WriteByte('\f')
			case 'r':
				b.WriteByte('\r')
			case 'e':
				b.WriteByte(0x1b)
			case '"', '\\':
				b.WriteByte(e)
			case 'u', 'U':
				n := 4
				if e == 'U' {
					n = 8
				}
				if p.i+n > len(p.s) {
					return "", p.errf("short unicode escape")
				}
				r, err := strconv.ParseUint(p.s[p.i:p.i+n], 16, 32)
				if err != nil || !utf8.ValidRune(rune(r)) {
					return "", p.errf("bad unicode escape")
				}
				b.WriteRune(rune(r))
				p.i += n
			case '\n', ' ', '\t', '\r':
				if !multi {
					return "", p.errf("bad escape")
				}
				// Line-ending backslash: trim following whitespace.
				for !p.eof() && strings.ContainsRune(" \t\r\n", rune(p.s[p.i])) {
					p.i++
				}
			default:
				return "", p.errf("bad escape \\%c", e)
			}
			continue
		}
		b.WriteByte(c)
		p.i++
	}
}

// notifyArgv is Codex's top-level notify = ["prog", "arg", ...] (nil when
// unset or not an array of strings).
func notifyArgv(cfg map[string]any) []string {
	arr, ok := cfg["notify"].([]any)
	if !ok || len(arr) == 0 {
		return nil
	}
	argv := make([]string, 0, len(arr))
	for _, v := range arr {
		s, ok := v.(string)
		if !ok {
			return nil
		}
		argv = append(argv, s)
	}
	return argv
}
