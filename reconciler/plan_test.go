package reconciler_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/supervisor"
)

func TestSpecHashNilVersusEmpty(t *testing.T) {
	nilFleet := fleetOf("web")
	emptyFleet := with(nilFleet, "web", func(in *schema.Instance) {
		in.Command = []string{}
		in.Env = map[string]string{}
		in.Labels = map[string]string{}
		in.Mounts = []schema.Mount{}
		in.Network.Ports = []schema.Port{}
	})
	a, b := desired(t, nilFleet).Instances[0], desired(t, emptyFleet).Instances[0]
	if a.Hash != b.Hash {
		t.Fatalf("nil and empty collections hash differently: %s vs %s", a.Hash, b.Hash)
	}
	// HashSpec normalises a spec read back from the store the same way.
	raw := a.Spec
	raw.Command, raw.Env, raw.Labels, raw.Mounts, raw.Network.Ports = nil, nil, nil, nil, nil
	if h, err := reconciler.HashSpec(raw); err != nil || h != a.Hash {
		t.Fatalf("HashSpec of the nil form = %s, %v; want %s", h, err, a.Hash)
	}
	// A JSON round trip (the store) keeps the hash.
	js, _ := json.Marshal(a.Spec)
	var back reconciler.Spec
	mustDo(t, json.Unmarshal(js, &back))
	if h, _ := reconciler.HashSpec(back); h != a.Hash {
		t.Fatalf("hash changed across a JSON round trip")
	}
}

func TestSpecHashStableAcrossMapAndListOrder(t *testing.T) {
	env := map[string]string{}
	for _, k := range []string{"Z", "A", "M", "B", "Y"} {
		env[k] = k + "-value"
	}
	env2 := map[string]string{}
	for _, k := range []string{"Y", "B", "M", "A", "Z"} {
		env2[k] = k + "-value"
	}
	mounts := []schema.Mount{{Src: "/a", Dst: "/a", Mode: schema.MountRW}, {Src: "/b", Dst: "/b", Mode: schema.MountRO}}
	ports := []schema.Port{{Container: 1, Host: 1, Address: "127.0.0.1", Protocol: "tcp"}, {Container: 2, Host: 2, Address: "127.0.0.1", Protocol: "tcp"}}
	f1 := with(fleetOf(), "web", func(in *schema.Instance) {
		in.Env, in.Mounts, in.Network.Ports = env, mounts, ports
	})
	f2 := with(fleetOf(), "web", func(in *schema.Instance) {
		in.Env = env2
		in.Mounts = []schema.Mount{mounts[1], mounts[0]}
		in.Network.Ports = []schema.Port{ports[1], ports[0]}
	})
	var hashes []string
	for i := 0; i < 20; i++ {
		hashes = append(hashes, desired(t, f1).Instances[0].Hash, desired(t, f2).Instances[0].Hash)
	}
	for _, h := range hashes {
		if h != hashes[0] {
			t.Fatalf("hash is not stable: %v", hashes)
		}
	}
	// Fields outside the spec (state, description) do not change the hash.
	f3 := with(f1, "web", func(in *schema.Instance) { in.State = schema.StateStopped; in.Description = "x" })
	if h := desired(t, f3).Instances[0].Hash; h != hashes[0] {
		t.Fatalf("state or description changed the hash")
	}
}

