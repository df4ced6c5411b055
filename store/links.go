package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackin-dev/jackin/worklinks"
)

// RecordLinks records the links an instance's supervisor published (read
// by supervisor.ReadLinks, already checked): a new link is added, a known
// one keeps its earliest first sighting and its latest last one. Links the
// agent no longer publishes stay (an agent restarted with a fresh
// transcript still worked on them); they are dropped with the instance
// (DropLinks). It returns how many rows changed.
func (s *Store) RecordLinks(ctx context.Context, fleet, instance string, links []worklinks.Link) (int, error) {
	if len(links) == 0 {
		return 0, nil
	}
	n := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO work_links(fleet, instance, kind, url, first_seen, last_seen) VALUES(?,?,?,?,?,?)
			ON CONFLICT(fleet, instance, kind, url) DO UPDATE SET
				first_seen = MIN(first_seen, excluded.first_seen),
				last_seen = MAX(last_seen, excluded.last_seen)
			WHERE excluded.first_seen < first_seen OR excluded.last_seen > last_seen`)
		if err != nil {
			return fmt.Errorf("record links: %w", err)
		}
		defer stmt.Close()
		for _, l := range links {
			res, err := stmt.ExecContext(ctx, fleet, instance, string(l.Kind), l.URL, l.FirstSeen.UnixNano(), l.LastSeen.UnixNano())
			if err != nil {
				return fmt.Errorf("record links: %w", err)
			}
			if c, _ := res.RowsAffected(); c > 0 {
				n++
			}
		}
		// Bound the instance's rows as the supervisor bounds its set.
		_, err = tx.ExecContext(ctx, `DELETE FROM work_links WHERE fleet = ? AND instance = ? AND rowid NOT IN
			(SELECT rowid FROM work_links WHERE fleet = ? AND instance = ? ORDER BY last_seen DESC LIMIT ?)`,
			fleet, instance, fleet, instance, worklinks.MaxLinks)
		if err != nil {
			return fmt.Errorf("record links: %w", err)
		}
		return nil
	})
	return n, err
}

// Links returns the fleet's links by instance, each sorted (worklinks.Sort).
func (s *Store) Links(ctx context.Context, fleet string) (map[string][]worklinks.Link, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT instance, kind, url, first_seen, last_seen FROM work_links WHERE fleet = ?`, fleet)
	if err != nil {
		return nil, fmt.Errorf("read links: %w", err)
	}
	defer rows.Close()
	out := map[string][]worklinks.Link{}
	for rows.Next() {
		var inst, kind string
		var l worklinks.Link
		var first, last int64
		if err := rows.Scan(&inst, &kind, &l.URL, &first, &last); err != nil {
			return nil, fmt.Errorf("read links: %w", err)
		}
		l.Kind, l.FirstSeen, l.LastSeen = worklinks.Kind(kind), fromNanos(first), fromNanos(last)
		out[inst] = append(out[inst], l)
	}
	for _, ls := range out {
		worklinks.Sort(ls)
	}
	return out, rows.Err()
}

// DropLinks forgets an instance's links (the instance is deleted).
func (s *Store) DropLinks(ctx context.Context, fleet, instance string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM work_links WHERE fleet = ? AND instance = ?`, fleet, instance); err != nil {
			return fmt.Errorf("drop links: %w", err)
		}
		return nil
	})
}

// LinkStates returns the fleet's cached link states by URL.
func (s *Store) LinkStates(ctx context.Context, fleet string) (map[string]worklinks.State, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT url, kind, state, checks, review, error, failures, checked_at, next_at FROM link_states WHERE fleet = ?`, fleet)
	if err != nil {
		return nil, fmt.Errorf("read link states: %w", err)
	}
	defer rows.Close()
	out := map[string]worklinks.State{}
	for rows.Next() {
		var url, kind string
		var st worklinks.State
		var checked, next int64
		if err := rows.Scan(&url, &kind, &st.State, &st.Checks, &st.Review, &st.Error, &st.Failures, &checked, &next); err != nil {
			return nil, fmt.Errorf("read link states: %w", err)
		}
		st.Kind, st.CheckedAt, st.NextAt = worklinks.Kind(kind), fromNanos(checked), fromNanos(next)
		out[url] = st
	}
	return out, rows.Err()
}

// PutLinkState records a link's state as last refreshed.
func (s *Store) PutLinkState(ctx context.Context, fleet, url string, st worklinks.State) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO link_states(fleet, url, kind, state, checks, review, error, failures, checked_at, next_at) VALUES(?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT(fleet, url) DO UPDATE SET kind = excluded.kind, state = excluded.state, checks = excluded.checks, review = excluded.review,
				error = excluded.error, failures = excluded.failures, checked_at = excluded.checked_at, next_at = excluded.next_at`,
			fleet, url, string(st.Kind), st.State, st.Checks, st.Review, st.Error, st.Failures, st.CheckedAt.UnixNano(), st.NextAt.UnixNano())
		if err != nil {
			return fmt.Errorf("record link state: %w", err)
		}
		return nil
	})
}

// maxCachedBody bounds a GitHub response kept for conditional requests.
const maxCachedBody = 4 << 20

// GitHubCached returns the response kept for key (an API path and query)
// with its ETag; ok is false when none is kept.
func (s *Store) GitHubCached(ctx context.Context, fleet, key string) (etag string, body []byte, ok bool, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT etag, body FROM github_cache WHERE fleet = ? AND key = ?`, fleet, key).Scan(&etag, &body)
	if err == sql.ErrNoRows {
		return "", nil, false, nil
	}
	if err != nil {
		return "", nil, false, fmt.Errorf("read the GitHub cache: %w", err)
	}
	return etag, body, true, nil
}

