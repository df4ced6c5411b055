package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseHooksClaudeSettings(t *testing.T) {
	doc := `{
	  "permissions": {"allow": ["Bash"]},
	  "hooks": {
	    "Stop": [{"hooks": [{"type": "command", "command": "a", "timeout": 5}]}],
	    "Notification": [
	      {"matcher": "permission_prompt", "hooks": [{"type": "command", "command": "p"}]},
	      {"matcher": "idle_prompt", "hooks": [{"type": "command", "command": "i"}]}
	    ],
	    "Broken": {"not": "an array"}
	  }
	}`
	hs, err := parseHooks([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(hs["Stop"]) != 1 || hs["Stop"][0].Hooks[0].Command != "a" || hs["Stop"][0].Hooks[0].Timeout != 5 {
		t.Errorf("Stop = %+v", hs["Stop"])
	}
	if hs["Stop"][0].Matcher != nil {
		t.Errorf("Stop matcher = %q, want absent", *hs["Stop"][0].Matcher)
	}
	if len(hs["Notification"]) != 2 || *hs["Notification"][1].Matcher != "idle_prompt" {
		t.Errorf("Notification = %+v", hs["Notification"])
	}
	if _, ok := hs["Broken"]; ok {
		t.Error("an event that is not an array of groups was kept")
	}
	if hs.count() != 3 {
		t.Errorf("count = %d, want 3", hs.count())
	}
	if _, err := parseHooks([]byte("{not json")); err == nil {
		t.Error("invalid JSON accepted")
	}
}

func TestLoadHookFilesMergesLayers(t *testing.T) {
	dir := t.TempDir()
	user := filepath.Join(dir, "user.json")
	proj := filepath.Join(dir, "proj.json")
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(user, []byte(`{"hooks":{"Stop":[{"hooks":[{"type":"command","command":"u"}]}]}}`), 0o644)
	os.WriteFile(proj, []byte(`{"hooks":{"Stop":[{"hooks":[{"type":"command","command":"p"}]}]}}`), 0o644)
	os.WriteFile(bad, []byte(`{`), 0o644)
	hs, read, invalid := loadHookFiles(user, filepath.Join(dir, "missing.json"), proj, bad)
	if len(hs["Stop"]) != 2 {
		t.Errorf("Stop groups = %d, want 2 (both layers)", len(hs["Stop"]))
	}
	if !reflect.DeepEqual(read, []string{user, proj}) || !reflect.DeepEqual(invalid, []string{bad}) {
		t.Errorf("read %v invalid %v", read, invalid)
	}
}

func TestMatchClaude(t *testing.T) {
	cases := []struct {
		event, matcher, subject string
		want                    bool
	}{
		{"PreToolUse", "", "Bash", true},
		{"PreToolUse", "*", "Bash", true},
		{"PreToolUse", "Bash", "Bash", true},
		{"PreToolUse", "Bash", "BashOutput", false}, // plain names match exactly
		{"PreToolUse", "Edit|Write", "Write", true},
		{"PreToolUse", "Edit|Write", "Bash", false},
		{"PreToolUse", "Notebook.*", "NotebookEdit", true},
		{"PreToolUse", "mcp__.*", "Bash", false},
		{"Notification", "permission_prompt", "permission_prompt", true},
		{"Notification", "permission_prompt", "idle_prompt", false},
		{"Notification", "permission_prompt|idle_prompt", "idle_prompt", true},
		{"SessionStart", "startup", "resume", false},
		{"Stop", "anything", "", true}, // Stop has no matcher
		{"UserPromptSubmit", "x", "", true},
		{"PreToolUse", "(", "(", true}, // invalid regexp: equality
	}
	for _, c := range cases {
		if got := matchClaude(c.event, c.matcher, c.subject); got != c.want {
			t.Errorf("matchClaude(%q, %q, %q) = %v, want %v", c.event, c.matcher, c.subject, got, c.want)
		}
	}
}

func TestMatchGemini(t *testing.T) {
	cases := []struct {
		event, matcher, subject string
		want                    bool
	}{
		{"BeforeTool", "write_.*", "write_file", true},
		{"BeforeTool", "shell", "run_shell_command", true}, // unanchored
		{"BeforeTool", "read_file", "run_shell_command", false},
		{"BeforeTool", " * ", "x", true},
		{"SessionStart", "startup", "startup", true},
		{"SessionStart", "start", "startup", false}, // lifecycle: exact
		{"SessionEnd", "exit", "exit", true},
		{"Notification", "Nope", "", true}, // no subject: matcher ignored
		{"AfterAgent", "x", "", true},
	}
	for _, c := range cases {
		if got := matchGemini(c.event, c.matcher, c.subject); got != c.want {
			t.Errorf("matchGemini(%q, %q, %q) = %v, want %v", c.event, c.matcher, c.subject, got, c.want)
		}
	}
}

func TestMatchCodex(t *testing.T) {
	if !matchCodex("PreToolUse", "Bash", "Bash") || matchCodex("PreToolUse", "^Edit$", "Bash") {
		t.Error("tool matcher")
	}
	if !matchCodex("Stop", "whatever", "") {
		t.Error("Stop ignores its matcher")
	}
	if !matchCodex("SessionStart", "startup|resume", "resume") {
		t.Error("SessionStart source matcher")
	}
}

func TestSelectedDeduplicatesAndFilters(t *testing.T) {
	perm, idle := "permission_prompt", "idle_prompt"
	e := &hookEngine{d: dialect{match: matchClaude}, hooks: hookSet{"Notification": {
		{Matcher: &perm, Hooks: []hookCommand{{Type: "command", Command: "a"}, {Type: "command", Command: "b"}}},
		{Matcher: &idle, Hooks: []hookCommand{{Type: "command", Command: "c"}}},
		{Hooks: []hookCommand{{Type: "command", Command: "a"}, {Type: "prompt", Command: "llm"}}},
	}}}
	cmds, _ := e.selected("Notification", "permission_prompt")
	var got []string
	for _, c := range cmds {
		got = append(got, c.Command)
	}
	if !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("selected = %v, want [a b]", got)
	}
}

func TestParseTOMLNotify(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string
	}{
		{"one line", `notify = ["notify-send", "Codex"]`, []string{"notify-send", "Codex"}},
		{"multi-line with comments and trailing comma", `
model = "o3"   # the model
notify = [
  "python3",   # interpreter
  '/home/u/.codex/notify.py',
  "--flag=a b",
]
approval_policy = "never"
`, []string{"python3", "/home/u/.codex/notify.py", "--flag=a b"}},
		{"escapes", `notify = ["sh", "-c", "echo \"$1\" \\ \u00e9\tx", "sh"]`, []string{"sh", "-c", "echo \"$1\" \\ é\tx", "sh"}},
		{"literal string keeps backslashes", `notify = ['C:\bin\n.exe']`, []string{`C:\bin\n.exe`}},
		{"notify inside a table is not top-level", "[tui]\nnotify = [\"x\"]\n", nil},
		{"after tables, before them counts", "notify = [\"top\"]\n[profiles.fast]\nnotify = [\"no\"]\n[[x]]\na = 1\n", []string{"top"}},
		{"absent", `model = "o3"`, nil},
		{"not an array of strings", `notify = [1, 2]`, nil},
		{"multi-line basic string", "notify = [\"\"\"\nline\"\"\"]", []string{"line"}},
	}
	for _, c := range cases {
		cfg, err := parseTOML(c.src)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := notifyArgv(cfg); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: notify = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestParseTOMLTablesAndValues(t *testing.T) {
	cfg, err := parseTOML(`
[features]
codex_hooks = true   # on
web = false
[mcp_servers."my server"]
command = "npx"
args = ["-y", "srv"]
env = { "K" = "v}" }
timeout = 30
`)
	if err != nil {
		t.Fatal(err)
	}
	if cfg["features.codex_hooks"] != true || cfg["features.web"] != false {
		t.Errorf("features: %v %v", cfg["features.codex_hooks"], cfg["features.web"])
	}
	if cfg["mcp_servers.my server.command"] != "npx" || cfg["mcp_servers.my server.timeout"] != tomlRaw("30") {
		t.Errorf("table keys: %v", cfg)
	}
	if !strings.Contains(string(cfg["mcp_servers.my server.env"].(tomlRaw)), `"v}"`) {
		t.Errorf("inline table: %v", cfg["mcp_servers.my server.env"])
	}
	for _, bad := range []string{`notify = ["unterminated`, `notify = `, "a = 1 2", `a = "x\q"`} {
		if _, err := parseTOML(bad); err == nil {
			t.Errorf("parseTOML(%q) accepted", bad)
		}
	}
}

func TestNotifyJSONShape(t *testing.T) {
	s := notifyJSON("th", "tu", "/w", []string{"hi"}, "reply: hi")
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"type": "agent-turn-complete", "thread-id": "th", "turn-id": "tu", "cwd": "/w",
		"client": "codex-tui", "input-messages": []any{"hi"}, "last-assistant-message": "reply: hi"}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("notify JSON = %v", m)
	}
}

