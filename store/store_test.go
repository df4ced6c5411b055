package store

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	if s.Path() != filepath.Join(dir, "jackin.db") {
		t.Errorf("path %s", s.Path())
	}
	if err := s.RecordEvent(context.Background(), Event{Fleet: "demo", Kind: "k", Message: "m"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"jackin.db", "jackin.db-wal", "jackin.db-shm"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v err %v; want 0600", name, st.Mode(), err)
		}
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
	if ev, _ := s2.Events(context.Background(), "demo", 0); len(ev) != 1 {
		t.Fatalf("data lost on re-open: %+v", ev)
	}
}

func TestOlderSchemaIsMigratedStepwise(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	// Make it a version-1 database, as an earlier jackin left it.
	if _, err := s.db.Exec(`DROP INDEX events_at; DROP TABLE crash_state; DROP TABLE checkouts; DROP TABLE egress_log; DROP TABLE egress_pull; DROP TABLE fleet_owners; DROP TABLE agent_states_seen; DROP TABLE usage; DROP TABLE work_links; DROP TABLE link_states; DROP TABLE github_cache; DROP TABLE github_rate; DROP TABLE tasks; DROP TABLE task_transitions; DROP TABLE queue_settings; DROP TABLE idle_stopped; DROP TABLE idle_actions; DELETE FROM schema_migrations WHERE version > 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := openTest(t, dir)
	var v, idx int
	if err := s2.db.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if err := s2.db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE (type='index' AND name='events_at') OR (type='table' AND name IN ('crash_state', 'checkouts', 'egress_log', 'egress_pull', 'fleet_owners', 'agent_states_seen', 'usage', 'work_links', 'link_states', 'github_cache', 'github_rate', 'tasks', 'task_transitions', 'queue_settings', 'idle_stopped', 'idle_actions'))`).Scan(&idx); err != nil {
		t.Fatal(err)
	}
	if v != SchemaVersion() || idx != 17 {
		t.Fatalf("version %d (want %d), events_at, crash_state, checkouts, egress_log, egress_pull, fleet_owners, agent_states_seen, usage, work_links, link_states, github_cache, github_rate, tasks, task_transitions, queue_settings, idle_stopped and idle_actions present: %d of 17", v, SchemaVersion(), idx)
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
	if err == nil || !strings.Contains(err.Error(), "state dir was written by a newer jackin") {
		t.Fatalf("want a newer-schema error, got %v", err)
	}
}

func TestConcurrentFirstOpen(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), dir)
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := openTest(t, dir)
	var n int
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != SchemaVersion() {
		t.Fatalf("migrations recorded %d (%v); want %d", n, err, SchemaVersion())
	}
}

func TestStateDirWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir?x=1#frag%20")
	s := openTest(t, dir)
	if _, err := s.BeginRun(context.Background(), "demo", "apply"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "jackin.db")); err != nil {
		t.Fatalf("database not where expected: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Fatalf("stray files next to the state dir: %v", entries)
	}
}

func TestEveryConnectionIsConfigured(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	// Hold the whole pool so each pragma is read on a distinct connection.
	for i := 0; i < maxConns; i++ {
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "10000"} {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil || got != want {
				t.Errorf("conn %d: %s = %q (%v), want %q", i, pragma, got, err, want)
			}
		}
	}
}

func TestActionOfUnknownRunIsRefused(t *testing.T) {
	s := openTest(t, t.TempDir())
	err := s.RecordAction(context.Background(), 42, ActionRecord{Instance: "web", Action: "create", Outcome: "succeeded"})
	if err == nil || !strings.Contains(err.Error(), "web") {
		t.Fatalf("want a foreign-key error naming the instance, got %v", err)
	}
}

