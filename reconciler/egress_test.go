package reconciler_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/fake"
	"github.com/jackin-dev/jackin/egress"
	"github.com/jackin-dev/jackin/linuxexe"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// sidecarRef is the egress sidecar image in tests: the real one is a hash
// of the test binary, which would change every golden plan.
const sidecarRef = "jackin-sidecar:0123456789abcdef"

func init() {
	reconciler.SidecarImage = func(string) (drivers.ImageSpec, error) {
		return drivers.ImageSpec{Ref: sidecarRef}, nil
	}
}

func allowlisted(in *schema.Instance) {
	in.Agent = schema.AgentClaude
	in.Network = schema.Network{Egress: schema.EgressAllowlist, Allow: []string{"@agent", "example.com:8443"},
		Ports: []schema.Port{{Container: 3000, Host: 13000, Address: "127.0.0.1", Protocol: "tcp"}}}
}

func resources(in *reconciler.DesiredInstance) map[string]drivers.Resource {
	out := map[string]drivers.Resource{}
	for _, r := range in.Resources {
		out[string(r.Kind)+" "+r.Name] = r
	}
	return out
}

func TestDesiredAllowlist(t *testing.T) {
	f := with(fleetOf(), "web", allowlisted)
	f.StateDir = t.TempDir()
	d := desired(t, f)
	in := d.Instance("web")
	var order []string
	for _, r := range in.Resources {
		order = append(order, string(r.Kind)+" "+r.Name)
	}
	want := []string{"network jk-demo-web", "network jk-demo-web-out", "volume jk-demo-web-home", "container jk-demo-web", "container jk-demo-web-egress"}
	if !slices.Equal(order, want) {
		t.Fatalf("resources: got %v, want %v", order, want)
	}
	rs := resources(in)
	if n := rs["network jk-demo-web"]; !n.Network.Internal || n.Labels[drivers.LabelInternal] != "true" {
		t.Errorf("the agent's network must be internal: %+v", n)
	}
	if n := rs["network jk-demo-web-out"]; n.Network.Internal {
		t.Errorf("the outbound network must not be internal")
	}
	agent := rs["container jk-demo-web"].Container
	if !slices.Equal(agent.Networks, []string{"jk-demo-web"}) || len(agent.Ports) != 0 {
		t.Errorf("agent: networks %v, ports %v: want only the internal network and no published port", agent.Networks, agent.Ports)
	}
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		if agent.Env[k] != "http://egress:3128" {
			t.Errorf("agent env %s = %q", k, agent.Env[k])
		}
	}
	if agent.Env["NO_PROXY"] != "localhost,127.0.0.1" {
		t.Errorf("NO_PROXY = %q", agent.Env["NO_PROXY"])
	}
	if _, ok := in.Spec.Env["HTTP_PROXY"]; ok {
		t.Error("the proxy env is rendered, not part of the manifest's env in the spec")
	}
	side := rs["container jk-demo-web-egress"]
	if side.Component != drivers.ComponentEgress || side.Labels[drivers.LabelComponent] != "egress" || side.Labels[drivers.LabelSpecHash] != in.Hash {
		t.Errorf("sidecar labels: %v", side.Labels)
	}
	sc := side.Container
	if sc.Image.Ref != sidecarRef {
		t.Errorf("sidecar image %q", sc.Image.Ref)
	}
	if !slices.Equal(sc.Networks, []string{"jk-demo-web-out", "jk-demo-web"}) || !slices.Equal(sc.Aliases["jk-demo-web"], []string{"egress"}) {
		t.Errorf("sidecar networks %v aliases %v", sc.Networks, sc.Aliases)
	}
	wantCmd := []string{"egress-proxy", "--policy", "/run/jackin-egress/policy.json", "--listen", ":3128", "--forward", ":40000=jk-demo-web:3000"}
	if !slices.Equal(sc.Command, wantCmd) {
		t.Errorf("sidecar command %q, want %q", sc.Command, wantCmd)
	}
	if len(sc.Ports) != 1 || sc.Ports[0] != (drivers.PortSpec{ContainerPort: 40000, HostPort: 13000, HostIP: "127.0.0.1", Protocol: "tcp"}) {
		t.Errorf("sidecar ports %+v", sc.Ports)
	}
	policyDir := filepath.Join(f.StateDir, "egress", "demo", "web")
	if len(sc.Mounts) != 1 || sc.Mounts[0] != (drivers.MountSpec{Type: "bind", Source: policyDir, Target: "/run/jackin-egress", ReadOnly: true}) {
		t.Errorf("sidecar mounts %+v", sc.Mounts)
	}
	if sc.User != "65534:65534" || !slices.Equal(sc.CapDrop, []string{"ALL"}) || !sc.NoNewPrivileges || !sc.ReadOnlyRoot {
		t.Errorf("the sidecar is not hardened: user %q capDrop %v nnp %v ro %v", sc.User, sc.CapDrop, sc.NoNewPrivileges, sc.ReadOnlyRoot)
	}
	for _, m := range sc.Mounts {
		if strings.Contains(m.Source, "docker.sock") {
			t.Fatal("the sidecar must never mount the Docker socket")
		}
	}
	if in.PolicyFile != filepath.Join(policyDir, "policy.json") {
		t.Errorf("policy file %s", in.PolicyFile)
	}
	var hosts []string
	for _, r := range in.Policy.Rules {
		hosts = append(hosts, r.String())
	}
	if !slices.Contains(hosts, "api.anthropic.com") || !slices.Contains(hosts, "example.com:8443") {
		t.Errorf("policy rules %v: want @agent expanded for claude and example.com:8443", hosts)
	}
	if !slices.Contains(d.ImageRefs(), sidecarRef) {
		t.Errorf("ImageRefs %v lacks the sidecar image", d.ImageRefs())
	}
}

