package store

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestIdleStoppedMarks: a mark is kept per fleet and instance, replaced by
// a second mark, and cleared once, with a wake event only when there was
// a mark.
func TestIdleStoppedMarks(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if m, err := s.IdleStopped(ctx, "demo"); err != nil || len(m) != 0 {
		t.Fatalf("empty store: %v, %v", m, err)
	}
	if err := s.MarkIdleStopped(ctx, "demo", IdleStop{Instance: "web", IdleSince: since, At: since.Add(time.Minute), Why: "first"}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkIdleStopped(ctx, "demo", IdleStop{Instance: "web", IdleSince: since, At: since.Add(2 * time.Minute), Why: "agent idle for 2m"}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkIdleStopped(ctx, "other", IdleStop{Instance: "api", IdleSince: since, Why: "x"}); err != nil {
		t.Fatal(err)
	}
	m, err := s.IdleStopped(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	want := IdleStop{Instance: "web", IdleSince: since, At: since.Add(2 * time.Minute), Why: "agent idle for 2m"}
	if len(m) != 1 || m["web"] != want {
		t.Fatalf("marks %+v, want only %+v", m, want)
	}
	if ok, err := s.ClearIdleStopped(ctx, "demo", "api", "attach"); err != nil || ok {
		t.Fatalf("clear of an instance of another fleet: %v, %v; want false", ok, err)
	}
	if ok, err := s.ClearIdleStopped(ctx, "demo", "web", "jackin attach"); err != nil || !ok {
		t.Fatalf("clear: %v, %v; want true", ok, err)
	}
	if ok, err := s.ClearIdleStopped(ctx, "demo", "web", "jackin attach"); err != nil || ok {
		t.Fatalf("second clear: %v, %v; want false", ok, err)
	}
	if m, _ := s.IdleStopped(ctx, "demo"); len(m) != 0 {
		t.Fatalf("after clear: %+v", m)
	}
	if m, _ := s.IdleStopped(ctx, "other"); len(m) != 1 {
		t.Fatalf("the other fleet's mark went too: %+v", m)
	}
	ev, err := s.Events(ctx, "demo", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 1 || ev[0].Kind != EventIdleWake || ev[0].Instance != "web" || ev[0].Message != "no longer idle-stopped: jackin attach" {
		t.Fatalf("events %+v: want one wake event", ev)
	}
}

// TestIdleActionsKeepTheLastPerInstance: each action is an event; the
// table keeps the last one per instance with its period and exit status.
func TestIdleActionsKeepTheLastPerInstance(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	zero, three := 0, 3
	acts := []IdleAction{
		{Instance: "web", Action: "exec", Period: "b1@1", IdleSince: since, At: since.Add(time.Minute), ExitStatus: &zero, Output: "stopped 1 daemon"},
		{Instance: "web", Action: "exec", Period: "b1@2", IdleSince: since.Add(time.Hour), At: since.Add(2 * time.Hour), ExitStatus: &three, Output: "boom"},
		{Instance: "api", Action: "stop", Period: "b7@9", IdleSince: since, At: since.Add(time.Minute)},
		{Instance: "db", Action: "exec", Period: "b2@1", IdleSince: since, At: since.Add(time.Minute), Error: "container not running"},
	}
	for _, a := range acts {
		if err := s.RecordIdleAction(ctx, "demo", a); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.IdleActions(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("actions %+v: want 3 instances", got)
	}
	w := got["web"]
	if w.Period != "b1@2" || w.ExitStatus == nil || *w.ExitStatus != 3 || w.Output != "boom" || !w.At.Equal(since.Add(2*time.Hour)) {
		t.Errorf("web: %+v, want the second exec", w)
	}
	if a := got["api"]; a.Action != "stop" || a.ExitStatus != nil || a.Error != "" {
		t.Errorf("api: %+v", a)
	}
	if d := got["db"]; d.ExitStatus != nil || d.Error != "container not running" {
		t.Errorf("db: %+v", d)
	}
	ev, err := s.Events(ctx, "demo", 10)
	if err != nil {
		t.Fatal(err)
	}
	msgs := map[string]string{}
	for _, e := range ev {
		msgs[e.Kind+" "+e.Instance+" "+e.Message] = ""
	}
	for _, want := range []string{
		"idle-exec web idle exec exited with status 0 (idle since 2026-01-02T03:04:05Z)",
		"idle-exec web idle exec exited with status 3 (idle since 2026-01-02T04:04:05Z)",
		"idle-stop api stopped for idleness (idle since 2026-01-02T03:04:05Z)",
		"idle-exec db idle exec could not run: container not running (idle since 2026-01-02T03:04:05Z)",
	} {
		if _, ok := msgs[want]; !ok {
			t.Errorf("no event %q in %s", want, strings.Join(keys(msgs), "\n"))
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
