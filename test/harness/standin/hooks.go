package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// hookCommand is one entry of a matcher group's "hooks" array. Claude Code
// and Codex give timeout in seconds, Gemini CLI in milliseconds.
type hookCommand struct {
	Type    string  `json:"type"`
	Command string  `json:"command"`
	Timeout float64 `json:"timeout"`
	Name    string  `json:"name"`
}

// hookGroup is one element of an event's array: a matcher and its hooks.
type hookGroup struct {
	Matcher    *string       `json:"matcher"`
	Sequential bool          `json:"sequential"`
	Hooks      []hookCommand `json:"hooks"`
}

// hookSet is the "hooks" object of a settings file: event name to groups.
type hookSet map[string][]hookGroup

// parseHooks reads the "hooks" object of a settings document. An event
// whose value is not an array of groups is skipped, as the runtimes skip
// what they cannot validate.
func parseHooks(doc []byte) (hookSet, error) {
	var top struct {
		Hooks map[string]json.RawMessage `json:"hooks"`
	}
	if err := json.Unmarshal(doc, &top); err != nil {
		return nil, err
	}
	hs := hookSet{}
	for event, raw := range top.Hooks {
		var groups []hookGroup
		if json.Unmarshal(raw, &groups) != nil {
			continue
		}
		hs[event] = append(hs[event], groups...)
	}
	return hs, nil
}

// loadHookFiles reads and merges the hooks of the existing files among
// paths (all layers' hooks run). It returns the files it read.
func loadHookFiles(paths ...string) (hookSet, []string, []string) {
	hs := hookSet{}
	var read, bad []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		one, err := parseHooks(b)
		if err != nil {
			bad = append(bad, p)
			continue
		}
		read = append(read, p)
		for e, g := range one {
			hs[e] = append(hs[e], g...)
		}
	}
	return hs, read, bad
}

func (hs hookSet) count() int {
	n := 0
	for _, gs := range hs {
		for _, g := range gs {
			n += len(g.Hooks)
		}
	}
	return n
}

// dialect is how one runtime selects and runs its hooks.
type dialect struct {
	// match reports whether a group's matcher selects this firing; subject
	// is the tool name, notification type, source... of the event.
	match func(event, matcher, subject string) bool
	// unit of the "timeout" field, and the timeout when it is absent.
	unit       time.Duration
	defTimeout time.Duration
	// newline after the JSON on stdin (Claude Code writes one, Codex not).
	newline bool
	// honourSequential: a group with "sequential": true makes the event's
	// hooks run one after another (Gemini CLI); otherwise in parallel.
	honourSequential bool
	env              []string
}

// Claude Code: matchers filter tool events by tool name, Notification by
// notification_type, SessionStart by source, SessionEnd by reason,
// PreCompact by trigger. "", "*" or no matcher match everything; a plain
// name matches exactly; otherwise the matcher is a regular expression over
// the whole subject ("Edit|Write", "Notebook.*").
var claudeSubjectEvents = map[string]bool{
	"PreToolUse": true, "PostToolUse": true, "PostToolUseFailure": true, "PermissionRequest": true,
	"Notification": true, "SessionStart": true, "SessionEnd": true, "PreCompact": true, "SubagentStart": true,
}

func matchClaude(event, matcher, subject string) bool {
	if matcher == "" || matcher == "*" || !claudeSubjectEvents[event] {
		return true
	}
	re, err := regexp.Compile("^(?:" + matcher + ")$")
	if err != nil {
		return matcher == subject
	}
	return re.MatchString(subject)
}

// Gemini CLI (packages/core/src/hooks/hookPlanner.ts): BeforeTool and
// AfterTool match the tool name by an unanchored regular expression (an
// invalid one by equality); SessionStart, SessionEnd and PreCompress match
// their source/reason/trigger exactly; other events ignore the matcher.
func matchGemini(event, matcher, subject string) bool {
	matcher = strings.TrimSpace(matcher)
	if matcher == "" || matcher == "*" {
		return true
	}
	switch event {
	case "BeforeTool", "AfterTool":
		re, err := regexp.Compile(matcher)
		if err != nil {
			return matcher == subject
		}
		return re.MatchString(subject)
	case "SessionStart", "SessionEnd", "PreCompress":
		return matcher == subject
	}
	return true
}

// Codex: tool events and SessionStart take a regular-expression matcher;
// UserPromptSubmit and Stop do not support matchers.
func matchCodex(event, matcher, subject string) bool {
	if matcher == "" || matcher == "*" {
		return true
	}
	switch event {
	case "PreToolUse", "PostToolUse", "PermissionRequest", "SessionStart":
		re, err := regexp.Compile(matcher)
		if err != nil {
			return matcher == subject
		}
		return re.MatchString(subject)
	}
	return true
}

// hookRun is the outcome of one hook command.
type hookRun struct {
	Command  string
	Exit     int
	Stdout   string
	Stderr   string
	TimedOut bool
	Err      string
}

// hookEngine fires one runtime's hooks.
type hookEngine struct {
	a     *app
	d     dialect
	hooks hookSet
}

