package runtimes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/jackin-dev/jackin/agentstate"
)

// HookMarker is in every hook command jackin writes into a runtime's
// settings: it tells jackin's entries from the user's own.
const HookMarker = "/run/jackin/bin/jackin hook "

// HookCommand is the command a runtime's hook runs to report to the
// supervisor: it reads the documented JSON on stdin (or, for Codex's
// notify, as its last argument), prints nothing and always exits 0, so it
// never blocks a turn or adds to the model's context.
func HookCommand(runtime string) string { return HookMarker + runtime }

// The Claude Code hook events jackin listens to (its hooks reference).
var claudeEvents = []string{"SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest", "PostToolUse", "Notification", "Stop", "SubagentStop", "SessionEnd"}

// The Gemini CLI hook events jackin listens to (docs/hooks/reference.md).
var geminiEvents = []string{"SessionStart", "BeforeAgent", "BeforeTool", "AfterTool", "Notification", "AfterAgent", "SessionEnd"}

// InstallHooks writes the runtime's status hooks where the runtime reads
// them, under home (the agent's HOME) or the config dir env names (env is
// the agent's environment). It merges into an existing settings file and
// never changes or removes the user's own entries; a settings file it
// cannot read is left as it is, with a warning, and the agent's state then
// comes from terminal activity. It returns the files it wrote and the
// warnings.
func (r Runtime) InstallHooks(home string, env func(string) string) (written []string, warnings []string) {
	switch r.Name {
	case Claude:
		dir := env("CLAUDE_CONFIG_DIR")
		if dir == "" {
			dir = filepath.Join(home, ".claude")
		}
		return installJSONHooks(filepath.Join(dir, "settings.json"), claudeEvents, HookCommand(Claude), 5, nil)
	case Gemini:
		dir := filepath.Join(home, ".gemini")
		if h := env("GEMINI_CLI_HOME"); h != "" {
			dir = filepath.Join(h, ".gemini")
		}
		// Hooks are on by default since hooksConfig.enabled; releases
		// before January 2026 read tools.enableHooks instead. Both are set
		// when the user has not set them.
		var warns []string
		enable := func(doc map[string]any) {
			setDefault(doc, "hooksConfig", "enabled", true)
			setDefault(doc, "tools", "enableHooks", true)
			if hc, _ := doc["hooksConfig"].(map[string]any); hc["enabled"] == false {
				warns = append(warns, "~/.gemini/settings.json has hooks disabled (hooksConfig.enabled: false): kept; Gemini CLI will not call jackin's hooks, so its state is not known")
			}
		}
		written, w := installJSONHooks(filepath.Join(dir, "settings.json"), geminiEvents, HookCommand(Gemini), 5000, enable)
		return written, append(w, warns...)
	case Codex:
		dir := env("CODEX_HOME")
		if dir == "" {
			dir = filepath.Join(home, ".codex")
		}
		return installCodexNotify(filepath.Join(dir, "config.toml"))
	}
	return nil, nil
}

// setDefault sets doc[section][key] = v unless the user set it.
func setDefault(doc map[string]any, section, key string, v any) {
	sec, ok := doc[section].(map[string]any)
	if !ok {
		if _, taken := doc[section]; taken {
			return
		}
		sec = map[string]any{}
		doc[section] = sec
	}
	if _, set := sec[key]; !set {
		sec[key] = v
	}
}

// installJSONHooks adds one matcher group running command to each event of
// a Claude-style settings file ({"hooks": {EVENT: [{matcher, hooks:
// [{type, command, timeout}]}]}}), unless one already runs it.
func installJSONHooks(path string, events []string, command string, timeout int, also func(map[string]any)) ([]string, []string) {
	doc := map[string]any{}
	old, err := readSmall(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		old = nil
	case err != nil:
		return nil, []string{fmt.Sprintf("%s: %v: left as it is; state comes from terminal activity", path, err)}
	case len(bytes.TrimSpace(old)) > 0:
		if err := json.Unmarshal(old, &doc); err != nil || doc == nil {
			return nil, []string{fmt.Sprintf("%s is not valid JSON (%v): left as it is; jackin's status hooks are not installed and state comes from terminal activity", path, err)}
		}
	}
	hooks, ok := doc["hooks"].(map[string]any)
	if !ok {
		if _, taken := doc["hooks"]; taken {
			return nil, []string{fmt.Sprintf("%s: hooks is not an object: left as it is; state comes from terminal activity", path)}
		}
		hooks = map[string]any{}
		doc["hooks"] = hooks
	}
	for _, ev := range events {
		groups, _ := hooks[ev].([]any)
		if _, taken := hooks[ev]; taken && groups == nil {
			return nil, []string{fmt.Sprintf("%s: hooks.%s is not a list: left as it is; state comes from terminal activity", path, ev)}
		}
		if hasCommand(groups, command) {
			continue
		}
		groups = append(groups, map[string]any{
			"hooks": []any{map[string]any{"type": "command", "command": command, "timeout": timeout}},
		})
		hooks[ev] = groups
	}
	if also != nil {
		also(doc)
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, []string{fmt.Sprintf("%s: %v", path, err)}
	}
	out = append(out, '\n')
	if bytes.Equal(out, old) {
		return nil, nil
	}
	if err := writeAtomic(path, out); err != nil {
		return nil, []string{fmt.Sprintf("install hooks in %s: %v; state comes from terminal activity", path, err)}
	}
	return []string{path}, nil
}

// hasCommand reports whether a list of matcher groups runs command.
func hasCommand(groups []any, command string) bool {
	for _, g := range groups {
		gm, _ := g.(map[string]any)
		hs, _ := gm["hooks"].([]any)
		for _, h := range hs {
			hm, _ := h.(map[string]any)
			if c, _ := hm["command"].(string); c == command {
				return true
			}
		}
	}
	return false
}

