package docker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/drivers"
)

// Integration tests of Exec and ContainerLogStream, in a container with
// busybox as its shell (copied from the host's busybox-static).

var shellOnce struct {
	sync.Once
	ref string
	err error
}

// shellImage builds (once per test binary) a FROM scratch image holding
// the host's static busybox as /bin/sh.
func shellImage(t *testing.T, d *Driver) string {
	t.Helper()
	shellOnce.Do(func() {
		bb, err := exec.LookPath("busybox")
		if err != nil {
			shellOnce.err = errors.New("no busybox on the host (apt-get install -y busybox-static)")
			return
		}
		dir, err := os.MkdirTemp("", "jackin-shell-ctx-")
		if err != nil {
			shellOnce.err = err
			return
		}
		defer os.RemoveAll(dir)
		b, err := os.ReadFile(bb)
		if err != nil {
			shellOnce.err = err
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "busybox"), b, 0o755); err != nil {
			shellOnce.err = err
			return
		}
		df := "FROM scratch\nCOPY busybox /bin/busybox\nCOPY busybox /bin/sh\nENV PATH=/bin\n"
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
			shellOnce.err = err
			return
		}
		shellOnce.ref = "jackin-drvtest-shell:v1"
		_, shellOnce.err = d.EnsureImage(context.Background(), drivers.ImageSpec{
			Ref: shellOnce.ref, Build: &drivers.BuildSpec{Context: dir, Dockerfile: "Dockerfile"},
		}, io.Discard)
	})
	if shellOnce.err != nil {
		t.Fatalf("shell image: %v", shellOnce.err)
	}
	return shellOnce.ref
}

