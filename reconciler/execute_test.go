package reconciler_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/fake"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

func execute(t *testing.T, drv *fake.Driver, f *schema.Fleet, last reconciler.LastApplied, opts reconciler.ExecOptions) (*reconciler.Plan, []reconciler.ActionResult) {
	t.Helper()
	d := desired(t, f)
	obs := observe(t, drv, d)
	p, err := reconciler.BuildPlan(d, obs, last, reconciler.PlanOptions{Prune: true, AllowEmpty: true})
	mustDo(t, err)
	if opts.Images == nil {
		// As the CLI does: observed images need no EnsureImage call.
		opts.Images = obs.Images
	}
	return p, reconciler.Execute(t.Context(), p, drv, opts)
}

func outcomes(results []reconciler.ActionResult) map[string]string {
	m := map[string]string{}
	for _, r := range results {
		m[r.Action.Instance] = r.Outcome
	}
	return m
}

func TestExecuteOrder(t *testing.T) {
	drv := fake.New()
	_, results := execute(t, drv, fleetOf("web"), nil, reconciler.ExecOptions{})
	if len(results) != 1 || results[0].Outcome != reconciler.OutcomeSucceeded {
		t.Fatalf("results %+v", results)
	}
	want := []string{
		"EnsureImage " + imageV1,
		"Create network jk-demo-web",
		"Create volume jk-demo-web-home",
		"Create container jk-demo-web",
		"Start container jk-demo-web",
	}
	if got := drv.CallLog(); !slices.Equal(got, want) {
		t.Fatalf("create order:\n got %q\nwant %q", got, want)
	}

	// Delete runs in reverse: the container, then the network, then the
	// runtime-home volume (it lives and dies with the instance).
	drv.ResetCalls()
	_, results = execute(t, drv, fleetOf(), nil, reconciler.ExecOptions{})
	if len(results) != 1 || results[0].Outcome != reconciler.OutcomeSucceeded || results[0].Action.Type != reconciler.ActionDelete {
		t.Fatalf("results %+v", results)
	}
	want = []string{"Stop container jk-demo-web", "Remove container jk-demo-web", "Remove network jk-demo-web", "Remove volume jk-demo-web-home"}
	if got := drv.CallLog(); !slices.Equal(got, want) {
		t.Fatalf("delete order:\n got %q\nwant %q", got, want)
	}
	if len(drv.Objects()) != 0 {
		t.Fatalf("left behind: %+v", drv.Objects())
	}
}

func TestExecuteDeleteKeepsVolumes(t *testing.T) {
	drv, last := applied(t, fleetOf("web"))
	drv.Seed(drivers.ObservedResource{Kind: drivers.KindVolume, Name: "jk-demo-web-work", Labels: map[string]string{
		drivers.LabelManagedBy: "jackin", drivers.LabelFleet: "demo", drivers.LabelInstance: "web", drivers.LabelComponent: "volume"}})
	_, results := execute(t, drv, fleetOf(), last, reconciler.ExecOptions{})
	if len(results) != 1 || results[0].Outcome != reconciler.OutcomeSucceeded {
		t.Fatalf("results %+v", results)
	}
	objs := drv.Objects()
	if len(objs) != 1 || objs[0].Kind != drivers.KindVolume {
		t.Fatalf("want only the volume left, got %+v", objs)
	}
	// And the fleet is converged: kept volumes are not an orphan.
	if p := plan(t, drv, fleetOf(), last, prune); len(p.Actions) != 0 {
		t.Fatalf("after delete: %+v", p.Actions)
	}
}

func TestExecuteContinuesPastFailure(t *testing.T) {
	drv := newDriver()
	boom := errors.New("boom")
	drv.FailOn(fake.MethodCreate, "container "+name("b"), boom)
	rec := &recorder{last: reconciler.LastApplied{}}
	_, results := execute(t, drv, fleetOf("a", "b", "c"), nil, reconciler.ExecOptions{Parallel: 1, Recorder: rec})
	got := outcomes(results)
	if got["a"] != reconciler.OutcomeSucceeded || got["b"] != reconciler.OutcomeFailed || got["c"] != reconciler.OutcomeSucceeded {
		t.Fatalf("outcomes %v", got)
	}
	for _, r := range results {
		if r.Action.Instance == "b" {
			if !errors.Is(r.Err, boom) || !strings.Contains(r.Err.Error(), "create container jk-demo-b") {
				t.Errorf("b's error: %v", r.Err)
			}
		}
	}
	if len(rec.results) != 3 {
		t.Errorf("recorder saw %d results, want 3", len(rec.results))
	}
	if _, ok := rec.last["b"]; ok {
		t.Error("a failed create was recorded as applied")
	}
	// The next run creates only what is missing: b's network exists already.
	drv.ClearFailures()
	drv.ResetCalls()
	p, results := execute(t, drv, fleetOf("a", "b", "c"), rec.last, reconciler.ExecOptions{})
	if c := p.Counts(); c[reconciler.ActionCreate] != 1 || c[reconciler.ActionNoop] != 2 {
		t.Fatalf("re-run plan %v", c)
	}
	if want := []string{"Create container jk-demo-b", "Start container jk-demo-b"}; !slices.Equal(drv.CallLog(), want) {
		t.Fatalf("re-run calls %q", drv.CallLog())
	}
	if len(results) != 1 || results[0].Outcome != reconciler.OutcomeSucceeded {
		t.Fatalf("re-run %+v", results)
	}
}

