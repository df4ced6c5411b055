package reconciler_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/orbstack"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/supervisor"
)

// stubSupervisorBinary replaces the supervisor binary's install for the
// test: it records the directories installed into and returns err.
func stubSupervisorBinary(t *testing.T, err error) func() []string {
	t.Helper()
	var mu sync.Mutex
	var dirs []string
	orig := reconciler.InstallSupervisorBinary
	reconciler.InstallSupervisorBinary = func(dir string) (func() error, error) {
		mu.Lock()
		defer mu.Unlock()
		dirs = append(dirs, dir)
		return func() error { return nil }, err
	}
	t.Cleanup(func() { reconciler.InstallSupervisorBinary = orig })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(dirs)
	}
}

// TestAgentIsPreparedOnCreateAndStart: a create installs the supervisor's
// binary and makes the agent directory (writable by any user, sticky); a
// start makes a removed agent directory again; a delete removes it and the
// runtime-home volume.
func TestAgentIsPreparedOnCreateAndStart(t *testing.T) {
	installed := stubSupervisorBinary(t, nil)
	state := t.TempDir()
	f := fleetOf("web")
	f.StateDir = state
	drv := newDriver()
	apply(t, drv, f, nil)
	if got, want := installed(), []string{reconciler.SupervisorBinDir(state)}; !slices.Equal(got, want) {
		t.Fatalf("binary installed into %q, want %q", got, want)
	}
	dir := supervisor.HostDir(state, "demo", "web")
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 {
		t.Fatalf("agent directory %s: %v (%v), want a sticky directory writable by any user", dir, fi, err)
	}
	if _, ok := drv.Object(drivers.KindVolume, reconciler.HomeVolumeName("demo", "web")); !ok {
		t.Fatal("the runtime-home volume was not created")
	}

	mustDo(t, os.RemoveAll(dir))
	mustDo(t, drv.Kill(name("web")))
	_, results := execute(t, drv, f, nil, reconciler.ExecOptions{})
	if len(results) != 1 || results[0].Action.Type != reconciler.ActionStart || results[0].Outcome != reconciler.OutcomeSucceeded {
		t.Fatalf("start: %+v", results)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the start did not make the agent directory again: %v", err)
	}

	empty := fleetOf()
	empty.StateDir = state
	_, results = execute(t, drv, empty, nil, reconciler.ExecOptions{StateDir: state})
	if len(results) != 1 || results[0].Action.Type != reconciler.ActionDelete || results[0].Outcome != reconciler.OutcomeSucceeded {
		t.Fatalf("delete: %+v", results)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the delete left the agent directory: %v", err)
	}
	if objs := drv.Objects(); len(objs) != 0 {
		t.Fatalf("left behind: %+v", objs)
	}
}

// TestAFailedSupervisorInstallCreatesNothing: the agent is prepared before
// any object is created.
func TestAFailedSupervisorInstallCreatesNothing(t *testing.T) {
	stubSupervisorBinary(t, errors.New("no static binary"))
	f := fleetOf("web")
	f.StateDir = t.TempDir()
	drv := newDriver()
	_, results := execute(t, drv, f, nil, reconciler.ExecOptions{})
	if len(results) != 1 || results[0].Outcome != reconciler.OutcomeFailed {
		t.Fatalf("want the create to fail, got %+v", results)
	}
	if hasCall(drv.CallLog(), "Create") || len(drv.Objects()) != 0 {
		t.Fatalf("objects were created: %q", drv.CallLog())
	}
}

