package contract

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

func compactOf(t *testing.T, in schema.Instance, prev *reconciler.Spec) string {
	t.Helper()
	d, err := reconciler.BuildDesired(fleetOf("edge", map[string]schema.Instance{"web": in}))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Build(fleetOf("edge", map[string]schema.Instance{"web": in}), d, Options{Home: fakeHome})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteCompact(&b, &doc.Instances[0], prev); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func specOf(t *testing.T, in schema.Instance) *reconciler.Spec {
	t.Helper()
	d, err := reconciler.BuildDesired(fleetOf("edge", map[string]schema.Instance{"web": in}))
	if err != nil {
		t.Fatal(err)
	}
	return &d.Instances[0].Spec
}

func TestWriteCompact(t *testing.T) {
	base := instance(limited, func(in *schema.Instance) {
		in.Mounts = []schema.Mount{{Src: "/srv/project", Dst: "/work", Mode: schema.MountRO}, {Dst: "/tmp", Mode: schema.MountTmpfs, Size: "64Mi", SizeBytes: 64 << 20}}
		in.Env = map[string]string{"TZ": "UTC"}
	})
	grown := base
	grown.Mounts = []schema.Mount{{Src: "/srv/project", Dst: "/work", Mode: schema.MountRW}, {Src: fakeHome + "/.ssh", Dst: "/root/.ssh", Mode: schema.MountRO, AllowSensitive: true}, {Dst: "/tmp", Mode: schema.MountTmpfs, Size: "64Mi", SizeBytes: 64 << 20}}
	grown.Network.Ports = []schema.Port{{Container: 80, Host: 8080, Address: "0.0.0.0", Protocol: "tcp"}}
	valueOnly := base
	valueOnly.Env = map[string]string{"TZ": "Europe/Paris"}
	reordered := base
	reordered.Mounts = []schema.Mount{base.Mounts[1], base.Mounts[0]}

	cases := []struct {
		name string
		in   schema.Instance
		prev *reconciler.Spec
		want string
	}{
		{"new instance: every section it covers", base, nil, `Contract of web (no earlier contract recorded):
   1. Identity       image registry.example/agent:1, agent shell, backend docker
   2. Sandbox        Docker access none; host Docker socket not mounted
   3. Filesystem     tmpfs 64Mi -> /tmp, ro /srv/project -> /work
   4. Credentials    0 delivered; env keys TZ (values not shown)
   5. Network        egress open
   6. Service ports  none published
   7. Resources      memory 1Gi, reservation unlimited, CPUs 1 CPU, pids 256 processes
    ! egress is unrestricted: the agent can reach any host the engine host can reach, including the host's LAN
`},
		{"recreate: only the changed sections and their warnings", grown, specOf(t, base), `Contract of web (changed sections):
   3. Filesystem     ro /home/alice/.ssh -> /root/.ssh, tmpfs 64Mi -> /tmp, rw /srv/project -> /work
   6. Service ports  0.0.0.0:8080 -> 80/tcp
    ! mount /home/alice/.ssh -> /root/.ssh (ro, allowSensitive) exposes ~/.ssh (SSH keys)
    ! 0.0.0.0:8080 -> 80/tcp binds all interfaces: reachable from other machines
`},
		{"recreate for drift: nothing changed", base, specOf(t, base), "Contract of web (changed sections):\n    no section changed\n"},
		{"an env value is not part of the contract", valueOnly, specOf(t, base), "Contract of web (changed sections):\n    no section changed\n"},
		{"mount order is not part of the contract", reordered, specOf(t, base), "Contract of web (changed sections):\n    no section changed\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := compactOf(t, tc.in, tc.prev); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestContractWarnsAboutAllowedSystemPaths: a mount that allowSensitive lets
// through (a runtime login, a system path, another user's home) is named in
// the contract's warnings.
func TestContractWarnsAboutAllowedSystemPaths(t *testing.T) {
	in := instance(limited, func(in *schema.Instance) {
		in.Mounts = []schema.Mount{
			{Src: fakeHome + "/.claude", Dst: "/claude", Mode: schema.MountRO, AllowSensitive: true},
			{Src: "/etc", Dst: "/host-etc", Mode: schema.MountRO, AllowSensitive: true},
			{Src: "/home/bob", Dst: "/bob", Mode: schema.MountRO, AllowSensitive: true},
		}
	})
	got := compactOf(t, in, nil)
	for _, want := range []string{
		"! mount /home/alice/.claude -> /claude (ro, allowSensitive) exposes ~/.claude (Claude Code login)",
		"! mount /etc -> /host-etc (ro, allowSensitive) exposes /etc (the host's configuration)",
		"! mount /home/bob -> /bob (ro, allowSensitive) exposes /home/bob, another user's home directory",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the contract does not warn %q:\n%s", want, got)
		}
	}
}

// TestOneSpecDiffThreeWays: recreate reasons, widening marks and the
// compact contract's sections are printed from one structured diff
// (reconciler.CompareSpecs): a section shows, and a field widens, only
// when the diff names its field.
func TestOneSpecDiffThreeWays(t *testing.T) {
	base := instance(limited, func(in *schema.Instance) {
		in.Mounts = []schema.Mount{{Src: "/srv/project", Dst: "/work", Mode: schema.MountRO}}
		in.Env = map[string]string{"TZ": "UTC"}
	})
	cases := []struct {
		name     string
		mod      func(*schema.Instance)
		fields   []string // CompareSpecs' fields
		sections []string // compact sections shown
		widens   []string // widening fields
	}{
		{"a value of env", func(in *schema.Instance) { in.Env = map[string]string{"TZ": "Europe/Paris"} }, []string{"env"}, nil, nil},
		{"a new env key", func(in *schema.Instance) { in.Env = map[string]string{"TZ": "UTC", "K": "v"} }, []string{"env"}, []string{"Credentials"}, nil},
		{"a mount made writable", func(in *schema.Instance) { in.Mounts[0].Mode = schema.MountRW }, []string{"mounts"}, []string{"Filesystem"}, []string{"mounts"}},
		{"egress opened wider", func(in *schema.Instance) {
			in.Network.Egress = schema.EgressOpen
			in.Network.Ports = []schema.Port{{Container: 80, Host: 8080, Address: "0.0.0.0", Protocol: "tcp"}}
		}, []string{"network.ports"}, []string{"Service ports"}, []string{"network.ports"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next := base
			next.Mounts = append([]schema.Mount(nil), base.Mounts...)
			tc.mod(&next)
			prev := specOf(t, base)
			cur := specOf(t, next)
			var fields []string
			for _, c := range reconciler.CompareSpecs(*prev, *cur) {
				fields = append(fields, c.Field)
			}
			if strings.Join(fields, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("diff fields %v, want %v", fields, tc.fields)
			}
			out := compactOf(t, next, prev)
			for _, s := range []string{"Identity", "Sandbox", "Filesystem", "Credentials", "Network", "Service ports", "Resources"} {
				want := slices.Contains(tc.sections, s)
				if got := strings.Contains(out, ". "+s+" "); got != want {
					t.Errorf("section %s shown %v, want %v:\n%s", s, got, want, out)
				}
			}
			p := &reconciler.Plan{Actions: []reconciler.Action{{Instance: "web", Type: reconciler.ActionRecreate, Desired: &reconciler.DesiredInstance{Name: "web", Spec: *cur}}}}
			MarkWidenings(p, reconciler.LastApplied{"web": *prev}, fakeHome)
			var widens []string
			for _, w := range p.Actions[0].Widens {
				widens = append(widens, w.Field)
			}
			if strings.Join(widens, ",") != strings.Join(tc.widens, ",") {
				t.Errorf("widenings %v, want %v", widens, tc.widens)
			}
		})
	}
}
