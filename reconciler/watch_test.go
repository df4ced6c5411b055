package reconciler_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/fake"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// memStore is an in-memory reconciler.WatchStore.
type memStore struct {
	mu      sync.Mutex
	last    reconciler.LastApplied
	passes  [][]reconciler.Trigger
	events  []reconciler.WatchEvent
	crashes map[string]*reconciler.CrashState
}

func newMemStore() *memStore {
	return &memStore{last: reconciler.LastApplied{}, crashes: map[string]*reconciler.CrashState{}}
}

func (m *memStore) LastApplied(context.Context, string) (reconciler.LastApplied, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := reconciler.LastApplied{}
	for k, v := range m.last {
		out[k] = v
	}
	return out, nil
}

func (m *memStore) BeginPass(_ context.Context, _ string, triggers []reconciler.Trigger) (reconciler.PassRecorder, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.passes = append(m.passes, triggers)
	return &memPass{m: m}, nil
}

func (m *memStore) RecordEvent(_ context.Context, _ string, ev reconciler.WatchEvent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, ev)
	return nil
}

func (m *memStore) SetCrashState(_ context.Context, _, instance string, st *reconciler.CrashState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st == nil {
		delete(m.crashes, instance)
	} else {
		m.crashes[instance] = st
	}
	return nil
}

func (m *memStore) crash(instance string) *reconciler.CrashState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.crashes[instance]
}

func (m *memStore) recorded(typ string) []reconciler.WatchEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []reconciler.WatchEvent
	for _, e := range m.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

type memPass struct{ m *memStore }

func (p *memPass) ActionFinished(_ context.Context, r reconciler.ActionResult) {
	if r.Outcome != reconciler.OutcomeSucceeded || r.Action.Desired == nil {
		return
	}
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	p.m.last[r.Action.Instance] = r.Action.Desired.Spec
}

func (p *memPass) Finish(context.Context, []reconciler.ActionResult) {}

// watchRun is a watch loop running in the background of a test.
type watchRun struct {
	t      *testing.T
	drv    *fake.Driver
	st     *memStore
	files  chan reconciler.Trigger
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	fleet  *schema.Fleet
	err    error
	events []reconciler.WatchEvent
}

func startWatch(t *testing.T, drv *fake.Driver, f *schema.Fleet, tune func(*reconciler.WatchConfig)) *watchRun {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	w := &watchRun{t: t, drv: drv, st: newMemStore(), files: make(chan reconciler.Trigger), cancel: cancel, done: make(chan error, 1), fleet: f}
	cfg := reconciler.WatchConfig{
		Fleet: f,
		Load: func(context.Context) (*schema.Fleet, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.fleet, w.err
		},
		Files:  w.files,
		Driver: drv,
		Events: map[string]drivers.EventSource{drivers.DefaultBackend: drv},
		Store:  w.st,
		Lock:   func(context.Context) (func(), error) { return func() {}, nil },
		Report: func(ev reconciler.WatchEvent) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.events = append(w.events, ev)
		},
		Resync:  time.Hour,
		Backoff: reconciler.BackoffPolicy{MinUptime: time.Second, Initial: 50 * time.Millisecond, Max: 400 * time.Millisecond},
	}
	if tune != nil {
		tune(&cfg)
	}
	go func() { w.done <- reconciler.Watch(ctx, cfg) }()
	t.Cleanup(func() { w.stop() })
	return w
}

// edit changes what the next manifest load returns and signals a file change.
func (w *watchRun) edit(f *schema.Fleet, err error) {
	w.mu.Lock()
	w.fleet, w.err = f, err
	w.mu.Unlock()
	w.files <- reconciler.Trigger{Source: reconciler.TriggerFile, Detail: "fleet.cue", At: time.Now()}
}

func (w *watchRun) stop() error {
	w.cancel()
	select {
	case err := <-w.done:
		w.done <- err
		return err
	case <-time.After(5 * time.Second):
		w.t.Fatal("watch did not stop within 5s of its context ending")
		return nil
	}
}

func (w *watchRun) reported(typ string) []reconciler.WatchEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []reconciler.WatchEvent
	for _, e := range w.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// eventually polls cond for up to 3 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func containerState(drv *fake.Driver, instance string) string {
	o, ok := drv.Object(drivers.KindContainer, name(instance))
	if !ok {
		return "missing"
	}
	return o.State
}

