package manifests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/schema"
)

// fleetHead is the three-line document header most cases start with.
const fleetHead = "apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: \"t\"\n"

// yamlHead is fleetHead in YAML.
const yamlHead = "apiVersion: jackin.dev/v1alpha1\nkind: Fleet\nname: t\n"

// mark, placed in a fixture's text, is where a diagnostic must point. It is
// removed before the file is written; its line and byte column become the
// expected file:line:col. In a fixture's text "$DIR" is the fixture's
// directory and "$UP" the "../../" that leads from it to "/".
const mark = "«"

// fixture is a set of files under a fresh temp dir.
type fixture struct {
	dir   string
	where string // file:line:col of the mark, "" when no file has one
}

// newFixture writes files (name -> text; a name ending in "/" is an empty
// directory) under a temp dir and finds the mark.
func newFixture(t *testing.T, files map[string]string) fixture {
	t.Helper()
	fx := fixture{dir: t.TempDir()}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		p := filepath.Join(fx.dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		text := fx.expand(files[name])
		if i := strings.Index(text, mark); i >= 0 {
			if fx.where != "" {
				t.Fatalf("two marks in the fixture (%s and %s)", fx.where, name)
			}
			before := text[:i]
			line := strings.Count(before, "\n") + 1
			col := i - strings.LastIndex(before, "\n")
			fx.where = fmt.Sprintf("%s:%d:%d", p, line, col)
			text = before + text[i+len(mark):]
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return fx
}

func (fx fixture) expand(text string) string {
	text = strings.ReplaceAll(text, "$DIR", fx.dir)
	return strings.ReplaceAll(text, "$UP", strings.Repeat("../", strings.Count(fx.dir, "/")))
}

// symlink makes dir/name point at target (which need not exist).
func (fx fixture) symlink(t *testing.T, name, target string) {
	t.Helper()
	target = fx.expand(target)
	if err := os.Symlink(target, filepath.Join(fx.dir, name)); err != nil {
		t.Fatal(err)
	}
}

func (fx fixture) opts() Options {
	return Options{Home: filepath.Join(fx.dir, "home"), WorkDir: fx.dir, HostCPUs: 2}
}

// load loads paths (relative to the fixture; "-" is stdin) and returns the
// result or the diagnostics, failing on any other kind of error.
func (fx fixture) load(t *testing.T, opts Options, paths ...string) (*Result, Diagnostics) {
	t.Helper()
	abs := make([]string, len(paths))
	for i, p := range paths {
		abs[i] = p
		if p != "-" {
			abs[i] = filepath.Join(fx.dir, p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Load(ctx, abs, opts)
	if err == nil {
		if res == nil || res.Fleet == nil {
			t.Fatal("Load returned no error and no fleet")
		}
		return res, nil
	}
	var diags Diagnostics
	if !errors.As(err, &diags) {
		t.Fatalf("want Diagnostics, got %T: %v", err, err)
	}
	if len(diags) == 0 {
		t.Fatal("Load returned empty Diagnostics")
	}
	return nil, diags
}

// mustLoad loads paths and fails on any diagnostic.
func (fx fixture) mustLoad(t *testing.T, paths ...string) *schema.Fleet {
	t.Helper()
	res, diags := fx.load(t, fx.opts(), paths...)
	if diags != nil {
		t.Fatalf("want a valid fleet, got:\n%v", diags)
	}
	return res.Fleet
}

// at renders a diagnostic's place: file:line:col, or just file when it has no line.
func at(d Diagnostic) string {
	if d.Line == 0 {
		return d.File
	}
	return fmt.Sprintf("%s:%d:%d", d.File, d.Line, d.Col)
}

// expect asserts that diags holds a diagnostic at where (file:line:col, or a
// file for file-level problems) with exactly path and a message containing msg.
func expect(t *testing.T, diags Diagnostics, where, path, msg string) {
	t.Helper()
	for _, d := range diags {
		if at(d) == where && d.Path == path && strings.Contains(d.Msg, msg) {
			if d.Severity != schema.SeverityError {
				t.Errorf("severity %q, want error: %v", d.Severity, d)
			}
			want := where + ": "
			if path != "" {
				want += path + ": "
			}
			if !strings.HasPrefix(d.String(), want) {
				t.Errorf("rendered %q, want prefix %q", d.String(), want)
			}
			return
		}
	}
	t.Errorf("want a diagnostic at %s, path %q, message containing %q; got:\n%s", where, path, msg, dump(diags))
}

func dump(diags Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		fmt.Fprintf(&b, "  %s  [path %q]\n", d.String(), d.Path)
	}
	return b.String()
}

// inst is a fleet with one instance "a" on an image; body adds its fields.
func inst(body string) string {
	return fleetHead + "instances: a: {role: image: \"x\", " + body + "}\n"
}

type rejectCase struct {
	name  string
	files map[string]string // default: "f.cue"
	src   string            // the text of f.cue, when files is nil
	paths []string          // default: "f.cue"
	setup func(t *testing.T, fx fixture)
	where string // for file-level problems (no mark): the file, relative to the fixture
	path  string // the field path the diagnostic names
	msg   string // part of the message; "$DIR" is the fixture's directory
	count int    // how many diagnostics in all; 0 means exactly 1
}

func runRejects(t *testing.T, cases []rejectCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := c.files
			if files == nil {
				files = map[string]string{"f.cue": c.src}
			}
			paths := c.paths
			if paths == nil {
				paths = []string{"f.cue"}
			}
			fx := newFixture(t, files)
			if c.setup != nil {
				c.setup(t, fx)
			}
			where := fx.where
			if c.where != "" {
				where = filepath.Join(fx.dir, c.where)
			}
			if where == "" {
				t.Fatal("the case has neither a mark nor a where")
			}
			_, diags := fx.load(t, fx.opts(), paths...)
			if diags == nil {
				t.Fatal("the manifest was accepted")
			}
			expect(t, diags, where, c.path, fx.expand(c.msg))
			want := c.count
			if want == 0 {
				want = 1
			}
			if len(diags) != want {
				t.Errorf("want %d diagnostic(s), got %d:\n%s", want, len(diags), dump(diags))
			}
		})
	}
}

func TestLoadRejectsSchemaViolations(t *testing.T) {
	runRejects(t, []rejectCase{
		// Unknown fields: closed definitions, at every level.
		{name: "unknown top-level field", src: fleetHead + "«color: \"red\"\n",
			path: "color", msg: `field "color" is not allowed here; allowed fields: apiVersion, defaults, `},
		{name: "unknown instance field", src: fleetHead + "instances: a: {\n\trole: image: \"x\"\n\t«foo: 1\n}\n",
			path: "instances.a.foo", msg: `field "foo" is not allowed here; allowed fields: agent, args, backend, command, credentials, description, docker, dockerDaemon, engine, env, idle, integrations, kubernetes, labels, mounts, network, orbstack, profile, recovery, resources, role, security, state`},
		{name: "unknown resources field", src: inst("resources: {memory: \"1Gi\", «memry: \"1G\"}"),
			path: "instances.a.resources.memry", msg: `field "memry" is not allowed here; allowed fields: cpus, memory, memoryReservation, nofile, pids`},
		{name: "unknown mount field", src: inst("mounts: [{dst: \"/x\", mode: \"tmpfs\", «sz: \"1G\"}]"),
			path: "instances.a.mounts[0].sz", msg: "allowed fields: allowSensitive, dst, mode, ref, size, src"},
		{name: "unknown port field", src: inst("network: ports: [{container: 80, «hostPort: 8080}]"),
			path: "instances.a.network.ports[0].hostPort", msg: "allowed fields: address, container, host, protocol"},
		{name: "unknown role field", src: fleetHead + "instances: a: role: {image: \"x\", «tag: \"1\"}\n",
			path: "instances.a.role.tag", msg: "allowed fields: build, image"},
		{name: "unknown build field", files: map[string]string{"f.cue": fleetHead + "instances: a: role: build: {context: \".\", «file: \"D\"}\n", "Dockerfile": "FROM scratch\n"},
			path: "instances.a.role.build.file", msg: "allowed fields: args, context, dockerfile"},
		{name: "unknown field in defaults", src: fleetHead + "defaults: network: «egres: \"open\"\ninstances: a: role: image: \"x\"\n",
			path: "defaults.network.egres", msg: "allowed fields: allow, egress, egressNetwork, ports, upstreamProxy"},

		// Enums say what is allowed and what was given.
		{name: "bad agent", src: inst("«agent: \"gpt\""),
			path: "instances.a.agent", msg: `agent "gpt" is neither a built-in runtime (claude, codex, amp, opencode, gemini, shell) nor declared under runtimes`},
		{name: "command with a runtime that runs its own", src: inst("agent: \"claude\"\n«command: [\"claude\"]"),
			path: "instances.a.command", msg: `agent "claude" runs its own command (claude --dangerously-skip-permissions)`},
		{name: "command with a custom runtime", src: fleetHead + "runtimes: mine: command: [\"mine\"]\ninstances: a: {role: image: \"x\", agent: \"mine\", «command: [\"x\"]}\n",
			path: "instances.a.command", msg: `agent "mine" runs the command its runtime declares (runtimes.mine.command: mine)`},
		{name: "custom runtime without a command", src: fleetHead + "runtimes: «mine: homes: [\".mine\"]\ninstances: a: {role: image: \"x\", agent: \"mine\"}\n",
			path: "runtimes.mine", msg: `a runtime needs a command`},
		{name: "custom runtime named like a built-in", src: fleetHead + "runtimes: «claude: command: [\"x\"]\ninstances: a: role: image: \"x\"\n",
			path: "runtimes.claude", msg: `"claude" is a built-in runtime: name yours differently`},
		{name: "custom runtime home outside the home directory", src: fleetHead + "runtimes: mine: {command: [\"x\"], homes: [«\"../etc\"]}\ninstances: a: role: image: \"x\"\n",
			path: "runtimes.mine.homes[0]", msg: `../etc`},
		{name: "a misspelt agent", src: inst("«agent: \"claud\""),
			path: "instances.a.agent", msg: `agent "claud" is neither a built-in runtime (claude, codex, amp, opencode, gemini, shell) nor declared under runtimes: did you mean "claude"?`},
		{name: "bad state", src: inst("«state: \"paused\""),
			path: "instances.a.state", msg: `state must be one of "running", "stopped" (got "paused")`},
		{name: "bad mount mode", src: inst("mounts: [{dst: \"/x\", «mode: \"rx\"}]"),
			path: "instances.a.mounts[0].mode", msg: `mode must be one of "rw", "ro", "tmpfs", "worktree", "clone", "ephemeral" (got "rx")`},
		{name: "bad protocol", src: inst("network: ports: [{container: 80, «protocol: \"sctp\"}]"),
			path: "instances.a.network.ports[0].protocol", msg: `protocol must be one of "tcp", "udp" (got "sctp")`},
		{name: "docker host is not a docker mode", src: inst("«docker: \"host\""),
			path: "instances.a.docker", msg: `docker must be one of "none", "private" (got "host")`},
		{name: "bad egress", src: inst("network: «egress: \"closed\""),
			path: "instances.a.network.egress", msg: `egress must be one of "open", "none", "allowlist" (got "closed")`},
		{name: "bad backend", src: inst("«backend: \"k8s\""),
			path: "instances.a.backend", msg: `backend must be one of "docker", "orbstack-isolated", "kubernetes" (got "k8s")`},
		{name: "bad enum in defaults", src: fleetHead + "defaults: «agent: \"gpt\"\ninstances: a: role: image: \"x\"\n",
			path: "defaults.agent", msg: `agent "gpt" is neither a built-in runtime`},

		// The document header.
		{name: "bad apiVersion", src: "«apiVersion: \"jackin.dev/v2\"\nkind: \"Fleet\"\nname: \"t\"\n",
			path: "apiVersion", msg: `apiVersion must be "jackin.dev/v1alpha1" (got "jackin.dev/v2")`},
		{name: "bad kind", src: "apiVersion: \"jackin.dev/v1alpha1\"\n«kind: \"Pod\"\nname: \"t\"\n",
			path: "kind", msg: `kind must be "Fleet" (got "Pod")`},
		{name: "missing kind", src: "«apiVersion: \"jackin.dev/v1alpha1\"\nname: \"t\"\n",
			path: "kind", msg: `required field "kind" is missing`},
		{name: "missing name", src: "«apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\n",
			path: "name", msg: `required field "name" is missing`},
		{name: "uppercase fleet name", src: "apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\n«name: \"Web\"\n",
			path: "name", msg: `fleet name must be a lowercase DNS label (a-z, 0-9 and '-', starting and ending with a letter or digit) of at most 30 characters (got "Web")`},
		{name: "fleet name of 31 characters", src: "apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\n«name: \"" + strings.Repeat("a", 31) + "\"\n",
			path: "name", msg: "of at most 30 characters"},
		{name: "fleet name ending in a dash", src: "apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\n«name: \"web-\"\n",
			path: "name", msg: "lowercase DNS label"},

		// Instance names.
		{name: "uppercase instance name", src: fleetHead + "instances: {\n\t«Web: {role: image: \"x\"}\n}\n",
			path: "instances.Web", msg: `instance name "Web" is not valid: use a lowercase DNS label`},
		{name: "instance name with an underscore", src: fleetHead + "instances: {\n\t«web_1: {role: image: \"x\"}\n}\n",
			path: "instances.web_1", msg: `instance name "web_1" is not valid`},
		{name: "instance name of 31 characters", src: fleetHead + "instances: {\n\t«" + strings.Repeat("b", 31) + ": {role: image: \"x\"}\n}\n",
			path: "instances." + strings.Repeat("b", 31), msg: "is not valid"},

		// Keys of env and labels.
		{name: "env name starting with a digit", src: inst("env: {«\"1X\": \"v\"}"),
			path: "instances.a.env.1X", msg: `env name "1X" is not a valid variable name`},
		{name: "env name with a dash", src: inst("env: {«\"A-B\": \"v\"}"),
			path: "instances.a.env.A-B", msg: `env name "A-B" is not a valid variable name`},
		{name: "reserved label key", src: inst("labels: {ok: \"1\", «\"dev.jackin.x\": \"v\"}"),
			path: `instances.a.labels."dev.jackin.x"`, msg: `label "dev.jackin.x" is reserved: keys under dev.jackin. are set by jackin`},
		{name: "reserved label key in defaults", src: fleetHead + "defaults: labels: «\"dev.jackin.fleet\": \"other\"\ninstances: a: role: image: \"x\"\n",
			path: `defaults.labels."dev.jackin.fleet"`, msg: `label "dev.jackin.fleet" is reserved`},

		// Types.
		{name: "string for an int", src: inst("resources: «pids: \"many\""),
			path: "instances.a.resources.pids", msg: "pids must be an integer, not a string"},
		{name: "string for a port", src: inst("network: ports: [{«container: \"80\"}]"),
			path: "instances.a.network.ports[0].container", msg: "container must be an integer, not a string"},
		{name: "string for a list", src: inst("«command: \"sh -c x\""),
			path: "instances.a.command", msg: "command must be a list ([...]), not a string"},
		{name: "float for pids", src: inst("resources: «pids: 1.5"),
			path: "instances.a.resources.pids", msg: "pids must be an integer"},
		{name: "empty image", src: fleetHead + "instances: a: role: «image: \"\"\n",
			path: "instances.a.role.image", msg: "image must not be empty"},

		// Bounds CUE checks.
		{name: "cpus zero", src: inst("resources: «cpus: 0"),
			path: "instances.a.resources.cpus", msg: "must be greater than 0"},
		{name: "cpus negative", src: inst("resources: «cpus: -0.5"),
			path: "instances.a.resources.cpus", msg: "must be greater than 0"},
		{name: "pids zero", src: inst("resources: «pids: 0"),
			path: "instances.a.resources.pids", msg: "must be greater than 0"},
		{name: "container port above 65535", src: inst("network: ports: [{«container: 70000}]"),
			path: "instances.a.network.ports[0].container", msg: "70000 is out of range: it must be at most 65535"},
		{name: "container port zero", src: inst("network: ports: [{«container: 0}]"),
			path: "instances.a.network.ports[0].container", msg: "0 is out of range: it must be at least 1"},
		{name: "host port zero", src: inst("network: ports: [{container: 80, «host: 0}]"),
			path: "instances.a.network.ports[0].host", msg: "0 is out of range: it must be at least 1"},
		{name: "host port above 65535", src: inst("network: ports: [{container: 80, «host: 65536}]"),
			path: "instances.a.network.ports[0].host", msg: "65536 is out of range: it must be at most 65535"},
	})
}

func TestLoadRejectsSemanticMistakes(t *testing.T) {
	runRejects(t, []rejectCase{
		// Role.
		{name: "missing role", src: fleetHead + "instances: {\n\t«a: {agent: \"claude\"}\n}\n",
			path: "instances.a", msg: "role is required: set role.image (an image reference) or role.build ({context: DIR}), here or in defaults"},
		{name: "empty role", src: fleetHead + "instances: {\n\t«a: {role: {}}\n}\n",
			path: "instances.a", msg: "role is required"},
		{name: "both image and build", src: fleetHead + "instances: a: {«role: {image: \"x\", build: context: \".\"}}\n",
			path: "instances.a.role", msg: "role sets both image and build: set exactly one"},
		{name: "missing build context", src: fleetHead + "instances: a: role: build: «context: \"./nope\"\n",
			path: "instances.a.role.build.context", msg: "build context $DIR/nope does not exist"},
		{name: "build context is a file", files: map[string]string{"f.cue": fleetHead + "instances: a: role: build: «context: \"ctx\"\n", "ctx": "not a dir"},
			path: "instances.a.role.build.context", msg: "build context $DIR/ctx is not a directory"},
		{name: "dockerfile missing", files: map[string]string{"f.cue": fleetHead + "instances: a: role: build: {context: \"ctx\", «dockerfile: \"Containerfile\"}\n", "ctx/Dockerfile": "FROM scratch\n"},
			path: "instances.a.role.build.dockerfile", msg: "dockerfile Containerfile does not exist in the build context $DIR/ctx"},
		{name: "default Dockerfile missing", files: map[string]string{"f.cue": fleetHead + "instances: a: role: «build: context: \"ctx\"\n", "ctx/": ""},
			path: "instances.a.role.build.dockerfile", msg: "dockerfile Dockerfile does not exist in the build context $DIR/ctx"},
		{name: "dockerfile escaping the context", files: map[string]string{"f.cue": fleetHead + "instances: a: role: build: {context: \"ctx\", «dockerfile: \"../Dockerfile\"}\n", "ctx/": "", "Dockerfile": "FROM scratch\n"},
			path: "instances.a.role.build.dockerfile", msg: `dockerfile "../Dockerfile" must be a path inside the build context`},
		{name: "dockerfile escaping through the middle", files: map[string]string{"f.cue": fleetHead + "instances: a: role: build: {context: \"ctx\", «dockerfile: \"sub/../../Dockerfile\"}\n", "ctx/sub/": "", "Dockerfile": "FROM scratch\n"},
			path: "instances.a.role.build.dockerfile", msg: `must be a path inside the build context`},
		{name: "absolute dockerfile", files: map[string]string{"f.cue": fleetHead + "instances: a: role: build: {context: \"ctx\", «dockerfile: \"$DIR/Dockerfile\"}\n", "ctx/": "", "Dockerfile": "FROM scratch\n"},
			path: "instances.a.role.build.dockerfile", msg: `must be a path inside the build context`},

		// Mounts.
		{name: "relative dst", src: inst("mounts: [{«dst: \"work\", mode: \"tmpfs\"}]"),
			path: "instances.a.mounts[0].dst", msg: `dst "work" must be an absolute path inside the container`},
		{name: "duplicate dst", src: inst("mounts: [\n\t{dst: \"/w\", mode: \"tmpfs\"},\n\t{«dst: \"/w/\", mode: \"tmpfs\"},\n]"),
			path: "instances.a.mounts[1].dst", msg: "dst /w is already mounted by mounts[0]: each container path is mounted once"},
		{name: "duplicate dst after cleaning", src: inst("mounts: [{dst: \"/w\", mode: \"tmpfs\"}, {dst: \"/x\", mode: \"tmpfs\"}, {«dst: \"/x/../w\", mode: \"tmpfs\"}]"),
			path: "instances.a.mounts[2].dst", msg: "already mounted by mounts[0]"},
		{name: "rw without src", src: inst("mounts: [«{dst: \"/w\", mode: \"rw\"}]"),
			path: "instances.a.mounts[0]", msg: "a rw mount needs src, the host path to mount"},
		{name: "ro without src", src: inst("mounts: [{dst: \"/t\", mode: \"tmpfs\"}, «{dst: \"/w\", mode: \"ro\"}]"),
			path: "instances.a.mounts[1]", msg: "a ro mount needs src"},
		{name: "rw src missing", src: inst("mounts: [{«src: \"./nope\", dst: \"/w\", mode: \"rw\"}]"),
			path: "instances.a.mounts[0].src", msg: "src $DIR/nope does not exist"},
		{name: "tmpfs with src", src: inst("mounts: [{«src: \".\", dst: \"/w\", mode: \"tmpfs\"}]"),
			path: "instances.a.mounts[0].src", msg: "a tmpfs mount has no src"},
		// (Not src ".": the fixture's directory holds the test's home directory.)
		{name: "size on a rw mount", files: map[string]string{"f.cue": inst("mounts: [{src: \"sub\", dst: \"/w\", mode: \"rw\", «size: \"1G\"}]"), "sub/": ""},
			path: "instances.a.mounts[0].size", msg: `size applies to tmpfs mounts only, not "rw"`},
		{name: "unparsable tmpfs size", src: inst("mounts: [{dst: \"/w\", mode: \"tmpfs\", «size: \"12Qi\"}]"),
			path: "instances.a.mounts[0].size", msg: `"12Qi" is not a size`},
		{name: "~user src", src: inst("mounts: [{«src: \"~bob/work\", dst: \"/w\", mode: \"ro\"}]"),
			path: "instances.a.mounts[0].src", msg: `"~bob/work": only ~ and ~/ are expanded (to your home directory), not ~user`},
		{name: "~user build context", src: fleetHead + "instances: a: role: build: «context: \"~bob\"\n",
			path: "instances.a.role.build.context", msg: "not ~user"},

		// Resources.
		{name: "unparsable memory", src: inst("resources: «memory: \"lots\""),
			path: "instances.a.resources.memory", msg: `"lots" is not a size`},
		{name: "negative memoryReservation", src: inst("resources: «memoryReservation: \"-1\""),
			path: "instances.a.resources.memoryReservation", msg: `size "-1" must be positive`},
		{name: "memory below 6Mi", src: inst("resources: «memory: \"5Mi\""),
			path: "instances.a.resources.memory", msg: "memory 5Mi is below the engine's minimum of 6Mi"},
		{name: "memoryReservation above memory", src: inst("resources: {memory: \"64Mi\", «memoryReservation: \"1Gi\"}"),
			path: "instances.a.resources.memoryReservation", msg: "memoryReservation 1Gi is more than memory 64Mi"},
		{name: "more cpus than the host", src: inst("resources: «cpus: 2.5"),
			path: "instances.a.resources.cpus", msg: "cpus 2.5 is more than this host's 2 CPUs"},

		// Ports.
		{name: "address not an IP", src: inst("network: ports: [{container: 80, «address: \"localhost\"}]"),
			path: "instances.a.network.ports[0].address", msg: `address "localhost" is not an IP address`},
		{name: "duplicate host port in one instance", src: inst("network: ports: [\n\t{container: 80, host: 8080},\n\t{container: 81, «host: 8080},\n]"),
			path: "instances.a.network.ports[1].host", msg: `host port 127.0.0.1:8080/tcp is already published by instance "a" (network.ports[0])`},
		{name: "duplicate host port across instances", src: fleetHead + "instances: {\n\ta: {role: image: \"x\", network: ports: [{container: 80, host: 8080}]}\n\tb: {role: image: \"x\", network: ports: [{container: 80, «host: 8080}]}\n}\n",
			path: "instances.b.network.ports[0].host", msg: `host port 127.0.0.1:8080/tcp is already published by instance "a" (network.ports[0])`},
		{name: "0.0.0.0 and 127.0.0.1 on one port", src: fleetHead + "instances: {\n\ta: {role: image: \"x\", network: ports: [{container: 80, host: 8080}]}\n\tb: {role: image: \"x\", network: ports: [{container: 80, «host: 8080, address: \"0.0.0.0\"}]}\n}\n",
			path: "instances.b.network.ports[0].host", msg: `host port 0.0.0.0:8080/tcp is already published by instance "a"`},
		{name: ":: and ::1 on one port", src: inst("network: ports: [{container: 80, host: 8080, address: \"::1\"}, {container: 81, «host: 8080, address: \"::\"}]"),
			path: "instances.a.network.ports[1].host", msg: "is already published by"},
		{name: "one address spelled two ways", src: inst("network: ports: [{container: 80, host: 8080, address: \"::1\"}, {container: 81, «host: 8080, address: \"0:0:0:0:0:0:0:1\"}]"),
			path: "instances.a.network.ports[1].host", msg: "is already published by"},
		{name: "udp duplicate", src: inst("network: ports: [{container: 53, host: 5353, protocol: \"udp\"}, {container: 54, «host: 5353, protocol: \"udp\"}]"),
			path: "instances.a.network.ports[1].host", msg: "host port 127.0.0.1:5353/udp is already published"},
	})
}

func TestLoadRejectsFilesAndSyntax(t *testing.T) {
	runRejects(t, []rejectCase{
		{name: "instance defined in two YAML files",
			files: map[string]string{"x.yaml": yamlHead + "instances:\n  a: {role: {image: x}}\n", "y.yaml": "instances:\n  «a: {role: {image: x}}\n"},
			paths: []string{"x.yaml", "y.yaml"}, path: "instances.a", msg: "instance \"a\" is already defined at $DIR/x.yaml:5:3: instance names must be unique across the manifest files"},
		{name: "instance defined in CUE and JSON",
			files: map[string]string{"x.cue": fleetHead + "instances: a: role: image: \"x\"\n", "y.json": "{\n  \"instances\": {\n    \"«a\": {\"role\": {\"image\": \"x\"}}\n  }\n}\n"},
			paths: []string{"x.cue", "y.json"}, path: "instances.a", msg: "already defined at $DIR/x.cue:4:12"},
		{name: "instance defined twice, once through a hidden field of a sibling",
			files: map[string]string{
				"d/a.cue":  "package fleet\n" + fleetHead + "_img: \"x\"\n",
				"d/b.cue":  "package fleet\ninstances: web: role: image: _img\n",
				"d/c.yaml": "instances:\n  «web: {role: {image: x}}\n",
			},
			paths: []string{"d"}, path: "instances.web", msg: "already defined at $DIR/d/b.cue:2:12"},
		{name: "different package names",
			files: map[string]string{"d/a.cue": "package one\n" + fleetHead, "d/b.cue": "«package two\ninstances: a: role: image: \"x\"\n"},
			paths: []string{"d"}, path: "", msg: `package "two" differs from package "one" in $DIR/d/a.cue: manifest files load as one package`},
		{name: "YAML syntax error",
			files: map[string]string{"f.yaml": yamlHead + "instances:\n  a:\n    role: {image: x}\n«    agent: a: b\n"},
			paths: []string{"f.yaml"}, msg: "syntax error: mapping values are not allowed in this context"},
		{name: "YAML unterminated string",
			files: map[string]string{"f.yaml": yamlHead + "instances:\n  a:\n    role: {image: x}\n«    agent: \"claude\n"},
			paths: []string{"f.yaml"}, msg: "syntax error: found unexpected end of stream"},
		{name: "YAML tab indentation",
			files: map[string]string{"f.yaml": yamlHead + "instances:\n«\ta: {role: {image: x}}\n"},
			paths: []string{"f.yaml"}, msg: "syntax error: found character that cannot start any token"},
		{name: "YAML nested too deep",
			files: map[string]string{"f.yaml": "a: " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "\n"},
			paths: []string{"f.yaml"}, where: "f.yaml", msg: "syntax error: exceeded max depth of 10000"},
		{name: "JSON syntax error",
			files: map[string]string{"f.json": "{\n  \"apiVersion\": \"jackin.dev/v1alpha1\",\n  \"kind\": \"Fleet\"\n  «\"name\": \"t\"\n}\n"},
			paths: []string{"f.json"}, msg: "syntax error: invalid JSON for file \"$DIR/f.json\": invalid character '\"' after object key:value pair"},
		{name: "JSON trailing comma",
			files: map[string]string{"f.json": "{\n  \"apiVersion\": \"jackin.dev/v1alpha1\",\n  \"kind\": \"Fleet\",\n  \"name\": \"t\",\n«}\n"},
			paths: []string{"f.json"}, msg: "invalid character '}' looking for beginning of object key string"},
		{name: "CUE syntax error", src: fleetHead + "instances: a: {role: image: \"x\"«]\n",
			msg: "syntax error: missing ',' in struct literal"},
		// CUE places the end of the file just past the last line's newline.
		{name: "CUE unclosed brace", src: fleetHead + "instances: {\n\ta: {role: image: \"x\"}\n",
			where: "f.cue:5:24", msg: "syntax error: expected '}', found 'EOF'"},
		{name: "CUE nested too deep", src: "a: " + strings.Repeat("[", 10000) + "«" + strings.Repeat("[", 10000) + strings.Repeat("]", 20000) + "\n",
			msg: "exceeds maximum nesting depth"},
		{name: "file larger than 4 MiB", src: fleetHead + "// " + strings.Repeat("x", 4<<20) + "\n",
			where: "f.cue", msg: "manifest is larger than 4 MiB"},
		{name: "unknown extension", files: map[string]string{"f.toml": "name = \"t\"\n"},
			paths: []string{"f.toml"}, where: "f.toml", msg: "unknown manifest type: use a .cue, .yaml, .yml or .json file"},
		{name: "missing file", files: map[string]string{"other.cue": fleetHead},
			paths: []string{"nope.cue"}, where: "nope.cue", msg: "cannot read manifest: no such file or directory"},
		{name: "empty directory", files: map[string]string{"empty/": ""},
			paths: []string{"empty"}, where: "empty", msg: "the directory holds no manifest files (.cue, .yaml, .yml, .json)"},
		{name: "directory with no manifest files", files: map[string]string{"d/README.md": "hi", "d/.hidden.cue": fleetHead, "d/sub/f.cue": fleetHead},
			paths: []string{"d"}, where: "d", msg: "holds no manifest files"},
	})
	// Stdin has no file in the fixture: checked on its own.
	_, err := Load(context.Background(), []string{"-"}, Options{HostCPUs: 2})
	var diags Diagnostics
	if !errors.As(err, &diags) || len(diags) != 1 || diags[0].File != StdinName || !strings.Contains(diags[0].Msg, "no standard input to read") {
		t.Errorf("stdin without a reader: %v", err)
	}
}

// TestLoadRejectsTheHostDockerSocket mounts the host Docker socket in every
// spelling: directly, through a parent directory, through "..", through
// symlinks (to the socket, to a parent, as a parent, dangling), relative to
// the manifest, from ~ and through defaults.
func TestLoadRejectsTheHostDockerSocket(t *testing.T) {
	srcs := []struct{ name, src string }{
		{"socket", "/var/run/docker.sock"},
		{"run socket", "/run/docker.sock"},
		{"var run", "/var/run"},
		{"run", "/run"},
		{"var", "/var"},
		{"root", "/"},
		{"dot-dot", "/tmp/../var/run"},
		{"dot-dot to the socket", "/var/run/../run/docker.sock"},
		{"dot and slashes", "//var/./run//"},
		{"trailing slash", "/run/"},
		{"symlink to /var/run", "$DIR/to-var-run"},
		{"symlink to the socket", "$DIR/to-sock"},
		{"symlink to /var/run/docker.sock", "$DIR/to-var-sock"},
		{"dangling symlink naming the socket", "$DIR/dangling"},
		{"symlinked parent", "$DIR/to-var/run"},
		{"symlinked parent to the socket", "$DIR/to-var/run/docker.sock"},
		{"relative symlink target", "$DIR/rel-link"},
		{"chain of symlinks", "$DIR/chain"},
		{"relative src through a symlink", "to-var/run"},
		{"relative src through a symlink, dot-slash", "./to-sock"},
		{"relative src with dot-dot", "$UPvar/../run/docker.sock"},
		{"home symlink", "~/sock"},
	}
	setup := func(t *testing.T, fx fixture) {
		fx.symlink(t, "to-var-run", "/var/run")
		fx.symlink(t, "to-sock", "/run/docker.sock")
		fx.symlink(t, "to-var-sock", "/var/run/docker.sock")
		// A link whose target is missing must still be resolved by its text.
		fx.symlink(t, "dangling", "/run/jackin-missing/../docker.sock")
		fx.symlink(t, "to-var", "/var")
		fx.symlink(t, "rel-link", "$UPvar/run")
		fx.symlink(t, "chain", "$DIR/to-var-run")
		if err := os.MkdirAll(filepath.Join(fx.dir, "home"), 0o755); err != nil {
			t.Fatal(err)
		}
		fx.symlink(t, "home/sock", "/var/run/docker.sock")
	}
	for _, s := range srcs {
		for _, mode := range []string{"ro", "rw"} {
			t.Run(s.name+"/"+mode, func(t *testing.T) {
				fx := newFixture(t, map[string]string{"f.cue": fleetHead + "instances: a: {\n\trole: image: \"x\"\n\tmounts: [{dst: \"/x\", mode: \"tmpfs\"}, {«src: \"" + s.src + "\", dst: \"/y\", mode: \"" + mode + "\"}]\n}\n"})
				setup(t, fx)
				_, diags := fx.load(t, fx.opts(), "f.cue")
				expect(t, diags, fx.where, "instances.a.mounts[1].src", "would expose the host Docker socket")
				if len(diags) != 1 {
					t.Errorf("want 1 diagnostic, got:\n%s", dump(diags))
				}
			})
		}
	}

	t.Run("through defaults", func(t *testing.T) {
		fx := newFixture(t, map[string]string{"f.yaml": yamlHead + "defaults:\n  mounts:\n    - {«src: /var/run, dst: /x, mode: rw}\ninstances:\n  a: {role: {image: x}}\n  b: {role: {image: y}}\n"})
		_, diags := fx.load(t, fx.opts(), "f.yaml")
		expect(t, diags, fx.where, "defaults.mounts[0].src", "mounting /var/run would expose the host Docker socket /var/run/docker.sock")
		if len(diags) != 1 {
			t.Errorf("two instances inheriting one mistake: want it said once, got:\n%s", dump(diags))
		}
	})
	t.Run("relative, through defaults in another file", func(t *testing.T) {
		fx := newFixture(t, map[string]string{
			"base/defaults.cue": fleetHead + "defaults: mounts: [{«src: \"link\", dst: \"/x\", mode: \"ro\"}]\n",
			"fleet/web.yaml":    "instances:\n  web: {role: {image: x}}\n",
			"fleet/link":        "a file, not the link: the src must resolve against base/",
		})
		fx.symlink(t, "base/link", "/var/run")
		_, diags := fx.load(t, fx.opts(), "base/defaults.cue", "fleet/web.yaml")
		expect(t, diags, fx.where, "defaults.mounts[0].src", "mounting "+filepath.Join(fx.dir, "base", "link")+" would expose")
	})
	t.Run("build context is not checked as a mount, but a mount of it is", func(t *testing.T) {
		fx := newFixture(t, map[string]string{"f.cue": fleetHead + "instances: a: {role: image: \"x\", mounts: [{«src: \"/var/run/\", dst: \"/var/run\", mode: \"ro\"}]}\n"})
		_, diags := fx.load(t, fx.opts(), "f.cue")
		expect(t, diags, fx.where, "instances.a.mounts[0].src", "would expose the host Docker socket")
	})
}

// sensitiveHome lays out a home directory under the fixture, with the
// credential locations the issue names, and links that lead into it.
func sensitiveHome(t *testing.T, fx fixture) {
	t.Helper()
	home := filepath.Join(fx.dir, "home")
	for _, d := range []string{".ssh", ".aws", ".gnupg", ".config/gh", ".config/gcloud", ".config/op", ".config/nvim", ".docker", ".kube", ".azure", "projects", ".sshx"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{".netrc", ".npmrc", ".git-credentials", ".ssh/id_ed25519"} {
		if err := os.WriteFile(filepath.Join(home, f), []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fx.symlink(t, "keys", "$DIR/home/.ssh")           // a link to ~/.ssh
	fx.symlink(t, "rel-keys", "home/.ssh")            // relative target
	fx.symlink(t, "to-home", "$DIR/home")             // a link to $HOME
	fx.symlink(t, "chain", "$DIR/keys")               // a link to a link to ~/.ssh
	fx.symlink(t, "home/work-link", "$DIR/home/.aws") // a harmless-looking name inside home
}

// TestLoadRefusesSensitivePaths mounts the credential locations of the
// issue, the home directory and its parents, in every spelling (~,
// absolute, "..", trailing slash, symlinks to them or through them), and
// checks each is refused at the src field unless the mount sets
// allowSensitive: true.
func TestLoadRefusesSensitivePaths(t *testing.T) {
	sensitive := []struct{ name, src, msg string }{
		// The list, spelled from ~.
		{"ssh", "~/.ssh", "exposes ~/.ssh (SSH keys)"},
		{"aws", "~/.aws", "exposes ~/.aws (AWS credentials)"},
		{"gnupg", "~/.gnupg", "exposes ~/.gnupg"},
		{"gh", "~/.config/gh", "exposes ~/.config/gh (GitHub CLI token)"},
		{"docker", "~/.docker", "exposes ~/.docker"},
		{"kube", "~/.kube", "exposes ~/.kube"},
		{"netrc", "~/.netrc", "exposes ~/.netrc"},
		{"npmrc", "~/.npmrc", "exposes ~/.npmrc"},
		{"git-credentials", "~/.git-credentials", "exposes ~/.git-credentials"},
		{"gcloud", "~/.config/gcloud", "exposes ~/.config/gcloud"},
		{"azure", "~/.azure", "exposes ~/.azure"},
		{"op", "~/.config/op", "exposes ~/.config/op"},
		// Parents, the home directory itself, and parts.
		{"home as ~", "~", "exposes the home directory $DIR/home and every credential in it"},
		{"home as ~/", "~/", "exposes the home directory $DIR/home"},
		{"home, absolute ($HOME)", "$DIR/home", "exposes the home directory $DIR/home"},
		{"parent of home", "$DIR", "exposes the home directory $DIR/home"},
		{"parent of home, relative", ".", "exposes the home directory $DIR/home"},
		{"parent of a credential dir", "~/.config", "exposes ~/.config/gh (GitHub CLI token), which it contains; exposes ~/.config/gcloud"},
		{"file inside a credential dir", "~/.ssh/id_ed25519", "exposes part of ~/.ssh (SSH keys)"},
		{"missing file inside a credential dir", "~/.ssh/not-there-yet", "exposes part of ~/.ssh"},
		// Other spellings.
		{"trailing slash", "~/.aws/", "exposes ~/.aws"},
		{"dot-dot", "~/projects/../.ssh", "exposes ~/.ssh"},
		{"absolute", "$DIR/home/.kube", "exposes ~/.kube"},
		// Symlinks are resolved before matching.
		{"symlink to ~/.ssh", "$DIR/keys", "exposes ~/.ssh (SSH keys)"},
		{"relative symlink to ~/.ssh, relative src", "rel-keys", "exposes ~/.ssh"},
		{"chain of symlinks to ~/.ssh", "chain", "exposes ~/.ssh"},
		{"symlink to $HOME", "to-home", "exposes the home directory $DIR/home"},
		{"through a symlink to $HOME", "to-home/.ssh", "exposes ~/.ssh"},
		{"symlink inside home to ~/.aws", "~/work-link", "exposes ~/.aws"},
	}
	for _, s := range sensitive {
		for _, mode := range []string{"ro", "rw"} {
			t.Run(s.name+"/"+mode, func(t *testing.T) {
				mount := "{«src: \"" + s.src + "\", dst: \"/y\", mode: \"" + mode + "\"}"
				fx := newFixture(t, map[string]string{"f.cue": fleetHead + "instances: a: {\n\trole: image: \"x\"\n\tmounts: [{dst: \"/x\", mode: \"tmpfs\"}, " + mount + "]\n}\n"})
				sensitiveHome(t, fx)
				_, diags := fx.load(t, fx.opts(), "f.cue")
				expect(t, diags, fx.where, "instances.a.mounts[1].src", fx.expand(s.msg))
				expect(t, diags, fx.where, "instances.a.mounts[1].src", "set allowSensitive: true on this mount")
				if len(diags) != 1 {
					t.Errorf("want 1 diagnostic, got:\n%s", dump(diags))
				}
			})
			t.Run(s.name+"/"+mode+"/allowed", func(t *testing.T) {
				if strings.Contains(s.name, "missing") {
					t.Skip("allowed, it is refused for not existing")
				}
				fx := newFixture(t, map[string]string{"f.cue": fleetHead + "instances: a: {\n\trole: image: \"x\"\n\tmounts: [{src: \"" + s.src + "\", dst: \"/y\", mode: \"" + mode + "\", allowSensitive: true}]\n}\n"})
				sensitiveHome(t, fx)
				f := fx.mustLoad(t, "f.cue")
				m := f.Instances["a"].Mounts
				if len(m) != 1 || !m[0].AllowSensitive || m[0].Mode != mode {
					t.Errorf("mounts: %+v", m)
				}
			})
		}
	}

	t.Run("allowSensitive: false is refused", func(t *testing.T) {
		fx := newFixture(t, map[string]string{"f.yaml": yamlHead + "instances:\n  a:\n    role: {image: x}\n    mounts:\n      - {«src: ~/.ssh, dst: /k, mode: ro, allowSensitive: false}\n"})
		sensitiveHome(t, fx)
		_, diags := fx.load(t, fx.opts(), "f.yaml")
		expect(t, diags, fx.where, "instances.a.mounts[0].src", "exposes ~/.ssh")
	})
	t.Run("through defaults, said once", func(t *testing.T) {
		fx := newFixture(t, map[string]string{"f.yaml": yamlHead + "defaults:\n  mounts:\n    - {«src: ~/.aws, dst: /aws, mode: ro}\ninstances:\n  a: {role: {image: x}}\n  b: {role: {image: y}}\n"})
		sensitiveHome(t, fx)
		_, diags := fx.load(t, fx.opts(), "f.yaml")
		expect(t, diags, fx.where, "defaults.mounts[0].src", "mounting "+filepath.Join(fx.dir, "home", ".aws")+" exposes ~/.aws (AWS credentials)")
		if len(diags) != 1 {
			t.Errorf("want 1 diagnostic, got:\n%s", dump(diags))
		}
	})
	t.Run("allowed through defaults", func(t *testing.T) {
		fx := newFixture(t, map[string]string{"f.yaml": yamlHead + "defaults:\n  mounts:\n    - {src: ~/.aws, dst: /aws, mode: ro, allowSensitive: true}\ninstances:\n  a: {role: {image: x}}\n"})
		sensitiveHome(t, fx)
		if m := fx.mustLoad(t, "f.yaml").Instances["a"].Mounts; len(m) != 1 || !m[0].AllowSensitive {
			t.Errorf("mounts: %+v", m)
		}
	})
	t.Run("home reached through a symlink", func(t *testing.T) {
		// $HOME itself is a link (as on hosts where /home is one): the real
		// path of a credential dir is refused too.
		fx := newFixture(t, map[string]string{"f.cue": fleetHead + "instances: a: {role: image: \"x\", mounts: [{«src: \"$DIR/real/.ssh\", dst: \"/k\", mode: \"ro\"}]}\n", "real/.ssh/": ""})
		fx.symlink(t, "home-link", "$DIR/real")
		opts := fx.opts()
		opts.Home = filepath.Join(fx.dir, "home-link")
		_, diags := fx.load(t, opts, "f.cue")
		expect(t, diags, fx.where, "instances.a.mounts[0].src", "exposes ~/.ssh")
	})
	t.Run("allowSensitive on tmpfs", func(t *testing.T) {
		fx := newFixture(t, map[string]string{"f.cue": inst("mounts: [{dst: \"/t\", mode: \"tmpfs\", «allowSensitive: true}]")})
		_, diags := fx.load(t, fx.opts(), "f.cue")
		expect(t, diags, fx.where, "instances.a.mounts[0].allowSensitive", "allowSensitive applies to mounts with a host src only")
	})
	t.Run("not sensitive", func(t *testing.T) {
		// Inside home but not a credential location; a name that only
		// starts like one; a sibling of home.
		fx := newFixture(t, map[string]string{"f.cue": inst("mounts: [{src: \"~/projects\", dst: \"/p\", mode: \"rw\"}, {src: \"~/.config/nvim\", dst: \"/n\", mode: \"ro\"}, {src: \"~/.sshx\", dst: \"/s\", mode: \"ro\"}, {src: \"other\", dst: \"/o\", mode: \"rw\"}]"), "other/": ""})
		sensitiveHome(t, fx)
		if m := fx.mustLoad(t, "f.cue").Instances["a"].Mounts; len(m) != 4 || m[0].AllowSensitive {
			t.Errorf("mounts: %+v", m)
		}
	})
}

func TestLoadRefusesDockerHost(t *testing.T) {
	values := map[string]string{
		"unix://":  "unix:///var/run/docker.sock",
		"tcp://":   "tcp://127.0.0.1:2375",
		"ssh://":   "ssh://deploy@build-host",
		"npipe://": "npipe:////./pipe/docker_engine",
		"fd://":    "fd://",
		"https://": "https://docker.internal:2376",
		"a path":   "/run/user/1000/docker.sock",
		"anything": "docker.example:2375",
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			fx := newFixture(t, map[string]string{"f.cue": inst("env: {A: \"1\", «DOCKER_HOST: \"" + v + "\"}")})
			_, diags := fx.load(t, fx.opts(), "f.cue")
			expect(t, diags, fx.where, "instances.a.env.DOCKER_HOST", "DOCKER_HOST="+v+" points the agent at")
			expect(t, diags, fx.where, "instances.a.env.DOCKER_HOST", "the host Docker daemon is never exposed to an agent")
		})
	}
	t.Run("through defaults", func(t *testing.T) {
		fx := newFixture(t, map[string]string{
			"d.cue": fleetHead + "defaults: env: «DOCKER_HOST: \"unix:///run/docker.sock\"\n",
			"i.cue": "instances: a: {role: image: \"x\", env: A: \"1\"}\n",
		})
		_, diags := fx.load(t, fx.opts(), "d.cue", "i.cue")
		expect(t, diags, fx.where, "defaults.env.DOCKER_HOST", "a Docker socket on the host")
	})
	t.Run("in YAML", func(t *testing.T) {
		fx := newFixture(t, map[string]string{"f.yaml": yamlHead + "instances:\n  a:\n    role: {image: x}\n    env:\n      «DOCKER_HOST: ssh://me@host\n"})
		_, diags := fx.load(t, fx.opts(), "f.yaml")
		expect(t, diags, fx.where, "instances.a.env.DOCKER_HOST", "DOCKER_HOST=ssh://me@host")
	})
	t.Run("empty is not an endpoint", func(t *testing.T) {
		fx := newFixture(t, map[string]string{"f.cue": inst("env: DOCKER_HOST: \"\"")})
		fx.mustLoad(t, "f.cue")
	})
}

// TestLoadReportsAllErrorsInOneRun: independent mistakes, several in one
// instance, are all reported by one Load, each at its own place.
func TestLoadReportsAllErrorsInOneRun(t *testing.T) {
	fx := newFixture(t, map[string]string{
		"f.cue": fleetHead + "instances: {\n" +
			"\ta: {\n" +
			"\t\trole: image: \"x\"\n" +
			"\t\tagent: \"gpt\"\n" + // 1: bad enum
			"\t\tfoo: 1\n" + // 2: unknown field
			"\t\tmounts: [{src: \"./missing\", dst: \"/w\", mode: \"rw\"}]\n" + // 3: src missing
			"\t}\n" +
			"\tb: {\n" +
			"\t\trole: image: \"x\"\n" +
			"\t\tnetwork: ports: [{container: 80, address: \"localhost\"}]\n" + // 4: not an IP
			"\t\tresources: memory: \"1Mi\"\n" + // 5: below the minimum
			"\t}\n" +
			"}\n",
	})
	_, diags := fx.load(t, fx.opts(), "f.cue")
	f := filepath.Join(fx.dir, "f.cue")
	expect(t, diags, f+":7:3", "instances.a.agent", "is neither a built-in runtime")
	expect(t, diags, f+":8:3", "instances.a.foo", `field "foo" is not allowed here`)
	expect(t, diags, f+":9:13", "instances.a.mounts[0].src", "does not exist")
	expect(t, diags, f+":13:36", "instances.b.network.ports[0].address", "is not an IP address")
	expect(t, diags, f+":14:14", "instances.b.resources.memory", "below the engine's minimum")
	if len(diags) != 5 {
		t.Errorf("want 5 diagnostics, got %d:\n%s", len(diags), dump(diags))
	}
	// In file order.
	for i := 1; i < len(diags); i++ {
		if diags[i-1].Line > diags[i].Line {
			t.Errorf("diagnostics out of order:\n%s", dump(diags))
		}
	}

	t.Run("across files and formats", func(t *testing.T) {
		fx := newFixture(t, map[string]string{
			"a.cue":  fleetHead + "instances: a: {role: image: \"x\", state: \"on\"}\n",
			"b.yaml": "instances:\n  b:\n    role: {image: x}\n    mounts:\n      - {dst: rel, mode: tmpfs}\n",
			"c.json": "{\"instances\": {\n  \"c\": {\n    \"role\": {\"image\": \"x\"},\n    \"resources\": {\"cpus\": 64}\n  }\n}}\n",
		})
		_, diags := fx.load(t, fx.opts(), "a.cue", "b.yaml", "c.json")
		expect(t, diags, filepath.Join(fx.dir, "a.cue")+":4:34", "instances.a.state", "state must be one of")
		expect(t, diags, filepath.Join(fx.dir, "b.yaml")+":5:10", "instances.b.mounts[0].dst", "must be an absolute path")
		expect(t, diags, filepath.Join(fx.dir, "c.json")+":4:20", "instances.c.resources.cpus", "more than this host's 2 CPUs")
		if len(diags) != 3 {
			t.Errorf("want 3 diagnostics, got:\n%s", dump(diags))
		}
	})
}

func TestLoadYAMLAndJSONKeepTheirLines(t *testing.T) {
	fx := newFixture(t, map[string]string{
		"f.yaml": yamlHead + "\n# a comment\ninstances:\n  a:\n    role: {image: x}\n    mounts:\n      - src: ./nope\n        dst: /w\n        mode: ro\n",
		"f.json": "{\n  \"apiVersion\": \"jackin.dev/v1alpha1\",\n  \"kind\": \"Fleet\",\n  \"name\": \"t\",\n\n  \"instances\": {\n    \"a\": {\n      \"role\": {\"image\": \"x\"},\n      \"agent\": \"robot\"\n    }\n  }\n}\n",
	})
	_, diags := fx.load(t, fx.opts(), "f.yaml")
	expect(t, diags, filepath.Join(fx.dir, "f.yaml")+":10:9", "instances.a.mounts[0].src", "does not exist")
	_, diags = fx.load(t, fx.opts(), "f.json")
	expect(t, diags, filepath.Join(fx.dir, "f.json")+":9:8", "instances.a.agent", `agent "robot" is neither a built-in runtime`)
}

// ---- valid input ----

func TestLoadDirectoryAsOnePackage(t *testing.T) {
	fx := newFixture(t, map[string]string{
		"fleet/00-base.cue": "package fleet\n" + fleetHead +
			"#Agent: {role: image: _img, agent: \"claude\", ...}\n" +
			"_img: \"ghcr.io/acme/agent:1\"\n",
		"fleet/10-web.cue":  "package fleet\ninstances: web: #Agent & {env: ROLE: \"web\"}\n",
		"fleet/20-db.cue":   "// no package clause: joins the package of its siblings\ninstances: db: role: image: _img\n",
		"fleet/30-ops.yaml": "instances:\n  ops:\n    role: {image: busybox}\n    agent: codex\n",
		"fleet/40-api.json": "{\"instances\": {\"api\": {\"role\": {\"image\": \"api:1\"}}}}\n",
		"fleet/notes.txt":   "not a manifest",
		"fleet/.hidden.cue": "this is not CUE",
		"fleet/sub/x.cue":   "this is not CUE either: subdirectories are not read",
	})
	f := fx.mustLoad(t, "fleet")
	if got := sortedKeys(f.Instances); !reflect.DeepEqual(got, []string{"api", "db", "ops", "web"}) {
		t.Fatalf("instances %v", got)
	}
	if web := f.Instances["web"]; web.Role.Image != "ghcr.io/acme/agent:1" || web.Agent != "claude" || web.Env["ROLE"] != "web" {
		t.Errorf("web from a definition and a hidden field in another file: %+v", web)
	}
	if db := f.Instances["db"]; db.Role.Image != "ghcr.io/acme/agent:1" {
		t.Errorf("db through a hidden field, from a file without a package clause: %+v", db)
	}
	if ops := f.Instances["ops"]; ops.Role.Image != "busybox" || ops.Agent != "codex" {
		t.Errorf("ops from YAML: %+v", ops)
	}
	wantSources := []string{"00-base.cue", "10-web.cue", "20-db.cue", "30-ops.yaml", "40-api.json"}
	for i := range wantSources {
		wantSources[i] = filepath.Join(fx.dir, "fleet", wantSources[i])
	}
	if !reflect.DeepEqual(f.Sources, wantSources) {
		t.Errorf("sources %v, want %v", f.Sources, wantSources)
	}
}

func TestLoadCombinesPaths(t *testing.T) {
	fx := newFixture(t, map[string]string{
		"base.cue":      fleetHead + "defaults: {agent: \"amp\", env: TZ: \"UTC\"}\n",
		"more/web.yaml": "instances:\n  web: {role: {image: x}}\n",
		"more/api.json": "{\"instances\": {\"api\": {\"role\": {\"image\": \"y\"}, \"agent\": \"gemini\"}}}\n",
	})
	f := fx.mustLoad(t, "base.cue", "more/web.yaml", "more/api.json", "base.cue")
	if f.Name != "t" || f.Instances["web"].Agent != "amp" || f.Instances["web"].Env["TZ"] != "UTC" || f.Instances["api"].Agent != "gemini" || f.Instances["api"].Env["TZ"] != "UTC" {
		t.Errorf("combined: %+v", f.Instances)
	}
	if len(f.Sources) != 3 {
		t.Errorf("a path given twice is read once: %v", f.Sources)
	}
}

func TestLoadStdin(t *testing.T) {
	fx := newFixture(t, map[string]string{"work/.keep": ""})
	docs := map[string]string{
		"cue":  fleetHead + "_w: \"work\"\ninstances: a: {role: image: \"x\", mounts: [{src: _w, dst: \"/w\", mode: \"ro\"}]}\n",
		"yaml": yamlHead + "instances:\n  a:\n    role: {image: x}\n    mounts: [{src: work, dst: /w, mode: ro}]\n",
		"json": "{\"apiVersion\": \"jackin.dev/v1alpha1\", \"kind\": \"Fleet\", \"name\": \"t\",\n \"instances\": {\"a\": {\"role\": {\"image\": \"x\"}, \"mounts\": [{\"src\": \"work\", \"dst\": \"/w\", \"mode\": \"ro\"}]}}}\n",
	}
	for kind, doc := range docs {
		t.Run(kind, func(t *testing.T) {
			opts := fx.opts()
			opts.Stdin = strings.NewReader(doc)
			res, diags := fx.load(t, opts, "-")
			if diags != nil {
				t.Fatal(diags)
			}
			if got := res.Fleet.Instances["a"].Mounts[0].Src; got != filepath.Join(fx.dir, "work") {
				t.Errorf("a relative src in stdin resolves against WorkDir: got %s", got)
			}
			if !reflect.DeepEqual(res.Fleet.Sources, []string{StdinName}) {
				t.Errorf("sources %v", res.Fleet.Sources)
			}
		})
	}
	t.Run("errors name stdin", func(t *testing.T) {
		opts := fx.opts()
		opts.Stdin = strings.NewReader(yamlHead + "instances:\n  a:\n    role: {image: x}\n    state: on\n")
		_, diags := fx.load(t, opts, "-")
		expect(t, diags, StdinName+":7:5", "instances.a.state", "state must be one of")
	})
	t.Run("stdin and a file", func(t *testing.T) {
		opts := fx.opts()
		opts.Stdin = strings.NewReader("{\"instances\": {\"b\": {\"role\": {\"image\": \"y\"}}}}")
		fx2 := newFixture(t, map[string]string{"f.cue": inst("")})
		res, diags := fx2.load(t, opts, "f.cue", "-")
		if diags != nil || len(res.Fleet.Instances) != 2 {
			t.Fatalf("%v %v", diags, res)
		}
	})
}

func TestLoadResolvesPaths(t *testing.T) {
	fx := newFixture(t, map[string]string{
		"repo/fleet/f.cue": fleetHead + "instances: {\n" +
			"\ta: {role: build: context: \"../ctx\", mounts: [{src: \"../work\", dst: \"/w\", mode: \"rw\"}, {src: \".\", dst: \"/f\", mode: \"ro\"}]}\n" +
			"\tb: {role: image: \"x\", mounts: [{src: \"~/cfg\", dst: \"/c\", mode: \"ro\"}, {src: \"~\", dst: \"/h\", mode: \"ro\", allowSensitive: true}, {src: \"$DIR/repo/work/\", dst: \"/abs\", mode: \"ro\"}]}\n" +
			"}\n",
		"repo/ctx/Dockerfile": "FROM scratch\n",
		"repo/work/.keep":     "",
		"home/cfg":            "x",
	})
	// Load from another working directory: relative paths follow the file, not the cwd.
	f := fx.mustLoad(t, "repo/fleet/f.cue")
	a, b := f.Instances["a"], f.Instances["b"]
	if a.Role.Build == nil || a.Role.Build.Context != filepath.Join(fx.dir, "repo", "ctx") || a.Role.Build.Dockerfile != "Dockerfile" {
		t.Errorf("build context: %+v", a.Role.Build)
	}
	if a.Mounts[0].Src != filepath.Join(fx.dir, "repo", "work") || a.Mounts[1].Src != filepath.Join(fx.dir, "repo", "fleet") {
		t.Errorf("relative mounts: %+v", a.Mounts)
	}
	home := filepath.Join(fx.dir, "home")
	if b.Mounts[0].Src != filepath.Join(home, "cfg") || b.Mounts[1].Src != home || b.Mounts[2].Src != filepath.Join(fx.dir, "repo", "work") {
		t.Errorf("~ and absolute mounts: %+v", b.Mounts)
	}

	t.Run("inherited relative paths resolve against the file that holds them", func(t *testing.T) {
		fx := newFixture(t, map[string]string{
			"base/defaults.yaml":   yamlHead + "defaults:\n  role: {build: {context: role}}\n  mounts: [{src: data, dst: /d, mode: ro}]\n",
			"base/role/Dockerfile": "FROM scratch\n",
			"base/data/.keep":      "",
			"team/web.cue":         "instances: web: {}\n",
			"team/api.cue":         "instances: api: {role: build: context: \"role\", mounts: [{src: \"data\", dst: \"/d\", mode: \"rw\"}]}\n",
			"team/role/Dockerfile": "FROM scratch\n",
			"team/data/.keep":      "",
		})
		f := fx.mustLoad(t, "base/defaults.yaml", "team/web.cue", "team/api.cue")
		web, api := f.Instances["web"], f.Instances["api"]
		if web.Role.Build.Context != filepath.Join(fx.dir, "base", "role") || web.Mounts[0].Src != filepath.Join(fx.dir, "base", "data") {
			t.Errorf("inherited from base/: %+v %+v", web.Role.Build, web.Mounts)
		}
		if api.Role.Build.Context != filepath.Join(fx.dir, "team", "role") || api.Mounts[0].Src != filepath.Join(fx.dir, "team", "data") {
			t.Errorf("own, in team/: %+v %+v", api.Role.Build, api.Mounts)
		}
	})
	t.Run("an inherited default Dockerfile that is missing is reported in defaults", func(t *testing.T) {
		fx := newFixture(t, map[string]string{
			"base/d.cue":  fleetHead + "defaults: role: «build: context: \"role\"\n",
			"base/role/":  "",
			"team/w.yaml": "instances:\n  web: {}\n",
		})
		_, diags := fx.load(t, fx.opts(), "base/d.cue", "team/w.yaml")
		expect(t, diags, fx.where, "defaults.role.build.dockerfile", "dockerfile Dockerfile does not exist in the build context "+filepath.Join(fx.dir, "base", "role"))
	})
}

func TestLoadMergesDefaults(t *testing.T) {
	fx := newFixture(t, map[string]string{
		"ctx/Dockerfile": "FROM scratch\n",
		"data/.keep":     "",
		"f.cue": fleetHead + `defaults: {
	description: "from defaults"
	agent: "shell"
	state: "stopped"
	command: ["sleep", "1d"]
	args: ["-x"]
	role: build: {context: "ctx", args: A: "1"}
	env: {A: "d", B: "d"}
	labels: {team: "d", tier: "d"}
	mounts: [{src: "data", dst: "/d", mode: "ro"}, {dst: "/tmp", mode: "tmpfs"}]
	resources: {memory: "1Gi", memoryReservation: "256Mi", cpus: 1, pids: 100}
	network: ports: [{container: 22}]
}
instances: {
	own: {
		description: "own"
		agent: "shell"
		state: "running"
		command: ["bash"]
		args: ["-l"]
		role: image: "img:1"
		env: {B: "own", C: "own"}
		labels: tier: "own"
		mounts: [{dst: "/scratch", mode: "tmpfs", size: "64Mi"}]
		resources: {memory: "2Gi", pids: 7}
		network: ports: [{container: 80, host: 18080}]
	}
	inherited: {}
}
`,
	})
	f := fx.mustLoad(t, "f.cue")
	own, inh := f.Instances["own"], f.Instances["inherited"]
	want := schema.Instance{
		Name: "own", Description: "own", Backend: "docker", Agent: "shell", State: "running", Docker: "none",
		Command: []string{"bash"}, Args: []string{"-l"},
		Role:   schema.Role{Image: "img:1"}, // the role is taken whole: no build from defaults
		Env:    map[string]string{"A": "d", "B": "own", "C": "own"},
		Labels: map[string]string{"team": "d", "tier": "own"},
		Mounts: []schema.Mount{{Dst: "/scratch", Mode: "tmpfs", Size: "64Mi", SizeBytes: 64 << 20}}, // the list is replaced whole
		Resources: schema.Resources{Memory: "2Gi", MemoryBytes: 2 << 30, MemoryReservation: "256Mi", MemoryReservationBytes: 256 << 20,
			CPUs: 1, Pids: 7},
		Network: schema.Network{Egress: "open", Ports: []schema.Port{{Container: 80, Host: 18080, Address: "127.0.0.1", Protocol: "tcp"}}},
		Profile: "standard",
		Sources: map[string]string{"resources.memory": "manifest", "resources.memoryReservation": "manifest", "resources.cpus": "manifest", "resources.pids": "manifest"},
	}
	if !reflect.DeepEqual(own, want) {
		t.Errorf("own:\n got %s\nwant %s", js(own), js(want))
	}
	wantInh := schema.Instance{
		Name: "inherited", Description: "from defaults", Backend: "docker", Agent: "shell", State: "stopped", Docker: "none",
		Command: []string{"sleep", "1d"}, Args: []string{"-x"},
		Role:   schema.Role{Build: &schema.Build{Context: filepath.Join(fx.dir, "ctx"), Dockerfile: "Dockerfile", Args: map[string]string{"A": "1"}}},
		Env:    map[string]string{"A": "d", "B": "d"},
		Labels: map[string]string{"team": "d", "tier": "d"},
		Mounts: []schema.Mount{{Src: filepath.Join(fx.dir, "data"), Dst: "/d", Mode: "ro"}, {Dst: "/tmp", Mode: "tmpfs"}},
		Resources: schema.Resources{Memory: "1Gi", MemoryBytes: 1 << 30, MemoryReservation: "256Mi", MemoryReservationBytes: 256 << 20,
			CPUs: 1, Pids: 100},
		Network: schema.Network{Egress: "open", Ports: []schema.Port{{Container: 22, Address: "127.0.0.1", Protocol: "tcp"}}},
		Profile: "standard",
		Sources: map[string]string{"resources.memory": "manifest", "resources.memoryReservation": "manifest", "resources.cpus": "manifest", "resources.pids": "manifest"},
	}
	if !reflect.DeepEqual(inh, wantInh) {
		t.Errorf("inherited:\n got %s\nwant %s", js(inh), js(wantInh))
	}
	// Merging must not let one instance's maps leak into defaults or another instance.
	if _, leaked := inh.Env["C"]; leaked {
		t.Errorf("env leaked between instances: %v", inh.Env)
	}
}

func TestLoadAppliesSchemaDefaults(t *testing.T) {
	fx := newFixture(t, map[string]string{"f.cue": fleetHead + "instances: a: {role: image: \"x\", network: ports: [{container: 80, host: 8080}, {container: 81}]}\n"})
	f := fx.mustLoad(t, "f.cue")
	a := f.Instances["a"]
	want := schema.Instance{
		Name: "a", Backend: "docker", Agent: "shell", State: "running", Docker: "none", Profile: "standard",
		Role: schema.Role{Image: "x"},
		Network: schema.Network{Egress: "open", Ports: []schema.Port{
			{Container: 80, Host: 8080, Address: "127.0.0.1", Protocol: "tcp"},
			{Container: 81, Address: "127.0.0.1", Protocol: "tcp"},
		}},
	}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("\n got %s\nwant %s", js(a), js(want))
	}
	if f.APIVersion != schema.APIVersion || f.Kind != schema.KindFleet || f.Name != "t" {
		t.Errorf("header: %+v", f)
	}
	t.Run("no instances", func(t *testing.T) {
		fx := newFixture(t, map[string]string{"f.cue": fleetHead})
		if f := fx.mustLoad(t, "f.cue"); f.Instances == nil || len(f.Instances) != 0 {
			t.Errorf("instances %#v", f.Instances)
		}
	})
}

func TestLoadParsesSizesAndAcceptsBoundaries(t *testing.T) {
	fx := newFixture(t, map[string]string{"f.cue": fleetHead + `instances: {
	a: {
		role: image: "x"
		resources: {memory: "6Mi", memoryReservation: "6Mi", cpus: 2, pids: 1}
		mounts: [{dst: "/t", mode: "tmpfs", size: "1.5Gi"}, {dst: "/u", mode: "tmpfs", size: "64k"}]
		network: ports: [
			{container: 65535, host: 65535},
			{container: 80, host: 8080, protocol: "udp"},     // another protocol
			{container: 81, host: 8081, address: "127.0.0.2"}, // another address
			{container: 82, host: 8081, address: "::1"},
		]
	}
	b: {role: image: "x", resources: {memory: "2G", memoryReservation: "512MiB"}, network: ports: [{container: 80, host: 8080}]}
}
`})
	f := fx.mustLoad(t, "f.cue")
	a, b := f.Instances["a"], f.Instances["b"]
	if a.Resources.MemoryBytes != 6<<20 || a.Resources.MemoryReservationBytes != 6<<20 || a.Resources.CPUs != 2 || a.Resources.Pids != 1 {
		t.Errorf("a resources: %+v", a.Resources)
	}
	if a.Mounts[0].SizeBytes != 3<<29 || a.Mounts[0].Size != "1.5Gi" || a.Mounts[1].SizeBytes != 64000 {
		t.Errorf("tmpfs sizes: %+v", a.Mounts)
	}
	if b.Resources.Memory != "2G" || b.Resources.MemoryBytes != 2e9 || b.Resources.MemoryReservationBytes != 512<<20 {
		t.Errorf("b resources: %+v", b.Resources)
	}
}

// ---- examples ----

// exampleOpts pins what the examples may depend on, so the tests do not
// depend on the machine's CPU count.
func exampleOpts() Options { return Options{HostCPUs: 4, Home: os.TempDir()} }

func TestExamplesResolveToTheSameFleet(t *testing.T) {
	var docs []string
	for _, name := range []string{"fleet.cue", "fleet.yaml", "fleet.json"} {
		p := filepath.Join("..", "examples", name)
		res, err := Load(context.Background(), []string{p}, exampleOpts())
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if len(res.Fleet.Instances) < 2 {
			t.Errorf("%s: the example should show more than one instance", p)
		}
		if !reflect.DeepEqual(res.Fleet.Sources, []string{p}) {
			t.Errorf("%s: sources %v", p, res.Fleet.Sources)
		}
		res.Fleet.Sources = nil
		docs = append(docs, js(res.Fleet))
	}
	for i, name := range []string{"fleet.yaml", "fleet.json"} {
		if docs[i+1] != docs[0] {
			t.Errorf("examples/%s resolves differently from examples/fleet.cue:\n%s", name, lineDiff(docs[0], docs[i+1]))
		}
	}
}

func TestExamplesAreValid(t *testing.T) {
	paths := []string{
		filepath.Join("..", "examples", "fleet.cue"),
		filepath.Join("..", "examples", "fleet.yaml"),
		filepath.Join("..", "examples", "fleet.json"),
		filepath.Join("..", "examples", "offline"),
		filepath.Join("..", "examples", "offline", "fleet.cue"),
	}
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			res, err := Load(context.Background(), []string{p}, exampleOpts())
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Fleet.Instances) == 0 {
				t.Error("no instances")
			}
			for name, in := range res.Fleet.Instances {
				for _, m := range in.Mounts {
					if _, bad := schema.DockerSocketExposure(m.Src); bad {
						t.Errorf("%s mounts the Docker socket: %s", name, m.Src)
					}
				}
			}
		})
	}
	// The offline example runs on a bare engine: it must not need a registry.
	res, err := Load(context.Background(), []string{filepath.Join("..", "examples", "offline")}, exampleOpts())
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range res.Fleet.Instances {
		if in.Role.Build == nil {
			t.Errorf("offline instance %s pulls image %q", name, in.Role.Image)
		}
	}
}

func js(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return string(b)
}

// lineDiff shows the first lines where a and b differ.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	shown := 0
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y && shown < 10 {
			fmt.Fprintf(&out, "line %d:\n  - %s\n  + %s\n", i+1, x, y)
			shown++
		}
	}
	return out.String()
}
