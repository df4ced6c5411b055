package reconciler_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/fake"
	"github.com/jackin-dev/jackin/hostpath"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// pinnedFleet is fleetOf("web") with a mount of a host directory, pinned as
// validation pins it.
func pinnedFleet(t *testing.T, mode string) (*schema.Fleet, string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "work", "cache")
	mustDo(t, os.MkdirAll(src, 0o755))
	pin, err := hostpath.PinPath(src)
	mustDo(t, err)
	f := with(fleetOf(), "web", func(in *schema.Instance) {
		in.Mounts = []schema.Mount{{Src: src, Dst: "/cache", Mode: mode}}
	})
	f.Pins = map[string]*hostpath.Pin{src: pin}
	return f, src
}

// swapForSymlink is the agent's move: the source becomes a link to /run.
func swapForSymlink(t *testing.T, src string) {
	t.Helper()
	mustDo(t, os.Remove(src))
	mustDo(t, os.Symlink("/run", src))
}

func hasCall(log []string, prefix string) bool {
	return slices.ContainsFunc(log, func(c string) bool { return strings.HasPrefix(c, prefix) })
}

func TestASwappedBindSourceIsNeverStarted(t *testing.T) {
	f, src := pinnedFleet(t, schema.MountRW)
	drv, last := applied(t, f)
	if err := drv.StopContainer("jk-demo-web"); err != nil {
		t.Fatal(err)
	}
	swapForSymlink(t, src)
	drv.ResetCalls()
	// The cached desired state (as watch keeps it) plans a plain start.
	p, results := execute(t, drv, f, last, reconciler.ExecOptions{})
	if len(p.Actions) != 1 || p.Actions[0].Type != reconciler.ActionStart {
		t.Fatalf("want one start action, got %+v", p.Actions)
	}
	if len(results) != 1 || results[0].Outcome != reconciler.OutcomeFailed {
		t.Fatalf("want the start to fail closed, got %+v", results)
	}
	msg := results[0].Err.Error()
	for _, want := range []string{"start container jk-demo-web", "refused: mount /cache", src + " is now a symbolic link", "jackin apply"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if hasCall(drv.CallLog(), "Start") {
		t.Fatalf("the engine was asked to start it: %q", drv.CallLog())
	}
}

func TestASwappedBindSourceIsNeverCreated(t *testing.T) {
	f, src := pinnedFleet(t, schema.MountRO)
	// Between validation and apply's create: a directory of the same name,
	// but another one (a rename dance keeps every spelling).
	mustDo(t, os.Rename(src, src+".old"))
	mustDo(t, os.Mkdir(src, 0o755))
	drv := newDriver()
	_, results := execute(t, drv, f, nil, reconciler.ExecOptions{})
	if len(results) != 1 || results[0].Outcome != reconciler.OutcomeFailed || !strings.Contains(results[0].Err.Error(), "replaced") {
		t.Fatalf("want the create to fail naming the replaced source, got %+v", results)
	}
	if hasCall(drv.CallLog(), "Create container") || hasCall(drv.CallLog(), "Start") {
		t.Fatalf("the container was created or started: %q", drv.CallLog())
	}
}

func TestASwappedSeedIsNeverCopied(t *testing.T) {
	f, src := pinnedFleet(t, schema.MountEphemeral)
	swapForSymlink(t, src)
	drv := newDriver()
	_, results := execute(t, drv, f, nil, reconciler.ExecOptions{})
	if len(results) != 1 || results[0].Outcome != reconciler.OutcomeFailed || !strings.Contains(results[0].Err.Error(), "the seed directory") {
		t.Fatalf("want the seed copy to be refused, got %+v", results)
	}
	if hasCall(drv.CallLog(), "Seed") || hasCall(drv.CallLog(), "Start") {
		t.Fatalf("the seed was copied or the container started: %q", drv.CallLog())
	}
}

func TestTheEngineGetsTheValidatedPath(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	mustDo(t, os.Mkdir(real, 0o755))
	mustDo(t, os.Symlink(real, filepath.Join(dir, "link")))
	pin, err := hostpath.PinPath(filepath.Join(dir, "link"))
	mustDo(t, err)
	f := with(fleetOf(), "web", func(in *schema.Instance) {
		in.Mounts = []schema.Mount{{Src: filepath.Join(dir, "link"), Dst: "/w", Mode: schema.MountRW}}
	})
	f.Pins = map[string]*hostpath.Pin{filepath.Join(dir, "link"): pin}
	d := desired(t, f)
	ms := withoutSupervisor(agentOf(t, d.Instance("web")).Container.Mounts)
	if len(ms) != 1 || ms[0].Source != real || ms[0].Pin == nil {
		t.Fatalf("want the resolved, pinned source %s, got %+v", real, ms)
	}
}

// logTailFake is the fake backend with the last lines of a container's log.
type logTailFake struct {
	*fake.Driver
	lines []string
}

func (l logTailFake) ContainerLogTail(context.Context, string, int) ([]string, error) {
	return l.lines, nil
}

// TestAnAgentThatExitsAtOnceFailsItsAction: apply's start check reports an
// agent that died right after its start, with its exit status and its last
// log line that holds no secret; a clean exit (0) is not a failure.
func TestAnAgentThatExitsAtOnceFailsItsAction(t *testing.T) {
	drv := logTailFake{Driver: newDriver(), lines: []string{"starting", "config loaded", "error: no such model", "token=ghp_0123456789abcdefABCDEF0123456789abcd"}}
	drv.SetCrashOnStart(name("bad"), true)
	f := fleetOf("bad", "good")
	d := desired(t, f)
	obs, err := drv.Observe(t.Context(), d.Fleet, d.ImageRefs())
	mustDo(t, err)
	p, err := reconciler.BuildPlan(d, obs, nil, reconciler.PlanOptions{Prune: true})
	mustDo(t, err)
	results := reconciler.Execute(t.Context(), p, drv, reconciler.ExecOptions{Images: obs.Images, StartCheck: 20 * time.Millisecond})
	got := outcomes(results)
	if got["bad"] != reconciler.OutcomeFailed || got["good"] != reconciler.OutcomeSucceeded {
		t.Fatalf("outcomes %v: want bad failed, good succeeded", got)
	}
	for _, r := range results {
		if r.Action.Instance != "bad" {
			continue
		}
		msg := r.Err.Error()
		if !strings.Contains(msg, "exited with status 1 right after it started") || !strings.Contains(msg, `"error: no such model"`) {
			t.Errorf("the failure %q does not name the status and the last safe line", msg)
		}
		if strings.Contains(msg, "ghp_") {
			t.Errorf("a secret-shaped line was quoted: %q", msg)
		}
	}
	// Without the check (watch), the action succeeds: watch has its own
	// crash-loop handling.
	drv2 := newDriver()
	drv2.SetCrashOnStart(name("bad"), true)
	_, results = execute(t, drv2, fleetOf("bad"), nil, reconciler.ExecOptions{})
	if len(results) != 1 || results[0].Outcome != reconciler.OutcomeSucceeded {
		t.Fatalf("without a start check: %+v", results)
	}
}

// TestAnOOMKillAtStartIsNotAFailedStart: an agent killed (137) right
// after its start under a memory limit is the OOM killer's, which the
// engine may mark only after the exit is listed: not a failed start.
// Without a memory limit a SIGKILL still fails the action.
func TestAnOOMKillAtStartIsNotAFailedStart(t *testing.T) {
	f := with(fleetOf("free"), "hog", func(in *schema.Instance) { in.Resources.MemoryBytes = 32 << 20 })
	drv := newDriver()
	drv.SetExitOnStart(name("hog"), 137)
	drv.SetExitOnStart(name("free"), 137)
	d := desired(t, f)
	obs, err := drv.Observe(t.Context(), d.Fleet, d.ImageRefs())
	mustDo(t, err)
	p, err := reconciler.BuildPlan(d, obs, nil, reconciler.PlanOptions{Prune: true})
	mustDo(t, err)
	got := outcomes(reconciler.Execute(t.Context(), p, drv, reconciler.ExecOptions{Images: obs.Images, StartCheck: 20 * time.Millisecond}))
	if got["hog"] != reconciler.OutcomeSucceeded || got["free"] != reconciler.OutcomeFailed {
		t.Fatalf("outcomes %v: want hog (memory-limited) succeeded, free failed", got)
	}
}

// staterFake is the fake backend that reports containers by ID, and
// records which IDs it was asked for.
type staterFake struct {
	*fake.Driver
	asked *[][]string
}

func (s staterFake) ContainerStates(ctx context.Context, ids []string) ([]drivers.ObservedResource, error) {
	*s.asked = append(*s.asked, append([]string(nil), ids...))
	obs, err := s.Observe(ctx, testFleet, nil)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var out []drivers.ObservedResource
	for _, c := range obs.Containers {
		if want[c.ID] {
			out = append(out, c)
		}
	}
	return out, nil
}

// TestTheStartCheckAsksOnlyForTheStartedAgents: on a backend that reports
// containers by ID, the start check makes one request naming exactly the
// started agents, observes nothing else, and still fails the agent that
// exited.
func TestTheStartCheckAsksOnlyForTheStartedAgents(t *testing.T) {
	var asked [][]string
	drv := staterFake{Driver: newDriver(), asked: &asked}
	drv.SetCrashOnStart(name("bad"), true)
	d := desired(t, fleetOf("bad", "good"))
	obs, err := drv.Observe(t.Context(), d.Fleet, d.ImageRefs())
	mustDo(t, err)
	p, err := reconciler.BuildPlan(d, obs, nil, reconciler.PlanOptions{Prune: true})
	mustDo(t, err)
	observes := drv.Calls()[fake.MethodObserve]
	got := outcomes(reconciler.Execute(t.Context(), p, drv, reconciler.ExecOptions{Images: obs.Images, StartCheck: 20 * time.Millisecond}))
	during := drv.Calls()[fake.MethodObserve] - observes
	if got["bad"] != reconciler.OutcomeFailed || got["good"] != reconciler.OutcomeSucceeded {
		t.Fatalf("outcomes %v: want bad failed, good succeeded", got)
	}
	if len(asked) != 1 || len(asked[0]) != 2 {
		t.Fatalf("asked for %v: want one request for the two started agents", asked)
	}
	// staterFake answers from one Observe of its own; the check itself
	// observed nothing.
	if during != len(asked) {
		t.Errorf("%d observes during Execute: want only the %d of staterFake's answers", during, len(asked))
	}
	after, err := drv.Observe(t.Context(), d.Fleet, nil)
	mustDo(t, err)
	agents := map[string]bool{}
	for _, c := range after.Containers {
		if c.Labels[drivers.LabelComponent] == drivers.ComponentAgent {
			agents[c.ID] = true
		}
	}
	for _, id := range asked[0] {
		if !agents[id] {
			t.Errorf("asked for %s, which is not an agent container of the fleet", id)
		}
	}
}

// hostFake is the fake backend as an InstanceHost that stages images: it
// records, in order, the host's preparation, the staging, each create and
// the staging's settle.
type hostFake struct {
	*fake.Driver
	mu     *sync.Mutex
	events *[]string
}

func (h hostFake) note(e string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.events = append(*h.events, e)
}

func (h hostFake) PrepareInstance(_ context.Context, in drivers.InstanceSetup) error {
	h.note("prepare " + in.Instance.Name)
	return nil
}

func (h hostFake) RemoveInstance(context.Context, string, string) error { return nil }

func (h hostFake) StageImages(_ context.Context, in drivers.InstanceSetup) func() {
	h.note("stage " + in.Instance.Name)
	for _, r := range in.Resources {
		if r.Kind != drivers.KindContainer {
			h.note("staged a " + string(r.Kind))
		}
	}
	return func() { h.note("settle " + in.Instance.Name) }
}

func (h hostFake) Create(ctx context.Context, r drivers.Resource) (string, error) {
	h.note("create " + string(r.Kind))
	return h.Driver.Create(ctx, r)
}

// TestStagedImagesEndWithTheirAction: a host that stages an instance's
// images while its other objects are made has the staging settled before
// the action ends, when it succeeds and when it fails before its
// container is made (the transfer never outlives its action).
func TestStagedImagesEndWithTheirAction(t *testing.T) {
	for _, failNetwork := range []bool{false, true} {
		var events []string
		drv := hostFake{Driver: newDriver(), mu: &sync.Mutex{}, events: &events}
		if failNetwork {
			drv.FailOn(fake.MethodCreate, "network "+name("web"), errors.New("no network today"))
		}
		d := desired(t, fleetOf("web"))
		obs, err := drv.Observe(t.Context(), d.Fleet, d.ImageRefs())
		mustDo(t, err)
		p, err := reconciler.BuildPlan(d, obs, nil, reconciler.PlanOptions{Prune: true})
		mustDo(t, err)
		got := outcomes(reconciler.Execute(t.Context(), p, drv, reconciler.ExecOptions{Images: obs.Images}))
		want := reconciler.OutcomeSucceeded
		if failNetwork {
			want = reconciler.OutcomeFailed
		}
		if got["web"] != want {
			t.Fatalf("network fails %v: outcome %v, want %s", failNetwork, got, want)
		}
		if len(events) < 3 || events[0] != "prepare web" || events[1] != "stage web" || events[len(events)-1] != "settle web" {
			t.Fatalf("network fails %v: events %v: want the host prepared, the images staged, and the staging settled last", failNetwork, events)
		}
		if n := slices.Index(events, "settle web"); n != len(events)-1 {
			t.Errorf("network fails %v: settled more than once or before the end: %v", failNetwork, events)
		}
		for _, e := range events {
			if strings.HasPrefix(e, "staged a ") {
				t.Errorf("network fails %v: %s: only the images of the containers the action creates are staged", failNetwork, e)
			}
		}
		if !failNetwork && !slices.Contains(events, "create container") {
			t.Errorf("no container created: %v", events)
		}
	}
}
