package contract

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// TestContractClaimsMatchTheRenderedResources holds every claim the contract
// makes about mounts, the user, capabilities and the network to the
// resources the executor creates, for every example fleet and every golden
// fleet: a claim and the container cannot drift apart.
func TestContractClaimsMatchTheRenderedResources(t *testing.T) {
	for _, gc := range goldenCases() {
		t.Run(gc.name, func(t *testing.T) {
			f := gc.fleet(t)
			d, err := reconciler.BuildDesired(f)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := Build(f, d, gc.opts(d))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range doc.Instances {
				di := d.Instance(c.Instance)
				checkRendered(t, c, di)
			}
		})
	}
}

func checkRendered(t *testing.T, c Contract, di *reconciler.DesiredInstance) {
	t.Helper()
	agent := agentContainer(di)
	name := c.Instance

	// Mounts: every mount the agent gets from the manifest, a worktree's
	// git directory or a read-only root is claimed, as rendered, and the
	// contract claims no other.
	claimed := map[string]Mount{}
	for _, m := range c.Filesystem.Mounts {
		if _, dup := claimed[m.Destination]; dup {
			t.Errorf("%s: %s claimed twice", name, m.Destination)
		}
		claimed[m.Destination] = m
	}
	rendered := map[string]bool{}
	for _, m := range agent.Mounts {
		switch di.MountOrigin(m) {
		case reconciler.MountFromManifest, reconciler.MountFromGitDir, reconciler.MountFromGitDirRO, reconciler.MountFromSandboxTmpfs, reconciler.MountFromSupervisor:
		default:
			continue // described in the credentials and Docker sections
		}
		rendered[m.Target] = true
		cm, ok := claimed[m.Target]
		if !ok {
			t.Errorf("%s: the container mounts %s (%s %s), the contract does not say so", name, m.Target, m.Type, m.Source)
			continue
		}
		if cm.Type != m.Type {
			t.Errorf("%s: %s is a %s mount, the contract says %s", name, m.Target, m.Type, cm.Type)
		}
		if m.Type != "tmpfs" && cm.Source != m.Source {
			t.Errorf("%s: %s comes from %s, the contract says %s", name, m.Target, m.Source, cm.Source)
		}
		if want := access(m); cm.Access != want {
			t.Errorf("%s: %s is %s, the contract says %s", name, m.Target, want, cm.Access)
		}
		if m.ReadOnly && !strings.HasPrefix(cm.EnforcedBy, "the engine") {
			t.Errorf("%s: %s is read-only by the engine, the contract says it is enforced by %q", name, m.Target, cm.EnforcedBy)
		}
		if !m.ReadOnly && cm.Type == MountBind && !strings.HasPrefix(cm.EnforcedBy, "nothing") {
			t.Errorf("%s: %s is writable, the contract says %q", name, m.Target, cm.EnforcedBy)
		}
	}
	for dst := range claimed {
		if !rendered[dst] {
			t.Errorf("%s: the contract claims a mount at %s that the container does not get", name, dst)
		}
	}
	// A writable git directory's claim names what is read-only over it.
	for _, m := range c.Filesystem.Mounts {
		if m.Mode == schema.MountRW && strings.Contains(m.EnforcedBy, "git in the container") {
			for _, ro := range agent.Mounts {
				if di.MountOrigin(ro) == reconciler.MountFromGitDirRO && strings.HasPrefix(ro.Source, m.Source+"/") && !strings.Contains(m.EnforcedBy, ro.Source[len(m.Source)+1:]) {
					t.Errorf("%s: the git directory claim %q does not say %s is read-only", name, m.EnforcedBy, ro.Source)
				}
			}
		}
	}
	if c.Filesystem.RootFS.Writable == agent.ReadOnlyRoot {
		t.Errorf("%s: root read-only %v, the contract says writable %v", name, agent.ReadOnlyRoot, c.Filesystem.RootFS.Writable)
	}

	// User and privilege.
	if agent.User != "" {
		if !strings.HasPrefix(c.Sandbox.User, agent.User) {
			t.Errorf("%s: the container runs as %s, the contract says %q", name, agent.User, c.Sandbox.User)
		}
	} else if !strings.HasPrefix(c.Sandbox.User, "image default") {
		t.Errorf("%s: the container sets no user, the contract says %q", name, c.Sandbox.User)
	}
	if !slices.Equal(sorted(c.Sandbox.Capabilities.Dropped), sorted(agent.CapDrop)) || !slices.Equal(sorted(c.Sandbox.Capabilities.Added), sorted(agent.CapAdd)) {
		t.Errorf("%s: capabilities drop %v add %v, the contract says drop %v add %v", name, agent.CapDrop, agent.CapAdd, c.Sandbox.Capabilities.Dropped, c.Sandbox.Capabilities.Added)
	}
	if c.Sandbox.NoNewPrivileges != agent.NoNewPrivileges || c.Sandbox.Privileged != agent.Privileged {
		t.Errorf("%s: no-new-privileges %v privileged %v, the contract says %v %v", name, agent.NoNewPrivileges, agent.Privileged, c.Sandbox.NoNewPrivileges, c.Sandbox.Privileged)
	}

	// Network: a restricted egress is an internal network, an open one is
	// not; the published ports are the ones the engine is asked for, on
	// the agent (open) or on the egress sidecar (allowlist, none).
	internal := false
	for _, r := range di.Resources {
		if r.Kind == drivers.KindNetwork && slices.Contains(agent.Networks, r.Name) && len(agent.Networks) > 0 && agent.Networks[0] == r.Name {
			internal = r.Network != nil && r.Network.Internal
		}
	}
	if c.Network.EgressRestricted != internal {
		t.Errorf("%s: the agent's network is internal: %v; the contract says egress restricted: %v", name, internal, c.Network.EgressRestricted)
	}
	publisher, relayed := agent, false
	for _, r := range di.Resources {
		if r.Component == drivers.ComponentEgress && r.Container != nil && internal {
			publisher, relayed = r.Container, true
		}
	}
	// A relayed port is published on the sidecar's own port: the host side
	// is what the contract and the engine must agree on.
	var want, got []string
	for _, p := range publisher.Ports {
		ctr := p.ContainerPort
		if relayed {
			ctr = 0
		}
		want = append(want, portKey(p.HostIP, p.HostPort, ctr, p.Protocol))
	}
	for _, p := range c.ServicePorts.Ports {
		ctr := p.ContainerPort
		if relayed {
			ctr = 0
			if !strings.Contains(p.PublishedBy, sidecarName(di)) {
				t.Errorf("%s: port %d is published by the egress sidecar, the contract says %q", name, p.HostPort, p.PublishedBy)
			}
		}
		got = append(got, portKey(p.HostAddress, p.HostPort, ctr, p.Protocol))
	}
	if !slices.Equal(sorted(want), sorted(got)) {
		t.Errorf("%s: the engine publishes %v, the contract says %v", name, want, got)
	}
}

func portKey(addr string, host, ctr int, proto string) string {
	return fmt.Sprintf("%s:%d->%d/%s", addr, host, ctr, proto)
}

// sidecarName is the egress sidecar container's name.
func sidecarName(di *reconciler.DesiredInstance) string {
	for _, r := range di.Resources {
		if r.Component == drivers.ComponentEgress {
			return r.Name
		}
	}
	return "<no sidecar>"
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
