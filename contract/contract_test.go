package contract

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/manifests"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

func TestSensitivePathFindingsFakeHome(t *testing.T) {
	const home = "/nonexistent-home/alice"
	cases := []struct {
		src  string
		want []string // substrings, one per finding, in order
	}{
		{home, []string{"the home directory " + home}},
		{home + "/", []string{"the home directory " + home}},
		{"/nonexistent-home", []string{"the home directory " + home}},
		{"/", []string{"the home directory " + home}},
		{home + "/.ssh", []string{"exposes ~/.ssh (SSH keys)"}},
		{home + "/.ssh/id_ed25519", []string{"exposes part of ~/.ssh"}},
		{home + "/.aws", []string{"~/.aws"}},
		{home + "/.gnupg", []string{"~/.gnupg"}},
		{home + "/.docker/config.json", []string{"part of ~/.docker"}},
		{home + "/.kube", []string{"~/.kube"}},
		{home + "/.netrc", []string{"~/.netrc"}},
		{home + "/.npmrc", []string{"~/.npmrc"}},
		{home + "/.git-credentials", []string{"~/.git-credentials"}},
		{home + "/.azure", []string{"~/.azure"}},
		{home + "/.config/gh", []string{"~/.config/gh"}},
		{home + "/.config/gcloud", []string{"~/.config/gcloud"}},
		{home + "/.config/op", []string{"~/.config/op"}},
		{home + "/.config", []string{"~/.config/gh (GitHub CLI token), which it contains", "~/.config/gcloud", "~/.config/op", "~/.config/amp (Amp settings)", "~/.config/opencode (OpenCode settings)"}},
		{home + "/src/project", nil},
		{home + "/.sshfoo", nil},
		{home + "/.config/nvim", nil},
		{"/nonexistent-home/bob", nil},
		{"/srv/work", nil},
		{home + "/src/../.ssh", []string{"exposes ~/.ssh"}},
		{"relative/.ssh", nil},
		{"", nil},
	}
	for _, tc := range cases {
		got := SensitivePathFindings(tc.src, home)
		if len(got) != len(tc.want) {
			t.Errorf("SensitivePathFindings(%q) = %q, want %d finding(s) %q", tc.src, got, len(tc.want), tc.want)
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("SensitivePathFindings(%q)[%d] = %q, want it to contain %q", tc.src, i, got[i], w)
			}
		}
	}
	if got := SensitivePathFindings(home+"/.ssh", ""); got != nil {
		t.Errorf("no home: want no findings, got %q", got)
	}
}

// TestSensitivePathFindingsSymlinks uses a real home with links: symlinks
// are resolved before matching, in the mount source and in the home.
func TestSensitivePathFindingsSymlinks(t *testing.T) {
	tmp := t.TempDir()
	realHome := filepath.Join(tmp, "real-home")
	mustMkdir(t, filepath.Join(realHome, ".ssh"))
	mustMkdir(t, filepath.Join(realHome, "code"))
	mustMkdir(t, filepath.Join(tmp, "elsewhere"))
	linkedHome := filepath.Join(tmp, "home-link")
	mustSymlink(t, realHome, linkedHome)
	keysLink := filepath.Join(tmp, "elsewhere", "keys")
	mustSymlink(t, filepath.Join(realHome, ".ssh"), keysLink)
	homeLink := filepath.Join(tmp, "elsewhere", "me")
	mustSymlink(t, realHome, homeLink)

	cases := []struct {
		name, src, home, want string
	}{
		{"link to ~/.ssh", keysLink, realHome, "exposes ~/.ssh"},
		{"link to home", homeLink, realHome, "the home directory"},
		{"home given through a link", filepath.Join(realHome, ".ssh"), linkedHome, "exposes ~/.ssh"},
		{"source through a linked home", filepath.Join(linkedHome, ".ssh"), realHome, "exposes ~/.ssh"},
		{"missing file under a linked dir", filepath.Join(keysLink, "id_rsa"), realHome, "part of ~/.ssh"},
		{"unrelated dir", filepath.Join(realHome, "code"), linkedHome, ""},
	}
	for _, tc := range cases {
		got := SensitivePathFindings(tc.src, tc.home)
		switch {
		case tc.want == "" && len(got) > 0:
			t.Errorf("%s: want no finding, got %q", tc.name, got)
		case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
			t.Errorf("%s: SensitivePathFindings(%s, %s) = %q, want one finding with %q", tc.name, tc.src, tc.home, got, tc.want)
		}
	}
}

