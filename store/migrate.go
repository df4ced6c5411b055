package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are applied in order; migration i brings the schema to version
// i+1. Never edit a released migration: append a new one.
var migrations = []string{
	// 1: runs, actions, last-applied specs, events.
	`CREATE TABLE runs (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		fleet       TEXT    NOT NULL,
		verb        TEXT    NOT NULL,
		pid         INTEGER NOT NULL,
		started_at  INTEGER NOT NULL,
		finished_at INTEGER,
		outcome     TEXT    NOT NULL,
		summary     TEXT    NOT NULL DEFAULT ''
	);
	CREATE INDEX runs_fleet ON runs(fleet, id);
	CREATE TABLE actions (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		instance    TEXT    NOT NULL,
		action      TEXT    NOT NULL,
		reasons     TEXT    NOT NULL DEFAULT '[]',
		outcome     TEXT    NOT NULL,
		error       TEXT    NOT NULL DEFAULT '',
		duration_ns INTEGER NOT NULL DEFAULT 0,
		at          INTEGER NOT NULL
	);
	CREATE INDEX actions_run ON actions(run_id);
	CREATE TABLE last_applied (
		fleet      TEXT NOT NULL,
		instance   TEXT NOT NULL,
		hash       TEXT NOT NULL,
		spec       TEXT NOT NULL,
		applied_at INTEGER NOT NULL,
		PRIMARY KEY (fleet, instance)
	);
	CREATE TABLE events (
		id       INTEGER PRIMARY KEY AUTOINCREMENT,
		fleet    TEXT NOT NULL,
		instance TEXT NOT NULL DEFAULT '',
		kind     TEXT NOT NULL,
		message  TEXT NOT NULL,
		at       INTEGER NOT NULL,
		data     TEXT NOT NULL DEFAULT 'null'
	);
	CREATE INDEX events_fleet ON events(fleet, at);`,

	// 2: newest events of every fleet without a scan and sort.
	`CREATE INDEX events_at ON events(at);`,

	// 3: crash-loop state kept by watch, shown by get.
	`CREATE TABLE crash_state (
		fleet        TEXT    NOT NULL,
		instance     TEXT    NOT NULL,
		restarts     INTEGER NOT NULL,
		last_exit    TEXT    NOT NULL DEFAULT '',
		next_attempt INTEGER NOT NULL,
		pid          INTEGER NOT NULL,
		updated_at   INTEGER NOT NULL,
		PRIMARY KEY (fleet, instance)
	);`,

	// 4: worktree and clone checkouts and their lifecycle status
	// (active, preserved-dirty, preserved-unpushed).
	`CREATE TABLE checkouts (
		fleet      TEXT    NOT NULL,
		instance   TEXT    NOT NULL,
		slug       TEXT    NOT NULL,
		mode       TEXT    NOT NULL,
		path       TEXT    NOT NULL,
		branch     TEXT    NOT NULL,
		base       TEXT    NOT NULL,
		status     TEXT    NOT NULL,
		detail     TEXT    NOT NULL DEFAULT '',
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (fleet, instance, slug)
	);`,

	// 5: the egress proxies' connection decisions, pulled from their
	// containers' logs, and how far each container's log was pulled.
	`CREATE TABLE egress_log (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		fleet       TEXT    NOT NULL,
		instance    TEXT    NOT NULL,
		at          INTEGER NOT NULL,
		host        TEXT    NOT NULL,
		port        INTEGER NOT NULL,
		method      TEXT    NOT NULL,
		allowed     INTEGER NOT NULL,
		rule        TEXT    NOT NULL,
		bytes_up    INTEGER NOT NULL,
		bytes_down  INTEGER NOT NULL,
		duration_ms INTEGER NOT NULL,
		error       TEXT    NOT NULL DEFAULT '',
		UNIQUE (fleet, instance, at, host, port, method)
	);
	CREATE INDEX egress_log_fleet ON egress_log(fleet, instance, id);
	CREATE TABLE egress_pull (
		fleet        TEXT    NOT NULL,
		container_id TEXT    NOT NULL,
		since        INTEGER NOT NULL,
		PRIMARY KEY (fleet, container_id)
	);`,

	// 6: who owns a fleet name on this state dir: the fleet's ID (also a
	// label on its objects) and the manifest it was first applied from.
	`CREATE TABLE fleet_owners (
		fleet      TEXT    PRIMARY KEY,
		id         TEXT    NOT NULL,
		manifest   TEXT    NOT NULL,
		claimed_at INTEGER NOT NULL
	);`,

	// 7: the agent state changes already recorded as events, by the
	// supervisor run (boot) and its change counter, so a re-read of the
	// published events file records nothing twice.
	`CREATE TABLE agent_states_seen (
		fleet    TEXT    NOT NULL,
		instance TEXT    NOT NULL,
		boot     TEXT    NOT NULL,
		seq      INTEGER NOT NULL,
		PRIMARY KEY (fleet, instance, boot, seq)
	);`,

	// 8: token usage per instance, session and model, as the agents'
	// supervisors published it: each column only ever grows (the largest
	// figure seen), and the rows outlive the instance.
	`CREATE TABLE usage (
		fleet       TEXT    NOT NULL,
		instance    TEXT    NOT NULL,
		session     TEXT    NOT NULL,
		model       TEXT    NOT NULL,
		input       INTEGER NOT NULL,
		output      INTEGER NOT NULL,
		cache_read  INTEGER NOT NULL,
		cache_write INTEGER NOT NULL,
		updated_at  INTEGER NOT NULL,
		PRIMARY KEY (fleet, instance, session, model)
	);
	CREATE INDEX usage_updated ON usage(fleet, updated_at);`,

	// 9: work links (the tag protocol) per instance with when they were
	// first and last seen; the GitHub state of issue and pull request
	// links with their refresh schedule; the GitHub responses kept for
	// conditional requests (ETag) and the rate limit last reported, per
	// fleet (each fleet has its own token).
	`CREATE TABLE work_links (
		fleet      TEXT    NOT NULL,
		instance   TEXT    NOT NULL,
		kind       TEXT    NOT NULL,
		url        TEXT    NOT NULL,
		first_seen INTEGER NOT NULL,
		last_seen  INTEGER NOT NULL,
		PRIMARY KEY (fleet, instance, kind, url)
	);
	CREATE TABLE link_states (
		fleet      TEXT    NOT NULL,
		url        TEXT    NOT NULL,
		kind       TEXT    NOT NULL,
		state      TEXT    NOT NULL DEFAULT '',
		checks     TEXT    NOT NULL DEFAULT '',
		review     TEXT    NOT NULL DEFAULT '',
		error      TEXT    NOT NULL DEFAULT '',
		failures   INTEGER NOT NULL DEFAULT 0,
		checked_at INTEGER NOT NULL,
		next_at    INTEGER NOT NULL,
		PRIMARY KEY (fleet, url)
	);
	CREATE TABLE github_cache (
		fleet TEXT    NOT NULL,
		key   TEXT    NOT NULL,
		etag  TEXT    NOT NULL,
		body  BLOB    NOT NULL,
		at    INTEGER NOT NULL,
		PRIMARY KEY (fleet, key)
	);
	CREATE TABLE github_rate (
		fleet     TEXT    PRIMARY KEY,
		remaining INTEGER NOT NULL,
		reset_at  INTEGER NOT NULL,
		blocked   INTEGER NOT NULL,
		at        INTEGER NOT NULL
	);`,

	// 10: the task queue: tasks with their state (the queue's, never reset
	// by a source's rescan), every transition with who, when and why, and
	// the queue's settings per fleet (paused). Tasks outlive the instances
	// they ran on.
	`CREATE TABLE tasks (
		fleet         TEXT    NOT NULL,
		id            TEXT    NOT NULL,
		source        TEXT    NOT NULL,
		title         TEXT    NOT NULL,
		prompt        TEXT    NOT NULL,
		priority      INTEGER NOT NULL,
		labels        TEXT    NOT NULL DEFAULT '[]',
		state         TEXT    NOT NULL,
		instance      TEXT    NOT NULL DEFAULT '',
		container     TEXT    NOT NULL DEFAULT '',
		boot          TEXT    NOT NULL DEFAULT '',
		attempts      INTEGER NOT NULL DEFAULT 0,
		links         TEXT    NOT NULL DEFAULT '[]',
		created_at    INTEGER NOT NULL,
		updated_at    INTEGER NOT NULL,
		dispatched_at INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (fleet, id)
	);
	CREATE TABLE task_transitions (
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		fleet      TEXT    NOT NULL,
		task       TEXT    NOT NULL,
		from_state TEXT    NOT NULL,
		to_state   TEXT    NOT NULL,
		instance   TEXT    NOT NULL DEFAULT '',
		who        TEXT    NOT NULL,
		why        TEXT    NOT NULL,
		at         INTEGER NOT NULL
	);
	CREATE INDEX task_transitions_task ON task_transitions(fleet, task, id);
	CREATE TABLE queue_settings (
		fleet      TEXT    PRIMARY KEY,
		paused     INTEGER NOT NULL,
		who        TEXT    NOT NULL,
		updated_at INTEGER NOT NULL
	);`,

	// 11: idle cleanup: the instances jackin watch stopped for idleness
	// (not drift: nothing restarts them until a task or an attach), and
	// the last idle action per instance with the idle period it was for,
	// so an action runs once per period, across watch restarts.
	`CREATE TABLE idle_stopped (
		fleet      TEXT    NOT NULL,
		instance   TEXT    NOT NULL,
		stopped_at INTEGER NOT NULL,
		idle_since INTEGER NOT NULL,
		why        TEXT    NOT NULL,
		PRIMARY KEY (fleet, instance)
	);
	CREATE TABLE idle_actions (
		fleet       TEXT    NOT NULL,
		instance    TEXT    NOT NULL,
		action      TEXT    NOT NULL,
		period      TEXT    NOT NULL,
		idle_since  INTEGER NOT NULL,
		at          INTEGER NOT NULL,
		exit_status INTEGER,
		output      TEXT    NOT NULL DEFAULT '',
		error       TEXT    NOT NULL DEFAULT '',
		PRIMARY KEY (fleet, instance)
	);`,
}

// SchemaVersion is the schema version this build writes.
func SchemaVersion() int { return len(migrations) }

// migrate brings the database to SchemaVersion, one transaction per step.
// A database from a newer jackin is refused rather than misread.
func (s *Store) migrate(ctx context.Context) error {
	if err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`)
		return err
	}); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for {
		done, err := s.migrateStep(ctx)
		if err != nil || done {
			return err
		}
	}
}

// migrateStep applies the next migration, if any; done reports there was none.
func (s *Store) migrateStep(ctx context.Context) (done bool, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var current int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if current > len(migrations) {
			return fmt.Errorf("the state dir was written by a newer jackin (schema version %d; this build knows up to %d): upgrade jackin or use another --state-dir", current, len(migrations))
		}
		if current == len(migrations) {
			done = true
			return nil
		}
		if _, err := tx.ExecContext(ctx, migrations[current]); err != nil {
			return fmt.Errorf("apply migration %d: %w", current+1, err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES(?, ?)`, current+1, nowNanos())
		return err
	})
	return done, err
}
