package usage

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// copyTree copies testdata/<name> into a temporary home, so a test can
// append to, truncate and replace its files.
func copyTree(t *testing.T, name string) string {
	t.Helper()
	dst := t.TempDir()
	src := filepath.Join("testdata", name)
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func envOf(kv ...string) func(string) string {
	return func(k string) string {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1]
			}
		}
		return ""
	}
}

func expectTotals(t *testing.T, got Totals, want map[Key]Tokens) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s/%s: got %+v, want %+v", k.Session, k.Model, got[k], w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s/%s: %+v", k.Session, k.Model, g)
		}
	}
}

const (
	claudeS1 = "0f1e2d3c-0000-4000-8000-000000000001"
	claudeS2 = "0f1e2d3c-0000-4000-8000-000000000002"
	sonnet   = "claude-sonnet-4-5-20250929"
)

func claudeWant() map[Key]Tokens {
	return map[Key]Tokens{
		// msg_A once (three lines, the streamed one lower) + msg_B once
		// (also copied into the resumed session's transcript).
		{claudeS1, sonnet}:                      {Input: 15, Output: 70, CacheRead: 1000, CacheWrite: 1000},
		{claudeS1, "claude-haiku-4-5-20251001"}: {Input: 100, Output: 10},
		{claudeS1, "claude-future-9"}:           {Input: 1, Output: 2, CacheRead: 4, CacheWrite: 3},
		{claudeS2, sonnet}:                      {Input: 3, Output: 30, CacheRead: 2000},
	}
}