func running(drv *fake.Driver, instances ...string) func() bool {
	return func() bool {
		for _, in := range instances {
			if containerState(drv, in) != drivers.StateRunning {
				return false
			}
		}
		return true
	}
}

func TestWatchHealsEngineDriftWithoutResync(t *testing.T) {
	drv := newDriver()
	w := startWatch(t, drv, fleetOf("a", "b"), func(c *reconciler.WatchConfig) { c.Parallel = 1 })
	eventually(t, "the first pass creates both", running(drv, "a", "b"))

	// A kill: only the die event can start the pass (resync is an hour).
	// Kills are drift, not crashes: no backoff however soon they come.
	for range 3 {
		starts := drv.Calls()[fake.MethodStart]
		mustDo(t, drv.Kill(name("a")))
		eventually(t, "a restarted after its die event", func() bool {
			return running(drv, "a")() && drv.Calls()[fake.MethodStart] > starts
		})
	}
	if loops := w.reported(reconciler.EventCrashLoop); len(loops) != 0 {
		t.Fatalf("kills counted as crashes: %+v", loops)
	}

	// An rm -f: the destroy event.
	mustDo(t, drv.RemoveContainer(name("b")))
	drv.Emit(drivers.Event{Kind: drivers.KindContainer, Action: drivers.EventDestroy, Name: name("b"), Instance: "b", Component: drivers.ComponentAgent})
	eventually(t, "b created again after its destroy event", running(drv, "b"))

	// The network: removed out of band, then its destroy event.
	mustDo(t, drv.RemoveNetwork(name("a")))
	drv.Emit(drivers.Event{Kind: drivers.KindNetwork, Action: drivers.EventDestroy, Name: name("a"), Instance: "a"})
	eventually(t, "a's network back", func() bool {
		_, ok := drv.Object(drivers.KindNetwork, name("a"))
		return ok && containerState(drv, "a") == drivers.StateRunning
	})

	var heals []string
	for _, ev := range w.reported(reconciler.EventAction) {
		if ev.Trigger == nil {
			t.Fatalf("action without a trigger: %+v", ev)
		}
		heals = append(heals, ev.Instance+" "+ev.Action+" by "+ev.Trigger.Source)
	}
	want := []string{"a create by start", "b create by start", "a start by engine", "a start by engine", "a start by engine", "b create by engine", "a recreate by engine"}
	if strings.Join(heals, ", ") != strings.Join(want, ", ") {
		t.Fatalf("heals:\n got %q\nwant %q", heals, want)
	}
	if got := len(w.st.recorded(reconciler.EventAction)); got != len(want) {
		t.Fatalf("%d heals recorded in the store, want %d", got, len(want))
	}
	if err := w.stop(); err != nil {
		t.Fatalf("watch returned %v, want nil after its context ended", err)
	}
}

func TestWatchManifestEdits(t *testing.T) {
	drv := newDriver()
	f := fleetOf("a", "b")
	w := startWatch(t, drv, f, nil)
	eventually(t, "created", running(drv, "a", "b"))
	idA := mustObject(t, drv, "a").ID

	// Env edit: a recreate.
	w.edit(with(f, "a", func(in *schema.Instance) { in.Env = map[string]string{"K": "v"} }), nil)
	eventually(t, "a recreated", func() bool { o, ok := drv.Object(drivers.KindContainer, name("a")); return ok && o.ID != idA })

	// Add then remove an instance.
	f2 := with(f, "a", func(in *schema.Instance) { in.Env = map[string]string{"K": "v"} })
	f3 := with(f2, "c", func(*schema.Instance) {})
	w.edit(f3, nil)
	eventually(t, "c created", running(drv, "c"))
	w.edit(f2, nil)
	eventually(t, "c deleted", func() bool { return containerState(drv, "c") == "missing" })

	// An invalid manifest: reported once, nothing deleted, old state kept.
	before := drv.MutatingCalls()
	bad := errors.New("fleet.cue:3:1: syntax error")
	w.edit(nil, bad)
	w.edit(nil, bad)
	mustDo(t, drv.Kill(name("b")))
	eventually(t, "b still healed with the last valid manifest", func() bool {
		return containerState(drv, "b") == drivers.StateRunning && drv.MutatingCalls() > before
	})
	if errs := w.reported(reconciler.EventError); len(errs) != 1 || !strings.Contains(errs[0].Message, "syntax error") {
		t.Fatalf("want the manifest error reported once, got %+v", errs)
	}
	if !running(drv, "a", "b")() {
		t.Fatal("an invalid manifest changed the fleet")
	}

	// An emptied fleet deletes nothing without AllowEmpty.
	w.edit(fleetOf(), nil)
	time.Sleep(50 * time.Millisecond)
	if !running(drv, "a", "b")() {
		t.Fatal("an emptied manifest deleted instances")
	}
	if errs := w.reported(reconciler.EventError); len(errs) != 2 || !strings.Contains(errs[1].Message, "no instances") {
		t.Fatalf("want an empty-manifest error, got %+v", errs)
	}

	// Fixed: applied again.
	w.edit(f, nil)
	eventually(t, "a recreated without the env", func() bool {
		o, ok := drv.Object(drivers.KindContainer, name("a"))
		return ok && o.Resource.Container != nil && len(o.Resource.Container.Env) == 0 && o.State == drivers.StateRunning
	})
}

