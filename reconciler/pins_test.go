package reconciler_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
	ctr := d.Instance("web").Resources[1].Container
	if len(ctr.Mounts) != 1 || ctr.Mounts[0].Source != real || ctr.Mounts[0].Pin == nil {
		t.Fatalf("want the resolved, pinned source %s, got %+v", real, ctr.Mounts)
	}
}
