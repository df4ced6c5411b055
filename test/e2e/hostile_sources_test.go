package e2e

// Attacks on what jackin reads (issue 22, items 4, 5 and 9): a FIFO where a
// credential file or a manifest belongs, a signal while a read blocks, and a
// credential command that prints a secret on stderr.

import (
	"bytes"
	"crypto/rand"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// started is a jackin process running in the background.
type started struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	code   int
}

// startJackin starts jackin with this env's state dir; stdin is what it
// reads (nil: nothing). The test's cleanup kills it if it still runs.
func (e *env) startJackin(stdin io.Reader, extraEnv []string, args ...string) *started {
	e.t.Helper()
	s := &started{t: e.t, done: make(chan struct{})}
	s.cmd = exec.Command(jackinBin, append([]string{"--state-dir", e.stateDir}, args...)...)
	s.cmd.Env = append(os.Environ(), extraEnv...)
	s.cmd.Stdin = stdin
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	if err := s.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		err := s.cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			s.code = ee.ExitCode()
		}
		close(s.done)
	}()
	e.t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

// wait returns the result once jackin exits, failing the test if it still
// runs after limit (and killing it).
func (s *started) wait(limit time.Duration, what string) result {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(limit):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.t.Fatalf("%s: still running after %s (killed)\n--- stdout:\n%s--- stderr:\n%s", what, limit, s.stdout.String(), s.stderr.String())
	}
	return result{code: s.code, stdout: s.stdout.String(), stderr: s.stderr.String()}
}

// jackinWithin runs jackin and fails the test if it has not exited after
// limit: these attacks make it block for ever.
func (e *env) jackinWithin(limit time.Duration, extraEnv []string, args ...string) result {
	e.t.Helper()
	return e.startJackin(nil, extraEnv, args...).wait(limit, "jackin "+strings.Join(args, " "))
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatalf("mkfifo %s: %v", path, err)
	}
}

