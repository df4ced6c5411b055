package reconciler_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/fake"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// cutDriver is an engine whose connection can be cut: Observe then fails
// as a dead connection does (or, hanging, never answers), and every other
// call is counted, so a test sees that nothing was sent there.
type cutDriver struct {
	*fake.Driver
	cut, hang atomic.Bool
}

func (c *cutDriver) Observe(ctx context.Context, fleet string, refs []string) (*drivers.Observed, error) {
	if c.hang.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if c.cut.Load() {
		return nil, &drivers.ErrUnreachable{Endpoint: "ssh://r2", Err: errors.New("ssh: connect to host r2 port 22: No route to host")}
	}
	return c.Driver.Observe(ctx, fleet, refs)
}

// onEngine places an instance on a declared engine.
func onEngine(engine string) func(*schema.Instance) {
	return func(in *schema.Instance) { in.Engine = engine }
}

// TestPartitionLeavesTheCutEngineAlone: with three engines converged, one
// engine cut off and drift on another, the plan reports the cut engine's
// instance unreachable (an error naming the engine), repairs the drift,
// deletes nothing anywhere, and executing it sends nothing to the cut
// engine; once it answers again the plan is empty.
func TestPartitionLeavesTheCutEngineAlone(t *testing.T) {
	local, r1 := newDriver(), newDriver()
	r2 := &cutDriver{Driver: newDriver()}
	set := drivers.Set{"docker": local, "docker@r1": r1, "docker@r2": r2}
	f := with(with(fleetOf("a", "b", "c"), "b", onEngine("r1")), "c", onEngine("r2"))
	ctx := t.Context()
	plan := func() *reconciler.Plan {
		t.Helper()
		d := desired(t, f)
		obs, parts, err := reconciler.ObservePartitioned(ctx, set, d)
		mustDo(t, err)
		p, err := reconciler.BuildPlanAll(d, obs, nil, reconciler.PlanOptions{Prune: true, Unreachable: parts})
		mustDo(t, err)
		return p
	}
	for _, r := range reconciler.Execute(ctx, plan(), local, reconciler.ExecOptions{Drivers: set}) {
		if r.Outcome != reconciler.OutcomeSucceeded {
			t.Fatalf("%s %s on %s: %v", r.Action.Type, r.Action.Instance, r.Action.Backend, r.Err)
		}
	}
	for inst, drv := range map[string]*fake.Driver{"a": local, "b": r1, "c": r2.Driver} {
		if _, ok := drv.Object(drivers.KindContainer, name(inst)); !ok {
			t.Fatalf("%s was not made on its engine", inst)
		}
	}
	if p := plan(); p.HasChanges() {
		t.Fatalf("not converged: %+v", p.Actions)
	}

	// r2 is cut off; b's container on r1 is removed behind jackin's back.
	r2.cut.Store(true)
	gone, _ := r1.Object(drivers.KindContainer, name("b"))
	mustDo(t, r1.Remove(ctx, drivers.KindContainer, gone.ID))
	r1.ResetCalls()
	r2.ResetCalls()
	p := plan()
	byName := map[string]reconciler.Action{}
	for _, a := range p.Actions {
		if a.Type == reconciler.ActionDelete {
			t.Errorf("a partition planned a delete: %+v", a)
		}
		byName[a.Instance] = a
	}
	if a := byName["c"]; a.Type != reconciler.ActionUnreachable || a.Engine != "r2" || a.Err == nil ||
		!strings.Contains(a.Err.Error(), "engine r2 is unreachable") || !strings.Contains(a.Err.Error(), "No route to host") {
		t.Errorf("c: %s engine %q err %v, want unreachable naming engine r2 and the cause", a.Type, a.Engine, a.Err)
	}
	if a := byName["b"]; a.Type == reconciler.ActionNoop || a.Engine != "r1" {
		t.Errorf("b: %s on %q, want its drift repaired on r1", a.Type, a.Engine)
	}
	if a := byName["a"]; a.Type != reconciler.ActionNoop {
		t.Errorf("a: %s, want noop", a.Type)
	}
	reconciler.Execute(ctx, p, local, reconciler.ExecOptions{Drivers: set})
	if _, ok := r1.Object(drivers.KindContainer, name("b")); !ok {
		t.Error("b's drift on r1 was not repaired during r2's partition")
	}
	if n := r2.MutatingCalls(); n != 0 {
		t.Errorf("%d mutating calls went to the cut engine: %v", n, r2.CallLog())
	}
	if _, ok := r2.Object(drivers.KindContainer, name("c")); !ok {
		t.Error("c's container on the cut engine is gone")
	}

	// r2 answers again: nothing to do.
	r2.cut.Store(false)
	if p := plan(); p.HasChanges() {
		t.Fatalf("after r2's return: %+v", p.Actions)
	}
}

// TestPartitionHoldsAMoveToTheCutEngine: an instance moved onto an engine
// that does not answer keeps its copy where it was (deleting it now would
// leave the instance nowhere), and an engine that hangs is cut off by
// EngineObserveTimeout instead of holding up the plan.
func TestPartitionHoldsAMoveToTheCutEngine(t *testing.T) {
	local := newDriver()
	r2 := &cutDriver{Driver: newDriver()}
	set := drivers.Set{"docker": local, "docker@r2": r2}
	ctx := t.Context()
	d := desired(t, fleetOf("a", "b"))
	obs, err := reconciler.ObserveAll(ctx, drivers.Set{"docker": local}, d)
	mustDo(t, err)
	p, err := reconciler.BuildPlanAll(d, obs, nil, reconciler.PlanOptions{Prune: true})
	mustDo(t, err)
	reconciler.Execute(ctx, p, local, reconciler.ExecOptions{Drivers: set})

	old := reconciler.EngineObserveTimeout
	reconciler.EngineObserveTimeout = 200 * time.Millisecond
	t.Cleanup(func() { reconciler.EngineObserveTimeout = old })
	r2.hang.Store(true)
	moved := desired(t, with(fleetOf("a", "b"), "b", onEngine("r2")))
	start := time.Now()
	obs, parts, err := reconciler.ObservePartitioned(ctx, set, moved)
	mustDo(t, err)
	if time.Since(start) > 5*time.Second {
		t.Errorf("a hanging engine held the observation for %s", time.Since(start))
	}
	var cut *drivers.ErrEngineUnreachable
	if !errors.As(parts["docker@r2"], &cut) || cut.Engine != "r2" {
		t.Fatalf("partitions %v, want docker@r2 unreachable", parts)
	}
	p, err = reconciler.BuildPlanAll(moved, obs, nil, reconciler.PlanOptions{Prune: true, Unreachable: parts})
	mustDo(t, err)
	for _, a := range p.Actions {
		if a.Instance == "b" && a.Type != reconciler.ActionUnreachable {
			t.Errorf("b: %s on %s, want only unreachable (its local copy kept)", a.Type, a.Backend)
		}
	}

	// ObserveAll (for callers with no partition to report) fails on it.
	if _, err := reconciler.ObserveAll(ctx, set, moved); err == nil || !strings.Contains(err.Error(), "docker@r2") {
		t.Errorf("ObserveAll: %v, want an error naming docker@r2", err)
	}
}
