package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// CheckoutRecord is the lifecycle status of one worktree or clone checkout
// of an instance: active while the instance exists, preserved-dirty or
// preserved-unpushed once the instance is deleted and its work kept.
type CheckoutRecord struct {
	Fleet    string
	Instance string
	Slug     string
	Mode     string
	Path     string
	Branch   string
	Base     string
	Status   string
	// Detail says why it was preserved ("3 uncommitted files", ...).
	Detail    string
	UpdatedAt time.Time
}

// SetCheckout records a checkout's status, replacing the last.
func (s *Store) SetCheckout(ctx context.Context, c CheckoutRecord) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO checkouts(fleet, instance, slug, mode, path, branch, base, status, detail, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT(fleet, instance, slug) DO UPDATE SET mode=excluded.mode, path=excluded.path, branch=excluded.branch,
			base=excluded.base, status=excluded.status, detail=excluded.detail, updated_at=excluded.updated_at`,
			c.Fleet, c.Instance, c.Slug, c.Mode, c.Path, c.Branch, c.Base, c.Status, c.Detail, nowNanos())
		if err != nil {
			return fmt.Errorf("record checkout %s of %s: %w", c.Slug, c.Instance, err)
		}
		return nil
	})
}

// DeleteCheckout forgets a removed checkout.
func (s *Store) DeleteCheckout(ctx context.Context, fleet, instance, slug string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM checkouts WHERE fleet=? AND instance=? AND slug=?`, fleet, instance, slug); err != nil {
			return fmt.Errorf("forget checkout %s of %s: %w", slug, instance, err)
		}
		return nil
	})
}

// Checkouts returns the fleet's checkout records (every fleet's when fleet
// is ""), keyed by fleet + "/" + instance + "/" + slug.
func (s *Store) Checkouts(ctx context.Context, fleet string) (map[string]CheckoutRecord, error) {
	q := `SELECT fleet, instance, slug, mode, path, branch, base, status, detail, updated_at FROM checkouts`
	var rows *sql.Rows
	var err error
	if fleet == "" {
		rows, err = s.db.QueryContext(ctx, q)
	} else {
		rows, err = s.db.QueryContext(ctx, q+` WHERE fleet = ?`, fleet)
	}
	if err != nil {
		return nil, fmt.Errorf("query checkouts: %w", err)
	}
	defer rows.Close()
	out := map[string]CheckoutRecord{}
	for rows.Next() {
		var c CheckoutRecord
		var at int64
		if err := rows.Scan(&c.Fleet, &c.Instance, &c.Slug, &c.Mode, &c.Path, &c.Branch, &c.Base, &c.Status, &c.Detail, &at); err != nil {
			return nil, fmt.Errorf("scan checkout: %w", err)
		}
		c.UpdatedAt = fromNanos(at)
		out[c.Fleet+"/"+c.Instance+"/"+c.Slug] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read checkouts: %w", err)
	}
	return out, nil
}
