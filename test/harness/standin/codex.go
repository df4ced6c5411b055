package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// codex is the Codex CLI stand-in.
//
// After every completed turn it runs the top-level notify = [argv...] of
// $CODEX_HOME/config.toml (default ~/.codex) with the agent-turn-complete
// JSON appended as the last argument, fire-and-forget with no stdio, as
// codex-rs/hooks/src/legacy_notify.rs does. When [features] codex_hooks =
// true, the lifecycle hooks of $CODEX_HOME/hooks.json run too (stdin JSON
// without a trailing newline, timeout in seconds, default 600):
// SessionStart (at the first turn), UserPromptSubmit, PreToolUse (Bash),
// PermissionRequest (for "perm"), PostToolUse, Stop. "n" to the approval
// aborts the turn: no Stop, no notify. The rollout is written lazily at
// the first turn to $CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<thread>.jsonl
// with token_count events.
type codex struct {
	a       *app
	home    string
	notify  []string
	hooks   *hookEngine
	rollout *jsonl
	bypass  bool
	turns   int
	total   map[string]int
}

func newCodex(a *app) *codex {
	home := os.Getenv("CODEX_HOME")
	if home == "" {
		home = filepath.Join(a.home, ".codex")
	}
	c := &codex{a: a, home: home, total: map[string]int{}}
	c.bypass = hasArg(a.args, "--dangerously-bypass-approvals-and-sandbox", "--yolo")
	cfgPath := filepath.Join(home, "config.toml")
	rec := map[string]any{"kind": "config", "codex_home": home}
	if b, err := os.ReadFile(cfgPath); err == nil {
		cfg, err := parseTOML(string(b))
		if err != nil {
			rec["config_error"] = err.Error()
			a.out.println("Error loading config.toml: " + err.Error())
		} else {
			c.notify = notifyArgv(cfg)
			if cfg["features.codex_hooks"] == true || cfg["features.hooks"] == true {
				hs, read, bad := loadHookFiles(filepath.Join(home, "hooks.json"))
				c.hooks = &hookEngine{a: a, hooks: hs, d: dialect{
					match: matchCodex, unit: time.Second, defTimeout: 600 * time.Second,
				}}
				rec["hooks_read"], rec["hooks_invalid"], rec["hooks"] = read, bad, hs.count()
			}
		}
	}
	rec["notify"] = c.notify
	a.log.record(rec)
	return c
}

func (c *codex) banner() string {
	return "OpenAI Codex stand-in " + version + " (thread " + c.a.session + ")"
}

func (c *codex) start() {}

func (c *codex) end(string) {}

func (c *codex) payload(event, turnID string) map[string]any {
	mode := "default"
	if c.bypass {
		mode = "bypassPermissions"
	}
	var transcript any
	if c.rollout != nil {
		transcript = c.rollout.path
	}
	p := map[string]any{
		"session_id": c.a.session, "transcript_path": transcript, "cwd": c.a.cwd,
		"hook_event_name": event, "model": standinModel("gpt-standin"), "permission_mode": mode,
	}
	if turnID != "" {
		p["turn_id"] = turnID
	}
	return p
}

func (c *codex) item(kind string, payload map[string]any) {
	c.rollout.write(map[string]any{"timestamp": nowISO(), "type": kind, "payload": payload})
}

