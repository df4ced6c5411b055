package manifests

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/schema"
)

const header = "apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: \"t\"\n"

// writeFiles writes name->content under a temp dir and returns the dir.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func load(t *testing.T, dir string, paths ...string) (*Result, Diagnostics) {
	t.Helper()
	abs := make([]string, len(paths))
	for i, p := range paths {
		abs[i] = filepath.Join(dir, p)
		if p == "-" {
			abs[i] = "-"
		}
	}
	res, err := Load(context.Background(), abs, Options{Home: filepath.Join(dir, "home"), WorkDir: dir, HostCPUs: 2})
	if err == nil {
		return res, nil
	}
	var diags Diagnostics
	if !errors.As(err, &diags) {
		t.Fatalf("want Diagnostics, got %T: %v", err, err)
	}
	return nil, diags
}

// wantDiag asserts one diagnostic at file:line:col with path and a message part.
func wantDiag(t *testing.T, diags Diagnostics, dir, where, path, msg string) {
	t.Helper()
	for _, d := range diags {
		s := d.String()
		if strings.HasPrefix(s, filepath.Join(dir, where)+": ") && d.Path == path && strings.Contains(d.Msg, msg) {
			return
		}
	}
	t.Errorf("no diagnostic at %s for %s containing %q; got:\n%v", where, path, msg, diags)
}