func TestBuildDesiredResources(t *testing.T) {
	f := with(fleetOf(), "web", func(in *schema.Instance) {
		richInstance(in)
		in.Resources.CPUs = 0.29
		in.Labels = map[string]string{"team": "core"}
	})
	d := desired(t, f)
	in := d.Instances[0]
	if len(in.Resources) != 3 || in.Resources[0].Kind != drivers.KindNetwork || in.Resources[1].Kind != drivers.KindVolume || in.Resources[2].Kind != drivers.KindContainer {
		t.Fatalf("want network, runtime-home volume, then container, got %+v", in.Resources)
	}
	for _, r := range in.Resources {
		wantName, wantHash := "jk-demo-web", in.Hash
		if r.Kind == drivers.KindVolume {
			// The runtime-home volume outlives recreates: no spec hash.
			wantName, wantHash = "jk-demo-web-home", ""
		}
		if r.Name != wantName {
			t.Errorf("%s name %q, want %q", r.Kind, r.Name, wantName)
		}
		for k, v := range map[string]string{
			drivers.LabelManagedBy: "jackin", drivers.LabelFleet: "demo", drivers.LabelInstance: "web",
			drivers.LabelComponent: r.Component, drivers.LabelSpecHash: wantHash,
		} {
			if r.Labels[k] != v {
				t.Errorf("%s label %s = %q, want %q", r.Kind, k, r.Labels[k], v)
			}
		}
	}
	net, home, ctr := in.Resources[0], in.Resources[1], in.Resources[2]
	if net.Component != drivers.ComponentNetwork || home.Component != drivers.ComponentHome || ctr.Component != drivers.ComponentAgent {
		t.Errorf("components %q %q %q", net.Component, home.Component, ctr.Component)
	}
	if !drivers.OwnedByInstance(home.Component) || home.Volume == nil || home.Volume.Target != supervisor.HomeStore {
		t.Errorf("runtime-home volume %+v: want one removed with the instance, mounted at %s", home, supervisor.HomeStore)
	}
	if home.Labels["team"] != "" {
		t.Errorf("user labels belong on the container only: %v", home.Labels)
	}
	if net.Labels["team"] != "" || ctr.Labels["team"] != "core" {
		t.Errorf("user labels belong on the container only: %v %v", net.Labels, ctr.Labels)
	}
	c := ctr.Container
	if c.Image.Ref != imageV1 || c.Hostname != "web" || !c.Running || len(c.Networks) != 1 || c.Networks[0] != "jk-demo-web" {
		t.Errorf("container spec %+v", c)
	}
	if c.NanoCPUs != 290_000_000 || c.Memory != 64<<20 || c.PidsLimit != 100 {
		t.Errorf("limits: cpus %d memory %d pids %d", c.NanoCPUs, c.Memory, c.PidsLimit)
	}
	want := []drivers.MountSpec{
		{Type: "bind", Source: "/home/dev/docs", Target: "/docs", ReadOnly: true},
		{Type: "bind", Source: "/home/dev/old", Target: "/old", ReadOnly: true},
		{Type: "tmpfs", Target: "/tmp", SizeBytes: 64 << 20},
		{Type: "bind", Source: "/home/dev/project", Target: "/work"},
	}
	// Then the supervisor's: its binary read-only, the agent directory,
	// the runtime-home volume.
	want = append(want,
		drivers.MountSpec{Type: "bind", Source: reconciler.SupervisorBinDir(d.StateDir), Target: supervisor.BinDir, ReadOnly: true},
		drivers.MountSpec{Type: "bind", Source: supervisor.HostDir(d.StateDir, "demo", "web"), Target: supervisor.AgentDir},
		drivers.MountSpec{Type: "volume", Source: "jk-demo-web-home", Target: supervisor.HomeStore},
	)
	if len(c.Mounts) != len(want) {
		t.Fatalf("mounts %+v", c.Mounts)
	}
	for i := range want {
		if c.Mounts[i] != want[i] {
			t.Errorf("mount %d = %+v, want %+v", i, c.Mounts[i], want[i])
		}
	}
	if len(c.Ports) != 1 || c.Ports[0] != (drivers.PortSpec{ContainerPort: 80, HostPort: 8080, HostIP: "127.0.0.1", Protocol: "tcp"}) {
		t.Errorf("ports %+v", c.Ports)
	}
	if c.Env["CHANGED"] != "old-secret-value" {
		t.Errorf("env not passed to the container: %v", c.Env)
	}
	// The agent runs under jackin's supervisor, which runs the command.
	if sup := c.Supervisor; sup == nil || len(sup.Entrypoint) < 2 || sup.Entrypoint[0] != supervisor.Binary || sup.Entrypoint[1] != "supervise" ||
		!slices.Equal(sup.Command, []string{"/agent", "run"}) || sup.ImageCommand || sup.HomeTarget != supervisor.HomeStore {
		t.Errorf("supervisor %+v", c.Supervisor)
	}
	if a := in.Agent; a == nil || a.BinDir != reconciler.SupervisorBinDir(d.StateDir) || a.Dir != supervisor.HostDir(d.StateDir, "demo", "web") {
		t.Errorf("agent prep %+v", in.Agent)
	}

	bad := with(fleetOf(), "web", func(in *schema.Instance) { in.Labels = map[string]string{"dev.jackin.fleet": "x"} })
	if _, err := reconciler.BuildDesired(bad); err == nil {
		t.Error("a dev.jackin. user label was accepted")
	}
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, rel)
		mustDo(t, os.MkdirAll(filepath.Dir(p), 0o755))
		mustDo(t, os.WriteFile(p, []byte(content), 0o644))
		mustDo(t, os.Chmod(p, 0o644))
	}
}

