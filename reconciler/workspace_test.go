package reconciler_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// isolatedFleet has one instance with a worktree, a clone and an ephemeral mount.
func isolatedFleet(stateDir string) *schema.Fleet {
	f := with(fleetOf(), "web", func(in *schema.Instance) {
		in.Mounts = []schema.Mount{
			{Src: "/src/app", Dst: "/work", Mode: schema.MountWorktree, GitCommonDir: "/src/app/.git"},
			{Src: "/src/lib", Dst: "/lib", Mode: schema.MountClone, Ref: "v2"},
			{Dst: "/cache", Mode: schema.MountEphemeral},
		}
	})
	f.StateDir = stateDir
	return f
}

func TestDesiredIsolatedMounts(t *testing.T) {
	d := desired(t, isolatedFleet("/state"))
	in := d.Instance("web")
	var kinds []string
	for _, r := range in.Resources {
		kinds = append(kinds, string(r.Kind))
	}
	if strings.Join(kinds, " ") != "network volume volume container" {
		t.Fatalf("resources %v: want network, volume (ephemeral), volume (runtime home), container", kinds)
	}
	vol := in.Resources[1]
	if vol.Name != "jk-demo-web-cache" || vol.Component != drivers.ComponentEphemeral || vol.Labels[drivers.LabelSpecHash] != "" {
		t.Fatalf("volume %+v", vol)
	}
	mounts := map[string]drivers.MountSpec{}
	for _, m := range withoutSupervisor(agentOf(t, in).Container.Mounts) {
		mounts[m.Target] = m
	}
	want := map[string]drivers.MountSpec{
		"/work":         {Type: "bind", Source: "/state/worktrees/demo/web/work", Target: "/work"},
		"/src/app/.git": {Type: "bind", Source: "/src/app/.git", Target: "/src/app/.git"},
		// Read-only over it: git on the host runs what these name.
		"/src/app/.git/config": {Type: "bind", Source: "/src/app/.git/config", Target: "/src/app/.git/config", ReadOnly: true},
		"/src/app/.git/hooks":  {Type: "bind", Source: "/src/app/.git/hooks", Target: "/src/app/.git/hooks", ReadOnly: true},
		"/lib":                 {Type: "bind", Source: "/state/worktrees/demo/web/lib", Target: "/lib"},
		"/cache":               {Type: "volume", Source: "jk-demo-web-cache", Target: "/cache"},
	}
	if len(mounts) != len(want) {
		t.Fatalf("mounts %+v", mounts)
	}
	for k, w := range want {
		if mounts[k] != w {
			t.Fatalf("mount %s: %+v, want %+v", k, mounts[k], w)
		}
	}
	// Checkouts follow the spec's mounts, sorted by container path.
	if len(in.Checkouts) != 2 || in.Checkouts[0].Mode != schema.MountClone || in.Checkouts[0].Ref != "v2" || in.Checkouts[1].Mode != schema.MountWorktree || in.Checkouts[1].StateDir != "/state" {
		t.Fatalf("checkouts %+v", in.Checkouts)
	}
	// The checkout path is not in the hash: it follows the state dir, and
	// a different state dir must not recreate the fleet.
	if other := desired(t, isolatedFleet("/elsewhere")).Instance("web"); other.Hash != in.Hash {
		t.Fatal("the spec hash depends on the state dir")
	}
	// A changed ref is a spec change.
	f := isolatedFleet("/state")
	web := f.Instances["web"]
	web.Mounts = append([]schema.Mount(nil), web.Mounts...)
	web.Mounts[1].Ref = "v3" // the clone
	f.Instances["web"] = web
	if desired(t, f).Instance("web").Hash == in.Hash {
		t.Fatal("a changed ref does not change the spec hash")
	}
}

// fakeWorkspaces records Prepare and Release calls.
type fakeWorkspaces struct {
	mu    sync.Mutex
	calls []string
}

func (w *fakeWorkspaces) Prepare(_ context.Context, fleet string, in *reconciler.DesiredInstance) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, "prepare "+fleet+"/"+in.Name)
	return nil
}

func (w *fakeWorkspaces) Release(_ context.Context, fleet, instance string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, "release "+fleet+"/"+instance)
	return nil
}

