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
	"syscall"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DBFile is the database's file name inside the state dir.
const DBFile = "jackin.db"

// DefaultDir is $JACKIN_HOME, else ~/.local/state/jackin.
func DefaultDir() string {
	if d := os.Getenv("JACKIN_HOME"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".jackin")
	}
	return filepath.Join(home, ".local", "state", "jackin")
}

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
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	s := &Store{db: db, path: path}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Path is the database file's path.
func (s *Store) Path() string { return s.path }

// tx runs fn in an immediate (write-locking) transaction.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
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
	OutcomeInterrupted = "interrupted"
)

// BeginRun records the start of a run by this process.
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

// Runs returns recent runs, newest first, with their actions. fleet "" means
// every fleet. A run still marked running whose process is gone is reported
// as interrupted.
func (s *Store) Runs(ctx context.Context, fleet string, limit int) ([]Run, error) {
	if limit <= 0 {
		limit = 20
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, fleet, verb, pid, started_at, finished_at, outcome, summary FROM runs
		WHERE (?1 = '' OR fleet = ?1) ORDER BY id DESC LIMIT ?2`, fleet, limit)
	if err != nil {
		return nil, fmt.Errorf("query runs: %w", err)
	}
	defer rows.Close()
	var runs []Run
	index := map[int64]int{}
	for rows.Next() {
		var r Run
		var started int64
		var finished sql.NullInt64
		if err := rows.Scan(&r.ID, &r.Fleet, &r.Verb, &r.PID, &started, &finished, &r.Outcome, &r.Summary); err != nil {
			return nil, fmt.Errorf("scan run: %w", err)
		}
		r.StartedAt = time.Unix(0, started)
		if finished.Valid {
			r.FinishedAt = time.Unix(0, finished.Int64)
		}
		if r.Outcome == OutcomeRunning && !processAlive(r.PID) {
			r.Outcome = OutcomeInterrupted
		}
		index[r.ID] = len(runs)
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	if len(runs) == 0 {
		return runs, nil
	}
	arows, err := s.db.QueryContext(ctx, `SELECT id, run_id, instance, action, reasons, outcome, error, duration_ns, at FROM actions
		WHERE run_id BETWEEN ? AND ? ORDER BY id`, runs[len(runs)-1].ID, runs[0].ID)
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
		i, ok := index[a.RunID]
		if !ok {
			continue // a run of another fleet in the id range
		}
		_ = json.Unmarshal([]byte(reasons), &a.Reasons)
		a.Duration, a.At = time.Duration(dur), time.Unix(0, at)
		runs[i].Actions = append(runs[i].Actions, a)
	}
	return runs, arows.Err()
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
		a.Spec, a.AppliedAt = json.RawMessage(spec), time.Unix(0, at)
		out[a.Instance] = a
	}
	return out, rows.Err()
}

// SetLastApplied records the spec applied to an instance.
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

// RecordEvent stores an event.
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

// Events returns a fleet's recent events, newest first.
func (s *Store) Events(ctx context.Context, fleet string, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, fleet, instance, kind, message, at, data FROM events
		WHERE (?1 = '' OR fleet = ?1) ORDER BY id DESC LIMIT ?2`, fleet, limit)
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
		e.At, e.Data = time.Unix(0, at), json.RawMessage(data)
		out = append(out, e)
	}
	return out, rows.Err()
}

func nowNanos() int64 { return time.Now().UnixNano() }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// processAlive reports whether pid names a live process.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
