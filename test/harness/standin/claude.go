package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// claude is the Claude Code stand-in.
//
// Hooks come from the user settings ($CLAUDE_CONFIG_DIR/settings.json, else
// ~/.claude/settings.json) and the project's .claude/settings.json and
// .claude/settings.local.json, read once at start (Claude Code snapshots
// hooks at startup). Each hook runs as sh -c with the event's JSON on
// stdin; "timeout" is in seconds (default 600).
//
// A turn fires: UserPromptSubmit; PreToolUse (Bash); for a "perm" prompt
// PermissionRequest, then (unless a hook decided) Notification
// permission_prompt and the y/n question; PostToolUse (Bash); Stop. "n"
// interrupts the turn: no PostToolUse, no Stop (Stop does not run on a user
// interrupt). "subagent-late": PreToolUse (Task), Stop, then after
// STANDIN_LATE_MS a SubagentStop and the Task's PostToolUse.
type claude struct {
	a          *app
	configDir  string
	hooks      *hookEngine
	transcript *claudeTranscript
	mode       string
	turns      int
	idle       time.Duration
}

func newClaude(a *app) *claude {
	dir := os.Getenv("CLAUDE_CONFIG_DIR")
	if dir == "" {
		dir = filepath.Join(a.home, ".claude")
	}
	c := &claude{a: a, configDir: dir, mode: "default",
		idle: envDuration("STANDIN_IDLE_PROMPT_SECS", time.Second, 0)}
	if hasArg(a.args, "--dangerously-skip-permissions") {
		c.mode = "bypassPermissions"
	} else if m, ok := argValue(a.args, "--permission-mode"); ok {
		c.mode = m
	}
	hs, read, bad := loadHookFiles(
		filepath.Join(dir, "settings.json"),
		filepath.Join(a.cwd, ".claude", "settings.json"),
		filepath.Join(a.cwd, ".claude", "settings.local.json"),
	)
	c.hooks = &hookEngine{a: a, hooks: hs, d: dialect{
		match: matchClaude, unit: time.Second, defTimeout: 600 * time.Second, newline: true,
		env: []string{"CLAUDE_PROJECT_DIR=" + a.cwd},
	}}
	c.transcript = &claudeTranscript{
		out: jsonl{path: filepath.Join(dir, "projects", claudeProjectDir(a.cwd), a.session+".jsonl")},
		sid: a.session, cwd: a.cwd, log: a.log,
	}
	a.log.record(map[string]any{"kind": "config", "config_dir": dir, "settings_read": read, "settings_invalid": bad,
		"hooks": hs.count(), "transcript_path": c.transcript.out.path, "permission_mode": c.mode})
	return c
}

var nonAlnum = regexp.MustCompile(`[^A-Za-z0-9]`)

// claudeProjectDir is the projects/ directory name of cwd: every character
// but letters and digits replaced by '-'.
func claudeProjectDir(cwd string) string { return nonAlnum.ReplaceAllString(cwd, "-") }

func (c *claude) banner() string {
	return "Claude Code stand-in " + version + " (session " + c.a.session + ", " + c.mode + ")"
}

func (c *claude) payload(event string) map[string]any {
	return map[string]any{
		"session_id":      c.a.session,
		"transcript_path": c.transcript.out.path,
		"cwd":             c.a.cwd,
		"permission_mode": c.mode,
		"hook_event_name": event,
	}
}

func (c *claude) start() {
	source := "startup"
	if hasArg(c.a.args, "--resume", "-r", "--continue", "-c") {
		source = "resume"
	}
	p := c.payload("SessionStart")
	p["source"] = source
	c.hooks.fire("SessionStart", source, p)
}

func (c *claude) end(why string) {
	reason := "prompt_input_exit"
	if why == "signal" {
		reason = "other"
	}
	p := c.payload("SessionEnd")
	p["reason"] = reason
	c.hooks.fire("SessionEnd", reason, p)
}

