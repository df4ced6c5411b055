package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/runtimes"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type testSup struct {
	socket string
	dir    string
	out    *syncBuffer
	code   chan int
}

func startSupervisor(t *testing.T, cmd ...string) *testSup {
	t.Helper()
	ts := &testSup{
		socket: fmt.Sprintf("@jackin-test-%d-%d", os.Getpid(), time.Now().UnixNano()),
		dir:    t.TempDir(),
		out:    &syncBuffer{},
		code:   make(chan int, 1),
	}
	rt, _ := runtimes.Get(runtimes.Shell)
	cfg := Config{reapOwnOnly: true, Runtime: rt, Command: cmd, AgentDir: ts.dir, HomeStore: t.TempDir(), Socket: ts.socket, Out: ts.out, Log: io.Discard, Quiet: 300 * time.Millisecond}
	go func() { ts.code <- Run(context.Background(), cfg) }()
	waitFor(t, "the supervisor's socket", func() bool {
		c, err := net.Dial("unix", ts.socket)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return ts
}

func (ts *testSup) conn(t *testing.T) *Conn {
	t.Helper()
	c, err := net.Dial("unix", ts.socket)
	if err != nil {
		t.Fatal(err)
	}
	return NewConn(c, c.(*net.UnixConn))
}

func (ts *testSup) status(t *testing.T) Status {
	t.Helper()
	c := ts.conn(t)
	defer c.Close()
	st, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// An attached terminal types, sees the echo and the program's answer,
// detaches with the keys while the program runs on, and a second attach
// is shown the earlier screen first.
func TestAttachDetachReattach(t *testing.T) {
	ts := startSupervisor(t, "/bin/sh", "-c", `read a; echo "got:$a"; read b; echo "got:$b"; exit 3`)

	in, inW := io.Pipe()
	out := &syncBuffer{}
	c := ts.conn(t)
	done := make(chan AttachResult, 1)
	go func() {
		res, err := c.Attach(context.Background(), AttachOptions{In: in, Out: out, DetachKeys: []byte{0x10, 0x11}, Rows: 30, Cols: 100})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	io.WriteString(inW, "hello\r")
	waitFor(t, "the answer", func() bool { return strings.Contains(out.String(), "got:hello") })
	if !strings.Contains(out.String(), "hello\r\n") {
		t.Errorf("the terminal did not echo the typing: %q", out.String())
	}
	if st := ts.status(t); st.Clients != 1 {
		t.Errorf("status says %d clients, want 1", st.Clients)
	}
	inW.Write([]byte{0x10, 0x11})
	res := <-done
	if !res.Detached || res.Exited != nil {
		t.Fatalf("detach: %+v", res)
	}
	c.Close()
	if !strings.Contains(ts.out.String(), "got:hello") {
		t.Errorf("the agent's output is not in its log: %q", ts.out.String())
	}

	// Reattach: the earlier screen first, then the program goes on.
	in2, inW2 := io.Pipe()
	out2 := &syncBuffer{}
	c2 := ts.conn(t)
	done2 := make(chan AttachResult, 1)
	go func() {
		res, _ := c2.Attach(context.Background(), AttachOptions{In: in2, Out: out2, DetachKeys: []byte{0x10, 0x11}})
		done2 <- res
	}()
	waitFor(t, "the replayed screen", func() bool { return strings.Contains(out2.String(), "got:hello") })
	io.WriteString(inW2, "bye\r")
	res = <-done2
	if res.Exited == nil || res.Exited.ExitStatus != 3 || res.Exited.State != "exited" {
		t.Fatalf("the agent's exit: %+v", res)
	}
	if code := <-ts.code; code != 3 {
		t.Errorf("Run returned %d, want the agent's 3", code)
	}
	st, err := ReadPublished(ts.dir)
	if err != nil || st.State != "exited" || st.ExitStatus != 3 {
		t.Errorf("published %+v %v", st, err)
	}
	evs, _ := ReadEvents(ts.dir)
	if len(evs) == 0 || evs[len(evs)-1].State != "exited" {
		t.Errorf("events %+v", evs)
	}
}

// Without hooks, output means working and silence idle.
func TestTerminalActivityState(t *testing.T) {
	ts := startSupervisor(t, "/bin/sh", "-c", `read a; i=0; while [ $i -lt 8 ]; do echo tick; sleep 0.1; i=$((i+1)); done; read b`)
	waitFor(t, "idle", func() bool { return ts.status(t).State == "idle" })
	c := ts.conn(t)
	in, inW := io.Pipe()
	go c.Attach(context.Background(), AttachOptions{In: in, Out: io.Discard, DetachKeys: []byte{0x10, 0x11}})
	io.WriteString(inW, "go\r")
	waitFor(t, "working", func() bool { return ts.status(t).State == "working" })
	waitFor(t, "idle again", func() bool { return ts.status(t).State == "idle" })
	io.WriteString(inW, "x\r")
	<-ts.code
}

func TestWatchStreamsChanges(t *testing.T) {
	ts := startSupervisor(t, "/bin/sh", "-c", `sleep 0.5; exit 0`)
	c := ts.conn(t)
	defer c.Close()
	var states []string
	err := c.Watch(context.Background(), func(st Status) bool {
		states = append(states, st.State)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if states[len(states)-1] != "exited" {
		t.Errorf("watch saw %v, want it to end with exited", states)
	}
	<-ts.code // the supervisor publishes its last state after telling watchers
}

func TestProtocolVersionMismatchIsSaid(t *testing.T) {
	ts := startSupervisor(t, "/bin/sh", "-c", `sleep 2`)
	c, err := net.Dial("unix", ts.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(`{"v":99,"op":"status"}` + "\n"))
	b, _ := io.ReadAll(c)
	if !strings.Contains(string(b), "protocol") {
		t.Errorf("answer %q", b)
	}
	<-ts.code
}

func TestStartFailureIsTheShellsStatus(t *testing.T) {
	rt, _ := runtimes.Get(runtimes.Claude)
	code := Run(context.Background(), Config{reapOwnOnly: true, Runtime: rt, Command: []string{"no-such-runtime-binary"}, AgentDir: t.TempDir(), HomeStore: t.TempDir(),
		Socket: fmt.Sprintf("@jackin-test-nf-%d", time.Now().UnixNano()), Out: io.Discard, Log: io.Discard})
	if code != 127 {
		t.Errorf("a missing runtime CLI: status %d, want 127", code)
	}
}

func TestDetacher(t *testing.T) {
	d := &detacher{keys: []byte{0x10, 0x11}}
	send, det := d.feed([]byte("ab\x10"))
	if string(send) != "ab" || det {
		t.Fatalf("held: %q %v", send, det)
	}
	send, det = d.feed([]byte("c"))
	if string(send) != "\x10c" || det {
		t.Fatalf("a broken sequence goes to the agent: %q %v", send, det)
	}
	send, det = d.feed([]byte("x\x10\x11y"))
	if string(send) != "x" || !det {
		t.Fatalf("detach: %q %v", send, det)
	}
	d = &detacher{keys: []byte{0x10, 0x10, 0x11}}
	if send, det = d.feed([]byte("\x10\x10\x10\x11")); !det || string(send) != "\x10" {
		t.Fatalf("overlapping: %q %v", send, det)
	}
}

func TestFrames(t *testing.T) {
	var b bytes.Buffer
	WriteFrame(&b, FrameResize, ResizePayload(40, 120))
	WriteFrame(&b, FrameInput, []byte("hi"))
	typ, p, err := ReadFrame(&b, nil)
	if rows, cols, ok := ParseResize(p); err != nil || typ != FrameResize || !ok || rows != 40 || cols != 120 {
		t.Fatalf("resize frame: %c %v %v", typ, p, err)
	}
	typ, p, err = ReadFrame(&b, nil)
	if err != nil || typ != FrameInput || string(p) != "hi" {
		t.Fatalf("input frame: %c %q %v", typ, p, err)
	}
	if _, _, err := ReadFrame(bytes.NewReader([]byte{'o', 0xff, 0xff, 0xff, 0xff}), nil); err == nil {
		t.Error("a frame larger than the limit was read")
	}
}

// The host reads what the agent could have written: links, FIFOs, big
// files and unknown states are refused or cleaned.
func TestReadPublishedIsHostile(t *testing.T) {
	dir := t.TempDir()
	secret := t.TempDir() + "/secret.json"
	os.WriteFile(secret, []byte(`{"state":"idle"}`), 0o600)
	os.Symlink(secret, dir+"/"+StateFile)
	if _, err := ReadPublished(dir); err == nil {
		t.Error("a symlinked state file was followed")
	}
	os.Remove(dir + "/" + StateFile)
	os.WriteFile(dir+"/"+StateFile, []byte(`{"state":"pwned","detail":"\u001b]0;title\u0007Bash","warnings":["\u001b[31mred"]}`), 0o644)
	st, err := ReadPublished(dir)
	if err != nil || st.State != "unknown" || st.Detail != "]0;titleBash" || st.Warnings[0] != "[31mred" {
		t.Errorf("cleaned: %+v %v", st, err)
	}
	os.WriteFile(dir+"/"+StateFile, bytes.Repeat([]byte(" "), maxPublished+1), 0o644)
	if _, err := ReadPublished(dir); err == nil {
		t.Error("an oversized state file was read")
	}
}

func TestScreenBytesReplaysRawLines(t *testing.T) {
	s := NewScreen(3)
	s.Write([]byte("1\r\n2\r\n3\r\n4\r\npart"))
	if got := string(s.Bytes()); got != "2\r\n3\r\n4\r\npart" {
		t.Errorf("%q", got)
	}
	s.Write([]byte(strings.Repeat("x", maxLine+10)))
	if n := len(s.Lines()); n > 4 {
		t.Errorf("a line without newline grew the ring: %d lines", n)
	}
}

// Output that is only the echo of the typing is not the agent's activity;
// an answer printed right after Enter is.
func TestEchoIsNotActivity(t *testing.T) {
	s := &supervisor{}
	now := time.Now()
	s.lastInput, s.pendingEcho = now, []byte("ls -l\r")
	if !s.isEcho([]byte("ls"), now) || !s.isEcho([]byte(" -l\r\n"), now) {
		t.Fatal("the echo of typed text counted as activity")
	}
	s.lastInput, s.pendingEcho = now, []byte("go\r")
	if s.isEcho([]byte("go\r\nanswer: 42\r\n"), now) {
		t.Fatal("an answer printed with the echo counted as echo")
	}
	s.lastInput, s.pendingEcho = now, []byte("say <t>\r")
	if n := s.echoPrefix([]byte("say <t>\r\n<answer>"), now); n != len("say <t>\r\n") {
		t.Fatalf("the echo ahead of an answer in one read: %d bytes, want %d", n, len("say <t>\r\n"))
	}
	s.lastInput, s.pendingEcho = now.Add(-2*time.Second), []byte("x")
	if s.isEcho([]byte("x"), now) {
		t.Fatal("output long after the typing counted as its echo")
	}
}

// closingOnDetach is the supervisor's side of a connection that ends the
// stream as soon as it reads the detach frame, and only then lets the
// frame's write return: the stream's end reaches the client before its
// keystrokes' goroutine reports the detach.
type closingOnDetach struct {
	out *io.PipeWriter
}

func (c closingOnDetach) Write(p []byte) (int, error) {
	if len(p) > 0 && p[0] == FrameDetach {
		c.out.Close()
		time.Sleep(100 * time.Millisecond)
	}
	return len(p), nil
}

func (c closingOnDetach) Close() error { return nil }

// TestDetachWhileTheStreamEnds: a detach is a detach even when the
// supervisor ends the stream before the client has noted it.
func TestDetachWhileTheStreamEnds(t *testing.T) {
	r, w := io.Pipe()
	c := NewConn(r, closingOnDetach{out: w})
	res, err := c.Attach(context.Background(), AttachOptions{In: strings.NewReader("\x10\x11"), Out: io.Discard, DetachKeys: []byte{0x10, 0x11}})
	if err != nil || !res.Detached {
		t.Fatalf("Attach = %+v, %v; want detached", res, err)
	}
}