func TestDesiredEgressNetworkAndUpstream(t *testing.T) {
	f := with(fleetOf(), "web", func(in *schema.Instance) {
		allowlisted(in)
		in.Network.EgressNetwork, in.Network.UpstreamProxy = "corp", "http://proxy.corp:3128"
	})
	in := desired(t, f).Instance("web")
	rs := resources(in)
	if _, ok := rs["network jk-demo-web-out"]; ok {
		t.Error("with egressNetwork jackin creates no outbound network")
	}
	sc := rs["container jk-demo-web-egress"].Container
	if sc.Networks[0] != "corp" || !slices.Contains(sc.Command, "--upstream") || !slices.Contains(sc.Command, "http://proxy.corp:3128") {
		t.Errorf("sidecar networks %v command %v", sc.Networks, sc.Command)
	}
}

func TestDesiredNone(t *testing.T) {
	f := with(fleetOf(), "web", func(in *schema.Instance) { in.Network = schema.Network{Egress: schema.EgressNone} })
	in := desired(t, f).Instance("web")
	rs := resources(in)
	agent := rs["container jk-demo-web"].Container
	if !agent.NoNetwork || len(agent.Networks) != 0 {
		t.Errorf("none without ports: want network mode none, got %+v", agent)
	}
	// The network, the runtime-home volume and the agent.
	if len(rs) != 3 || in.Policy != nil {
		t.Errorf("none without ports has no sidecar and no policy: %v", rs)
	}

	f = with(f, "web", func(in *schema.Instance) {
		in.Network.Ports = []schema.Port{{Container: 8080, Address: "127.0.0.1", Protocol: "tcp"}}
	})
	in = desired(t, f).Instance("web")
	rs = resources(in)
	agent = rs["container jk-demo-web"].Container
	if agent.NoNetwork || !slices.Equal(agent.Networks, []string{"jk-demo-web"}) || len(agent.Ports) != 0 {
		t.Errorf("none with ports: the agent is on its internal network only: %+v", agent)
	}
	if _, ok := agent.Env["HTTP_PROXY"]; ok {
		t.Error("none has no proxy")
	}
	sc := rs["container jk-demo-web-egress"].Container
	if !slices.Equal(sc.Command, []string{"egress-proxy", "--forward", ":40000=jk-demo-web:8080"}) || len(sc.Mounts) != 0 {
		t.Errorf("forwarder-only sidecar: %q %v", sc.Command, sc.Mounts)
	}
}

func TestAllowIsNotInTheSpecHash(t *testing.T) {
	a := desired(t, with(fleetOf(), "web", allowlisted)).Instance("web")
	b := desired(t, with(fleetOf(), "web", func(in *schema.Instance) {
		allowlisted(in)
		in.Network.Allow = []string{"@github"}
	})).Instance("web")
	if a.Hash != b.Hash {
		t.Error("an allowlist change must not change the spec hash (the proxy reloads it)")
	}
	open := desired(t, fleetOf("web")).Instance("web")
	if open.Hash == a.Hash {
		t.Error("the egress mode must change the hash")
	}
}