func TestClaudeTranscripts(t *testing.T) {
	dir := copyTree(t, "claude")
	r := ForRuntime("claude", "/nonexistent", envOf("CLAUDE_CONFIG_DIR", dir), "b1")
	got, changed := r.Scan()
	if !changed {
		t.Fatal("first scan reported no change")
	}
	want := claudeWant()
	expectTotals(t, got, want)

	// Nothing new: nothing changed.
	if _, changed := r.Scan(); changed {
		t.Error("a scan with nothing new reported a change")
	}

	// The truncated last line is finished: counted once, now.
	f := filepath.Join(dir, "projects", "-work-app", claudeS1+".jsonl")
	appendTo(t, f, `put_tokens":9,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}`+"\n")
	got, changed = r.Scan()
	if !changed {
		t.Fatal("finishing a line reported no change")
	}
	want[Key{claudeS1, sonnet}] = Tokens{Input: 22, Output: 79, CacheRead: 1000, CacheWrite: 1000}
	expectTotals(t, got, want)

	// A restart reads everything again: the same totals, nothing twice.
	again, _ := ForRuntime("claude", "/nonexistent", envOf("CLAUDE_CONFIG_DIR", dir), "b2").Scan()
	expectTotals(t, again, want)
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestClaudeRotationAndTruncation(t *testing.T) {
	dir := copyTree(t, "claude")
	r := ForRuntime("claude", "/nonexistent", envOf("CLAUDE_CONFIG_DIR", dir), "b")
	r.Scan()
	proj := filepath.Join(dir, "projects", "-work-app")

	// A new session file appears.
	s3 := "0f1e2d3c-0000-4000-8000-000000000003"
	line := `{"type":"assistant","sessionId":"` + s3 + `","requestId":"req_Z","message":{"id":"msg_Z","model":"claude-opus-4-5","usage":{"input_tokens":1,"output_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}` + "\n"
	if err := os.WriteFile(filepath.Join(proj, s3+".jsonl"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	got, changed := r.Scan()
	if !changed || got[Key{s3, "claude-opus-4-5"}] != (Tokens{Input: 1, Output: 1}) {
		t.Fatalf("new session: changed=%v %+v", changed, got[Key{s3, "claude-opus-4-5"}])
	}

	// A transcript replaced by a shorter one (rewritten, or rotated and
	// started again) is read from its start: totals are per session, so
	// it lowers them rather than adding to them.
	f := filepath.Join(proj, claudeS2+".jsonl")
	b, _ := os.ReadFile(f)
	first := strings.SplitAfter(string(b), "\n")[0]
	if err := os.WriteFile(f+".new", []byte(first), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f+".new", f); err != nil {
		t.Fatal(err)
	}
	got, _ = r.Scan()
	if _, ok := got[Key{claudeS2, sonnet}]; ok {
		t.Errorf("the rewritten transcript's response still counted: %+v", got[Key{claudeS2, sonnet}])
	}
	if got[Key{claudeS1, sonnet}] != claudeWant()[Key{claudeS1, sonnet}] {
		t.Errorf("the copied response counted twice: %+v", got[Key{claudeS1, sonnet}])
	}

	// Truncated in place, then written again: read from the start.
	if err := os.Truncate(filepath.Join(proj, s3+".jsonl"), 0); err != nil {
		t.Fatal(err)
	}
	got, _ = r.Scan()
	if _, ok := got[Key{s3, "claude-opus-4-5"}]; ok {
		t.Error("a truncated transcript still counted")
	}
	appendTo(t, filepath.Join(proj, s3+".jsonl"), line+line)
	got, _ = r.Scan()
	if got[Key{s3, "claude-opus-4-5"}] != (Tokens{Input: 1, Output: 1}) {
		t.Errorf("after truncation and rewrite: %+v", got[Key{s3, "claude-opus-4-5"}])
	}

	// A file gone leaves the totals published before (the host keeps
	// them); the reader drops it.
	os.Remove(filepath.Join(proj, s3+".jsonl"))
	got, changed = r.Scan()
	if _, ok := got[Key{s3, "claude-opus-4-5"}]; ok || !changed {
		t.Error("a removed transcript still counted")
	}
}

func TestClaudeIgnoresLinksAndHugeLines(t *testing.T) {
	dir := copyTree(t, "claude")
	proj := filepath.Join(dir, "projects", "-work-app")
	outside := t.TempDir()
	line := `{"type":"assistant","sessionId":"x","requestId":"r","message":{"id":"m","model":"claude-opus-4-5","usage":{"input_tokens":1000,"output_tokens":1000}}}` + "\n"
	os.WriteFile(filepath.Join(outside, "evil.jsonl"), []byte(line), 0o644)
	os.Symlink(filepath.Join(outside, "evil.jsonl"), filepath.Join(proj, "link.jsonl"))
	os.Symlink(outside, filepath.Join(proj, "linkdir"))
	huge := `{"type":"assistant","sessionId":"h","requestId":"r2","message":{"id":"m2","model":"x","content":"` + strings.Repeat("a", maxLine) + `","usage":{"input_tokens":5}}}` + "\n"
	os.WriteFile(filepath.Join(proj, "huge.jsonl"), []byte(huge+line), 0o644)
	got, _ := ForRuntime("claude", "", envOf("CLAUDE_CONFIG_DIR", dir), "b").Scan()
	if got[Key{"x", "claude-opus-4-5"}] != (Tokens{Input: 1000, Output: 1000}) {
		t.Errorf("the line after a huge one: %+v", got[Key{"x", "claude-opus-4-5"}])
	}
	if _, ok := got[Key{"h", "x"}]; ok {
		t.Error("a line over the limit was parsed")
	}
}

func TestCodexRollouts(t *testing.T) {
	dir := copyTree(t, "codex")
	r := ForRuntime("codex", "/nonexistent", envOf("CODEX_HOME", dir), "b")
	got, _ := r.Scan()
	th := "019a9776-0a34-7842-8627-112b63d66e90"
	want := map[Key]Tokens{
		// The repeated token_count adds nothing; the continuation file
		// repeats the first one's totals and is not added to them.
		{th, "gpt-5-codex"}:      {Input: 1000, Output: 250, CacheRead: 2000},
		{th, "gpt-5.4-mini"}:     {Input: 500, Output: 50, CacheRead: 500},
		{th, "gpt-experimental"}: {Input: 100, Output: 10},
	}
	expectTotals(t, got, want)
	again, _ := ForRuntime("codex", "/nonexistent", envOf("CODEX_HOME", dir), "b2").Scan()
	expectTotals(t, again, want)

	// Archived: moved, still counted once.
	arch := filepath.Join(dir, "archived_sessions")
	os.MkdirAll(arch, 0o755)
	old := filepath.Join(dir, "sessions", "2026", "12", "01", "rollout-2026-12-01T10-00-00-"+th+".jsonl")
	if err := os.Rename(old, filepath.Join(arch, filepath.Base(old))); err != nil {
		t.Fatal(err)
	}
	got, _ = r.Scan()
	expectTotals(t, got, want)
}

func TestCodexSessionFromFileName(t *testing.T) {
	if got := codexSessionOf("2026/12/01/rollout-2026-12-01T10-00-00-019a9776-0a34-7842-8627-112b63d66e90.jsonl"); got != "019a9776-0a34-7842-8627-112b63d66e90" {
		t.Error(got)
	}
}

func TestGeminiChats(t *testing.T) {
	home := copyTree(t, "gemini")
	// GEMINI_CLI_HOME replaces the home directory: <it>/.gemini/tmp.
	cli := t.TempDir()
	if err := os.Rename(home, filepath.Join(cli, ".gemini")); err != nil {
		t.Fatal(err)
	}
	r := ForRuntime("gemini", "/nonexistent", envOf("GEMINI_CLI_HOME", cli), "b")
	got, _ := r.Scan()
	g := "7d0b2a91-1111-4222-8333-444455556666"
	l := "aaaa0000-1111-4222-8333-444455556666"
	want := map[Key]Tokens{
		// m1 written twice (text, then with tokens): once.
		{g, "gemini-2.5-pro"}:   {Input: 400, Output: 120, CacheRead: 600},
		{g, "gemini-2.5-flash"}: {Input: 510, Output: 50},
		{g, "gemini-9-ultra"}:   {Input: 10, Output: 1},
		// The legacy .json and its .jsonl conversion share L1: once.
		{l, "gemini-2.5-pro"}: {Input: 2100, Output: 210},
	}
	expectTotals(t, got, want)

	// The legacy document rewritten whole with one more message.
	legacy := filepath.Join(cli, ".gemini", "tmp", "3b5d", "chats", "session-2026-11-01T10-00-aaaa0000.json")
	b, _ := os.ReadFile(legacy)
	s := strings.Replace(string(b), `"messages": [`, `"messages": [{"id":"L9","type":"gemini","model":"gemini-2.5-flash","tokens":{"input":7,"output":3,"cached":0,"total":10}},`, 1)
	os.WriteFile(legacy+".tmp", []byte(s), 0o644)
	os.Rename(legacy+".tmp", legacy)
	got, changed := r.Scan()
	if !changed || got[Key{l, "gemini-2.5-flash"}] != (Tokens{Input: 7, Output: 3}) {
		t.Errorf("rewritten legacy chat: changed=%v %+v", changed, got[Key{l, "gemini-2.5-flash"}])
	}
	if got[Key{l, "gemini-2.5-pro"}] != want[Key{l, "gemini-2.5-pro"}] {
		t.Errorf("rewritten legacy chat counted twice: %+v", got[Key{l, "gemini-2.5-pro"}])
	}
}

func TestOpenCodeStoredMessages(t *testing.T) {
	data := t.TempDir()
	if err := os.Rename(copyTree(t, "opencode"), filepath.Join(data, "opencode")); err != nil {
		t.Fatal(err)
	}
	r := ForRuntime("opencode", "/nonexistent", envOf("XDG_DATA_HOME", data), "b")
	// Events are ignored while messages are stored in files.
	r.Event([]byte(`{"type":"message.updated","properties":{"info":{"id":"msg_1","sessionID":"ses_01","role":"assistant","modelID":"claude-sonnet-4-5","tokens":{"input":100,"output":20,"reasoning":5,"cache":{"read":1000,"write":50}}}}}`))
	got, _ := r.Scan()
	expectTotals(t, got, map[Key]Tokens{
		{"ses_01", "claude-sonnet-4-5"}: {Input: 100, Output: 25, CacheRead: 1000, CacheWrite: 50},
		{"ses_01", "gpt-5"}:             {Input: 10, Output: 2},
	})
}

func TestOpenCodeEvents(t *testing.T) {
	r := ForRuntime("opencode", t.TempDir(), nil, "boot1")
	if !r.WantsEvents() {
		t.Fatal("opencode wants its events")
	}
	ev := func(id, role string, in, out int) []byte {
		return []byte(`{"type":"message.updated","properties":{"info":{"id":"` + id + `","sessionID":"ses_9","role":"` + role +
			`","modelID":"gpt-5","providerID":"openai","cost":0,"tokens":{"input":` + itoa(in) + `,"output":` + itoa(out) + `,"reasoning":1,"cache":{"read":2,"write":0}}}}}`)
	}
	r.Event([]byte(`{"type":"server.connected","properties":{}}`))
	r.Event(ev("u1", "user", 50, 50))
	r.Event(ev("a1", "assistant", 0, 0)) // started
	r.Event(ev("a1", "assistant", 10, 5))
	r.Event(ev("a1", "assistant", 10, 5)) // the same update again
	r.Event([]byte(`{"directory":"/work","payload":` + string(ev("a2", "assistant", 3, 3)) + `}`))
	r.Event([]byte(`not json`))
	got, changed := r.Scan()
	if !changed {
		t.Fatal("no change")
	}
	expectTotals(t, got, map[Key]Tokens{{"ses_9@boot1", "gpt-5"}: {Input: 13, Output: 10, CacheRead: 4}})
	if _, changed := r.Scan(); changed {
		t.Error("no new event, yet a change")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestNoReaderForAmpShellCustom(t *testing.T) {
	for _, rt := range []string{"amp", "shell", "aider", ""} {
		if ForRuntime(rt, "/home/agent", nil, "b") != nil {
			t.Errorf("%s: a reader", rt)
		}
	}
}

func TestMissingDirectories(t *testing.T) {
	r := ForRuntime("claude", filepath.Join(t.TempDir(), "none"), nil, "b")
	got, _ := r.Scan()
	if len(got) != 0 {
		t.Errorf("%+v", got)
	}
}

func TestHostileCounts(t *testing.T) {
	dir := t.TempDir()
	proj := filepath.Join(dir, "projects", "p")
	os.MkdirAll(proj, 0o755)
	line := func(id string, n string) string {
		return `{"type":"assistant","sessionId":"s","requestId":"` + id + `","message":{"id":"` + id + `","model":"m","usage":{"input_tokens":` + n + `,"output_tokens":-5}}}` + "\n"
	}
	os.WriteFile(filepath.Join(proj, "s.jsonl"), []byte(line("a", "999999999999999999")+line("b", "999999999999999999")+line("c", "1e3")), 0o644)
	got, _ := ForRuntime("claude", "", envOf("CLAUDE_CONFIG_DIR", dir), "b").Scan()
	if got[Key{"s", "m"}] != (Tokens{Input: MaxCount}) {
		t.Errorf("%+v", got[Key{"s", "m"}])
	}
}
