package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/jackin-dev/jackin/test/harness"
)

// Tests of the agent supervisor (issue 15) through the real binary: every
// agent container runs jackin's supervisor as PID 1 around a runtime
// stand-in (test/harness/standin: claude, codex, gemini, opencode and amp
// as their documentation describes them). attach on a real
// pseudo-terminal, live state from hooks, notify, server events and
// terminal activity, wait, get's STATE, history's agent states, runtime
// homes across a recreate, the agent's exit status, default commands,
// custom runtimes and the manifest's refusals.

var (
	agtImageOnce sync.Once
	agtImageErr  error
)

// agtRuntimeImage builds harness.RuntimeImage once per run.
func agtRuntimeImage(t *testing.T) string {
	t.Helper()
	agtImageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jackin-e2e-runtimes-")
		if err != nil {
			agtImageErr = err
			return
		}
		defer os.RemoveAll(dir)
		agtImageErr = harness.BuildRuntimeImage(dir)
	})
	if agtImageErr != nil {
		t.Fatal(agtImageErr)
	}
	return harness.RuntimeImage
}

// agtCUE quotes s for CUE (JSON's quoting, which CUE reads).
func agtCUE(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	if bytes.Contains(b, []byte(`\(`)) {
		panic("string holds a CUE interpolation")
	}
	return string(b)
}

// agtUntil polls fn every 100ms until it holds or d passes.
func agtUntil(d time.Duration, fn func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if fn() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// agtDiag is what the instance's supervisor published and the container's
// recent log: for failure messages.
func (e *env) agtDiag(instance string) string {
	dir := filepath.Join(e.stateDir, "agents", e.fleet, instance)
	st, _ := os.ReadFile(filepath.Join(dir, "state.json"))
	ev, _ := os.ReadFile(filepath.Join(dir, "events.jsonl"))
	logs, _ := exec.Command("docker", "logs", "--tail", "30", e.name(instance)).CombinedOutput()
	return fmt.Sprintf("--- %s state.json:\n%s\n--- events.jsonl:\n%s--- docker logs --tail 30:\n%s", instance, st, ev, logs)
}

// agtWait runs `jackin wait` and fails unless it exits 0.
func (e *env) agtWait(t *testing.T, instance, states string, timeout time.Duration) {
	t.Helper()
	r := e.jackin("wait", "--fleet", e.fleet, instance, "--for", states, "--timeout", timeout.String())
	if r.code != 0 {
		t.Fatalf("jackin wait %s --for %s: want exit 0, got:\n%s\n%s", instance, states, r, e.agtDiag(instance))
	}
}

// agtWaitAsync starts `jackin wait` now and returns a function that waits
// for its end and fails unless it exited 0: started before the keystrokes
// that cause a short-lived state, so the state cannot pass unseen.
func (e *env) agtWaitAsync(t *testing.T, instance, states string, timeout time.Duration) func() {
	t.Helper()
	cmd := exec.Command(jackinBin, "--state-dir", e.stateDir, "wait", "--fleet", e.fleet, instance, "--for", states, "--timeout", timeout.String())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Let it read the current state before the caller changes it.
	time.Sleep(300 * time.Millisecond)
	return func() {
		t.Helper()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("jackin wait %s --for %s: %v\n%s\n%s", instance, states, err, out.String(), e.agtDiag(instance))
		}
	}
}

// agtAgent is the agent part of a `jackin get -o json` item.
type agtAgent struct {
	Runtime    string    `json:"runtime"`
	State      string    `json:"state"`
	Since      time.Time `json:"since"`
	Detail     string    `json:"detail"`
	ExitStatus *int      `json:"exitStatus"`
	Warnings   []string  `json:"warnings"`
}

// agtGet is each instance's agent, from `jackin get -f M -o json` (nil for
// an instance without one).
func (e *env) agtGet(t *testing.T, m string) map[string]*agtAgent {
	t.Helper()
	out := map[string]*agtAgent{}
	for _, it := range getItems[struct {
		Instance string    `json:"instance"`
		Agent    *agtAgent `json:"agent"`
	}](t, e, "-f", m) {
		out[it.Instance] = it.Agent
	}
	return out
}

