package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/contract"
)

// engineSnapshot lists every object on the engine by ID and name: containers,
// networks, volumes and images (including intermediate ones).
func engineSnapshot(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, q := range []struct {
		kind string
		args []string
	}{
		{"container", []string{"ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}"}},
		{"network", []string{"network", "ls", "--no-trunc", "--format", "{{.ID}} {{.Name}}"}},
		{"volume", []string{"volume", "ls", "--format", "{{.Name}}"}},
		{"image", []string{"image", "ls", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"}},
	} {
		lines := strings.Split(docker(t, q.args...), "\n")
		for _, l := range lines {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, q.kind+" "+l)
			}
		}
	}
	sort.Strings(out)
	return out
}

// stateSnapshot walks dir and records every entry: its path, mode, size,
// modification time and, for files, a sha256 of the content. A missing dir
// is recorded as such.
func stateSnapshot(t *testing.T, dir string) []string {
	t.Helper()
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return []string{"(no state dir)"}
	}
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "agents" && d.IsDir() {
			// The running agents' supervisors publish their state there,
			// whatever explain does.
			return filepath.SkipDir
		}
		line := fmt.Sprintf("%s %s %d %d", rel, info.Mode(), info.Size(), info.ModTime().UnixNano())
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			line += " " + hex.EncodeToString(sum[:])
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatalf("walk state dir: %v", err)
	}
	return out
}

// lineDiff returns the lines only in a ("-") or only in b ("+").
func lineDiff(a, b []string) []string {
	in := func(l []string) map[string]bool {
		m := map[string]bool{}
		for _, s := range l {
			m[s] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var d []string
	for _, s := range a {
		if !mb[s] {
			d = append(d, "- "+s)
		}
	}
	for _, s := range b {
		if !ma[s] {
			d = append(d, "+ "+s)
		}
	}
	return d
}

// explainDoc runs `jackin explain -o json` and decodes the document.
func (e *env) explainDoc(args ...string) (contract.Document, result) {
	e.t.Helper()
	r := e.jackin(append([]string{"explain", "-o", "json"}, args...)...)
	mustCode(e.t, r, 0, "explain -o json")
	var doc contract.Document
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		e.t.Fatalf("explain -o json is not a contract document: %v\n%s", err, r)
	}
	return doc, r
}

// assertExplainChangesNothing runs explain in several forms and checks,
// around each run, that the engine's objects and the state dir are
// byte-for-byte what they were, and that explain made no mutating engine
// call. Other processes may use the engine meanwhile (benchmarks, other
// tests): a change that names neither this fleet nor its role image is
// retried; when the engine is never quiet, the test says so loudly and relies
// on the fleet-scoped comparison and the mutating-call count.
func assertExplainChangesNothing(t *testing.T, e *env, m, phase string) contract.Document {
	t.Helper()
	var doc contract.Document
	tag := ""
	for i, variant := range [][]string{{"-o", "json"}, {}, {"web", "built"}, {"built", "-o", "json"}} {
		args := append([]string{"explain", "-f", m, "-v", "1", "--log-format", "json"}, variant...)
		quiet := false
		for attempt := 1; attempt <= 5 && !quiet; attempt++ {
			engineBefore, stateBefore := engineSnapshot(t), stateSnapshot(t, e.stateDir)
			r := e.jackin(args...)
			engineAfter, stateAfter := engineSnapshot(t), stateSnapshot(t, e.stateDir)
			mustCode(t, r, 0, phase+": jackin "+strings.Join(args, " "))
			if !strings.Contains(r.stderr, `"msg":"engine calls"`) || !strings.Contains(r.stderr, `"mutating":0`) {
				t.Fatalf("%s: explain %v should log zero mutating engine calls:\n%s", phase, variant, r.stderr)
			}
			if i == 0 {
				if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
					t.Fatalf("%s: explain -o json is not a contract document: %v\n%s", phase, err, r)
				}
				for _, c := range doc.Instances {
					if c.Identity.Role.Build != nil {
						tag = c.Identity.Role.Build.Tag
					}
				}
			}
			if d := lineDiff(stateBefore, stateAfter); len(d) > 0 {
				t.Fatalf("%s: explain %v changed the state dir %s:\n%s", phase, variant, e.stateDir, strings.Join(d, "\n"))
			}
			d := lineDiff(engineBefore, engineAfter)
			if len(d) == 0 {
				quiet = true
				break
			}
			for _, l := range d {
				if strings.Contains(l, e.fleet) || (tag != "" && strings.Contains(l, tag)) {
					t.Fatalf("%s: explain %v changed the engine:\n%s", phase, variant, strings.Join(d, "\n"))
				}
			}
			t.Logf("%s: the engine changed during explain %v, but not for this fleet (another process?); retrying:\n%s", phase, variant, strings.Join(d, "\n"))
		}
		if !quiet {
			t.Logf("\n\n*** %s: the engine was busy with other processes during every attempt of explain %v: the whole-engine comparison could not be made; the fleet-scoped comparison, the state dir and the zero mutating calls held. ***\n", phase, variant)
		}
	}
	return doc
}