func (c *claude) idleAfter() time.Duration { return c.idle }

func (c *claude) onIdle() {
	c.notify("idle_prompt", "Claude is waiting for your input")
}

func (c *claude) notify(kind, message string) {
	p := c.payload("Notification")
	p["message"] = message
	p["notification_type"] = kind
	c.hooks.fire("Notification", kind, p)
}

func (c *claude) turn(line string) bool {
	c.turns++
	p := c.payload("UserPromptSubmit")
	p["prompt"] = line
	if reason, blocked := blocking(c.hooks.fire("UserPromptSubmit", "", p)); blocked {
		c.a.out.println("UserPromptSubmit operation blocked by hook: " + reason)
		return false
	}
	c.transcript.user(line)
	c.a.think(line)
	if strings.TrimSpace(line) == "subagent-late" {
		return c.subagentLate(line)
	}

	input := map[string]any{"command": "echo " + shellQuote(line), "description": "Echo the prompt"}
	toolID := newID("toolu_", 12)
	c.transcript.response(c.turns, 1, []any{
		map[string]any{"type": "text", "text": "I'll run a command."},
		map[string]any{"type": "tool_use", "id": toolID, "name": "Bash", "input": input},
	})
	pre := c.payload("PreToolUse")
	pre["tool_name"], pre["tool_input"], pre["tool_use_id"] = "Bash", input, toolID
	runs := c.hooks.fire("PreToolUse", "Bash", pre)
	reason, denied := blocking(runs)
	if permissionDecision(runs) == "deny" {
		denied = true
	}
	if denied {
		c.a.out.println("PreToolUse hook blocked Bash: " + reason)
	} else {
		if wantsPermission(line) && !(respectBypass() && c.mode == "bypassPermissions") {
			pr := c.payload("PermissionRequest")
			pr["tool_name"], pr["tool_input"], pr["permission_suggestions"] = "Bash", input, []any{}
			switch permissionDecision(c.hooks.fire("PermissionRequest", "Bash", pr)) {
			case "allow":
			case "deny":
				denied = true
			default:
				c.notify("permission_prompt", "Claude needs your permission to use Bash")
				c.a.out.println("Bash command: echo " + shellQuote(line))
				if !c.a.ask("Do you want to proceed?") {
					c.a.out.println("[Request interrupted by user for tool use]")
					c.transcript.interrupted(toolID)
					return false
				}
			}
		}
		if !denied {
			c.a.out.println(line)
			post := c.payload("PostToolUse")
			post["tool_name"], post["tool_input"], post["tool_use_id"] = "Bash", input, toolID
			post["tool_response"] = map[string]any{"stdout": line, "stderr": "", "interrupted": false, "isImage": false}
			c.hooks.fire("PostToolUse", "Bash", post)
			c.transcript.toolResult(toolID, line)
		}
	}
	reply := "reply: " + line
	c.transcript.response(c.turns, 2, []any{map[string]any{"type": "text", "text": reply}})
	c.a.out.println(reply)
	c.stop(reply)
	return true
}

// stop fires Stop; a hook that blocks it (exit 2) makes Claude continue,
// and Stop fires again with stop_hook_active, at most three times.
func (c *claude) stop(reply string) {
	active := false
	for range 3 {
		p := c.payload("Stop")
		p["stop_hook_active"] = active
		p["last_assistant_message"] = reply
		reason, blocked := blocking(c.hooks.fire("Stop", "", p))
		if !blocked {
			return
		}
		c.a.out.println("Stop hook feedback: " + reason)
		c.a.think("continue")
		active = true
	}
}

