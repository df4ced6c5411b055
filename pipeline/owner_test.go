package pipeline_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/reconciler"
)

func TestManifestIdentityIsTheDirectory(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "fleet.cue")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, given := range [][]string{{dir}, {f}, {f, filepath.Join(dir, "more.cue")}} {
		if got := pipeline.ManifestIdentity(given); got != dir {
			t.Errorf("ManifestIdentity(%v) = %q, want %q", given, got, dir)
		}
	}
	if got := pipeline.ManifestIdentity([]string{"-"}); got != "<stdin>" {
		t.Errorf("stdin: %q", got)
	}
}

// TestOwnRecordsAndRefuses: the first manifest claims the name and labels
// what it creates; a second is refused until it adopts.
func TestOwnRecordsAndRefuses(t *testing.T) {
	drv := newBackend()
	env := newEnv(t, drv)
	f := fleetWith(env.StateDir, nil)
	res, err := env.Plan(t.Context(), f, reconciler.PlanOptions{Prune: true}, true)
	if err != nil {
		t.Fatal(err)
	}
	owner, err := env.Own(t.Context(), "demo", "/a", false, res.Observed, res.Desired)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Apply(t.Context(), res, pipeline.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	o, ok := drv.Object(drivers.KindContainer, "jk-demo-web")
	if !ok || o.Labels[drivers.LabelFleetID] != owner.ID || o.Labels[drivers.LabelManifest] != "/a" {
		t.Fatalf("the agent is not labelled with its owner: %+v", o.Labels)
	}
	res, _ = env.Plan(t.Context(), f, reconciler.PlanOptions{Prune: true}, true)
	var oe *reconciler.OwnershipError
	if _, err := env.Own(t.Context(), "demo", "/b", false, res.Observed, res.Desired); !errors.As(err, &oe) || oe.Owner != "/a" {
		t.Fatalf("a second manifest: %v, want a refusal naming /a", err)
	}
	if adopted, err := env.Own(t.Context(), "demo", "/b", true, res.Observed, res.Desired); err != nil || adopted.ID != owner.ID {
		t.Fatalf("adoption: %+v, %v", adopted, err)
	}
	rec, err := env.Store.FleetOwner(t.Context(), "demo")
	if err != nil || rec == nil || rec.Manifest != "/b" {
		t.Fatalf("the adoption is not recorded: %+v, %v", rec, err)
	}
}
