// Package store keeps jackin's history and state in SQLite: runs, actions,
// last-applied specs and events; and the per-fleet writer lock.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/jackin-dev/jackin/schema"
)

// DBFile is the database's file name inside the state dir.
const DBFile = "jackin.db"

// DefaultDir is $JACKIN_HOME, else ~/.local/state/jackin.
func DefaultDir() string { return schema.DefaultStateDir() }

// Store is an open history database. It is safe for concurrent use.
type Store struct {
	db   *sql.DB
	path string
}

// Open opens (creating if needed) the database in dir and migrates it.
func Open(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, DBFile)
	// Create the file ourselves so it is 0600 from the start.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	_ = f.Close()
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	s := &Store{db: db, path: path}
	if err := s.migrateLocked(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	return s, nil
}

// migrateLocked migrates under a file lock beside the database. Without
// it, processes opening a new database at once race to switch it to WAL,
// and SQLite answers one of them SQLITE_BUSY at once, busy timeout or not.
func (s *Store) migrateLocked(ctx context.Context) error {
	f, err := os.OpenFile(s.path+".migrate.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open migration lock: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	defer func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }()
	// The pool's first connection (and its WAL switch) is made here, under
	// the lock.
	if err := s.db.PingContext(ctx); err != nil {
		return err
	}
	return s.migrate(ctx)
}

// maxConns bounds the connection pool. Writers serialise on SQLite's write
// lock anyway; a few connections let reads proceed beside a write (WAL).
const maxConns = 4

// dsn is the driver's data source name for the database at path: WAL, a
// busy timeout so concurrent writers (goroutines or processes) wait instead
// of failing with SQLITE_BUSY, foreign keys, and BEGIN IMMEDIATE for every
// transaction, so a writer takes the write lock up front (a deferred
// transaction upgrading to a write in WAL mode fails with SQLITE_BUSY
// without waiting). The driver applies the pragmas on every new connection.
func dsn(path string) string {
	return "file:" + uriPath(path) +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

// uriPath escapes the characters that end or escape the path part of an
// SQLite "file:" URI, so any state dir can hold the database.
var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Path is the database file's path.
func (s *Store) Path() string { return s.path }

// tx runs fn in an immediate (write-locking) transaction: every write goes
// through here. fn's error (or panic) rolls the transaction back.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	committed = true
	return nil
}

// Run is one apply or delete invocation.
type Run struct {
	ID         int64
	Fleet      string
	Verb       string
	PID        int
	StartedAt  time.Time
	FinishedAt time.Time // zero while running
	Outcome    string    // running|succeeded|failed|interrupted
	Summary    string
	Actions    []ActionRecord
}

// ActionRecord is one executed action.
type ActionRecord struct {
	ID       int64
	RunID    int64
	Instance string
	Action   string
	Reasons  []string
	Outcome  string // succeeded|failed|skipped
	Error    string
	Duration time.Duration
	At       time.Time
}

// Run outcomes.
const (
	OutcomeRunning     = "running"
	OutcomeSucceeded   = "succeeded"
	OutcomeFailed      = "failed"
	OutcomeInterrupted = "interrupted"
)

// processStart is (a bound on) when this process started: a "running" run
// with this process's pid that began earlier was left by an earlier process
// that happened to have the same pid (jackin is often pid 1 in a container).
var processStart = time.Now()

// BeginRun records the start of a run by this process (its pid is kept to
// tell a run in progress from one whose process died).
func (s *Store) BeginRun(ctx context.Context, fleet, verb string) (int64, error) {
	var id int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO runs(fleet, verb, pid, started_at, outcome, summary) VALUES(?,?,?,?,?,'')`,
			fleet, verb, os.Getpid(), nowNanos(), OutcomeRunning)
		if err != nil {
			return fmt.Errorf("insert run: %w", err)
		}
		id, err = res.LastInsertId()
		return err
	})
	return id, err
}

// RecordAction records one action of a run.
func (s *Store) RecordAction(ctx context.Context, runID int64, a ActionRecord) error {
	reasons, err := json.Marshal(nonNil(a.Reasons))
	if err != nil {
		return fmt.Errorf("encode reasons: %w", err)
	}
	at := a.At
	if at.IsZero() {
		at = time.Now()
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO actions(run_id, instance, action, reasons, outcome, error, duration_ns, at) VALUES(?,?,?,?,?,?,?,?)`,
			runID, a.Instance, a.Action, string(reasons), a.Outcome, a.Error, int64(a.Duration), at.UnixNano())
		if err != nil {
			return fmt.Errorf("insert action for %s: %w", a.Instance, err)
		}
		return nil
	})
}

