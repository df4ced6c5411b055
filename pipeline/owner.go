package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/store"
)

// ManifestIdentity names where a manifest lives, for fleet ownership: the
// directories holding its files (or given as -f), sorted. A directory
// rather than a file, so "-f ." and "-f fleet.cue" are one manifest, and a
// file added beside it changes nothing; "<stdin>" for -f -.
func ManifestIdentity(sources []string) string {
	seen := map[string]bool{}
	var out []string
	for _, f := range sources {
		id := "<stdin>"
		if f != "-" && f != "<stdin>" {
			if abs, err := filepath.Abs(f); err == nil {
				f = abs
			}
			if real, err := filepath.EvalSymlinks(f); err == nil {
				f = real // one manifest under every spelling of its path
			}
			id = filepath.Clean(f)
			if st, err := os.Stat(id); err != nil || !st.IsDir() {
				id = filepath.Dir(id) // a file: its directory
			}
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// Own checks that the manifest may manage the fleet: a fleet name belongs
// to the manifest it was first applied from (recorded in the store, and as
// labels on its objects, which another state dir's jackin sees too). A
// second manifest with the same name is refused with both named
// (*reconciler.OwnershipError) unless adopt. On success every desired
// object is labelled with the owner, and a first claim or an adoption is
// recorded.
func (e Env) Own(ctx context.Context, fleet, manifest string, adopt bool, observed reconciler.Observations, d *reconciler.Desired) (reconciler.Owner, error) {
	var recorded *reconciler.Owner
	if e.Store != nil {
		o, err := e.Store.FleetOwner(ctx, fleet)
		if err != nil {
			return reconciler.Owner{}, err
		}
		if o != nil {
			recorded = &reconciler.Owner{ID: o.ID, Manifest: o.Manifest}
		}
	}
	merged := &drivers.Observed{}
	for _, b := range sortedKeys(observed) {
		o := observed[b]
		merged.Containers = append(merged.Containers, o.Containers...)
		merged.Networks = append(merged.Networks, o.Networks...)
		merged.Volumes = append(merged.Volumes, o.Volumes...)
	}
	owner, record, err := reconciler.ResolveOwner(fleet, manifest, recorded, merged, adopt)
	if err != nil {
		return reconciler.Owner{}, err
	}
	if d != nil {
		d.SetOwner(owner)
	}
	if record && e.Store != nil {
		if err := e.Store.ClaimFleet(ctx, store.FleetOwner{Fleet: fleet, ID: owner.ID, Manifest: owner.Manifest}); err != nil {
			return reconciler.Owner{}, err
		}
		if recorded != nil || adopt {
			e.Log.Info("fleet adopted", "fleet", fleet, "manifest", manifest)
		}
	}
	return owner, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