// Item 4: a FIFO as a credential file source. validate, diff and apply
// refuse it at its line, at once; one swapped in under a running watch (which
// reads every source again on each pass) fails that instance's pass, naming
// it, and watch goes on healing the others and stops at the first SIGINT.
func TestCredentialFileSourceFIFO(t *testing.T) {
	e := newEnv(t)
	tok := filepath.Join(t.TempDir(), "token")
	mkfifo(t, tok)
	path := e.manifest(`instances: {
	a: {role: image: "` + agentImage + `", command: ["/agent", "idle"]
		credentials: TOK: from: file: "` + tok + `"}
	b: {role: image: "` + agentImage + `", command: ["/agent", "idle"]}
}`)
	for _, verb := range []string{"validate", "diff", "apply"} {
		r := e.jackinWithin(20*time.Second, nil, verb, "-f", path)
		mustCode(t, r, 2, verb+" with a FIFO as a file source")
		if !strings.Contains(r.stderr, "fleet.cue:6:27: instances.a.credentials.TOK.from.file: credential TOK: the file source "+tok+" is not a regular file (a FIFO)") {
			t.Fatalf("%s does not name the FIFO at its line:\n%s", verb, r)
		}
	}
	if len(e.containers()) != 0 {
		t.Fatalf("apply of an invalid manifest changed the engine: %v", e.containers())
	}

	// A regular file is applied; a FIFO swapped in under a running watch
	// does not hang its passes.
	swap := func(fifo bool) {
		t.Helper()
		_ = os.Remove(tok)
		if fifo {
			mkfifo(t, tok)
		} else if err := os.WriteFile(tok, []byte("plainvalue\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	swap(false)
	mustCode(t, e.jackinWithin(time.Minute, nil, "apply", "-f", path), 0, "apply with a regular file")
	w := e.startWatch(nil, "-f", path, "--resync", "1s")
	w.waitFor("the first pass", 30*time.Second, 1, func(l watchLine) bool { return l.Type == "info" && strings.Contains(l.Message, "watching fleet") })
	swap(true)
	w.waitFor("a's credential error", 30*time.Second, 1, func(l watchLine) bool {
		return l.Instance == "a" && (l.Outcome == "failed" || l.Type == "error")
	})
	docker(t, "kill", e.name("b"))
	w.waitFor("b restarted", 30*time.Second, 1, healed("b", "start", ""))
	start := time.Now()
	if code := w.stop(); code != 0 {
		t.Fatalf("watch exited %d after SIGINT, want 0\n%s", code, w.stderr.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("watch took %s to stop", d)
	}
	if !strings.Contains(w.dump(), "not a regular file (a FIFO)") {
		t.Errorf("watch does not say why a failed:\n%s", w.dump())
	}
}

// Item 5: a FIFO as the manifest, or among a manifest directory's files, is
// refused at once, naming it; -f - still reads stdin.
func TestManifestFIFO(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "fifo.yaml")
	mkfifo(t, fifo)
	for _, verb := range []string{"validate", "diff", "apply"} {
		r := e.jackinWithin(20*time.Second, nil, verb, "-f", fifo)
		mustCode(t, r, 2, verb+" -f fifo.yaml")
		if !strings.Contains(r.stderr, fifo+": not a regular file (a FIFO)") {
			t.Fatalf("%s does not name the FIFO:\n%s", verb, r)
		}
	}
	dir := filepath.Join(e.dir, "fleet")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.cue"), []byte("apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: \""+e.fleet+"\"\ninstances: a: role: image: \""+agentImage+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mkfifo(t, filepath.Join(dir, "b.yaml"))
	r := e.jackinWithin(20*time.Second, nil, "validate", "-f", dir)
	mustCode(t, r, 2, "validate of a directory holding a FIFO")
	if !strings.Contains(r.stderr, filepath.Join(dir, "b.yaml")+": not a regular file (a FIFO)") {
		t.Fatalf("validate does not name the FIFO in the directory:\n%s", r)
	}
	// A watch given such a directory refuses to start, at once.
	r = e.jackinWithin(20*time.Second, nil, "watch", "-f", dir)
	mustCode(t, r, 2, "watch of a directory holding a FIFO")

	// -f - is the way to read a stream.
	manifest, err := os.ReadFile(filepath.Join(dir, "a.cue"))
	if err != nil {
		t.Fatal(err)
	}
	s := e.startJackin(bytes.NewReader(manifest), nil, "validate", "-f", "-")
	mustCode(t, s.wait(20*time.Second, "validate -f -"), 0, "validate -f - from a pipe")
}

// Item 5: with no engine step in flight (here: reading the manifest from a
// stdin that never ends), the first SIGTERM or SIGINT exits at once, with
// 128 + the signal's number.
func TestFirstSignalWhileReadingExitsAtOnce(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		verb string
		sig  syscall.Signal
		code int
	}{
		{"validate", syscall.SIGTERM, 143},
		{"apply", syscall.SIGTERM, 143},
		{"diff", syscall.SIGINT, 130},
	} {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		s := e.startJackin(pr, nil, tc.verb, "-f", "-")
		pr.Close()
		time.Sleep(500 * time.Millisecond) // blocked in the read by now
		select {
		case <-s.done:
			t.Fatalf("%s -f - exited before the signal:\n%s", tc.verb, s.stderr.String())
		default:
		}
		sent := time.Now()
		_ = s.cmd.Process.Signal(tc.sig)
		r := s.wait(5*time.Second, tc.verb+" -f - after "+tc.sig.String())
		pw.Close()
		if d := time.Since(sent); d > 3*time.Second {
			t.Errorf("%s exited %s after %s, want at once", tc.verb, d, tc.sig)
		}
		mustCode(t, r, tc.code, tc.verb+" -f - after "+tc.sig.String())
		if strings.Contains(r.stderr, "finishing the step in flight") {
			t.Errorf("%s: nothing was in flight, yet:\n%s", tc.verb, r.stderr)
		}
	}
}

// With an engine step in flight the first signal still finishes it: the run
// is recorded as interrupted, and the next apply converges.
func TestFirstSignalMidApplyFinishesTheStep(t *testing.T) {
	e := newEnv(t)
	names := []string{"s00", "s01", "s02", "s03", "s04", "s05", "s06", "s07", "s08", "s09", "s10", "s11"}
	m := e.manifest(instancesCUE(names, ""))
	s := e.startJackin(nil, nil, "apply", "-f", m, "--parallel", "1")
	deadline := time.Now().Add(60 * time.Second)
	for len(e.containers()) < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	r := s.wait(2*time.Minute, "apply after SIGINT")
	if len(e.containers()) == len(names) {
		t.Skipf("apply finished before the signal came:\n%s", r)
	}
	if !strings.Contains(r.stderr, "finishing the step in flight") {
		t.Fatalf("the first SIGINT mid-apply did not let the step finish:\n%s", r)
	}
	if h := e.jackin("history", "-f", m); !strings.Contains(h.stdout, "interrupted") {
		t.Errorf("history should show the run as interrupted:\n%s", h)
	}
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply after the interrupted one")
	mustCode(t, e.jackin("diff", "-f", m), 0, "diff after recovery")
}

// plainWord is a secret no redaction rule recognizes: lowercase letters
// only, shorter than a token.
func plainWord(t *testing.T) string {
	t.Helper()
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	w := []byte("tangerine")
	for _, c := range b {
		w = append(w, 'a'+c%26)
	}
	return string(w)
}

// Item 9: a failing credential command's stderr is never printed by diff
// or apply, nor stored; the error names the source, its exit status and
// how to see the output; jackin credentials check shows it on request.
func TestCredentialCommandStderrNeverShownNorStored(t *testing.T) {
	e := newEnv(t)
	secret := plainWord(t)
	bin := t.TempDir()
	script := "#!/bin/sh\necho \"vault: unlock with " + secret + " failed\" >&2\nexit 3\n"
	if err := os.WriteFile(filepath.Join(bin, "vaultread"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	envv := []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")}
	path := e.manifest(`instances: {
	a: {role: image: "` + agentImage + `", command: ["/agent", "idle"]
		credentials: DB: from: command: ["vaultread", "--item", "db"]}
}`)
	var outputs []string
	run := func(code int, args ...string) result {
		t.Helper()
		r := e.jackinWithin(time.Minute, envv, append([]string{"-v", "9"}, args...)...)
		mustCode(t, r, code, strings.Join(args, " "))
		outputs = append(outputs, strings.Join(args, " ")+"\n"+r.stdout+r.stderr)
		return r
	}
	mustCode(t, e.jackinWithin(time.Minute, envv, "validate", "-f", path), 0, "validate")
	for _, r := range []result{run(2, "diff", "-f", path), run(1, "apply", "-f", path), run(1, "apply", "-f", path, "-o", "json")} {
		for _, want := range []string{"credential DB (from command vaultread --item db) cannot be read", "command vaultread failed (exit status 3)",
			"its stderr is not shown nor kept, as it may hold a secret: to see it on your terminal, run: jackin credentials check -f " + path} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("the error lacks %q:\n%s", want, r)
			}
		}
	}
	run(0, "history", "-f", path, "-o", "json")
	run(0, "get", "-f", path)
	for _, o := range outputs {
		if strings.Contains(o, secret) {
			t.Fatalf("jackin printed the command's stderr:\n%s", o)
		}
	}
	err := filepath.WalkDir(e.stateDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the state dir file %s holds the command's stderr", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// On request, on the operator's terminal: the command's stderr as it
	// printed it, and still never the value.
	r := e.jackinWithin(time.Minute, envv, "credentials", "check", "-f", path)
	mustCode(t, r, 1, "credentials check")
	if !strings.Contains(r.stderr, "vault: unlock with "+secret+" failed") {
		t.Fatalf("credentials check does not show the command's stderr:\n%s", r)
	}
	if !strings.Contains(r.stdout, "a: DB (from command vaultread --item db): command vaultread failed (exit status 3)") || strings.Contains(r.stdout, secret) {
		t.Fatalf("credentials check's report:\n%s", r)
	}
}
