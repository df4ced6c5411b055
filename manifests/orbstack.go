package manifests

import "github.com/jackin-dev/jackin/schema"

// orbstack fills in an OrbStack instance's machine settings, and refuses
// orbstack settings on an instance of another backend (set in defaults
// they configure only the instances that use the backend).
func (c *instanceChecker) orbstack(r rawInstance, inst *schema.Instance) {
	if inst.Backend != schema.BackendOrbStack {
		if r.ownOrbStack {
			c.errorf([]any{"orbstack"}, "orbstack configures an OrbStack isolated machine, and this instance has backend: %q: set backend: %q or remove orbstack", inst.Backend, schema.BackendOrbStack)
		}
		return
	}
	o := rawOrbStack{}
	if r.OrbStack != nil {
		o = *r.OrbStack
	}
	block := true
	if o.BlockHostNetwork != nil {
		block = *o.BlockHostNetwork
	}
	inst.OrbStack = &schema.OrbStack{
		Distro:           str(o.Distro, schema.DefaultOrbDistro),
		BlockHostNetwork: block,
		SSHAgent:         str(o.SSHAgent, "off"),
	}
}
