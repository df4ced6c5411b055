package credentials

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/schema"
)

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// gone waits a little for pid to die (a SIGKILL is delivered
// asynchronously) and reports whether it did.
func gone(pid int) bool {
	for range 50 {
		if !alive(pid) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// A command that exits after printing its value, leaving a child that
// holds its stdout, succeeds at once, and the child is killed with it.
func TestCommandChildHoldingStdout(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	r := &Resolver{Key: make([]byte, 32), Timeout: 5 * time.Second}
	start := time.Now()
	v, err := r.Resolve(context.Background(), schema.CredentialSource{Kind: schema.SourceCommand,
		Command: []string{script(t, "echo "+canary+"; sleep 30 & echo $! > "+pidFile+"; exit 0")}})
	elapsed := time.Since(start)
	if err != nil || string(v) != canary {
		t.Fatalf("got %q, %v", v, err)
	}
	if elapsed > 2*time.Second {
		t.Errorf("took %s", elapsed)
	}
	if pid := readPID(t, pidFile); !gone(pid) {
		_ = syscallKill(pid)
		t.Errorf("the background sleep (pid %d) survived", pid)
	}
}

// A command that outlives its timeout fails with a timeout error, promptly,
// and takes its children with it.
func TestCommandTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	child, self := filepath.Join(dir, "child"), filepath.Join(dir, "self")
	r := &Resolver{Key: make([]byte, 32), Timeout: 300 * time.Millisecond}
	start := time.Now()
	_, err := r.Resolve(context.Background(), schema.CredentialSource{Kind: schema.SourceCommand,
		Command: []string{script(t, "echo $$ > "+self+"; sleep 30 & echo $! > "+child+"; sleep 30")}})
	elapsed := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Fatalf("error: %v", err)
	}
	if elapsed > 2*time.Second {
		t.Errorf("took %s", elapsed)
	}
	for _, f := range []string{self, child} {
		if pid := readPID(t, f); !gone(pid) {
			_ = syscallKill(pid)
			t.Errorf("%s (pid %d) survived the timeout", filepath.Base(f), pid)
		}
	}
}

// A cancelled context stops the command and its children too.
func TestCommandCancelKillsGroup(t *testing.T) {
	child := filepath.Join(t.TempDir(), "child")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	r := &Resolver{Key: make([]byte, 32), Timeout: 10 * time.Second}
	start := time.Now()
	_, err := r.Resolve(ctx, schema.CredentialSource{Kind: schema.SourceCommand,
		Command: []string{script(t, "sleep 30 & echo $! > "+child+"; wait")}})
	if err == nil || !strings.Contains(err.Error(), "cancelled") || time.Since(start) > 2*time.Second {
		t.Fatalf("error %v after %s", err, time.Since(start))
	}
	if pid := readPID(t, child); !gone(pid) {
		_ = syscallKill(pid)
		t.Errorf("the background sleep (pid %d) survived", pid)
	}
}

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
