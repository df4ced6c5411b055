package contract

import (
	"bytes"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/schema"
)

// TestKubernetesBoundary: a kubernetes instance's contract names its
// namespace, who reads its Secrets, the shared node kernel, attach/exec
// through the API server, and how egress is enforced: refused where not
// enforced, or said NOT enforced with allowUnenforcedPolicy.
func TestKubernetesBoundary(t *testing.T) {
	k := func(allow bool, egress string) schema.Instance {
		return instance(func(in *schema.Instance) {
			in.Backend = schema.BackendKubernetes
			in.Kubernetes = &schema.Kubernetes{Namespace: "agents", AllowUnenforcedPolicy: allow}
			in.Network.Egress = egress
		})
	}
	f := fleetOf("edge", map[string]schema.Instance{
		"strict": k(false, schema.EgressNone),
		"loose":  k(true, schema.EgressNone),
		"open":   k(false, schema.EgressOpen),
		"d":      instance(func(in *schema.Instance) {}),
	})
	doc, err := Build(f, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]Contract{}
	for _, c := range doc.Instances {
		by[c.Instance] = c
	}
	if by["d"].Sandbox.Cluster != nil {
		t.Errorf("docker instance has a cluster")
	}
	c := by["strict"].Sandbox.Cluster
	if c == nil {
		t.Fatal("kubernetes instance has no cluster in its contract")
	}
	if c.Namespace != "agents" || !strings.Contains(c.SecretsReadableBy, "get on secrets in namespace agents") ||
		!strings.Contains(c.Kernel, "node's kernel") || !strings.Contains(c.Access, "pods/exec") {
		t.Errorf("cluster %+v", c)
	}
	if !strings.Contains(c.Egress, "refused where the probe finds NetworkPolicy not enforced") {
		t.Errorf("strict egress %q", c.Egress)
	}
	if e := by["loose"].Sandbox.Cluster.Egress; !strings.Contains(e, "NOT enforced") {
		t.Errorf("allowUnenforcedPolicy egress %q", e)
	}
	if e := by["open"].Sandbox.Cluster.Egress; !strings.HasPrefix(e, "not limited") {
		t.Errorf("open egress %q", e)
	}
	risky := false
	for _, r := range by["strict"].ResidualRisk {
		risky = risky || r.ID == RiskKubernetesCluster
	}
	if !risky {
		t.Errorf("no %s risk: %+v", RiskKubernetesCluster, by["strict"].ResidualRisk)
	}
	var buf bytes.Buffer
	if err := WriteText(&buf, doc); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"namespace", "egress enforcement", "Secrets readable by", "attach/exec"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("text lacks %q", want)
		}
	}
}
