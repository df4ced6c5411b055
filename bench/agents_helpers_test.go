package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/jackin-dev/jackin/supervisor"
	"github.com/jackin-dev/jackin/test/harness"
)

var (
	runtimeImageOnce sync.Once
	runtimeImageErr  error
)

// runtimeImage builds harness.RuntimeImage (the runtime stand-ins and a
// busybox shell) once per run.
func runtimeImage(b *testing.B) string {
	b.Helper()
	runtimeImageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jackin-bench-runtimes-")
		if err != nil {
			runtimeImageErr = err
			return
		}
		defer os.RemoveAll(dir)
		runtimeImageErr = harness.BuildRuntimeImage(dir)
	})
	if runtimeImageErr != nil {
		b.Fatal(runtimeImageErr)
	}
	return harness.RuntimeImage
}

// agentFleet is an applied fleet of agents in a state dir of its own.
type agentFleet struct {
	name, dir, state, manifest string
}

// applyAgentFleet writes a manifest whose instances block is instances
// and applies it; the fleet is deleted when the benchmark ends (through
// jackin, then through the docker CLI in case jackin failed).
func applyAgentFleet(b *testing.B, name, instances string) *agentFleet {
	b.Helper()
	return applyAgentFleetIn(b, b.TempDir(), name, "", instances)
}

// applyAgentFleetIn is applyAgentFleet in dir, with top (fleet-level
// fields) before the instances.
func applyAgentFleetIn(b *testing.B, dir, name, top, instances string) *agentFleet {
	b.Helper()
	f := &agentFleet{name: name, dir: dir}
	f.state = filepath.Join(f.dir, "state")
	f.manifest = filepath.Join(f.dir, "fleet.cue")
	body := fmt.Sprintf("apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: %q\n%sinstances: {\n%s}\n", name, top, instances)
	must(b, os.WriteFile(f.manifest, []byte(body), 0o644))
	harness.RemoveFleetObjects(name) // leftovers of an interrupted run
	b.Cleanup(func() {
		if out, err := f.jackinOut(3*time.Minute, "delete", "--fleet", name); err != nil {
			b.Logf("jackin delete --fleet %s: %v\n%s", name, err, tail(out, 20))
		}
		harness.RemoveFleetObjects(name)
	})
	start := time.Now()
	out, err := f.jackinOut(10*time.Minute, "apply", "-f", f.manifest, "--parallel", "8")
	if err != nil {
		b.Fatalf("jackin apply of fleet %s: %v\n%s", name, err, tail(out, 40))
	}
	b.Logf("fleet %s applied in %v", name, time.Since(start).Round(time.Millisecond))
	return f
}

// jackinOut runs jackin on the fleet's state dir and returns its combined
// output.
func (f *agentFleet) jackinOut(limit time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, jackinBin, append([]string{"--state-dir", f.state}, args...)...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("did not finish within %s", limit)
	}
	return string(out), err
}

// jackinTimed runs jackin with stdout only and returns its duration.
func (f *agentFleet) jackinTimed(b *testing.B, args ...string) (time.Duration, []byte) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, jackinBin, append([]string{"--state-dir", f.state}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	d := time.Since(start)
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			b.Fatalf("jackin %v: %v\n%s%s", args, err, out, stderr.Bytes())
		}
	}
	return d, out
}

// container is the agent container's name of instance.
func (f *agentFleet) container(instance string) string {
	return "jk-" + f.name + "-" + instance
}

// agentDir is the host directory the instance's supervisor publishes in.
func (f *agentFleet) agentDir(instance string) string {
	return filepath.Join(f.state, "agents", f.name, instance)
}

// ptyChunk is output read from a pty, with when it was read.
type ptyChunk struct {
	data []byte
	at   time.Time
}

// ptySession is a command on a pseudo-terminal (a terminal the way an
// operator's is: the program under test puts it in raw mode).
type ptySession struct {
	name string
	cmd  *exec.Cmd
	tty  *os.File  // nil for a relay session
	w    io.Writer // keystrokes go here: the tty, or input frames
	out  chan ptyChunk
	seen bytes.Buffer // everything read, for diagnostics
	// stdin of a relay session, closed at the end.
	stdin io.WriteCloser
}

func startPTY(b *testing.B, name string, args ...string) *ptySession {
	b.Helper()
	s := &ptySession{name: name, cmd: exec.Command(args[0], args[1:]...), out: make(chan ptyChunk, 4096)}
	tty, err := pty.StartWithSize(s.cmd, &pty.Winsize{Rows: 40, Cols: 120})
	must(b, err)
	s.tty, s.w = tty, tty
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := tty.Read(buf)
			if n > 0 {
				s.out <- ptyChunk{data: append([]byte(nil), buf[:n]...), at: time.Now()}
			}
			if err != nil {
				close(s.out)
				return
			}
		}
	}()
	b.Cleanup(s.kill)
	return s
}

// drain discards what has arrived so far.
func (s *ptySession) drain() {
	for {
		select {
		case c, ok := <-s.out:
			if !ok {
				return
			}
			s.seen.Write(c.data)
		default:
			return
		}
	}
}

// waitFor waits until the byte c is read and returns when it was read.
func (s *ptySession) waitFor(c byte, limit time.Duration) (time.Time, bool) {
	timeout := time.NewTimer(limit)
	defer timeout.Stop()
	for {
		select {
		case ch, ok := <-s.out:
			if !ok {
				return time.Time{}, false
			}
			s.seen.Write(ch.data)
			if bytes.IndexByte(ch.data, c) >= 0 {
				return ch.at, true
			}
		case <-timeout.C:
			return time.Time{}, false
		}
	}
}

