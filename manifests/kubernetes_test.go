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

// TestKubernetesCheckouts: a worktree or clone mount on Kubernetes takes
// a git URL (the Pod clones it), kept as written, with its ref; an
// allowlist that allows the host lets it through the proxy.
func TestKubernetesCheckouts(t *testing.T) {
	fx := newFixture(t, map[string]string{"f.cue": fleetHead +
		"defaults: {backend: \"kubernetes\", kubernetes: namespace: \"agents\"}\n" +
		"instances: {\n" +
		"  a: {role: image: \"x\", mounts: [{src: \"https://git.example/team/app.git\", dst: \"/work\", mode: \"worktree\", ref: \"v2\"}, {src: \"git@git.example:team/lib.git\", dst: \"/lib\", mode: \"clone\"}]}\n" +
		"  b: {role: image: \"x\", network: {egress: \"allowlist\", allow: [\"git.example\"]}, mounts: [{src: \"https://git.example/team/app.git\", dst: \"/work\", mode: \"clone\"}]}\n" +
		"}\n"})
	f := fx.mustLoad(t, "f.cue")
	a := f.Instances["a"].Mounts
	if len(a) != 2 || a[0] != (schema.Mount{Src: "https://git.example/team/app.git", Dst: "/work", Mode: schema.MountWorktree, Ref: "v2"}) ||
		a[1] != (schema.Mount{Src: "git@git.example:team/lib.git", Dst: "/lib", Mode: schema.MountClone}) {
		t.Errorf("a's mounts %+v", a)
	}
	if b := f.Instances["b"].Mounts; len(b) != 1 || b[0].Src != "https://git.example/team/app.git" {
		t.Errorf("b's mounts %+v", b)
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
		{"worktree of a local path", inst(k + "mounts: [{«src: \".\", dst: \"/x\", mode: \"worktree\"}]"), "instances.a.mounts[0].src",
			`on backend "kubernetes" a worktree mount clones a git URL into a claim inside the Pod (this machine's repositories are not on the cluster's nodes): "." is not a git URL`},
		{"clone URL with a token", inst(k + "mounts: [{«src: \"https://bot:s3cret@git.example/r.git\", dst: \"/x\", mode: \"clone\"}]"), "instances.a.mounts[0].src",
			`a https URL with credentials in it`},
		{"clone over file", inst(k + "mounts: [{«src: \"file:///srv/r.git\", dst: \"/x\", mode: \"clone\"}]"), "instances.a.mounts[0].src",
			`a checkout clones over https, http, ssh or git, not file`},
		{"clone without network", inst(k + "network: egress: \"none\", mounts: [{«src: \"https://git.example/r.git\", dst: \"/x\", mode: \"clone\"}]"), "instances.a.mounts[0].src",
			`egress "none" gives it no network`},
		{"clone of a host the allowlist lacks", inst(k + "network: {egress: \"allowlist\", allow: [\"pypi.org\"]}, mounts: [{«src: \"https://git.example/r.git\", dst: \"/x\", mode: \"clone\"}]"), "instances.a.mounts[0].src",
			`the allowlist does not let it (no rule allows git.example:443): add git.example to network.allow`},
		{"clone over ssh behind the proxy", inst(k + "network: {egress: \"allowlist\", allow: [\"git.example\"]}, mounts: [{«src: \"git@git.example:r.git\", dst: \"/x\", mode: \"clone\"}]"), "instances.a.mounts[0].src",
			`over ssh, and under egress "allowlist" it goes out only through the egress proxy, which carries http and https`},
		{"seeded ephemeral", inst(k + "mounts: [{«src: \".\", dst: \"/x\", mode: \"ephemeral\"}]"), "instances.a.mounts[0].src",
			`an ephemeral mount's src is copied from this machine`},
		{"private docker by capabilities", inst(k + "docker: \"private\", dockerDaemon: «privilege: \"capabilities\""), "instances.a.dockerDaemon.privilege",
			`privilege "capabilities" binds the host's /sys/fs/cgroup and sets a device cgroup rule, which backend "kubernetes" cannot render`},
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
