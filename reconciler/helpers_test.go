package reconciler_test

import (
	"context"
	"testing"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/fake"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/supervisor"
)

const (
	testFleet = "demo"
	imageV1   = "example.com/agent:v1"
	imageV2   = "example.com/agent:v2"
	imageV1ID = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	imageV2ID = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

// inst is a minimal valid instance, as validation would produce it.
func inst(name string) schema.Instance {
	return schema.Instance{
		Name:    name,
		Backend: schema.BackendDocker,
		Role:    schema.Role{Image: imageV1},
		Agent:   schema.AgentShell,
		State:   schema.StateRunning,
		Network: schema.Network{Egress: schema.EgressOpen},
		Docker:  schema.DockerNone,
	}
}

// fleetOf builds a fleet of default instances.
func fleetOf(names ...string) *schema.Fleet {
	f := &schema.Fleet{APIVersion: schema.APIVersion, Kind: schema.KindFleet, Name: testFleet, Instances: map[string]schema.Instance{}}
	for _, n := range names {
		f.Instances[n] = inst(n)
	}
	return f
}

// with returns a copy of f with instance name changed by fn.
func with(f *schema.Fleet, name string, fn func(*schema.Instance)) *schema.Fleet {
	c := *f
	c.Instances = map[string]schema.Instance{}
	for k, v := range f.Instances {
		c.Instances[k] = v
	}
	in, ok := c.Instances[name]
	if !ok {
		in = inst(name)
	}
	fn(&in)
	c.Instances[name] = in
	return &c
}

// newDriver is a fake backend holding both test images.
func newDriver() *fake.Driver {
	d := fake.New()
	d.AddImage(imageV1, imageV1ID)
	d.AddImage(imageV2, imageV2ID)
	d.AddImage(sidecarRef, "sha256:5555555555555555555555555555555555555555555555555555555555555555")
	return d
}

// agentOf is the instance's agent container, found by kind and component
// (not by its place among the resources).
func agentOf(t *testing.T, in *reconciler.DesiredInstance) drivers.Resource {
	t.Helper()
	for _, r := range in.Resources {
		if r.Kind == drivers.KindContainer && r.Component == drivers.ComponentAgent {
			return r
		}
	}
	t.Fatalf("instance %s has no agent container: %+v", in.Name, in.Resources)
	return drivers.Resource{}
}

// withoutSupervisor is ms without the mounts every agent container has for
// jackin's supervisor (its binary, the agent directory, the runtime-home
// volume).
func withoutSupervisor(ms []drivers.MountSpec) []drivers.MountSpec {
	var out []drivers.MountSpec
	for _, m := range ms {
		switch m.Target {
		case supervisor.BinDir, supervisor.AgentDir, supervisor.HomeStore:
			continue
		}
		out = append(out, m)
	}
	return out
}

func desired(t *testing.T, f *schema.Fleet) *reconciler.Desired {
	t.Helper()
	d, err := reconciler.BuildDesired(f)
	if err != nil {
		t.Fatalf("BuildDesired: %v", err)
	}
	return d
}

func observe(t *testing.T, drv *fake.Driver, d *reconciler.Desired) *drivers.Observed {
	t.Helper()
	obs, err := drv.Observe(context.Background(), d.Fleet, d.ImageRefs())
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	return obs
}

// plan observes drv and plans f.
func plan(t *testing.T, drv *fake.Driver, f *schema.Fleet, last reconciler.LastApplied, opts reconciler.PlanOptions) *reconciler.Plan {
	t.Helper()
	d := desired(t, f)
	p, err := reconciler.BuildPlan(d, observe(t, drv, d), last, opts)
	if err != nil {
		t.Fatalf("BuildPlan: %v", err)
	}
	return p
}

// recorder keeps last-applied specs the way the CLI's store recorder does.
type recorder struct {
	last    reconciler.LastApplied
	results []reconciler.ActionResult
}

func (r *recorder) ActionFinished(_ context.Context, res reconciler.ActionResult) {
	r.results = append(r.results, res)
	if res.Outcome != reconciler.OutcomeSucceeded {
		return
	}
	switch res.Action.Type {
	case reconciler.ActionCreate, reconciler.ActionRecreate:
		r.last[res.Action.Instance] = res.Action.Desired.Spec
	case reconciler.ActionDelete:
		delete(r.last, res.Action.Instance)
	}
}

// apply converges drv to f and returns the last-applied specs; every
// action must succeed. The call counters are reset afterwards.
func apply(t *testing.T, drv *fake.Driver, f *schema.Fleet, last reconciler.LastApplied) reconciler.LastApplied {
	t.Helper()
	if last == nil {
		last = reconciler.LastApplied{}
	}
	opts := reconciler.PlanOptions{Prune: true, AllowEmpty: true}
	p := plan(t, drv, f, last, opts)
	rec := &recorder{last: last}
	for _, r := range reconciler.Execute(context.Background(), p, drv, reconciler.ExecOptions{Recorder: rec}) {
		if r.Outcome != reconciler.OutcomeSucceeded {
			t.Fatalf("apply: %s %s: %s: %v", r.Action.Type, r.Action.Instance, r.Outcome, r.Err)
		}
	}
	// The CLI backfills converged instances the store does not know.
	for _, a := range p.Actions {
		if a.Desired != nil {
			if _, ok := last[a.Instance]; !ok {
				last[a.Instance] = a.Desired.Spec
			}
		}
	}
	if p2 := plan(t, drv, f, last, opts); p2.HasChanges() {
		t.Fatalf("not converged after apply: %+v", p2.Actions)
	}
	drv.ResetCalls()
	return last
}

func name(instance string) string { return reconciler.ResourceName(testFleet, instance) }

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
