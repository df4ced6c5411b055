package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackin-dev/jackin/usage"
)

// UsageRow is one instance's token use in one session with one model.
type UsageRow struct {
	Fleet    string
	Instance string
	Session  string
	Model    string
	usage.Tokens
	// UpdatedAt is when one of its figures last grew.
	UpdatedAt time.Time
}

// UsageQuery selects usage rows: of a fleet ("" every fleet), an
// instance ("" every one), updated at or after Since (zero: any time).
type UsageQuery struct {
	Fleet    string
	Instance string
	Since    time.Time
}

// RecordUsage records the cumulative totals an instance's supervisor
// published. Every column keeps the largest figure seen, so a total read
// again (a restart re-reads the runtime's files), or lower (a file
// rotated away), changes nothing, and nothing is counted twice. Only the
// rows that grow are written (none: no write at all). It returns how
// many grew.
func (s *Store) RecordUsage(ctx context.Context, fleet, instance string, entries []usage.Entry, at time.Time) (int, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	have, err := s.usageOf(ctx, fleet, instance)
	if err != nil {
		return 0, err
	}
	var grow []usage.Entry
	for _, e := range entries {
		t := e.Tokens.Clamp()
		cur, ok := have[usage.Key{Session: e.Session, Model: e.Model}]
		if !ok || cur.Max(t) != cur {
			grow = append(grow, usage.Entry{Session: e.Session, Model: e.Model, Tokens: t})
		}
	}
	if len(grow) == 0 {
		return 0, nil
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO usage(fleet, instance, session, model, input, output, cache_read, cache_write, updated_at)
			VALUES(?,?,?,?,?,?,?,?,?)
			ON CONFLICT(fleet, instance, session, model) DO UPDATE SET
				input = MAX(input, excluded.input),
				output = MAX(output, excluded.output),
				cache_read = MAX(cache_read, excluded.cache_read),
				cache_write = MAX(cache_write, excluded.cache_write),
				updated_at = excluded.updated_at
			WHERE excluded.input > input OR excluded.output > output OR excluded.cache_read > cache_read OR excluded.cache_write > cache_write`)
		if err != nil {
			return fmt.Errorf("record usage: %w", err)
		}
		defer stmt.Close()
		for _, e := range grow {
			if _, err := stmt.ExecContext(ctx, fleet, instance, e.Session, e.Model, e.Input, e.Output, e.CacheRead, e.CacheWrite, at.UnixNano()); err != nil {
				return fmt.Errorf("record usage: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(grow), nil
}

func (s *Store) usageOf(ctx context.Context, fleet, instance string) (map[usage.Key]usage.Tokens, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT session, model, input, output, cache_read, cache_write FROM usage WHERE fleet = ? AND instance = ?`, fleet, instance)
	if err != nil {
		return nil, fmt.Errorf("read usage: %w", err)
	}
	defer rows.Close()
	out := map[usage.Key]usage.Tokens{}
	for rows.Next() {
		var k usage.Key
		var t usage.Tokens
		if err := rows.Scan(&k.Session, &k.Model, &t.Input, &t.Output, &t.CacheRead, &t.CacheWrite); err != nil {
			return nil, fmt.Errorf("read usage: %w", err)
		}
		out[k] = t
	}
	return out, rows.Err()
}

// Usage returns the rows q selects, by fleet, instance, session and model.
func (s *Store) Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error) {
	var where []string
	var args []any
	if q.Fleet != "" {
		where = append(where, "fleet = ?")
		args = append(args, q.Fleet)
	}
	if q.Instance != "" {
		where = append(where, "instance = ?")
		args = append(args, q.Instance)
	}
	if !q.Since.IsZero() {
		since := int64(math.MaxInt64) // past what nanoseconds since 1970 hold: nothing is that recent
		if q.Since.Year() < 2262 {
			since = q.Since.UnixNano()
		}
		where = append(where, "updated_at >= ?")
		args = append(args, since)
	}
	query := `SELECT fleet, instance, session, model, input, output, cache_read, cache_write, updated_at FROM usage`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY fleet, instance, session, model"
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read usage: %w", err)
	}
	defer rows.Close()
	var out []UsageRow
	for rows.Next() {
		var r UsageRow
		var at int64
		if err := rows.Scan(&r.Fleet, &r.Instance, &r.Session, &r.Model, &r.Input, &r.Output, &r.CacheRead, &r.CacheWrite, &at); err != nil {
			return nil, fmt.Errorf("read usage: %w", err)
		}
		r.UpdatedAt = fromNanos(at)
		out = append(out, r)
	}
	return out, rows.Err()
}
