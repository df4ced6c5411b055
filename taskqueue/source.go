package taskqueue

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Source yields tasks. Scan may answer tasks and an error at once: the
// tasks it could read and an account of what it skipped (a bad file, a bad
// line); the caller records the tasks (store.SyncTasks) and reports the
// error, so one bad entry never hides the others. A task's ID is
// "NAME:KEY", unique in the fleet as long as source names are.
type Source interface {
	Name() string
	Scan(ctx context.Context) ([]Task, error)
}

// Bounds on what a source yields: its input is written by others (a
// tracker, an issue's author) and becomes a prompt typed into an agent.
const (
	MaxTitle    = 200      // bytes of a title; longer ones are cut
	MaxPrompt   = 64 << 10 // bytes of a prompt; a longer one is an error
	MaxLabels   = 20       // labels of a task; more are an error
	maxTaskFile = 1 << 20  // bytes of a task file
	maxKey      = 200      // bytes of a task's key
)

// CutTitle makes a title one line of at most MaxTitle bytes (and "...").
func CutTitle(s string) string {
	s = strings.Join(strings.Fields(dropControls(s)), " ")
	if len(s) <= MaxTitle {
		return s
	}
	s = s[:MaxTitle]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// hasControl reports whether s has a control character (C0, DEL, C1): an
// ID, a label or a title is shown on terminals, where one could be an
// escape sequence.
func hasControl(s string) bool { return strings.IndexFunc(s, unicode.IsControl) >= 0 }

// dropControls removes control characters but line breaks and tabs.
func dropControls(s string) string {
	return strings.Map(func(r rune) rune {
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

// CheckTask refuses a task no agent should get: an empty or oversized
// prompt, a bad key (the part of the ID after "NAME:"), too many or bad
// labels. Every source checks its tasks with it.
func CheckTask(key, prompt string, labels []string) error {
	switch {
	case key == "" || len(key) > maxKey || hasControl(key) || !utf8.ValidString(key):
		return fmt.Errorf("id %q: empty, longer than %d bytes, not UTF-8 or with a control character", key, maxKey)
	case strings.TrimSpace(prompt) == "":
		return errors.New("the prompt is empty")
	case len(prompt) > MaxPrompt:
		return fmt.Errorf("the prompt has %d bytes, more than %d", len(prompt), MaxPrompt)
	case !utf8.ValidString(prompt):
		return errors.New("the prompt is not UTF-8")
	case len(labels) > MaxLabels:
		return fmt.Errorf("%d labels, more than %d", len(labels), MaxLabels)
	}
	for _, l := range labels {
		if l == "" || len(l) > 100 || strings.Contains(l, ",") || hasControl(l) || !utf8.ValidString(l) {
			return fmt.Errorf("label %q: empty, too long, or with a comma or a control character", l)
		}
	}
	return nil
}

// NewDirSource is a source of the Markdown task files (*.md) in dir: the
// file's stem is the task's key, its body the prompt, and an optional
// front matter between two "---" lines sets title (default: the stem),
// priority (an integer, default 0) and labels ([a, b] or a, b):
//
//	---
//	title: Fix the login redirect
//	priority: 5
//	labels: [bug, web]
//	---
//	The login page sends users to /home after ...
//
// A file that cannot be read or is malformed is skipped and named in the
// error with its line; the other files still load.
func NewDirSource(name, dir string) Source { return &dirSource{name: name, dir: dir} }

type dirSource struct{ name, dir string }

func (s *dirSource) Name() string { return s.name }

func (s *dirSource) Scan(ctx context.Context) ([]Task, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("source %s: read the task directory: %w", s.name, err)
	}
	var out []Task
	var errs []error
	for _, ent := range ents {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		fn := ent.Name()
		if strings.HasPrefix(fn, ".") || !strings.HasSuffix(fn, ".md") || ent.IsDir() {
			continue
		}
		path := filepath.Join(s.dir, fn)
		t, err := readTaskFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("source %s: %w", s.name, err))
			continue
		}
		t.ID, t.Source = s.name+":"+t.ID, s.name
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}

// readTaskFile reads one task file; its errors name the file and line.
func readTaskFile(path string) (Task, error) {
	f, err := os.Open(path)
	if err != nil {
		return Task{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Task{}, err
	}
	if !st.Mode().IsRegular() {
		return Task{}, fmt.Errorf("%s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTaskFile+1))
	if err != nil {
		return Task{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxTaskFile {
		return Task{}, fmt.Errorf("%s: larger than %d bytes", path, maxTaskFile)
	}
	if !utf8.Valid(data) {
		return Task{}, fmt.Errorf("%s: not UTF-8 text", path)
	}
	stem := strings.TrimSuffix(filepath.Base(path), ".md")
	t := Task{ID: stem, Title: stem}
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	lines := strings.Split(text, "\n")
	body := text
	if len(lines) > 0 && strings.TrimSpace(lines[0]) == "---" {
		end := -1
		for i := 1; i < len(lines); i++ {
			if strings.TrimSpace(lines[i]) == "---" {
				end = i
				break
			}
		}
		if end < 0 {
			return Task{}, fmt.Errorf("%s:1: the front matter has no closing --- line", path)
		}
		seen := map[string]bool{}
		for i := 1; i < end; i++ {
			line := strings.TrimSpace(lines[i])
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			key, val, ok := strings.Cut(line, ":")
			key, val = strings.TrimSpace(key), strings.TrimSpace(val)
			if !ok {
				return Task{}, fmt.Errorf("%s:%d: want key: value, got %q", path, i+1, line)
			}
			if seen[key] {
				return Task{}, fmt.Errorf("%s:%d: %s is set twice", path, i+1, key)
			}
			seen[key] = true
			switch key {
			case "title":
				if v := unquote(val); v != "" {
					t.Title = v
				}
			case "priority":
				p, err := strconv.Atoi(unquote(val))
				if err != nil {
					return Task{}, fmt.Errorf("%s:%d: priority %q: not an integer", path, i+1, val)
				}
				t.Priority = p
			case "labels":
				v := strings.TrimSpace(val)
				if strings.HasPrefix(v, "[") != strings.HasSuffix(v, "]") {
					return Task{}, fmt.Errorf("%s:%d: labels %q: an unclosed list", path, i+1, val)
				}
				v = strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
				for _, l := range strings.Split(v, ",") {
					if l = unquote(strings.TrimSpace(l)); l != "" {
						t.Labels = append(t.Labels, l)
					}
				}
			default:
				return Task{}, fmt.Errorf("%s:%d: unknown field %q (want title, priority or labels)", path, i+1, key)
			}
		}
		body = strings.Join(lines[end+1:], "\n")
	}
	t.Title = CutTitle(t.Title)
	t.Prompt = strings.TrimSpace(body)
	if err := CheckTask(stem, t.Prompt, t.Labels); err != nil {
		return Task{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// unquote strips one pair of matching quotes.
func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// DefaultCommandTimeout bounds one run of a command source.
const DefaultCommandTimeout = time.Minute

// maxCommandOutput bounds what a command source may print.
const maxCommandOutput = 16 << 20

// NewCommandSource is a source that runs argv (no shell) in dir ("" : the
// current directory) with DefaultCommandTimeout and reads one task a line
// of its standard output, as JSON:
//
//	{"id": "PROJ-12", "title": "Fix the login redirect", "prompt": "...", "priority": 5, "labels": ["bug"]}
//
// id and prompt are required; title defaults to the id. A malformed line
// is skipped and named in the error by its number; a run that fails (exit
// status, timeout) yields no tasks and an error with its stderr's tail.
func NewCommandSource(name string, argv []string, dir string) Source {
	return &CommandSource{name: name, argv: argv, dir: dir, Timeout: DefaultCommandTimeout}
}

// CommandSource is NewCommandSource's source; Timeout may be changed.
type CommandSource struct {
	name    string
	argv    []string
	dir     string
	Timeout time.Duration
}

func (s *CommandSource) Name() string { return s.name }

// commandTask is one line of a command source's output.
type commandTask struct {
	ID       string   `json:"id"`
	Title    string   `json:"title"`
	Prompt   string   `json:"prompt"`
	Priority *int     `json:"priority"`
	Labels   []string `json:"labels"`
}

func (s *CommandSource) Scan(ctx context.Context) ([]Task, error) {
	if len(s.argv) == 0 || s.argv[0] == "" {
		return nil, fmt.Errorf("source %s: no command", s.name)
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.argv[0], s.argv[1:]...)
	cmd.Dir = s.dir
	cmd.WaitDelay = 2 * time.Second // a child holding the pipes open does not hang the scan
	var stdout limitedBuffer
	stdout.max = maxCommandOutput
	stderr := tailBuffer{max: 2048}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	what := fmt.Sprintf("source %s: command %s", s.name, s.argv[0])
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return nil, fmt.Errorf("%s: did not finish within %s%s", what, timeout, stderr.suffix())
	case err != nil:
		return nil, fmt.Errorf("%s: %w%s", what, err, stderr.suffix())
	case stdout.over:
		return nil, fmt.Errorf("%s: printed more than %d bytes", what, maxCommandOutput)
	}
	var out []Task
	var errs []error
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(stdout.Bytes()))
	sc.Buffer(make([]byte, 64<<10), MaxPrompt*2+4096)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ct commandTask
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ct); err != nil {
			errs = append(errs, fmt.Errorf("%s: output line %d: %w", what, n, err))
			continue
		}
		if dec.More() {
			errs = append(errs, fmt.Errorf("%s: output line %d: more than one JSON value", what, n))
			continue
		}
		if err := CheckTask(ct.ID, ct.Prompt, ct.Labels); err != nil {
			errs = append(errs, fmt.Errorf("%s: output line %d: %w", what, n, err))
			continue
		}
		if first, dup := seen[ct.ID]; dup {
			errs = append(errs, fmt.Errorf("%s: output line %d: id %q is already on line %d", what, n, ct.ID, first))
			continue
		}
		seen[ct.ID] = n
		t := Task{ID: s.name + ":" + ct.ID, Source: s.name, Title: ct.Title, Prompt: strings.TrimSpace(ct.Prompt), Labels: ct.Labels}
		if t.Title == "" {
			t.Title = ct.ID
		}
		t.Title = CutTitle(t.Title)
		if ct.Priority != nil {
			t.Priority = *ct.Priority
		}
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: output line %d: %w", what, n+1, err))
	}
	return out, errors.Join(errs...)
}

// limitedBuffer keeps at most max bytes and notes when more came.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.over = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = b.buf[len(b.buf)-b.max:]
	}
	return len(p), nil
}

// suffix is ": stderr: TAIL" (one line, printable), or "" when empty.
func (b *tailBuffer) suffix() string {
	s := strings.ToValidUTF8(string(b.buf), "?")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }), " ")
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	return ": stderr: " + s
}

// SortTasks orders tasks as the dispatcher takes them (highest Priority,
// oldest CreatedAt, then ID).
func SortTasks(ts []Task) {
	sort.SliceStable(ts, func(i, j int) bool { return before(&ts[i], &ts[j]) })
}