// TestSensitiveMountInContract: a temp HOME with .ssh, mounted through a
// symlink, shows up as a warning and a sensitive path.
func TestSensitiveMountInContract(t *testing.T) {
	tmp := t.TempDir()
	home := filepath.Join(tmp, "home")
	mustMkdir(t, filepath.Join(home, ".ssh"))
	link := filepath.Join(tmp, "innocent")
	mustSymlink(t, filepath.Join(home, ".ssh"), link)
	f := fleetOf("edge", map[string]schema.Instance{"a": instance(func(in *schema.Instance) {
		in.Mounts = []schema.Mount{{Src: link, Dst: "/data", Mode: schema.MountRO}}
	})})
	doc, err := Build(f, nil, Options{Home: home, StateDir: fakeStateDir})
	if err != nil {
		t.Fatal(err)
	}
	c := doc.Instances[0]
	if len(c.Filesystem.SensitivePaths) != 1 || c.Filesystem.SensitivePaths[0].Source != link || c.Filesystem.SensitivePaths[0].Severity != SeverityWarning {
		t.Fatalf("sensitive paths: %+v", c.Filesystem.SensitivePaths)
	}
	found := false
	for _, w := range c.Warnings {
		if w.Section == SectionFilesystem && strings.Contains(w.Message, "~/.ssh") {
			found = true
		}
	}
	if !found {
		t.Errorf("no filesystem warning for ~/.ssh: %+v", c.Warnings)
	}
	if got := c.Access().Mounts; len(got) != 1 || len(got[0].Sensitive) != 1 {
		t.Errorf("access mounts: %+v", got)
	}
}

// TestAllowedSensitiveMountStillWarns goes through the real loader: a mount
// of a symlink to ~/.ssh is refused without allowSensitive, and with it the
// contract still lists the mount as a sensitive path and a warning.
func TestAllowedSensitiveMountStillWarns(t *testing.T) {
	tmp := t.TempDir()
	home := filepath.Join(tmp, "home")
	mustMkdir(t, filepath.Join(home, ".ssh"))
	mustSymlink(t, filepath.Join(home, ".ssh"), filepath.Join(tmp, "keys"))
	load := func(allow string) (*schema.Fleet, error) {
		p := filepath.Join(tmp, "fleet.cue")
		text := `apiVersion: "jackin.dev/v1alpha1"
kind: "Fleet"
name: "edge"
instances: a: {role: image: "x", mounts: [{src: "./keys", dst: "/keys", mode: "ro"` + allow + `}]}
`
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := manifests.Load(context.Background(), []string{p}, manifests.Options{Home: home, HostCPUs: 2})
		if err != nil {
			return nil, err
		}
		return res.Fleet, nil
	}
	if _, err := load(""); err == nil || !strings.Contains(err.Error(), "exposes ~/.ssh") {
		t.Fatalf("without allowSensitive: want the mount refused, got %v", err)
	}
	f, err := load(", allowSensitive: true")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Build(f, nil, Options{Home: home, StateDir: fakeStateDir})
	if err != nil {
		t.Fatal(err)
	}
	c := doc.Instances[0]
	if sp := c.Filesystem.SensitivePaths; len(sp) != 1 || !sp[0].Allowed || sp[0].Severity != SeverityWarning {
		t.Errorf("sensitive paths: %+v", sp)
	}
	found := false
	for _, w := range c.Warnings {
		if w.Section == SectionFilesystem && strings.Contains(w.Message, "(ro, allowSensitive) exposes ~/.ssh") {
			found = true
		}
	}
	if !found {
		t.Errorf("no filesystem warning for the allowed ~/.ssh mount: %+v", c.Warnings)
	}
}