// waitText waits until the output so far holds text.
func (s *ptySession) waitText(text string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for !bytes.Contains(s.seen.Bytes(), []byte(text)) {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		select {
		case ch, ok := <-s.out:
			if !ok {
				return bytes.Contains(s.seen.Bytes(), []byte(text))
			}
			s.seen.Write(ch.data)
		case <-time.After(left):
		}
	}
	return true
}

// ready types marker until it comes back (the session is up and its
// terminal echoes), then lets the output settle and discards it.
func (s *ptySession) ready(b *testing.B, marker byte) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := s.w.Write([]byte{marker})
		must(b, err)
		if _, ok := s.waitFor(marker, 300*time.Millisecond); ok {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: no echo within 30s; output so far:\n%q", s.name, tail(s.seen.String(), 20))
		}
	}
	time.Sleep(300 * time.Millisecond)
	s.drain()
}

// keystroke types c and times it until its echo is read.
func (s *ptySession) keystroke(b *testing.B, c byte) time.Duration {
	b.Helper()
	s.drain()
	t0 := time.Now()
	if _, err := s.w.Write([]byte{c}); err != nil {
		b.Fatalf("%s: write: %v", s.name, err)
	}
	at, ok := s.waitFor(c, 5*time.Second)
	if !ok {
		b.Fatalf("%s: keystroke %q not echoed within 5s; output so far:\n%q", s.name, c, tail(s.seen.String(), 20))
	}
	return at.Sub(t0)
}

// finish writes the keys that end the session and waits for its exit.
func (s *ptySession) finish(keys string) {
	if s.tty != nil {
		_, _ = s.tty.Write([]byte(keys))
	} else {
		_ = supervisor.WriteFrame(s.stdin, supervisor.FrameDetach, nil)
		_ = s.stdin.Close()
	}
	done := make(chan struct{})
	go func() {
		for range s.out {
		}
		close(done)
	}()
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-exited
	}
	if s.tty != nil {
		s.tty.Close()
	}
	<-done
}

func (s *ptySession) kill() {
	if s.cmd.ProcessState == nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
	if s.tty != nil {
		s.tty.Close()
	}
}

// startRelay runs jackin's relay in the container through the docker CLI
// (`docker exec -i CONTAINER /run/jackin/bin/jackin agent-relay`) and
// speaks the attach protocol on it from here: the attach path without the
// jackin attach process and the host terminal.
func startRelay(b *testing.B, name, container string) *ptySession {
	b.Helper()
	s := &ptySession{name: name, out: make(chan ptyChunk, 4096)}
	s.cmd = exec.Command("docker", "exec", "-i", container, supervisor.Binary, "agent-relay")
	stdin, err := s.cmd.StdinPipe()
	must(b, err)
	stdout, err := s.cmd.StdoutPipe()
	must(b, err)
	must(b, s.cmd.Start())
	s.stdin, s.w = stdin, frameWriter{stdin}
	req, _ := json.Marshal(supervisor.Request{V: supervisor.ProtocolVersion, Op: "attach", Rows: 40, Cols: 120})
	_, err = stdin.Write(append(req, '\n'))
	must(b, err)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			typ, p, err := supervisor.ReadFrame(stdout, buf)
			if err != nil {
				close(s.out)
				return
			}
			if typ == supervisor.FrameOutput {
				s.out <- ptyChunk{data: append([]byte(nil), p...), at: time.Now()}
			}
		}
	}()
	b.Cleanup(s.kill)
	return s
}

// frameWriter sends each write as one input frame.
type frameWriter struct{ w io.Writer }

func (f frameWriter) Write(p []byte) (int, error) {
	if err := supervisor.WriteFrame(f.w, supervisor.FrameInput, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// procStatus reads fields of /proc/PID/status inside a container, in KB.
func procStatus(container string, pid int) (map[string]int64, error) {
	out, err := exec.Command("docker", "exec", container, "cat", fmt.Sprintf("/proc/%d/status", pid)).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("docker exec %s cat /proc/%d/status: %v: %s", container, pid, err, out)
	}
	return parseStatus(string(out)), nil
}

// hostProcStatus reads /proc/PID/status on this machine (KB fields).
func hostProcStatus(pid int) (map[string]int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	return parseStatus(string(data)), nil
}

func parseStatus(s string) map[string]int64 {
	m := map[string]int64{}
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && strings.HasSuffix(f[0], ":") {
			if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				m[strings.TrimSuffix(f[0], ":")] = v
			}
		}
	}
	return m
}

// pidOf finds the PID, inside the container, of the process whose command
// starts with comm (busybox ps).
func pidOf(container, comm string) (int, error) {
	out, err := exec.Command("docker", "exec", container, "ps", "-o", "pid,args").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("docker exec %s ps: %v: %s", container, err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[1] == comm {
			return strconv.Atoi(f[0])
		}
	}
	return 0, fmt.Errorf("no %s process in %s:\n%s", comm, container, out)
}

// mb formats KB as MB.
func mb(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

// smapsOf sums, for a process in a container, the Rss (KB) of the
// mappings of each file whose name ends in suffix, and reads its Pss
// (resident memory with shared pages divided among their users).
func smapsOf(container string, pid int, suffix string) (fileRSS, pss int64, err error) {
	out, err := exec.Command("docker", "exec", container, "cat", fmt.Sprintf("/proc/%d/smaps", pid)).CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("docker exec %s cat /proc/%d/smaps: %v: %s", container, pid, err, out)
	}
	inFile := false
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") { // a mapping's header
			inFile = len(f) >= 6 && strings.HasSuffix(f[5], suffix)
			continue
		}
		if len(f) >= 2 {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			switch {
			case f[0] == "Rss:" && inFile:
				fileRSS += v
			case f[0] == "Pss:":
				pss += v
			}
		}
	}
	return fileRSS, pss, nil
}
