package reconciler_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/fake"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// renderSteps prints each mutating action of a plan and its steps, as the
// executor will run them.
func renderSteps(p *reconciler.Plan, opts reconciler.StepOptions) string {
	var b strings.Builder
	for _, a := range p.Actions {
		if !a.Mutates() {
			continue
		}
		fmt.Fprintf(&b, "%s %s", a.Type, a.Instance)
		if len(a.Reasons) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(a.Reasons, "; "))
		}
		b.WriteString("\n")
		for i, s := range reconciler.Steps(a, opts) {
			fmt.Fprintf(&b, "  %2d. %s", i+1, s)
			if s.Kind == reconciler.StepStart && s.Spec != nil {
				n := 0
				for _, m := range s.Spec.Mounts {
					if m.Pin != nil || m.Under != nil {
						n++
					}
				}
				if n > 0 {
					fmt.Fprintf(&b, " (after checking %d pinned bind source(s))", n)
				}
			}
			if s.Probe != nil && s.Probe.What != "" {
				fmt.Fprintf(&b, " [%s]", s.Probe.What)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// TestStepsGolden pins down what each kind of action does, and in which
// order: the executor only runs these steps.
func TestStepsGolden(t *testing.T) {
	web := fleetOf("web")
	allow := with(web, "web", allowlisted)
	cases := []struct {
		name  string
		setup func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied)
		opts  reconciler.StepOptions
	}{
		{"create", func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied) {
			return newDriver(), web, nil
		}, reconciler.StepOptions{}},
		{"create_pinned_mount", func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied) {
			f, _ := pinnedFleet(t, schema.MountRO)
			return newDriver(), f, nil
		}, reconciler.StepOptions{}},
		{"create_private_daemon", func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied) {
			drv, f := privateSetup(t, allow)
			return drv, f, nil
		}, reconciler.StepOptions{}},
		{"recreate_agent_env_changed", func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied) {
			drv, f := privateSetup(t, allow)
			last := apply(t, drv, f, nil)
			return drv, with(f, "web", func(in *schema.Instance) { in.Env = map[string]string{"K": "v"} }), last
		}, reconciler.StepOptions{}},
		{"recreate_agent_only", func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied) {
			drv, f := privateSetup(t, allow)
			last := apply(t, drv, f, nil)
			mustDo(t, drv.RemoveContainer(name("web")))
			return drv, f, last
		}, reconciler.StepOptions{}},
		{"recreate_sidecar_only", func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied) {
			drv, f := privateSetup(t, allow)
			last := apply(t, drv, f, nil)
			mustDo(t, drv.RemoveContainer(name("web")+"-egress"))
			return drv, f, last
		}, reconciler.StepOptions{}},
		{"recreate_agent_image_changed", func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied) {
			drv, f := privateSetup(t, allow)
			last := apply(t, drv, f, nil)
			return drv, with(f, "web", func(in *schema.Instance) { in.Role.Image = imageV2 }), last
		}, reconciler.StepOptions{}},
		{"start_private_daemon_first", func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied) {
			drv, f := privateSetup(t, allow)
			last := apply(t, drv, f, nil)
			for _, n := range []string{name("web"), name("web") + "-dind", name("web") + "-egress"} {
				mustDo(t, drv.StopContainer(n))
			}
			return drv, f, last
		}, reconciler.StepOptions{}},
		{"stop", func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied) {
			drv, f := privateSetup(t, allow)
			last := apply(t, drv, f, nil)
			return drv, with(f, "web", func(in *schema.Instance) { in.State = schema.StateStopped }), last
		}, reconciler.StepOptions{}},
		{"delete", func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied) {
			drv, f := privateSetup(t, allow)
			last := apply(t, drv, f, nil)
			empty := fleetOf()
			empty.StateDir = f.StateDir
			return drv, empty, last
		}, reconciler.StepOptions{RemoveFiles: true, ReleaseCheckouts: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			drv, f, last := tc.setup(t)
			p := plan(t, drv, f, last, reconciler.PlanOptions{Prune: true, AllowEmpty: true})
			got := renderSteps(p, tc.opts)
			golden := filepath.Join("testdata", "steps", tc.name+".golden")
			if *update {
				mustDo(t, os.MkdirAll(filepath.Dir(golden), 0o755))
				mustDo(t, os.WriteFile(golden, []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./reconciler -run TestStepsGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("steps differ from %s:\n got:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

// TestStepsArePure: computing the steps calls nothing on a backend.
func TestStepsArePure(t *testing.T) {
	drv, f := privateSetup(t, with(fleetOf("web"), "web", allowlisted))
	p := plan(t, drv, f, nil, reconciler.PlanOptions{Prune: true})
	drv.ResetCalls()
	for _, a := range p.Actions {
		_ = reconciler.Steps(a, reconciler.StepOptions{RemoveFiles: true, ReleaseCheckouts: true})
	}
	if calls := drv.CallLog(); len(calls) != 0 {
		t.Fatalf("computing steps called the backend: %q", calls)
	}
	if _, err := os.Stat(filepath.Join(f.StateDir, "docker")); err == nil {
		t.Fatal("computing steps wrote the daemon's certificates")
	}
}

// TestDeleteKeepsCheckoutClaimsUnlessPurged: the claim a Pod cloned a
// checkout into can hold unpushed work: a delete keeps it, a purge
// removes it with the instance's own volumes.
func TestDeleteKeepsCheckoutClaimsUnlessPurged(t *testing.T) {
	vol := func(name, component string) drivers.ObservedResource {
		return drivers.ObservedResource{Kind: drivers.KindVolume, Name: name, ID: name, Labels: map[string]string{
			drivers.LabelManagedBy: "jackin", drivers.LabelFleet: "demo", drivers.LabelInstance: "web", drivers.LabelComponent: component}}
	}
	act := reconciler.Action{Instance: "web", Type: reconciler.ActionDelete, Pruned: true,
		Observed: []drivers.ObservedResource{vol("jk-demo-web-home", drivers.ComponentHome), vol("jk-demo-web-src", drivers.ComponentCheckout)}}
	removed := func(a reconciler.Action) []string {
		var out []string
		for _, s := range reconciler.Steps(a, reconciler.StepOptions{}) {
			if s.Kind == reconciler.StepRemove && s.Object == drivers.KindVolume {
				out = append(out, s.Name)
			}
		}
		return out
	}
	if got := removed(act); len(got) != 1 || got[0] != "jk-demo-web-home" {
		t.Errorf("delete removes %q, want the home volume only", got)
	}
	act.Purge = true
	if got := removed(act); len(got) != 2 || got[1] != "jk-demo-web-src" {
		t.Errorf("purge removes %q, want the checkout claim too", got)
	}
}