func TestRejectedInputsCore(t *testing.T) {
	cases := []struct {
		name, src, where, path, msg string
	}{
		{"unknown top-level field", header + "color: \"red\"\n", "f.cue:4:1", "color", `field "color" is not allowed here; allowed fields: apiVersion, defaults, `},
		{"unknown instance field", header + "instances: a: {\n\trole: image: \"x\"\n\tfoo: 1\n}\n", "f.cue:6:2", "instances.a.foo", `field "foo" is not allowed here`},
		{"unknown nested field", header + "instances: a: {\n\trole: image: \"x\"\n\tresources: memry: \"1G\"\n}\n", "f.cue:6:13", "instances.a.resources.memry", "allowed fields: cpus, memory, memoryReservation, nofile, pids"},
		{"bad agent", header + "instances: a: {role: image: \"x\", agent: \"gpt\"}\n", "f.cue:4:34", "instances.a.agent", `agent "gpt" is neither a built-in runtime (claude, codex, amp, opencode, gemini, shell) nor declared under runtimes`},
		{"bad state", header + "instances: a: {role: image: \"x\", state: \"paused\"}\n", "f.cue:4:34", "instances.a.state", `state must be one of "running", "stopped"`},
		{"bad mode", header + "instances: a: {role: image: \"x\", mounts: [{dst: \"/x\", mode: \"rx\"}]}\n", "f.cue:4:55", "instances.a.mounts[0].mode", `mode must be one of "rw", "ro", "tmpfs"`},
		{"bad apiVersion", "apiVersion: \"v2\"\nkind: \"Fleet\"\nname: \"t\"\n", "f.cue:1:1", "apiVersion", `apiVersion must be "jackin.dev/v1alpha1"`},
		{"missing apiVersion", "kind: \"Fleet\"\nname: \"t\"\n", "f.cue:1:1", "apiVersion", `required field "apiVersion" is missing`},
		{"fleet name", "apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: \"My_Fleet\"\n", "f.cue:3:1", "name", "lowercase DNS label"},
		{"instance name", header + "instances: {\n\tWeb: {role: image: \"x\"}\n}\n", "f.cue:5:2", "instances.Web", `instance name "Web" is not valid`},
		{"missing role", header + "instances: {\n\ta: {agent: \"claude\"}\n}\n", "f.cue:5:2", "instances.a", "role is required"},
		{"image and build", header + "instances: a: role: {image: \"x\", build: context: \".\"}\n", "f.cue:4:15", "instances.a.role", "set exactly one"},
		{"env name", header + "instances: a: {role: image: \"x\", env: {\"1X\": \"v\"}}\n", "f.cue:4:40", "instances.a.env.1X", "not a valid variable name"},
		{"reserved label", header + "instances: a: {role: image: \"x\", labels: {\"dev.jackin.fleet\": \"v\"}}\n", "f.cue:4:43", "instances.a.labels.\"dev.jackin.fleet\"", "reserved"},
		{"relative dst", header + "instances: a: {role: image: \"x\", mounts: [{dst: \"work\", mode: \"tmpfs\"}]}\n", "f.cue:4:44", "instances.a.mounts[0].dst", "must be an absolute path"},
		{"duplicate dst", header + "instances: a: {role: image: \"x\", mounts: [{dst: \"/w\", mode: \"tmpfs\"},\n\t{dst: \"/w/\", mode: \"tmpfs\"}]}\n", "f.cue:5:3", "instances.a.mounts[1].dst", "already mounted by mounts[0]"},
		{"rw without src", header + "instances: a: {role: image: \"x\", mounts: [{dst: \"/w\", mode: \"rw\"}]}\n", "f.cue:4:43", "instances.a.mounts[0]", "needs src"},
		{"missing src", header + "instances: a: {role: image: \"x\", mounts: [{src: \"./nope\", dst: \"/w\", mode: \"ro\"}]}\n", "f.cue:4:44", "instances.a.mounts[0].src", "does not exist"},
		{"bad size", header + "instances: a: {role: image: \"x\", mounts: [{dst: \"/w\", mode: \"tmpfs\", size: \"12Qi\"}]}\n", "f.cue:4:70", "instances.a.mounts[0].size", "is not a size"},
		{"reservation above memory", header + "instances: a: {role: image: \"x\", resources: {memory: \"64Mi\", memoryReservation: \"1Gi\"}}\n", "f.cue:4:62", "instances.a.resources.memoryReservation", "more than memory"},
		{"too many cpus", header + "instances: a: {role: image: \"x\", resources: cpus: 3}\n", "f.cue:4:45", "instances.a.resources.cpus", "more than this host's 2 CPUs"},
		{"port range", header + "instances: a: {role: image: \"x\", network: ports: [{container: 0}]}\n", "f.cue:4:52", "instances.a.network.ports[0].container", "out of range"},
		{"duplicate host port across instances", header + "instances: {\n\ta: {role: image: \"x\", network: ports: [{container: 80, host: 8080}]}\n\tb: {role: image: \"x\", network: ports: [{container: 81, host: 8080, address: \"0.0.0.0\"}]}\n}\n", "f.cue:6:57", "instances.b.network.ports[0].host", `already published by instance "a"`},
		{"type mismatch", header + "instances: a: {role: image: \"x\", command: \"sh\"}\n", "f.cue:4:34", "instances.a.command", "must be a list"},
		{"cue syntax", header + "instances: {\n", "f.cue:4:14", "", "syntax error: expected '}'"},
		{"docker host", header + "instances: a: {role: image: \"x\", env: DOCKER_HOST: \"tcp://172.17.0.1:2375\"}\n", "f.cue:4:39", "instances.a.env.DOCKER_HOST", "private daemon"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"f.cue": c.src})
			_, diags := load(t, dir, "f.cue")
			if len(diags) == 0 {
				t.Fatal("manifest accepted")
			}
			wantDiag(t, diags, dir, c.where, c.path, c.msg)
		})
	}
}

func TestDockerSocketRefusedInEverySpelling(t *testing.T) {
	tmp := t.TempDir()
	links := map[string]string{"to-var-run": "/var/run", "to-sock": "/run/docker.sock", "to-var": "/var"}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(tmp, name)); err != nil {
			t.Fatal(err)
		}
	}
	srcs := []string{
		"/var/run/docker.sock", "/run/docker.sock", "/var/run", "/run", "/var", "/",
		"/tmp/../var/run", "/var/run/../run/docker.sock",
		filepath.Join(tmp, "to-var-run"), filepath.Join(tmp, "to-sock"), filepath.Join(tmp, "to-var", "run"),
	}
	for _, src := range srcs {
		t.Run(src, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"f.cue": header + "instances: a: {\n\trole: image: \"x\"\n\tmounts: [{src: \"" + src + "\", dst: \"/x\", mode: \"ro\"}]\n}\n"})
			_, diags := load(t, dir, "f.cue")
			wantDiag(t, diags, dir, "f.cue:6:12", "instances.a.mounts[0].src", "would expose the host Docker socket")
		})
	}
	t.Run("relative path through defaults", func(t *testing.T) {
		rel, err := filepath.Rel(tmp, "/var/run")
		if err != nil {
			t.Fatal(err)
		}
		dir := writeFiles(t, map[string]string{"f.yaml": "apiVersion: jackin.dev/v1alpha1\nkind: Fleet\nname: t\ndefaults:\n  mounts:\n    - {src: " + filepath.Join(tmp, rel) + ", dst: /x, mode: rw}\ninstances:\n  a: {role: {image: x}}\n"})
		_, diags := load(t, dir, "f.yaml")
		wantDiag(t, diags, dir, "f.yaml:6:8", "defaults.mounts[0].src", "would expose the host Docker socket")
	})
}

