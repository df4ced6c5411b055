package reconciler

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/jackin-dev/jackin/drivers"
)

// Owner is who manages a fleet name: the fleet's ID, carried as a label by
// every object of the fleet, and the manifest it is applied from.
type Owner struct {
	ID       string
	Manifest string
}

// OwnershipError refuses a manifest that would take over a fleet name
// another manifest owns.
type OwnershipError struct {
	Fleet string
	Owner string // the owning manifest
	This  string // the manifest that was refused
}

func (e *OwnershipError) Error() string {
	return fmt.Sprintf("fleet %q belongs to the manifest %s (it was applied from there); this manifest is %s. Two manifests with one fleet name would take over, and garbage-collect, each other's instances: rename one of the fleets, or pass --adopt to make %s the owner",
		e.Fleet, e.Owner, e.This, e.This)
}

// NewFleetID is a fresh random fleet ID.
func NewFleetID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ResolveOwner decides whether the manifest at manifest may manage fleet,
// from the owner this state dir recorded (nil: none) and the ownership
// labels of the objects observed on the backend (which another state dir's
// jackin may have set). It returns the owner to label new objects with,
// and whether that owner must be recorded (a first claim, or an adoption).
// Objects without ownership labels (made by an earlier jackin) claim
// nothing. With adopt, a manifest takes the fleet over, keeping its ID.
func ResolveOwner(fleet, manifest string, recorded *Owner, observed *drivers.Observed, adopt bool) (Owner, bool, error) {
	labelled := labelledOwner(observed)
	switch {
	case recorded != nil && labelled != nil && labelled.ID != recorded.ID:
		// Another state dir's jackin claimed the name on this backend.
		if labelled.Manifest != manifest && !adopt {
			return Owner{}, false, &OwnershipError{Fleet: fleet, Owner: labelled.Manifest, This: manifest}
		}
		return Owner{ID: labelled.ID, Manifest: manifest}, true, nil
	case recorded != nil:
		if recorded.Manifest != manifest && !adopt {
			return Owner{}, false, &OwnershipError{Fleet: fleet, Owner: recorded.Manifest, This: manifest}
		}
		return Owner{ID: recorded.ID, Manifest: manifest}, recorded.Manifest != manifest, nil
	case labelled != nil:
		if labelled.Manifest != manifest && !adopt {
			return Owner{}, false, &OwnershipError{Fleet: fleet, Owner: labelled.Manifest, This: manifest}
		}
		return Owner{ID: labelled.ID, Manifest: manifest}, true, nil
	}
	return Owner{ID: NewFleetID(), Manifest: manifest}, true, nil
}

// labelledOwner is the owner the observed objects name: containers first,
// as they are replaced most often and so carry the newest labels.
func labelledOwner(obs *drivers.Observed) *Owner {
	if obs == nil {
		return nil
	}
	for _, list := range [][]drivers.ObservedResource{obs.Containers, obs.Networks, obs.Volumes} {
		for _, o := range list {
			if id := o.Labels[drivers.LabelFleetID]; id != "" {
				return &Owner{ID: id, Manifest: o.Labels[drivers.LabelManifest]}
			}
		}
	}
	return nil
}

// SetOwner labels every resource of the desired state with the fleet's
// owner. The labels are not part of the spec hash: an object made before
// ownership was recorded is not recreated for them.
func (d *Desired) SetOwner(o Owner) {
	for i := range d.Instances {
		for j := range d.Instances[i].Resources {
			r := &d.Instances[i].Resources[j]
			if r.Labels == nil {
				r.Labels = map[string]string{}
			}
			r.Labels[drivers.LabelFleetID] = o.ID
			r.Labels[drivers.LabelManifest] = o.Manifest
		}
	}
}
