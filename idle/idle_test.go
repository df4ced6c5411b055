package idle

import (
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/taskqueue"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	stop := &schema.Idle{After: 10 * time.Minute, Action: schema.IdleStop}
	exec := &schema.Idle{After: time.Minute, Action: schema.IdleExec, Exec: []string{"gradle", "--stop"}}
	base := Input{Policy: stop, Running: true, State: "idle", Since: now.Add(-11 * time.Minute), Boot: "b1", Now: now}
	with := func(fn func(*Input)) Input { in := base; fn(&in); return in }
	cases := []struct {
		name string
		in   Input
		act  bool
		why  string
		due  time.Time
	}{
		{"idle past after", base, true, "agent idle for 11m0s (idle.after 10m0s)", now.Add(-time.Minute)},
		{"done past after", with(func(in *Input) { in.State = "done" }), true, "agent done for 11m0s", now.Add(-time.Minute)},
		{"exactly after", with(func(in *Input) { in.Since = now.Add(-10 * time.Minute) }), true, "agent idle for 10m0s", now},
		{"not yet", with(func(in *Input) { in.Since = now.Add(-9 * time.Minute) }), false, "agent idle for 9m0s of 10m0s", now.Add(time.Minute)},
		{"working", with(func(in *Input) { in.State = "working" }), false, "the agent is working", time.Time{}},
		{"blocked", with(func(in *Input) { in.State = "blocked" }), false, "the agent is blocked", time.Time{}},
		{"starting", with(func(in *Input) { in.State = "starting" }), false, "the agent is starting", time.Time{}},
		{"unknown state", with(func(in *Input) { in.State = "" }), false, "the agent is in an unknown state", time.Time{}},
		{"no since", with(func(in *Input) { in.Since = time.Time{} }), false, "has not said since when", time.Time{}},
		{"no policy", with(func(in *Input) { in.Policy = nil }), false, "no idle policy", time.Time{}},
		{"not running", with(func(in *Input) { in.Running = false }), false, "not running", time.Time{}},
		{"already stopped", with(func(in *Input) { in.IdleStopped = true }), false, "already idle-stopped", time.Time{}},
		{"task in flight", with(func(in *Input) { in.Busy = true }), false, "a task of the queue is in flight", time.Time{}},
		{"client attached", with(func(in *Input) { in.Clients = 2 }), false, "2 client(s) attached", time.Time{}},
		{"client just left", with(func(in *Input) { in.ClientSeen = now.Add(-time.Minute) }), false, "agent idle for 1m0s of 10m0s", now.Add(9 * time.Minute)},
		{"client left long ago", with(func(in *Input) { in.ClientSeen = now.Add(-20 * time.Minute) }), true, "agent idle for 11m0s", now.Add(-time.Minute)},
		{"acted this period", with(func(in *Input) { in.LastPeriod = Period("b1", now.Add(-11*time.Minute)) }), false, "already ran for this idle period", time.Time{}},
		{"acted a previous period", with(func(in *Input) { in.LastPeriod = Period("b1", now.Add(-time.Hour)) }), true, "agent idle", now.Add(-time.Minute)},
		{"acted in a previous boot", with(func(in *Input) { in.LastPeriod = Period("b0", now.Add(-11*time.Minute)) }), true, "agent idle", now.Add(-time.Minute)},
		{"exec policy", with(func(in *Input) { in.Policy = exec; in.Since = now.Add(-90 * time.Second) }), true, "idle.after 1m0s", now.Add(-30 * time.Second)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Decide(c.in)
			if v.Act != c.act || !strings.Contains(v.Why, c.why) || !v.Due.Equal(c.due) {
				t.Fatalf("Decide = %+v; want act %v, why containing %q, due %s", v, c.act, c.why, c.due)
			}
			if c.act {
				if v.Period != Period(c.in.Boot, c.in.Since) || v.Action != c.in.Policy.Action {
					t.Errorf("period %q action %q", v.Period, v.Action)
				}
			}
		})
	}
}

// TestPeriodChangesWithATurnOfWork: a new since (the agent worked and went
// idle again) or a new supervisor run is a new period.
func TestPeriodChangesWithATurnOfWork(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if Period("b1", at) == Period("b1", at.Add(time.Nanosecond)) || Period("b1", at) == Period("b2", at) {
		t.Fatal("periods collide")
	}
	if Period("b1", at) != Period("b1", at.In(time.FixedZone("x", 3600))) {
		t.Fatal("one instant in two zones is two periods")
	}
}

func TestBusy(t *testing.T) {
	tasks := []taskqueue.Task{
		{ID: "1", State: taskqueue.StateWorking, Instance: "a"},
		{ID: "2", State: taskqueue.StateDispatched, Instance: "b"},
		{ID: "3", State: taskqueue.StateNeedsReview, Instance: "c"},
		{ID: "4", State: taskqueue.StateDone, Instance: "d"},
		{ID: "5", State: taskqueue.StateFailed, Instance: "e"},
		{ID: "6", State: taskqueue.StateCancelled, Instance: "f"},
		{ID: "7", State: taskqueue.StateQueued, Instance: "g"},
		{ID: "8", State: taskqueue.StateQueued},
	}
	got := Busy(tasks)
	if len(got) != 3 || !got["a"] || !got["b"] || !got["c"] {
		t.Fatalf("busy %v, want a, b and c", got)
	}
}