// FinishRun records a run's outcome.
func (s *Store) FinishRun(ctx context.Context, runID int64, outcome, summary string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE runs SET finished_at=?, outcome=?, summary=? WHERE id=?`, nowNanos(), outcome, summary, runID)
		if err != nil {
			return fmt.Errorf("finish run %d: %w", runID, err)
		}
		return nil
	})
}

// Runs returns recent runs, newest first, with their actions in the order
// they were recorded. fleet "" means every fleet; limit <= 0 means 20. A run
// still marked running whose process is gone is reported as interrupted.
func (s *Store) Runs(ctx context.Context, fleet string, limit int) ([]Run, error) {
	if limit <= 0 {
		limit = 20
	}
	const cols = `SELECT id, fleet, verb, pid, started_at, finished_at, outcome, summary FROM runs`
	var rows *sql.Rows
	var err error
	if fleet == "" {
		rows, err = s.db.QueryContext(ctx, cols+` ORDER BY id DESC LIMIT ?`, limit)
	} else {
		rows, err = s.db.QueryContext(ctx, cols+` WHERE fleet = ? ORDER BY id DESC LIMIT ?`, fleet, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("query runs: %w", err)
	}
	var runs []Run
	index := map[int64]int{}
	for rows.Next() {
		var r Run
		var started int64
		var finished sql.NullInt64
		if err := rows.Scan(&r.ID, &r.Fleet, &r.Verb, &r.PID, &started, &finished, &r.Outcome, &r.Summary); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan run: %w", err)
		}
		r.StartedAt = fromNanos(started)
		if finished.Valid {
			r.FinishedAt = fromNanos(finished.Int64)
		}
		if r.Outcome == OutcomeRunning && !runAlive(r) {
			r.Outcome = OutcomeInterrupted
		}
		index[r.ID] = len(runs)
		runs = append(runs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	if len(runs) == 0 {
		return runs, nil
	}
	// The runs' actions: a range scan of runs by id, then actions by run.
	const acols = `SELECT a.id, a.run_id, a.instance, a.action, a.reasons, a.outcome, a.error, a.duration_ns, a.at
		FROM runs r JOIN actions a ON a.run_id = r.id WHERE r.id BETWEEN ? AND ?`
	lo, hi := runs[len(runs)-1].ID, runs[0].ID
	var arows *sql.Rows
	if fleet == "" {
		arows, err = s.db.QueryContext(ctx, acols+` ORDER BY a.id`, lo, hi)
	} else {
		arows, err = s.db.QueryContext(ctx, acols+` AND r.fleet = ? ORDER BY a.id`, lo, hi, fleet)
	}
	if err != nil {
		return nil, fmt.Errorf("query actions: %w", err)
	}
	defer arows.Close()
	for arows.Next() {
		var a ActionRecord
		var reasons string
		var dur, at int64
		if err := arows.Scan(&a.ID, &a.RunID, &a.Instance, &a.Action, &reasons, &a.Outcome, &a.Error, &dur, &at); err != nil {
			return nil, fmt.Errorf("scan action: %w", err)
		}
		if err := json.Unmarshal([]byte(reasons), &a.Reasons); err != nil {
			return nil, fmt.Errorf("decode reasons of action %d: %w", a.ID, err)
		}
		if len(a.Reasons) == 0 {
			a.Reasons = nil
		}
		a.Duration, a.At = time.Duration(dur), fromNanos(at)
		if i, ok := index[a.RunID]; ok { // not a run begun since the first query
			runs[i].Actions = append(runs[i].Actions, a)
		}
	}
	if err := arows.Err(); err != nil {
		return nil, fmt.Errorf("read actions: %w", err)
	}
	return runs, nil
}

// AppliedSpec is the spec last applied to an instance.
type AppliedSpec struct {
	Instance  string
	Hash      string
	Spec      json.RawMessage
	AppliedAt time.Time
}

// LastApplied returns the fleet's last-applied specs by instance.
func (s *Store) LastApplied(ctx context.Context, fleet string) (map[string]AppliedSpec, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT instance, hash, spec, applied_at FROM last_applied WHERE fleet = ?`, fleet)
	if err != nil {
		return nil, fmt.Errorf("query last-applied specs: %w", err)
	}
	defer rows.Close()
	out := map[string]AppliedSpec{}
	for rows.Next() {
		var a AppliedSpec
		var spec string
		var at int64
		if err := rows.Scan(&a.Instance, &a.Hash, &spec, &at); err != nil {
			return nil, fmt.Errorf("scan last-applied spec: %w", err)
		}
		a.Spec, a.AppliedAt = json.RawMessage(spec), fromNanos(at)
		out[a.Instance] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read last-applied specs: %w", err)
	}
	return out, nil
}

