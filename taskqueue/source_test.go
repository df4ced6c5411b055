package taskqueue

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func byID(ts []Task) map[string]Task {
	m := map[string]Task{}
	for _, t := range ts {
		m[t.ID] = t
	}
	return m
}

// TestDirSource: task files with and without front matter load; a bad
// file is named with its line and skipped, never losing the others.
func TestDirSource(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "fix-login.md", "---\ntitle: \"Fix the login redirect\"\npriority: 5\nlabels: [bug, 'web']\n---\n\nThe login page sends users to /home.\n")
	write(t, dir, "plain.md", "Just a prompt.\r\nSecond line.\r\n")
	write(t, dir, "list-labels.md", "---\n# a comment\nlabels: a, b\n---\nbody\n")
	write(t, dir, "bad-field.md", "---\ntitle: x\nowner: me\n---\nbody\n")
	write(t, dir, "bad-priority.md", "---\npriority: high\n---\nbody\n")
	write(t, dir, "unclosed.md", "---\ntitle: x\nbody\n")
	write(t, dir, "empty.md", "---\ntitle: nothing to do\n---\n\n")
	write(t, dir, "no-colon.md", "---\ntitle x\n---\nbody\n")
	write(t, dir, ".hidden.md", "body")
	write(t, dir, "notes.txt", "body")
	if err := os.Mkdir(filepath.Join(dir, "sub.md"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := NewDirSource("tasks", dir)
	if src.Name() != "tasks" {
		t.Errorf("name %q", src.Name())
	}
	got, err := src.Scan(context.Background())
	m := byID(got)
	if len(got) != 3 {
		t.Fatalf("tasks %+v, want fix-login, plain and list-labels", got)
	}
	fix := m["tasks:fix-login"]
	if fix.Title != "Fix the login redirect" || fix.Priority != 5 || strings.Join(fix.Labels, ",") != "bug,web" ||
		fix.Prompt != "The login page sends users to /home." || fix.Source != "tasks" {
		t.Errorf("fix-login: %+v", fix)
	}
	if p := m["tasks:plain"]; p.Title != "plain" || p.Prompt != "Just a prompt.\nSecond line." || p.Priority != 0 {
		t.Errorf("plain: %+v", p)
	}
	if l := m["tasks:list-labels"]; strings.Join(l.Labels, ",") != "a,b" {
		t.Errorf("list-labels: %+v", l)
	}
	if err == nil {
		t.Fatal("no error for the bad files")
	}
	for _, want := range []string{
		"bad-field.md:3: unknown field \"owner\"",
		"bad-priority.md:2: priority \"high\": not an integer",
		"unclosed.md:1: the front matter has no closing --- line",
		"empty.md: the prompt is empty",
		"no-colon.md:2: want key: value",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := NewDirSource("x", filepath.Join(dir, "missing")).Scan(context.Background()); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing directory: %v", err)
	}
}

// TestDirSourceBounds: an oversized file or prompt and a huge title are
// refused or cut.
func TestDirSourceBounds(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "huge.md", strings.Repeat("x", MaxPrompt+1))
	write(t, dir, "long-title.md", "---\ntitle: "+strings.Repeat("é", MaxTitle)+"\n---\nbody\n")
	got, err := NewDirSource("d", dir).Scan(context.Background())
	if err == nil || !strings.Contains(err.Error(), "huge.md: the prompt has") {
		t.Errorf("huge prompt: %v", err)
	}
	if len(got) != 1 || len(got[0].Title) > MaxTitle+3 || !strings.HasSuffix(got[0].Title, "...") {
		t.Errorf("long title: %+v", got)
	}
}

func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tasks.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCommandSource: JSON lines become tasks; a bad line is named by its
// number and skipped.
func TestCommandSource(t *testing.T) {
	p := script(t, `cat <<'EOF'
{"id": "PROJ-1", "title": "First", "prompt": "do one", "priority": 3, "labels": ["a"]}

{"id": "PROJ-2", "prompt": "do two"}
not json
{"id": "PROJ-3", "title": "no prompt"}
{"id": "PROJ-1", "prompt": "again"}
{"id": "PROJ-4", "prompt": "x", "owner": "me"}
{"id": "PROJ-5", "prompt": "x"} {"id": "PROJ-6"}
{"id": "PROJ-7\u001b[2J", "prompt": "x"}
{"id": "PROJ-8", "prompt": "x", "labels": ["ok", "bad\u009b31m"]}
{"id": "PROJ-9", "title": "\u001b]0;pwned\u0007Clean\ttitle", "prompt": "x"}
EOF
`)
	src := NewCommandSource("tracker", []string{p}, "")
	got, err := src.Scan(context.Background())
	m := byID(got)
	if len(got) != 3 {
		t.Fatalf("tasks %+v", got)
	}
	if nine := m["tracker:PROJ-9"]; nine.Title != "]0;pwnedClean title" {
		t.Errorf("PROJ-9's title keeps control characters: %q", nine.Title)
	}
	if one := m["tracker:PROJ-1"]; one.Title != "First" || one.Prompt != "do one" || one.Priority != 3 || len(one.Labels) != 1 || one.Source != "tracker" {
		t.Errorf("PROJ-1: %+v", one)
	}
	if two := m["tracker:PROJ-2"]; two.Title != "PROJ-2" || two.Priority != 0 {
		t.Errorf("PROJ-2: %+v", two)
	}
	if err == nil {
		t.Fatal("no error for the bad lines")
	}
	for _, want := range []string{"output line 4:", "output line 5: the prompt is empty", "output line 6: id \"PROJ-1\" is already on line 1", "output line 7: json: unknown field \"owner\"", "output line 8: more than one JSON value", "output line 9: id", "control character", "output line 10: label"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestCommandSourceFailures: a failing run yields no tasks and says why,
// with the stderr's tail; argv is not a shell command line.
func TestCommandSourceFailures(t *testing.T) {
	ctx := context.Background()
	fail := script(t, `echo '{"id": "a", "prompt": "x"}'; echo "tracker is down" >&2; exit 3`)
	got, err := NewCommandSource("c", []string{fail}, "").Scan(ctx)
	if len(got) != 0 || err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "stderr: tracker is down") {
		t.Errorf("failing command: %v %v", got, err)
	}
	slow := NewCommandSource("c", []string{script(t, "exec sleep 10")}, "").(*CommandSource)
	slow.Timeout = 200 * time.Millisecond
	start := time.Now()
	if _, err := slow.Scan(ctx); err == nil || !strings.Contains(err.Error(), "did not finish within 200ms") || time.Since(start) > 5*time.Second {
		t.Errorf("slow command: %v after %s", err, time.Since(start))
	}
	if _, err := NewCommandSource("c", []string{filepath.Join(t.TempDir(), "nope")}, "").Scan(ctx); err == nil {
		t.Error("a missing program ran")
	}
	if _, err := NewCommandSource("c", nil, "").Scan(ctx); err == nil {
		t.Error("no argv ran")
	}
	// No shell: the argument reaches the program as written.
	dir := t.TempDir()
	echo := script(t, `printf '{"id": "x", "prompt": "%s"}\n' "$1"; pwd >&2`)
	got, err = NewCommandSource("c", []string{echo, "$(touch pwned)"}, dir).Scan(ctx)
	if err != nil || len(got) != 1 || got[0].Prompt != "$(touch pwned)" {
		t.Errorf("argv: %+v %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("the argument ran as a shell command")
	}
}
