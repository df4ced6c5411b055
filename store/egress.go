package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// EgressDecision is one connection decision of an instance's egress proxy.
type EgressDecision struct {
	ID         int64     `json:"id"`
	Fleet      string    `json:"fleet"`
	Instance   string    `json:"instance"`
	Time       time.Time `json:"time"`
	Host       string    `json:"host"`
	Port       int       `json:"port"`
	Method     string    `json:"method"`
	Allowed    bool      `json:"allowed"`
	Rule       string    `json:"rule"`
	BytesUp    int64     `json:"bytesUp"`
	BytesDown  int64     `json:"bytesDown"`
	DurationMs int64     `json:"durationMs"`
	Error      string    `json:"error,omitempty"`
}

// AddEgressDecisions stores decisions pulled from the proxy container
// containerID and records that its log was read up to since, in one
// transaction. A decision already stored (the same instance, time, host,
// port and method) is skipped, so pulling twice is harmless.
func (s *Store) AddEgressDecisions(ctx context.Context, fleet, containerID string, since time.Time, ds []EgressDecision) (int, error) {
	added := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		added = 0
		for _, d := range ds {
			allowed := 0
			if d.Allowed {
				allowed = 1
			}
			res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO egress_log(fleet, instance, at, host, port, method, allowed, rule, bytes_up, bytes_down, duration_ms, error)
				VALUES(?,?,?,?,?,?,?,?,?,?,?,?)`, fleet, d.Instance, d.Time.UnixNano(), d.Host, d.Port, d.Method, allowed, d.Rule, d.BytesUp, d.BytesDown, d.DurationMs, d.Error)
			if err != nil {
				return fmt.Errorf("store egress decision: %w", err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				added++
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO egress_pull(fleet, container_id, since) VALUES(?,?,?)
			ON CONFLICT(fleet, container_id) DO UPDATE SET since = excluded.since`, fleet, containerID, since.UnixNano())
		return err
	})
	return added, err
}

// EgressPulledUntil is how far the log of a proxy container was pulled
// (zero when never).
func (s *Store) EgressPulledUntil(ctx context.Context, fleet, containerID string) (time.Time, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT since FROM egress_pull WHERE fleet = ? AND container_id = ?`, fleet, containerID).Scan(&n)
	if err == sql.ErrNoRows {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read egress pull state: %w", err)
	}
	return fromNanos(n), nil
}

// EgressQuery selects decisions.
type EgressQuery struct {
	Fleet    string
	Instance string // "" for every instance
	Denied   bool   // only denied decisions
	AfterID  int64  // only decisions stored after this one
	Limit    int    // newest Limit decisions; <= 0 means 1000
}

// EgressDecisions returns the selected decisions, oldest first.
func (s *Store) EgressDecisions(ctx context.Context, q EgressQuery) ([]EgressDecision, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	query := `SELECT id, fleet, instance, at, host, port, method, allowed, rule, bytes_up, bytes_down, duration_ms, error FROM egress_log WHERE fleet = ? AND id > ?`
	args := []any{q.Fleet, q.AfterID}
	if q.Instance != "" {
		query += ` AND instance = ?`
		args = append(args, q.Instance)
	}
	if q.Denied {
		query += ` AND allowed = 0`
	}
	query = `SELECT * FROM (` + query + ` ORDER BY at DESC, id DESC LIMIT ?) ORDER BY at, id`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query egress log: %w", err)
	}
	defer rows.Close()
	var out []EgressDecision
	for rows.Next() {
		var d EgressDecision
		var at int64
		var allowed int
		if err := rows.Scan(&d.ID, &d.Fleet, &d.Instance, &at, &d.Host, &d.Port, &d.Method, &allowed, &d.Rule, &d.BytesUp, &d.BytesDown, &d.DurationMs, &d.Error); err != nil {
			return nil, fmt.Errorf("scan egress decision: %w", err)
		}
		d.Time, d.Allowed = fromNanos(at), allowed != 0
		out = append(out, d)
	}
	return out, rows.Err()
}
