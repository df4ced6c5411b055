package manifests

import (
	"testing"

	"github.com/jackin-dev/jackin/schema"
)

// TestOrbStackDefaults: an orbstack-isolated instance gets a Debian
// machine with the host network blocked and no SSH agent, unless the
// manifest (or its defaults) says otherwise; a docker instance has none.
func TestOrbStackDefaults(t *testing.T) {
	fx := newFixture(t, map[string]string{"f.cue": fleetHead +
		"defaults: orbstack: sshAgent: \"on\"\n" +
		"instances: {\n" +
		"  a: {role: image: \"x\", backend: \"orbstack-isolated\"}\n" +
		"  b: {role: image: \"x\", backend: \"orbstack-isolated\", orbstack: {distro: \"ubuntu:noble\", blockHostNetwork: false, sshAgent: \"off\"}}\n" +
		"  c: {role: image: \"x\"}\n" +
		"}\n"})
	f := fx.mustLoad(t, "f.cue")
	a, b, c := f.Instances["a"], f.Instances["b"], f.Instances["c"]
	if a.Backend != schema.BackendOrbStack || a.OrbStack == nil {
		t.Fatalf("a: backend %q orbstack %+v", a.Backend, a.OrbStack)
	}
	if *a.OrbStack != (schema.OrbStack{Distro: schema.DefaultOrbDistro, BlockHostNetwork: true, SSHAgent: "on"}) {
		t.Errorf("a: %+v, want the defaults with the fleet's sshAgent on", *a.OrbStack)
	}
	if *b.OrbStack != (schema.OrbStack{Distro: "ubuntu:noble", BlockHostNetwork: false, SSHAgent: "off"}) {
		t.Errorf("b: %+v", *b.OrbStack)
	}
	if c.Backend != schema.BackendDocker || c.OrbStack != nil {
		t.Errorf("c: backend %q orbstack %+v, want docker and none", c.Backend, c.OrbStack)
	}
}

// TestOrbStackRefusals: orbstack on a docker instance, and bad values.
func TestOrbStackRefusals(t *testing.T) {
	cases := []struct{ name, src, path, want string }{
		{"orbstack on a docker instance", inst("«orbstack: distro: \"debian\""), "instances.a.orbstack",
			`orbstack configures an OrbStack isolated machine, and this instance has backend: "docker"`},
		{"bad sshAgent", inst("backend: \"orbstack-isolated\", orbstack: «sshAgent: \"yes\""), "instances.a.orbstack.sshAgent",
			`sshAgent must be one of "off", "on" (got "yes")`},
		{"unknown orbstack field", inst("backend: \"orbstack-isolated\", orbstack: «mac: true"), "instances.a.orbstack.mac",
			`field "mac" is not allowed here`},
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
