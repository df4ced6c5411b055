package manifests

import (
	"reflect"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/schema"
)

// TestLoadResolvesProfiles: a profile fills the limits and sandbox the
// manifest leaves unset, a manifest field wins (and says so in Sources),
// defaults carry a profile, and standard changes nothing.
func TestLoadResolvesProfiles(t *testing.T) {
	fx := newFixture(t, map[string]string{"f.cue": fleetHead + `defaults: profile: "hardened"
instances: {
	h: role: image: "x"
	l: {role: image: "x", profile: "locked", resources: memory: "64Mi", security: user: "host"}
	s: {role: image: "x", profile: "standard"}
	o: {role: image: "x", security: {user: "7:8", noNewPrivileges: false, readOnlyRoot: true}, resources: nofile: 100}
}
`})
	opts := fx.opts()
	opts.HostUser = "1000:1001"
	res, diags := fx.load(t, opts, "f.cue")
	if diags != nil {
		t.Fatalf("load: %v", diags)
	}
	in := res.Fleet.Instances

	h := in["h"]
	if h.Profile != "hardened" || h.Sandbox.User != "1000:1001" || !h.Sandbox.NoNewPrivileges || h.Sandbox.ReadOnlyRoot ||
		!reflect.DeepEqual(h.Sandbox.CapDrop, []string{"ALL"}) || len(h.Sandbox.CapAdd) != 8 {
		t.Errorf("hardened sandbox: %+v", h.Sandbox)
	}
	if h.Resources.MemoryBytes != 4<<30 || h.Resources.MemoryReservationBytes != 1<<30 || h.Resources.CPUs != 2 || h.Resources.Pids != 1024 || h.Resources.Nofile != 8192 {
		t.Errorf("hardened limits: %+v", h.Resources)
	}
	if h.Sources["resources.memory"] != "profile hardened" || h.Sources["security.user"] != "profile hardened" {
		t.Errorf("hardened sources: %v", h.Sources)
	}

	l := in["l"]
	// The manifest's memory wins; the profile's 512Mi reservation is capped at it.
	if l.Resources.MemoryBytes != 64<<20 || l.Resources.MemoryReservationBytes != 64<<20 || l.Sources["resources.memory"] != "manifest" ||
		!strings.HasPrefix(l.Sources["resources.memoryReservation"], "profile locked") {
		t.Errorf("locked with memory: %+v %v", l.Resources, l.Sources)
	}
	if !l.Sandbox.ReadOnlyRoot || !reflect.DeepEqual(l.Sandbox.Tmpfs, schema.ReadOnlyTmpfs) || len(l.Sandbox.CapAdd) != 0 ||
		l.Sandbox.User != "1000:1001" || l.Sources["security.user"] != "manifest" {
		t.Errorf("locked sandbox: %+v %v", l.Sandbox, l.Sources)
	}

	if s := in["s"]; s.Profile != "standard" || !reflect.DeepEqual(s.Sandbox, schema.Sandbox{}) || s.Resources != (schema.Resources{}) || s.Sources != nil {
		t.Errorf("standard must change nothing: %+v", s)
	}

	o := in["o"]
	if o.Sandbox.User != "7:8" || o.Sandbox.NoNewPrivileges || !o.Sandbox.ReadOnlyRoot || o.Resources.Nofile != 100 ||
		o.Sources["security.noNewPrivileges"] != "manifest" || o.Sources["resources.nofile"] != "manifest" || o.Sources["resources.pids"] != "profile hardened" {
		t.Errorf("overrides: %+v %+v %v", o.Sandbox, o.Resources, o.Sources)
	}
}

func TestLoadRejectsProfileBeyondHost(t *testing.T) {
	fx := newFixture(t, map[string]string{"f.cue": fleetHead + "instances: a: {role: image: \"x\", profile: \"hardened\"}\n"})
	opts := fx.opts()
	opts.HostCPUs = 1
	_, diags := fx.load(t, opts, "f.cue")
	if diags == nil || !strings.Contains(diags.Error(), `profile "hardened" sets cpus 2, more than this host's 1 CPUs: set resources.cpus`) {
		t.Fatalf("want a clear error, got %v", diags)
	}
	fx = newFixture(t, map[string]string{"f.cue": fleetHead + "instances: a: {role: image: \"x\", profile: \"hardened\", resources: cpus: 1}\n"})
	if _, diags := fx.load(t, opts, "f.cue"); diags != nil {
		t.Fatalf("resources.cpus overrides the profile: %v", diags)
	}
	fx = newFixture(t, map[string]string{"f.cue": fleetHead + "instances: a: {role: image: \"x\", profile: \"paranoid\"}\n"})
	if _, diags := fx.load(t, fx.opts(), "f.cue"); diags == nil {
		t.Fatal("an unknown profile must be refused")
	}
}