func effect(t *testing.T, c contract.Contract, kind string) contract.HostEffect {
	t.Helper()
	for _, e := range c.HostEffects.Effects {
		if e.Kind == kind {
			return e
		}
	}
	t.Fatalf("instance %s: no %s host effect in %+v", c.Instance, kind, c.HostEffects.Effects)
	return contract.HostEffect{}
}

// TestExplainHasNoSideEffects: explain builds, pulls, creates and writes
// nothing, for a fleet never applied (no state dir) and for an applied one,
// with a role.build context whose image does not exist yet.
func TestExplainHasNoSideEffects(t *testing.T) {
	e := newEnv(t)
	e.stateDir = filepath.Join(e.stateDir, "state") // does not exist yet
	if err := os.MkdirAll(filepath.Join(e.dir, "role"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile("role/Dockerfile", "FROM "+agentImage+"\nCOPY note.txt /note.txt\n")
	e.writeFile("role/note.txt", "v1 "+e.fleet+"\n")
	m := e.manifest(fmt.Sprintf(`instances: {
	web: {
		role: image: %q
		command: ["/agent", "idle"]
		mounts: [{src: "./data", dst: "/data", mode: "ro"}, {dst: "/tmp", mode: "tmpfs", size: "8Mi"}]
		network: ports: [{container: 8080}]
	}
	built: {role: build: context: "./role", command: ["/agent", "idle"]}
}
`, agentImage))

	// Never applied: no state dir, no objects, no image for the build.
	doc := assertExplainChangesNothing(t, e, m, "never applied")
	if _, err := os.Lstat(e.stateDir); !os.IsNotExist(err) {
		t.Fatalf("explain created the state dir %s: %v", e.stateDir, err)
	}
	if doc.APIVersion != "jackin.dev/v1alpha1" || doc.Kind != "SessionContract" || doc.Engine.Status != contract.EngineObserved || len(doc.Instances) != 2 {
		t.Fatalf("document header: %+v", doc)
	}
	built := doc.Instances[0]
	tag := built.Identity.Role.Build.Tag
	if got := effect(t, built, contract.EffectImage); got.Status != contract.StatusPlanned {
		t.Errorf("the unbuilt role image should be planned: %+v", got)
	}
	if ids := dockerLines(t, "image", "ls", "-q", tag); len(ids) > 0 {
		t.Fatalf("explain built %s", tag)
	}
	for _, c := range doc.Instances {
		for _, kind := range []string{contract.EffectNetwork, contract.EffectContainer, contract.EffectStateDir} {
			if got := effect(t, c, kind); got.Status != contract.StatusPlanned {
				t.Errorf("%s: %s should be planned before apply: %+v", c.Instance, kind, got)
			}
		}
	}

	// Applied: everything present, and explain still changes nothing.
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	t.Cleanup(func() { _ = exec.Command("docker", "image", "rm", "-f", tag).Run() })
	doc = assertExplainChangesNothing(t, e, m, "after apply")
	for _, c := range doc.Instances {
		for _, kind := range []string{contract.EffectImage, contract.EffectNetwork, contract.EffectContainer, contract.EffectPort, contract.EffectStateDir} {
			if kind == contract.EffectPort && c.Instance != "web" {
				continue
			}
			if got := effect(t, c, kind); got.Status != contract.StatusPresent {
				t.Errorf("%s: %s should be present after apply: %+v", c.Instance, kind, got)
			}
		}
	}

	// A changed build context: explain lists the new tag as planned and
	// does not build it.
	e.writeFile("role/note.txt", "v2 "+e.fleet+"\n")
	doc = assertExplainChangesNothing(t, e, m, "changed build context")
	newTag := doc.Instances[0].Identity.Role.Build.Tag
	if newTag == tag {
		t.Fatalf("the build context changed but the tag did not: %s", tag)
	}
	if got := effect(t, doc.Instances[0], contract.EffectImage); got.Status != contract.StatusPlanned {
		t.Errorf("the new role image should be planned: %+v", got)
	}
	if got := effect(t, doc.Instances[0], contract.EffectContainer); !strings.Contains(got.Detail, "recreates") {
		t.Errorf("the built instance's container should be marked for recreation: %+v", got)
	}
	if ids := dockerLines(t, "image", "ls", "-q", newTag); len(ids) > 0 {
		t.Fatalf("explain built %s", newTag)
	}
}

// TestExplainUnknownInstanceAndEngineUnreachable: an unknown instance is exit
// 2; an unreachable engine still gives a contract, with presence unknown.
func TestExplainUnknownInstanceAndEngineUnreachable(t *testing.T) {
	e := newEnv(t)
	m := e.manifest(instancesCUE([]string{"web"}, ""))
	r := e.jackin("explain", "-f", m, "web", "nope")
	mustCode(t, r, 2, "explain of an unknown instance")
	if !strings.Contains(r.stderr, "nope") {
		t.Errorf("the error should name the instance:\n%s", r)
	}

	r = e.jackinEnv([]string{"DOCKER_HOST=unix:///nonexistent/docker.sock"}, "explain", "-f", m, "-o", "json")
	mustCode(t, r, 0, "explain with no engine")
	var doc contract.Document
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	if doc.Engine.Status != contract.EngineUnreachable || !strings.Contains(doc.Engine.Error, "/nonexistent/docker.sock") {
		t.Errorf("engine status: %+v", doc.Engine)
	}
	c := doc.Instances[0]
	if !strings.HasPrefix(c.HostEffects.Presence, "unknown (engine unreachable: ") {
		t.Errorf("presence: %q", c.HostEffects.Presence)
	}
	if got := effect(t, c, contract.EffectContainer); got.Status != contract.StatusUnknown {
		t.Errorf("container presence should be unknown: %+v", got)
	}
	r = e.jackinEnv([]string{"DOCKER_HOST=unix:///nonexistent/docker.sock"}, "explain", "-f", m)
	mustCode(t, r, 0, "explain text with no engine")
	if !strings.Contains(r.stdout, "unknown (engine unreachable: ") {
		t.Errorf("text should say the engine is unreachable:\n%s", r)
	}
}

// probeReport mirrors the JSON of `/agent probe` (examples/offline/role/agent).
type probeReport struct {
	UID              int    `json:"uid"`
	Cgroup           string `json:"cgroup"`
	MemoryLimit      string `json:"memoryLimit"`
	MemoryLimitBytes int64  `json:"memoryLimitBytes"`
	PidsMax          string `json:"pidsMax"`
	PidsLimit        int64  `json:"pidsLimit"`
	Paths            []struct {
		Path      string `json:"path"`
		Writable  bool   `json:"writable"`
		Error     string `json:"error"`
		SizeBytes int64  `json:"sizeBytes"`
	} `json:"paths"`
	DockerSockets []string `json:"dockerSockets"`
	UnixSockets   []string `json:"unixSockets"`
}

// TestExplainClaimsHoldInContainer checks the contract against the running
// container, from inside it: read-only mounts refuse writes, the memory and
// pids limits in force are the contract's, tmpfs has the stated size, the
// root filesystem is writable, the agent runs as root, and no Docker socket
// is reachable.
func TestExplainClaimsHoldInContainer(t *testing.T) {
	e := newEnv(t)
	if err := os.MkdirAll(filepath.Join(e.dir, "ro"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile("ro/hello.txt", "hello\n")
	m := e.manifest(fmt.Sprintf(`instances: probe: {
	role: image: %q
	command: ["/agent", "idle"]
	mounts: [{src: "./ro", dst: "/ro", mode: "ro"}, {dst: "/scratch", mode: "tmpfs", size: "8Mi"}]
	resources: {memory: "64Mi", pids: 50}
	network: ports: [{container: 8080}]
}
`, agentImage))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	doc, r := e.explainDoc("-f", m, "probe")
	if len(doc.Instances) != 1 {
		t.Fatalf("want one contract:\n%s", r)
	}
	c := doc.Instances[0]
	// The JSON field names are the stable API: check the raw document too.
	for _, key := range []string{`"apiVersion": "jackin.dev/v1alpha1"`, `"kind": "SessionContract"`, `"memory": {`, `"pids": {`, `"hostDockerSocket": "not mounted"`, `"enforcedBy": "the engine (read-only bind mount)"`} {
		if !strings.Contains(r.stdout, key) {
			t.Errorf("explain -o json lacks %s", key)
		}
	}

	out := docker(t, "exec", e.name("probe"), "/agent", "probe", "/ro", "/scratch", "/")
	var p probeReport
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("probe output: %v\n%s", err, out)
	}
	t.Logf("probe: %s", out)
	paths := map[string]int{}
	for i, pp := range p.Paths {
		paths[pp.Path] = i
	}

	// Filesystem.
	for _, mt := range c.Filesystem.Mounts {
		pp := p.Paths[paths[mt.Destination]]
		switch mt.Mode {
		case "ro":
			if pp.Writable || !strings.Contains(pp.Error, "read-only file system") {
				t.Errorf("contract says %s is read-only (%s), but from inside: %+v", mt.Destination, mt.EnforcedBy, pp)
			}
		case "tmpfs":
			if !pp.Writable || pp.SizeBytes != mt.SizeBytes {
				t.Errorf("contract says tmpfs %s of %d bytes, but from inside: %+v", mt.Destination, mt.SizeBytes, pp)
			}
		}
	}
	if root := p.Paths[paths["/"]]; root.Writable != c.Filesystem.RootFS.Writable {
		t.Errorf("contract says the root filesystem writable=%v, but from inside: %+v", c.Filesystem.RootFS.Writable, root)
	}

	// Resources.
	if c.Resources.Memory.Value != 64<<20 || p.MemoryLimitBytes != c.Resources.Memory.Value {
		t.Errorf("memory: contract %+v, in force %d (%q, cgroup %s)", c.Resources.Memory, p.MemoryLimitBytes, p.MemoryLimit, p.Cgroup)
	}
	if c.Resources.Pids.Value != 50 || p.PidsLimit != c.Resources.Pids.Value {
		t.Errorf("pids: contract %+v, in force %d (%q, cgroup %s)", c.Resources.Pids, p.PidsLimit, p.PidsMax, p.Cgroup)
	}

	// Sandbox: no Docker socket, root by image default, engine defaults.
	if c.Sandbox.HostDockerSocket != "not mounted" || c.Sandbox.DockerAccess != "none" {
		t.Errorf("sandbox: %+v", c.Sandbox)
	}
	if len(p.DockerSockets) > 0 {
		t.Errorf("a Docker socket is reachable inside the container: %v", p.DockerSockets)
	}
	if !strings.Contains(c.Sandbox.User, "root unless the image sets USER") || p.UID != 0 {
		t.Errorf("user: contract %q, uid inside %d", c.Sandbox.User, p.UID)
	}
	var hc struct {
		Privileged     bool
		CapAdd         []string
		CapDrop        []string
		SecurityOpt    []string
		ReadonlyRootfs bool
	}
	if err := json.Unmarshal([]byte(docker(t, "inspect", "--format", "{{json .HostConfig}}", e.name("probe"))), &hc); err != nil {
		t.Fatal(err)
	}
	if hc.Privileged != c.Sandbox.Privileged || len(hc.CapAdd) != len(c.Sandbox.Capabilities.Added) || len(hc.CapDrop) != len(c.Sandbox.Capabilities.Dropped) ||
		hc.ReadonlyRootfs == c.Filesystem.RootFS.Writable || c.Sandbox.NoNewPrivileges != strings.Contains(strings.Join(hc.SecurityOpt, ","), "no-new-privileges") {
		t.Errorf("engine host config %+v does not match the contract's sandbox %+v", hc, c.Sandbox)
	}

	// Ports: engine-assigned on loopback.
	if len(c.ServicePorts.Ports) != 1 || !c.ServicePorts.Ports[0].EngineAssigned || c.ServicePorts.Ports[0].HostAddress != "127.0.0.1" {
		t.Fatalf("ports: %+v", c.ServicePorts.Ports)
	}
	if got := docker(t, "port", e.name("probe"), "8080/tcp"); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("port 8080 is bound to %q, the contract says 127.0.0.1:<engine-assigned>", got)
	}
}