func TestGeminiHooksEnabled(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	none := write("none.json", `{}`)
	off := write("off.json", `{"hooksConfig":{"enabled":false}}`)
	legacyOff := write("legacy.json", `{"tools":{"enableHooks":false}}`)
	on := write("on.json", `{"hooksConfig":{"enabled":true,"disabled":["x"]}}`)
	if en, _ := geminiHooksEnabled(none); !en {
		t.Error("hooks default to enabled")
	}
	if en, _ := geminiHooksEnabled(off); en {
		t.Error("hooksConfig.enabled false ignored")
	}
	if en, _ := geminiHooksEnabled(legacyOff); en {
		t.Error("tools.enableHooks false ignored")
	}
	if en, dis := geminiHooksEnabled(off, on); !en || !dis["x"] {
		t.Errorf("later layer: enabled %v disabled %v", en, dis)
	}
}

func TestParseExitAndPerm(t *testing.T) {
	for line, want := range map[string]int{"exit": 0, "exit 3": 3, "exit  42": 42} {
		if got, ok := parseExit(line); !ok || got != want {
			t.Errorf("parseExit(%q) = %d, %v", line, got, ok)
		}
	}
	for _, line := range []string{"exits", "exit now", "please exit 1"} {
		if _, ok := parseExit(line); ok {
			t.Errorf("parseExit(%q) accepted", line)
		}
	}
	if !wantsPermission("do perm thing") || !wantsPermission("perm") || wantsPermission("permission") {
		t.Error("wantsPermission")
	}
}