func TestExecuteIsolatedMountsLifecycle(t *testing.T) {
	drv := newDriver()
	ws := &fakeWorkspaces{}
	f := isolatedFleet(t.TempDir())
	_, results := execute(t, drv, f, nil, reconciler.ExecOptions{Workspaces: ws})
	if len(results) != 1 || results[0].Outcome != reconciler.OutcomeSucceeded {
		t.Fatalf("create: %+v", results)
	}
	if _, ok := drv.Object(drivers.KindVolume, "jk-demo-web-cache"); !ok {
		t.Fatal("the ephemeral volume was not created")
	}

	// A recreate prepares again (idempotently) and keeps the volume.
	changed := with(f, "web", func(in *schema.Instance) { in.Env = map[string]string{"MODE": "two"} })
	changed.StateDir = f.StateDir
	p, results := execute(t, drv, changed, nil, reconciler.ExecOptions{Workspaces: ws})
	if len(results) != 1 || results[0].Outcome != reconciler.OutcomeSucceeded || p.Actions[0].Type != reconciler.ActionRecreate {
		t.Fatalf("recreate: %+v", results)
	}
	for _, r := range p.Actions[0].Missing {
		if r.Kind == drivers.KindVolume {
			t.Fatal("a recreate creates the existing volume again")
		}
	}

	// Without a workspace manager, an action that needs a checkout fails clearly.
	drv2 := newDriver()
	_, results = execute(t, drv2, isolatedFleet(t.TempDir()), nil, reconciler.ExecOptions{})
	if len(results) != 1 || results[0].Outcome != reconciler.OutcomeFailed || !strings.Contains(results[0].Err.Error(), "cannot make checkouts") {
		t.Fatalf("without workspaces: %+v", results)
	}
	if len(drv2.Objects()) != 0 {
		t.Fatalf("objects created without the checkouts: %+v", drv2.Objects())
	}

	// Delete removes the ephemeral volume, then releases the checkouts.
	empty := fleetOf()
	_, results = execute(t, drv, empty, nil, reconciler.ExecOptions{Workspaces: ws})
	if len(results) != 1 || results[0].Outcome != reconciler.OutcomeSucceeded {
		t.Fatalf("delete: %+v", results)
	}
	if objs := drv.Objects(); len(objs) != 0 {
		t.Fatalf("left after delete: %+v", objs)
	}
	want := "prepare demo/web,prepare demo/web,release demo/web"
	if got := strings.Join(ws.calls, ","); got != want {
		t.Fatalf("workspace calls %s, want %s", got, want)
	}
}

// TestDesiredClonedCheckout: a worktree or clone of a git URL (a remote
// engine's, a Kubernetes instance's) is a volume of component checkout
// the instance fills itself, with the URL, ref and scratch branch on the
// mount; nothing is checked out on this machine.
func TestDesiredClonedCheckout(t *testing.T) {
	f := with(fleetOf(), "web", func(in *schema.Instance) {
		in.Engine = "r1"
		in.EngineSpec = &schema.Engine{Name: "r1", Host: "ssh://root@r1"}
		in.Mounts = []schema.Mount{{Src: "https://git.example/app.git", Dst: "/work", Mode: schema.MountWorktree, Ref: "v2"}}
	})
	f.StateDir = "/state"
	in := desired(t, f).Instance("web")
	if len(in.Checkouts) != 0 {
		t.Errorf("checkouts on this machine: %+v", in.Checkouts)
	}
	var vol *drivers.Resource
	for i, r := range in.Resources {
		if r.Kind == drivers.KindVolume && r.Component == drivers.ComponentCheckout {
			vol = &in.Resources[i]
		}
	}
	if vol == nil || vol.Labels[drivers.LabelSpecHash] != "" {
		t.Fatalf("no checkout volume (kept across recreates, so no spec hash): %+v", in.Resources)
	}
	var got *drivers.MountSpec
	for _, r := range in.Resources {
		if r.Component != drivers.ComponentAgent || r.Container == nil {
			continue
		}
		for i, m := range r.Container.Mounts {
			if m.Target == "/work" {
				got = &r.Container.Mounts[i]
			}
		}
	}
	want := drivers.CloneSpec{URL: "https://git.example/app.git", Ref: "v2", Branch: "jackin/demo/web"}
	if got == nil || got.Type != "volume" || got.Source != vol.Name || got.Clone == nil || *got.Clone != want {
		t.Errorf("agent mount %+v, want the volume %s filled from %+v", got, vol.Name, want)
	}
}