// getItems is the items of `jackin get -o json ARGS...`, decoded as T.
func getItems[T any](t *testing.T, e *env, args ...string) []T {
	t.Helper()
	r := e.jackin(append([]string{"get", "-o", "json"}, args...)...)
	mustCode(t, r, 0, "get -o json")
	var list struct {
		Items []T `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("get -o json: %v\n%s", err, r)
	}
	return list.Items
}

// agtGetRow is the instance's row of `jackin get -f M` (the table).
func (e *env) agtGetRow(t *testing.T, m, instance string) string {
	t.Helper()
	r := e.jackin("get", "-f", m)
	mustCode(t, r, 0, "get")
	for _, l := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == instance {
			return l
		}
	}
	t.Fatalf("get has no row for %s:\n%s", instance, r)
	return ""
}

// agtTerm is `jackin attach` (or any command) running on a pseudo-terminal
// of its own, as in an operator's shell.
type agtTerm struct {
	t      *testing.T
	cmd    *exec.Cmd
	ptmx   *os.File
	mu     sync.Mutex
	buf    bytes.Buffer
	exited chan struct{}
	err    error
}

// agtAttach starts `jackin attach --fleet F INSTANCE args...` on a pty.
func (e *env) agtAttach(t *testing.T, instance string, args ...string) *agtTerm {
	t.Helper()
	return e.agtAttachEnv(t, nil, instance, args...)
}

// agtAttachEnv is agtAttach with extra environment (KEY=VALUE).
func (e *env) agtAttachEnv(t *testing.T, extra []string, instance string, args ...string) *agtTerm {
	t.Helper()
	argv := append([]string{"--state-dir", e.stateDir, "attach", "--fleet", e.fleet, instance}, args...)
	p := &agtTerm{t: t, cmd: exec.Command(jackinBin, argv...), exited: make(chan struct{})}
	if extra != nil {
		p.cmd.Env = append(os.Environ(), extra...)
	}
	ptmx, err := pty.StartWithSize(p.cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	p.ptmx = ptmx
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := ptmx.Read(b)
			p.mu.Lock()
			p.buf.Write(b[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		ptmx.Close()
	})
	return p
}

func (p *agtTerm) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// waitText waits until the terminal shows want.
func (p *agtTerm) waitText(want string, d time.Duration) {
	p.t.Helper()
	if !agtUntil(d, func() bool { return strings.Contains(p.String(), want) }) {
		p.t.Fatalf("the terminal never showed %q; it shows:\n%q", want, p.String())
	}
}

// send types s.
func (p *agtTerm) send(s string) {
	p.t.Helper()
	if _, err := p.ptmx.Write([]byte(s)); err != nil {
		p.t.Fatalf("type %q: %v", s, err)
	}
}

// waitExit waits for the command's end and returns its exit status.
func (p *agtTerm) waitExit(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		p.t.Fatalf("jackin attach did not end within %s; the terminal shows:\n%q", d, p.String())
	}
	// The last output may still be in the pty.
	time.Sleep(100 * time.Millisecond)
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	p.t.Fatalf("jackin attach: %v", p.err)
	return -1
}

// agtInspect is docker inspect's --format of the container.
func agtInspect(t *testing.T, container, format string) string {
	t.Helper()
	return docker(t, "inspect", "--format", format, container)
}

// agtHistoryStates is `jackin history -o json`'s agent states of
// instance, oldest first.
func (e *env) agtHistoryStates(t *testing.T, instance string) (states []string, messages []string) {
	t.Helper()
	r := e.jackin("history", "--fleet", e.fleet, "--limit", "500", "-o", "json")
	mustCode(t, r, 0, "history -o json")
	var doc struct {
		AgentStates []struct {
			Fleet    string `json:"fleet"`
			Instance string `json:"instance"`
			Message  string `json:"message"`
			State    struct {
				State  string `json:"state"`
				Detail string `json:"detail"`
			} `json:"state"`
		} `json:"agentStates"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("history -o json: %v\n%s", err, r)
	}
	for i := len(doc.AgentStates) - 1; i >= 0; i-- {
		s := doc.AgentStates[i]
		if s.Instance != instance || s.Fleet != e.fleet {
			continue
		}
		st := s.State.State
		if s.State.Detail != "" {
			st += "(" + s.State.Detail + ")"
		}
		states = append(states, st)
		messages = append(messages, s.Message)
	}
	return states, messages
}