func TestBuildContextHash(t *testing.T) {
	files := map[string]string{"Dockerfile": "FROM scratch\nCOPY agent /\n", "agent": "binary", "sub/conf": "x=1"}
	a, b := t.TempDir(), t.TempDir()
	writeTree(t, a, files)
	writeTree(t, b, files)
	tag := func(dir string, args map[string]string) string {
		t.Helper()
		s, err := reconciler.BuildContextHash(&schema.Build{Context: dir, Args: args})
		mustDo(t, err)
		return s
	}
	ta := tag(a, nil)
	if !strings.HasPrefix(ta, "jackin-role:") || len(ta) != len("jackin-role:")+16 {
		t.Fatalf("tag %q", ta)
	}
	if tb := tag(b, nil); tb != ta {
		t.Fatalf("identical contexts in different directories: %s vs %s", ta, tb)
	}
	// .git is ignored.
	writeTree(t, b, map[string]string{".git/HEAD": "ref: refs/heads/main"})
	if tb := tag(b, nil); tb != ta {
		t.Fatalf(".git changed the tag")
	}
	// Args: sorted, so map order cannot matter; values matter.
	if tag(a, map[string]string{"A": "1", "B": "2"}) != tag(b, map[string]string{"B": "2", "A": "1"}) {
		t.Fatal("args order changed the tag")
	}
	if tag(a, map[string]string{"A": "1"}) == tag(a, map[string]string{"A": "2"}) || tag(a, map[string]string{"A": "1"}) == ta {
		t.Fatal("args do not change the tag")
	}
	// Content, mode, names and the Dockerfile name change it.
	writeTree(t, b, map[string]string{"sub/conf": "x=2"})
	tb := tag(b, nil)
	if tb == ta {
		t.Fatal("content change kept the tag")
	}
	mustDo(t, os.Chmod(filepath.Join(b, "agent"), 0o755))
	if tag(b, nil) == tb {
		t.Fatal("mode change kept the tag")
	}
	if s, _ := reconciler.BuildContextHash(&schema.Build{Context: a, Dockerfile: "Other.Dockerfile"}); s == ta {
		t.Fatal("dockerfile name kept the tag")
	}
	if _, err := reconciler.BuildContextHash(&schema.Build{Context: filepath.Join(a, "missing")}); err == nil {
		t.Fatal("a missing context was hashed")
	}

	// BuildDesired uses the tag as the image and shares it between instances.
	f := fleetOf()
	for _, n := range []string{"x", "y"} {
		f = with(f, n, func(in *schema.Instance) { in.Role = schema.Role{Build: &schema.Build{Context: a}} })
	}
	d := desired(t, f)
	for _, in := range d.Instances {
		if in.Image.Ref != ta || in.Spec.Image != ta || in.Image.Build == nil || in.Image.Build.Dockerfile != "Dockerfile" || in.Image.Build.Context != a {
			t.Errorf("%s image %+v", in.Name, in.Image)
		}
	}
	if refs := d.ImageRefs(); len(refs) != 1 {
		t.Errorf("image refs %v", refs)
	}
}

