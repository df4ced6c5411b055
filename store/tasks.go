package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackin-dev/jackin/taskqueue"
)

// ErrNoTask: the fleet has no task of that ID.
var ErrNoTask = errors.New("no such task")

// ErrTaskMoved: a transition's task is no longer in the state the
// transition was decided from (someone else moved it first).
var ErrTaskMoved = errors.New("the task moved meanwhile")

// ErrTaskExists: AddTask's ID is taken.
var ErrTaskExists = errors.New("a task with that ID exists")

// EventQueue is the event kind of a queue setting's change (paused,
// resumed).
const EventQueue = "queue"

// TaskTransition is one recorded move of a task. From is empty for the
// task's creation.
type TaskTransition struct {
	Task     string          `json:"task"`
	From     taskqueue.State `json:"from"`
	To       taskqueue.State `json:"to"`
	Instance string          `json:"instance,omitempty"`
	Who      string          `json:"who"`
	Why      string          `json:"why"`
	At       time.Time       `json:"at"`
}

const taskColumns = `fleet, id, source, title, prompt, priority, labels, state, instance, container, boot, attempts, links, created_at, updated_at, dispatched_at`

// SyncTasks records what a source yielded: a task not known in the fleet
// is inserted queued (its creation recorded with who "source:NAME"); a
// known task still queued takes the source's title, prompt, priority and
// labels; a task in any other state is left alone, so a rescan never
// resets or repeats a task. It returns how many tasks were inserted.
func (s *Store) SyncTasks(ctx context.Context, fleet, source string, tasks []taskqueue.Task) (int, error) {
	added := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		added = 0
		now := time.Now()
		for _, t := range tasks {
			if t.ID == "" {
				return fmt.Errorf("sync tasks of source %s: a task without an ID", source)
			}
			cur, err := taskTx(ctx, tx, fleet, t.ID)
			switch {
			case errors.Is(err, ErrNoTask):
				t.Fleet, t.Source, t.State = fleet, source, taskqueue.StateQueued
				t.Instance, t.Container, t.Boot, t.Attempts, t.Links, t.DispatchedAt = "", "", "", 0, nil, time.Time{}
				if t.CreatedAt.IsZero() {
					t.CreatedAt = now
				}
				t.UpdatedAt = now
				if err := insertTask(ctx, tx, t, "source:"+source, "new task from source "+source); err != nil {
					return err
				}
				added++
				continue
			case err != nil:
				return err
			}
			if cur.State != taskqueue.StateQueued || cur.Source != source {
				continue
			}
			if cur.Title == t.Title && cur.Prompt == t.Prompt && cur.Priority == t.Priority && slices.Equal(cur.Labels, t.Labels) {
				continue
			}
			labels, _ := json.Marshal(nonNil(t.Labels))
			if _, err := tx.ExecContext(ctx, `UPDATE tasks SET title = ?, prompt = ?, priority = ?, labels = ?, updated_at = ? WHERE fleet = ? AND id = ?`,
				t.Title, t.Prompt, t.Priority, string(labels), now.UnixNano(), fleet, t.ID); err != nil {
				return fmt.Errorf("update task %s: %w", t.ID, err)
			}
		}
		return nil
	})
	return added, err
}

// AddTask inserts a task (queued, as the operator adds it), recording who
// added it; a taken ID is a wrapped ErrTaskExists.
func (s *Store) AddTask(ctx context.Context, fleet string, t taskqueue.Task, who string) error {
	if t.ID == "" {
		return errors.New("add task: the task has no ID")
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := taskTx(ctx, tx, fleet, t.ID); err == nil {
			return fmt.Errorf("add task %s: %w", t.ID, ErrTaskExists)
		} else if !errors.Is(err, ErrNoTask) {
			return err
		}
		now := time.Now()
		t.Fleet, t.State = fleet, taskqueue.StateQueued
		t.Instance, t.Container, t.Boot, t.Attempts, t.Links, t.DispatchedAt = "", "", "", 0, nil, time.Time{}
		if t.CreatedAt.IsZero() {
			t.CreatedAt = now
		}
		t.UpdatedAt = now
		return insertTask(ctx, tx, t, who, "added by "+who)
	})
}

