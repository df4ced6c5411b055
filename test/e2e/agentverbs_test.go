package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/term"
)

// Tests of `jackin exec` and `jackin logs` through the real binary, with
// agents that have a shell (the git image: busybox as /bin/sh).

// talkerScript prints plain, coloured, overwritten and titled lines, then
// prints whatever a test drops into /tmp/more, until stopped.
const talkerScript = `trap 'echo stopping; exit 0' TERM INT
printf 'plain line\n'
printf '\033[1;31mred alert\033[0m\n'
printf 'progress 10%%\rprogress 100%%\n'
printf '\033]0;a title\007titled\n'
while :; do
  if [ -f /tmp/more ]; then cat /tmp/more; rm -f /tmp/more; fi
  sleep 0.1
done`

// idleScript waits until stopped.
const idleScript = `trap 'exit 0' TERM INT
while :; do sleep 0.1; done`

var (
	shellImageOnce sync.Once
	shellImageErr  error
)

// shellImageRef is the git image without its entrypoint (the demo agent),
// so an instance's command is a shell command line.
const shellImageRef = "jackin-e2e-shell:v1"

// shellImage builds shellImageRef (once) from the git image.
func shellImage(t *testing.T) string {
	t.Helper()
	base := gitImage(t)
	shellImageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jackin-shell-image-")
		if err != nil {
			shellImageErr = err
			return
		}
		defer os.RemoveAll(dir)
		df := fmt.Sprintf("FROM %s\nENTRYPOINT []\nCMD [\"/bin/sh\"]\n", base)
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
			shellImageErr = err
			return
		}
		cmd := exec.Command("docker", "build", "-q", "-t", shellImageRef, dir)
		cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			shellImageErr = fmt.Errorf("docker build %s: %v\n%s", shellImageRef, err, out)
		}
	})
	if shellImageErr != nil {
		t.Fatal(shellImageErr)
	}
	return shellImageRef
}

// shellFleet writes a fleet of shell agents: name -> script (state stopped
// when the script is "").
func (e *env) shellFleet(t *testing.T, instances map[string]string, extra string) string {
	t.Helper()
	img := shellImage(t)
	var b strings.Builder
	b.WriteString("instances: {\n")
	for name, script := range instances {
		if script == "" {
			fmt.Fprintf(&b, "\t%q: {role: image: %q, state: \"stopped\", command: [\"/bin/sh\", \"-c\", %s]%s}\n", name, img, cueString(idleScript), extra)
			continue
		}
		fmt.Fprintf(&b, "\t%q: {role: image: %q, command: [\"/bin/sh\", \"-c\", %s]%s}\n", name, img, cueString(script), extra)
	}
	b.WriteString("}\n")
	return e.manifest(b.String())
}

// cueString quotes s for CUE (JSON's quoting, which CUE reads, with no
// interpolation).
func cueString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	out := strings.TrimSpace(b.String())
	if strings.Contains(out, `\(`) {
		panic("script holds a CUE interpolation")
	}
	return out
}

