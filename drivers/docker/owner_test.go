package docker

import (
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/drivers"
)

func TestReuseByNameNeedsTheSameInstanceAndComponent(t *testing.T) {
	labels := func(inst, comp string) map[string]string {
		return map[string]string{drivers.LabelManagedBy: drivers.ManagedByValue, drivers.LabelFleet: "f", drivers.LabelInstance: inst, drivers.LabelComponent: comp}
	}
	// Instance "web-out" wants its network jk-f-web-out, which is the
	// outbound bridge of instance "web": never reuse it.
	want := drivers.Resource{Kind: drivers.KindNetwork, Name: "jk-f-web-out", Labels: labels("web-out", drivers.ComponentNetwork)}
	if owner := ownerOfResource(labels("web", "egress-out"), "f", want); !strings.Contains(owner, `instance "web"`) {
		t.Fatalf("another instance's network was taken for reuse (owner %q)", owner)
	}
	if owner := ownerOfResource(labels("web-out", drivers.ComponentNetwork), "f", want); owner != "" {
		t.Fatalf("the instance's own network was refused: %q", owner)
	}
	if owner := ownerOfResource(labels("web-out", drivers.ComponentNetwork), "g", want); owner != "fleet f" {
		t.Fatalf("another fleet's object: %q", owner)
	}
}