func TestWatchEmptyFleetWithAllowEmpty(t *testing.T) {
	drv := newDriver()
	w := startWatch(t, drv, fleetOf("a"), func(c *reconciler.WatchConfig) { c.AllowEmpty = true })
	eventually(t, "created", running(drv, "a"))
	w.edit(fleetOf(), nil)
	eventually(t, "deleted", func() bool { return containerState(drv, "a") == "missing" })
}

func TestWatchCrashLoopBacksOff(t *testing.T) {
	drv := newDriver()
	drv.SetCrashOnStart(name("crash"), true)
	w := startWatch(t, drv, fleetOf("crash", "ok"), nil)
	eventually(t, "ok created", running(drv, "ok"))

	// Policy in this test: restart at once, then 50, 100, 200, 400, 400ms...
	time.Sleep(1500 * time.Millisecond)
	starts := drv.Calls()[fake.MethodStart]
	// Without backoff this is a hot loop of thousands of starts.
	if starts < 4 || starts > 9 {
		t.Fatalf("%d starts in 1.5s; want 4 to 9 with backoff", starts)
	}
	st := w.st.crash("crash")
	if st == nil || st.Restarts < 3 || st.DelayMs < 100 || st.LastExit != "1" {
		t.Fatalf("crash state %+v", st)
	}
	loops := w.reported(reconciler.EventCrashLoop)
	for i := 1; i < len(loops); i++ {
		if loops[i].Crash.DelayMs < loops[i-1].Crash.DelayMs {
			t.Fatalf("delays shrink: %+v then %+v", loops[i-1].Crash, loops[i].Crash)
		}
	}
	if loops[len(loops)-1].Crash.DelayMs != 400 {
		t.Fatalf("delay not capped at 400ms: %+v", loops[len(loops)-1].Crash)
	}
	if containerState(drv, "ok") != drivers.StateRunning {
		t.Fatal("the healthy instance was disturbed")
	}

	// The fix: it stays up for MinUptime, and the crash loop is over.
	drv.SetCrashOnStart(name("crash"), false)
	eventually(t, "recovered", func() bool { return w.st.crash("crash") == nil && len(w.reported(reconciler.EventRecovered)) == 1 })
}

func TestWatchOwnStopsAreNotCrashes(t *testing.T) {
	drv := newDriver()
	f := fleetOf("a")
	w := startWatch(t, drv, f, nil)
	eventually(t, "created", running(drv, "a"))
	for i := range 3 {
		id := mustObject(t, drv, "a").ID
		w.edit(with(f, "a", func(in *schema.Instance) { in.Env = map[string]string{"N": fmt.Sprint(i)} }), nil)
		eventually(t, "recreated", func() bool { o, ok := drv.Object(drivers.KindContainer, name("a")); return ok && o.ID != id })
		// The die event of the container watch stopped itself.
		drv.Emit(drivers.Event{Kind: drivers.KindContainer, Action: drivers.EventDie, ID: id, Name: name("a"), Instance: "a", Component: drivers.ComponentAgent, ExitCode: "0"})
	}
	time.Sleep(50 * time.Millisecond)
	if loops := w.reported(reconciler.EventCrashLoop); len(loops) != 0 {
		t.Fatalf("recreates counted as crashes: %+v", loops)
	}
}

