package e2e

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// Tests of jackin console (issue 16) through the real binary on a real
// pseudo-terminal: the fleet's instances drawn, enter attaching to the
// selected agent (the console steps aside for jackin attach), a line typed
// and answered, ctrl-p ctrl-q detaching back to the console, q quitting with
// exit 0; and the one-line refusal when stdout is not a terminal.

// consoleTerm starts `jackin console args...` on a pty of its own.
func (e *env) consoleTerm(t *testing.T, args ...string) *agtTerm {
	t.Helper()
	argv := append([]string{"--state-dir", e.stateDir, "console"}, args...)
	p := &agtTerm{t: t, cmd: exec.Command(jackinBin, argv...), exited: make(chan struct{})}
	p.cmd.Env = append(p.cmd.Environ(), "TERM=xterm-256color")
	startTerm(t, p, 40, 120)
	return p
}

// since is what the terminal showed after the first len(mark) bytes.
func (p *agtTerm) since(mark int) string {
	s := p.String()
	if mark > len(s) {
		return ""
	}
	return s[mark:]
}

// waitTextSince waits until the terminal shows want after mark.
func (p *agtTerm) waitTextSince(mark int, want string, d time.Duration) {
	p.t.Helper()
	if !agtUntil(d, func() bool { return strings.Contains(p.since(mark), want) }) {
		p.t.Fatalf("the terminal never showed %q after byte %d; since then it shows:\n%q", want, mark, p.since(mark))
	}
}

func TestConsole(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := agtRuntimeImage(t)
	m := e.manifest(fmt.Sprintf(`instances: {
	at:  {role: image: %[1]q, agent: "claude", description: "the console's attach target", env: STANDIN_MODEL: "claude-sonnet-4-5-20250929"}
	off: {role: image: %[1]q, agent: "claude", state: "stopped"}
}`, img))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	e.agtWait(t, "at", "idle", 30*time.Second)

	t.Run("not a terminal", func(t *testing.T) {
		r := e.jackin("console", "--fleet", e.fleet)
		mustCode(t, r, 2, "console with stdout not a terminal")
		if r.stdout != "" || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "needs a terminal") {
			t.Errorf("console without a terminal: want one line on stderr and nothing on stdout:\n%s", r)
		}
		r = e.jackin("console", "--fleet", e.fleet, "-f", m)
		mustCode(t, r, 2, "console with both -f and --fleet")
	})

	p := e.consoleTerm(t, "--fleet", e.fleet)
	// The fleet drawn: both instances, at's state, the stopped one.
	p.waitText("INSTANCE", 20*time.Second)
	p.waitText("at", 5*time.Second)
	p.waitText("off", 5*time.Second)
	p.waitText("idle", 10*time.Second)
	p.waitText("stopped", 10*time.Second)
	// The detail pane of the selected instance (at: the first row), with
	// the log the stand-in printed.
	p.waitText("standin claude args=", 15*time.Second)

	// enter: jackin attach in the foreground; its recent screen comes first.
	mark := len(p.String())
	p.send("\r")
	p.waitTextSince(mark, "standin claude args=", 15*time.Second)
	p.send("hello console\r")
	p.waitTextSince(mark, "reply: hello console", 15*time.Second)
	e.agtWait(t, "at", "done", 15*time.Second)
	// The turn's usage (the stand-in's Claude transcript: input 3+4,
	// output 20+20) published before the console comes back.
	e.usageExpect(t, map[string][4]int64{"at": {7, 40, 2000, 300}})

	// ctrl-p ctrl-q: attach detaches, the console draws itself again,
	// with the turn's tokens and cost and the agent's memory in the
	// selected instance's detail pane.
	mark = len(p.String())
	p.send("\x10\x11")
	p.waitTextSince(mark, "detached from at", 10*time.Second)
	p.waitTextSince(mark, "INSTANCE", 10*time.Second)
	p.waitTextSince(mark, "47 tokens $0.00", 15*time.Second)
	if !agtUntil(15*time.Second, func() bool { return regexp.MustCompile(`MEM [0-9]`).MatchString(p.since(mark)) }) {
		t.Fatalf("the console never showed at's memory; it shows:\n%q", p.since(mark))
	}
	if st := agtInspect(t, e.name("at"), "{{.State.Status}}"); st != "running" {
		t.Fatalf("after the detach the agent container is %s, want running", st)
	}
	// The console is live again: it follows the keys (help, then back).
	mark = len(p.String())
	p.send("?")
	p.waitTextSince(mark, "Any key closes this help", 10*time.Second)
	p.send("x")

	// q quits with exit 0.
	time.Sleep(200 * time.Millisecond)
	p.send("q")
	if code := p.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("q: jackin console exited %d, want 0; terminal:\n%q", code, p.String())
	}
	if st := agtInspect(t, e.name("at"), "{{.State.Status}}"); st != "running" {
		t.Errorf("after quitting the console the agent container is %s, want running", st)
	}
}

// startTerm starts p.cmd on a new pty of rows x cols and keeps what it
// prints.
func startTerm(t *testing.T, p *agtTerm, rows, cols uint16) {
	t.Helper()
	ptmx, err := pty.StartWithSize(p.cmd, &pty.Winsize{Rows: rows, Cols: cols})
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
}
