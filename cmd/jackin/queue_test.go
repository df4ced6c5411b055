package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/taskqueue"
)

type taskListDoc struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Fleet      string           `json:"fleet"`
	Paused     bool             `json:"paused"`
	Items      []taskqueue.Task `json:"items"`
}

type taskShowDoc struct {
	Kind string `json:"kind"`
	Task struct {
		taskqueue.Task
		Transitions []store.TaskTransition `json:"transitions"`
	} `json:"task"`
}

func queueRun(t *testing.T, state, stdin string, args ...string) (string, string, int) {
	t.Helper()
	return runInProcess(t, stdin, append([]string{"--state-dir", state, "queue"}, args...)...)
}

func queueList(t *testing.T, state string, args ...string) taskListDoc {
	t.Helper()
	out, errOut, code := queueRun(t, state, "", append([]string{"list", "--fleet", "demo", "-o", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	var l taskListDoc
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return l
}

// TestQueueCommand drives every queue verb against a state dir.
func TestQueueCommand(t *testing.T) {
	state := t.TempDir()
	ctx := context.Background()

	// Nothing yet: an empty list, no state dir created by reading.
	if l := queueList(t, state); l.Kind != "TaskList" || l.APIVersion != "jackin.dev/v1alpha1" || len(l.Items) != 0 || l.Fleet != "demo" {
		t.Fatalf("empty list %+v", l)
	}
	if _, err := os.Stat(filepath.Join(state, "jackin.db")); err == nil {
		t.Error("list created the store")
	}

	// add: by --prompt, --prompt-file and stdin.
	if out, errOut, code := queueRun(t, state, "", "add", "--fleet", "demo", "--id", "low", "--prompt", "Do the low thing.\nIn detail.", "--label", "chore"); code != 0 || !strings.Contains(out, "manual:low queued") {
		t.Fatalf("add: %d %s %s", code, out, errOut)
	}
	pf := filepath.Join(t.TempDir(), "task.md")
	os.WriteFile(pf, []byte("Fix the login redirect.\n"), 0o644)
	if _, errOut, code := queueRun(t, state, "", "add", "--fleet", "demo", "--id", "high", "--title", "Login", "--prompt-file", pf, "--priority", "5"); code != 0 {
		t.Fatalf("add --prompt-file: %d %s", code, errOut)
	}
	out, errOut, code := queueRun(t, state, "From stdin.", "add", "--fleet", "demo", "--prompt-file", "-", "-o", "json")
	if code != 0 {
		t.Fatalf("add from stdin: %d %s", code, errOut)
	}
	var added taskShowDoc
	if err := json.Unmarshal([]byte(out), &added); err != nil || !strings.HasPrefix(added.Task.ID, "manual:") || added.Task.Prompt != "From stdin." || added.Task.State != taskqueue.StateQueued {
		t.Fatalf("add -o json: %v %s", err, out)
	}

	// Bad adds: exit 2, nothing added.
	for _, bad := range [][]string{
		{"add", "--fleet", "demo"},
		{"add", "--fleet", "demo", "--prompt", "x", "--prompt-file", pf},
		{"add", "--fleet", "demo", "--prompt", "   "},
		{"add", "--fleet", "demo", "--prompt-file", filepath.Join(t.TempDir(), "missing")},
		{"add", "--fleet", "demo", "--id", "low", "--prompt", "again"},
		{"add", "--fleet", "demo", "--prompt", "x", "--label", "a,b"},
		{"add", "--prompt", "no fleet"},
		{"add", "--fleet", "Not_A_Fleet", "--prompt", "x"},
		{"list", "--fleet", "demo", "-o", "xml"},
		{"list", "--fleet", "demo", "--state", "sleeping"},
	} {
		if _, errOut, code := queueRun(t, state, "", bad...); code != exitInvalid || errOut == "" {
			t.Errorf("%v: exit %d (%s), want 2 with a message", bad, code, errOut)
		}
	}

	// list: priority first; the table has the columns.
	l := queueList(t, state)
	if len(l.Items) != 3 || l.Items[0].ID != "manual:high" || l.Items[0].Title != "Login" || l.Items[0].Priority != 5 {
		t.Fatalf("list %+v", l.Items)
	}
	if low := l.Items[1]; low.ID != "manual:low" || low.Title != "Do the low thing." || strings.Join(low.Labels, ",") != "chore" {
		t.Errorf("low %+v", low)
	}
	out, _, _ = queueRun(t, state, "", "list", "--fleet", "demo")
	for _, col := range []string{"ID", "STATE", "INSTANCE", "ATTEMPTS", "PRIORITY", "TITLE", "AGE", "manual:high", "queued"} {
		if !strings.Contains(out, col) {
			t.Errorf("table lacks %q:\n%s", col, out)
		}
	}

	// Move tasks along as watch would, then act on them.
	st, err := store.Open(ctx, state)
	if err != nil {
		t.Fatal(err)
	}
	move := func(id string, from, to taskqueue.State) {
		t.Helper()
		if err := st.TransitionTask(ctx, "demo", taskqueue.Decision{Task: id, From: from, To: to, Instance: "w1", Why: "test"}, "watch", nil); err != nil {
			t.Fatal(err)
		}
	}
	move("manual:high", taskqueue.StateQueued, taskqueue.StateDispatched)
	move("manual:high", taskqueue.StateDispatched, taskqueue.StateWorking)
	move("manual:high", taskqueue.StateWorking, taskqueue.StateNeedsReview)
	st.Close()

	// Wrong states: exit 1, unknown task: exit 2.
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"retry", "--fleet", "demo", "manual:low"}, exitChanges, "task manual:low is queued: retry applies to a task that is failed or cancelled"},
		{[]string{"approve", "--fleet", "demo", "manual:low"}, exitChanges, "approve applies to a task that is needs-review"},
		{[]string{"approve", "--fleet", "demo", "manual:nope"}, exitInvalid, "has no task \"manual:nope\""},
		{[]string{"show", "--fleet", "demo", "manual:nope"}, exitInvalid, "has no task"},
		{[]string{"cancel", "--fleet", "demo"}, exitInvalid, "accepts 1 arg"},
	} {
		if _, errOut, code := queueRun(t, state, "", c.args...); code != c.code || !strings.Contains(errOut, c.says) {
			t.Errorf("%v: exit %d %q; want %d saying %q", c.args, code, errOut, c.code, c.says)
		}
	}

	// approve: needs-review -> done; then it is final.
	if out, errOut, code := queueRun(t, state, "", "approve", "--fleet", "demo", "manual:high"); code != 0 || !strings.Contains(out, "needs-review -> done") {
		t.Fatalf("approve: %d %s %s", code, out, errOut)
	}
	if _, errOut, code := queueRun(t, state, "", "cancel", "--fleet", "demo", "manual:high"); code != exitChanges || !strings.Contains(errOut, "is done") {
		t.Errorf("cancel a done task: %d %s", code, errOut)
	}

	// cancel a queued task with a reason, then retry it.
	if _, errOut, code := queueRun(t, state, "", "cancel", "--fleet", "demo", "manual:low", "--reason", "not now"); code != 0 {
		t.Fatalf("cancel: %d %s", code, errOut)
	}
	if out, _, code := queueRun(t, state, "", "retry", "--fleet", "demo", "manual:low", "-o", "json"); code != 0 || !strings.Contains(out, `"state": "queued"`) {
		t.Fatalf("retry: %d %s", code, out)
	}

	// cancel a task on an agent: the agent keeps what it was doing.
	st, _ = store.Open(ctx, state)
	move("manual:low", taskqueue.StateQueued, taskqueue.StateDispatched)
	st.Close()
	if out, _, code := queueRun(t, state, "", "cancel", "--fleet", "demo", "manual:low"); code != 0 || !strings.Contains(out, "The agent of w1 keeps what it was doing") {
		t.Errorf("cancel in flight: %d %s", code, out)
	}

	// show: the transitions with who and why, in order.
	out, _, code = queueRun(t, state, "", "show", "--fleet", "demo", "manual:low", "-o", "json")
	var shown taskShowDoc
	if err := json.Unmarshal([]byte(out), &shown); err != nil || code != 0 {
		t.Fatalf("show: %d %v %s", code, err, out)
	}
	var steps []string
	for _, tr := range shown.Task.Transitions {
		steps = append(steps, string(tr.From)+">"+string(tr.To))
	}
	if got := strings.Join(steps, " "); got != ">queued queued>cancelled cancelled>queued queued>dispatched dispatched>cancelled" {
		t.Errorf("transitions %s", got)
	}
	if tr := shown.Task.Transitions[1]; !strings.HasPrefix(tr.Who, "operator") || tr.Why != "cancel by "+tr.Who+": not now" {
		t.Errorf("cancel transition %+v", tr)
	}
	out, _, _ = queueRun(t, state, "", "show", "--fleet", "demo", "manual:low")
	for _, want := range []string{"ID:         manual:low", "Do the low thing.", "(new) -> queued", "queued -> dispatched on w1  by watch: test"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}

	// pause and resume.
	if out, _, code := queueRun(t, state, "", "pause", "--fleet", "demo"); code != 0 || !strings.Contains(out, "paused") {
		t.Fatalf("pause: %d %s", code, out)
	}
	if l := queueList(t, state); !l.Paused {
		t.Error("not paused")
	}
	if out, _, _ := queueRun(t, state, "", "list", "--fleet", "demo"); !strings.Contains(out, "is paused") {
		t.Errorf("list does not say paused:\n%s", out)
	}
	if l := queueList(t, state, "--state", "cancelled,done"); len(l.Items) != 2 || l.Items[0].State.Final() != true {
		t.Errorf("--state: %+v", l.Items)
	}
	if _, _, code := queueRun(t, state, "", "resume", "--fleet", "demo"); code != 0 {
		t.Fatal("resume")
	}
	if l := queueList(t, state); l.Paused {
		t.Error("still paused")
	}
	// Another fleet's queue is its own.
	if l := queueList(t, state, "--fleet", "other"); len(l.Items) != 0 {
		t.Errorf("other fleet: %+v", l.Items)
	}
}

// TestQueueShowsHostileTextPlain: a task's text is someone else's
// writing; list and show print it without escape sequences or control
// characters.
func TestQueueShowsHostileTextPlain(t *testing.T) {
	state := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, state)
	if err != nil {
		t.Fatal(err)
	}
	hostile := taskqueue.Task{ID: "gh:o/r#1", Title: "\x1b[31mred\x1b[0m \u009b2J title", Prompt: "line one\x1b]0;pwned\x07\nline\rtwo\x1b[2J"}
	if _, err := st.SyncTasks(ctx, "demo", "gh", []taskqueue.Task{hostile}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, args := range [][]string{{"list", "--fleet", "demo"}, {"show", "--fleet", "demo", "gh:o/r#1"}} {
		out, errOut, code := queueRun(t, state, "", args...)
		if code != 0 {
			t.Fatalf("%v: %d %s", args, code, errOut)
		}
		if strings.ContainsAny(out, "\x1b\x07\r\u009b") {
			t.Errorf("%v printed control characters: %q", args, out)
		}
		if !strings.Contains(out, "red 2J title") {
			t.Errorf("%v lost the title: %q", args, out)
		}
	}
}
