package manifests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/integrations"
	"github.com/jackin-dev/jackin/schema"
)

func TestIntegrationsNamedByTheManifestApply(t *testing.T) {
	fx := newFixture(t, map[string]string{
		"home/go/pkg/mod/cache/download/": "",
		"fleet.cue":                       fleetHead + "instances: a: {role: image: \"x\", integrations: [\"go\", \"node\"]}\n",
	})
	t.Setenv("GOFLAGS", "-mod=mod")
	f := fx.mustLoad(t, "fleet.cue")
	in := f.Instances["a"]
	var ro, eph []string
	for _, m := range in.Mounts {
		switch m.Mode {
		case schema.MountRO:
			ro = append(ro, m.Src+"->"+m.Dst)
		case schema.MountEphemeral:
			eph = append(eph, m.Dst)
		default:
			t.Fatalf("an integration added a %s mount: %+v", m.Mode, m)
		}
	}
	// ~/.npm/_cacache is not on this host: left out.
	if strings.Join(ro, ",") != filepath.Join(fx.dir, "home/go/pkg/mod/cache/download")+"->/opt/jackin/host/go-mod-download" {
		t.Fatalf("read-only mounts: %v", ro)
	}
	if len(eph) != 3 || in.Env["GOFLAGS"] != "-mod=mod" || in.Env["GOCACHE"] != "/opt/jackin/cache/go-build" || in.Env["npm_config_cache"] != "/opt/jackin/cache/npm" {
		t.Fatalf("caches %v, env %v", eph, in.Env)
	}
	if strings.Join(in.SnapshotExcludes, ",") != "node_modules" || len(in.IntegrationUses) != 2 || !in.IntegrationUses[0].Active {
		t.Fatalf("excludes %v, uses %+v", in.SnapshotExcludes, in.IntegrationUses)
	}
	if f.Pins[filepath.Join(fx.dir, "home/go/pkg/mod/cache/download")] == nil {
		t.Fatal("the integration's host source is not pinned like the manifest's own")
	}
}

func TestIntegrationRecommendationsNeedApproval(t *testing.T) {
	fx := newFixture(t, map[string]string{
		"repo/.jackin/integrations.yaml": "integrations: [rust]\n",
		"fleet.cue":                      fleetHead + "instances: a: {role: image: \"x\", mounts: [{src: \"$DIR/repo\", dst: \"/src\", mode: \"rw\"}]}\n",
	})
	state := t.TempDir()
	opts := fx.opts()
	opts.StateDir = state
	load := func() schema.Instance {
		res, diags := fx.load(t, opts, "fleet.cue")
		if diags != nil {
			t.Fatal(diags)
		}
		return res.Fleet.Instances["a"]
	}
	in := load()
	if len(in.IntegrationUses) != 1 || in.IntegrationUses[0].Active || !strings.Contains(in.IntegrationUses[0].Inactive, "not approved") || len(in.Mounts) != 1 || in.SnapshotExcludes != nil {
		t.Fatalf("unapproved recommendation: %+v, mounts %+v", in.IntegrationUses, in.Mounts)
	}
	rec, err := integrations.FindRecommendation(filepath.Join(fx.dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	if err := integrations.Approve(state, rec, time.Now()); err != nil {
		t.Fatal(err)
	}
	in = load()
	if !in.IntegrationUses[0].Active || in.Env["CARGO_HOME"] == "" || strings.Join(in.SnapshotExcludes, ",") != "target" {
		t.Fatalf("approved recommendation: %+v env %v", in.IntegrationUses, in.Env)
	}
	if err := os.WriteFile(rec.Path, []byte("integrations: [rust, node]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in = load()
	for _, u := range in.IntegrationUses {
		if u.Active || !strings.Contains(u.Inactive, "changed since it was approved") {
			t.Fatalf("changed recommendation: %+v", in.IntegrationUses)
		}
	}
	// A recommendation that tries to widen trust is a warning at its
	// file:line, and nothing in it is active.
	if err := os.WriteFile(rec.Path, []byte("integrations: [rust]\nmounts: [{src: /, dst: /host, mode: rw}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, diags := fx.load(t, opts, "fleet.cue")
	if diags != nil {
		t.Fatal(diags)
	}
	found := false
	for _, w := range res.Warnings {
		if at(w) == rec.Path+":2:1" && strings.Contains(w.Msg, "refused") {
			found = true
		}
	}
	if !found || len(res.Fleet.Instances["a"].Mounts) != 1 {
		t.Fatalf("widening recommendation: warnings %v, mounts %+v", res.Warnings, res.Fleet.Instances["a"].Mounts)
	}
}