// installCodexNotify sets Codex's top-level notify program, unless the
// user set one of their own (then state comes from terminal activity, and
// a warning says why). The line is added at the top of config.toml,
// before any table, and the rest of the file is kept byte for byte.
func installCodexNotify(path string) ([]string, []string) {
	old, err := readSmall(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, []string{fmt.Sprintf("%s: %v: left as it is; state comes from terminal activity", path, err)}
	}
	var doc map[string]any
	if err := toml.Unmarshal(old, &doc); err != nil {
		return nil, []string{fmt.Sprintf("%s is not valid TOML (%v): left as it is; jackin's notify program is not installed and state comes from terminal activity", path, err)}
	}
	argv := []string{"/run/jackin/bin/jackin", "hook", Codex}
	if n, set := doc["notify"]; set {
		if list, ok := n.([]any); ok && len(list) == len(argv) {
			same := true
			for i := range list {
				if s, _ := list[i].(string); s != argv[i] {
					same = false
				}
			}
			if same {
				return nil, nil
			}
		}
		return nil, []string{fmt.Sprintf("%s sets notify to a program of its own (%v): kept; Codex's finished turns are then seen from terminal activity only", path, n)}
	}
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = fmt.Sprintf("%q", a)
	}
	line := "# Added by jackin: Codex runs this when a turn ends, to report the agent's state.\nnotify = [" + strings.Join(q, ", ") + "]\n"
	if len(old) > 0 {
		line += "\n"
	}
	if err := writeAtomic(path, append([]byte(line), old...)); err != nil {
		return nil, []string{fmt.Sprintf("install notify in %s: %v; state comes from terminal activity", path, err)}
	}
	return []string{path}, nil
}

// maxSettings bounds a settings file jackin reads.
const maxSettings = 4 << 20

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	if fi.Size() > maxSettings {
		return nil, fmt.Errorf("larger than %d bytes", maxSettings)
	}
	return os.ReadFile(path)
}

// writeAtomic replaces path with data through a temporary file and a
// rename, keeping the old file's mode.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	mode := os.FileMode(0o600)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".jackin-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), mode)); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	// A settings path that is a symlink (into the runtime-home volume) is
	// written through: the link stays.
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// hookPayload is the part of the runtimes' hook JSON jackin reads (Claude
// Code's and Gemini CLI's share these names).
type hookPayload struct {
	Event            string `json:"hook_event_name"`
	ToolName         string `json:"tool_name"`
	NotificationType string `json:"notification_type"`
	Message          string `json:"message"`
	Type             string `json:"type"` // Codex notify
	Details          struct {
		Title string `json:"title"`
	} `json:"details"`
}

// toolInMessage finds the tool a permission message names ("Claude needs
// your permission to use Bash", "Tool Shell requires execution").
var toolInMessage = regexp.MustCompile(`(?:permission to use|^Tool) ([A-Za-z0-9_.:-]{1,64})`)

// Translate turns one hook report of the runtime into the runtime-neutral
// events the state machine takes. Unknown events give none. Details are
// tool names only, never the tool's input.
func (r Runtime) Translate(payload []byte) []agentstate.Event {
	var p hookPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil
	}
	ev := func(k agentstate.EventKind, detail string) []agentstate.Event {
		return []agentstate.Event{{Kind: k, Detail: cleanDetail(detail)}}
	}
	switch r.Name {
	case Claude:
		switch p.Event {
		case "SessionStart":
			return ev(agentstate.EventSessionStart, "")
		case "UserPromptSubmit":
			return ev(agentstate.EventPrompt, "")
		case "PreToolUse", "PostToolUse":
			return ev(agentstate.EventTool, p.ToolName)
		case "PermissionRequest":
			return ev(agentstate.EventPermission, p.ToolName)
		case "Notification":
			switch p.NotificationType {
			case "permission_prompt":
				return ev(agentstate.EventPermission, toolOf(p.Message))
			case "idle_prompt":
				return ev(agentstate.EventIdlePrompt, "")
			}
		case "Stop":
			return ev(agentstate.EventTurnEnd, "")
		case "SubagentStop":
			return ev(agentstate.EventSubagentEnd, "")
		case "SessionEnd":
			return ev(agentstate.EventSessionEnd, "")
		}
	case Gemini:
		switch p.Event {
		case "SessionStart":
			return ev(agentstate.EventSessionStart, "")
		case "BeforeAgent":
			return ev(agentstate.EventPrompt, "")
		case "BeforeTool", "AfterTool":
			return ev(agentstate.EventTool, p.ToolName)
		case "Notification":
			if p.NotificationType == "ToolPermission" {
				d := p.Details.Title
				if d == "" {
					d = toolOf(p.Message)
				}
				return ev(agentstate.EventPermission, d)
			}
		case "AfterAgent":
			return ev(agentstate.EventTurnEnd, "")
		case "SessionEnd":
			return ev(agentstate.EventSessionEnd, "")
		}
	case Codex:
		if p.Type == "agent-turn-complete" {
			return ev(agentstate.EventTurnEnd, "")
		}
	}
	return nil
}

func toolOf(msg string) string {
	if m := toolInMessage.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return ""
}

// cleanDetail keeps a detail short and printable: a tool name.
func cleanDetail(s string) string {
	var b strings.Builder
	for _, c := range s {
		if b.Len() >= 64 {
			break
		}
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_.:- ", c) {
			b.WriteRune(c)
		}
	}
	return strings.TrimSpace(b.String())
}