// selected is the commands an event firing runs: matching groups' hooks,
// identical commands once.
func (e *hookEngine) selected(event, subject string) (cmds []hookCommand, sequential bool) {
	seen := map[string]bool{}
	for _, g := range e.hooks[event] {
		m := ""
		if g.Matcher != nil {
			m = *g.Matcher
		}
		if !e.d.match(event, m, subject) {
			continue
		}
		if g.Sequential && e.d.honourSequential {
			sequential = true
		}
		for _, h := range g.Hooks {
			if h.Type != "" && h.Type != "command" || h.Command == "" {
				continue
			}
			if seen[h.Command] {
				continue
			}
			seen[h.Command] = true
			cmds = append(cmds, h)
		}
	}
	return cmds, sequential
}

// fire runs the hooks event selects with payload on their stdin, and waits
// for them (each bounded by its timeout).
func (e *hookEngine) fire(event, subject string, payload map[string]any) []hookRun {
	if e == nil {
		return nil
	}
	cmds, sequential := e.selected(event, subject)
	e.a.log.record(map[string]any{"kind": "fire", "event": event, "subject": subject, "matched": len(cmds)})
	if len(cmds) == 0 {
		return nil
	}
	in, _ := json.Marshal(payload)
	if e.d.newline {
		in = append(in, '\n')
	}
	runs := make([]hookRun, len(cmds))
	var wg sync.WaitGroup
	for i, c := range cmds {
		one := func() {
			runs[i] = e.runOne(event, c, in)
		}
		if sequential {
			one()
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); one() }()
	}
	wg.Wait()
	return runs
}

func (e *hookEngine) timeout(c hookCommand) time.Duration {
	if c.Timeout > 0 {
		return time.Duration(c.Timeout * float64(e.d.unit))
	}
	return e.d.defTimeout
}

// runOne runs c with sh -c, stdin in. On timeout the hook's process group
// is killed; leftover children holding its output are not waited for
// beyond a second.
func (e *hookEngine) runOne(event string, c hookCommand, in []byte) hookRun {
	timeout := e.timeout(c)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", c.Command)
	cmd.Dir = e.a.cwd
	cmd.Env = append(os.Environ(), e.d.env...)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr capped
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	r := hookRun{Command: c.Command, Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		r.TimedOut, r.Exit = true, -1
	case errors.As(err, &ee):
		r.Exit = ee.ExitCode()
	case err != nil && !errors.Is(err, exec.ErrWaitDelay):
		r.Exit, r.Err = -1, err.Error()
	}
	var payload any
	json.Unmarshal(bytes.TrimSpace(in), &payload)
	e.a.log.record(map[string]any{
		"kind": "hook", "event": event, "command": c.Command, "exit": r.Exit, "timed_out": r.TimedOut,
		"duration_ms": time.Since(start).Milliseconds(), "timeout_ms": timeout.Milliseconds(),
		"stdout": r.Stdout, "stderr": r.Stderr, "error": r.Err, "payload": payload,
	})
	if r.TimedOut {
		e.a.out.println(event + " hook timed out after " + timeout.String() + ": " + c.Command)
	} else if r.Exit != 0 && r.Exit != 2 {
		e.a.out.println(event + " hook error: exit " + itoa(r.Exit) + ": " + strings.TrimSpace(r.Stderr))
	}
	return r
}

// blocking is the stderr of the first run that exited 2 (the "block"
// status of Claude Code, Codex and Gemini CLI), or of a JSON decision
// "block"/"deny" on stdout.
func blocking(runs []hookRun) (string, bool) {
	for _, r := range runs {
		if r.Exit == 2 {
			return strings.TrimSpace(r.Stderr), true
		}
		var out struct {
			Decision string `json:"decision"`
			Reason   string `json:"reason"`
			Continue *bool  `json:"continue"`
		}
		if json.Unmarshal([]byte(strings.TrimSpace(r.Stdout)), &out) == nil {
			if out.Decision == "block" || out.Decision == "deny" || out.Continue != nil && !*out.Continue {
				return out.Reason, true
			}
		}
	}
	return "", false
}

// permissionDecision is the behaviour ("allow"/"deny") a PermissionRequest
// hook returned in hookSpecificOutput.decision, or "".
func permissionDecision(runs []hookRun) string {
	for _, r := range runs {
		var out struct {
			HookSpecificOutput struct {
				Decision struct {
					Behavior string `json:"behavior"`
				} `json:"decision"`
				PermissionDecision string `json:"permissionDecision"`
			} `json:"hookSpecificOutput"`
		}
		if r.Exit == 0 && json.Unmarshal([]byte(strings.TrimSpace(r.Stdout)), &out) == nil {
			if b := out.HookSpecificOutput.Decision.Behavior; b == "allow" || b == "deny" {
				return b
			}
			if b := out.HookSpecificOutput.PermissionDecision; b == "allow" || b == "deny" {
				return b
			}
		}
	}
	return ""
}

// capped keeps the first 64 KiB written to it.
type capped struct{ b bytes.Buffer }

func (c *capped) Write(p []byte) (int, error) {
	if room := 64<<10 - c.b.Len(); room > 0 {
		if len(p) > room {
			c.b.Write(p[:room])
		} else {
			c.b.Write(p)
		}
	}
	return len(p), nil
}

func (c *capped) String() string { return c.b.String() }

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
