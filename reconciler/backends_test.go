package reconciler_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/fake"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// gatedDriver waits in Observe until every gated driver has entered it:
// observation that is not parallel never gets past the gate.
type gatedDriver struct {
	*fake.Driver
	entered chan struct{}
	all     chan struct{}
}

func (g gatedDriver) Observe(ctx context.Context, fleet string, refs []string) (*drivers.Observed, error) {
	g.entered <- struct{}{}
	select {
	case <-g.all:
	case <-time.After(5 * time.Second):
		return nil, context.DeadlineExceeded
	}
	return g.Driver.Observe(ctx, fleet, refs)
}

func TestAPlanSpansBackends(t *testing.T) {
	local, remote := newDriver(), newDriver()
	set := drivers.Set{"docker": local, "other": remote}
	f := with(fleetOf("a"), "b", func(in *schema.Instance) { in.Backend = "other" })
	ctx := t.Context()

	run := func(f *schema.Fleet) *reconciler.Plan {
		t.Helper()
		d := desired(t, f)
		obs, err := reconciler.ObserveAll(ctx, set, d)
		mustDo(t, err)
		p, err := reconciler.BuildPlanAll(d, obs, nil, reconciler.PlanOptions{Prune: true})
		mustDo(t, err)
		for _, r := range reconciler.Execute(ctx, p, local, reconciler.ExecOptions{Drivers: set}) {
			if r.Outcome != reconciler.OutcomeSucceeded {
				t.Fatalf("%s %s on %s: %v", r.Action.Type, r.Action.Instance, r.Action.Backend, r.Err)
			}
		}
		return p
	}
	p := run(f)
	if len(p.Actions) != 2 || p.Actions[0].Backend != "docker" || p.Actions[1].Backend != "other" {
		t.Fatalf("want a on docker and b on other, got %+v", p.Actions)
	}
	if _, ok := local.Object(drivers.KindContainer, name("a")); !ok {
		t.Error("a is not on the docker backend")
	}
	if _, ok := remote.Object(drivers.KindContainer, name("b")); !ok {
		t.Error("b is not on the other backend")
	}
	if _, ok := local.Object(drivers.KindContainer, name("b")); ok {
		t.Error("b is on both backends")
	}

	// Converged: nothing to do on either.
	d := desired(t, f)
	obs, err := reconciler.ObserveAll(ctx, set, d)
	mustDo(t, err)
	again, err := reconciler.BuildPlanAll(d, obs, nil, reconciler.PlanOptions{Prune: true})
	mustDo(t, err)
	if again.HasChanges() {
		t.Fatalf("not converged: %+v", again.Actions)
	}

	// b moves to docker: created there, deleted from other.
	moved := run(fleetOf("a", "b"))
	var got []string
	for _, a := range moved.Actions {
		if a.Mutates() {
			got = append(got, string(a.Type)+" "+a.Instance+" on "+a.Backend)
		}
	}
	slices.Sort(got)
	if want := []string{"create b on docker", "delete b on other"}; !slices.Equal(got, want) {
		t.Fatalf("moving b: %q, want %q", got, want)
	}
	if _, ok := remote.Object(drivers.KindContainer, name("b")); ok {
		t.Error("b is still on the other backend")
	}
}

func TestBackendsAreObservedInParallel(t *testing.T) {
	all := make(chan struct{})
	entered := make(chan struct{}, 2)
	set := drivers.Set{
		"docker": gatedDriver{newDriver(), entered, all},
		"other":  gatedDriver{newDriver(), entered, all},
	}
	go func() {
		<-entered
		<-entered
		close(all)
	}()
	d := desired(t, with(fleetOf("a"), "b", func(in *schema.Instance) { in.Backend = "other" }))
	if _, err := reconciler.ObserveAll(t.Context(), set, d); err != nil {
		t.Fatalf("observation was not parallel (one backend waited for the other): %v", err)
	}
}