// SetLastApplied records the spec applied to an instance, replacing the
// previous one. spec is stored as given (the caller's canonical JSON).
func (s *Store) SetLastApplied(ctx context.Context, fleet, instance, hash string, spec []byte) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO last_applied(fleet, instance, hash, spec, applied_at) VALUES(?,?,?,?,?)
			ON CONFLICT(fleet, instance) DO UPDATE SET hash=excluded.hash, spec=excluded.spec, applied_at=excluded.applied_at`,
			fleet, instance, hash, string(spec), nowNanos())
		if err != nil {
			return fmt.Errorf("record last-applied spec of %s: %w", instance, err)
		}
		return nil
	})
}

// DeleteLastApplied forgets an instance's last-applied spec.
func (s *Store) DeleteLastApplied(ctx context.Context, fleet, instance string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM last_applied WHERE fleet=? AND instance=?`, fleet, instance); err != nil {
			return fmt.Errorf("forget last-applied spec of %s: %w", instance, err)
		}
		return nil
	})
}

// Event is something observed about a fleet (drift, a heal, a warning).
type Event struct {
	ID       int64
	Fleet    string
	Instance string
	Kind     string
	Message  string
	At       time.Time
	Data     json.RawMessage
}

// RecordEvent stores an event; a zero At means now, empty Data means null.
func (s *Store) RecordEvent(ctx context.Context, e Event) error {
	at := e.At
	if at.IsZero() {
		at = time.Now()
	}
	data := string(e.Data)
	if data == "" {
		data = "null"
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO events(fleet, instance, kind, message, at, data) VALUES(?,?,?,?,?,?)`,
			e.Fleet, e.Instance, e.Kind, e.Message, at.UnixNano(), data)
		if err != nil {
			return fmt.Errorf("record event: %w", err)
		}
		return nil
	})
}

// RecordEventOnce stores e unless an event of the same fleet, instance,
// kind and message is already stored (something observed again and again,
// such as an OOM kill, is kept once). It reports whether e was stored.
func (s *Store) RecordEventOnce(ctx context.Context, e Event) (bool, error) {
	at := e.At
	if at.IsZero() {
		at = time.Now()
	}
	data := string(e.Data)
	if data == "" {
		data = "null"
	}
	stored := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE fleet = ? AND instance = ? AND kind = ? AND message = ?`,
			e.Fleet, e.Instance, e.Kind, e.Message).Scan(&n); err != nil {
			return fmt.Errorf("look up event: %w", err)
		}
		if n > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO events(fleet, instance, kind, message, at, data) VALUES(?,?,?,?,?,?)`,
			e.Fleet, e.Instance, e.Kind, e.Message, at.UnixNano(), data); err != nil {
			return fmt.Errorf("record event: %w", err)
		}
		stored = true
		return nil
	})
	return stored, err
}

// Events returns recent events, newest (by At) first. fleet "" means every
// fleet; limit <= 0 means 100.
func (s *Store) Events(ctx context.Context, fleet string, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 100
	}
	const cols = `SELECT id, fleet, instance, kind, message, at, data FROM events`
	var rows *sql.Rows
	var err error
	if fleet == "" {
		rows, err = s.db.QueryContext(ctx, cols+` ORDER BY at DESC, id DESC LIMIT ?`, limit)
	} else {
		rows, err = s.db.QueryContext(ctx, cols+` WHERE fleet = ? ORDER BY at DESC, id DESC LIMIT ?`, fleet, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("query events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var at int64
		var data string
		if err := rows.Scan(&e.ID, &e.Fleet, &e.Instance, &e.Kind, &e.Message, &at, &data); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		e.At, e.Data = fromNanos(at), json.RawMessage(data)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// Times are stored as Unix nanoseconds (UTC by definition) and read back
// in UTC.
func nowNanos() int64 { return time.Now().UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// runAlive reports whether a run marked running may still be in progress:
// its process is alive and, if that is this process, began before the run.
func runAlive(r Run) bool {
	if r.PID == os.Getpid() {
		return !r.StartedAt.Before(processStart)
	}
	return processAlive(r.PID)
}

// processAlive reports whether pid names a live process (EPERM: alive, but
// another user's).
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// CrashState is an instance's crash loop as watch sees it: how many times
// in a row it exited soon after starting, and when watch starts it next.
type CrashState struct {
	Instance    string
	Restarts    int
	LastExit    string
	NextAttempt time.Time
	// Watching reports whether the watch that wrote it is still running.
	Watching  bool
	UpdatedAt time.Time
}

// SetCrashState records an instance's crash-loop state, replacing the last.
func (s *Store) SetCrashState(ctx context.Context, fleet string, c CrashState) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO crash_state(fleet, instance, restarts, last_exit, next_attempt, pid, updated_at) VALUES(?,?,?,?,?,?,?)
			ON CONFLICT(fleet, instance) DO UPDATE SET restarts=excluded.restarts, last_exit=excluded.last_exit,
			next_attempt=excluded.next_attempt, pid=excluded.pid, updated_at=excluded.updated_at`,
			fleet, c.Instance, c.Restarts, c.LastExit, c.NextAttempt.UnixNano(), os.Getpid(), nowNanos())
		if err != nil {
			return fmt.Errorf("record crash-loop state of %s: %w", c.Instance, err)
		}
		return nil
	})
}