func TestExecuteNameConflict(t *testing.T) {
	drv := newDriver()
	drv.Seed(drivers.ObservedResource{Kind: drivers.KindContainer, Name: name("web"), State: drivers.StateRunning})
	_, results := execute(t, drv, fleetOf("ok", "web"), nil, reconciler.ExecOptions{})
	got := outcomes(results)
	if got["ok"] != reconciler.OutcomeSucceeded || got["web"] != reconciler.OutcomeFailed {
		t.Fatalf("outcomes %v", got)
	}
	var conflict *drivers.ErrNameConflict
	for _, r := range results {
		if r.Action.Instance == "web" && (!errors.As(r.Err, &conflict) || !strings.Contains(r.Err.Error(), "already taken by unlabelled")) {
			t.Errorf("web error %v", r.Err)
		}
	}
}

func TestExecuteParallelBound(t *testing.T) {
	names := make([]string, 24)
	for i := range names {
		names[i] = fmt.Sprintf("i%02d", i)
	}
	for _, bound := range []int{1, 3, 8} {
		t.Run(fmt.Sprint(bound), func(t *testing.T) {
			drv := newDriver()
			drv.Delay = 3 * time.Millisecond
			_, results := execute(t, drv, fleetOf(names...), nil, reconciler.ExecOptions{Parallel: bound})
			for _, r := range results {
				if r.Outcome != reconciler.OutcomeSucceeded {
					t.Fatalf("%s: %v", r.Action.Instance, r.Err)
				}
			}
			if got := drv.MaxConcurrent(); got > bound || (bound > 1 && got < 2) {
				t.Fatalf("parallel %d: %d calls were in flight at once", bound, got)
			}
		})
	}
}

func TestExecuteImageEnsuredOnce(t *testing.T) {
	drv := fake.New()
	f := fleetOf("a", "b", "c", "d", "e")
	f = with(f, "e", func(in *schema.Instance) { in.Role.Image = imageV2 })
	var progress strings.Builder
	_, results := execute(t, drv, f, nil, reconciler.ExecOptions{Parallel: 4, Progress: &lockedBuilder{b: &progress}})
	for _, r := range results {
		if r.Outcome != reconciler.OutcomeSucceeded {
			t.Fatalf("%s: %v", r.Action.Instance, r.Err)
		}
	}
	if n := drv.Calls()[fake.MethodEnsureImage]; n != 2 {
		t.Fatalf("EnsureImage called %d times for 2 distinct images", n)
	}
	if !strings.Contains(progress.String(), "pulled "+imageV1) {
		t.Errorf("progress output %q", progress.String())
	}

	// Images already present (opts.Images) need no call.
	drv2 := newDriver()
	p := plan(t, drv2, f, nil, prune)
	reconciler.Execute(t.Context(), p, drv2, reconciler.ExecOptions{Images: map[string]string{imageV1: imageV1ID, imageV2: imageV2ID}})
	if n := drv2.Calls()[fake.MethodEnsureImage]; n != 0 {
		t.Fatalf("EnsureImage called %d times for present images", n)
	}
}

type lockedBuilder struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func TestExecuteImageFailureFailsOnlyItsInstances(t *testing.T) {
	drv := fake.New()
	drv.FailOn(fake.MethodEnsureImage, imageV2, errors.New("pull access denied"))
	f := fleetOf("a", "b", "c")
	f = with(f, "b", func(in *schema.Instance) { in.Role.Image = imageV2 })
	f = with(f, "c", func(in *schema.Instance) { in.Role.Image = imageV2 })
	_, results := execute(t, drv, f, nil, reconciler.ExecOptions{})
	got := outcomes(results)
	if got["a"] != reconciler.OutcomeSucceeded || got["b"] != reconciler.OutcomeFailed || got["c"] != reconciler.OutcomeFailed {
		t.Fatalf("outcomes %v", got)
	}
	for _, r := range results {
		if r.Outcome == reconciler.OutcomeFailed {
			msg := r.Err.Error()
			if !strings.Contains(msg, imageV2) || !strings.Contains(msg, "instance "+r.Action.Instance) || !strings.Contains(msg, "pull access denied") {
				t.Errorf("error should name the image and the instance: %v", msg)
			}
		}
	}
	if n := drv.Calls()[fake.MethodEnsureImage]; n != 2 {
		t.Errorf("EnsureImage calls %d", n)
	}
	if _, ok := drv.Object(drivers.KindNetwork, name("b")); ok {
		t.Error("an instance whose image failed was partly created")
	}
}