func TestYAMLAndJSONKeepTheirLines(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"f.yaml": "apiVersion: jackin.dev/v1alpha1\nkind: Fleet\nname: t\ninstances:\n  a:\n    role: {image: x}\n    agent: robot\n",
		"g.json": "{\n  \"apiVersion\": \"jackin.dev/v1alpha1\",\n  \"kind\": \"Fleet\",\n  \"name\": \"t\",\n  \"instances\": {\"b\": {\n    \"role\": {\"image\": \"x\"},\n    \"state\": \"asleep\"}}\n}\n",
	})
	_, diags := load(t, dir, "f.yaml")
	wantDiag(t, diags, dir, "f.yaml:7:5", "instances.a.agent", "is neither a built-in runtime")
	_, diags = load(t, dir, "g.json")
	wantDiag(t, diags, dir, "g.json:7:6", "instances.b.state", "state must be one of")
}

func TestAllErrorsInOneRun(t *testing.T) {
	dir := writeFiles(t, map[string]string{"f.cue": header + "instances: {\n\ta: {role: image: \"x\", agent: \"gpt\", foo: 1, mounts: [{src: \"./missing\", dst: \"/w\", mode: \"rw\"}]}\n\tb: {state: \"on\"}\n}\n"})
	_, diags := load(t, dir, "f.cue")
	if len(diags) != 5 {
		t.Fatalf("want 5 diagnostics (agent, foo, src, b.state, b.role), got %d:\n%v", len(diags), diags)
	}
}

func TestDirectoryStdinDefaultsAndPaths(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"fleet/a.cue":      "package fleet\n" + header + "defaults: {env: {A: \"1\", B: \"1\"}, resources: {memory: \"1Gi\", pids: 10}, labels: team: \"x\"}\n_img: \"img:1\"\n",
		"fleet/b.cue":      "package fleet\ninstances: web: {role: image: _img, env: B: \"2\", resources: pids: 20}\n",
		"fleet/c.yaml":     "instances:\n  api:\n    role: {build: {context: ../ctx}}\n    mounts: [{src: ../work, dst: /w, mode: rw}, {src: '~/cfg', dst: /c, mode: ro}]\n",
		"ctx/Dockerfile":   "FROM scratch\n",
		"work/.keep":       "",
		"home/cfg":         "x",
		"fleet/README.txt": "ignored",
	})
	res, diags := load(t, dir, "fleet")
	if diags != nil {
		t.Fatal(diags)
	}
	web, api := res.Fleet.Instances["web"], res.Fleet.Instances["api"]
	if web.Role.Image != "img:1" || web.Env["A"] != "1" || web.Env["B"] != "2" || web.Resources.Pids != 20 || web.Resources.MemoryBytes != 1<<30 || web.Labels["team"] != "x" {
		t.Errorf("defaults merge: %+v", web)
	}
	if web.Agent != "shell" || web.State != "running" || web.Network.Egress != "open" || web.Docker != "none" || web.Backend != "docker" {
		t.Errorf("schema defaults: %+v", web)
	}
	if api.Role.Build == nil || api.Role.Build.Context != filepath.Join(dir, "ctx") || api.Role.Build.Dockerfile != "Dockerfile" {
		t.Errorf("build context resolves against the YAML file's dir: %+v", api.Role.Build)
	}
	if api.Mounts[0].Src != filepath.Join(dir, "work") || api.Mounts[1].Src != filepath.Join(dir, "home", "cfg") {
		t.Errorf("mount paths: %+v", api.Mounts)
	}
	if len(res.Fleet.Sources) != 3 {
		t.Errorf("sources: %v", res.Fleet.Sources)
	}

	// Stdin, as YAML, with paths relative to the working dir.
	r, err := Load(context.Background(), []string{"-"}, Options{Stdin: strings.NewReader("apiVersion: jackin.dev/v1alpha1\nkind: Fleet\nname: s\ninstances:\n  a:\n    role: {image: x}\n    mounts: [{src: work, dst: /w, mode: ro}]\n"), WorkDir: dir, HostCPUs: 2})
	if err != nil || r.Fleet.Instances["a"].Mounts[0].Src != filepath.Join(dir, "work") {
		t.Fatalf("stdin: %v %+v", err, r)
	}
	// An instance defined in two files is refused.
	dup := writeFiles(t, map[string]string{"x.yaml": "apiVersion: jackin.dev/v1alpha1\nkind: Fleet\nname: t\ninstances:\n  a: {role: {image: x}}\n", "y.yaml": "instances:\n  a: {role: {image: x}}\n"})
	_, diags = load(t, dup, "x.yaml", "y.yaml")
	wantDiag(t, diags, dup, "y.yaml:2:3", "instances.a", "already defined at")
}