// jackinStdin runs jackin with input on its stdin.
func (e *env) jackinStdin(input io.Reader, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, jackinBin, append([]string{"--state-dir", e.stateDir}, args...)...)
	cmd.Stdin = input
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			e.t.Fatalf("run jackin %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func TestExecStatusStreamsAndUser(t *testing.T) {
	e := newEnv(t)
	// hardened runs the agent as your UID (65534 when root), not the
	// image's root: exec must run as that user too.
	m := e.shellFleet(t, map[string]string{"w": idleScript}, `, profile: "hardened"`)
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")

	r := e.jackin("exec", "-f", m, "w", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
	mustCode(t, r, 7, "exec exit 7")
	if r.stdout != "out\n" || !strings.Contains(r.stderr, "err\n") || strings.Contains(r.stdout, "err") {
		t.Errorf("streams mixed up:\n%s", r)
	}

	// --fleet, and a command without -- (it has no flags of its own).
	r = e.jackin("exec", "--fleet", e.fleet, "w", "echo", "no", "dash")
	mustCode(t, r, 0, "exec without --")
	if r.stdout != "no dash\n" {
		t.Errorf("exec without --: %q", r.stdout)
	}
	r = e.jackin("exec", "--fleet", e.fleet, "w", "--", "id", "-u")
	mustCode(t, r, 0, "exec id -u")
	want := docker(t, "inspect", "--format", "{{.Config.User}}", e.name("w"))
	want, _, _ = strings.Cut(want, ":")
	if want == "" || want == "0" || strings.TrimSpace(r.stdout) != want {
		t.Errorf("exec ran as uid %q, the agent runs as %q", strings.TrimSpace(r.stdout), want)
	}

	// Unique instance name: neither -f nor --fleet needed.
	r = e.jackin("exec", "w", "--", "sh", "-c", "echo $((6*7))")
	mustCode(t, r, 0, "exec without a fleet")
	if r.stdout != "42\n" {
		t.Errorf("stdout %q", r.stdout)
	}

	// A command that does not exist: 127, with the engine's reason.
	r = e.jackin("exec", "-f", m, "w", "--", "/no/such/program")
	mustCode(t, r, 127, "exec of a missing program")
	if !strings.Contains(r.stderr, "/no/such/program") || !strings.Contains(r.stderr, "no such file or directory") {
		t.Errorf("no clear error for a missing program:\n%s", r)
	}
}

func TestExecStdin(t *testing.T) {
	e := newEnv(t)
	m := e.shellFleet(t, map[string]string{"w": idleScript}, "")
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")

	r := e.jackinStdin(strings.NewReader("one\ntwo\nthree\n"), "exec", "-f", m, "w", "-i", "--", "sh", "-c", "tr a-z A-Z; echo end")
	mustCode(t, r, 0, "exec -i")
	if r.stdout != "ONE\nTWO\nTHREE\nend\n" {
		t.Errorf("piped through:\n%s", r)
	}

	// A megabyte arrives whole, and the end of stdin reaches the command.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	r = e.jackinStdin(bytes.NewReader(big), "exec", "-f", m, "w", "-i", "--", "sh", "-c", "wc -c")
	mustCode(t, r, 0, "exec -i wc -c")
	if strings.TrimSpace(r.stdout) != fmt.Sprint(len(big)) {
		t.Errorf("wc -c: %q, want %d", r.stdout, len(big))
	}

	// Without -i the command's stdin is closed: it reads nothing.
	r = e.jackinStdin(strings.NewReader("ignored\n"), "exec", "-f", m, "w", "--", "sh", "-c", "cat; echo after")
	mustCode(t, r, 0, "exec without -i")
	if r.stdout != "after\n" {
		t.Errorf("without -i: %q", r.stdout)
	}

	// -t with stdin not a terminal: a warning, and no terminal.
	r = e.jackinStdin(strings.NewReader(""), "exec", "-f", m, "w", "-t", "--", "sh", "-c", "if [ -t 1 ]; then echo tty; else echo notty; fi")
	mustCode(t, r, 0, "exec -t without a terminal")
	if r.stdout != "notty\n" || !strings.Contains(r.stderr, "-t ignored") {
		t.Errorf("-t without a terminal:\n%s", r)
	}
}

// ptyOutput collects what a pseudo-terminal's master reads.
type ptyOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (p *ptyOutput) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

func (p *ptyOutput) waitFor(t *testing.T, want string) {
	t.Helper()
	if !eventually(15*time.Second, func() bool { return strings.Contains(p.String(), want) }) {
		t.Fatalf("the terminal never showed %q; it shows:\n%q", want, p.String())
	}
}

func TestExecTerminal(t *testing.T) {
	e := newEnv(t)
	m := e.shellFleet(t, map[string]string{"w": idleScript}, "")
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")

	// jackin runs on a real pseudo-terminal, as in an operator's shell.
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 30, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	before, err := term.GetState(int(tty.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	// The engine (API 1.41) sets the first size just after the command
	// starts, as for docker exec: give it a moment.
	script := `tty; sleep 1; stty size; read a; stty size; read b; echo "got:$b"; exit 3`
	cmd := exec.Command(jackinBin, "--state-dir", e.stateDir, "exec", "-f", m, "w", "-it", "--", "sh", "-c", script)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	var out ptyOutput
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			out.mu.Lock()
			out.buf.Write(buf[:n])
			out.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()

	out.waitFor(t, "/dev/pts/")
	out.waitFor(t, "30 100")
	// The local terminal is raw while the session runs.
	if eventually(5*time.Second, func() bool {
		st, err := term.GetState(int(tty.Fd()))
		return err == nil && fmt.Sprint(*st) != fmt.Sprint(*before)
	}) == false {
		t.Error("the local terminal was not put in raw mode")
	}

	// Resizing the window resizes the command's terminal.
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 41, Cols: 123}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := ptmx.Write([]byte("x\r")); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "41 123")
	if _, err := ptmx.Write([]byte("hello\r")); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "got:hello")

	select {
	case err := <-done:
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 3 {
			t.Errorf("jackin exec -it: %v, want exit status 3; terminal:\n%q", err, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("jackin exec -it did not end; terminal:\n%q", out.String())
	}
	after, err := term.GetState(int(tty.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(*after) != fmt.Sprint(*before) {
		t.Error("the local terminal was not restored after jackin exec -it")
	}
}

func TestExecRefused(t *testing.T) {
	e := newEnv(t)
	m := e.shellFleet(t, map[string]string{"w": idleScript, "off": ""}, "")
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")

	r := e.jackin("exec", "-f", m, "off", "--", "true")
	mustCode(t, r, 2, "exec in a stopped instance")
	if !strings.Contains(r.stderr, "cannot exec in instance off") || !strings.Contains(r.stderr, "not running") {
		t.Errorf("unclear error for a stopped instance:\n%s", r)
	}

	r = e.jackin("exec", "-f", m, "nosuch", "--", "true")
	mustCode(t, r, 2, "exec in an unknown instance")
	if !strings.Contains(r.stderr, "nosuch") {
		t.Errorf("unclear error for an unknown instance:\n%s", r)
	}

	for _, args := range [][]string{{"w"}, {"w", "--"}, {"--", "w", "true"}, {}} {
		r = e.jackin(append([]string{"exec", "-f", m}, args...)...)
		mustCode(t, r, 2, fmt.Sprintf("exec %v", args))
		if !strings.Contains(r.stderr, "usage: jackin exec") && !strings.Contains(r.stderr, "name the instance") {
			t.Errorf("exec %v: no usage in the error:\n%s", args, r)
		}
	}
}

// more makes the talker print text (through jackin exec).
func (e *env) more(t *testing.T, m, instance, text string) {
	t.Helper()
	r := e.jackinStdin(strings.NewReader(text), "exec", "-f", m, instance, "-i", "--", "sh", "-c", "cat > /tmp/more.new && mv /tmp/more.new /tmp/more")
	mustCode(t, r, 0, "make the agent print more")
}

func TestLogs(t *testing.T) {
	e := newEnv(t)
	m := e.shellFleet(t, map[string]string{"talker": talkerScript}, "")
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")

	const first = "plain line\nred alert\nprogress 100%\ntitled\n"
	var r result
	if !eventually(15*time.Second, func() bool {
		r = e.jackin("logs", "-f", m, "talker")
		return r.code == 0 && r.stdout == first
	}) {
		t.Fatalf("logs never showed the stripped output %q:\n%s", first, r)
	}

	// --raw keeps what the agent wrote, escape sequences and all.
	r = e.jackin("logs", "--fleet", e.fleet, "talker", "--raw")
	mustCode(t, r, 0, "logs --raw")
	for _, want := range []string{"\x1b[1;31mred alert\x1b[0m", "progress 10%\rprogress 100%", "\x1b]0;a title\x07titled"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("logs --raw lacks %q:\n%q", want, r.stdout)
		}
	}

	// --tail.
	r = e.jackin("logs", "-f", m, "talker", "--tail", "2")
	mustCode(t, r, 0, "logs --tail 2")
	if r.stdout != "progress 100%\ntitled\n" {
		t.Errorf("--tail 2: %q", r.stdout)
	}
	for _, all := range []string{"all", "-1"} {
		if r = e.jackin("logs", "talker", "--tail", all); r.stdout != first {
			t.Errorf("--tail %s: %q", all, r.stdout)
		}
	}

	// --since: a time between the first lines and the next.
	time.Sleep(300 * time.Millisecond)
	mid := time.Now()
	time.Sleep(300 * time.Millisecond)
	e.more(t, m, "talker", "\x1b[32mlater\x1b[0m line\n")
	if !eventually(10*time.Second, func() bool {
		return strings.HasSuffix(e.jackin("logs", "talker").stdout, "later line\n")
	}) {
		t.Fatal("the agent's later line never reached the log")
	}
	r = e.jackin("logs", "-f", m, "talker", "--since", mid.Format(time.RFC3339Nano))
	mustCode(t, r, 0, "logs --since TIME")
	if r.stdout != "later line\n" {
		t.Errorf("--since %s: %q", mid.Format(time.RFC3339Nano), r.stdout)
	}
	r = e.jackin("logs", "-f", m, "talker", "--since", "1h")
	mustCode(t, r, 0, "logs --since 1h")
	if r.stdout != first+"later line\n" {
		t.Errorf("--since 1h: %q", r.stdout)
	}
	for _, bad := range [][]string{{"--since", "yesterday"}, {"--since", "-5m"}, {"--tail", "some"}} {
		r = e.jackin(append([]string{"logs", "-f", m, "talker"}, bad...)...)
		mustCode(t, r, 2, fmt.Sprintf("logs %v", bad))
		if !strings.Contains(r.stderr, bad[0]) {
			t.Errorf("logs %v: the error does not name the flag:\n%s", bad, r)
		}
	}

	// --follow: what the agent prints next arrives while jackin runs,
	// stripped. (The engine holds an unfinished line until its newline.)
	follow := exec.Command(jackinBin, "--state-dir", e.stateDir, "logs", "-f", m, "talker", "--follow", "--tail", "1")
	var ferr bytes.Buffer
	follow.Stderr = &ferr
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if follow.ProcessState == nil {
			_ = follow.Process.Kill()
		}
	})
	var got ptyOutput
	go func() {
		rd := bufio.NewReader(stdout)
		buf := make([]byte, 1024)
		for {
			n, err := rd.Read(buf)
			got.mu.Lock()
			got.buf.Write(buf[:n])
			got.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	got.waitFor(t, "later line\n")
	e.more(t, m, "talker", "\x1b[1mfollowed\x1b[0m one\nfollowed two\n")
	got.waitFor(t, "followed two\n")
	e.more(t, m, "talker", "progress 1%\rprogress 99%\r\x1b[Kdone \x1b[33mready\x1b[0m\n")
	got.waitFor(t, "ready\n")
	if want := "later line\nfollowed one\nfollowed two\ndone ready\n"; got.String() != want {
		t.Errorf("followed %q, want %q", got.String(), want)
	}
	_ = follow.Process.Signal(syscall.SIGINT)
	fdone := make(chan error, 1)
	go func() { fdone <- follow.Wait() }()
	select {
	case err := <-fdone:
		if err != nil {
			t.Errorf("logs --follow after SIGINT: %v\n%s", err, ferr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("logs --follow did not stop on SIGINT")
	}

	// An exited agent's log is still there, and --follow ends at its end.
	docker(t, "stop", "-t", "10", e.name("talker"))
	r = e.jackin("logs", "-f", m, "talker")
	mustCode(t, r, 0, "logs of an exited agent")
	if !strings.HasPrefix(r.stdout, first) || !strings.Contains(r.stdout, "done ready\n") || !strings.HasSuffix(r.stdout, "stopping\n") {
		t.Errorf("logs of the exited agent: %q", r.stdout)
	}
	start := time.Now()
	r = e.jackin("logs", "-f", m, "talker", "--follow", "--tail", "1")
	mustCode(t, r, 0, "logs --follow of an exited agent")
	if r.stdout != "stopping\n" || time.Since(start) > 30*time.Second {
		t.Errorf("logs --follow of an exited agent: %q after %s", r.stdout, time.Since(start))
	}

	// An unknown instance is exit 2.
	r = e.jackin("logs", "-f", m, "nosuch")
	mustCode(t, r, 2, "logs of an unknown instance")
	if !strings.Contains(r.stderr, "nosuch") {
		t.Errorf("unclear error:\n%s", r)
	}
	mustCode(t, e.jackin("logs", "-f", m), 2, "logs without an instance")
}
