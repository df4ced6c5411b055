package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/reconciler"
)

// planFixture is a plan of fleet "demo": api, web, web-2 and zeta in the
// manifest (sorted, as the planner sorts them) and old, an orphan on the
// engine.
func planFixture() *pipeline.Result {
	desired := &reconciler.Desired{Fleet: "demo"}
	for _, n := range []string{"api", "web", "web-2", "zeta"} {
		desired.Instances = append(desired.Instances, reconciler.DesiredInstance{Name: n, Running: true})
	}
	plan := &reconciler.Plan{Fleet: "demo"}
	for i := range desired.Instances {
		in := &desired.Instances[i]
		typ := reconciler.ActionNoop
		if in.Name == "zeta" {
			typ = reconciler.ActionCreate
		}
		plan.Actions = append(plan.Actions, reconciler.Action{Instance: in.Name, Type: typ, Desired: in})
	}
	plan.Actions = append(plan.Actions, reconciler.Action{Instance: "old", Type: reconciler.ActionDelete, Pruned: true})
	observed := &drivers.Observed{}
	for _, n := range []string{"api", "web", "web-2", "old"} {
		observed.Containers = append(observed.Containers, drivers.ObservedResource{
			Kind: drivers.KindContainer, Name: "jk-demo-" + n, State: drivers.StateRunning,
			Labels: map[string]string{drivers.LabelInstance: n, drivers.LabelComponent: drivers.ComponentAgent},
		})
	}
	return &pipeline.Result{Desired: desired, Observed: reconciler.Observations{drivers.DefaultBackend: observed}, Plan: plan}
}

func instancesOf(p *reconciler.Plan) []string {
	var out []string
	for _, a := range p.Actions {
		out = append(out, a.Instance)
	}
	return out
}

// TestNarrowPlan: get and diff show exactly the named instances. Naming
// web once printed every instance sorted after it too.
func TestNarrowPlan(t *testing.T) {
	cases := []struct {
		names, want, desired []string
	}{
		{nil, []string{"api", "web", "web-2", "zeta", "old"}, []string{"api", "web", "web-2", "zeta"}},
		{[]string{"web"}, []string{"web"}, []string{"web"}},
		{[]string{"api"}, []string{"api"}, []string{"api"}},
		{[]string{"zeta", "api"}, []string{"api", "zeta"}, []string{"api", "zeta"}},
		{[]string{"web", "web"}, []string{"web"}, []string{"web"}},
		{[]string{"old"}, []string{"old"}, nil}, // an orphan: on the engine only
	}
	for _, c := range cases {
		res := planFixture()
		if err := narrowPlan(res, c.names); err != nil {
			t.Fatalf("%v: %v", c.names, err)
		}
		if got := instancesOf(res.Plan); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%v: plan lists %v, want %v", c.names, got, c.want)
		}
		var desired []string
		for _, in := range res.Desired.Instances {
			desired = append(desired, in.Name)
		}
		if !reflect.DeepEqual(desired, c.desired) {
			t.Errorf("%v: desired holds %v, want %v", c.names, desired, c.desired)
		}
		var rows []string
		for _, it := range statusRows(res) {
			rows = append(rows, it.Instance)
		}
		if !reflect.DeepEqual(rows, c.want) {
			t.Errorf("%v: get lists %v, want %v", c.names, rows, c.want)
		}
	}
}

func TestNarrowPlanRefusesUnknownNames(t *testing.T) {
	res := planFixture()
	err := narrowPlan(res, []string{"web", "nope", "also-nope", "nope"})
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitInvalid {
		t.Fatalf("want exit 2, got %v", err)
	}
	if want := `no instance named also-nope, nope in fleet "demo" or on the engine`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if got := instancesOf(res.Plan); len(got) != 5 {
		t.Errorf("a refused narrowing changed the plan: %v", got)
	}
}

// TestDiffNarrowedConvergence: a narrowed diff reports the named
// instances' changes only, so naming a converged instance is "no changes"
// even when another instance drifts.
func TestDiffNarrowedConvergence(t *testing.T) {
	res := planFixture()
	if !listsChanges(res.Plan) {
		t.Fatal("the whole plan has changes")
	}
	if err := narrowPlan(res, []string{"api", "web"}); err != nil {
		t.Fatal(err)
	}
	if listsChanges(res.Plan) || res.Plan.HasChanges() {
		t.Error("api and web are converged")
	}
	res = planFixture()
	if err := narrowPlan(res, []string{"web", "zeta"}); err != nil {
		t.Fatal(err)
	}
	if !listsChanges(res.Plan) || !res.Plan.HasChanges() {
		t.Error("zeta is to be created")
	}
}

// TestGetAndDiffTakeInstanceNames: both commands accept instance names
// (diff refused any argument).
func TestGetAndDiffTakeInstanceNames(t *testing.T) {
	a := &app{}
	for _, cmd := range []interface {
		ValidateArgs([]string) error
		Name() string
	}{newGetCommand(a), newDiffCommand(a)} {
		if err := cmd.ValidateArgs([]string{"web", "api"}); err != nil {
			t.Errorf("%s web api: %v", cmd.Name(), err)
		}
	}
	for _, verb := range []string{"get", "diff"} {
		out, _, _ := runInProcess(t, "", verb, "--help")
		if !strings.Contains(out, "[INSTANCE...]") {
			t.Errorf("%s --help does not name INSTANCE:\n%s", verb, out)
		}
	}
}
