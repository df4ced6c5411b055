package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
)

// TestGetShowsIdleCleanup: an idle-stopped instance shows as idle-stopped
// with when and why; a running idle agent shows its idle time against
// idle.after; the last exec action shows its exit status.
func TestGetShowsIdleCleanup(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	stop := &schema.Idle{After: 2 * time.Second, Action: schema.IdleStop}
	exec := &schema.Idle{After: time.Minute, Action: schema.IdleExec, Exec: []string{"true"}}
	fleet := &schema.Fleet{Name: "demo", Instances: map[string]schema.Instance{
		"sleepy": {Name: "sleepy", Idle: stop}, "busy": {Name: "busy", Idle: exec}, "plain": {Name: "plain"},
	}}
	if err := st.MarkIdleStopped(ctx, "demo", store.IdleStop{Instance: "sleepy", At: now.Add(-5 * time.Minute), IdleSince: now.Add(-6 * time.Minute), Why: "agent idle for 2s"}); err != nil {
		t.Fatal(err)
	}
	zero := 0
	if err := st.RecordIdleAction(ctx, "demo", store.IdleAction{Instance: "busy", Action: "exec", Period: "b@1", IdleSince: now.Add(-3 * time.Minute), At: now.Add(-2 * time.Minute), ExitStatus: &zero}); err != nil {
		t.Fatal(err)
	}
	items := []instanceStatus{
		{Instance: "busy", Observed: "running", Agent: &agentInfo{State: "idle", Since: now.Add(-3 * time.Minute)}},
		{Instance: "plain", Observed: "running", Agent: &agentInfo{State: "idle", Since: now.Add(-3 * time.Minute)}},
		{Instance: "sleepy", Observed: "stopped", InSync: true},
	}
	if err := addIdle(ctx, st, &pipeline.Result{Fleet: fleet}, items, now); err != nil {
		t.Fatal(err)
	}
	busy, plain, sleepy := items[0], items[1], items[2]
	if sleepy.Observed != observedIdleStopped || sleepy.Idle == nil || sleepy.Idle.Stopped == nil || sleepy.Idle.Stopped.Why != "agent idle for 2s" || sleepy.Idle.IdleFor != 360 {
		t.Fatalf("sleepy: %+v %+v", sleepy, sleepy.Idle)
	}
	if got := idleCell(sleepy, now); got != "stopped 5m ago" {
		t.Errorf("sleepy cell %q", got)
	}
	if busy.Idle == nil || busy.Idle.After != "1m0s" || busy.Idle.IdleFor != 180 || busy.Idle.LastAction == nil {
		t.Fatalf("busy: %+v", busy.Idle)
	}
	if got := idleCell(busy, now); got != "3m/1m0s exec (exit 0)" {
		t.Errorf("busy cell %q", got)
	}
	if plain.Idle != nil || idleCell(plain, now) != "-" {
		t.Errorf("plain: %+v", plain.Idle)
	}
	// A marked instance found running (woken by hand) is not shown stopped.
	items = []instanceStatus{{Instance: "sleepy", Observed: "running", Agent: &agentInfo{State: "working", Since: now}}}
	if err := addIdle(ctx, st, &pipeline.Result{Fleet: fleet}, items, now); err != nil {
		t.Fatal(err)
	}
	if items[0].Observed != "running" || items[0].Idle.Stopped != nil || !strings.HasPrefix(idleCell(items[0], now), "after 2s") {
		t.Errorf("running sleepy: %+v %q", items[0].Idle, idleCell(items[0], now))
	}
}
