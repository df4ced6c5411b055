package manifests

import (
	"testing"

	"github.com/jackin-dev/jackin/schema"
)

// TestKubernetesPlacement: a kubernetes instance gets its namespace and
// context (defaults merged field by field); a docker instance has none.
func TestKubernetesPlacement(t *testing.T) {
	fx := newFixture(t, map[string]string{"f.cue": fleetHead +
		"defaults: kubernetes: {namespace: \"agents\", context: \"lab\"}\n" +
		"instances: {\n" +
		"  a: {role: image: \"x\", backend: \"kubernetes\", mounts: [{dst: \"/work\", mode: \"ephemeral\"}, {dst: \"/scratch\", mode: \"tmpfs\"}]}\n" +
		"  b: {role: image: \"x\", backend: \"kubernetes\", kubernetes: {namespace: \"other\", allowUnenforcedPolicy: true}}\n" +
		"  c: {role: image: \"x\"}\n" +
		"}\n"})
	f := fx.mustLoad(t, "f.cue")
	a, b, c := f.Instances["a"], f.Instances["b"], f.Instances["c"]
	if a.Backend != schema.BackendKubernetes || a.Kubernetes == nil || *a.Kubernetes != (schema.Kubernetes{Context: "lab", Namespace: "agents"}) {
		t.Fatalf("a: backend %q kubernetes %+v", a.Backend, a.Kubernetes)
	}
	if *b.Kubernetes != (schema.Kubernetes{Context: "lab", Namespace: "other", AllowUnenforcedPolicy: true}) {
		t.Errorf("b: %+v", *b.Kubernetes)
	}
	if c.Kubernetes != nil {
		t.Errorf("c: kubernetes %+v on a docker instance", c.Kubernetes)
	}
}

// TestKubernetesRefusals: host paths (the operator's files are not on a
// node), features that need this machine's files, and misplaced settings,
// each at its file, line and field.
func TestKubernetesRefusals(t *testing.T) {
	k := "backend: \"kubernetes\", kubernetes: namespace: \"agents\", "
	cases := []struct{ name, src, path, want string }{
		{"kubernetes on a docker instance", inst("«kubernetes: namespace: \"x\""), "instances.a.kubernetes",
			`kubernetes configures where a Kubernetes instance runs, and this instance has backend: "docker"`},
		{"no namespace", inst("«backend: \"kubernetes\""), "instances.a.backend",
			`backend "kubernetes" needs kubernetes.namespace`},
		{"bad namespace", inst("backend: \"kubernetes\", kubernetes: «namespace: \"Not_OK\""), "instances.a.kubernetes.namespace",
			`invalid value "Not_OK"`},
		{"host path", inst(k + "mounts: [{«src: \"/etc\", dst: \"/x\", mode: \"ro\"}]"), "instances.a.mounts[0].src",
			`a ro mount of a host path cannot run on backend "kubernetes": the operator's files are not on the cluster's nodes`},
		{"worktree", inst(k + "mounts: [{«src: \".\", dst: \"/x\", mode: \"worktree\"}]"), "instances.a.mounts[0].src",
			`a worktree mount cannot run on backend "kubernetes"`},
		{"seeded ephemeral", inst(k + "mounts: [{«src: \".\", dst: \"/x\", mode: \"ephemeral\"}]"), "instances.a.mounts[0].src",
			`an ephemeral mount's src is copied from this machine`},
		{"private docker", inst(k + "«docker: \"private\""), "instances.a.docker",
			`docker: "private" needs a privileged daemon container`},
		{"ports", inst(k + "network: «ports: [{container: 80}]"), "instances.a.network.ports",
			`publishes no host ports`},
		{"idle cleanup", inst(k + "«idle: {after: \"5m\", action: \"stop\"}"), "instances.a.idle",
			`idle cleanup is not available with backend "kubernetes" yet`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fx := newFixture(t, map[string]string{"f.cue": c.src})
			_, diags := fx.load(t, fx.opts(), "f.cue")
			if len(diags) == 0 {
				t.Fatal("manifest accepted")
			}
			expect(t, diags, fx.where, c.path, c.want)
		})
	}
}