func TestWritePolicies(t *testing.T) {
	f := with(fleetOf("plain"), "web", allowlisted)
	f.StateDir = t.TempDir()
	d := desired(t, f)
	in := d.Instance("web")
	if !in.PolicyPending() {
		t.Fatal("a policy never written is pending")
	}
	changed, err := reconciler.WritePolicies(d)
	if err != nil || !slices.Equal(changed, []string{"web"}) {
		t.Fatalf("WritePolicies: %v %v", changed, err)
	}
	pol, err := egress.LoadPolicy(in.PolicyFile)
	if err != nil || pol.Instance != "web" || len(pol.Rules) != len(in.Policy.Rules) {
		t.Fatalf("policy file: %+v %v", pol, err)
	}
	if in.PolicyPending() {
		t.Error("pending after writing")
	}
	if changed, _ := reconciler.WritePolicies(d); len(changed) != 0 {
		t.Errorf("a second write changed %v", changed)
	}
	d2 := desired(t, with(f, "web", func(in *schema.Instance) { in.Network.Allow = []string{"only.example", "example.com:8443"} }))
	if !d2.Instance("web").PolicyPending() {
		t.Error("a changed allowlist is pending")
	}
	added, removed, pending := d2.Instance("web").PolicyChange()
	if !pending || !slices.Equal(added, []string{"only.example"}) || !slices.Contains(removed, "api.anthropic.com") || slices.Contains(removed, "example.com:8443") {
		t.Errorf("PolicyChange: added %v removed %v pending %v", added, removed, pending)
	}
	changed, err = reconciler.WritePolicies(d2)
	if err != nil || !slices.Equal(changed, []string{"web"}) {
		t.Fatalf("rewrite: %v %v", changed, err)
	}
	if _, _, pending := d2.Instance("web").PolicyChange(); pending {
		t.Error("still pending after the rewrite")
	}
	b, _ := os.ReadFile(d2.Instance("web").PolicyFile)
	var p egress.Policy
	if err := json.Unmarshal(b, &p); err != nil || len(p.Rules) != 2 || p.Rules[0].Host != "only.example" {
		t.Errorf("rewritten policy %s", b)
	}
	entries, _ := os.ReadDir(filepath.Dir(d2.Instance("web").PolicyFile))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

// The sidecar alone is replaced when it alone is wrong: the agent keeps
// running (its container ID stays).
func TestExecuteReplacesOnlyTheSidecar(t *testing.T) {
	f := with(fleetOf(), "web", allowlisted)
	f.StateDir = t.TempDir()
	drv := newDriver()
	last := apply(t, drv, f, nil)
	agentID := objectID(drv, "jk-demo-web")
	if agentID == "" || objectID(drv, "jk-demo-web-egress") == "" {
		t.Fatal("apply did not create the agent and the sidecar")
	}
	if p := plan(t, drv, f, last, prune); p.HasChanges() {
		t.Fatalf("not converged after apply: %+v", p.Actions)
	}
	mustDo(t, drv.RemoveContainer("jk-demo-web-egress"))
	p := plan(t, drv, f, last, prune)
	if a := p.Actions[0]; a.Type != reconciler.ActionRecreate || len(a.Missing) != 1 || a.Missing[0].Name != "jk-demo-web-egress" {
		t.Fatalf("want a recreate of the sidecar only, got %+v", a)
	}
	last = apply(t, drv, f, last)
	if got := objectID(drv, "jk-demo-web"); got != agentID {
		t.Errorf("the agent was replaced (%s -> %s)", agentID, got)
	}
	if objectID(drv, "jk-demo-web-egress") == "" {
		t.Error("the sidecar was not created again")
	}
	// Back to open: the sidecar and the outbound network go away.
	open := with(f, "web", func(in *schema.Instance) { in.Network = schema.Network{Egress: schema.EgressOpen} })
	apply(t, drv, open, last)
	if objectID(drv, "jk-demo-web-egress") != "" || objectID(drv, "jk-demo-web-out") != "" {
		t.Error("egress open still has the sidecar or its outbound network")
	}
	if p := plan(t, drv, open, nil, prune); p.HasChanges() {
		t.Errorf("not converged after switching to open: %+v", p.Actions)
	}
}

func objectID(drv *fake.Driver, name string) string {
	for _, o := range drv.Objects() {
		if o.Name == name {
			return o.ID
		}
	}
	return ""
}

func TestSidecarImageOfThisExecutable(t *testing.T) {
	img, err := reconciler.RealSidecarImage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^jackin-sidecar:[0-9a-f]{16}$`).MatchString(img.Ref) || img.Build == nil || img.Build.Prepare == nil {
		t.Fatalf("sidecar image %+v", img)
	}
	err = img.Build.Prepare()
	if _, findErr := linuxexe.Path(); findErr != nil {
		// A test binary built with cgo: the build is refused, clearly.
		if err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
			t.Fatalf("a dynamic executable: Prepare = %v", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	df, err := os.ReadFile(filepath.Join(img.Build.Context, "Dockerfile"))
	if err != nil || string(df) != "FROM scratch\nCOPY jackin /jackin\nENTRYPOINT [\"/jackin\"]\n" {
		t.Errorf("Dockerfile %q %v", df, err)
	}
	if fi, err := os.Stat(filepath.Join(img.Build.Context, "jackin")); err != nil || fi.Mode()&0o100 == 0 {
		t.Errorf("the executable copy: %v %v", fi, err)
	}
}
