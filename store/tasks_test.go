package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/taskqueue"
)

func dirTask(id, title string, prio int) taskqueue.Task {
	return taskqueue.Task{ID: id, Title: title, Prompt: "do " + title, Priority: prio, Labels: []string{"a", "b"}}
}

// TestSyncTasksNeverDuplicatesOrResets: a rescan inserts nothing twice,
// updates a queued task's text, and never touches a task past queued.
func TestSyncTasksNeverDuplicatesOrResets(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	in := []taskqueue.Task{dirTask("dir:one", "one", 1), dirTask("dir:two", "two", 2)}
	if n, err := s.SyncTasks(ctx, "f", "dir", in); err != nil || n != 2 {
		t.Fatalf("first sync: %d %v", n, err)
	}
	if n, err := s.SyncTasks(ctx, "f", "dir", in); err != nil || n != 0 {
		t.Fatalf("second sync: %d %v; want 0 added", n, err)
	}
	// Another fleet is another queue.
	if n, err := s.SyncTasks(ctx, "g", "dir", in[:1]); err != nil || n != 1 {
		t.Fatalf("other fleet: %d %v", n, err)
	}
	// Move two along; then the source changes both.
	if err := s.TransitionTask(ctx, "f", taskqueue.Decision{Task: "dir:two", From: taskqueue.StateQueued, To: taskqueue.StateDispatched, Instance: "w1", Why: "w1 idle"}, "watch", nil); err != nil {
		t.Fatal(err)
	}
	changed := []taskqueue.Task{dirTask("dir:one", "one v2", 7), dirTask("dir:two", "two v2", 9)}
	changed[0].Labels = []string{"c"}
	if n, err := s.SyncTasks(ctx, "f", "dir", changed); err != nil || n != 0 {
		t.Fatalf("changed sync: %d %v", n, err)
	}
	// A source of another name never updates a task it did not yield.
	other := dirTask("dir:one", "hijacked", 100)
	if _, err := s.SyncTasks(ctx, "f", "other", []taskqueue.Task{other}); err != nil {
		t.Fatal(err)
	}
	tasks, err := s.Tasks(ctx, "f")
	if err != nil || len(tasks) != 2 {
		t.Fatalf("tasks %+v %v", tasks, err)
	}
	one, _ := s.Task(ctx, "f", "dir:one")
	if one.Title != "one v2" || one.Prompt != "do one v2" || one.Priority != 7 || len(one.Labels) != 1 || one.Labels[0] != "c" || one.State != taskqueue.StateQueued || one.Source != "dir" || one.Fleet != "f" {
		t.Errorf("queued task not updated: %+v", one)
	}
	two, _ := s.Task(ctx, "f", "dir:two")
	if two.Title != "two" || two.Priority != 2 || two.State != taskqueue.StateDispatched || two.Instance != "w1" {
		t.Errorf("dispatched task changed by a sync: %+v", two)
	}
	tr, err := s.TaskTransitions(ctx, "f", "dir:one")
	if err != nil || len(tr) != 1 || tr[0].Who != "source:dir" || tr[0].From != "" || tr[0].To != taskqueue.StateQueued {
		t.Errorf("creation transition %+v %v", tr, err)
	}
	if _, err := s.SyncTasks(ctx, "f", "dir", []taskqueue.Task{{Title: "no id"}}); err == nil {
		t.Error("a task without an ID was synced")
	}
}

