package contract

import (
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

func baseSpec() reconciler.Spec {
	return reconciler.Spec{
		FormatVersion: reconciler.SpecFormatVersion,
		Backend:       schema.BackendDocker,
		Image:         "img:1",
		Agent:         schema.AgentShell,
		Mounts: []reconciler.SpecMount{
			{Src: "/srv/project", Dst: "/work", Mode: schema.MountRO},
			{Dst: "/tmp", Mode: schema.MountTmpfs, SizeBytes: 1 << 20},
		},
		Resources: reconciler.SpecResources{MemoryBytes: 1 << 30, NanoCPUs: 1e9, Pids: 100},
		Network: reconciler.SpecNetwork{Egress: schema.EgressOpen, Ports: []reconciler.SpecPort{
			{Container: 3000, Host: 13000, Address: "127.0.0.1", Protocol: "tcp"},
		}},
		Docker: schema.DockerNone,
	}
}

func TestWidenings(t *testing.T) {
	cases := []struct {
		name   string
		change func(*reconciler.Spec)
		want   []string // "field: message substring", in order
	}{
		{"unchanged", func(*reconciler.Spec) {}, nil},
		{"narrowed", func(s *reconciler.Spec) {
			s.Mounts = nil
			s.Network.Ports = nil
			s.Resources = reconciler.SpecResources{MemoryBytes: 1 << 20, NanoCPUs: 1e8, Pids: 10}
		}, nil},
		{"ro to rw", func(s *reconciler.Spec) { s.Mounts[0].Mode = schema.MountRW }, []string{"mounts: host path /srv/project becomes writable"}},
		{"new host path", func(s *reconciler.Spec) {
			s.Mounts = append(s.Mounts, reconciler.SpecMount{Src: "/etc", Dst: "/host-etc", Mode: schema.MountRO})
		}, []string{"mounts: host path /etc is newly mounted at /host-etc (read-only)"}},
		{"subdirectory of a mounted path", func(s *reconciler.Spec) {
			s.Mounts = append(s.Mounts, reconciler.SpecMount{Src: "/srv/project/docs", Dst: "/docs", Mode: schema.MountRO})
		}, nil},
		{"writable subdirectory of a read-only path", func(s *reconciler.Spec) {
			s.Mounts = append(s.Mounts, reconciler.SpecMount{Src: "/srv/project/out", Dst: "/out", Mode: schema.MountRW})
		}, []string{"mounts: host path /srv/project/out becomes writable"}},
		{"parent of a mounted path", func(s *reconciler.Spec) { s.Mounts[0].Src = "/srv" }, []string{"mounts: host path /srv is newly mounted"}},
		{"tmpfs grows", func(s *reconciler.Spec) { s.Mounts[1].SizeBytes = 1 << 30 }, nil},
		{"sensitive path", func(s *reconciler.Spec) {
			s.Mounts = append(s.Mounts, reconciler.SpecMount{Src: fakeHome + "/.aws", Dst: "/aws", Mode: schema.MountRO})
		}, []string{"mounts: host path " + fakeHome + "/.aws is newly mounted", "mounts: mount " + fakeHome + "/.aws -> /aws exposes ~/.aws"}},
		{"port on all interfaces", func(s *reconciler.Spec) { s.Network.Ports[0].Address = "0.0.0.0" }, []string{"network.ports: container port 3000/tcp is published more widely: 0.0.0.0:13000/tcp"}},
		{"port moved on loopback", func(s *reconciler.Spec) { s.Network.Ports[0].Host = 14000 }, nil},
		{"new port", func(s *reconciler.Spec) {
			s.Network.Ports = append(s.Network.Ports, reconciler.SpecPort{Container: 53, Address: "127.0.0.1", Protocol: "udp"})
		}, []string{"network.ports: container port 53/udp is newly published on 127.0.0.1:engine-assigned/udp"}},
		{"docker access", func(s *reconciler.Spec) { s.Docker = "private" }, []string{`docker: Docker access changes from "none" to "private"`}},
		{"limits", func(s *reconciler.Spec) {
			s.Resources = reconciler.SpecResources{MemoryBytes: 0, NanoCPUs: 2e9, Pids: 100}
		}, []string{"resources.cpus: cpus limit is raised from 1 CPUs to 2 CPUs", "resources.memory: memory limit 1Gi is removed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next := baseSpec()
			next.Mounts = append([]reconciler.SpecMount(nil), next.Mounts...)
			next.Network.Ports = append([]reconciler.SpecPort(nil), next.Network.Ports...)
			tc.change(&next)
			got := Widenings(AccessOfSpec(baseSpec(), fakeHome), AccessOfSpec(next, fakeHome))
			if len(got) != len(tc.want) {
				t.Fatalf("got %d widening(s), want %d:\n%+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				field, msg, _ := strings.Cut(w, ": ")
				if got[i].Field != field || !strings.Contains(got[i].Message, msg) {
					t.Errorf("widening %d = %s: %q, want %s: %q", i, got[i].Field, got[i].Message, field, msg)
				}
			}
		})
	}
}

func TestWideningEgressRanks(t *testing.T) {
	for _, tc := range []struct {
		prev, next string
		widens     bool
	}{
		{"none", "allowlist", true},
		{"allowlist", "open", true},
		{"none", "open", true},
		{"open", "none", false},
		{"open", "open", false},
	} {
		got := Widenings(Access{Egress: tc.prev}, Access{Egress: tc.next})
		if (len(got) == 1) != tc.widens {
			t.Errorf("%s -> %s: %+v", tc.prev, tc.next, got)
		}
	}
}

func TestWideningCredentials(t *testing.T) {
	got := Widenings(Access{Credentials: []string{"gh"}}, Access{Credentials: []string{"gh", "aws"}})
	if len(got) != 1 || got[0].Field != "credentials" || !strings.Contains(got[0].Message, "aws") {
		t.Errorf("%+v", got)
	}
}

// TestContractAccessMatchesSpec: a contract's access is its spec's, so a
// contract can be compared with a last-applied spec.
func TestContractAccessMatchesSpec(t *testing.T) {
	f := fleetOf("edge", map[string]schema.Instance{"a": instance(limited, func(in *schema.Instance) {
		in.Mounts = []schema.Mount{{Src: "/srv", Dst: "/srv", Mode: schema.MountRW}}
	})})
	d, err := reconciler.BuildDesired(f)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Build(f, d, Options{Home: fakeHome})
	if err != nil {
		t.Fatal(err)
	}
	if w := Widenings(AccessOfSpec(d.Instances[0].Spec, fakeHome), doc.Instances[0].Access()); len(w) != 0 {
		t.Errorf("a contract widens its own spec: %+v", w)
	}
	if w := Widenings(AccessOfSpec(reconciler.Spec{Network: reconciler.SpecNetwork{Egress: schema.EgressOpen}, Docker: schema.DockerNone, Resources: d.Instances[0].Spec.Resources}, fakeHome), doc.Instances[0].Access()); len(w) != 1 || w[0].Field != "mounts" {
		t.Errorf("adding a rw mount: %+v", w)
	}
}

// TestMarkWidenings: creates and recreates are compared with the last
// applied spec, or with no access at all when none is recorded; other
// actions change no spec and widen nothing.
func TestMarkWidenings(t *testing.T) {
	narrow := baseSpec()
	wide := baseSpec()
	wide.Mounts = append([]reconciler.SpecMount{{Src: "/srv/cache", Dst: "/cache", Mode: schema.MountRW}}, wide.Mounts...)
	desired := func(name string, s reconciler.Spec) *reconciler.DesiredInstance {
		return &reconciler.DesiredInstance{Name: name, Spec: s}
	}
	p := &reconciler.Plan{Fleet: "f", Actions: []reconciler.Action{
		{Instance: "fresh", Type: reconciler.ActionCreate, Desired: desired("fresh", narrow)},
		{Instance: "missing", Type: reconciler.ActionCreate, Desired: desired("missing", narrow)},
		{Instance: "grown", Type: reconciler.ActionRecreate, Desired: desired("grown", wide)},
		{Instance: "same", Type: reconciler.ActionRecreate, Desired: desired("same", narrow)},
		{Instance: "unknown", Type: reconciler.ActionRecreate, Desired: desired("unknown", narrow)},
		{Instance: "started", Type: reconciler.ActionStart, Desired: desired("started", wide)},
		{Instance: "kept", Type: reconciler.ActionNoop, Desired: desired("kept", wide), Widens: []Widening{{Field: "stale"}}},
		{Instance: "gone", Type: reconciler.ActionDelete},
	}}
	last := reconciler.LastApplied{"missing": narrow, "grown": narrow, "same": narrow, "started": narrow, "kept": narrow}
	if n := MarkWidenings(p, last, fakeHome); n != 3 {
		t.Errorf("MarkWidenings = %d, want 3 (fresh, grown, unknown)", n)
	}
	want := map[string][]string{
		// Nothing before: the mount, open egress and the port are all new.
		"fresh":   {"mounts: host path /srv/project is newly mounted", `network.egress: egress widens from "none" to "open"`, "network.ports: container port 3000/tcp is newly published"},
		"grown":   {"mounts: host path /srv/cache is newly mounted at /cache (read-write)"},
		"unknown": {"mounts: host path /srv/project is newly mounted", "network.egress: egress widens", "network.ports: container port 3000/tcp"},
	}
	for _, a := range p.Actions {
		w := want[a.Instance]
		if len(a.Widens) != len(w) {
			t.Errorf("%s (%s): %d widening(s), want %d: %+v", a.Instance, a.Type, len(a.Widens), len(w), a.Widens)
			continue
		}
		for i, s := range w {
			field, msg, _ := strings.Cut(s, ": ")
			if a.Widens[i].Field != field || !strings.Contains(a.Widens[i].Message, msg) {
				t.Errorf("%s widening %d = %s: %q, want %s: %q", a.Instance, i, a.Widens[i].Field, a.Widens[i].Message, field, msg)
			}
		}
	}
	if MarkWidenings(nil, nil, fakeHome) != 0 {
		t.Error("a nil plan widens")
	}
}

// TestWideningKindsTheSchemaCannotExpressYet: credentials and a private
// Docker daemon are not manifest fields yet, so no plan can carry them; the
// comparison already reports them, for a new instance and for a change.
func TestWideningKindsTheSchemaCannotExpressYet(t *testing.T) {
	next := NoAccess()
	next.Docker = "private"
	next.Credentials = []string{"github"}
	got := Widenings(NoAccess(), next)
	if len(got) != 2 || got[0].Field != "credentials" || got[0].Message != "credential github is newly delivered" ||
		got[1].Field != "docker" || got[1].Was != schema.DockerNone || got[1].Now != "private" {
		t.Errorf("new instance with a credential and a private daemon: %+v", got)
	}
	prev := next
	next.Credentials = []string{"github", "npm"}
	if got := Widenings(prev, next); len(got) != 1 || got[0].Field != "credentials" || !strings.Contains(got[0].Message, "npm") {
		t.Errorf("one more credential: %+v", got)
	}
	if got := Widenings(next, prev); len(got) != 0 {
		t.Errorf("fewer credentials and the same daemon widen: %+v", got)
	}
	if got := Widenings(next, NoAccess()); len(got) != 0 {
		t.Errorf("dropping Docker access and credentials widens: %+v", got)
	}
}
