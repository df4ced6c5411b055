package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// gemini is the Gemini CLI stand-in.
//
// Hooks come from /etc/gemini-cli/settings.json, ~/.gemini/settings.json
// (GEMINI_CLI_HOME replaces the home directory) and the project's
// .gemini/settings.json, all layers combined and identical commands once;
// none run when hooksConfig.enabled or the legacy tools.enableHooks is
// false, and commands in hooksConfig.disabled are skipped. "timeout" is in
// milliseconds (default 60000). Hooks must print JSON or nothing: other
// stdout is shown to the user as a system message.
//
// Events: SessionStart (source startup) at launch; per turn BeforeAgent,
// BeforeTool (run_shell_command), for "perm" Notification ToolPermission and
// the y/n question ("n" cancels the turn: no AfterTool, no AfterAgent),
// AfterTool, AfterAgent; SessionEnd (reason exit) at exit, not waited for.
type gemini struct {
	a       *app
	dir     string
	hooks   *hookEngine
	chat    string
	yolo    bool
	started string
	msgs    []any
	legacy  bool
	lines   *jsonl
}

func newGemini(a *app) *gemini {
	home := a.home
	if h := os.Getenv("GEMINI_CLI_HOME"); h != "" {
		home = h
	}
	g := &gemini{a: a, dir: filepath.Join(home, ".gemini"), started: nowISO()}
	mode, _ := argValue(a.args, "--approval-mode")
	g.yolo = mode == "yolo" || hasArg(a.args, "--yolo", "-y")
	files := []string{"/etc/gemini-cli/settings.json", filepath.Join(g.dir, "settings.json"), filepath.Join(a.cwd, ".gemini", "settings.json")}
	enabled, disabled := geminiHooksEnabled(files...)
	hs, read, bad := loadHookFiles(files...)
	if !enabled {
		hs = hookSet{}
	}
	for event, groups := range hs {
		for i := range groups {
			var keep []hookCommand
			for _, h := range groups[i].Hooks {
				if !disabled[h.Command] && (h.Name == "" || !disabled[h.Name]) {
					keep = append(keep, h)
				}
			}
			groups[i].Hooks = keep
		}
		hs[event] = groups
	}
	g.hooks = &hookEngine{a: a, hooks: hs, d: dialect{
		match: matchGemini, unit: time.Millisecond, defTimeout: 60 * time.Second, honourSequential: true,
		env: []string{"GEMINI_PROJECT_DIR=" + a.cwd, "GEMINI_CWD=" + a.cwd, "GEMINI_SESSION_ID=" + a.session,
			"GEMINI_PLANS_DIR=" + filepath.Join(g.projectTemp(), "plans"), "CLAUDE_PROJECT_DIR=" + a.cwd},
	}}
	g.legacy = os.Getenv("STANDIN_GEMINI_LEGACY") == "1"
	g.chat = filepath.Join(g.projectTemp(), "chats", "session-"+time.Now().UTC().Format("2006-01-02T15-04")+"-"+short(a.session, 8)+".json")
	if !g.legacy {
		g.chat += "l"
	}
	a.log.record(map[string]any{"kind": "config", "settings_read": read, "settings_invalid": bad, "hooks_enabled": enabled,
		"hooks": hs.count(), "transcript_path": g.chat, "yolo": g.yolo})
	return g
}

// geminiHooksEnabled reads hooksConfig.enabled and tools.enableHooks (both
// default true; the last file setting one wins) and hooksConfig.disabled.
func geminiHooksEnabled(files ...string) (bool, map[string]bool) {
	enabled := true
	disabled := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var s struct {
			HooksConfig struct {
				Enabled  *bool    `json:"enabled"`
				Disabled []string `json:"disabled"`
			} `json:"hooksConfig"`
			Tools struct {
				EnableHooks *bool `json:"enableHooks"`
			} `json:"tools"`
		}
		if json.Unmarshal(b, &s) != nil {
			continue
		}
		if s.HooksConfig.Enabled != nil {
			enabled = *s.HooksConfig.Enabled
		}
		if s.Tools.EnableHooks != nil && !*s.Tools.EnableHooks {
			enabled = false
		}
		for _, d := range s.HooksConfig.Disabled {
			disabled[d] = true
		}
	}
	return enabled, disabled
}

func (g *gemini) projectTemp() string {
	h := sha256.Sum256([]byte(g.a.cwd))
	return filepath.Join(g.dir, "tmp", hex.EncodeToString(h[:]))
}

func (g *gemini) banner() string {
	return "Gemini CLI stand-in " + version + " (session " + g.a.session + ")"
}

func (g *gemini) payload(event string) map[string]any {
	return map[string]any{
		"session_id": g.a.session, "transcript_path": g.chat, "cwd": g.a.cwd,
		"hook_event_name": event, "timestamp": nowISO(),
	}
}