func TestAPlanNeedsEveryBackendItUses(t *testing.T) {
	d := desired(t, with(fleetOf("a"), "b", func(in *schema.Instance) { in.Backend = "other" }))
	_, err := reconciler.BuildPlanAll(d, reconciler.Observations{"docker": {}}, nil, reconciler.PlanOptions{Prune: true})
	if err == nil || !strings.Contains(err.Error(), "backend other was not observed") {
		t.Fatalf("want a refusal to plan without observing other, got %v", err)
	}
}

// TestWatchSpansBackends: watch plans over every backend the fleet uses
// and heals an instance on either.
func TestWatchSpansBackends(t *testing.T) {
	local, remote := newDriver(), newDriver()
	f := with(fleetOf("a"), "b", func(in *schema.Instance) { in.Backend = "other" })
	startWatch(t, local, f, func(c *reconciler.WatchConfig) {
		c.Drivers = drivers.Set{"docker": local, "other": remote}
		c.Resync = 50 * time.Millisecond // the other backend streams no events here
	})
	eventually(t, "a on docker and b on other", func() bool {
		_, onLocal := local.Object(drivers.KindContainer, name("a"))
		_, onRemote := remote.Object(drivers.KindContainer, name("b"))
		return onLocal && onRemote
	})
	mustDo(t, remote.RemoveContainer(name("b")))
	eventually(t, "b healed on the other backend", func() bool {
		o, ok := remote.Object(drivers.KindContainer, name("b"))
		return ok && o.State == drivers.StateRunning
	})
	if _, ok := local.Object(drivers.KindContainer, name("b")); ok {
		t.Fatal("b was made on the docker backend")
	}
}

// downSource is a backend whose event stream never opens (an engine that
// does not answer).
type downSource struct{}

func (downSource) Events(context.Context, string) (<-chan drivers.Event, <-chan error, error) {
	return nil, nil, errors.New("engine unreachable")
}

// TestWatchStreamsEveryBackendsEvents: each backend's event stream is its
// own: a change on the other backend heals from its event alone (resync
// is an hour), while a third stream that cannot open delays nothing.
func TestWatchStreamsEveryBackendsEvents(t *testing.T) {
	local, remote := newDriver(), newDriver()
	f := with(fleetOf("a"), "b", func(in *schema.Instance) { in.Backend = "other" })
	w := startWatch(t, local, f, func(c *reconciler.WatchConfig) {
		c.Drivers = drivers.Set{"docker": local, "other": remote}
		c.Events = map[string]drivers.EventSource{"docker": local, "other": remote, "down": downSource{}}
	})
	eventually(t, "a on docker and b on other", func() bool {
		_, onLocal := local.Object(drivers.KindContainer, name("a"))
		o, onRemote := remote.Object(drivers.KindContainer, name("b"))
		return onLocal && onRemote && o.State == drivers.StateRunning
	})
	eventually(t, "both streams open", func() bool { return local.Streams() == 1 && remote.Streams() == 1 })

	mustDo(t, remote.RemoveContainer(name("b")))
	remote.Emit(drivers.Event{Kind: drivers.KindContainer, Action: drivers.EventDestroy, Name: name("b"), Instance: "b", Component: drivers.ComponentAgent})
	eventually(t, "b healed on the other backend from its event", func() bool {
		o, ok := remote.Object(drivers.KindContainer, name("b"))
		return ok && o.State == drivers.StateRunning
	})
	mustDo(t, local.Kill(name("a")))
	eventually(t, "a restarted after its die event", running(local, "a"))

	var down int
	for _, ev := range w.reported(reconciler.EventTrigger) {
		if ev.Trigger.Source == reconciler.TriggerStreamEnded && strings.Contains(ev.Trigger.Detail, "cannot open the down event stream") {
			down++
		}
	}
	if down != 1 {
		t.Fatalf("the stream that cannot open was reported %d times, want once per down period", down)
	}
}