func TestBuildSelectsInstances(t *testing.T) {
	f := fleetOf("edge", map[string]schema.Instance{"a": instance(), "b": instance(), "c": instance()})
	doc, err := Build(f, nil, Options{Instances: []string{"c", "a", "c"}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range doc.Instances {
		names = append(names, c.Instance)
	}
	if !reflect.DeepEqual(names, []string{"c", "a"}) {
		t.Errorf("selected %v, want [c a]", names)
	}

	_, err = Build(f, nil, Options{Instances: []string{"a", "x", "y"}})
	var unknown *UnknownInstancesError
	if !errors.As(err, &unknown) || !reflect.DeepEqual(unknown.Names, []string{"x", "y"}) {
		t.Fatalf("want an UnknownInstancesError naming x and y, got %v", err)
	}
	if !strings.Contains(err.Error(), `no instance named x, y in fleet "edge"`) {
		t.Errorf("error text: %v", err)
	}

	doc, err = Build(f, nil, Options{})
	if err != nil || len(doc.Instances) != 3 || doc.Instances[0].Instance != "a" || doc.Instances[2].Instance != "c" {
		t.Fatalf("all instances, sorted: %v %+v", err, doc)
	}
}

// TestContractMatchesDesired: the contract's values come from the desired
// state the reconciler creates resources from.
func TestContractMatchesDesired(t *testing.T) {
	f := fleetOf("edge", map[string]schema.Instance{"a": instance(func(in *schema.Instance) {
		in.Resources = schema.Resources{Memory: "64Mi", MemoryBytes: 64 << 20, Pids: 50, CPUs: 0.25}
		in.Mounts = []schema.Mount{{Src: "/srv/ro", Dst: "/ro", Mode: schema.MountRO}, {Dst: "/tmp", Mode: schema.MountTmpfs, Size: "8Mi", SizeBytes: 8 << 20}}
	})})
	d, err := reconciler.BuildDesired(f)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Build(f, d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := doc.Instances[0]
	ctr := agentContainer(&d.Instances[0])
	if c.Resources.Memory.Value != ctr.Memory || c.Resources.Pids.Value != ctr.PidsLimit || c.Resources.CPUs.Value != ctr.NanoCPUs {
		t.Errorf("resources %+v differ from the container spec %+v", c.Resources, ctr)
	}
	if len(c.Filesystem.Mounts) != len(ctr.Mounts) {
		t.Fatalf("mounts %+v vs %+v", c.Filesystem.Mounts, ctr.Mounts)
	}
	for i, m := range ctr.Mounts {
		cm := c.Filesystem.Mounts[i]
		if cm.Type != m.Type || cm.Source != m.Source || cm.Destination != m.Target || (cm.Mode == schema.MountRO) != m.ReadOnly || cm.SizeBytes != m.SizeBytes {
			t.Errorf("mount %d: contract %+v, container %+v", i, cm, m)
		}
	}
	if c.Identity.SpecHash != d.Instances[0].Hash || c.Identity.Container != reconciler.ResourceName(f.Name, d.Instances[0].Name) {
		t.Errorf("identity %+v", c.Identity)
	}
}

func TestTier(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*schema.Instance)
		want string
	}{
		{"attended shell, ro mount", func(in *schema.Instance) {
			in.Mounts = []schema.Mount{{Src: "/srv", Dst: "/srv", Mode: schema.MountRO}}
		}, TierAdequate},
		{"unattended agent", func(in *schema.Instance) { in.Agent = schema.AgentCodex }, TierStronger},
		{"open egress and rw mount", func(in *schema.Instance) {
			in.Mounts = []schema.Mount{{Src: "/srv", Dst: "/srv", Mode: schema.MountRW}}
		}, TierStronger},
		{"docker access", func(in *schema.Instance) { in.Docker = "private" }, TierStronger},
	}
	for _, tc := range cases {
		f := fleetOf("edge", map[string]schema.Instance{"a": instance(tc.mod)})
		doc, err := Build(f, nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		tier := doc.Instances[0].Tier
		if tier.Recommendation != tc.want {
			t.Errorf("%s: recommendation %q, want %q (%+v)", tc.name, tier.Recommendation, tc.want, tier)
		}
		if (tier.Recommendation == TierStronger) != (len(tier.Reasons) > 0) {
			t.Errorf("%s: reasons %q do not match %q", tc.name, tier.Reasons, tier.Recommendation)
		}
	}
}

func TestRestoreCommand(t *testing.T) {
	cases := map[string][]string{
		"jackin apply -f fleet.cue -f fleets/":                {"fleet.cue", "fleets/"},
		"jackin apply -f 'my fleet.cue'":                      {"my fleet.cue"},
		"jackin apply -f - (with the same manifest on stdin)": {"-"},
		"jackin apply -f <the fleet's manifest>":              nil,
	}
	for want, paths := range cases {
		if got := restoreCommand(paths); got != want {
			t.Errorf("restoreCommand(%q) = %q, want %q", paths, got, want)
		}
	}
}

func TestObserveStateDirOnlyLooks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	got := ObserveStateDir(dir, "edge")
	for p, ok := range got {
		if ok {
			t.Errorf("%s reported present", p)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("ObserveStateDir created the state dir: %v", err)
	}
	mustMkdir(t, filepath.Join(dir, "locks"))
	if err := os.WriteFile(filepath.Join(dir, "jackin.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	db, lock := StatePaths(dir, "edge")
	got = ObserveStateDir(dir, "edge")
	if !got[db] || got[lock] {
		t.Errorf("state files: %v", got)
	}
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
