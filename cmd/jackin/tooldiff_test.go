package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
)

func TestToolChanges(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := &schema.Fleet{Name: "f", Tools: map[string]schema.Tool{
		"sum":  {Name: "sum", Key: "s", Prompt: "Summarize."},
		"open": {Name: "open", Exec: []string{"xdg-open", "{url}"}},
	}}
	ch, err := toolChanges(ctx, st, f)
	if err != nil || len(ch) != 2 || ch[0].Tool != "open" || ch[0].Change != "added" || ch[1].Kind != "prompt" {
		t.Fatalf("never applied: %+v %v", ch, err)
	}
	if err := recordTools(ctx, st, f, ch); err != nil {
		t.Fatal(err)
	}
	if ch, _ := toolChanges(ctx, st, f); len(ch) != 0 {
		t.Fatalf("recorded, yet %+v", ch)
	}
	f.Tools = map[string]schema.Tool{"sum": {Name: "sum", Key: "s", Prompt: "Summarize and push."}, "new": {Name: "new", Prompt: "Hi."}}
	ch, _ = toolChanges(ctx, st, f)
	var b bytes.Buffer
	writeToolChanges(&b, ch)
	want := "Operator tools:\n" +
		"  + tool new: types \"Hi.\" into the agent\n" +
		"  ~ tool sum: types \"Summarize and push.\" into the agent (key s); was: types \"Summarize.\" into the agent (key s)\n" +
		"  - tool open: runs [\"xdg-open\" \"{url}\"] on this machine\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if doc, ok := withToolChanges(map[string]any{"kind": "Plan"}, ch).(map[string]any); !ok || doc["toolChanges"] == nil || !strings.Contains(doc["kind"].(string), "Plan") {
		t.Errorf("json: %+v", doc)
	}
}

func TestQueueChanges(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := &schema.Fleet{Name: "f", Queue: &schema.Queue{Instances: []string{"a", "b"}, MaxAttempts: 3, ReviewBeforeDone: true,
		Sources: []schema.TaskSource{{Name: "files", Kind: schema.TaskSourceDir, Dir: "/w/tasks", Every: 2 * time.Second}}}}
	ch, err := toolChanges(ctx, st, f)
	if err != nil || len(ch) != 1 || ch[0].Kind != "queue" || ch[0].Change != "added" {
		t.Fatalf("never applied: %+v %v", ch, err)
	}
	var b bytes.Buffer
	writeToolChanges(&b, ch)
	if want := "Task queue:\n  + sources files (dir /w/tasks, every 2s) into instances a, b, 3 attempts, review before done\n"; b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if err := recordTools(ctx, st, f, ch); err != nil {
		t.Fatal(err)
	}
	if ch, _ := toolChanges(ctx, st, f); len(ch) != 0 {
		t.Fatalf("recorded, yet %+v", ch)
	}
	if _, ok, _ := st.LastEventOfKind(ctx, "f", eventTools); ok {
		t.Error("a queue change recorded the tools")
	}
	f.Queue.Instances = []string{"a"}
	if ch, _ = toolChanges(ctx, st, f); len(ch) != 1 || ch[0].Change != "changed" || !strings.Contains(ch[0].Detail, "into instances a, 3 attempts, review before done; was: ") {
		t.Errorf("changed: %+v", ch)
	}
	f.Queue = nil
	if ch, _ = toolChanges(ctx, st, f); len(ch) != 1 || ch[0].Change != "removed" {
		t.Errorf("removed: %+v", ch)
	}
	if err := recordTools(ctx, st, f, ch); err != nil {
		t.Fatal(err)
	}
	if ch, _ := toolChanges(ctx, st, f); len(ch) != 0 {
		t.Fatalf("the removal recorded, yet %+v", ch)
	}
}