func TestIdenticalSpecIsNoop(t *testing.T) {
	f := with(fleetOf("api"), "web", richInstance)
	drv, last := applied(t, f)
	for _, l := range []reconciler.LastApplied{last, nil} {
		p := plan(t, drv, f, l, prune)
		for _, a := range p.Actions {
			if a.Type != reconciler.ActionNoop || len(a.Reasons) != 0 {
				t.Fatalf("identical spec planned %s %v", a.Type, a.Reasons)
			}
		}
		if p.HasChanges() {
			t.Fatal("HasChanges on a converged plan")
		}
	}
	// Rebuilding the same manifest (new maps, nil vs empty) is still a noop.
	g := with(fleetOf("api"), "web", func(in *schema.Instance) {
		richInstance(in)
		in.Command = append([]string{}, in.Command...)
	})
	g = with(g, "api", func(in *schema.Instance) { in.Env = map[string]string{}; in.Mounts = []schema.Mount{} })
	if p := plan(t, drv, g, last, prune); p.HasChanges() {
		t.Fatalf("equivalent manifest planned changes: %+v", p.Actions)
	}
}

func TestEnvDiffNamesKeysOnly(t *testing.T) {
	old := reconciler.Spec{Env: map[string]string{"TOKEN": "hunter2", "GONE": "s3cret", "SAME": "v"}}
	cur := reconciler.Spec{Env: map[string]string{"TOKEN": "hunter3", "NEW": "t0ps3cret", "SAME": "v"}}
	r := reconciler.DiffSpecs(old, cur)
	if len(r) != 1 || r[0] != "env changed: +NEW ~TOKEN -GONE" {
		t.Fatalf("reasons %q", r)
	}
	for _, secret := range []string{"hunter", "s3cret", "t0ps3cret"} {
		if strings.Contains(strings.Join(r, " "), secret) {
			t.Fatalf("env value leaked: %q", r)
		}
	}
	if r := reconciler.DiffSpecs(old, old); len(r) != 0 {
		t.Fatalf("identical specs differ: %q", r)
	}
	// nil and empty are the same.
	if r := reconciler.DiffSpecs(reconciler.Spec{}, reconciler.Spec{Env: map[string]string{}, Command: []string{}}); len(r) != 0 {
		t.Fatalf("nil vs empty differ: %q", r)
	}
}

func TestEmptyFleetGuard(t *testing.T) {
	drv, last := applied(t, fleetOf("api", "web"))
	d := desired(t, fleetOf())
	obs := observe(t, drv, d)
	_, err := reconciler.BuildPlan(d, obs, last, reconciler.PlanOptions{Prune: true})
	if !errors.Is(err, reconciler.ErrEmptyFleet) {
		t.Fatalf("want ErrEmptyFleet, got %v", err)
	}
	if !strings.Contains(err.Error(), "--allow-empty") || !strings.Contains(err.Error(), "api, web") {
		t.Errorf("error should explain --allow-empty and name the instances: %v", err)
	}
	p, err := reconciler.BuildPlan(d, obs, last, reconciler.PlanOptions{Prune: true, AllowEmpty: true})
	if err != nil || p.Counts()[reconciler.ActionDelete] != 2 {
		t.Fatalf("--allow-empty: %v %+v", err, p)
	}
	// Nothing is deleted with --prune=false, so nothing to guard.
	p, err = reconciler.BuildPlan(d, obs, last, reconciler.PlanOptions{Prune: false})
	if err != nil || p.HasChanges() || p.KeptOrphans() != 2 {
		t.Fatalf("--prune=false: %v %+v", err, p)
	}
	// An empty manifest against an empty backend is fine.
	if _, err := reconciler.BuildPlan(d, observe(t, newDriver(), d), nil, prune); err != nil {
		t.Fatalf("empty against empty: %v", err)
	}
}

func TestPruneFalseReportsOnly(t *testing.T) {
	drv, last := applied(t, fleetOf("keep", "gone"))
	p := plan(t, drv, fleetOf("keep"), last, reconciler.PlanOptions{Prune: false})
	var del *reconciler.Action
	for i := range p.Actions {
		if p.Actions[i].Type == reconciler.ActionDelete {
			del = &p.Actions[i]
		}
	}
	if del == nil || del.Pruned || del.Mutates() || p.HasChanges() || p.Counts()[reconciler.ActionDelete] != 0 {
		t.Fatalf("prune=false: %+v", p.Actions)
	}
	var buf bytes.Buffer
	reconciler.WritePlanText(&buf, p, false)
	if !strings.Contains(buf.String(), "  ! gone (orphan, kept: --prune=false)") {
		t.Fatalf("text:\n%s", buf.String())
	}
	results := reconciler.Execute(t.Context(), p, drv, reconciler.ExecOptions{})
	if len(results) != 0 || drv.MutatingCalls() != 0 {
		t.Fatalf("prune=false executed: %+v, %d calls", results, drv.MutatingCalls())
	}
}

