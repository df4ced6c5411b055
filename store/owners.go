package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// FleetOwner says which manifest owns a fleet name: the fleet's ID, which
// its objects carry as a label, and the manifest it was applied from.
type FleetOwner struct {
	Fleet     string
	ID        string
	Manifest  string
	ClaimedAt time.Time
}

// FleetOwner returns the recorded owner of fleet, or nil when none is.
func (s *Store) FleetOwner(ctx context.Context, fleet string) (*FleetOwner, error) {
	var o FleetOwner
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT fleet, id, manifest, claimed_at FROM fleet_owners WHERE fleet = ?`, fleet).Scan(&o.Fleet, &o.ID, &o.Manifest, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the owner of fleet %s: %w", fleet, err)
	}
	o.ClaimedAt = time.Unix(0, at)
	return &o, nil
}

// ClaimFleet records o as the owner of its fleet name, replacing any
// earlier owner (an adoption).
func (s *Store) ClaimFleet(ctx context.Context, o FleetOwner) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO fleet_owners(fleet, id, manifest, claimed_at) VALUES(?, ?, ?, ?)
			ON CONFLICT(fleet) DO UPDATE SET id = excluded.id, manifest = excluded.manifest, claimed_at = excluded.claimed_at`,
			o.Fleet, o.ID, o.Manifest, nowNanos())
		if err != nil {
			return fmt.Errorf("record the owner of fleet %s: %w", o.Fleet, err)
		}
		return nil
	})
}

// ReleaseFleet forgets the owner of fleet (its last instance was deleted).
func (s *Store) ReleaseFleet(ctx context.Context, fleet string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM fleet_owners WHERE fleet = ?`, fleet)
		return err
	})
}