// shellContainer runs script with sh -c in a new container of fleet and
// returns its ID.
func shellContainer(t *testing.T, d *Driver, fleet, name, script string) string {
	t.Helper()
	ref := shellImage(t, d)
	id, err := d.Create(t.Context(), drivers.Resource{
		Kind: drivers.KindContainer, Name: "jk-" + fleet + "-" + name, Component: drivers.ComponentAgent,
		Labels: fleetLabels(fleet, name, drivers.ComponentAgent),
		Container: &drivers.ContainerSpec{
			Image: drivers.ImageSpec{Ref: ref}, Command: []string{"/bin/sh", "-c", script},
			NoNetwork: true, Running: true, StopSignal: "SIGKILL",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	return id
}

// run runs cmd with input (nil: no stdin) and returns its output.
func runExec(t *testing.T, d *Driver, id string, opts drivers.ExecOptions, input string) (stdout, stderr string, code int, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := d.Exec(ctx, id, opts)
	if err != nil {
		return "", "", -1, err
	}
	defer s.Close()
	if opts.Stdin {
		go func() {
			_, _ = io.WriteString(s.Stdin(), input)
			_ = s.Stdin().Close()
		}()
	}
	var out, errb bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(&out, s.Stdout()) }()
	go func() { defer wg.Done(); _, _ = io.Copy(&errb, s.Stderr()) }()
	wg.Wait()
	code, err = s.Wait(ctx)
	return out.String(), errb.String(), code, err
}

func TestEngineExec(t *testing.T) {
	d := engine(t)
	fleet := newFleet(t, d)
	id := shellContainer(t, d, fleet, "x", "echo started; exec sleep 3600")

	t.Run("status and separate streams", func(t *testing.T) {
		out, errs, code, err := runExec(t, d, id, drivers.ExecOptions{Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 7"}}, "")
		if err != nil || code != 7 || out != "out\n" || errs != "err\n" {
			t.Fatalf("got code %d err %v stdout %q stderr %q", code, err, out, errs)
		}
	})
	t.Run("stdin to EOF", func(t *testing.T) {
		in := strings.Repeat("line of input\n", 5000)
		out, _, code, err := runExec(t, d, id, drivers.ExecOptions{Cmd: []string{"sh", "-c", "wc -l; echo done"}, Stdin: true}, in)
		if err != nil || code != 0 || strings.Fields(out)[0] != "5000" || !strings.HasSuffix(out, "done\n") {
			t.Fatalf("got code %d err %v stdout %q", code, err, out)
		}
	})
	t.Run("env and user", func(t *testing.T) {
		out, _, code, err := runExec(t, d, id, drivers.ExecOptions{Cmd: []string{"sh", "-c", "echo $GREETING $(id -u)"}, Env: []string{"GREETING=hi"}, User: "1234"}, "")
		if err != nil || code != 0 || out != "hi 1234\n" {
			t.Fatalf("got code %d err %v stdout %q", code, err, out)
		}
	})
	t.Run("terminal and its size", func(t *testing.T) {
		out, errs, code, err := runExec(t, d, id, drivers.ExecOptions{Cmd: []string{"sh", "-c", "sleep 1; tty; stty size; echo err >&2"}, Tty: true, Rows: 33, Cols: 101}, "")
		if err != nil || code != 0 || !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "33 101") || !strings.Contains(out, "err\r\n") || errs != "" {
			t.Fatalf("got code %d err %v stdout %q stderr %q", code, err, out, errs)
		}
	})
	t.Run("resize", func(t *testing.T) {
		ctx := t.Context()
		s, err := d.Exec(ctx, id, drivers.ExecOptions{Cmd: []string{"sh", "-c", "stty size; read x; stty size"}, Tty: true, Stdin: true, Rows: 10, Cols: 20})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// Resize once the command runs (its first size printed), not
		// after a guessed delay: on a loaded engine the exec starts late.
		stop := time.AfterFunc(60*time.Second, func() { s.Close() })
		defer stop.Stop()
		var seen []byte
		buf := make([]byte, 256)
		for !bytes.Contains(seen, []byte("\n")) {
			n, err := s.Stdout().Read(buf)
			seen = append(seen, buf[:n]...)
			if err != nil {
				t.Fatalf("before the resize: %v, output %q", err, seen)
			}
		}
		if err := s.Resize(ctx, 40, 120); err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(s.Stdin(), "go\r")
		rest, _ := io.ReadAll(s.Stdout())
		out := append(seen, rest...)
		code, err := s.Wait(ctx)
		if err != nil || code != 0 || !strings.Contains(string(out), "40 120") {
			t.Fatalf("got code %d err %v output %q", code, err, out)
		}
	})
	t.Run("command not found", func(t *testing.T) {
		out, _, code, err := runExec(t, d, id, drivers.ExecOptions{Cmd: []string{"/no/such/binary"}}, "")
		var se *ExecStartError
		if !errors.As(err, &se) || code != 127 || se.Code != code || !strings.Contains(err.Error(), "no such file") {
			t.Fatalf("got code %d err %v stdout %q", code, err, out)
		}
		t.Logf("engine said %q; error %v", out, err)
	})
	t.Run("close with output unread", func(t *testing.T) {
		s, err := d.Exec(t.Context(), id, drivers.ExecOptions{Cmd: []string{"sh", "-c", "echo a; echo b >&2; sleep 60"}})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // the demux now blocks on a pipe nobody reads
		_ = s.Close()
		select {
		case <-s.(*execSession).drained:
		case <-time.After(5 * time.Second):
			t.Fatal("Close left the demultiplexer blocked")
		}
	})
	t.Run("close ends the session", func(t *testing.T) {
		s, err := d.Exec(t.Context(), id, drivers.ExecOptions{Cmd: []string{"sleep", "60"}})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := io.ReadAll(s.Stdout()); done <- err }()
		time.Sleep(200 * time.Millisecond)
		_ = s.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("read after Close: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not end the output")
		}
	})
}

func TestEngineLogStream(t *testing.T) {
	d := engine(t)
	fleet := newFleet(t, d)
	ctx := t.Context()
	id := shellContainer(t, d, fleet, "l", `echo err >&2; sleep 0.3; echo one; echo two; while [ ! -f /go ]; do sleep 0.1; done; echo three; sleep 3600`)
	read := func(opts drivers.LogOptions) string {
		t.Helper()
		rc, err := d.ContainerLogStream(ctx, id, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for read(drivers.LogOptions{Tail: -1}) != "one\ntwo\n" {
		if time.Now().After(deadline) {
			t.Fatalf("log: %q", read(drivers.LogOptions{Tail: -1}))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := read(drivers.LogOptions{Tail: 1}); got != "two\n" {
		t.Errorf("tail 1: %q", got)
	}
	if got := read(drivers.LogOptions{Tail: -1, Stderr: true}); got != "err\none\ntwo\n" {
		t.Errorf("with stderr: %q", got)
	}
	if got := read(drivers.LogOptions{Tail: -1, Since: time.Now().Add(time.Hour)}); got != "" {
		t.Errorf("since the future: %q", got)
	}

	rc, err := d.ContainerLogStream(ctx, id, drivers.LogOptions{Tail: 0, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 10)
	go func() {
		buf := make([]byte, 100)
		for {
			n, err := rc.Read(buf)
			if n > 0 {
				lines <- string(buf[:n])
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	if _, _, code, err := runExec(t, d, id, drivers.ExecOptions{Cmd: []string{"sh", "-c", "touch /go"}}, ""); err != nil || code != 0 {
		t.Fatalf("touch: %d %v", code, err)
	}
	select {
	case l := <-lines:
		if l != "three\n" {
			t.Errorf("followed: %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing followed")
	}
	_ = rc.Close()
	select {
	case <-lines:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the followed stream")
	}
}