func TestWatchReconnectsAndResyncs(t *testing.T) {
	drv := newDriver()
	w := startWatch(t, drv, fleetOf("a"), nil)
	eventually(t, "created", running(drv, "a"))
	eventually(t, "subscribed", func() bool { return drv.Streams() == 1 })

	// While the stream is down, the container goes without an event. The
	// stream stays down until the container has gone (else the resync
	// could run before the stop and find nothing to heal).
	drv.FailOn(fake.MethodEvents, "*", errors.New("engine restarting"))
	drv.EndStreams(errors.New("engine restarting"))
	mustDo(t, drv.StopContainer(name("a")))
	drv.FailOn(fake.MethodEvents, "*", nil)
	eventually(t, "stream reopened", func() bool { return drv.Streams() == 1 })
	eventually(t, "the resync after the reconnect heals a", running(drv, "a"))
	var sources []string
	for _, ev := range w.reported(reconciler.EventTrigger) {
		sources = append(sources, ev.Trigger.Source)
	}
	if !strings.Contains(strings.Join(sources, " "), "stream-ended") || !strings.Contains(strings.Join(sources, " "), "reconnect") {
		t.Fatalf("triggers %v: want stream-ended then reconnect", sources)
	}
}

func TestWatchWarnModeChangesNothing(t *testing.T) {
	drv := newDriver()
	apply(t, drv, fleetOf("a", "b"), nil)
	mustDo(t, drv.Kill(name("a")))
	before := drv.MutatingCalls()
	w := startWatch(t, drv, fleetOf("a", "b", "c"), func(c *reconciler.WatchConfig) { c.Mode = reconciler.ModeWarn })
	eventually(t, "drift reported", func() bool { return len(w.reported(reconciler.EventDrift)) == 2 })
	mustDo(t, drv.Kill(name("b")))
	eventually(t, "b's drift reported", func() bool { return len(w.reported(reconciler.EventDrift)) == 3 })
	time.Sleep(50 * time.Millisecond)
	if got := drv.MutatingCalls(); got != before {
		t.Fatalf("warn mode made %d mutating calls: %v", got-before, drv.CallLog())
	}
	if got := len(w.st.recorded(reconciler.EventDrift)); got != 3 {
		t.Fatalf("%d drift events in the store, want 3 (each drift once)", got)
	}
}

func TestWatchStopFinishesTheActionInFlight(t *testing.T) {
	drv := newDriver()
	started := make(chan struct{})
	var once sync.Once
	drv.Delay = 100 * time.Millisecond
	drv.BeforeCall = func(method, _ string) {
		if method == fake.MethodCreate {
			once.Do(func() { close(started) })
		}
	}
	w := startWatch(t, drv, fleetOf("a"), nil)
	<-started
	if err := w.stop(); err != nil {
		t.Fatalf("watch returned %v", err)
	}
	// Network, container and start all ran although the stop came during the first.
	if !running(drv, "a")() {
		t.Fatalf("the action in flight was cut short: %v", drv.CallLog())
	}
}

func TestBackoffPolicyDelays(t *testing.T) {
	drv := newDriver()
	drv.SetCrashOnStart(name("a"), true)
	w := startWatch(t, drv, fleetOf("a"), func(c *reconciler.WatchConfig) {
		c.Backoff = reconciler.BackoffPolicy{MinUptime: time.Minute, Initial: 20 * time.Millisecond, Max: 80 * time.Millisecond}
	})
	eventually(t, "capped", func() bool {
		l := w.reported(reconciler.EventCrashLoop)
		return len(l) >= 4
	})
	var delays []int64
	for _, ev := range w.reported(reconciler.EventCrashLoop)[:4] {
		delays = append(delays, ev.Crash.DelayMs)
	}
	if fmt.Sprint(delays) != "[20 40 80 80]" {
		t.Fatalf("delays %v, want [20 40 80 80] (the first crash restarts at once)", delays)
	}
}

func mustObject(t *testing.T, drv *fake.Driver, instance string) fake.Object {
	t.Helper()
	o, ok := drv.Object(drivers.KindContainer, name(instance))
	if !ok {
		t.Fatalf("no container for %s", instance)
	}
	return o
}