func TestClaudeProjectDir(t *testing.T) {
	if got := claudeProjectDir("/home/agent/my.repo_x"); got != "-home-agent-my-repo-x" {
		t.Errorf("claudeProjectDir = %q", got)
	}
}

// A hook that hangs is killed at its timeout, with the processes it
// started; one that exits 2 reports its stderr as the blocking reason.
func TestRunOneTimeoutAndBlocking(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	a := &app{cwd: dir, out: &term{w: new(strings.Builder)}, log: &eventLog{path: filepath.Join(dir, "log")}}
	e := &hookEngine{a: a, d: dialect{match: matchClaude, unit: time.Second, defTimeout: time.Minute}}
	start := time.Now()
	r := e.runOne("Stop", hookCommand{Command: "sleep 30 & sleep 30", Timeout: 0.5}, []byte("{}"))
	if !r.TimedOut || time.Since(start) > 5*time.Second {
		t.Errorf("hanging hook: %+v after %v", r, time.Since(start))
	}
	r = e.runOne("Stop", hookCommand{Command: "cat > " + filepath.Join(dir, "in") + "; echo no >&2; exit 2"}, []byte(`{"a":1}`))
	if reason, blocked := blocking([]hookRun{r}); !blocked || reason != "no" {
		t.Errorf("exit 2: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "in")); string(b) != `{"a":1}` {
		t.Errorf("stdin = %q", b)
	}
	r = e.runOne("Stop", hookCommand{Command: `echo '{"hookSpecificOutput":{"decision":{"behavior":"allow"}}}'`}, nil)
	if permissionDecision([]hookRun{r}) != "allow" {
		t.Errorf("permission decision from %q", r.Stdout)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "log"))
	if n := strings.Count(string(log), `"kind":"hook"`); n != 3 {
		t.Errorf("%d hook records logged, want 3:\n%s", n, log)
	}
}

func TestBracketedPasteIsOnePrompt(t *testing.T) {
	a := &app{input: make(chan string, 8)}
	a.readInput(strings.NewReader("first\n\x1b[200~GitHub issue 3: fix\nhttps://x/3\n\nbody\x1b[201~\nlast\n"))
	var got []string
	for l := range a.input {
		got = append(got, l)
	}
	want := []string{"first", "GitHub issue 3: fix https://x/3 body", "last"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines %q, want %q", got, want)
	}
}