// agtSubsequence reports whether want appears in got in order (other
// entries in between allowed).
func agtSubsequence(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// TestAgentValidateRefusals: a command with a built-in runtime, a custom
// runtime without a command and an undeclared agent are each refused by
// validate with exit 2, naming file:line and the field.
func TestAgentValidateRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name, body string
		want       []string
	}{
		{"command with claude", `instances: {
	cl: {role: image: "x:1", agent: "claude", command: ["/bin/sh"]}
}`, []string{"fleet.cue:5:", "instances.cl.command", "args"}},
		{"custom runtime without command", `runtimes: {
	mine: {homes: [".mine"]}
}
instances: {
	m: {role: image: "x:1", agent: "mine"}
}`, []string{"fleet.cue:5:", "runtimes.mine", "needs a command"}},
		{"undeclared agent", `instances: {
	m: {role: image: "x:1", agent: "nosuch"}
}`, []string{"fleet.cue:5:", "instances.m.agent", `"nosuch"`, "runtimes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := e.manifest(c.body)
			r := e.jackin("validate", "-f", m)
			mustCode(t, r, 2, "validate")
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("validate's error lacks %q:\n%s", w, r)
				}
			}
		})
	}
}

// TestAgentAttach: attach through a real pseudo-terminal (echo and the
// agent's reply, detach keys, the recent screen on reattach, custom detach
// keys), attach and wait refusals, and the agent's exit stopping the
// container with its status until apply starts it again.
func TestAgentAttach(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := agtRuntimeImage(t)
	m := e.manifest(fmt.Sprintf(`instances: {
	at:  {role: image: %[1]q, agent: "claude"}
	off: {role: image: %[1]q, agent: "claude", state: "stopped"}
}`, img))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	at := e.name("at")

	t.Run("refusals", func(t *testing.T) {
		r := e.jackin("attach", "--fleet", e.fleet, "nosuch")
		mustCode(t, r, 2, "attach to an unknown instance")
		if !strings.Contains(r.stderr, `"nosuch"`) {
			t.Errorf("attach to an unknown instance does not name it:\n%s", r)
		}
		r = e.jackin("wait", "--fleet", e.fleet, "nosuch", "--for", "idle", "--timeout", "5s")
		mustCode(t, r, 2, "wait on an unknown instance")
		if !strings.Contains(r.stderr, `"nosuch"`) {
			t.Errorf("wait on an unknown instance does not name it:\n%s", r)
		}
		r = e.jackin("wait", "--fleet", e.fleet, "at", "--for", "sleeping", "--timeout", "5s")
		mustCode(t, r, 2, "wait for an unknown state")
		r = e.jackin("attach", "--fleet", e.fleet, "off")
		mustCode(t, r, 2, "attach to a stopped instance")
		if !strings.Contains(r.stderr, "off") || !strings.Contains(r.stderr, "not running") || !strings.Contains(r.stderr, "jackin apply") {
			t.Errorf("attach to a stopped instance: unclear message:\n%s", r)
		}
		r = e.jackin("attach", "--fleet", e.fleet, "at", "--detach-keys", "ctrl-1")
		mustCode(t, r, 2, "attach with bad --detach-keys")
		if !strings.Contains(r.stderr, "--detach-keys") || !strings.Contains(r.stderr, "ctrl-1") {
			t.Errorf("bad --detach-keys: unclear message:\n%s", r)
		}
	})

	e.agtWait(t, "at", "idle", 30*time.Second)

	// Attach, type a line, see its echo and the stand-in's reply; detach.
	p := e.agtAttach(t, "at")
	p.waitText("standin claude args=", 15*time.Second) // the recent screen
	p.send("hello one\r")
	p.waitText("hello one\r\n", 10*time.Second) // the terminal's echo
	p.waitText("reply: hello one", 10*time.Second)
	e.agtWait(t, "at", "done", 10*time.Second)
	p.send("\x10\x11") // ctrl-p ctrl-q
	if code := p.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("detach: jackin attach exited %d, want 0; terminal:\n%q", code, p.String())
	}
	if !strings.Contains(p.String(), "detached") {
		t.Errorf("detach does not say so; terminal:\n%q", p.String())
	}
	if st := agtInspect(t, at, "{{.State.Status}}"); st != "running" {
		t.Fatalf("after detach the container is %s, want running", st)
	}
	// Nobody has looked since the turn ended: still done.
	if ag := e.agtGet(t, m)["at"]; ag == nil || ag.State != "done" {
		t.Errorf("after detach, agent = %+v, want state done", ag)
	}

	// Attach again with other detach keys: the earlier screen comes first.
	p = e.agtAttach(t, "at", "--detach-keys", "ctrl-x,x")
	p.waitText("reply: hello one", 10*time.Second)
	if out := p.String(); !strings.Contains(out, "hello one\r\n") || strings.Index(out, "standin claude args=") > strings.Index(out, "reply: hello one") {
		t.Errorf("reattach does not replay the earlier screen in order:\n%q", out)
	}
	// Attaching marks the done turn as seen.
	e.agtWait(t, "at", "idle", 10*time.Second)
	// ctrl-p ctrl-q are keys like others now (ctrl-u then erases them
	// from the agent's line).
	p.send("\x10\x11\x15")
	select {
	case <-p.exited:
		t.Fatalf("ctrl-p ctrl-q detached although --detach-keys ctrl-x,x; terminal:\n%q", p.String())
	case <-time.After(500 * time.Millisecond):
	}
	p.send("second line\r")
	p.waitText("reply: second line", 10*time.Second)
	p.send("\x18x") // ctrl-x x
	if code := p.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("detach with ctrl-x,x: jackin attach exited %d, want 0; terminal:\n%q", code, p.String())
	}
	if !strings.Contains(p.String(), "detached") {
		t.Errorf("detach with ctrl-x,x does not say so; terminal:\n%q", p.String())
	}
	if st := agtInspect(t, at, "{{.State.Status}}"); st != "running" {
		t.Fatalf("after the second detach the container is %s, want running", st)
	}

	// The agent's exit ends attach with its status and stops the container.
	p = e.agtAttach(t, "at")
	p.waitText("reply: second line", 10*time.Second)
	p.send("exit 3\r")
	if code := p.waitExit(15 * time.Second); code != 3 {
		t.Fatalf("jackin attach after the agent's exit 3: exited %d, want 3; terminal:\n%q", code, p.String())
	}
	if !strings.Contains(p.String(), "exited with status 3") {
		t.Errorf("attach does not report the agent's exit; terminal:\n%q", p.String())
	}
	if !agtUntil(10*time.Second, func() bool { return agtInspect(t, at, "{{.State.Status}}") == "exited" }) {
		t.Fatalf("the container did not stop after the agent's exit: %s", agtInspect(t, at, "{{.State.Status}}"))
	}
	if code := agtInspect(t, at, "{{.State.ExitCode}}"); code != "3" {
		t.Errorf("container exit code %s, want 3 (the agent's)", code)
	}
	ag := e.agtGet(t, m)["at"]
	if ag == nil || ag.State != "exited" || ag.ExitStatus == nil || *ag.ExitStatus != 3 {
		t.Errorf("get -o json after the exit: agent = %+v, want state exited, exitStatus 3", ag)
	}
	if row := e.agtGetRow(t, m, "at"); !strings.Contains(row, "exited (3)") {
		t.Errorf("get's STATE after the exit, want \"exited (3)\": %s", row)
	}
	e.agtWait(t, "at", "exited", 5*time.Second)
	r := e.jackin("wait", "--fleet", e.fleet, "at", "--for", "idle", "--timeout", "1s")
	mustCode(t, r, 1, "wait --for idle on an exited agent (timeout)")
	if _, msgs := e.agtHistoryStates(t, "at"); !strings.Contains(strings.Join(msgs, "\n"), "agent exited with status 3") {
		t.Errorf("history lacks the agent's exit with status 3: %q", msgs)
	}

	// apply starts it again.
	r = e.jackin("apply", "-f", m)
	mustCode(t, r, 0, "apply after the agent's exit")
	if st := agtInspect(t, at, "{{.State.Status}}"); st != "running" {
		t.Fatalf("after apply the container is %s, want running", st)
	}
	e.agtWait(t, "at", "idle", 30*time.Second)
}