func insertTask(ctx context.Context, tx *sql.Tx, t taskqueue.Task, who, why string) error {
	labels, _ := json.Marshal(nonNil(t.Labels))
	links, _ := json.Marshal(nonNil(t.Links))
	if _, err := tx.ExecContext(ctx, `INSERT INTO tasks(`+taskColumns+`) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		t.Fleet, t.ID, t.Source, t.Title, t.Prompt, t.Priority, string(labels), string(t.State), t.Instance, t.Container, t.Boot,
		t.Attempts, string(links), t.CreatedAt.UnixNano(), t.UpdatedAt.UnixNano(), timeNanos(t.DispatchedAt)); err != nil {
		return fmt.Errorf("insert task %s: %w", t.ID, err)
	}
	return recordTransition(ctx, tx, t.Fleet, TaskTransition{Task: t.ID, To: t.State, Who: who, Why: why, At: t.UpdatedAt})
}

func recordTransition(ctx context.Context, tx *sql.Tx, fleet string, tr TaskTransition) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO task_transitions(fleet, task, from_state, to_state, instance, who, why, at) VALUES(?,?,?,?,?,?,?,?)`,
		fleet, tr.Task, string(tr.From), string(tr.To), tr.Instance, tr.Who, tr.Why, tr.At.UnixNano()); err != nil {
		return fmt.Errorf("record the transition of task %s: %w", tr.Task, err)
	}
	return nil
}

// Tasks returns the fleet's tasks, oldest first (then by ID).
func (s *Store) Tasks(ctx context.Context, fleet string) ([]taskqueue.Task, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+taskColumns+` FROM tasks WHERE fleet = ? ORDER BY created_at, id`, fleet)
	if err != nil {
		return nil, fmt.Errorf("read tasks: %w", err)
	}
	defer rows.Close()
	var out []taskqueue.Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, fmt.Errorf("read tasks: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read tasks: %w", err)
	}
	return out, nil
}

// Task returns one task; a missing one is a wrapped ErrNoTask.
func (s *Store) Task(ctx context.Context, fleet, id string) (taskqueue.Task, error) {
	t, err := scanTask(s.db.QueryRowContext(ctx, `SELECT `+taskColumns+` FROM tasks WHERE fleet = ? AND id = ?`, fleet, id))
	if errors.Is(err, sql.ErrNoRows) {
		return taskqueue.Task{}, fmt.Errorf("task %s of fleet %s: %w", id, fleet, ErrNoTask)
	}
	if err != nil {
		return taskqueue.Task{}, fmt.Errorf("read task %s: %w", id, err)
	}
	return t, nil
}

func taskTx(ctx context.Context, tx *sql.Tx, fleet, id string) (taskqueue.Task, error) {
	t, err := scanTask(tx.QueryRowContext(ctx, `SELECT `+taskColumns+` FROM tasks WHERE fleet = ? AND id = ?`, fleet, id))
	if errors.Is(err, sql.ErrNoRows) {
		return taskqueue.Task{}, fmt.Errorf("task %s of fleet %s: %w", id, fleet, ErrNoTask)
	}
	if err != nil {
		return taskqueue.Task{}, fmt.Errorf("read task %s: %w", id, err)
	}
	return t, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanTask(r scanner) (taskqueue.Task, error) {
	var t taskqueue.Task
	var state, labels, links string
	var created, updated, dispatched int64
	if err := r.Scan(&t.Fleet, &t.ID, &t.Source, &t.Title, &t.Prompt, &t.Priority, &labels, &state, &t.Instance, &t.Container, &t.Boot,
		&t.Attempts, &links, &created, &updated, &dispatched); err != nil {
		return t, err
	}
	t.State = taskqueue.State(state)
	if err := json.Unmarshal([]byte(labels), &t.Labels); err != nil {
		return t, fmt.Errorf("task %s: labels: %w", t.ID, err)
	}
	if err := json.Unmarshal([]byte(links), &t.Links); err != nil {
		return t, fmt.Errorf("task %s: links: %w", t.ID, err)
	}
	if len(t.Labels) == 0 {
		t.Labels = nil
	}
	if len(t.Links) == 0 {
		t.Links = nil
	}
	t.CreatedAt, t.UpdatedAt = fromNanos(created), fromNanos(updated)
	if dispatched != 0 {
		t.DispatchedAt = fromNanos(dispatched)
	}
	return t, nil
}

func timeNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// TransitionTask moves a task from d.From to d.To in one transaction,
// compare-and-set: a task no longer in d.From is left alone and the answer
// is a wrapped ErrTaskMoved (a missing one a wrapped ErrNoTask). The
// transition is recorded with who, the time and d.Why. Before set runs,
// the move's own changes are made: a dispatch records d.Instance and the
// time as DispatchedAt (and clears Container and Boot, which set fills
// with those the prompt went to); d.Attempts is taken when it is larger
// (the dispatcher counted a lost attempt). set may then change Instance,
// Container, Boot, Attempts, Links and DispatchedAt; other fields it
// changes are not kept.
func (s *Store) TransitionTask(ctx context.Context, fleet string, d taskqueue.Decision, who string, set func(*taskqueue.Task)) error {
	if d.Task == "" || d.To == "" {
		return fmt.Errorf("transition task %q: no task or target state", d.Task)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		t, err := taskTx(ctx, tx, fleet, d.Task)
		if err != nil {
			return err
		}
		if t.State != d.From {
			return fmt.Errorf("move task %s from %s to %s: it is %s now: %w", d.Task, d.From, d.To, t.State, ErrTaskMoved)
		}
		now := time.Now()
		n := t
		if d.To == taskqueue.StateDispatched {
			n.Instance, n.Container, n.Boot, n.DispatchedAt = d.Instance, "", "", now
		}
		if d.Attempts > n.Attempts {
			n.Attempts = d.Attempts
		}
		if set != nil {
			set(&n)
		}
		links, _ := json.Marshal(nonNil(n.Links))
		if _, err := tx.ExecContext(ctx, `UPDATE tasks SET state = ?, instance = ?, container = ?, boot = ?, attempts = ?, links = ?, dispatched_at = ?, updated_at = ?
			WHERE fleet = ? AND id = ? AND state = ?`,
			string(d.To), n.Instance, n.Container, n.Boot, n.Attempts, string(links), timeNanos(n.DispatchedAt), now.UnixNano(),
			fleet, d.Task, string(d.From)); err != nil {
			return fmt.Errorf("move task %s: %w", d.Task, err)
		}
		why := d.Why
		if why == "" {
			why = fmt.Sprintf("%s to %s", d.From, d.To)
		}
		return recordTransition(ctx, tx, fleet, TaskTransition{Task: d.Task, From: d.From, To: d.To, Instance: n.Instance, Who: who, Why: why, At: now})
	})
}

