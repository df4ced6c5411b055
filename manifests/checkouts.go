package manifests

import (
	"github.com/jackin-dev/jackin/egress"
	"github.com/jackin-dev/jackin/schema"
)

// gitURLSource takes a worktree or clone mount's src as a git URL, which
// the instance clones itself (a Pod's init container, or a container
// before the agent's on a remote engine); why says so in the error.
func (c *instanceChecker) gitURLSource(i int, m rawMount, mount *schema.Mount, why string) {
	if _, err := schema.ParseGitURL(*m.Src); err != nil {
		c.errorf([]any{"mounts", i, "src"}, "%s: %v", why, err)
		return
	}
	mount.Src = *m.Src
}

// clonedCheckouts refuses a checkout the instance could not clone: with
// egress "none" it has no network, and with an allowlist it reaches the
// repository only through the egress proxy (http and https) and only when
// the allowlist allows its host.
func (c *instanceChecker) clonedCheckouts(inst *schema.Instance) {
	var policy *egress.Policy
	for i, m := range inst.Mounts {
		if !schema.IsCheckout(m.Mode) || m.Src == "" {
			continue
		}
		remote, err := schema.ParseGitURL(m.Src)
		if err != nil {
			continue // reported with the mount
		}
		switch inst.Network.Egress {
		case schema.EgressNone:
			c.errorf([]any{"mounts", i, "src"}, "the instance clones %s, and egress \"none\" gives it no network: use egress \"allowlist\" with %s allowed, or \"open\"", m.Src, remote.Host)
		case schema.EgressAllowlist:
			if remote.Scheme != "https" && remote.Scheme != "http" {
				c.errorf([]any{"mounts", i, "src"}, "the instance clones %s over %s, and under egress \"allowlist\" it goes out only through the egress proxy, which carries http and https: use the repository's https URL", m.Src, remote.Scheme)
				continue
			}
			if policy == nil {
				rules, err := egress.Expand(inst.Network.Allow, inst.Runtime())
				if err != nil {
					return // reported with network.allow
				}
				policy = &egress.Policy{Rules: rules}
			}
			if ok, why := policy.Decide(remote.Host, remote.Port); !ok {
				c.errorf([]any{"mounts", i, "src"}, "the instance clones %s through the egress proxy, and the allowlist does not let it (%s): add %s to network.allow", m.Src, why, remote.Host)
			}
		}
	}
}
