package main

import (
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/drivers"
)

// TestDeleteAndKeptCheckoutVolumes: an instance of which only a cloned
// checkout's volume is left is not "no instance" without a word: delete
// names the volume and --purge; delete --purge plans its removal.
func TestDeleteAndKeptCheckoutVolumes(t *testing.T) {
	obs := &drivers.Observed{Volumes: []drivers.ObservedResource{{Kind: drivers.KindVolume, ID: "v1", Name: "jk-f-c-src-git", Labels: map[string]string{
		drivers.LabelManagedBy: drivers.ManagedByValue, drivers.LabelFleet: "f", drivers.LabelInstance: "c", drivers.LabelComponent: drivers.ComponentCheckout,
	}}}}
	a := &app{}
	a.global.stateDir = t.TempDir()
	if _, _, err := a.deletePlan("f", obs, []string{"c"}, false); err == nil || !strings.Contains(err.Error(), "c's jk-f-c-src-git") || !strings.Contains(err.Error(), "jackin delete --purge removes them") {
		t.Errorf("delete of a checkout-only instance: %v", err)
	}
	p, only, err := a.deletePlan("f", obs, []string{"c"}, true)
	if err != nil || len(only) != 0 || len(p.Actions) != 1 || !p.Actions[0].Purge || p.Actions[0].Instance != "c" {
		t.Fatalf("delete --purge: plan %+v, purge-only %v, err %v", p, only, err)
	}
	if _, _, err := a.deletePlan("f", obs, []string{"nope"}, true); err == nil || !strings.Contains(err.Error(), `no instance named "nope"`) {
		t.Errorf("delete --purge of an unknown instance: %v", err)
	}
}