// fire runs hooks and shows non-JSON stdout as the CLI does (a system
// message).
func (g *gemini) fire(event, subject string, p map[string]any) []hookRun {
	runs := g.hooks.fire(event, subject, p)
	for _, r := range runs {
		out := strings.TrimSpace(r.Stdout)
		if out == "" || r.Exit != 0 {
			continue
		}
		var v map[string]any
		if json.Unmarshal([]byte(out), &v) != nil {
			g.a.out.println("[" + event + " hook] " + out)
		} else if m, ok := v["systemMessage"].(string); ok {
			g.a.out.println(m)
		}
	}
	return runs
}

func (g *gemini) start() {
	source := "startup"
	if hasArg(g.a.args, "--resume", "-r") {
		source = "resume"
	}
	p := g.payload("SessionStart")
	p["source"] = source
	g.fire("SessionStart", source, p)
}

// end fires SessionEnd without waiting for it beyond a short grace, as
// the CLI does not wait for SessionEnd hooks.
func (g *gemini) end(why string) {
	reason := "exit"
	if why == "signal" {
		reason = "other"
	}
	p := g.payload("SessionEnd")
	p["reason"] = reason
	done := make(chan struct{})
	go func() { g.hooks.fire("SessionEnd", reason, p); close(done) }()
	select {
	case <-done:
	case <-time.After(300 * time.Millisecond):
	}
}

// record writes a message to the chat: appended to the JSON Lines file
// (the session's metadata first; a reply written again once its tokens
// are known, as chatRecordingService does), or, with
// STANDIN_GEMINI_LEGACY=1, the whole document rewritten.
func (g *gemini) record(kind, text string, tokens map[string]int) {
	m := map[string]any{"id": newUUID(), "timestamp": nowISO(), "type": kind, "content": []any{map[string]any{"text": text}}}
	if !g.legacy {
		if g.lines == nil {
			g.lines = &jsonl{path: g.chat}
			g.lines.write(map[string]any{"sessionId": g.a.session, "projectHash": filepath.Base(g.projectTemp()),
				"startTime": g.started, "lastUpdated": nowISO(), "kind": "main"})
		}
		if tokens != nil {
			m["model"] = standinModel("gemini-standin")
			g.lines.write(m)
			m["tokens"] = tokens
		}
		g.lines.write(m)
		g.lines.write(map[string]any{"$set": map[string]any{"lastUpdated": nowISO()}})
		return
	}
	if tokens != nil {
		m["tokens"], m["model"] = tokens, standinModel("gemini-standin")
	}
	g.msgs = append(g.msgs, m)
	doc := map[string]any{"sessionId": g.a.session, "projectHash": filepath.Base(g.projectTemp()),
		"startTime": g.started, "lastUpdated": nowISO(), "messages": g.msgs}
	b, _ := json.MarshalIndent(doc, "", "  ")
	os.MkdirAll(filepath.Dir(g.chat), 0o700)
	os.WriteFile(g.chat, b, 0o600)
}

func (g *gemini) turn(line string) bool {
	p := g.payload("BeforeAgent")
	p["prompt"] = line
	if reason, blocked := blocking(g.fire("BeforeAgent", "", p)); blocked {
		g.a.out.println("Turn blocked by hook: " + reason)
		return false
	}
	g.record("user", line, nil)
	g.a.think(line)
	command := "echo " + shellQuote(line)
	input := map[string]any{"command": command, "description": "Echo the prompt"}
	bt := g.payload("BeforeTool")
	bt["tool_name"], bt["tool_input"] = "run_shell_command", input
	_, denied := blocking(g.fire("BeforeTool", "run_shell_command", bt))
	if !denied && wantsPermission(line) && !(respectBypass() && g.yolo) {
		n := g.payload("Notification")
		n["notification_type"] = "ToolPermission"
		n["message"] = "Tool Shell requires execution"
		n["details"] = map[string]any{"type": "exec", "title": "Shell", "command": command, "rootCommand": "echo"}
		g.fire("Notification", "", n)
		g.a.out.println("Shell " + command)
		if !g.a.ask("Allow execution of: 'echo'?") {
			g.a.out.println("Request cancelled.")
			return false
		}
	}
	if !denied {
		g.a.out.println(line)
		at := g.payload("AfterTool")
		at["tool_name"], at["tool_input"] = "run_shell_command", input
		at["tool_response"] = map[string]any{"llmContent": "Command: " + command + "\nOutput: " + line, "returnDisplay": line}
		g.fire("AfterTool", "run_shell_command", at)
	}
	reply := "reply: " + line
	g.a.out.println(reply)
	tokens := map[string]int{"input": 1000, "output": 10 + len(reply), "cached": 0, "thoughts": 5, "tool": 0}
	tokens["total"] = tokens["input"] + tokens["output"] + tokens["thoughts"]
	g.record("gemini", reply, tokens)
	g.a.log.record(map[string]any{"kind": "usage", "tokens": tokens})
	active := false
	for range 2 {
		aa := g.payload("AfterAgent")
		aa["prompt"], aa["prompt_response"], aa["stop_hook_active"] = line, reply, active
		reason, retry := blocking(g.fire("AfterAgent", "", aa))
		if !retry {
			break
		}
		g.a.out.println("Retrying: " + reason)
		g.a.think("retry")
		active = true
	}
	return true
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