func TestExamplesResolveToTheSameFleetCore(t *testing.T) {
	var docs []string
	for _, f := range []string{"fleet.cue", "fleet.yaml", "fleet.json"} {
		res, err := Load(context.Background(), []string{filepath.Join("..", "examples", f)}, Options{})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		res.Fleet.Sources = nil
		b, _ := json.Marshal(res.Fleet)
		docs = append(docs, string(b))
	}
	if docs[0] != docs[1] || docs[0] != docs[2] {
		t.Fatalf("examples differ:\ncue:  %s\nyaml: %s\njson: %s", docs[0], docs[1], docs[2])
	}
	if _, err := Load(context.Background(), []string{filepath.Join("..", "examples", "offline")}, Options{}); err != nil {
		t.Fatalf("offline example: %v", err)
	}
}

func TestParseSizeCore(t *testing.T) {
	good := map[string]int64{"512Mi": 512 << 20, "2G": 2e9, "1.5Gi": 3 << 29, "64k": 64000, "1024": 1024, "512MiB": 512 << 20}
	for in, want := range good {
		if got, err := schema.ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "12Qi", "1e9", "0", "NaN", "Mi", "0.1"} {
		if _, err := schema.ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) should fail", bad)
		}
	}
}

func TestOutOfRangeNumbersNeverDropAnInstance(t *testing.T) {
	dir := writeFiles(t, map[string]string{"f.cue": header + "instances: {\n\ta: {role: image: \"x\"}\n\tb: {role: image: \"x\", resources: pids: 99999999999999999999999}\n\tc: {role: image: \"x\", resources: cpus: 1e400}\n}\n"})
	res, diags := load(t, dir, "f.cue")
	if res != nil {
		t.Fatalf("accepted with instances %v: an instance must never be dropped silently", sortedKeys(res.Fleet.Instances))
	}
	wantDiag(t, diags, dir, "f.cue:6:35", "instances.b.resources.pids", "out of range")
	wantDiag(t, diags, dir, "f.cue:7:35", "instances.c.resources.cpus", "at most 1024")
}

func TestBareCarriageReturnsInYAML(t *testing.T) {
	dir := writeFiles(t, map[string]string{"f.yaml": "\r\r00", "g.yaml": "apiVersion: jackin.dev/v1alpha1\r\nkind: Fleet\r\nname: t\r\ninstances:\r\n  a:\r\n    role: {image: x}\r\n    agent: bogus\r\n"})
	_, diags := load(t, dir, "f.yaml")
	for _, d := range diags {
		if strings.Contains(d.Msg, "internal error") {
			t.Fatalf("the YAML decoder panicked: %v", d)
		}
	}
	_, diags = load(t, dir, "g.yaml")
	wantDiag(t, diags, dir, "g.yaml:7:5", "instances.a.agent", "is neither a built-in runtime")
}