// TestLoadCapabilitiesOverrideTheProfile: security.capabilities replaces
// the profile's drop and add lists, defaults carry it, and unknown names
// or adding ALL are refused at their line.
func TestLoadCapabilitiesOverrideTheProfile(t *testing.T) {
	fx := newFixture(t, map[string]string{"f.cue": fleetHead + `defaults: {profile: "hardened", security: capabilities: {drop: ["ALL"], add: ["NET_BIND_SERVICE"]}}
instances: {
	d: role: image: "x"
	std: {role: image: "x", profile: "standard", security: capabilities: add: ["NET_ADMIN"]}
	lk: {role: image: "x", profile: "locked", security: capabilities: add: ["NET_ADMIN"]}
}
`})
	res, diags := fx.load(t, fx.opts(), "f.cue")
	if diags != nil {
		t.Fatalf("load: %v", diags)
	}
	d := res.Fleet.Instances["d"]
	if !reflect.DeepEqual(d.Sandbox.CapDrop, []string{"ALL"}) || !reflect.DeepEqual(d.Sandbox.CapAdd, []string{"NET_BIND_SERVICE"}) || d.Sources["security.capabilities"] != "manifest" {
		t.Errorf("defaults' capabilities: %+v %v", d.Sandbox, d.Sources)
	}
	if lk := res.Fleet.Instances["lk"]; !reflect.DeepEqual(lk.Sandbox.CapDrop, []string{"ALL"}) || !reflect.DeepEqual(lk.Sandbox.CapAdd, []string{"NET_ADMIN"}) {
		t.Errorf("an add alone keeps the profile's drop ALL: %+v", lk.Sandbox)
	}
	std := res.Fleet.Instances["std"]
	if len(std.Sandbox.CapDrop) != 0 || !reflect.DeepEqual(std.Sandbox.CapAdd, []string{"NET_ADMIN"}) {
		t.Errorf("standard with an added capability: %+v", std.Sandbox)
	}

	for body, want := range map[string]string{
		"instances: a: {role: image: \"x\", security: capabilities: add: [\"CAP_CHOWN\"]}\n": `f.cue:4:64: instances.a.security.capabilities.add[0]: unknown capability "CAP_CHOWN"`,
		"instances: a: {role: image: \"x\", security: capabilities: add: [\"ALL\"]}\n":       `instances.a.security.capabilities.add: adding ALL capabilities is --privileged in all but name`,
		"instances: a: {role: image: \"x\", security: capabilities: drop: [\"chown\"]}\n":    `instances.a.security.capabilities.drop`,
	} {
		fx := newFixture(t, map[string]string{"f.cue": fleetHead + body})
		_, diags := fx.load(t, fx.opts(), "f.cue")
		if diags == nil || !strings.Contains(diags.Error(), want) {
			t.Errorf("%s: want %q, got %v", body, want, diags)
		}
	}
}

// TestLoadDockerDaemon: defaults fill dockerDaemon for private instances
// and are ignored by the others; set on an instance without a private
// daemon it is refused at its line.
func TestLoadDockerDaemon(t *testing.T) {
	fx := newFixture(t, map[string]string{"f.cue": fleetHead + `defaults: dockerDaemon: privilege: "capabilities"
instances: {
	p: {role: image: "x", docker: "private", dockerDaemon: image: "dind:1"}
	d: {role: image: "x", docker: "private"}
	n: role: image: "x"
}
`})
	res, diags := fx.load(t, fx.opts(), "f.cue")
	if diags != nil {
		t.Fatalf("load: %v", diags)
	}
	in := res.Fleet.Instances
	if got := in["p"].DockerDaemon; got == nil || *got != (schema.DockerDaemon{Image: "dind:1", Privilege: schema.DaemonCapabilities}) {
		t.Errorf("p: %+v", got)
	}
	if got := in["d"].DockerDaemon; got == nil || *got != (schema.DockerDaemon{Image: schema.DefaultDaemonImage, Privilege: schema.DaemonCapabilities}) {
		t.Errorf("d: %+v", got)
	}
	if in["n"].DockerDaemon != nil {
		t.Errorf("n has no private daemon: %+v", in["n"].DockerDaemon)
	}
	fx = newFixture(t, map[string]string{"f.cue": fleetHead + "instances: a: {role: image: \"x\", dockerDaemon: image: \"dind:1\"}\n"})
	_, diags = fx.load(t, fx.opts(), "f.cue")
	if diags == nil || !strings.Contains(diags.Error(), `f.cue:4:`) || !strings.Contains(diags.Error(), `instances.a.dockerDaemon: dockerDaemon configures the private Docker daemon`) {
		t.Errorf("want an error at the stray dockerDaemon, got %v", diags)
	}
}
