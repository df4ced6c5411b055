package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/contract"
)

// widenFleet is one idle instance with a mount of ./data in the given mode
// and the given extra fields.
func (e *env) widenFleet(mode, extra string) string {
	e.t.Helper()
	return e.manifest(fmt.Sprintf(`instances: web: {
	role: image: %q
	command: ["/agent", "idle"]
	mounts: [{src: "./data", dst: "/data", mode: %q}]
	resources: {memory: "64Mi", pids: 64}%s
}
`, agentImage, mode, extra))
}

// fleetObjects lists the fleet's containers (with their IDs) and networks.
func (e *env) fleetObjects() []string {
	out := dockerLines(e.t, "ps", "-a", "--no-trunc", "--filter", "label=dev.jackin.fleet="+e.fleet, "--format", "{{.ID}} {{.Names}} {{.State}}")
	return append(out, e.networks()...)
}

// TestWideningNeedsApproval: with --require-approval-for-widening, a plan
// that widens access (a new instance, a mount made writable, a new port) is
// refused with exit code 2 and changes nothing on the engine; --approve
// applies it; a plan that only narrows goes through. diff marks the
// widenings in text and JSON, and apply prints the changed contract
// sections of what it creates or recreates.
func TestWideningNeedsApproval(t *testing.T) {
	e := newEnv(t)
	if err := os.MkdirAll(filepath.Join(e.dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(e.dir, "data")
	m := e.widenFleet("ro", "")

	// A new instance widens access (from none): refused, nothing created.
	r := e.jackin("apply", "-f", m, "--require-approval-for-widening")
	mustCode(t, r, 2, "apply of a new instance without --approve")
	for _, want := range []string{"apply refused", "--require-approval-for-widening", "web (create): host path " + data + " is newly mounted at /data (read-only)", `web (create): egress widens from "none" to "open"`, "--approve"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("refusal lacks %q:\n%s", want, r)
		}
	}
	if !strings.Contains(r.stdout, "! widens access: host path "+data+" is newly mounted") {
		t.Errorf("the plan printed before the refusal lacks the widening mark:\n%s", r)
	}
	if strings.Contains(r.stdout, "web: created") {
		t.Errorf("a refused apply executed the plan:\n%s", r)
	}
	if objs := e.fleetObjects(); len(objs) != 0 {
		t.Fatalf("a refused apply changed the engine: %v", objs)
	}

	// -o json: the refusal and the widenings are in the document.
	r = e.jackin("apply", "-f", m, "--require-approval-for-widening", "-o", "json")
	mustCode(t, r, 2, "apply -o json without --approve")
	var refused struct {
		Refused string `json:"refused"`
		Plan    struct {
			Actions []struct {
				Instance string `json:"instance"`
				Widens   []struct {
					Field string `json:"field"`
				} `json:"widens"`
			} `json:"actions"`
		} `json:"plan"`
		Results []any `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &refused); err != nil {
		t.Fatalf("apply -o json: %v\n%s", err, r)
	}
	if !strings.Contains(refused.Refused, "widens") || len(refused.Plan.Actions) != 1 || len(refused.Plan.Actions[0].Widens) == 0 || len(refused.Results) != 0 {
		t.Errorf("refused apply document: %+v", refused)
	}

	// Approved: applied, with the compact contract after the plan.
	r = e.jackin("apply", "-f", m, "--require-approval-for-widening", "--approve")
	mustCode(t, r, 0, "approved apply")
	plan, contractPart, _ := strings.Cut(r.stdout, "Contract of web")
	if !strings.Contains(plan, "! widens access") || !strings.Contains(contractPart, "3. Filesystem") || !strings.Contains(contractPart, "ro "+data+" -> /data") ||
		!strings.Contains(contractPart, "5. Network") || !strings.Contains(contractPart, "web: created") {
		t.Errorf("approved apply: want the plan, then the contract, then the results:\n%s", r)
	}
	if e.containers()[e.name("web")] != "running" {
		t.Fatalf("containers after the approved apply: %v", e.containers())
	}
	before := e.fleetObjects()

	// Converged: nothing widens, so the flag lets it through.
	mustCode(t, e.jackin("apply", "-f", m, "--require-approval-for-widening"), 0, "converged apply")

	// The mount becomes writable and a port is published: diff marks both.
	m = e.widenFleet("rw", "\n\tnetwork: ports: [{container: 8080}]")
	r = e.jackin("diff", "-f", m)
	mustCode(t, r, 1, "diff with a widening")
	for _, want := range []string{"-/+ web", "! widens access: host path " + data + " becomes writable (mounted at /data)", "! widens access: container port 8080/tcp is newly published", "1 instance widens access"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("diff lacks %q:\n%s", want, r)
		}
	}
	r = e.jackin("diff", "-f", m, "-o", "json")
	mustCode(t, r, 1, "diff -o json with a widening")
	var doc struct {
		Actions []struct {
			Instance string `json:"instance"`
			Action   string `json:"action"`
			Widens   []struct {
				Field, Was, Now, Message string
			} `json:"widens"`
		} `json:"actions"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("diff -o json: %v\n%s", err, r.stdout)
	}
	if len(doc.Actions) != 1 || len(doc.Actions[0].Widens) != 2 || doc.Actions[0].Widens[0].Field != "mounts" || doc.Actions[0].Widens[1].Field != "network.ports" {
		t.Errorf("diff -o json widens: %+v", doc.Actions)
	}

	r = e.jackin("apply", "-f", m, "--require-approval-for-widening")
	mustCode(t, r, 2, "apply of a widening recreate without --approve")
	if got := e.fleetObjects(); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Fatalf("a refused apply changed the engine:\nbefore %v\nafter  %v", before, got)
	}
	r = e.jackin("apply", "-f", m, "--require-approval-for-widening", "--approve")
	mustCode(t, r, 0, "approved recreate")
	_, contractPart, _ = strings.Cut(r.stdout, "Contract of web (changed sections):")
	if !strings.Contains(contractPart, "3. Filesystem") || !strings.Contains(contractPart, "rw "+data+" -> /data") || !strings.Contains(contractPart, "6. Service ports") ||
		strings.Contains(contractPart, "5. Network") || strings.Contains(contractPart, "7. Resources") {
		t.Errorf("recreate: want only the changed sections (filesystem, ports):\n%s", r)
	}

	// Narrowing only (read-only again, the port dropped): no approval needed.
	m = e.widenFleet("ro", "")
	r = e.jackin("apply", "-f", m, "--require-approval-for-widening")
	mustCode(t, r, 0, "narrowing apply")
	if strings.Contains(r.stdout, "widens access") || !strings.Contains(r.stdout, "web: recreated") {
		t.Errorf("narrowing apply:\n%s", r)
	}
}