func TestTxRollsBackOnPanic(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	func() {
		defer func() { _ = recover() }()
		_ = s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO events(fleet, kind, message, at) VALUES('demo','k','m',0)`); err != nil {
				t.Fatal(err)
			}
			panic("boom")
		})
	}()
	// The connection went back to the pool without an open transaction.
	for i := 0; i < maxConns+1; i++ {
		if err := s.RecordEvent(ctx, Event{Fleet: "demo", Kind: "k", Message: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if ev, _ := s.Events(ctx, "demo", 100); len(ev) != maxConns+1 {
		t.Fatalf("the panicking transaction was not rolled back: %d events", len(ev))
	}
}

func TestRunsActionsRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	before := time.Now()
	id, err := s.BeginRun(ctx, "demo", "apply")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := s.BeginRun(ctx, "other", "apply")
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	if err := s.RecordAction(ctx, id, ActionRecord{Instance: "web", Action: "recreate", Reasons: []string{"image changed", "env changed"}, Outcome: "succeeded", Duration: 1500 * time.Millisecond, At: at}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAction(ctx, id, ActionRecord{Instance: "api", Action: "create", Outcome: "failed", Error: "boom"}); err != nil {
		t.Fatal(err)
	}
	_ = s.RecordAction(ctx, other, ActionRecord{Instance: "x", Action: "create", Outcome: "succeeded"})
	if err := s.FinishRun(ctx, id, OutcomeFailed, "1 succeeded, 1 failed"); err != nil {
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
	if r.ID != id || r.Fleet != "demo" || r.Verb != "apply" || r.PID != os.Getpid() || r.Outcome != "failed" ||
		r.Summary != "1 succeeded, 1 failed" || r.StartedAt.Before(before.Add(-time.Second)) || r.FinishedAt.Before(r.StartedAt) || len(r.Actions) != 2 {
		t.Fatalf("run: %+v", r)
	}
	if a := r.Actions[0]; a.RunID != id || a.Instance != "web" || a.Action != "recreate" || strings.Join(a.Reasons, ";") != "image changed;env changed" ||
		a.Duration != 1500*time.Millisecond || !a.At.Equal(at) || a.At.Location() != time.UTC {
		t.Errorf("action: %+v", a)
	}
	if a := r.Actions[1]; a.Error != "boom" || a.Outcome != "failed" || a.Reasons != nil || a.At.IsZero() {
		t.Errorf("action: %+v", a)
	}
	all, _ := s.Runs(ctx, "", 10)
	if len(all) != 2 || all[0].ID != other || len(all[0].Actions) != 1 || len(all[1].Actions) != 2 {
		t.Errorf("all fleets newest first: %+v", all)
	}
	if all[0].Outcome != OutcomeRunning || !all[0].FinishedAt.IsZero() {
		t.Errorf("this process's unfinished run should be running, got %+v", all[0])
	}
	if one, _ := s.Runs(ctx, "", 1); len(one) != 1 || one[0].ID != other {
		t.Errorf("limit: %+v", one)
	}
	if none, err := s.Runs(ctx, "nope", 10); err != nil || len(none) != 0 {
		t.Errorf("unknown fleet: %+v %v", none, err)
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

func TestRunOfEarlierProcessWithOurPIDIsInterrupted(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	// An earlier process with this pid (say pid 1 in a container) died mid-run.
	if _, err := s.db.Exec(`INSERT INTO runs(fleet, verb, pid, started_at, outcome) VALUES('demo','apply',?,?, 'running')`,
		os.Getpid(), processStart.Add(-time.Hour).UnixNano()); err != nil {
		t.Fatal(err)
	}
	live, _ := s.BeginRun(ctx, "demo", "apply")
	runs, err := s.Runs(ctx, "demo", 10)
	if err != nil || len(runs) != 2 {
		t.Fatal(runs, err)
	}
	if runs[0].ID != live || runs[0].Outcome != OutcomeRunning || runs[1].Outcome != OutcomeInterrupted {
		t.Fatalf("want running then interrupted, got %+v", runs)
	}
}

func TestLastApplied(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	if got, err := s.LastApplied(ctx, "demo"); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("empty: %+v %v", got, err)
	}
	if err := s.SetLastApplied(ctx, "demo", "web", "h1", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLastApplied(ctx, "demo", "web", "h2", []byte(`{"a":2}`)); err != nil {
		t.Fatal(err)
	}
	_ = s.SetLastApplied(ctx, "demo", "api", "h3", []byte(`{"b":[1,2]}`))
	_ = s.SetLastApplied(ctx, "other", "web", "x", []byte(`{}`))
	got, err := s.LastApplied(ctx, "demo")
	if err != nil || len(got) != 2 || got["web"].Hash != "h2" || string(got["web"].Spec) != `{"a":2}` || got["web"].Instance != "web" ||
		got["web"].AppliedAt.IsZero() || string(got["api"].Spec) != `{"b":[1,2]}` {
		t.Fatalf("last applied: %+v %v", got, err)
	}
	if err := s.DeleteLastApplied(ctx, "demo", "web"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteLastApplied(ctx, "demo", "never"); err != nil {
		t.Fatalf("deleting an absent instance: %v", err)
	}
	if got, _ := s.LastApplied(ctx, "demo"); len(got) != 1 || got["api"].Hash != "h3" {
		t.Fatalf("after delete: %+v", got)
	}
	if got, _ := s.LastApplied(ctx, "other"); len(got) != 1 {
		t.Fatalf("other fleet touched: %+v", got)
	}
}

func TestEvents(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	// Recorded out of order: newest first means by At.
	for _, e := range []Event{
		{Fleet: "demo", Instance: "web", Kind: "drift", Message: "second", At: base.Add(2 * time.Second), Data: json.RawMessage(`{"field":"image"}`)},
		{Fleet: "demo", Instance: "web", Kind: "heal", Message: "first", At: base.Add(time.Second)},
		{Fleet: "other", Kind: "warning", Message: "third", At: base.Add(3 * time.Second)},
		{Fleet: "demo", Kind: "drift", Message: "now"},
	} {
		if err := s.RecordEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := s.Events(ctx, "demo", 2)
	if err != nil || len(ev) != 2 || ev[0].Message != "now" || ev[1].Message != "second" {
		t.Fatalf("events: %+v %v", ev, err)
	}
	if e := ev[1]; e.Fleet != "demo" || e.Instance != "web" || e.Kind != "drift" || !e.At.Equal(base.Add(2*time.Second)) || string(e.Data) != `{"field":"image"}` || e.ID == 0 {
		t.Errorf("event: %+v", e)
	}
	if string(ev[0].Data) != "null" {
		t.Errorf("no data should read as null, got %s", ev[0].Data)
	}
	all, _ := s.Events(ctx, "", 0)
	var msgs []string
	for _, e := range all {
		msgs = append(msgs, e.Message)
	}
	if strings.Join(msgs, ",") != "now,third,second,first" {
		t.Errorf("all fleets newest first: %v", msgs)
	}
}

// writeRuns records n runs with a few actions each.
func writeRuns(ctx context.Context, s *Store, n int) error {
	for i := 0; i < n; i++ {
		id, err := s.BeginRun(ctx, "demo", "apply")
		if err != nil {
			return err
		}
		for j := 0; j < 3; j++ {
			if err := s.RecordAction(ctx, id, ActionRecord{Instance: fmt.Sprint(j), Action: "create", Outcome: "succeeded"}); err != nil {
				return err
			}
		}
		if err := s.SetLastApplied(ctx, "demo", fmt.Sprint(i%3), "h", []byte(`{}`)); err != nil {
			return err
		}
		if err := s.FinishRun(ctx, id, OutcomeSucceeded, ""); err != nil {
			return err
		}
	}
	return nil
}

func TestConcurrentWritersFromTwoHandles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := openTest(t, dir), openTest(t, dir)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 20; i++ {
		for _, s := range []*Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- writeRuns(ctx, s, 1)
			}()
		}
	}
	// Readers alongside.
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				if _, err := b.Runs(ctx, "", 5); err != nil {
					t.Error(err)
				}
			}
		}()
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
	for _, r := range runs {
		if len(r.Actions) != 3 || r.Outcome != OutcomeSucceeded {
			t.Fatalf("run %+v", r)
		}
	}
}

func TestConcurrentWritersFromTwoProcesses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	cmd := helper(t, "write", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := writeRuns(ctx, s, 30); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper writer: %v", err)
	}
	runs, _ := s.Runs(ctx, "demo", 100)
	if len(runs) != 60 {
		t.Fatalf("want 60 runs, got %d", len(runs))
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
	start := time.Now()
	_, err = AcquireLock(ctx, dir, "demo", "watch", 300*time.Millisecond, func(h Holder) { seen = append(seen, h) })
	if !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("want ErrLockTimeout, got %v", err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond || waited > 2*time.Second {
		t.Errorf("waited %s for a 300ms timeout", waited)
	}
	host, _ := os.Hostname()
	if len(seen) != 1 || seen[0].PID != os.Getpid() || seen[0].Verb != "apply" || seen[0].Host != host || seen[0].Since.IsZero() {
		t.Fatalf("onWait holders: %+v", seen)
	}
	want := fmt.Sprintf(`fleet "demo" is locked by jackin apply (pid %d on %s) since `, os.Getpid(), host)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error should name the holder (%q): %v", want, err)
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
	if err := first.Release(); err != nil {
		t.Errorf("second release: %v", err)
	}
	// The file stays, empty, for the next writer.
	if b, err := os.ReadFile(filepath.Join(dir, "locks", "demo.lock")); err != nil || len(b) != 0 {
		t.Errorf("released lock file: %q %v", b, err)
	}
	second, err := AcquireLock(ctx, dir, "demo", "delete", 0, nil)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	second.Release()
	for _, bad := range []string{"../etc", "", "Demo", "a/b"} {
		if _, err := AcquireLock(ctx, dir, bad, "apply", 0, nil); err == nil {
			t.Errorf("fleet name %q must be refused", bad)
		}
	}
	if st, _ := os.Stat(filepath.Join(dir, "locks")); st.Mode().Perm() != 0o700 {
		t.Errorf("locks dir mode %v", st.Mode())
	}
}

func TestLockWaiterSeesHolderChanges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "locks", "demo.lock")
	l, err := AcquireLock(ctx, dir, "demo", "apply", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	// The holder has not written its record yet.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	seen := make(chan Holder, 10)
	done := make(chan error, 1)
	go func() {
		_, err := AcquireLock(ctx, dir, "demo", "apply", 5*time.Second, func(h Holder) { seen <- h })
		done <- err
	}()
	if h := <-seen; h.PID != 0 || !strings.Contains(h.String(), "not recorded") {
		t.Fatalf("first holder should be unknown, got %+v", h)
	}
	rec, _ := json.Marshal(Holder{PID: 4242, Host: "elsewhere", Verb: "watch", Since: time.Now().UTC()})
	if err := os.WriteFile(path, rec, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-seen:
		if h.PID != 4242 || h.Verb != "watch" || h.Host != "elsewhere" {
			t.Fatalf("changed holder: %+v", h)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("onWait not called again when the holder changed")
	}
	// Unchanged holder: no more calls; release hands the lock over.
	time.Sleep(3 * lockPoll)
	l.Release()
	if err := <-done; err != nil {
		t.Fatalf("waiter after release: %v", err)
	}
	if len(seen) != 0 {
		t.Errorf("extra onWait calls: %d", len(seen))
	}
}

func TestLockWaitEndsWithContext(t *testing.T) {
	dir := t.TempDir()
	l, err := AcquireLock(context.Background(), dir, "demo", "apply", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = AcquireLock(ctx, dir, "demo", "apply", time.Minute, nil)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrLockTimeout) {
		t.Fatalf("want context deadline, got %v", err)
	}
}

// helper runs this test binary as a child in the given mode (see
// TestHelperProcess) on state dir dir.
func helper(t *testing.T, mode, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "JACKIN_STORE_HELPER="+mode, "JACKIN_STORE_HELPER_DIR="+dir)
	cmd.Stderr = os.Stderr
	t.Cleanup(func() {
		if cmd.Process != nil && cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// TestHelperProcess is a child process for other tests, not a test itself:
// "lock" holds the demo lock until killed; "write" records runs.
func TestHelperProcess(t *testing.T) {
	mode, dir := os.Getenv("JACKIN_STORE_HELPER"), os.Getenv("JACKIN_STORE_HELPER_DIR")
	ctx := context.Background()
	switch mode {
	case "":
		t.Skip("helper process only")
	case "lock":
		if _, err := AcquireLock(ctx, dir, "demo", "apply", 0, nil); err != nil {
			fmt.Fprintln(os.Stderr, "lock failed:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		time.Sleep(time.Minute)
	case "write":
		s, err := Open(ctx, dir)
		if err == nil {
			err = writeRuns(ctx, s, 30)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "write failed:", err)
			os.Exit(1)
		}
		s.Close()
	}
	os.Exit(0)
}

func TestKilledHolderReleasesLock(t *testing.T) {
	dir := t.TempDir()
	cmd := helper(t, "lock", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "locked\n" {
		t.Fatalf("helper did not lock: %q", line)
	}
	var holder Holder
	_, err = AcquireLock(context.Background(), dir, "demo", "apply", 150*time.Millisecond, func(h Holder) { holder = h })
	if !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("lock should be held by the child: %v", err)
	}
	if holder.PID != cmd.Process.Pid || !strings.Contains(err.Error(), "pid "+strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("holder %+v, error %v; want the child pid %d", holder, err, cmd.Process.Pid)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	l, err := AcquireLock(context.Background(), dir, "demo", "apply", 2*time.Second, nil)
	if err != nil {
		t.Fatalf("lock not released by SIGKILL: %v", err)
	}
	l.Release()
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("JACKIN_HOME", "/somewhere/jk")
	if d := DefaultDir(); d != "/somewhere/jk" {
		t.Errorf("with JACKIN_HOME: %s", d)
	}
	t.Setenv("JACKIN_HOME", "")
	t.Setenv("HOME", "/home/op")
	if d := DefaultDir(); d != "/home/op/.local/state/jackin" {
		t.Errorf("default: %s", d)
	}
}

func TestCrashStateRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	next := time.Now().Add(4 * time.Second).Truncate(time.Millisecond)
	if err := s.SetCrashState(ctx, "demo", CrashState{Instance: "web", Restarts: 3, LastExit: "1", NextAttempt: next}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCrashState(ctx, "demo", CrashState{Instance: "web", Restarts: 4, LastExit: "2", NextAttempt: next}); err != nil {
		t.Fatal(err)
	}
	got, err := s.CrashStates(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	c, ok := got["web"]
	if !ok || c.Restarts != 4 || c.LastExit != "2" || !c.NextAttempt.Equal(next) || !c.Watching {
		t.Fatalf("crash state = %+v (ok %v)", c, ok)
	}
	if other, _ := s.CrashStates(ctx, "other"); len(other) != 0 {
		t.Fatalf("another fleet sees %v", other)
	}
	if err := s.ClearCrashState(ctx, "demo", "web"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.CrashStates(ctx, "demo"); len(got) != 0 {
		t.Fatalf("cleared state still there: %v", got)
	}
}

func TestCheckoutRecords(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	rec := CheckoutRecord{Fleet: "f", Instance: "web", Slug: "work", Mode: "worktree", Path: "/p", Branch: "jackin/f/web", Base: "abc", Status: "active"}
	if err := s.SetCheckout(ctx, rec); err != nil {
		t.Fatal(err)
	}
	rec.Status, rec.Detail = "preserved-dirty", "2 uncommitted files"
	if err := s.SetCheckout(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCheckout(ctx, CheckoutRecord{Fleet: "g", Instance: "web", Slug: "work", Status: "active"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Checkouts(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := got["f/web/work"]; len(got) != 1 || !ok || c.Status != "preserved-dirty" || c.Detail != "2 uncommitted files" || c.Base != "abc" {
		t.Fatalf("checkouts of f: %+v", got)
	}
	if err := s.DeleteCheckout(ctx, "f", "web", "work"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Checkouts(ctx, "f"); len(got) != 0 {
		t.Fatalf("after delete: %+v", got)
	}
	if all, _ := s.Checkouts(ctx, ""); len(all) != 1 {
		t.Fatalf("every fleet: %+v", all)
	}
}

func TestRecordEventOnceKeepsOneCopy(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	e := Event{Fleet: "demo", Instance: "web", Kind: "oom-killed", Message: "container abc killed at T"}
	for i, want := range []bool{true, false, false} {
		got, err := s.RecordEventOnce(ctx, e)
		if err != nil || got != want {
			t.Fatalf("call %d: stored=%v err=%v, want stored=%v", i, got, err, want)
		}
	}
	other := e
	other.Message = "container abc killed at T2"
	if got, err := s.RecordEventOnce(ctx, other); err != nil || !got {
		t.Fatalf("a different kill: stored=%v err=%v", got, err)
	}
	evs, err := s.Events(ctx, "demo", 0)
	if err != nil || len(evs) != 2 {
		t.Fatalf("events: %v %+v", err, evs)
	}
}

func TestFleetOwners(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	if o, err := s.FleetOwner(ctx, "demo"); err != nil || o != nil {
		t.Fatalf("no owner yet: %+v, %v", o, err)
	}
	if err := s.ClaimFleet(ctx, FleetOwner{Fleet: "demo", ID: "f1", Manifest: "/a/fleet.cue"}); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimFleet(ctx, FleetOwner{Fleet: "demo", ID: "f1", Manifest: "/b/fleet.cue"}); err != nil {
		t.Fatal(err)
	}
	o, err := s.FleetOwner(ctx, "demo")
	if err != nil || o == nil || o.ID != "f1" || o.Manifest != "/b/fleet.cue" || o.ClaimedAt.IsZero() {
		t.Fatalf("after adoption: %+v, %v", o, err)
	}
	if err := s.ReleaseFleet(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if o, _ := s.FleetOwner(ctx, "demo"); o != nil {
		t.Fatalf("released, still %+v", o)
	}
}
