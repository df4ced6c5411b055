package store

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/jackin-dev/jackin/taskqueue"
)

func TestAddTaskLinks(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	if _, err := s.SyncTasks(ctx, "f", "dir", []taskqueue.Task{{ID: "dir:a", Title: "a", Prompt: "do a"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.TransitionTask(ctx, "f", taskqueue.Decision{Task: "dir:a", From: taskqueue.StateQueued, To: taskqueue.StateCancelled}, "operator:x", nil); err != nil {
		t.Fatal(err)
	}
	added, err := s.AddTaskLinks(ctx, "f", "dir:a", []string{"https://github.com/o/r/pull/2", "https://github.com/o/r/issues/1"})
	if err != nil || !added {
		t.Fatalf("add: %v %v", added, err)
	}
	if added, err = s.AddTaskLinks(ctx, "f", "dir:a", []string{"https://github.com/o/r/issues/1"}); err != nil || added {
		t.Errorf("adding a known link again: %v %v", added, err)
	}
	task, err := s.Task(ctx, "f", "dir:a")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(task.Links, []string{"https://github.com/o/r/issues/1", "https://github.com/o/r/pull/2"}) || task.State != taskqueue.StateCancelled {
		t.Errorf("task %+v", task)
	}
	trs, _ := s.TaskTransitions(ctx, "f", "dir:a")
	if len(trs) != 2 {
		t.Errorf("links recorded as a transition: %+v", trs)
	}
	if _, err := s.AddTaskLinks(ctx, "f", "dir:nope", []string{"x"}); !errors.Is(err, ErrNoTask) {
		t.Errorf("a missing task: %v", err)
	}
}