func TestWatchTrustsDieEventOverALaggingList(t *testing.T) {
	drv := newDriver()
	w := startWatch(t, drv, fleetOf("a"), nil)
	eventually(t, "created", running(drv, "a"))
	starts := drv.Calls()[fake.MethodStart]
	// The engine said it died, but its list still says running: start it
	// now rather than wait for the list (or the next resync).
	o := mustObject(t, drv, "a")
	drv.Emit(drivers.Event{Kind: drivers.KindContainer, Action: drivers.EventDie, ID: o.ID, Name: o.Name, Instance: "a", Component: drivers.ComponentAgent, ExitCode: "137"})
	eventually(t, "a started again", func() bool { return drv.Calls()[fake.MethodStart] > starts })
	if acts := w.reported(reconciler.EventAction); acts[len(acts)-1].Trigger.Source != reconciler.TriggerEngine {
		t.Fatalf("last action %+v", acts[len(acts)-1])
	}
}

func TestWatchBacksOffACrashingSidecar(t *testing.T) {
	drv := newDriver()
	f := with(fleetOf(), "web", allowlisted)
	f.StateDir = t.TempDir()
	expectBackoff(t, drv, f, "jk-demo-web-egress", "the crashing sidecar")
}

// expectBackoff runs watch over f while container crashes at every start,
// and expects a crash loop with growing delays, not a hot loop. Policy
// here: at once, then 50, 100, 200, 400ms...: a handful of starts, where a
// container outside the crash bookkeeping would be restarted on every die
// event.
func expectBackoff(t *testing.T, drv *fake.Driver, f *schema.Fleet, container, what string) {
	t.Helper()
	drv.SetCrashOnStart(container, true)
	w := startWatch(t, drv, f, nil)
	time.Sleep(1500 * time.Millisecond)
	if starts := drv.Calls()[fake.MethodStart]; starts > 12 {
		t.Fatalf("%d starts in 1.5s: %s is restarted in a hot loop", starts, what)
	}
	if len(w.reported(reconciler.EventCrashLoop)) == 0 {
		t.Fatalf("no crash loop reported for %s", what)
	}
}

// A private daemon that dies before it answers: the start fails (the
// readiness wait) and the die event that follows must not reset the
// backoff the failure set.
func TestWatchBacksOffADaemonThatNeverAnswers(t *testing.T) {
	drv, f := privateSetup(t, fleetOf())
	expectBackoff(t, drv, f, "jk-demo-web-dind", "the daemon")
}

// TestWatchLeavesIdleStoppedInstancesStopped: an instance the IdleStopped
// set names is not restarted after its die event nor by a resync, while
// another killed instance is; once the set no longer names it, the next
// pass starts it.
func TestWatchLeavesIdleStoppedInstancesStopped(t *testing.T) {
	drv := newDriver()
	var mu sync.Mutex
	idle := map[string]bool{}
	w := startWatch(t, drv, fleetOf("a", "b"), func(c *reconciler.WatchConfig) {
		c.Resync = 100 * time.Millisecond
		c.IdleStopped = func(context.Context, string) (map[string]bool, error) {
			mu.Lock()
			defer mu.Unlock()
			return maps.Clone(idle), nil
		}
	})
	eventually(t, "the first pass creates both", running(drv, "a", "b"))
	mu.Lock()
	idle["a"] = true
	mu.Unlock()
	mustDo(t, drv.StopContainer(name("a")))
	drv.Emit(drivers.Event{Kind: drivers.KindContainer, Action: drivers.EventDie, Name: name("a"), Instance: "a", Component: drivers.ComponentAgent, ExitCode: "0"})
	mustDo(t, drv.Kill(name("b")))
	eventually(t, "b restarted", running(drv, "b"))
	time.Sleep(500 * time.Millisecond) // several resyncs
	if st := containerState(drv, "a"); st == drivers.StateRunning {
		t.Fatal("watch restarted the idle-stopped instance")
	}
	for _, ev := range w.reported(reconciler.EventAction) {
		if ev.Instance == "a" && ev.Action != string(reconciler.ActionCreate) {
			t.Fatalf("watch acted on the idle-stopped instance: %+v", ev)
		}
	}
	mu.Lock()
	delete(idle, "a")
	mu.Unlock()
	eventually(t, "a started once no longer idle-stopped", running(drv, "a"))
}
