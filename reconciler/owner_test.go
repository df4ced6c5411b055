package reconciler_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/reconciler"
)

func ownedBy(id, manifest string) *drivers.Observed {
	return &drivers.Observed{Containers: []drivers.ObservedResource{{Kind: drivers.KindContainer, Name: "jk-demo-web",
		Labels: map[string]string{drivers.LabelFleetID: id, drivers.LabelManifest: manifest}}}}
}

func TestResolveOwner(t *testing.T) {
	const a, b = "/home/ann/one/fleet.cue", "/home/ann/two/fleet.cue"
	legacy := &drivers.Observed{Containers: []drivers.ObservedResource{{Kind: drivers.KindContainer, Name: "jk-demo-web", Labels: map[string]string{}}}}
	cases := []struct {
		name     string
		manifest string
		recorded *reconciler.Owner
		observed *drivers.Observed
		adopt    bool
		wantID   string // "new" for a fresh one
		record   bool
		refused  string // the owning manifest the error names
	}{
		{name: "first apply", manifest: a, wantID: "new", record: true},
		{name: "objects of an earlier jackin claim nothing", manifest: a, observed: legacy, wantID: "new", record: true},
		{name: "same manifest again", manifest: a, recorded: &reconciler.Owner{ID: "f1", Manifest: a}, observed: ownedBy("f1", a), wantID: "f1"},
		{name: "another manifest, same name", manifest: b, recorded: &reconciler.Owner{ID: "f1", Manifest: a}, observed: ownedBy("f1", a), refused: a},
		{name: "another manifest adopts", manifest: b, recorded: &reconciler.Owner{ID: "f1", Manifest: a}, observed: ownedBy("f1", a), adopt: true, wantID: "f1", record: true},
		{name: "another state dir's owner on the engine", manifest: b, observed: ownedBy("f9", a), refused: a},
		{name: "another state dir's owner, adopted", manifest: b, observed: ownedBy("f9", a), adopt: true, wantID: "f9", record: true},
		{name: "the same manifest from another state dir", manifest: a, observed: ownedBy("f9", a), wantID: "f9", record: true},
		{name: "the engine names another owner than the record", manifest: a, recorded: &reconciler.Owner{ID: "f1", Manifest: a}, observed: ownedBy("f9", b), refused: b},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, record, err := reconciler.ResolveOwner("demo", tc.manifest, tc.recorded, tc.observed, tc.adopt)
			if tc.refused != "" {
				var oe *reconciler.OwnershipError
				if !errors.As(err, &oe) || oe.Owner != tc.refused || oe.This != tc.manifest {
					t.Fatalf("want a refusal naming %s and %s, got %v", tc.refused, tc.manifest, err)
				}
				if !strings.Contains(err.Error(), "--adopt") {
					t.Errorf("the refusal does not say how to adopt: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantID == "new" {
				if len(o.ID) != 16 {
					t.Errorf("want a fresh ID, got %q", o.ID)
				}
			} else if o.ID != tc.wantID {
				t.Errorf("ID %q, want %q", o.ID, tc.wantID)
			}
			if o.Manifest != tc.manifest || record != tc.record {
				t.Errorf("owner %+v record %v, want manifest %s record %v", o, record, tc.manifest, tc.record)
			}
		})
	}
}

func TestSetOwnerLabelsEveryObjectButNotTheHash(t *testing.T) {
	f := fleetOf("web")
	d := desired(t, f)
	hash := d.Instances[0].Hash
	d.SetOwner(reconciler.Owner{ID: "f1", Manifest: "/m/fleet.cue"})
	for _, r := range d.Instances[0].Resources {
		if r.Labels[drivers.LabelFleetID] != "f1" || r.Labels[drivers.LabelManifest] != "/m/fleet.cue" {
			t.Errorf("%s %s labels %v", r.Kind, r.Name, r.Labels)
		}
	}
	if d.Instances[0].Hash != hash || desired(t, f).Instances[0].Hash != hash {
		t.Fatal("the owner changed the spec hash")
	}
}
