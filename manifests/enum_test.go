package manifests

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/schema"
)

// enumCases are the schema's enumerated fields with the values the Go code
// knows for them: a value added to one and not the other fails
// TestSchemaEnumsMatchTheGoConstants.
var enumCases = []struct {
	path   []string // in a manifest, as userPath spells it
	values []string
}{
	{[]string{"instances", "a", "backend"}, []string{schema.BackendDocker, schema.BackendOrbStack, schema.BackendKubernetes}},
	{[]string{"instances", "a", "orbstack", "sshAgent"}, []string{schema.OrbSSHAgentOff, schema.OrbSSHAgentOn}},
	{[]string{"instances", "a", "state"}, []string{schema.StateRunning, schema.StateStopped}},
	{[]string{"instances", "a", "docker"}, []string{schema.DockerNone, schema.DockerPrivate}},
	{[]string{"instances", "a", "profile"}, []string{schema.ProfileStandard, schema.ProfileHardened, schema.ProfileLocked}},
	{[]string{"instances", "a", "dockerDaemon", "privilege"}, []string{schema.DaemonPrivileged, schema.DaemonCapabilities}},
	{[]string{"instances", "a", "mounts", "0", "mode"}, []string{schema.MountRW, schema.MountRO, schema.MountTmpfs, schema.MountWorktree, schema.MountClone, schema.MountEphemeral}},
	{[]string{"instances", "a", "network", "egress"}, []string{schema.EgressOpen, schema.EgressNone, schema.EgressAllowlist}},
	{[]string{"instances", "a", "network", "ports", "0", "protocol"}, []string{"tcp", "udp"}},
	{[]string{"instances", "a", "recovery", "snapshot"}, []string{schema.SnapshotOff, schema.SnapshotBeforeStart, schema.SnapshotBeforeApply}},
	{[]string{"instances", "a", "idle", "action"}, []string{schema.IdleStop, schema.IdleExec}},
}

// fleetEnumCases are the enumerated fields outside instances (no
// defaults twin).
var fleetEnumCases = []struct {
	path   []string
	values []string
}{
	{[]string{"queue", "gates", "beforeDone"}, []string{schema.GateReview}},
}

// TestSchemaEnumsMatchTheGoConstants: the lists errors give are read from
// the schema; they hold exactly the values the Go code handles, each once,
// and every enumerated field of the schema is in enumCases.
func TestSchemaEnumsMatchTheGoConstants(t *testing.T) {
	for _, c := range enumCases {
		if got := enumAt(c.path); !reflect.DeepEqual(got, c.values) {
			t.Errorf("%s: the schema allows %q, the Go constants are %q", formatPath(c.path), got, c.values)
		}
		// The same field under defaults.
		if got := enumAt(append([]string{"defaults"}, c.path[2:]...)); !reflect.DeepEqual(got, c.values) {
			t.Errorf("defaults.%s: the schema allows %q, want %q", formatPath(c.path[2:]), got, c.values)
		}
	}
	known := map[string]bool{"apiVersion": true, "kind": true} // fixed header strings, worded on their own
	for _, c := range enumCases {
		known[lastOf(c.path)] = true
	}
	for _, c := range fleetEnumCases {
		if got := enumAt(c.path); !reflect.DeepEqual(got, c.values) {
			t.Errorf("%s: the schema allows %q, the Go constants are %q", formatPath(c.path), got, c.values)
		}
		known[lastOf(c.path)] = true
	}
	var walk func(n *schemaNode, at string, depth int)
	walk = func(n *schemaNode, at string, depth int) {
		if n == nil || depth > 16 {
			return
		}
		for field, values := range n.enums {
			if !known[field] {
				t.Errorf("%s.%s is an enum (%q) with no case in enumCases", at, field, values)
			}
			seen := map[string]bool{}
			for _, v := range values {
				if seen[v] {
					t.Errorf("%s.%s lists %q twice", at, field, v)
				}
				seen[v] = true
			}
		}
		for name, kid := range n.kids {
			walk(kid, at+"."+name, depth+1)
		}
		walk(n.elem, at+".*", depth+1)
	}
	walk(schemaRoot(), "", 0)
}

