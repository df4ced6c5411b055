package contract

import (
	"bytes"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/schema"
)

// TestOrbStackBoundary: an orbstack-isolated instance's contract names the
// provider, the machine, the shared-kernel isolation, each share with its
// enforcement, the machine-local Docker, the host network and SSH agent
// settings and the residual risk; a docker instance has no machine. The
// words never call the machine a microVM.
func TestOrbStackBoundary(t *testing.T) {
	f := fleetOf("edge", map[string]schema.Instance{
		"o": instance(func(in *schema.Instance) {
			in.Backend = schema.BackendOrbStack
			in.OrbStack = &schema.OrbStack{Distro: schema.DefaultOrbDistro, BlockHostNetwork: true, SSHAgent: schema.OrbSSHAgentOff}
			in.Mounts = []schema.Mount{{Src: "/srv/ro", Dst: "/ro", Mode: schema.MountRO}, {Src: "/srv/rw", Dst: "/rw", Mode: schema.MountRW}}
		}),
		"p": instance(func(in *schema.Instance) {
			in.Backend = schema.BackendOrbStack
			in.OrbStack = &schema.OrbStack{Distro: "ubuntu:noble", BlockHostNetwork: false, SSHAgent: schema.OrbSSHAgentOn}
		}),
		"d": instance(func(in *schema.Instance) { in.Agent = schema.AgentCodex }),
	})
	doc, err := Build(f, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]Contract{}
	for _, c := range doc.Instances {
		by[c.Instance] = c
	}
	o, p, d := by["o"], by["p"], by["d"]
	if d.Sandbox.Machine != nil {
		t.Errorf("docker instance has a machine: %+v", d.Sandbox.Machine)
	}
	m := o.Sandbox.Machine
	if m == nil {
		t.Fatal("orbstack instance has no machine in its contract")
	}
	if m.Provider != "OrbStack" || m.Name != "jk-edge-o" || m.Isolation != "OrbStack isolated machine, shared-kernel architecture" ||
		m.HostFilesystem != "explicit shares only" || m.HostNetwork != "blocked" || m.SSHAgentForwarding != "off" {
		t.Errorf("machine %+v", m)
	}
	shares := map[string]MachineShare{}
	for _, s := range m.Shares {
		shares[s.Path] = s
	}
	if s := shares["/srv/ro"]; s.Access != "ro" || s.Enforcement != "guest-enforced" {
		t.Errorf("ro share %+v", s)
	}
	if s := shares["/srv/rw"]; s.Access != "rw" {
		t.Errorf("rw share %+v", s)
	}
	// The supervisor's executable is a copy of the machine's own, and says
	// so; the Docker instance's is the shared one.
	for _, c := range []struct {
		ct       Contract
		own      bool
		enforced string
	}{{o, true, "guest-enforced"}, {d, false, "the engine"}} {
		var found bool
		for _, mt := range c.ct.Filesystem.Mounts {
			if mt.Destination != "/run/jackin/bin" {
				continue
			}
			found = true
			if strings.Contains(mt.Source, "/machines/") != c.own || !strings.HasPrefix(mt.EnforcedBy, c.enforced) {
				t.Errorf("instance %s: supervisor mount %+v", c.ct.Instance, mt)
			}
		}
		if !found {
			t.Errorf("instance %s: no supervisor mount in %+v", c.ct.Instance, c.ct.Filesystem.Mounts)
		}
	}
	if pm := p.Sandbox.Machine; pm == nil || pm.HostNetwork != "open" || pm.SSHAgentForwarding != "on" {
		t.Errorf("p's machine %+v, want host network open and the SSH agent on", pm)
	}
	var risk bool
	for _, r := range o.ResidualRisk {
		risk = risk || r.ID == RiskOrbSharedKernel
	}
	if !risk {
		t.Errorf("residual risk lacks %s: %+v", RiskOrbSharedKernel, o.ResidualRisk)
	}
	var buf bytes.Buffer
	if err := WriteText(&buf, doc); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	for _, want := range []string{"orbstack-isolated", "provider", "OrbStack", "machine", "jk-edge-o", "shared-kernel architecture",
		"explicit shares only", "/srv/ro (ro, guest-enforced)", "machine-local daemon", "host Docker socket", "not mounted",
		"host/machine network", "blocked", "SSH agent forwarding", "not hypervisor-per-agent isolation", "built on the host's Docker engine"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q", want)
		}
	}
	for _, w := range []string{o.Sandbox.Boundary, m.Isolation, m.InnerDocker, o.Tier.Current} {
		if strings.Contains(strings.ToLower(w), "microvm") {
			t.Errorf("the OrbStack boundary is called a microVM: %q", w)
		}
	}
	if !strings.Contains(d.Tier.Recommended, "orbstack-isolated") {
		t.Errorf("the tier recommendation does not include the OrbStack backend: %q", d.Tier.Recommended)
	}
}
