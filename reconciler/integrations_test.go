package reconciler

import (
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/schema"
)

// TestIntegrationsInTheSpec: active integrations are in the spec (an
// approved recommendation with its file), inactive ones are not, an
// instance without any hashes as before, and a newly approved one is a
// recreate reason that says so.
func TestIntegrationsInTheSpec(t *testing.T) {
	base := schema.Instance{Name: "a", Backend: "docker", Agent: "shell", Network: schema.Network{Egress: "open"}}
	plain, err := canonicalSpec(base, "img")
	if err != nil {
		t.Fatal(err)
	}
	inactive := base
	inactive.IntegrationUses = []schema.IntegrationUse{{Name: "rust", Source: "/r/.jackin/integrations.yaml", Inactive: "not approved"}}
	sp, _ := canonicalSpec(inactive, "img")
	h1, _ := HashSpec(plain)
	h2, _ := HashSpec(sp)
	if h1 != h2 || sp.Integrations != nil {
		t.Fatalf("an inactive recommendation changed the spec: %v", sp.Integrations)
	}
	approved := base
	approved.IntegrationUses = []schema.IntegrationUse{{Name: "go", Source: "manifest", Active: true}, {Name: "rust", Source: "/r/.jackin/integrations.yaml", Active: true}}
	sa, _ := canonicalSpec(approved, "img")
	if strings.Join(sa.Integrations, ";") != "go;rust (approved /r/.jackin/integrations.yaml)" {
		t.Fatalf("spec integrations: %v", sa.Integrations)
	}
	reasons := DiffSpecs(plain, sa)
	if len(reasons) != 1 || reasons[0] != "integrations changed: + go, + rust (newly approved: /r/.jackin/integrations.yaml)" {
		t.Fatalf("reasons: %v", reasons)
	}
}
