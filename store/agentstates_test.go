package store

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// TestAgentStatesAreRecordedOnce: a state change is recorded as an event
// the first time it is read (by boot and seq, per instance), never again.
func TestAgentStatesAreRecordedOnce(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	first := []AgentState{
		{Boot: "b1", Seq: 1, State: "working", At: at},
		{Boot: "b1", Seq: 2, State: "exited", ExitStatus: 3, At: at.Add(time.Second)},
	}
	if n, err := s.RecordAgentStates(ctx, "demo", "web", first); err != nil || n != 2 {
		t.Fatalf("first read: %d new, %v; want 2", n, err)
	}
	// A re-read of the same file, with one change more and one of a new
	// supervisor run that reuses a seq.
	again := append(first,
		AgentState{Boot: "b1", Seq: 3, State: "idle", Detail: "waiting for input", At: at.Add(2 * time.Second)},
		AgentState{Boot: "b2", Seq: 1, State: "working", At: at.Add(3 * time.Second)},
	)
	if n, err := s.RecordAgentStates(ctx, "demo", "web", again); err != nil || n != 2 {
		t.Fatalf("re-read: %d new, %v; want 2", n, err)
	}
	// The same boot and seq of another instance is another change.
	if n, err := s.RecordAgentStates(ctx, "demo", "api", first[:1]); err != nil || n != 1 {
		t.Fatalf("other instance: %d new, %v; want 1", n, err)
	}
	if n, err := s.RecordAgentStates(ctx, "demo", "web", nil); err != nil || n != 0 {
		t.Fatalf("nothing: %d new, %v", n, err)
	}
	ev, err := s.Events(ctx, "demo", 100)
	if err != nil {
		t.Fatal(err)
	}
	var web []Event
	for _, e := range ev {
		if e.Kind != EventAgentState {
			t.Errorf("event kind %q", e.Kind)
		}
		if e.Instance == "web" {
			web = append(web, e)
		}
	}
	if len(ev) != 5 || len(web) != 4 {
		t.Fatalf("events %+v: want 4 of web and 1 of api", ev)
	}
	// Newest first.
	want := []string{"agent working", "agent idle (waiting for input)", "agent exited with status 3", "agent working"}
	for i, e := range web {
		if e.Message != want[i] {
			t.Errorf("event %d: %q, want %q", i, e.Message, want[i])
		}
	}
	if !web[2].At.Equal(at.Add(time.Second)) {
		t.Errorf("event time %v, want %v", web[2].At, at.Add(time.Second))
	}
	var got AgentState
	if err := json.Unmarshal(web[2].Data, &got); err != nil || got.Boot != "b1" || got.Seq != 2 || got.State != "exited" || got.ExitStatus != 3 {
		t.Errorf("event data %s (%v)", web[2].Data, err)
	}
}
