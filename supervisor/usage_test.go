package supervisor

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/runtimes"
	"github.com/jackin-dev/jackin/usage"
)

func TestReadUsageIsHostile(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadUsage(dir); !os.IsNotExist(err) {
		t.Fatalf("missing: %v", err)
	}
	// A link, even to a good file, is refused.
	good := filepath.Join(t.TempDir(), "good.json")
	os.WriteFile(good, []byte(`{"v":1,"entries":[]}`), 0o644)
	os.Symlink(good, filepath.Join(dir, usage.File))
	if _, err := ReadUsage(dir); err == nil {
		t.Error("a link was followed")
	}
	os.Remove(filepath.Join(dir, usage.File))
	// A FIFO does not block the reader.
	if err := syscall.Mkfifo(filepath.Join(dir, usage.File), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := ReadUsage(dir); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a FIFO was read")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a FIFO blocked")
	}
	os.Remove(filepath.Join(dir, usage.File))
	// Too large.
	os.WriteFile(filepath.Join(dir, usage.File), make([]byte, maxUsageFile+1), 0o644)
	if _, err := ReadUsage(dir); err == nil {
		t.Error("an oversized file was read")
	}
	// Another version.
	os.WriteFile(filepath.Join(dir, usage.File), []byte(`{"v":2,"entries":[{"session":"s","model":"m","input":1}]}`), 0o644)
	if _, err := ReadUsage(dir); err == nil {
		t.Error("version 2 was read")
	}
	// Cleaned: escapes out, bounds, duplicates merged, empties dropped.
	os.WriteFile(filepath.Join(dir, usage.File), []byte(`{"v":1,"runtime":"claude\u001b[2J","entries":[
		{"session":"s\u001b]0;x\u0007","model":"claude-opus-4-5","input":-5,"output":10,"cacheRead":9000000000000000000},
		{"session":"s]0;x","model":"claude-opus-4-5","input":3,"output":7},
		{"session":"","model":"m","input":1},
		{"session":"z","model":"","output":1},
		{"session":"zero","model":"m"}]}`), 0o644)
	r, err := ReadUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.Runtime != "claude[2J" {
		t.Errorf("runtime %q", r.Runtime)
	}
	want := []usage.Entry{
		{Session: "s]0;x", Model: "claude-opus-4-5", Tokens: usage.Tokens{Input: 3, Output: 10, CacheRead: usage.MaxCount}},
		{Session: "z", Model: usage.UnknownModel, Tokens: usage.Tokens{Output: 1}},
	}
	if len(r.Entries) != len(want) {
		t.Fatalf("%+v", r.Entries)
	}
	for i := range want {
		if r.Entries[i] != want[i] {
			t.Errorf("%d: %+v, want %+v", i, r.Entries[i], want[i])
		}
	}
}

// The supervisor reads the runtime's transcripts in the agent's home and
// publishes the totals, the last turn's included when the agent exits.
func TestSupervisorPublishesUsage(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("CLAUDE_CONFIG_DIR", "")
	dir := t.TempDir()
	rt, _ := runtimes.Get(runtimes.Claude)
	line := `{"type":"assistant","sessionId":"s1","requestId":"r1","message":{"id":"m1","model":"claude-opus-4-5","usage":{"input_tokens":3,"output_tokens":4,"cache_creation_input_tokens":5,"cache_read_input_tokens":6}}}`
	script := `mkdir -p "$HOME/.claude/projects/p" && printf '%s\n%s\n' '` + line + `' '` + line + `' > "$HOME/.claude/projects/p/s1.jsonl"`
	cfg := Config{reapOwnOnly: true, Runtime: rt, Command: []string{"sh", "-c", script}, AgentDir: dir, HomeStore: t.TempDir(),
		Socket: "@jackin-usage-test-" + time.Now().Format("150405.000000000"), Out: io.Discard, Log: io.Discard}
	if code := Run(context.Background(), cfg); code != 0 {
		t.Fatalf("exit %d", code)
	}
	r, err := ReadUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.Runtime != "claude" || len(r.Entries) != 1 || r.Entries[0] != (usage.Entry{Session: "s1", Model: "claude-opus-4-5", Tokens: usage.Tokens{Input: 3, Output: 4, CacheWrite: 5, CacheRead: 6}}) {
		t.Errorf("%+v", r)
	}
}