// ClearCrashState forgets an instance's crash loop.
func (s *Store) ClearCrashState(ctx context.Context, fleet, instance string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM crash_state WHERE fleet=? AND instance=?`, fleet, instance); err != nil {
			return fmt.Errorf("clear crash-loop state of %s: %w", instance, err)
		}
		return nil
	})
}

// CrashStates returns the fleet's crash-loop states by instance.
func (s *Store) CrashStates(ctx context.Context, fleet string) (map[string]CrashState, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT instance, restarts, last_exit, next_attempt, pid, updated_at FROM crash_state WHERE fleet = ?`, fleet)
	if err != nil {
		return nil, fmt.Errorf("query crash-loop states: %w", err)
	}
	defer rows.Close()
	out := map[string]CrashState{}
	for rows.Next() {
		var c CrashState
		var next, updated int64
		var pid int
		if err := rows.Scan(&c.Instance, &c.Restarts, &c.LastExit, &next, &pid, &updated); err != nil {
			return nil, fmt.Errorf("scan crash-loop state: %w", err)
		}
		c.NextAttempt, c.UpdatedAt = fromNanos(next), fromNanos(updated)
		c.Watching = processAlive(pid)
		out[c.Instance] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read crash-loop states: %w", err)
	}
	return out, nil
}