// runtimesFleet is the fleet of TestAgentRuntimes: one instance per
// runtime, the claude one with a slow turn and extra args.
func agtRuntimesFleet(img, clEnv string) string {
	// It answers after a moment: output within 150 ms of a keystroke counts
	// as the terminal's echo, not as the agent working.
	script := `echo mine-ready; while read l; do sleep 0.5; echo "mine got: $l"; done`
	return fmt.Sprintf(`runtimes: {
	mine: {command: ["/bin/sh", "-c", %[2]s], homes: [".mine"]}
}
instances: {
	cl:   {role: image: %[1]q, agent: "claude", args: ["--model", "x"], env: {STANDIN_TURN_MS: "1500"%[3]s}}
	ge:   {role: image: %[1]q, agent: "gemini"}
	cx:   {role: image: %[1]q, agent: "codex"}
	oc:   {role: image: %[1]q, agent: "opencode"}
	amp:  {role: image: %[1]q, agent: "amp"}
	sh:   {role: image: %[1]q, agent: "shell"}
	mine: {role: image: %[1]q, agent: "mine"}
}`, img, agtCUE(script), clEnv)
}

// TestAgentRuntimes: every runtime's default command and args; state from
// hooks (claude, gemini), notify (codex), server events (opencode) and
// terminal activity (amp, shell, a custom runtime), through wait, get and
// history; claude's runtime home across a recreate, with jackin's hooks
// merged once beside the user's; a corrupt settings file left alone.
func TestAgentRuntimes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := agtRuntimeImage(t)
	m := e.manifest(agtRuntimesFleet(img, ""))
	mustCode(t, e.jackin("apply", "-f", m, "--parallel", "8"), 0, "apply")

	t.Run("default commands", func(t *testing.T) {
		want := map[string]string{
			"cl":  "standin claude args=[--dangerously-skip-permissions --model x]",
			"cx":  "standin codex args=[--dangerously-bypass-approvals-and-sandbox]",
			"ge":  "standin gemini args=[--approval-mode=yolo]",
			"amp": "standin amp args=[--dangerously-allow-all]",
			"oc":  "standin opencode args=[--port 4096 --hostname 127.0.0.1]",
		}
		for inst, line := range want {
			var logs string
			ok := agtUntil(15*time.Second, func() bool {
				out, _ := exec.Command("docker", "logs", e.name(inst)).CombinedOutput()
				logs = string(out)
				return strings.Contains(logs, "standin ")
			})
			first, _, _ := strings.Cut(strings.TrimLeft(logs, "\r\n"), "\n")
			if !ok || strings.TrimSpace(first) != line {
				t.Errorf("%s: first line %q, want %q; log:\n%s", inst, first, line, logs)
			}
		}
		if !agtUntil(15*time.Second, func() bool {
			out, _ := exec.Command("docker", "logs", e.name("mine")).CombinedOutput()
			return strings.Contains(string(out), "mine-ready")
		}) {
			t.Errorf("the custom runtime's command did not run:\n%s", e.agtDiag("mine"))
		}
		// The custom runtime's home is kept in the instance's volume.
		if out, err := exec.Command("docker", "exec", e.name("mine"), "sh", "-c", `ls -ld "$HOME/.mine"`).CombinedOutput(); err != nil || !strings.Contains(string(out), "/run/jackin/home") {
			t.Errorf("~/.mine of the custom runtime is not linked into the runtime-home volume: %v\n%s", err, out)
		}
		got := e.agtGet(t, m)
		for inst, rt := range map[string]string{"cl": "claude", "cx": "codex", "ge": "gemini", "oc": "opencode", "amp": "amp", "sh": "shell", "mine": "mine"} {
			if got[inst] == nil || got[inst].Runtime != rt {
				t.Errorf("get -o json: %s agent = %+v, want runtime %s", inst, got[inst], rt)
			}
		}
	})

	t.Run("states", func(t *testing.T) {
		t.Run("claude", func(t *testing.T) {
			t.Parallel()
			e.agtWait(t, "cl", "idle", 30*time.Second)
			p := e.agtAttach(t, "cl")
			p.waitText("standin claude", 15*time.Second)
			working := e.agtWaitAsync(t, "cl", "working", 15*time.Second)
			p.send("first turn\r")
			working()
			if ag := e.agtGet(t, m)["cl"]; ag == nil || ag.State != "working" {
				t.Errorf("get during the turn: agent = %+v, want working", ag)
			}
			e.agtWait(t, "cl", "done", 15*time.Second)
			p.waitText("reply: first turn", 5*time.Second)
			if row := e.agtGetRow(t, m, "cl"); !strings.Contains(row, " done ") {
				t.Errorf("get's STATE after the turn, want done: %s", row)
			}

			// A permission: blocked on Bash until answered.
			p.send("need perm now\r")
			e.agtWait(t, "cl", "blocked", 15*time.Second)
			p.waitText("Do you want to proceed?", 5*time.Second)
			ag := e.agtGet(t, m)["cl"]
			if ag == nil || ag.State != "blocked" || ag.Detail != "Bash" {
				t.Errorf("get -o json while asking: agent = %+v, want state blocked, detail Bash", ag)
			}
			if row := e.agtGetRow(t, m, "cl"); !strings.Contains(row, "blocked (Bash)") {
				t.Errorf("get's STATE while asking, want \"blocked (Bash)\": %s", row)
			}
			p.send("y\r")
			e.agtWait(t, "cl", "done", 15*time.Second)
			p.waitText("reply: need perm now", 5*time.Second)
			p.send("\x10\x11")
			if code := p.waitExit(10 * time.Second); code != 0 {
				t.Errorf("detach: exit %d", code)
			}
		})
		t.Run("gemini", func(t *testing.T) {
			t.Parallel()
			e.agtWait(t, "ge", "idle", 30*time.Second)
			p := e.agtAttach(t, "ge")
			p.waitText("standin gemini", 15*time.Second)
			p.send("a gemini turn\r")
			e.agtWait(t, "ge", "done", 15*time.Second)
			p.send("\x10\x11")
			p.waitExit(10 * time.Second)
		})
		t.Run("codex", func(t *testing.T) {
			t.Parallel()
			e.agtWait(t, "cx", "idle", 30*time.Second)
			p := e.agtAttach(t, "cx")
			p.waitText("standin codex", 15*time.Second)
			e.agtWait(t, "cx", "idle", 15*time.Second) // after the resize's redraw
			p.send("a codex turn\r")
			e.agtWait(t, "cx", "done", 15*time.Second)
			p.send("\x10\x11")
			p.waitExit(10 * time.Second)
		})
		t.Run("opencode", func(t *testing.T) {
			t.Parallel()
			e.agtWait(t, "oc", "idle", 30*time.Second)
			p := e.agtAttach(t, "oc")
			p.waitText("standin opencode", 15*time.Second)
			p.send("an opencode turn\r")
			e.agtWait(t, "oc", "done", 15*time.Second)
			p.send("\x10\x11")
			p.waitExit(10 * time.Second)
		})
		// Terminal activity: output means working, 2 s of quiet idle.
		for _, c := range []struct{ inst, banner, line, out string }{
			{"amp", "standin amp", "an amp turn", "reply: an amp turn"},
			{"sh", "", "sleep 0.5; echo shell-$((6*7))", "shell-42"},
			{"mine", "mine-ready", "hello mine", "mine got: hello mine"},
		} {
			t.Run(c.inst, func(t *testing.T) {
				t.Parallel()
				e.agtWait(t, c.inst, "idle", 30*time.Second)
				p := e.agtAttach(t, c.inst)
				p.waitText(c.banner, 15*time.Second)
				e.agtWait(t, c.inst, "idle", 15*time.Second) // after the resize
				working := e.agtWaitAsync(t, c.inst, "working", 15*time.Second)
				p.send(c.line + "\r")
				working()
				p.waitText(c.out, 10*time.Second)
				e.agtWait(t, c.inst, "idle", 15*time.Second)
				p.send("\x10\x11")
				p.waitExit(10 * time.Second)
			})
		}
	})
	if t.Failed() {
		return
	}

	t.Run("history", func(t *testing.T) {
		states, _ := e.agtHistoryStates(t, "cl")
		want := []string{"idle", "working", "done", "working", "blocked(Bash)", "working", "done"}
		if !agtSubsequence(states, want) {
			t.Errorf("history's agent states of cl, oldest first: %q; want in order %q", states, want)
		}
		for inst, want := range map[string][]string{
			"ge": {"idle", "working", "done"}, "cx": {"idle", "working", "done"}, "oc": {"idle", "working", "done"},
			"amp": {"idle", "working", "idle"}, "sh": {"idle", "working", "idle"}, "mine": {"idle", "working", "idle"},
		} {
			states, _ := e.agtHistoryStates(t, inst)
			if !agtSubsequence(states, want) {
				t.Errorf("history's agent states of %s, oldest first: %q; want in order %q", inst, states, want)
			}
			t.Logf("%s: %q", inst, states)
		}
		r := e.jackin("history", "--fleet", e.fleet)
		mustCode(t, r, 0, "history")
		if !strings.Contains(r.stdout, "Agent states") || !strings.Contains(r.stdout, e.fleet+"/cl") || !strings.Contains(r.stdout, "agent blocked (Bash)") {
			t.Errorf("history's table lacks the agent states:\n%s", r)
		}
	})

	cl := e.name("cl")
	t.Run("home survives a recreate", func(t *testing.T) {
		docker(t, "exec", cl, "sh", "-c", `echo kept > "$HOME/.claude/keep.txt"`)
		// A user's hook and setting, added to the merged settings.
		var settings map[string]any
		if err := json.Unmarshal([]byte(docker(t, "exec", cl, "cat", "/home/agent/.claude/settings.json")), &settings); err != nil {
			t.Fatalf("~/.claude/settings.json: %v", err)
		}
		hooks, _ := settings["hooks"].(map[string]any)
		if hooks == nil {
			t.Fatalf("no hooks in ~/.claude/settings.json: %v", settings)
		}
		hooks["Stop"] = append(hooks["Stop"].([]any), map[string]any{"hooks": []any{map[string]any{"type": "command", "command": "touch /tmp/user-stop-hook"}}})
		settings["theme"] = "user-theme"
		b, _ := json.MarshalIndent(settings, "", "  ")
		w := exec.Command("docker", "exec", "-i", cl, "sh", "-c", `cat > "$HOME/.claude/settings.json"`)
		w.Stdin = bytes.NewReader(b)
		if out, err := w.CombinedOutput(); err != nil {
			t.Fatalf("write settings.json: %v\n%s", err, out)
		}
		// A runtime that saves by renaming a new file over ~/.claude.json
		// replaces the link into the volume: the supervisor moves it back
		// when the agent exits.
		docker(t, "exec", cl, "sh", "-c", `printf '{"saved":1}' > "$HOME/.claude.json.tmp" && mv "$HOME/.claude.json.tmp" "$HOME/.claude.json"`)
		before := agtInspect(t, cl, "{{.Id}}")

		m = e.manifest(agtRuntimesFleet(img, `, MARK: "2"`))
		r := e.jackin("apply", "-f", m)
		mustCode(t, r, 0, "apply (recreate cl)")
		if !strings.Contains(r.stdout, "-/+ cl") {
			t.Errorf("the env change did not recreate cl:\n%s", r)
		}
		if after := agtInspect(t, cl, "{{.Id}}"); after == before {
			t.Fatal("cl was not recreated")
		}
		e.agtWait(t, "cl", "idle", 30*time.Second)
		if got := docker(t, "exec", cl, "cat", "/home/agent/.claude/keep.txt"); got != "kept" {
			t.Errorf("~/.claude/keep.txt after the recreate: %q, want kept", got)
		}
		if got := docker(t, "exec", cl, "cat", "/home/agent/.claude.json"); got != `{"saved":1}` {
			t.Errorf("~/.claude.json saved by rename, after the recreate: %q, want {\"saved\":1}", got)
		}
		if out := docker(t, "exec", cl, "ls", "-l", "/home/agent/.claude.json"); !strings.Contains(out, "-> /run/jackin/home/kept/.claude.json") {
			t.Errorf("~/.claude.json is not linked into the runtime-home volume after the recreate: %s", out)
		}
		var merged struct {
			Theme string                      `json:"theme"`
			Hooks map[string][]map[string]any `json:"hooks"`
		}
		raw := docker(t, "exec", cl, "cat", "/home/agent/.claude/settings.json")
		if err := json.Unmarshal([]byte(raw), &merged); err != nil {
			t.Fatalf("settings.json after the recreate: %v\n%s", err, raw)
		}
		if merged.Theme != "user-theme" {
			t.Errorf("the user's setting was lost:\n%s", raw)
		}
		for _, ev := range []string{"SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest", "PostToolUse", "Notification", "Stop", "SubagentStop", "SessionEnd"} {
			if n := strings.Count(agtJSON(merged.Hooks[ev]), "/run/jackin/bin/jackin hook claude"); n != 1 {
				t.Errorf("hooks.%s runs jackin's hook %d times, want once:\n%s", ev, n, raw)
			}
		}
		if !strings.Contains(agtJSON(merged.Hooks["Stop"]), "touch /tmp/user-stop-hook") {
			t.Errorf("the user's Stop hook was lost:\n%s", raw)
		}
		// Both hooks run on a turn.
		p := e.agtAttach(t, "cl")
		p.waitText("standin claude", 15*time.Second)
		p.send("after recreate\r")
		e.agtWait(t, "cl", "done", 15*time.Second)
		if out, err := exec.Command("docker", "exec", cl, "test", "-f", "/tmp/user-stop-hook").CombinedOutput(); err != nil {
			t.Errorf("the user's Stop hook did not run: %v %s", err, out)
		}
		p.send("\x10\x11")
		p.waitExit(10 * time.Second)
	})

	t.Run("corrupt settings", func(t *testing.T) {
		const corrupt = "{not json, the user's"
		docker(t, "exec", cl, "sh", "-c", `printf '%s' "$1" > "$HOME/.claude/settings.json"`, "sh", corrupt)
		docker(t, "restart", "-t", "2", cl)
		if !agtUntil(30*time.Second, func() bool {
			ag := e.agtGet(t, m)["cl"]
			return ag != nil && len(ag.Warnings) > 0
		}) {
			t.Fatalf("get -o json shows no warning about the corrupt settings: %+v\n%s", e.agtGet(t, m)["cl"], e.agtDiag("cl"))
		}
		ag := e.agtGet(t, m)["cl"]
		if w := strings.Join(ag.Warnings, "\n"); !strings.Contains(w, "settings.json") || !strings.Contains(w, "terminal activity") {
			t.Errorf("agent.warnings does not say why: %q", ag.Warnings)
		}
		if got := docker(t, "exec", cl, "cat", "/home/agent/.claude/settings.json"); got != corrupt {
			t.Errorf("the corrupt settings.json was changed: %q", got)
		}
		// State from terminal activity.
		e.agtWait(t, "cl", "idle", 30*time.Second)
		p := e.agtAttach(t, "cl")
		p.waitText("standin claude", 15*time.Second)
		e.agtWait(t, "cl", "idle", 15*time.Second) // after the resize
		working := e.agtWaitAsync(t, "cl", "working", 15*time.Second)
		p.send("no hooks now\r")
		working()
		p.waitText("reply: no hooks now", 10*time.Second)
		e.agtWait(t, "cl", "idle", 15*time.Second)
		if ag := e.agtGet(t, m)["cl"]; ag == nil || ag.State != "idle" {
			t.Errorf("after the turn without hooks: agent = %+v, want idle", ag)
		}
		p.send("\x10\x11")
		p.waitExit(10 * time.Second)
	})
}

func agtJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestAgentRelativeStateDir: a relative --state-dir (or $JACKIN_HOME) is
// the state dir under the working directory, as it was before agents had a
// supervisor: the supervisor's binary and the agent directory are mounted
// from it, and a bind mount's source must be absolute.
func TestAgentRelativeStateDir(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := agtRuntimeImage(t)
	m := e.manifest(fmt.Sprintf(`instances: {
	rel: {role: image: %q, agent: "shell", command: ["/bin/sh", "-c", "echo up; exec cat"]}
}`, img))
	run := func(args ...string) result {
		t.Helper()
		cmd := exec.Command(jackinBin, append([]string{"--state-dir", "state"}, args...)...)
		cmd.Dir = e.dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		r := result{stdout: stdout.String(), stderr: stderr.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return r
	}
	mustCode(t, run("apply", "-f", m), 0, "apply with --state-dir state (relative)")
	if st := agtInspect(t, e.name("rel"), "{{.State.Status}}"); st != "running" {
		t.Fatalf("the agent container is %s, want running", st)
	}
	e.stateDir = filepath.Join(e.dir, "state")
	e.agtWait(t, "rel", "idle", 30*time.Second)
	mustCode(t, run("diff", "-f", m), 0, "diff with the same relative state dir")
}
