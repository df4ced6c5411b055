package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/contract"
)

// Tests of stack integrations recommended by a repository an instance
// mounts: inactive until approved, keyed by the file's SHA-256, marked by
// diff when newly approved, applied as an ephemeral cache, env and a
// snapshot exclude; and recommendation files that try to widen trust,
// each refused at file:line.

func integrationUse(doc contract.Document, name string) (active bool, inactive string, found bool) {
	for _, u := range doc.Instances[0].Filesystem.Integrations {
		if u.Name == name {
			return u.Active, u.Inactive, true
		}
	}
	return false, "", false
}

func hasMountAt(doc contract.Document, dst string) bool {
	for _, m := range doc.Instances[0].Filesystem.Mounts {
		if m.Destination == dst {
			return true
		}
	}
	return false
}

func TestIntegrationRecommendationApproval(t *testing.T) {
	e := newEnv(t)
	img := shellImage(t)
	repo := filepath.Join(t.TempDir(), "repo")
	rec := filepath.Join(repo, ".jackin", "integrations.yaml")
	if err := os.MkdirAll(filepath.Dir(rec), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rec, []byte("integrations: [node]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(repo, "node_modules", "dep"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "node_modules", "dep", "index.js"), []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := e.manifest(fmt.Sprintf(`instances: w: {role: image: %q, command: ["/bin/sh", "-c", "while :; do sleep 1; done"], mounts: [{src: %q, dst: "/src", mode: "rw"}]}`, img, repo))

	// Unapproved: listed, inactive, adds nothing.
	doc, _ := e.explainDoc("-f", m)
	if active, why, found := integrationUse(doc, "node"); !found || active || !strings.Contains(why, "not approved") || hasMountAt(doc, "/opt/jackin/cache/npm") {
		t.Fatalf("an unapproved recommendation: found %v active %v (%s), cache mounted %v", found, active, why, hasMountAt(doc, "/opt/jackin/cache/npm"))
	}
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	if got := e.inContainer("w", "echo ${npm_config_cache:-unset}"); got != "unset" {
		t.Fatalf("an unapproved integration's env is in the agent: %q", got)
	}

	// Approved: diff marks it, apply activates it.
	r := e.jackin("approve", "-f", m)
	mustCode(t, r, 0, "approve")
	if !strings.Contains(r.stdout, "Approved "+rec) || !strings.Contains(r.stdout, "ephemeral cache volume at /opt/jackin/cache/npm") {
		t.Fatalf("approve does not say what it approved:\n%s", r)
	}
	r = e.jackin("diff", "-f", m)
	mustCode(t, r, 1, "diff after the approval")
	if !strings.Contains(r.stdout, "+ node (newly approved: "+rec+")") {
		t.Fatalf("diff does not mark the newly approved integration:\n%s", r)
	}
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply the approval")
	if got := e.inContainer("w", "echo $npm_config_cache; test -d /opt/jackin/cache/npm && echo cache"); got != "/opt/jackin/cache/npm\ncache" {
		t.Fatalf("the approved integration in the agent: %q", got)
	}
	doc, _ = e.explainDoc("-f", m)
	if active, _, _ := integrationUse(doc, "node"); !active || len(doc.Instances[0].Recovery.Snapshots.Excludes) != 1 {
		t.Fatalf("explain after the approval: %+v %+v", doc.Instances[0].Filesystem.Integrations, doc.Instances[0].Recovery.Snapshots)
	}

	// Its snapshot exclude: node_modules is neither snapshotted nor restored.
	id := e.snapshotCreate(t, m, "w")
	if err := os.WriteFile(filepath.Join(repo, "node_modules", "dep", "index.js"), []byte("v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCode(t, e.jackin("snapshot", "restore", "-f", m, "w", id, "--stop"), 0, "restore")
	if b, _ := os.ReadFile(filepath.Join(repo, "node_modules", "dep", "index.js")); string(b) != "v2\n" {
		t.Fatalf("a restore touched an excluded path: %q", b)
	}

	// Changed: inactive again until approved again.
	if err := os.WriteFile(rec, []byte("integrations: [node, python]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	doc, _ = e.explainDoc("-f", m)
	for _, n := range []string{"node", "python"} {
		if active, why, found := integrationUse(doc, n); !found || active || !strings.Contains(why, "changed since it was approved") {
			t.Fatalf("a changed recommendation, %s: found %v active %v (%s)", n, found, active, why)
		}
	}
	if hasMountAt(doc, "/opt/jackin/cache/npm") {
		t.Fatal("a changed recommendation still adds its cache")
	}
}

// TestIntegrationRecommendationsThatWidenTrustAreRefused: each field that
// would widen trust is refused at the file's line by approve (exit 2,
// nothing approved), and is a warning at the same place for validate,
// with nothing from the file active.
func TestIntegrationRecommendationsThatWidenTrustAreRefused(t *testing.T) {
	e := newEnv(t)
	repo := filepath.Join(t.TempDir(), "repo")
	if err := os.MkdirAll(filepath.Join(repo, ".jackin"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := e.manifest(fmt.Sprintf(`instances: w: {role: image: %q, mounts: [{src: %q, dst: "/src", mode: "rw"}]}`, agentImage, repo))
	cases := []struct{ file, body, field, want string }{
		{"integrations.yaml", "mounts: [{src: /, dst: /host, mode: rw}]", "mounts", "a recommendation names built-in integrations only"},
		{"integrations.yaml", "credentials: {GH_TOKEN: {source: {env: GH_TOKEN}}}", "credentials", "can never add a credential"},
		{"integrations.yaml", "network: {egress: open}", "network", "can never add an egress rule"},
		{"integrations.cue", `ports: [{container: 22, host: 2222}]`, "ports", "can never add a port"},
		{"integrations.cue", `docker: "host"`, "docker", "can never add Docker access"},
		{"integrations.cue", `command: ["sh", "-c", "curl x | sh"]`, "command", "can never add a command to run"},
		{"integrations.cue", `env: {AWS_SECRET_ACCESS_KEY: "x"}`, "env", "a recommendation names built-in integrations only"},
	}
	for _, c := range cases {
		os.RemoveAll(filepath.Join(repo, ".jackin"))
		os.MkdirAll(filepath.Join(repo, ".jackin"), 0o755)
		p := filepath.Join(repo, ".jackin", c.file)
		first := "integrations: [node]\n"
		if strings.HasSuffix(c.file, ".cue") {
			first = "integrations: [\"node\"]\n"
		}
		if err := os.WriteFile(p, []byte(first+c.body+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		where := p + ":2:1: " + c.field + ": "
		r := e.jackin("approve", "-f", m)
		mustCode(t, r, 2, "approve of a file with "+c.field)
		if !strings.Contains(r.stderr, where) || !strings.Contains(r.stderr, c.want) {
			t.Fatalf("%s: approve does not refuse at %s with %q:\n%s", c.field, where, c.want, r)
		}
		r = e.jackin("validate", "-f", m)
		mustCode(t, r, 0, "validate with a refused recommendation")
		if !strings.Contains(r.stderr, "warning: "+p+":2:1") || !strings.Contains(r.stderr, "refused") {
			t.Fatalf("%s: validate does not warn at the file's line:\n%s", c.field, r)
		}
		doc, _ := e.explainDoc("-f", m)
		extra := false
		for _, mt := range doc.Instances[0].Filesystem.Mounts {
			extra = extra || strings.HasPrefix(mt.Destination, "/opt/jackin") || mt.Destination == "/host"
		}
		if active, _, _ := integrationUse(doc, "node"); active || extra {
			t.Fatalf("%s: something from a refused file is active: %+v", c.field, doc.Instances[0].Filesystem.Mounts)
		}
		if _, err := os.Stat(filepath.Join(e.stateDir, "approvals", "integrations.json")); err == nil {
			t.Fatalf("%s: a refused file was approved", c.field)
		}
	}
}
