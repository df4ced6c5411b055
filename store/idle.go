package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Event kinds of idle cleanup (jackin history shows them).
const (
	// EventIdleStop: idle cleanup stopped an instance (or failed to).
	EventIdleStop = "idle-stop"
	// EventIdleExec: idle cleanup ran its command in an agent container.
	EventIdleExec = "idle-exec"
	// EventIdleWake: an idle-stopped instance was started again (a task,
	// an attach, a recreate) or its mark was cleared.
	EventIdleWake = "idle-wake"
)

// IdleStop is an instance stopped by idle cleanup: it is not drift, and
// stays stopped until a task is dispatched to it or the operator attaches.
type IdleStop struct {
	Instance string `json:"instance"`
	// At is when it was stopped; IdleSince when its agent became idle
	// (or done).
	At        time.Time `json:"at"`
	IdleSince time.Time `json:"idleSince"`
	// Why is the decision, in words ("agent idle for 2m3s (after 2m)").
	Why string `json:"why"`
}

// IdleAction is the last idle action taken on an instance.
type IdleAction struct {
	Instance string `json:"instance"`
	// Action is "stop" or "exec".
	Action string `json:"action"`
	// Period names the idle period the action was for (the supervisor's
	// boot and the time the agent became idle): one action per period.
	Period    string    `json:"period"`
	IdleSince time.Time `json:"idleSince"`
	At        time.Time `json:"at"`
	// ExitStatus is the exec command's exit status (nil for stop, or
	// when the command could not be run: then Error says why).
	ExitStatus *int `json:"exitStatus,omitempty"`
	// Output is a short tail of the command's output, with what looks
	// like a secret masked (the caller cleans it).
	Output string `json:"output,omitempty"`
	Error  string `json:"error,omitempty"`
}

// MarkIdleStopped marks an instance stopped by idle cleanup. It is
// written before the instance is stopped, so a pass that sees the stopped
// container also sees the mark.
func (s *Store) MarkIdleStopped(ctx context.Context, fleet string, m IdleStop) error {
	if m.At.IsZero() {
		m.At = time.Now()
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO idle_stopped(fleet, instance, stopped_at, idle_since, why) VALUES(?,?,?,?,?)
			ON CONFLICT(fleet, instance) DO UPDATE SET stopped_at=excluded.stopped_at, idle_since=excluded.idle_since, why=excluded.why`,
			fleet, m.Instance, m.At.UnixNano(), m.IdleSince.UnixNano(), m.Why)
		if err != nil {
			return fmt.Errorf("mark %s idle-stopped: %w", m.Instance, err)
		}
		return nil
	})
}

// ClearIdleStopped removes an instance's idle-stopped mark and, when there
// was one, records an EventIdleWake saying why. It reports whether there
// was a mark.
func (s *Store) ClearIdleStopped(ctx context.Context, fleet, instance, why string) (bool, error) {
	cleared := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM idle_stopped WHERE fleet=? AND instance=?`, fleet, instance)
		if err != nil {
			return fmt.Errorf("clear the idle-stopped mark of %s: %w", instance, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		cleared = true
		data, _ := json.Marshal(map[string]string{"why": why})
		if _, err := tx.ExecContext(ctx, `INSERT INTO events(fleet, instance, kind, message, at, data) VALUES(?,?,?,?,?,?)`,
			fleet, instance, EventIdleWake, "no longer idle-stopped: "+why, nowNanos(), string(data)); err != nil {
			return fmt.Errorf("record event: %w", err)
		}
		return nil
	})
	return cleared, err
}

// IdleStopped returns the fleet's instances stopped by idle cleanup, by
// name.
func (s *Store) IdleStopped(ctx context.Context, fleet string) (map[string]IdleStop, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT instance, stopped_at, idle_since, why FROM idle_stopped WHERE fleet = ?`, fleet)
	if err != nil {
		return nil, fmt.Errorf("query idle-stopped instances: %w", err)
	}
	defer rows.Close()
	out := map[string]IdleStop{}
	for rows.Next() {
		var m IdleStop
		var at, since int64
		if err := rows.Scan(&m.Instance, &at, &since, &m.Why); err != nil {
			return nil, fmt.Errorf("scan idle-stopped instance: %w", err)
		}
		m.At, m.IdleSince = fromNanos(at), fromNanos(since)
		out[m.Instance] = m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read idle-stopped instances: %w", err)
	}
	return out, nil
}

// RecordIdleAction keeps a as the instance's last idle action and records
// it as an event (EventIdleStop or EventIdleExec), in one transaction.
func (s *Store) RecordIdleAction(ctx context.Context, fleet string, a IdleAction) error {
	if a.At.IsZero() {
		a.At = time.Now()
	}
	var status sql.NullInt64
	if a.ExitStatus != nil {
		status = sql.NullInt64{Int64: int64(*a.ExitStatus), Valid: true}
	}
	kind, msg := EventIdleExec, ""
	switch {
	case a.Action == "stop" && a.Error == "":
		kind, msg = EventIdleStop, "stopped for idleness"
	case a.Action == "stop":
		kind, msg = EventIdleStop, "idle stop failed: "+a.Error
	case a.Error != "":
		msg = "idle exec could not run: " + a.Error
	default:
		msg = fmt.Sprintf("idle exec exited with status %d", *a.ExitStatus)
	}
	msg += fmt.Sprintf(" (idle since %s)", a.IdleSince.UTC().Format(time.RFC3339))
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode idle action: %w", err)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO idle_actions(fleet, instance, action, period, idle_since, at, exit_status, output, error) VALUES(?,?,?,?,?,?,?,?,?)
			ON CONFLICT(fleet, instance) DO UPDATE SET action=excluded.action, period=excluded.period, idle_since=excluded.idle_since,
			at=excluded.at, exit_status=excluded.exit_status, output=excluded.output, error=excluded.error`,
			fleet, a.Instance, a.Action, a.Period, a.IdleSince.UnixNano(), a.At.UnixNano(), status, a.Output, a.Error); err != nil {
			return fmt.Errorf("record the idle action of %s: %w", a.Instance, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO events(fleet, instance, kind, message, at, data) VALUES(?,?,?,?,?,?)`,
			fleet, a.Instance, kind, msg, a.At.UnixNano(), string(data)); err != nil {
			return fmt.Errorf("record event: %w", err)
		}
		return nil
	})
}

// IdleActions returns the last idle action of each instance of the fleet.
func (s *Store) IdleActions(ctx context.Context, fleet string) (map[string]IdleAction, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT instance, action, period, idle_since, at, exit_status, output, error FROM idle_actions WHERE fleet = ?`, fleet)
	if err != nil {
		return nil, fmt.Errorf("query idle actions: %w", err)
	}
	defer rows.Close()
	out := map[string]IdleAction{}
	for rows.Next() {
		var a IdleAction
		var since, at int64
		var status sql.NullInt64
		if err := rows.Scan(&a.Instance, &a.Action, &a.Period, &since, &at, &status, &a.Output, &a.Error); err != nil {
			return nil, fmt.Errorf("scan idle action: %w", err)
		}
		a.IdleSince, a.At = fromNanos(since), fromNanos(at)
		if status.Valid {
			n := int(status.Int64)
			a.ExitStatus = &n
		}
		out[a.Instance] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read idle actions: %w", err)
	}
	return out, nil
}
