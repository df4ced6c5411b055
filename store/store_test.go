package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func openTest(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenCreatesPrivateFilesAndMigratesOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := openTest(t, dir)
	st, err := os.Stat(s.Path())
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("db mode %v err %v", st.Mode(), err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v", st.Mode())
	}
	s.Close()
	s2 := openTest(t, dir) // re-open: migrations are not re-applied
	var n, v int
	if err := s2.db.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	if n != SchemaVersion() || v != SchemaVersion() {
		t.Fatalf("migrations recorded %d, version %d; want %d", n, v, SchemaVersion())
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	if _, err := s.db.Exec(`INSERT INTO schema_migrations(version, applied_at) VALUES(?, 0)`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "newer jackin") {
		t.Fatalf("want a newer-schema error, got %v", err)
	}
}

func TestRunsActionsRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	id, err := s.BeginRun(ctx, "demo", "apply")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := s.BeginRun(ctx, "other", "apply")
	if err := s.RecordAction(ctx, id, ActionRecord{Instance: "web", Action: "create", Reasons: []string{"new instance"}, Outcome: "succeeded", Duration: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAction(ctx, id, ActionRecord{Instance: "api", Action: "recreate", Outcome: "failed", Error: "boom"}); err != nil {
		t.Fatal(err)
	}
	_ = s.RecordAction(ctx, other, ActionRecord{Instance: "x", Action: "create", Outcome: "succeeded"})
	if err := s.FinishRun(ctx, id, "failed", "1 succeeded, 1 failed"); err != nil {
		t.Fatal(err)
	}
	runs, err := s.Runs(ctx, "demo", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 {
		t.Fatalf("want 1 run of demo, got %d", len(runs))
	}
	r := runs[0]
	if r.Outcome != "failed" || r.Summary != "1 succeeded, 1 failed" || r.FinishedAt.IsZero() || len(r.Actions) != 2 {
		t.Fatalf("run: %+v", r)
	}
	if a := r.Actions[0]; a.Instance != "web" || a.Reasons[0] != "new instance" || a.Duration != 1500*time.Millisecond {
		t.Errorf("action: %+v", a)
	}
	if a := r.Actions[1]; a.Error != "boom" || a.Reasons != nil && len(a.Reasons) != 0 {
		t.Errorf("action: %+v", a)
	}
	all, _ := s.Runs(ctx, "", 10)
	if len(all) != 2 || all[0].ID != other {
		t.Errorf("all fleets newest first: %+v", all)
	}
	if all[0].Outcome != OutcomeRunning {
		t.Errorf("this process's unfinished run should be running, got %s", all[0].Outcome)
	}
}

func TestDeadProcessRunIsInterrupted(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`INSERT INTO runs(fleet, verb, pid, started_at, outcome) VALUES('demo','apply',?,?, 'running')`, cmd.Process.Pid, nowNanos()); err != nil {
		t.Fatal(err)
	}
	runs, err := s.Runs(ctx, "demo", 1)
	if err != nil || len(runs) != 1 || runs[0].Outcome != OutcomeInterrupted {
		t.Fatalf("want interrupted, got %+v %v", runs, err)
	}
}

func TestLastAppliedAndEvents(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	if err := s.SetLastApplied(ctx, "demo", "web", "h1", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLastApplied(ctx, "demo", "web", "h2", []byte(`{"a":2}`)); err != nil {
		t.Fatal(err)
	}
	_ = s.SetLastApplied(ctx, "other", "web", "x", []byte(`{}`))
	got, err := s.LastApplied(ctx, "demo")
	if err != nil || len(got) != 1 || got["web"].Hash != "h2" || string(got["web"].Spec) != `{"a":2}` {
		t.Fatalf("last applied: %+v %v", got, err)
	}
	if err := s.DeleteLastApplied(ctx, "demo", "web"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LastApplied(ctx, "demo"); len(got) != 0 {
		t.Fatalf("after delete: %+v", got)
	}
	for i := 0; i < 3; i++ {
		if err := s.RecordEvent(ctx, Event{Fleet: "demo", Instance: "web", Kind: "drift", Message: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := s.Events(ctx, "demo", 2)
	if err != nil || len(ev) != 2 || ev[0].Message != "2" {
		t.Fatalf("events: %+v %v", ev, err)
	}
}

func TestConcurrentWritersFromTwoHandles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := openTest(t, dir), openTest(t, dir)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 20; i++ {
		for _, s := range []*Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, err := s.BeginRun(ctx, "demo", "apply")
				if err != nil {
					errs <- err
					return
				}
				for j := 0; j < 3; j++ {
					if err := s.RecordAction(ctx, id, ActionRecord{Instance: fmt.Sprint(j), Action: "create", Outcome: "succeeded"}); err != nil {
						errs <- err
					}
				}
				errs <- s.FinishRun(ctx, id, "succeeded", "")
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	runs, _ := a.Runs(ctx, "demo", 100)
	if len(runs) != 40 {
		t.Fatalf("want 40 runs, got %d", len(runs))
	}
}

func TestLockWaitsThenTimesOutNamingHolder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	first, err := AcquireLock(ctx, dir, "demo", "apply", time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen []Holder
	_, err = AcquireLock(ctx, dir, "demo", "apply", 200*time.Millisecond, func(h Holder) { seen = append(seen, h) })
	if !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("want ErrLockTimeout, got %v", err)
	}
	if len(seen) != 1 || seen[0].PID != os.Getpid() || seen[0].Verb != "apply" {
		t.Fatalf("onWait holders: %+v", seen)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("jackin apply (pid %d", os.Getpid())) {
		t.Errorf("error should name the holder: %v", err)
	}
	// Another fleet is independent.
	other, err := AcquireLock(ctx, dir, "other", "apply", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	other.Release()
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	second, err := AcquireLock(ctx, dir, "demo", "delete", 0, nil)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	second.Release()
	if _, err := AcquireLock(ctx, dir, "../etc", "apply", 0, nil); err == nil {
		t.Error("a fleet name with a path in it must be refused")
	}
}

func TestLockWaitEndsWithContext(t *testing.T) {
	dir := t.TempDir()
	l, _ := AcquireLock(context.Background(), dir, "demo", "apply", 0, nil)
	defer l.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := AcquireLock(ctx, dir, "demo", "apply", time.Minute, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want context deadline, got %v", err)
	}
}

// TestHelperProcess holds a lock until killed; run only as a child.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv("JACKIN_LOCK_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	if _, err := AcquireLock(context.Background(), dir, "demo", "apply", 0, nil); err != nil {
		fmt.Println("lock failed:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	os.Exit(0)
}

func TestKilledHolderReleasesLock(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "JACKIN_LOCK_HELPER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !strings.Contains(string(buf[:n]), "locked") {
		t.Fatalf("helper did not lock: %q", buf[:n])
	}
	if _, err := AcquireLock(context.Background(), dir, "demo", "apply", 100*time.Millisecond, nil); !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("lock should be held by the child: %v", err)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	l, err := AcquireLock(context.Background(), dir, "demo", "apply", 2*time.Second, nil)
	if err != nil {
		t.Fatalf("lock not released by SIGKILL: %v", err)
	}
	l.Release()
}
