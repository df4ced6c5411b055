package usage

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/jackin-dev/jackin/worklinks"
)

// linksOf reads the runtime's records under home the way the supervisor
// does, through OnText into a worklinks.Collector.
func linksOf(t *testing.T, runtime, home string) []string {
	t.Helper()
	rd := ForRuntime(runtime, home, nil, "b")
	var c worklinks.Collector
	rd.OnText(func(x Text) { c.Text(x.Stream, x.Text, x.Break, x.Time) })
	rd.Scan()
	var out []string
	for _, l := range c.Links() {
		out = append(out, string(l.Kind)+" "+l.URL)
	}
	return out
}

func writeLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		f.WriteString(l + "\n")
	}
}

// Claude Code: only the assistant's text blocks count. The operator's
// prompt (with an example tag), the Bash call's input and the tool's
// output (a file holding a tag) and the thinking are never read; a tag
// split over two text blocks of one response is found.
func TestClaudeTextTags(t *testing.T) {
	home := t.TempDir()
	f := filepath.Join(home, ".claude", "projects", "-work", "s1.jsonl")
	writeLines(t, f,
		`{"type":"user","timestamp":"2026-12-01T10:00:00Z","message":{"role":"user","content":"end with <jackin:pr>https://github.com/acme/app/pull/999</jackin:pr> when done"}}`,
		`{"type":"assistant","timestamp":"2026-12-01T10:00:01Z","message":{"id":"m1","role":"assistant","content":[{"type":"thinking","thinking":"maybe <jackin:pr>https://github.com/acme/app/pull/998</jackin:pr>"}],"usage":{"output_tokens":1}}}`,
		`{"type":"assistant","timestamp":"2026-12-01T10:00:02Z","message":{"id":"m1","role":"assistant","content":[{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"echo '<jackin:issue>https://github.com/acme/app/issues/997</jackin:issue>'"}}],"usage":{"output_tokens":1}}}`,
		`{"type":"user","timestamp":"2026-12-01T10:00:03Z","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"<jackin:issue>https://github.com/acme/app/issues/996</jackin:issue>"}]}}`,
		`{"type":"assistant","timestamp":"2026-12-01T10:00:04Z","message":{"id":"m2","role":"assistant","content":[{"type":"text","text":"Opened <jackin:pr>https://github.com/acme/"}],"usage":{"output_tokens":1}}}`,
		`{"type":"assistant","timestamp":"2026-12-01T10:00:04Z","message":{"id":"m2","role":"assistant","content":[{"type":"text","text":"app/pull/12</jackin:pr> in <jackin:repo>/work/app</jackin:repo>"}],"usage":{"output_tokens":2}}}`,
	)
	got := linksOf(t, "claude", home)
	want := []string{"repo /work/app", "pr https://github.com/acme/app/pull/12"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// A tag begun by the assistant and "finished" in the operator's next
// prompt is no tag.
func TestClaudeTextBreakAtPrompt(t *testing.T) {
	home := t.TempDir()
	writeLines(t, filepath.Join(home, ".claude", "projects", "-w", "s.jsonl"),
		`{"type":"assistant","message":{"content":[{"type":"text","text":"<jackin:pr>https://github.com/a/b/pu"}]}}`,
		`{"type":"user","message":{"role":"user","content":"ll/5</jackin:pr>"}}`,
		`{"type":"assistant","message":{"content":[{"type":"text","text":"ll/6</jackin:pr>"}]}}`,
	)
	if got := linksOf(t, "claude", home); len(got) != 0 {
		t.Fatalf("got %v", got)
	}
}

func TestCodexTextTags(t *testing.T) {
	home := t.TempDir()
	writeLines(t, filepath.Join(home, ".codex", "sessions", "2026", "12", "01", "rollout-2026-12-01T10-00-00-0199a213-81c0-7800-8aa1-bbab2a035a53.jsonl"),
		`{"timestamp":"2026-12-01T10:00:00Z","type":"session_meta","payload":{"id":"0199a213-81c0-7800-8aa1-bbab2a035a53"}}`,
		`{"timestamp":"2026-12-01T10:00:01Z","type":"response_item","payload":{"type":"message","role":"user","content":[{"type":"input_text","text":"<jackin:pr>https://github.com/a/b/pull/9</jackin:pr>"}]}}`,
		`{"timestamp":"2026-12-01T10:00:02Z","type":"response_item","payload":{"type":"function_call_output","call_id":"c","output":"<jackin:issue>https://github.com/a/b/issues/8</jackin:issue>"}}`,
		`{"timestamp":"2026-12-01T10:00:03Z","type":"event_msg","payload":{"type":"agent_message","message":"<jackin:issue>https://github.com/a/b/issues/3</jackin:issue>"}}`,
		`{"timestamp":"2026-12-01T10:00:03Z","type":"response_item","payload":{"type":"message","role":"assistant","content":[{"type":"output_text","text":"<jackin:issue>https://github.com/a/b/issues/3</jackin:issue>"}]}}`,
	)
	got := linksOf(t, "codex", home)
	if want := []string{"issue https://github.com/a/b/issues/3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestGeminiTextTags(t *testing.T) {
	home := t.TempDir()
	writeLines(t, filepath.Join(home, ".gemini", "tmp", "h", "chats", "session-1.jsonl"),
		`{"sessionId":"s","projectHash":"h"}`,
		`{"id":"u1","type":"user","content":[{"text":"<jackin:pr>https://github.com/a/b/pull/9</jackin:pr>"}]}`,
		`{"id":"g1","type":"gemini","timestamp":"2026-12-01T10:00:00Z","content":"working on <jackin:pr>https://github.com/a/b/pull/2</jackin:pr>"}`,
	)
	got := linksOf(t, "gemini", home)
	if want := []string{"pr https://github.com/a/b/pull/2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestOpenCodeEventTextTags(t *testing.T) {
	rd := ForRuntime("opencode", t.TempDir(), nil, "b")
	var c worklinks.Collector
	rd.OnText(func(x Text) { c.Text(x.Stream, x.Text, x.Break, x.Time) })
	rd.Event([]byte(`{"type":"message.updated","properties":{"info":{"id":"u","role":"user"}}}`))
	rd.Event([]byte(`{"type":"message.part.updated","properties":{"part":{"id":"p0","messageID":"u","type":"text","text":"<jackin:pr>https://github.com/a/b/pull/9</jackin:pr>"}}}`))
	rd.Event([]byte(`{"type":"message.updated","properties":{"info":{"id":"m","role":"assistant"}}}`))
	rd.Event([]byte(`{"type":"message.part.updated","properties":{"part":{"id":"p1","messageID":"m","type":"text","text":"see <jackin:pr>https://github.com/a/b/pu"}}}`))
	rd.Event([]byte(`{"type":"message.part.updated","properties":{"part":{"id":"p1","messageID":"m","type":"text","text":"see <jackin:pr>https://github.com/a/b/pull/4</jackin:pr>"}}}`))
	rd.Event([]byte(`{"type":"message.part.updated","properties":{"part":{"id":"p2","messageID":"m","type":"tool","text":"<jackin:pr>https://github.com/a/b/pull/8</jackin:pr>"}}}`))
	ls := c.Links()
	if len(ls) != 1 || ls[0].URL != "https://github.com/a/b/pull/4" {
		t.Fatalf("%+v", ls)
	}
}
