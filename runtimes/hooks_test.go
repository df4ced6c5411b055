package runtimes

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/agentstate"
)

func noEnv(string) string { return "" }

func rt(t *testing.T, name string) Runtime {
	t.Helper()
	r, ok := Get(name)
	if !ok {
		t.Fatalf("no runtime %s", name)
	}
	return r
}

// The user's own hooks and settings are kept; jackin's entries are added
// once, and a second start writes nothing.
func TestClaudeHooksMergeKeepsTheUsersOwn(t *testing.T) {
	home := t.TempDir()
	settings := filepath.Join(home, ".claude", "settings.json")
	os.MkdirAll(filepath.Dir(settings), 0o700)
	user := `{"model": "opus", "hooks": {"Stop": [{"matcher": "", "hooks": [{"type": "command", "command": "notify-send done"}]}]}}`
	os.WriteFile(settings, []byte(user), 0o600)

	written, warns := rt(t, Claude).InstallHooks(home, noEnv)
	if len(warns) > 0 || len(written) != 1 {
		t.Fatalf("written %v warnings %v", written, warns)
	}
	var doc struct {
		Model string                      `json:"model"`
		Hooks map[string][]map[string]any `json:"hooks"`
	}
	b, _ := os.ReadFile(settings)
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Model != "opus" {
		t.Errorf("the user's model setting is gone: %s", b)
	}
	if !strings.Contains(string(b), "notify-send done") {
		t.Errorf("the user's Stop hook is gone: %s", b)
	}
	for _, ev := range claudeEvents {
		n := strings.Count(string(mustJSON(doc.Hooks[ev])), HookCommand(Claude))
		if n != 1 {
			t.Errorf("%s runs jackin's hook %d times: %s", ev, n, b)
		}
	}
	if len(doc.Hooks["Stop"]) != 2 {
		t.Errorf("Stop: want the user's group and jackin's, got %v", doc.Hooks["Stop"])
	}
	info, _ := os.Stat(settings)
	if info.Mode().Perm() != 0o600 {
		t.Errorf("the file's mode changed to %v", info.Mode())
	}
	// A second start (the volume keeps the file) changes nothing.
	if written, warns := rt(t, Claude).InstallHooks(home, noEnv); len(written)+len(warns) != 0 {
		t.Errorf("second install: written %v warnings %v", written, warns)
	}
	// CLAUDE_CONFIG_DIR moves the settings.
	alt := t.TempDir()
	written, _ = rt(t, Claude).InstallHooks(home, func(k string) string {
		if k == "CLAUDE_CONFIG_DIR" {
			return alt
		}
		return ""
	})
	if len(written) != 1 || written[0] != filepath.Join(alt, "settings.json") {
		t.Errorf("CLAUDE_CONFIG_DIR: wrote %v", written)
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

// A settings file that does not parse is left byte for byte, with a warning.
func TestCorruptSettingsAreLeftUntouched(t *testing.T) {
	for _, c := range []struct {
		runtime, rel, content string
	}{
		{Claude, ".claude/settings.json", `{"hooks": {`},
		{Claude, ".claude/settings.json", `{"hooks": "nope"}`},
		{Gemini, ".gemini/settings.json", `not json`},
		{Codex, ".codex/config.toml", "notify = [\n"},
	} {
		home := t.TempDir()
		p := filepath.Join(home, c.rel)
		os.MkdirAll(filepath.Dir(p), 0o700)
		os.WriteFile(p, []byte(c.content), 0o600)
		written, warns := rt(t, c.runtime).InstallHooks(home, noEnv)
		if len(written) != 0 || len(warns) != 1 || !strings.Contains(warns[0], "left as it is") {
			t.Errorf("%s %q: written %v warnings %v", c.runtime, c.content, written, warns)
		}
		if b, _ := os.ReadFile(p); string(b) != c.content {
			t.Errorf("%s: the file changed to %q", c.runtime, b)
		}
	}
}

func TestGeminiHooksAreEnabledUnlessTheUserSaidOtherwise(t *testing.T) {
	home := t.TempDir()
	if _, warns := rt(t, Gemini).InstallHooks(home, noEnv); len(warns) > 0 {
		t.Fatal(warns)
	}
	b, _ := os.ReadFile(filepath.Join(home, ".gemini", "settings.json"))
	var doc map[string]any
	json.Unmarshal(b, &doc)
	if doc["hooksConfig"].(map[string]any)["enabled"] != true || doc["tools"].(map[string]any)["enableHooks"] != true {
		t.Errorf("hooks not enabled: %s", b)
	}
	hooks := doc["hooks"].(map[string]any)
	g := hooks["BeforeTool"].([]any)[0].(map[string]any)["hooks"].([]any)[0].(map[string]any)
	if g["timeout"] != float64(5000) {
		t.Errorf("Gemini's timeout is in milliseconds: %v", g["timeout"])
	}
	// The user's choice is kept, and said.
	home2 := t.TempDir()
	os.MkdirAll(filepath.Join(home2, ".gemini"), 0o700)
	os.WriteFile(filepath.Join(home2, ".gemini", "settings.json"), []byte(`{"hooksConfig": {"enabled": false}}`), 0o600)
	_, warns := rt(t, Gemini).InstallHooks(home2, noEnv)
	b, _ = os.ReadFile(filepath.Join(home2, ".gemini", "settings.json"))
	if !strings.Contains(string(b), `"enabled": false`) || len(warns) != 1 || !strings.Contains(warns[0], "disabled") {
		t.Errorf("the user's hooksConfig.enabled=false: %s, warnings %v", b, warns)
	}
}

func TestCodexNotify(t *testing.T) {
	home := t.TempDir()
	cfg := filepath.Join(home, ".codex", "config.toml")
	os.MkdirAll(filepath.Dir(cfg), 0o700)
	user := "model = \"o3\"\n\n[profiles.fast]\nmodel = \"mini\"\n"
	os.WriteFile(cfg, []byte(user), 0o600)
	if written, warns := rt(t, Codex).InstallHooks(home, noEnv); len(written) != 1 || len(warns) > 0 {
		t.Fatalf("written %v warnings %v", written, warns)
	}
	b, _ := os.ReadFile(cfg)
	if !strings.HasSuffix(string(b), user) || !strings.Contains(string(b), `notify = ["/run/jackin/bin/jackin", "hook", "codex"]`) {
		t.Errorf("config.toml:\n%s", b)
	}
	if strings.Index(string(b), "notify") > strings.Index(string(b), "[profiles") {
		t.Errorf("notify must be a top-level key, before any table:\n%s", b)
	}
	if written, warns := rt(t, Codex).InstallHooks(home, noEnv); len(written)+len(warns) != 0 {
		t.Errorf("second install: %v %v", written, warns)
	}
	// The user's own notify program is kept, with a warning.
	home2 := t.TempDir()
	cfg2 := filepath.Join(home2, ".codex", "config.toml")
	os.MkdirAll(filepath.Dir(cfg2), 0o700)
	os.WriteFile(cfg2, []byte(`notify = ["my-notifier"]`+"\n"), 0o600)
	written, warns := rt(t, Codex).InstallHooks(home2, func(k string) string {
		if k == "CODEX_HOME" {
			return filepath.Dir(cfg2)
		}
		return ""
	})
	if len(written) != 0 || len(warns) != 1 || !strings.Contains(warns[0], "my-notifier") {
		t.Errorf("user notify: written %v warnings %v", written, warns)
	}
}

// replay feeds recorded hook payloads through the adapter into a machine.
func replay(m *agentstate.Machine, r Runtime, payloads ...string) []agentstate.State {
	var out []agentstate.State
	t0 := time.Unix(0, 0)
	for i, p := range payloads {
		for _, ev := range r.Translate([]byte(p)) {
			ev.Time = t0.Add(time.Duration(i) * time.Second)
			m.Apply(ev)
		}
		out = append(out, m.State().State)
	}
	return out
}

func TestRecordedHookSequences(t *testing.T) {
	const (
		idle    = agentstate.StateIdle
		working = agentstate.StateWorking
		blocked = agentstate.StateBlocked
		done    = agentstate.StateDone
	)
	cases := []struct {
		name     string
		runtime  string
		payloads []string
		want     []agentstate.State
		detail   string
	}{
		{"claude: a turn with a permission", Claude, []string{
			`{"hook_event_name":"SessionStart","source":"startup","session_id":"s"}`,
			`{"hook_event_name":"UserPromptSubmit","prompt":"fix it"}`,
			`{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"rm -rf /tmp/x"}}`,
			`{"hook_event_name":"Notification","notification_type":"permission_prompt","message":"Claude needs your permission to use Bash"}`,
			`{"hook_event_name":"PostToolUse","tool_name":"Bash"}`,
			`{"hook_event_name":"Stop","stop_hook_active":false}`,
		}, []agentstate.State{idle, working, working, blocked, working, done}, ""},
		{"claude: late SubagentStop and PostToolUse after Stop", Claude, []string{
			`{"hook_event_name":"UserPromptSubmit","prompt":"go"}`,
			`{"hook_event_name":"PreToolUse","tool_name":"Task"}`,
			`{"hook_event_name":"Stop"}`,
			`{"hook_event_name":"SubagentStop"}`,
			`{"hook_event_name":"PostToolUse","tool_name":"Task"}`,
		}, []agentstate.State{working, working, done, done, done}, ""},
		{"claude: blocked names the tool, never its input", Claude, []string{
			`{"hook_event_name":"UserPromptSubmit","prompt":"x"}`,
			`{"hook_event_name":"PermissionRequest","tool_name":"Bash","tool_input":{"command":"echo $SECRET"}}`,
		}, []agentstate.State{working, blocked}, "Bash"},
		{"gemini: a turn with a permission", Gemini, []string{
			`{"hook_event_name":"SessionStart","source":"startup"}`,
			`{"hook_event_name":"BeforeAgent","prompt":"p"}`,
			`{"hook_event_name":"BeforeTool","tool_name":"run_shell_command"}`,
			`{"hook_event_name":"Notification","notification_type":"ToolPermission","message":"Tool Shell requires execution","details":{"type":"exec","title":"Shell","command":"ls"}}`,
			`{"hook_event_name":"AfterTool","tool_name":"run_shell_command"}`,
			`{"hook_event_name":"AfterAgent","prompt_response":"ok"}`,
		}, []agentstate.State{idle, working, working, blocked, working, done}, ""},
		{"codex: notify ends a turn", Codex, []string{
			`{"type":"agent-turn-complete","thread-id":"t","turn-id":"1","last-assistant-message":"done"}`,
		}, []agentstate.State{done}, ""},
	}
	for _, c := range cases {
		m := agentstate.NewMachine(time.Unix(0, 0))
		r := rt(t, c.runtime)
		if r.State == StateNotify {
			m.OpenTurnsOnOutput()
		}
		got := replay(m, r, c.payloads...)
		for i := range c.want {
			if got[i] != c.want[i] {
				t.Errorf("%s: %v, want %v", c.name, got, c.want)
				break
			}
		}
		if c.detail != "" && m.State().Detail != c.detail {
			t.Errorf("%s: detail %q, want %q", c.name, m.State().Detail, c.detail)
		}
	}
}

func TestOpenCodeServerEvents(t *testing.T) {
	m := agentstate.NewMachine(time.Unix(0, 0))
	seq := []struct {
		data string
		want agentstate.State
	}{
		{`{"type":"server.connected","properties":{}}`, agentstate.StateIdle},
		{`{"type":"session.status","properties":{"sessionID":"s","status":{"type":"busy"}}}`, agentstate.StateWorking},
		{`{"type":"permission.asked","properties":{"id":"p","sessionID":"s","permission":"bash","patterns":["ls"]}}`, agentstate.StateBlocked},
		{`{"type":"permission.replied","properties":{"sessionID":"s","requestID":"p","reply":"once"}}`, agentstate.StateWorking},
		{`{"type":"session.status","properties":{"sessionID":"s","status":{"type":"idle"}}}`, agentstate.StateDone},
		{`{"type":"session.idle","properties":{"sessionID":"s"}}`, agentstate.StateDone},
		{`{"type":"session.status","properties":{"sessionID":"s","status":{"type":"busy"}}}`, agentstate.StateWorking},
		{`{"type":"permission.updated","properties":{"id":"p","type":"edit","title":"Edit a.go"}}`, agentstate.StateBlocked},
		{`not json`, agentstate.StateBlocked},
	}
	for i, s := range seq {
		for _, ev := range TranslateServerEvent([]byte(s.data)) {
			ev.Time = time.Unix(int64(i), 0)
			m.Apply(ev)
		}
		if got := m.State().State; got != s.want {
			t.Fatalf("after %s: %s, want %s", s.data, got, s.want)
		}
	}
	if d := m.State().Detail; d != "edit" {
		t.Errorf("detail %q", d)
	}
}