// TestSensitiveMountNeedsAllowSensitive: with HOME pointing at a test home,
// mounting ~/.ssh through a symlink, or $HOME itself, is refused at
// validate, diff and apply with the manifest's file:line and field; with
// allowSensitive: true it is accepted and explain still warns.
func TestSensitiveMountNeedsAllowSensitive(t *testing.T) {
	e := newEnv(t)
	home := filepath.Join(e.dir, "home")
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(home, ".ssh"), filepath.Join(e.dir, "keys")); err != nil {
		t.Fatal(err)
	}
	homeEnv := []string{"HOME=" + home}
	fleet := func(src, extra string) string {
		return e.manifest(fmt.Sprintf("instances: web: {\n\trole: image: %q\n\tcommand: [\"/agent\", \"idle\"]\n\tmounts: [{src: %q, dst: \"/k\", mode: \"ro\"%s}]\n}\n", agentImage, src, extra))
	}
	for _, src := range []string{"./keys", "~"} {
		m := fleet(src, "")
		for _, verb := range []string{"validate", "diff", "apply"} {
			r := e.jackinEnv(homeEnv, verb, "-f", m)
			mustCode(t, r, 2, verb+" of a sensitive mount "+src)
			// The mount is on line 7 of the manifest, its src at column 12.
			if want := m + ":7:12: instances.web.mounts[0].src: mounting "; !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "allowSensitive: true") {
				t.Errorf("%s %s: want a diagnostic starting %q naming allowSensitive:\n%s", verb, src, want, r)
			}
		}
	}
	if objs := e.fleetObjects(); len(objs) != 0 {
		t.Fatalf("a refused manifest changed the engine: %v", objs)
	}

	m := fleet("./keys", ", allowSensitive: true")
	mustCode(t, e.jackinEnv(homeEnv, "validate", "-f", m), 0, "validate with allowSensitive")
	r := e.jackinEnv(homeEnv, "explain", "-f", m, "-o", "json", "web")
	mustCode(t, r, 0, "explain with allowSensitive")
	var doc contract.Document
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("explain -o json: %v\n%s", err, r)
	}
	warned := false
	for _, w := range doc.Instances[0].Warnings {
		if w.Section == contract.SectionFilesystem && w.Message == "mount "+filepath.Join(e.dir, "keys")+" -> /k (ro, allowSensitive) exposes ~/.ssh (SSH keys)" {
			warned = true
		}
	}
	if sp := doc.Instances[0].Filesystem.SensitivePaths; !warned || len(sp) != 1 || !sp[0].Allowed {
		t.Errorf("explain does not warn about the allowed sensitive mount:\n%s", r)
	}
	r = e.jackinEnv(homeEnv, "diff", "-f", m)
	mustCode(t, r, 1, "diff with allowSensitive")
	if !strings.Contains(r.stdout, "! widens access: mount "+filepath.Join(e.dir, "keys")+" -> /k exposes ~/.ssh") {
		t.Errorf("diff does not mark the sensitive mount as a widening:\n%s", r)
	}
}