// TaskTransitions returns a task's transitions in the order they were made
// (a missing task is a wrapped ErrNoTask).
func (s *Store) TaskTransitions(ctx context.Context, fleet, id string) ([]TaskTransition, error) {
	if _, err := s.Task(ctx, fleet, id); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT task, from_state, to_state, instance, who, why, at FROM task_transitions WHERE fleet = ? AND task = ? ORDER BY id`, fleet, id)
	if err != nil {
		return nil, fmt.Errorf("read the transitions of task %s: %w", id, err)
	}
	defer rows.Close()
	var out []TaskTransition
	for rows.Next() {
		var tr TaskTransition
		var from, to string
		var at int64
		if err := rows.Scan(&tr.Task, &from, &to, &tr.Instance, &tr.Who, &tr.Why, &at); err != nil {
			return nil, fmt.Errorf("read the transitions of task %s: %w", id, err)
		}
		tr.From, tr.To, tr.At = taskqueue.State(from), taskqueue.State(to), fromNanos(at)
		out = append(out, tr)
	}
	return out, rows.Err()
}

// QueuePaused reports whether the fleet's queue is paused (a fleet never
// paused is not).
func (s *Store) QueuePaused(ctx context.Context, fleet string) (bool, error) {
	var paused bool
	err := s.db.QueryRowContext(ctx, `SELECT paused FROM queue_settings WHERE fleet = ?`, fleet).Scan(&paused)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the queue settings of %s: %w", fleet, err)
	}
	return paused, nil
}

// SetQueuePaused pauses or resumes the fleet's queue, recording who did it
// (also as an event of kind EventQueue when it changed).
func (s *Store) SetQueuePaused(ctx context.Context, fleet string, paused bool, who string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var was bool
		err := tx.QueryRowContext(ctx, `SELECT paused FROM queue_settings WHERE fleet = ?`, fleet).Scan(&was)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read the queue settings of %s: %w", fleet, err)
		}
		now := nowNanos()
		if _, err := tx.ExecContext(ctx, `INSERT INTO queue_settings(fleet, paused, who, updated_at) VALUES(?,?,?,?)
			ON CONFLICT(fleet) DO UPDATE SET paused = excluded.paused, who = excluded.who, updated_at = excluded.updated_at`,
			fleet, paused, who, now); err != nil {
			return fmt.Errorf("write the queue settings of %s: %w", fleet, err)
		}
		if was == paused {
			return nil
		}
		msg := "queue resumed by " + who
		if paused {
			msg = "queue paused by " + who
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO events(fleet, instance, kind, message, at, data) VALUES(?,'',?,?,?,'null')`, fleet, EventQueue, msg, now); err != nil {
			return fmt.Errorf("record the queue event: %w", err)
		}
		return nil
	})
}