// PutGitHubCached keeps a response and its ETag for key (a body larger
// than 4 MiB is not kept).
func (s *Store) PutGitHubCached(ctx context.Context, fleet, key, etag string, body []byte) error {
	if len(body) > maxCachedBody || etag == "" {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO github_cache(fleet, key, etag, body, at) VALUES(?,?,?,?,?)
			ON CONFLICT(fleet, key) DO UPDATE SET etag = excluded.etag, body = excluded.body, at = excluded.at`,
			fleet, key, etag, body, nowNanos())
		if err != nil {
			return fmt.Errorf("write the GitHub cache: %w", err)
		}
		return nil
	})
}

// GitHubRate is the rate limit GitHub last reported for a fleet's token.
type GitHubRate struct {
	Remaining int
	Reset     time.Time
	// BlockedUntil is when requests may go again after GitHub refused one
	// for its rate limit (the reset, or a secondary limit's Retry-After);
	// zero when none was refused.
	BlockedUntil time.Time
	At           time.Time
}

// GitHubRateOf returns the fleet's last reported rate limit (ok false: none).
func (s *Store) GitHubRateOf(ctx context.Context, fleet string) (GitHubRate, bool, error) {
	var r GitHubRate
	var reset, blocked, at int64
	err := s.db.QueryRowContext(ctx, `SELECT remaining, reset_at, blocked, at FROM github_rate WHERE fleet = ?`, fleet).Scan(&r.Remaining, &reset, &blocked, &at)
	if err == sql.ErrNoRows {
		return GitHubRate{}, false, nil
	}
	if err != nil {
		return GitHubRate{}, false, fmt.Errorf("read the GitHub rate limit: %w", err)
	}
	r.Reset, r.At = fromNanos(reset), fromNanos(at)
	if blocked != 0 {
		r.BlockedUntil = fromNanos(blocked)
	}
	return r, true, nil
}

// PutGitHubRate records the fleet's rate limit.
func (s *Store) PutGitHubRate(ctx context.Context, fleet string, r GitHubRate) error {
	var blocked int64
	if !r.BlockedUntil.IsZero() {
		blocked = r.BlockedUntil.UnixNano()
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO github_rate(fleet, remaining, reset_at, blocked, at) VALUES(?,?,?,?,?)
			ON CONFLICT(fleet) DO UPDATE SET remaining = excluded.remaining, reset_at = excluded.reset_at, blocked = excluded.blocked, at = excluded.at`,
			fleet, r.Remaining, r.Reset.UnixNano(), blocked, r.At.UnixNano())
		if err != nil {
			return fmt.Errorf("record the GitHub rate limit: %w", err)
		}
		return nil
	})
}

// LastEventOfKind returns the fleet's newest event of kind (ok false: none).
func (s *Store) LastEventOfKind(ctx context.Context, fleet, kind string) (Event, bool, error) {
	var e Event
	var at int64
	var data string
	err := s.db.QueryRowContext(ctx, `SELECT id, fleet, instance, kind, message, at, data FROM events WHERE fleet = ? AND kind = ? ORDER BY id DESC LIMIT 1`, fleet, kind).
		Scan(&e.ID, &e.Fleet, &e.Instance, &e.Kind, &e.Message, &at, &data)
	if err == sql.ErrNoRows {
		return Event{}, false, nil
	}
	if err != nil {
		return Event{}, false, fmt.Errorf("read events: %w", err)
	}
	e.At, e.Data = fromNanos(at), json.RawMessage(data)
	return e, true, nil
}

// TouchGitHubCached marks a kept response as still current (GitHub
// answered 304 for it), so PruneGitHub keeps it.
func (s *Store) TouchGitHubCached(ctx context.Context, fleet, key string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE github_cache SET at = ? WHERE fleet = ? AND key = ?`, nowNanos(), fleet, key); err != nil {
			return fmt.Errorf("write the GitHub cache: %w", err)
		}
		return nil
	})
}

// PruneGitHub forgets the fleet's kept responses and link states not
// used since before (links no agent names any more): the store does not
// grow with every link ever seen.
func (s *Store) PruneGitHub(ctx context.Context, fleet string, before time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM github_cache WHERE fleet = ? AND at < ?`, fleet, before.UnixNano()); err != nil {
			return fmt.Errorf("prune the GitHub cache: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM link_states WHERE fleet = ? AND checked_at < ?`, fleet, before.UnixNano()); err != nil {
			return fmt.Errorf("prune link states: %w", err)
		}
		return nil
	})
}