func TestExecuteRecreateKeepsOldContainerWhenImageFails(t *testing.T) {
	drv, last := applied(t, fleetOf("web"))
	drv.RemoveImage(imageV2)
	drv.FailOn(fake.MethodEnsureImage, imageV2, errors.New("not found"))
	f := with(fleetOf("web"), "web", func(in *schema.Instance) { in.Role.Image = imageV2 })
	_, results := execute(t, drv, f, last, reconciler.ExecOptions{})
	if len(results) != 1 || results[0].Outcome != reconciler.OutcomeFailed {
		t.Fatalf("results %+v", results)
	}
	if c, ok := drv.Object(drivers.KindContainer, name("web")); !ok || c.State != drivers.StateRunning {
		t.Fatalf("the old container was touched: %+v", c)
	}
	if drv.Calls()[fake.MethodStop]+drv.Calls()[fake.MethodRemove] != 0 {
		t.Fatalf("calls %v", drv.Calls())
	}
}

func TestExecuteCancellation(t *testing.T) {
	drv := newDriver()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var once sync.Once
	drv.BeforeCall = func(method, _ string) {
		if method == fake.MethodCreate {
			once.Do(cancel)
		}
	}
	p := plan(t, drv, fleetOf("a", "b", "c", "d"), nil, prune)
	rec := &recorder{last: reconciler.LastApplied{}}
	results := reconciler.Execute(ctx, p, drv, reconciler.ExecOptions{Parallel: 1, Recorder: rec, Images: map[string]string{imageV1: imageV1ID}})
	if len(results) != 4 || len(rec.results) != 4 {
		t.Fatalf("want a result per action, got %d (recorded %d)", len(results), len(rec.results))
	}
	first := results[0]
	if first.Action.Instance != "a" || first.Outcome != reconciler.OutcomeFailed || !errors.Is(first.Err, context.Canceled) ||
		!strings.Contains(first.Err.Error(), "interrupted after create network jk-demo-a") {
		t.Fatalf("in-flight instance: %+v", first)
	}
	// The in-flight step finished: the network exists, nothing after it ran.
	if _, ok := drv.Object(drivers.KindNetwork, name("a")); !ok {
		t.Fatal("the in-flight step did not finish")
	}
	if want := []string{"Create network jk-demo-a"}; !slices.Equal(drv.CallLog(), want) {
		t.Fatalf("calls after cancel: %q", drv.CallLog())
	}
	for _, r := range results[1:] {
		if r.Outcome != reconciler.OutcomeSkipped || !errors.Is(r.Err, context.Canceled) {
			t.Errorf("%s: %s %v", r.Action.Instance, r.Outcome, r.Err)
		}
	}
	// A later apply converges from there without duplicates.
	drv.BeforeCall = nil
	apply(t, drv, fleetOf("a", "b", "c", "d"), nil)
	if n := len(drv.Objects()); n != 12 {
		t.Fatalf("want 4 networks, 4 runtime-home volumes and 4 containers, got %d", n)
	}
}

func TestExecuteConvergedMakesNoMutatingCalls(t *testing.T) {
	f := with(fleetOf("a", "b"), "c", func(in *schema.Instance) { in.State = schema.StateStopped })
	drv, last := applied(t, f)
	p, results := execute(t, drv, f, last, reconciler.ExecOptions{Images: map[string]string{}})
	if p.HasChanges() || len(results) != 0 || drv.MutatingCalls() != 0 {
		t.Fatalf("converged: changes %v, %d results, calls %v", p.HasChanges(), len(results), drv.Calls())
	}
	if n := drv.Calls()[fake.MethodObserve]; n != 1 {
		t.Fatalf("observe calls %d", n)
	}
}

