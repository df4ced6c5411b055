package contract

import (
	"sort"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/schema"
)

// Machine is the boundary of an instance on backend orbstack-isolated: an
// OrbStack isolated machine of its own, whose Docker engine runs the agent
// container. OrbStack machines share one Linux kernel (OrbStack's); the
// words here never claim a kernel, or a hypervisor, of the instance's own.
type Machine struct {
	Provider  string `json:"provider"`
	Name      string `json:"name"`
	Isolation string `json:"isolation"`
	// HostFilesystem is "explicit shares only": the machine sees only
	// Shares of the Mac's filesystem.
	HostFilesystem string         `json:"hostFilesystem"`
	Shares         []MachineShare `json:"shares"`
	InnerDocker    string         `json:"innerDocker"`
	// HostNetwork is "blocked", "open" or "unknown": whether the machine
	// can reach the Mac and other machines.
	HostNetwork       string `json:"hostNetwork"`
	HostNetworkDetail string `json:"hostNetworkDetail"`
	// SSHAgentForwarding is "off" or "on".
	SSHAgentForwarding string `json:"sshAgentForwarding"`
	// ImageTransfer is how the role image gets into the machine.
	ImageTransfer string `json:"imageTransfer"`
}

// MachineShare is one host path shared into the machine.
type MachineShare struct {
	Path string `json:"path"`
	// Access is "ro" or "rw" for the agent container.
	Access string `json:"access"`
	// Enforcement says who enforces read-only: "guest-enforced" (the
	// machine's Docker mounts it :ro; OrbStack's share itself has no
	// documented read-only mode), or "none (read-write)".
	Enforcement string `json:"enforcement"`
}

// Words of the OrbStack boundary.
const (
	OrbStackProvider  = "OrbStack"
	OrbStackIsolation = "OrbStack isolated machine, shared-kernel architecture"
	orbStackBoundary  = "an OrbStack isolated machine of its own (no Mac filesystem but the shares below, no mac command), whose own Docker engine runs the agent container; every OrbStack machine and container shares one Linux kernel: not a VM of its own"
	// RiskOrbSharedKernel is the residual risk of the OrbStack backend.
	RiskOrbSharedKernel = "orbstack-shared-kernel"
)

// orbMachine describes the instance's machine, from the rendered resources
// (the shares are their bind sources, as the driver computes them).
func orbMachine(fx facts) *Machine {
	o := fx.inst.OrbStack
	if o == nil {
		o = &schema.OrbStack{Distro: schema.DefaultOrbDistro, BlockHostNetwork: true, SSHAgent: schema.OrbSSHAgentOff}
	}
	m := &Machine{
		Provider:           OrbStackProvider,
		Name:               fx.name,
		Isolation:          OrbStackIsolation,
		HostFilesystem:     "explicit shares only",
		Shares:             []MachineShare{},
		InnerDocker:        "machine-local daemon (the machine's own dockerd, reached through orb -m " + fx.name + " -u root docker system dial-stdio; its socket is never forwarded to the host)",
		HostNetwork:        "open",
		HostNetworkDetail:  "orbstack.blockHostNetwork is false: the machine can reach the Mac's services and other machines",
		SSHAgentForwarding: orDefault(o.SSHAgent, schema.OrbSSHAgentOff),
		ImageTransfer:      "built on the host's Docker engine, streamed in (docker save | orb -m " + fx.name + " -u root docker load) when the machine lacks its image ID",
	}
	if o.BlockHostNetwork {
		m.HostNetwork = "blocked"
		m.HostNetworkDetail = "orb create --isolate-network: the machine cannot reach the Mac or other machines (an OrbStack that refuses the flag fails the apply, never a silent downgrade); the internet stays reachable unless egress restricts it"
	}
	ro := map[string]bool{}
	for _, r := range fx.di.Resources {
		if r.Kind != drivers.KindContainer || r.Container == nil {
			continue
		}
		for _, mt := range r.Container.Mounts {
			if mt.Type != "bind" || orbMachineLocal(mt.Source) {
				continue
			}
			prev, seen := ro[mt.Source]
			ro[mt.Source] = mt.ReadOnly && (!seen || prev)
		}
	}
	for p, r := range ro {
		s := MachineShare{Path: p, Access: "rw", Enforcement: "none (read-write)"}
		if r {
			s.Access, s.Enforcement = "ro", "guest-enforced"
		}
		m.Shares = append(m.Shares, s)
	}
	sort.Slice(m.Shares, func(i, j int) bool { return m.Shares[i].Path < m.Shares[j].Path })
	return m
}

// orbMachineLocal are bind sources of the machine's own, never shares.
func orbMachineLocal(p string) bool {
	for _, pre := range []string{"/sys/", "/proc/", "/dev/"} {
		if len(p) >= len(pre) && p[:len(pre)] == pre {
			return true
		}
	}
	return false
}

// orbRisk is the residual risk every OrbStack instance carries.
func orbRisk() Risk {
	return Risk{RiskOrbSharedKernel, "OrbStack machines share one Linux kernel: this is not hypervisor-per-agent isolation, and a kernel exploit in the agent's machine reaches every machine and container of OrbStack; the role image is built on the host's Docker engine"}
}

// orbSandboxLines adds the machine to the sandbox section's text.
func orbSandboxLines(s *textSection, m *Machine) {
	if m == nil {
		return
	}
	s.kv("provider", m.Provider)
	s.kv("machine", m.Name)
	s.kv("isolation", m.Isolation)
	s.kv("host filesystem", m.HostFilesystem)
	if len(m.Shares) == 0 {
		s.kv("  share", "none")
	}
	for _, sh := range m.Shares {
		s.kv("  share", sh.Path+" ("+sh.Access+", "+sh.Enforcement+")")
	}
	s.kv("inner Docker", m.InnerDocker)
	s.kv("host/machine network", m.HostNetwork, m.HostNetworkDetail)
	s.kv("SSH agent forwarding", m.SSHAgentForwarding)
	s.kv("role image", m.ImageTransfer)
}