// TestTransitionTaskCompareAndSet: a transition from a state the task is
// no longer in is refused and records nothing; transitions are recorded
// in order with who and why; the dispatch's and set's fields are kept.
func TestTransitionTaskCompareAndSet(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	created := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	tk := dirTask("manual:x", "x", 0)
	tk.CreatedAt = created
	if err := s.AddTask(ctx, "f", tk, "operator"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddTask(ctx, "f", tk, "operator"); !errors.Is(err, ErrTaskExists) {
		t.Fatalf("second add: %v, want ErrTaskExists", err)
	}
	before := time.Now()
	dispatch := taskqueue.Decision{Task: "manual:x", From: taskqueue.StateQueued, To: taskqueue.StateDispatched, Instance: "w1", Why: "w1 is idle with no task"}
	if err := s.TransitionTask(ctx, "f", dispatch, "watch", func(t *taskqueue.Task) { t.Container, t.Boot = "c1", "b1"; t.Title = "ignored" }); err != nil {
		t.Fatal(err)
	}
	// The same decision again (another watch, or a retry): refused.
	if err := s.TransitionTask(ctx, "f", dispatch, "watch", nil); !errors.Is(err, ErrTaskMoved) {
		t.Fatalf("stale transition: %v, want ErrTaskMoved", err)
	}
	if err := s.TransitionTask(ctx, "f", taskqueue.Decision{Task: "nope", From: taskqueue.StateQueued, To: taskqueue.StateDispatched}, "watch", nil); !errors.Is(err, ErrNoTask) {
		t.Fatalf("missing task: %v, want ErrNoTask", err)
	}
	got, err := s.Task(ctx, "f", "manual:x")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != taskqueue.StateDispatched || got.Instance != "w1" || got.Container != "c1" || got.Boot != "b1" || got.Title != "x" ||
		got.DispatchedAt.Before(before) || !got.CreatedAt.Equal(created) || got.UpdatedAt.Before(before) {
		t.Fatalf("after dispatch: %+v", got)
	}
	steps := []taskqueue.Decision{
		{Task: "manual:x", From: taskqueue.StateDispatched, To: taskqueue.StateWorking, Instance: "w1", Why: "w1 is working on it"},
		{Task: "manual:x", From: taskqueue.StateWorking, To: taskqueue.StateQueued, Instance: "w1", Attempts: 1, Why: "w1's agent exited mid-task"},
	}
	for _, d := range steps {
		if err := s.TransitionTask(ctx, "f", d, "watch", func(t *taskqueue.Task) { t.Links = append(t.Links, "https://github.com/o/r/pull/1") }); err != nil {
			t.Fatal(err)
		}
	}
	got, _ = s.Task(ctx, "f", "manual:x")
	if got.State != taskqueue.StateQueued || got.Attempts != 1 || len(got.Links) != 2 {
		t.Fatalf("after requeue: %+v", got)
	}
	if err := s.TransitionTask(ctx, "f", taskqueue.Decision{Task: "manual:x", From: taskqueue.StateQueued, To: taskqueue.StateCancelled, Why: "not needed"}, "operator", nil); err != nil {
		t.Fatal(err)
	}
	tr, err := s.TaskTransitions(ctx, "f", "manual:x")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		from, to taskqueue.State
		who, why string
	}{
		{"", "queued", "operator", "added by operator"},
		{"queued", "dispatched", "watch", "w1 is idle with no task"},
		{"dispatched", "working", "watch", "w1 is working on it"},
		{"working", "queued", "watch", "w1's agent exited mid-task"},
		{"queued", "cancelled", "operator", "not needed"},
	}
	if len(tr) != len(want) {
		t.Fatalf("transitions %+v", tr)
	}
	for i, w := range want {
		if tr[i].From != w.from || tr[i].To != w.to || tr[i].Who != w.who || tr[i].Why != w.why || tr[i].At.IsZero() {
			t.Errorf("transition %d: %+v, want %+v", i, tr[i], w)
		}
		if i > 0 && tr[i].At.Before(tr[i-1].At) {
			t.Errorf("transition %d before %d", i, i-1)
		}
	}
	if _, err := s.TaskTransitions(ctx, "f", "nope"); !errors.Is(err, ErrNoTask) {
		t.Errorf("transitions of a missing task: %v", err)
	}
	if _, err := s.Task(ctx, "g", "manual:x"); !errors.Is(err, ErrNoTask) {
		t.Errorf("another fleet's task: %v", err)
	}
}

// TestTasksOfADeletedInstanceAreKept: forgetting an instance (as delete
// does) leaves the tasks that ran on it, with their history.
func TestTasksOfADeletedInstanceAreKept(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	if _, err := s.SyncTasks(ctx, "f", "dir", []taskqueue.Task{dirTask("dir:a", "a", 0)}); err != nil {
		t.Fatal(err)
	}
	d := taskqueue.Decision{Task: "dir:a", From: taskqueue.StateQueued, To: taskqueue.StateDispatched, Instance: "w1", Why: "idle"}
	if err := s.TransitionTask(ctx, "f", d, "watch", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLastApplied(ctx, "f", "w1", "h", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteLastApplied(ctx, "f", "w1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DropLinks(ctx, "f", "w1"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Task(ctx, "f", "dir:a")
	if err != nil || got.Instance != "w1" || got.State != taskqueue.StateDispatched {
		t.Fatalf("task after the instance was deleted: %+v %v", got, err)
	}
	if tr, _ := s.TaskTransitions(ctx, "f", "dir:a"); len(tr) != 2 {
		t.Errorf("history lost: %+v", tr)
	}
}

// TestQueuePausedPerFleet: pause and resume are per fleet, recorded with
// who as an event only when they change something.
func TestQueuePausedPerFleet(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	if p, err := s.QueuePaused(ctx, "f"); err != nil || p {
		t.Fatalf("new fleet paused=%v %v", p, err)
	}
	for _, p := range []bool{true, true, false} {
		if err := s.SetQueuePaused(ctx, "f", p, "operator"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.QueuePaused(ctx, "f"); got != p {
			t.Fatalf("paused %v, want %v", got, p)
		}
	}
	if err := s.SetQueuePaused(ctx, "f", true, "alice"); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.QueuePaused(ctx, "g"); p {
		t.Error("another fleet is paused")
	}
	ev, _ := s.Events(ctx, "f", 10)
	var msgs []string
	for _, e := range ev {
		if e.Kind == EventQueue {
			msgs = append(msgs, e.Message)
		}
	}
	if len(msgs) != 3 || msgs[0] != "queue paused by alice" || msgs[1] != "queue resumed by operator" || msgs[2] != "queue paused by operator" {
		t.Errorf("queue events %q", msgs)
	}
}