// TestEnumErrorsListTheAllowedValuesOnce: a bad value of any enum is one
// "must be one of" error listing exactly the allowed values, never CUE's
// "conflicting values" lines.
func TestEnumErrorsListTheAllowedValuesOnce(t *testing.T) {
	cases := []struct {
		name, src, path, want string
	}{
		{"bad mode", inst("mounts: [{dst: \"/x\", «mode: \"worktre\"}]"), "instances.a.mounts[0].mode",
			`mode must be one of "rw", "ro", "tmpfs", "worktree", "clone", "ephemeral" (got "worktre")`},
		{"bad docker", inst("«docker: \"privat\""), "instances.a.docker",
			`docker must be one of "none", "private" (got "privat")`},
		{"bad profile", inst("«profile: \"hardend\""), "instances.a.profile",
			`profile must be one of "standard", "hardened", "locked" (got "hardend")`},
		{"bad profile in defaults", fleetHead + "defaults: «profile: \"paranoid\"\ninstances: a: role: image: \"x\"\n", "defaults.profile",
			`profile must be one of "standard", "hardened", "locked" (got "paranoid")`},
		{"bad daemon privilege", inst("docker: \"private\", dockerDaemon: «privilege: \"root\""), "instances.a.dockerDaemon.privilege",
			`privilege must be one of "privileged", "capabilities" (got "root")`},
		{"bad state", inst("«state: \"run\""), "instances.a.state",
			`state must be one of "running", "stopped" (got "run")`},
		{"bad egress", inst("network: «egress: \"allow\""), "instances.a.network.egress",
			`egress must be one of "open", "none", "allowlist" (got "allow")`},
		{"bad protocol", inst("network: ports: [{container: 80, «protocol: \"sctp\"}]"), "instances.a.network.ports[0].protocol",
			`protocol must be one of "tcp", "udp" (got "sctp")`},
		{"bad backend", inst("«backend: \"k8s\""), "instances.a.backend",
			`backend must be one of "docker", "orbstack-isolated", "kubernetes" (got "k8s")`},
		{"enum of the wrong type", inst("«docker: 1"), "instances.a.docker",
			`docker must be one of "none", "private" (got 1)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fx := newFixture(t, map[string]string{"f.cue": c.src})
			_, diags := fx.load(t, fx.opts(), "f.cue")
			if len(diags) == 0 {
				t.Fatal("manifest accepted")
			}
			expect(t, diags, fx.where, c.path, c.want)
			enums := 0
			for _, d := range diags {
				if strings.Contains(d.Msg, "conflicting values") {
					t.Errorf("raw CUE error: %s", d.String())
				}
				if strings.Contains(d.Msg, "must be one of") {
					enums++
					if d.Msg != c.want {
						t.Errorf("enum error %q, want exactly %q", d.Msg, c.want)
					}
				}
			}
			if enums != 1 {
				t.Errorf("want one enum error, got %d:\n%s", enums, dump(diags))
			}
		})
	}
}

// TestMisspelledFieldSuggestsTheNearest: an unknown field close to an
// allowed one names it, at the misspelled field; one close to none does
// not guess.
func TestMisspelledFieldSuggestsTheNearest(t *testing.T) {
	cases := []struct {
		name, src, path, want string
	}{
		{"instance field", inst("«comand: [\"sh\"]"), "instances.a.comand", `; did you mean "command"?`},
		{"nested field", inst("resources: «memroy: \"1G\""), "instances.a.resources.memroy",
			`field "memroy" is not allowed here; allowed fields: cpus, memory, memoryReservation, nofile, pids; did you mean "memory"?`},
		{"field in a list element", inst("mounts: [{dst: \"/x\", «mod: \"tmpfs\"}]"), "instances.a.mounts[0].mod", `did you mean "mode"?`},
		{"field in defaults", fleetHead + "defaults: network: «egres: \"open\"\ninstances: a: role: image: \"x\"\n", "defaults.network.egres", `did you mean "egress"?`},
		{"top-level field", fleetHead + "«instance: a: role: image: \"x\"\n", "instance", `did you mean "instances"?`},
		{"wrong case", inst("«Command: [\"sh\"]"), "instances.a.Command", `did you mean "command"?`},
		{"daemon field", inst("docker: \"private\", dockerDaemon: «imag: \"docker:dind\""), "instances.a.dockerDaemon.imag",
			`field "imag" is not allowed here; allowed fields: image, privilege; did you mean "image"?`},
		{"security field", inst("security: «readOnlyRut: true"), "instances.a.security.readOnlyRut",
			`allowed fields: capabilities, noNewPrivileges, readOnlyRoot, user; did you mean "readOnlyRoot"?`},
		{"credential source field", inst("credentials: X_TOKEN: from: «enb: \"X\""), "instances.a.credentials.X_TOKEN.from.enb", `unknown credential source kind "enb"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fx := newFixture(t, map[string]string{"f.cue": c.src})
			_, diags := fx.load(t, fx.opts(), "f.cue")
			expect(t, diags, fx.where, c.path, c.want)
		})
	}
	// Too far from every field: no guess.
	for _, src := range []string{inst("«foo: 1"), fleetHead + "«color: \"red\"\n", inst("resources: «memoryLimitBytes: 1")} {
		fx := newFixture(t, map[string]string{"f.cue": src})
		_, diags := fx.load(t, fx.opts(), "f.cue")
		if len(diags) == 0 {
			t.Fatalf("accepted: %s", src)
		}
		for _, d := range diags {
			if strings.Contains(d.Msg, "did you mean") {
				t.Errorf("a guess for a field close to none: %s", d.String())
			}
		}
	}
}

func TestNearest(t *testing.T) {
	fields := schema.Fields("#Instance")
	cases := map[string][]string{
		"comand":   {"command"},
		"commmand": {"command"},
		"agnet":    {"agent"},
		"dockr":    {"docker"},
		"PROFILE":  {"profile"},
		"enb":      {"env"},
		"foo":      nil,
		"x":        nil,
		"sec":      nil,
		"netwrok":  {"network"},
		"rol":      {"role"},
	}
	for in, want := range cases {
		got := nearest(in, fields)
		sort.Strings(got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("nearest(%q) = %q, want %q", in, got, want)
		}
	}
	if got := nearest("ab", []string{"aa", "bb", "zz"}); !reflect.DeepEqual(got, []string{"aa", "bb"}) {
		t.Errorf("ties: got %q, want both", got)
	}
	if got := orList([]string{"a", "b", "c"}); got != `"a", "b" or "c"` {
		t.Errorf("orList = %s", got)
	}
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"memroy", "memory", 1}, {"kitten", "sitting", 3}, {"ab", "ba", 1}} {
		if got := editDistance(c.a, c.b); got != c.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}