func (c *codex) turn(line string) bool {
	turnID := newUUID()
	if c.rollout == nil {
		now := time.Now()
		c.rollout = &jsonl{path: filepath.Join(c.home, "sessions", now.Format("2006"), now.Format("01"), now.Format("02"),
			"rollout-"+now.Format("2006-01-02T15-04-05")+"-"+c.a.session+".jsonl")}
		c.item("session_meta", map[string]any{"id": c.a.session, "timestamp": nowISO(), "cwd": c.a.cwd,
			"originator": "codex_cli_rs", "cli_version": version, "instructions": nil})
		p := c.payload("SessionStart", "")
		p["source"] = "startup"
		c.hooks.fire("SessionStart", "startup", p)
	}
	c.turns++
	p := c.payload("UserPromptSubmit", turnID)
	p["prompt"] = line
	if reason, blocked := blocking(c.hooks.fire("UserPromptSubmit", "", p)); blocked {
		c.a.out.println("prompt blocked by hook: " + reason)
		return false
	}
	c.item("turn_context", map[string]any{"cwd": c.a.cwd, "approval_policy": map[bool]string{true: "never", false: "on-request"}[c.bypass],
		"model": standinModel("gpt-standin")})
	c.item("response_item", map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": line}}})
	c.item("event_msg", map[string]any{"type": "user_message", "message": line})
	c.a.think(line)

	command := "echo " + shellQuote(line)
	callID := newID("call_", 12)
	input := map[string]any{"command": command}
	pre := c.payload("PreToolUse", turnID)
	pre["tool_name"], pre["tool_input"], pre["tool_use_id"] = "Bash", input, callID
	runs := c.hooks.fire("PreToolUse", "Bash", pre)
	_, denied := blocking(runs)
	if permissionDecision(runs) == "deny" {
		denied = true
	}
	if !denied && wantsPermission(line) && !(respectBypass() && c.bypass) {
		pr := c.payload("PermissionRequest", turnID)
		pr["tool_name"] = "Bash"
		pr["tool_input"] = map[string]any{"command": command, "description": "Echo the prompt"}
		switch permissionDecision(c.hooks.fire("PermissionRequest", "Bash", pr)) {
		case "allow":
		case "deny":
			denied = true
		default:
			c.a.out.println("Would you like to run the following command?")
			c.a.out.println("  $ " + command)
			if !c.a.ask("Allow command?") {
				c.a.out.println("■ Conversation interrupted - tell the model what to do differently.")
				c.item("event_msg", map[string]any{"type": "turn_aborted", "reason": "interrupted"})
				return false
			}
		}
	}
	if !denied {
		c.a.out.println("$ " + command)
		c.a.out.println(line)
		post := c.payload("PostToolUse", turnID)
		post["tool_name"], post["tool_input"], post["tool_use_id"] = "Bash", input, callID
		post["tool_response"] = line + "\n"
		c.hooks.fire("PostToolUse", "Bash", post)
	}
	reply := "reply: " + line
	c.a.out.println(reply)
	c.item("response_item", map[string]any{"type": "message", "role": "assistant", "content": []any{map[string]any{"type": "output_text", "text": reply}}})
	c.item("event_msg", map[string]any{"type": "agent_message", "message": reply})
	last := map[string]int{"input_tokens": 1000 * c.turns, "cached_input_tokens": 500 * c.turns, "output_tokens": 10 + len(reply),
		"reasoning_output_tokens": 5, "total_tokens": 1000*c.turns + 15 + len(reply)}
	for k, v := range last {
		c.total[k] += v
	}
	c.item("event_msg", map[string]any{"type": "token_count", "info": map[string]any{
		"total_token_usage": c.total, "last_token_usage": last, "model_context_window": 272000}, "rate_limits": nil})
	c.a.log.record(map[string]any{"kind": "usage", "turn_id": turnID, "last_token_usage": last, "total_token_usage": c.total})

	stop := c.payload("Stop", turnID)
	stop["stop_hook_active"] = false
	stop["last_assistant_message"] = reply
	c.hooks.fire("Stop", "", stop)
	c.runNotify(turnID, line, reply)
	return true
}

// notifyJSON is the agent-turn-complete notification.
func notifyJSON(thread, turnID, cwd string, inputs []string, last string) string {
	b, _ := json.Marshal(map[string]any{
		"type": "agent-turn-complete", "thread-id": thread, "turn-id": turnID, "cwd": cwd,
		"client": "codex-tui", "input-messages": inputs, "last-assistant-message": last,
	})
	return string(b)
}

func (c *codex) runNotify(turnID, line, reply string) {
	if len(c.notify) == 0 {
		return
	}
	arg := notifyJSON(c.a.session, turnID, c.a.cwd, []string{line}, reply)
	cmd := exec.Command(c.notify[0], append(append([]string{}, c.notify[1:]...), arg)...)
	cmd.Dir = c.a.cwd
	rec := map[string]any{"kind": "notify", "event": "agent-turn-complete", "argv": c.notify, "payload": json.RawMessage(arg)}
	if err := cmd.Start(); err != nil {
		rec["error"] = err.Error()
		c.a.log.record(rec)
		c.a.out.println(fmt.Sprintf("failed to run notify program: %v", err))
		return
	}
	c.a.log.record(rec)
	go func() {
		err := cmd.Wait()
		done := map[string]any{"kind": "notify_exit", "argv": c.notify, "exit": cmd.ProcessState.ExitCode()}
		if err != nil {
			done["error"] = err.Error()
		}
		c.a.log.record(done)
	}()
}