// subagentLate is the out-of-order case: the Task's SubagentStop and
// PostToolUse arrive after the main agent's Stop.
func (c *claude) subagentLate(line string) bool {
	input := map[string]any{"description": "late subagent", "prompt": line, "subagent_type": "general-purpose"}
	toolID := newID("toolu_", 12)
	pre := c.payload("PreToolUse")
	pre["tool_name"], pre["tool_input"], pre["tool_use_id"] = "Task", input, toolID
	c.hooks.fire("PreToolUse", "Task", pre)
	reply := "reply: " + line
	c.transcript.response(c.turns, 1, []any{map[string]any{"type": "text", "text": reply}})
	c.a.out.println(reply)
	c.stop(reply)
	late := envDuration("STANDIN_LATE_MS", time.Millisecond, 200*time.Millisecond)
	go func() {
		time.Sleep(late)
		agentID := newID("", 4)
		sp := c.payload("SubagentStop")
		sp["stop_hook_active"] = false
		sp["agent_id"] = agentID
		sp["agent_type"] = "general-purpose"
		sp["agent_transcript_path"] = filepath.Join(filepath.Dir(c.transcript.out.path), c.a.session, "subagents", "agent-"+agentID+".jsonl")
		c.hooks.fire("SubagentStop", "", sp)
		post := c.payload("PostToolUse")
		post["tool_name"], post["tool_input"], post["tool_use_id"] = "Task", input, toolID
		post["tool_response"] = map[string]any{"content": []any{map[string]any{"type": "text", "text": "done"}}}
		c.hooks.fire("PostToolUse", "Task", post)
	}()
	return true
}

// claudeTranscript writes the session's JSONL transcript the way Claude
// Code does: each content block of an API response is its own assistant
// line, repeating the response's message id, requestId and usage.
type claudeTranscript struct {
	out    jsonl
	log    *eventLog
	sid    string
	cwd    string
	parent any
}

func (t *claudeTranscript) line(kind string, message map[string]any, extra map[string]any) {
	id := newUUID()
	m := map[string]any{
		"parentUuid": t.parent, "isSidechain": false, "userType": "external", "cwd": t.cwd,
		"sessionId": t.sid, "version": version, "gitBranch": "", "type": kind, "message": message,
		"uuid": id, "timestamp": nowISO(),
	}
	for k, v := range extra {
		m[k] = v
	}
	t.out.write(m)
	t.parent = id
}

func (t *claudeTranscript) user(text string) {
	t.line("user", map[string]any{"role": "user", "content": text}, nil)
}

func (t *claudeTranscript) toolResult(toolID, content string) {
	t.line("user", map[string]any{"role": "user", "content": []any{
		map[string]any{"tool_use_id": toolID, "type": "tool_result", "content": content, "is_error": false},
	}}, nil)
}

func (t *claudeTranscript) interrupted(toolID string) {
	t.line("user", map[string]any{"role": "user", "content": []any{
		map[string]any{"tool_use_id": toolID, "type": "tool_result", "content": "The user doesn't want to proceed with this tool use. The tool use was rejected.", "is_error": true},
	}}, nil)
	t.line("user", map[string]any{"role": "user", "content": []any{
		map[string]any{"type": "text", "text": "[Request interrupted by user for tool use]"},
	}}, nil)
}

// response writes one API response (number n of turn) as one line per
// block. Its usage is deterministic: cache reads grow with the turn.
func (t *claudeTranscript) response(turn, n int, blocks []any) {
	msgID, reqID := newID("msg_", 12), newID("req_", 12)
	usage := map[string]any{
		"input_tokens":                n + 2,
		"cache_creation_input_tokens": 100 * n,
		"cache_read_input_tokens":     1000 * turn,
		"output_tokens":               10 * n * len(blocks),
		"service_tier":                "standard",
	}
	t.log.record(map[string]any{"kind": "usage", "message_id": msgID, "request_id": reqID, "usage": usage, "lines": len(blocks)})
	for _, b := range blocks {
		t.line("assistant", map[string]any{
			"id": msgID, "type": "message", "role": "assistant", "model": standinModel("claude-standin"),
			"content": []any{b}, "stop_reason": nil, "stop_sequence": nil, "usage": usage,
		}, map[string]any{"requestId": reqID})
	}
}