func TestOnlyThisFleetsManagedObjects(t *testing.T) {
	drv, last := applied(t, fleetOf("web"))
	// Another fleet's instance, an unlabelled container and an unmanaged
	// object with our fleet label are never planned.
	drv.Seed(drivers.ObservedResource{Kind: drivers.KindContainer, Name: "jk-other-x", State: drivers.StateRunning, Labels: map[string]string{
		drivers.LabelManagedBy: "jackin", drivers.LabelFleet: "other", drivers.LabelInstance: "x", drivers.LabelComponent: "agent"}})
	drv.Seed(drivers.ObservedResource{Kind: drivers.KindContainer, Name: "jk-demo-web-x", State: drivers.StateRunning})
	d := desired(t, fleetOf("web"))
	obs := observe(t, drv, d)
	obs.Containers = append(obs.Containers, drivers.ObservedResource{Kind: drivers.KindContainer, ID: "z", Name: "z", Labels: map[string]string{
		drivers.LabelFleet: "demo", drivers.LabelInstance: "z"}})
	p, err := reconciler.BuildPlan(d, obs, last, prune)
	mustDo(t, err)
	if len(p.Actions) != 1 || p.Actions[0].Type != reconciler.ActionNoop {
		t.Fatalf("plan touched objects it does not own: %+v", p.Actions)
	}
}

func TestVolumesAloneAreNotAnOrphan(t *testing.T) {
	drv := newDriver()
	drv.Seed(drivers.ObservedResource{Kind: drivers.KindVolume, Name: "jk-demo-old-work", Labels: map[string]string{
		drivers.LabelManagedBy: "jackin", drivers.LabelFleet: "demo", drivers.LabelInstance: "old", drivers.LabelComponent: "volume"}})
	p := plan(t, drv, fleetOf(), nil, prune)
	if len(p.Actions) != 0 {
		t.Fatalf("kept volumes planned as an orphan: %+v", p.Actions)
	}
}

func TestDeletePlanUnknownInstance(t *testing.T) {
	drv, _ := applied(t, fleetOf("web"))
	obs, err := drv.Observe(t.Context(), testFleet, nil)
	mustDo(t, err)
	_, err = reconciler.DeletePlan(testFleet, obs, []string{"web", "nope"})
	if err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("want an error naming nope, got %v", err)
	}
	p, err := reconciler.DeletePlan("empty", obs, nil)
	if err != nil || len(p.Actions) != 0 {
		t.Fatalf("delete of an empty fleet: %v %+v", err, p)
	}
}

func TestMissingResourcesOnly(t *testing.T) {
	// A re-run after a crash between network and container creates only the container.
	drv, last := applied(t, fleetOf("web"))
	mustDo(t, drv.RemoveContainer(name("web")))
	p := plan(t, drv, fleetOf("web"), last, prune)
	a := p.Actions[0]
	if a.Type != reconciler.ActionCreate || len(a.Missing) != 1 || a.Missing[0].Kind != drivers.KindContainer {
		t.Fatalf("want create of the container only, got %s %+v", a.Type, a.Missing)
	}
	// Network missing: recreate with network and container.
	drv, last = applied(t, fleetOf("web"))
	mustDo(t, drv.RemoveNetwork(name("web")))
	a = plan(t, drv, fleetOf("web"), last, prune).Actions[0]
	if a.Type != reconciler.ActionRecreate || len(a.Missing) != 2 || a.Missing[0].Kind != drivers.KindNetwork || a.Missing[1].Kind != drivers.KindContainer {
		t.Fatalf("want recreate of network and container, got %s %+v", a.Type, a.Missing)
	}
}