// TestAnInstanceFromBeforeTheSupervisorGetsItsHomeVolume: an instance
// applied by a jackin without the supervisor (spec format 1, no runtime-home
// volume) is recreated, and the recreate creates the volume, labelled, so a
// later delete removes it.
func TestAnInstanceFromBeforeTheSupervisorGetsItsHomeVolume(t *testing.T) {
	f := fleetOf("web")
	drv, last := applied(t, f)
	home := reconciler.HomeVolumeName("demo", "web")
	v, _ := drv.Object(drivers.KindVolume, home)
	mustDo(t, drv.Remove(t.Context(), drivers.KindVolume, v.ID))
	old := last["web"]
	old.FormatVersion, old.Run = 1, reconciler.SpecRun{}
	h, err := reconciler.HashSpec(old)
	mustDo(t, err)
	mustDo(t, drv.SetLabel(drivers.KindContainer, name("web"), drivers.LabelSpecHash, h))
	mustDo(t, drv.SetLabel(drivers.KindNetwork, name("web"), drivers.LabelSpecHash, h))
	last["web"] = old
	drv.ResetCalls()
	p, results := execute(t, drv, f, last, reconciler.ExecOptions{})
	if len(results) != 1 || results[0].Action.Type != reconciler.ActionRecreate || results[0].Outcome != reconciler.OutcomeSucceeded {
		t.Fatalf("results %+v", results)
	}
	if !slices.Contains(p.Actions[0].Reasons, fmt.Sprintf("spec format version changed: 1 → %d", reconciler.SpecFormatVersion)) {
		t.Errorf("reasons %q", p.Actions[0].Reasons)
	}
	if !hasCall(drv.CallLog(), "Create volume "+home) {
		t.Fatalf("the recreate did not create the runtime-home volume: %q", drv.CallLog())
	}
	if vol, ok := drv.Object(drivers.KindVolume, home); !ok || vol.Labels[drivers.LabelComponent] != drivers.ComponentHome {
		t.Fatalf("runtime-home volume %+v (found %v)", vol, ok)
	}
	empty := fleetOf()
	execute(t, drv, empty, nil, reconciler.ExecOptions{})
	if objs := drv.Objects(); len(objs) != 0 {
		t.Fatalf("left behind: %+v", objs)
	}
}

// TestOrbStackSupervisorCopyIsTheInstances: an OrbStack instance's machine
// shares a supervisor directory of its own, never the one every other
// agent container runs (a machine's share is writable from inside it);
// deleting the instance removes that copy.
func TestOrbStackSupervisorCopyIsTheInstances(t *testing.T) {
	stubSupervisorBinary(t, nil)
	state := t.TempDir()
	f := with(fleetOf("web"), "box", func(in *schema.Instance) {
		in.Backend = schema.BackendOrbStack
		in.OrbStack = &schema.OrbStack{Distro: schema.DefaultOrbDistro, BlockHostNetwork: true, SSHAgent: schema.OrbSSHAgentOff}
	})
	f.StateDir = state
	d := desired(t, f)
	web, box := d.Instance("web"), d.Instance("box")
	if web.Agent.BinDir != reconciler.SupervisorBinDir(state) {
		t.Errorf("docker instance's supervisor from %s, want the shared %s", web.Agent.BinDir, reconciler.SupervisorBinDir(state))
	}
	own := reconciler.MachineSupervisorBinDir(state, "demo", "box")
	if box.Agent.BinDir != own {
		t.Errorf("orbstack instance's supervisor from %s, want its own %s", box.Agent.BinDir, own)
	}
	for _, s := range orbstack.Shares(box.Resources) {
		if s.Path == reconciler.SupervisorBinDir(state) || !strings.Contains(s.Path, string(filepath.Separator)+"box") {
			t.Errorf("the machine shares %s, which is not the instance's own", s.Path)
		}
	}
	if err := os.MkdirAll(own, 0o755); err != nil {
		t.Fatal(err)
	}
	// Left by an earlier removal the machine wrote into meanwhile.
	leftover := filepath.Join(filepath.Dir(reconciler.MachineDir(state, "demo", "box")), ".removed-box-123", "x")
	if err := os.MkdirAll(leftover, 0o755); err != nil {
		t.Fatal(err)
	}
	reconciler.RemoveMachineFiles(state, "demo", "box")
	if _, err := os.Stat(filepath.Join(state, "machines", "demo")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("delete left the machine's files: %v", err)
	}
}

// An OrbStack instance whose spec predates its machine's own supervisor
// copy is planned for a recreate that says why, and how to remake it.
func TestOrbStackSpecBeforeTheMachineCopyIsAChange(t *testing.T) {
	box := func(in *schema.Instance) {
		in.Backend = schema.BackendOrbStack
		in.OrbStack = &schema.OrbStack{Distro: schema.DefaultOrbDistro, BlockHostNetwork: true, SSHAgent: schema.OrbSSHAgentOff}
	}
	d := desired(t, with(fleetOf(), "box", box))
	cur := d.Instance("box").Spec
	if cur.SupervisorCopy != reconciler.SupervisorCopyMachine {
		t.Fatalf("orbstack spec %+v", cur)
	}
	old := cur
	old.SupervisorCopy = ""
	cs := reconciler.CompareSpecs(old, cur)
	if !cs.Has(reconciler.FieldOrbStack) || !strings.Contains(strings.Join(cs.Reasons(), " "), "delete the instance (jackin delete) and apply it again") {
		t.Errorf("changes %+v", cs)
	}
	if web := desired(t, fleetOf("web")).Instance("web").Spec; web.SupervisorCopy != "" {
		t.Errorf("a docker instance's spec changed: %+v", web)
	}
}