func TestExecuteRecreateNetworkMissing(t *testing.T) {
	drv, last := applied(t, fleetOf("web"))
	mustDo(t, drv.RemoveNetwork(name("web")))
	p, results := execute(t, drv, fleetOf("web"), last, reconciler.ExecOptions{})
	if p.Actions[0].Type != reconciler.ActionRecreate || len(results) != 1 || results[0].Outcome != reconciler.OutcomeSucceeded {
		t.Fatalf("plan %+v results %+v", p.Actions, results)
	}
	want := []string{"Stop container jk-demo-web", "Remove container jk-demo-web", "Create network jk-demo-web", "Create container jk-demo-web", "Start container jk-demo-web"}
	if !slices.Equal(drv.CallLog(), want) {
		t.Fatalf("calls %q", drv.CallLog())
	}
	if p := plan(t, drv, fleetOf("web"), last, prune); p.HasChanges() {
		t.Fatalf("not converged: %+v", p.Actions)
	}
}

func TestExecuteRecreateKeepsNetwork(t *testing.T) {
	drv, last := applied(t, fleetOf("web"))
	f := with(fleetOf("web"), "web", func(in *schema.Instance) { in.Env = map[string]string{"A": "1"} })
	net, _ := drv.Object(drivers.KindNetwork, name("web"))
	_, results := execute(t, drv, f, last, reconciler.ExecOptions{})
	if len(results) != 1 || results[0].Outcome != reconciler.OutcomeSucceeded {
		t.Fatalf("results %+v", results)
	}
	want := []string{"Stop container jk-demo-web", "Remove container jk-demo-web", "Create container jk-demo-web", "Start container jk-demo-web"}
	if !slices.Equal(drv.CallLog(), want) {
		t.Fatalf("calls %q", drv.CallLog())
	}
	if n, _ := drv.Object(drivers.KindNetwork, name("web")); n.ID != net.ID {
		t.Fatal("the network was replaced")
	}
}

func TestExecuteRepairsDuplicates(t *testing.T) {
	drv, last := applied(t, fleetOf("web"))
	n, _ := drv.Object(drivers.KindNetwork, name("web"))
	dupNet := n.ObservedResource
	dupNet.ID = ""
	drv.Seed(dupNet)
	c, _ := drv.Object(drivers.KindContainer, name("web"))
	dupCtr := c.ObservedResource
	dupCtr.ID, dupCtr.Name, dupCtr.State = "", name("web")+"-copy", drivers.StateExited
	drv.Seed(dupCtr)
	_, results := execute(t, drv, fleetOf("web"), last, reconciler.ExecOptions{})
	if len(results) != 1 || results[0].Outcome != reconciler.OutcomeSucceeded {
		t.Fatalf("results %+v", results)
	}
	if objs := drv.Objects(); len(objs) != 3 {
		t.Fatalf("want one network, one runtime-home volume and one container, got %+v", objs)
	}
	if p := plan(t, drv, fleetOf("web"), last, prune); p.HasChanges() {
		t.Fatalf("not converged: %+v", p.Actions)
	}
}

func TestExecuteStartStop(t *testing.T) {
	drv, last := applied(t, fleetOf("web"))
	mustDo(t, drv.Kill(name("web")))
	_, results := execute(t, drv, fleetOf("web"), last, reconciler.ExecOptions{})
	if len(results) != 1 || results[0].Action.Type != reconciler.ActionStart || results[0].Outcome != reconciler.OutcomeSucceeded {
		t.Fatalf("start: %+v", results)
	}
	stopped := with(fleetOf("web"), "web", func(in *schema.Instance) { in.State = schema.StateStopped })
	drv.ResetCalls()
	_, results = execute(t, drv, stopped, last, reconciler.ExecOptions{})
	if len(results) != 1 || results[0].Action.Type != reconciler.ActionStop || !slices.Equal(drv.CallLog(), []string{"Stop container jk-demo-web"}) {
		t.Fatalf("stop: %+v %q", results, drv.CallLog())
	}
	if c, _ := drv.Object(drivers.KindContainer, name("web")); c.State != drivers.StateExited {
		t.Fatalf("state %s", c.State)
	}
	// A paused container is stopped, then started.
	mustDo(t, drv.SetState(name("web"), drivers.StatePaused, "Up 1 minute (Paused)"))
	drv.ResetCalls()
	_, results = execute(t, drv, fleetOf("web"), last, reconciler.ExecOptions{})
	if want := []string{"Stop container jk-demo-web", "Start container jk-demo-web"}; len(results) != 1 || !slices.Equal(drv.CallLog(), want) {
		t.Fatalf("start of a paused container: %+v %q", results, drv.CallLog())
	}
	// Created stopped: never started.
	drv2 := newDriver()
	_, results = execute(t, drv2, stopped, nil, reconciler.ExecOptions{})
	if len(results) != 1 || drv2.Calls()[fake.MethodStart] != 0 {
		t.Fatalf("created stopped: %+v %v", results, drv2.Calls())
	}
}
