package contract

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/manifests"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// The credential files' host directory depends on the operator's UID:
// golden contracts name a fixed one.
func init() { reconciler.SecretsBase = func() string { return "/dev/shm/jackin-1000" } }

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Fixed fake host paths keep the goldens independent of the machine.
const (
	fakeHome     = "/home/alice"
	fakeStateDir = "/home/alice/.local/state/jackin"
)

// instance returns a minimal resolved instance (as manifests.Load would
// produce it) changed by mods.
func instance(mods ...func(*schema.Instance)) schema.Instance {
	in := schema.Instance{
		Backend: schema.BackendDocker,
		Role:    schema.Role{Image: "registry.example/agent:1"},
		Agent:   schema.AgentShell,
		State:   schema.StateRunning,
		Network: schema.Network{Egress: schema.EgressOpen},
		Docker:  schema.DockerNone,
	}
	for _, m := range mods {
		m(&in)
	}
	return in
}

func fleetOf(name string, instances map[string]schema.Instance) *schema.Fleet {
	for n, in := range instances {
		in.Name = n
		instances[n] = in
	}
	return &schema.Fleet{APIVersion: schema.APIVersion, Kind: schema.KindFleet, Name: name, Instances: instances, Sources: []string{"fleet.cue"}}
}

func limited(in *schema.Instance) {
	in.Resources = schema.Resources{Memory: "1Gi", MemoryBytes: 1 << 30, CPUs: 1, Pids: 256}
}

type goldenCase struct {
	name  string
	fleet func(t *testing.T) *schema.Fleet
	opts  func(d *reconciler.Desired) Options
	// normalise rewrites machine-dependent values (see normaliseDesired).
	normalise bool
}

func defaultOpts(*reconciler.Desired) Options {
	return Options{Home: fakeHome, StateDir: fakeStateDir}
}

func goldenCases() []goldenCase {
	return []goldenCase{
		{
			name:      "example",
			fleet:     func(t *testing.T) *schema.Fleet { return loadExample(t, "examples/fleet.cue") },
			opts:      defaultOpts,
			normalise: true,
		},
		{
			name:      "offline",
			fleet:     func(t *testing.T) *schema.Fleet { return loadExample(t, "examples/offline/fleet.cue") },
			opts:      defaultOpts,
			normalise: true,
		},
		{
			name: "no-mounts",
			fleet: func(*testing.T) *schema.Fleet {
				return fleetOf("edge", map[string]schema.Instance{"bare": instance(limited, func(in *schema.Instance) {
					in.Description = "no mounts, no env, no ports"
					in.Command = []string{"/agent", "idle"}
				})})
			},
			opts: defaultOpts,
		},
		{
			name: "only-tmpfs",
			fleet: func(*testing.T) *schema.Fleet {
				return fleetOf("edge", map[string]schema.Instance{"scratch": instance(limited, func(in *schema.Instance) {
					in.Mounts = []schema.Mount{
						{Dst: "/tmp", Mode: schema.MountTmpfs, Size: "64Mi", SizeBytes: 64 << 20},
						{Dst: "/cache", Mode: schema.MountTmpfs},
					}
				})})
			},
			opts: defaultOpts,
		},
		{
			name: "sensitive",
			fleet: func(*testing.T) *schema.Fleet {
				return fleetOf("edge", map[string]schema.Instance{"leaky": instance(limited, func(in *schema.Instance) {
					in.Agent = schema.AgentClaude
					in.Env = map[string]string{"GITHUB_TOKEN": "never-printed-value", "TZ": "UTC"}
					in.Mounts = []schema.Mount{
						// As validation lets them through: each sets allowSensitive.
						{Src: fakeHome + "/.ssh", Dst: "/root/.ssh", Mode: schema.MountRO, AllowSensitive: true},
						{Src: fakeHome + "/.config", Dst: "/root/.config", Mode: schema.MountRO, AllowSensitive: true},
						{Src: fakeHome, Dst: "/home", Mode: schema.MountRW, AllowSensitive: true},
						{Src: "/srv/project", Dst: "/work", Mode: schema.MountRW},
					}
				})})
			},
			opts: defaultOpts,
		},
		{
			// Profiles: locked as is, and hardened with fields overriding it.
			name: "profiles",
			fleet: func(t *testing.T) *schema.Fleet {
				return loadText(t, `apiVersion: "jackin.dev/v1alpha1"
kind: "Fleet"
name: "edge"
defaults: profile: "hardened"
instances: {
	locked: {role: image: "agent:1", profile: "locked"}
	tuned: {
		role: image: "agent:1"
		resources: {memory: "1Gi", nofile: 1024}
		security: {user: "1234:1234", readOnlyRoot: true}
	}
	plain: {role: image: "agent:1", profile: "standard"}
}
`)
			},
			opts:      defaultOpts,
			normalise: true,
		},
		{
			// Every mount mode, worktree and clone included: what the
			// contract says of each must be what the container gets.
			name: "mount-modes",
			fleet: func(*testing.T) *schema.Fleet {
				f := fleetOf("edge", map[string]schema.Instance{"all": instance(limited, func(in *schema.Instance) {
					in.Mounts = []schema.Mount{
						{Src: "/srv/project", Dst: "/work", Mode: schema.MountRW},
						{Src: "/srv/docs", Dst: "/docs", Mode: schema.MountRO},
						{Dst: "/tmp", Mode: schema.MountTmpfs, Size: "64Mi", SizeBytes: 64 << 20},
						{Src: "/srv/app", Dst: "/app", Mode: schema.MountWorktree, GitCommonDir: "/srv/app/.git"},
						{Src: "/srv/lib", Dst: "/lib-src", Mode: schema.MountClone, Ref: "v2"},
						{Src: "/srv/seed", Dst: "/cache", Mode: schema.MountEphemeral},
						{Dst: "/scratch", Mode: schema.MountEphemeral},
					}
				})})
				f.StateDir = fakeStateDir
				return f
			},
			opts: defaultOpts,
		},
		{
			name: "unlimited",
			fleet: func(*testing.T) *schema.Fleet {
				return fleetOf("edge", map[string]schema.Instance{"greedy": instance()})
			},
			opts: defaultOpts,
		},
		{
			name: "public-ports",
			fleet: func(*testing.T) *schema.Fleet {
				return fleetOf("edge", map[string]schema.Instance{"server": instance(limited, func(in *schema.Instance) {
					in.Network.Ports = []schema.Port{
						{Container: 8080, Host: 8080, Address: "0.0.0.0", Protocol: "tcp"},
						{Container: 53, Address: "::", Protocol: "udp"},
						{Container: 9000, Host: 19000, Address: "192.168.1.10", Protocol: "tcp"},
						{Container: 3000, Host: 13000, Address: "127.0.0.1", Protocol: "tcp"},
					}
				})})
			},
			opts: defaultOpts,
		},
		{
			name: "allowlist",
			fleet: func(*testing.T) *schema.Fleet {
				f := fleetOf("edge", map[string]schema.Instance{
					"fenced": instance(limited, func(in *schema.Instance) {
						in.Agent = schema.AgentClaude
						in.Network = schema.Network{Egress: schema.EgressAllowlist, Allow: []string{"@agent", "@npm", "*.example.com", "git.example.org:8443"},
							EgressNetwork: "corp-egress", UpstreamProxy: "http://proxy.corp:3128",
							Ports: []schema.Port{{Container: 3000, Host: 13000, Address: "127.0.0.1", Protocol: "tcp"}, {Container: 8080, Host: 18080, Address: "0.0.0.0", Protocol: "tcp"}}}
					}),
					"sealed": instance(limited, func(in *schema.Instance) {
						in.Network = schema.Network{Egress: schema.EgressNone, Ports: []schema.Port{{Container: 3000, Host: 13001, Address: "127.0.0.1", Protocol: "tcp"}}}
					}),
					"empty": instance(limited, func(in *schema.Instance) {
						in.Network = schema.Network{Egress: schema.EgressAllowlist}
					}),
				})
				f.StateDir = fakeStateDir
				return f
			},
			opts: defaultOpts,
		},
		{
			// A private Docker daemon in each privilege mode and egress mode,
			// loaded as an operator writes it (dockerDaemon from defaults).
			name: "docker-private",
			fleet: func(t *testing.T) *schema.Fleet {
				f := loadText(t, `apiVersion: "jackin.dev/v1alpha1"
kind: "Fleet"
name: "edge"
defaults: {
	docker: "private"
	dockerDaemon: privilege: "capabilities"
	resources: {memory: "1Gi", cpus: 1, pids: 512}
}
instances: {
	builder: {role: image: "agent:1", network: {egress: "allowlist", allow: ["@go"]}}
	sealed: {role: image: "agent:1", network: egress: "none", dockerDaemon: image: "registry.example/dind:27"}
	open: {role: image: "agent:1", dockerDaemon: privilege: "privileged"}
	plain: {role: image: "agent:1", docker: "none"}
}
`)
				f.StateDir = fakeStateDir
				return f
			},
			opts: defaultOpts,
		},
		{
			name: "credentials",
			fleet: func(*testing.T) *schema.Fleet {
				f := fleetOf("edge", map[string]schema.Instance{
					"keyed": instance(limited, func(in *schema.Instance) {
						in.Agent = schema.AgentClaude
						in.Sandbox = schema.Sandbox{User: "1000:1000"}
						in.Network = schema.Network{Egress: schema.EgressAllowlist, Allow: []string{"api.anthropic.com", "api.github.com"}}
						in.Credentials = map[string]schema.Credential{
							"GH_TOKEN": {Name: "GH_TOKEN", From: schema.CredentialSource{Kind: schema.SourceCommand, Command: []string{"gh", "auth", "token"}},
								Deliver: schema.CredentialDelivery{Kind: schema.DeliverFile}},
							"NPM_TOKEN": {Name: "NPM_TOKEN", From: schema.CredentialSource{Kind: schema.SourceEnv, Env: "NPM_TOKEN"},
								Deliver: schema.CredentialDelivery{Kind: schema.DeliverEnv, Env: "NPM_TOKEN"}},
							"ANTHROPIC_API_KEY": {Name: "ANTHROPIC_API_KEY", From: schema.CredentialSource{Kind: schema.SourceOnePass, Command: []string{"op", "read", "op://dev/anthropic/key"}},
								Deliver: schema.CredentialDelivery{Kind: schema.DeliverProxy, Proxy: &schema.ProxyDelivery{Host: "api.anthropic.com", Header: "x-api-key", Format: "{{value}}", Placeholder: "ANTHROPIC_API_KEY"}}},
							"DB_PASSWORD": {Name: "DB_PASSWORD", From: schema.CredentialSource{Kind: schema.SourceFile, File: fakeHome + "/.secrets/db"},
								Deliver: schema.CredentialDelivery{Kind: schema.DeliverFile, File: "/etc-app/secrets/db"}},
						}
					}),
				})
				f.StateDir = fakeStateDir
				return f
			},
			opts: defaultOpts,
		},
		{
			name: "observed",
			fleet: func(*testing.T) *schema.Fleet {
				return fleetOf("edge", map[string]schema.Instance{
					"live": instance(limited, func(in *schema.Instance) {
						in.Network.Ports = []schema.Port{{Container: 3000, Host: 13000, Address: "127.0.0.1", Protocol: "tcp"}}
					}),
					"stale": instance(limited),
				})
			},
			opts: func(d *reconciler.Desired) Options {
				o := defaultOpts(d)
				db, _ := StatePaths(fakeStateDir, "edge")
				_, lock := StatePaths(fakeStateDir, "edge")
				obs := &drivers.Observed{Images: map[string]string{"registry.example/agent:1": "sha256:1111"}}
				live := d.Instance("live")
				obs.Networks = append(obs.Networks, drivers.ObservedResource{Kind: drivers.KindNetwork, ID: "n1", Name: "jk-edge-live", Labels: live.Resources[0].Labels})
				obs.Containers = append(obs.Containers,
					drivers.ObservedResource{Kind: drivers.KindContainer, ID: "c1", Name: "jk-edge-live", Labels: agentResource(live).Labels, State: drivers.StateRunning},
					drivers.ObservedResource{Kind: drivers.KindContainer, ID: "c2", Name: "jk-edge-stale", State: drivers.StateExited, Labels: map[string]string{
						drivers.LabelManagedBy: drivers.ManagedByValue, drivers.LabelFleet: "edge", drivers.LabelInstance: "stale",
						drivers.LabelComponent: drivers.ComponentAgent, drivers.LabelSpecHash: "0000",
					}},
				)
				o.Observation = &Observation{Endpoint: "unix:///var/run/docker.sock", Engine: obs, StateFiles: map[string]bool{db: true, lock: false}}
				return o
			},
		},
		{
			name: "unreachable",
			fleet: func(*testing.T) *schema.Fleet {
				return fleetOf("edge", map[string]schema.Instance{"offline": instance(limited)})
			},
			opts: func(d *reconciler.Desired) Options {
				o := defaultOpts(d)
				db, lock := StatePaths(fakeStateDir, "edge")
				o.ManifestPaths = []string{"-"}
				o.Observation = &Observation{
					Endpoint:    "unix:///nonexistent/docker.sock",
					EngineError: "cannot reach the Docker engine at unix:///nonexistent/docker.sock: connect: no such file or directory",
					StateFiles:  map[string]bool{db: false, lock: false},
				}
				return o
			},
		},
	}
}

func TestGolden(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.fleet(t)
			if f.StateDir == "" {
				// Paths under the state dir (checkouts, the supervisor's)
				// must not depend on the machine the test runs on.
				f.StateDir = fakeStateDir
			}
			d, err := reconciler.BuildDesired(f)
			if err != nil {
				t.Fatal(err)
			}
			if tc.normalise {
				normaliseDesired(t, f, d)
			}
			doc, err := Build(f, d, tc.opts(d))
			if err != nil {
				t.Fatal(err)
			}
			var text, js bytes.Buffer
			if err := WriteText(&text, doc); err != nil {
				t.Fatal(err)
			}
			if err := WriteJSON(&js, doc); err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, doc, js.Bytes())
			for _, out := range []struct {
				file string
				data []byte
			}{{tc.name + ".txt.golden", text.Bytes()}, {tc.name + ".json.golden", js.Bytes()}} {
				seen[out.file] = true
				checkGolden(t, out.file, out.data)
			}
		})
	}
	if !t.Failed() {
		files, _ := filepath.Glob(filepath.Join("testdata", "*.golden"))
		for _, f := range files {
			if !seen[filepath.Base(f)] {
				if *update {
					_ = os.Remove(f)
				} else {
					t.Errorf("stale golden file %s (run with -update)", f)
				}
			}
		}
	}
}

// checkInvariants holds for every contract: every section present, no JSON
// null, no env value printed, every warning in a known section.
func checkInvariants(t *testing.T, doc *Document, js []byte) {
	t.Helper()
	if bytes.Contains(js, []byte("null")) {
		t.Errorf("JSON contains null: every section and list must be present:\n%s", js)
	}
	if bytes.Contains(js, []byte("never-printed-value")) {
		t.Errorf("JSON contains an env value")
	}
	var text bytes.Buffer
	_ = WriteText(&text, doc)
	if strings.Contains(text.String(), "never-printed-value") {
		t.Errorf("text contains an env value")
	}
	// Each instance's text has the eleven sections, in order.
	titles := []string{" 1. Identity", " 2. Sandbox", " 3. Filesystem", " 4. Credentials", " 5. Network", " 6. Service ports", " 7. Resources", " 8. Host-side effects", " 9. Recovery", "10. Residual risk", "11. Tier recommendation"}
	parts := strings.Split(text.String(), "\nSession contract: instance ")
	if len(parts) != len(doc.Instances)+1 {
		t.Fatalf("text has %d instance header(s), want %d", len(parts)-1, len(doc.Instances))
	}
	known := map[string]bool{SectionIdentity: true, SectionSandbox: true, SectionFilesystem: true, SectionCredentials: true, SectionNetwork: true, SectionServicePorts: true, SectionResources: true, SectionHostEffects: true, SectionRecovery: true, SectionResidualRisk: true, SectionTier: true}
	for i, c := range doc.Instances {
		part := parts[i+1]
		if !strings.HasPrefix(part, c.Instance+" ") {
			t.Errorf("instance %d: header %.40q, want %s", i, part, c.Instance)
		}
		pos := 0
		for _, title := range titles {
			j := strings.Index(part[pos:], "\n"+title)
			if j < 0 {
				t.Errorf("instance %s: text lacks section %q (in order)", c.Instance, title)
				continue
			}
			pos += j + 1
		}
		for _, w := range c.Warnings {
			if !known[w.Section] {
				t.Errorf("warning in unknown section %q: %s", w.Section, w.Message)
			}
		}
	}
}

// normaliseDesired rewrites what differs between machines before anything
// is rendered (so column widths and wrapping do not depend on it): the
// repository's absolute path becomes /repo, and the content-derived build tag
// and spec hashes become placeholders (the demo agent binary in the build
// context is a local build output).
func normaliseDesired(t *testing.T, f *schema.Fleet, d *reconciler.Desired) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	fix := func(p string) string {
		if p == root || strings.HasPrefix(p, root+string(filepath.Separator)) {
			return "/repo" + filepath.ToSlash(p[len(root):])
		}
		return p
	}
	for i := range d.Instances {
		di := &d.Instances[i]
		for j := range di.Instance.Mounts {
			di.Instance.Mounts[j].Src = fix(di.Instance.Mounts[j].Src)
		}
		for j := range di.Spec.Mounts {
			di.Spec.Mounts[j].Src = fix(di.Spec.Mounts[j].Src)
		}
		for _, r := range di.Resources {
			if r.Container != nil {
				for k := range r.Container.Mounts {
					r.Container.Mounts[k].Source = fix(r.Container.Mounts[k].Source)
				}
			}
		}
		if b := di.Image.Build; b != nil {
			b.Context = fix(b.Context)
			di.Image.Ref = "jackin-role:<context-hash>"
			di.Spec.Image = di.Image.Ref
		}
		di.Hash = "<spec-hash>"
		f.Instances[di.Name] = di.Instance
	}
}

// loadExample loads an example fleet through the real loader, with the fake
// home directory, and names its source relative to the repository.
// loadText loads a manifest given as text (its profile resolved as
// `jackin explain` would, with the operator's UID:GID fixed at 1000:1000).
func loadText(t *testing.T, text string) *schema.Fleet {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fleet.cue")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := manifests.Load(context.Background(), []string{path}, manifests.Options{Home: fakeHome, HostCPUs: 64, HostUser: "1000:1000"})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	res.Fleet.Sources = []string{"fleet.cue"}
	return res.Fleet
}

func loadExample(t *testing.T, rel string) *schema.Fleet {
	t.Helper()
	path := filepath.Join("..", filepath.FromSlash(rel))
	if _, err := os.Stat(path); err != nil {
		t.Skipf("example %s is not there: %v", rel, err)
	}
	res, err := manifests.Load(context.Background(), []string{path}, manifests.Options{Home: fakeHome, HostCPUs: 64, HostUser: "1000:1000"})
	if err != nil {
		t.Fatalf("load %s: %v", rel, err)
	}
	res.Fleet.Sources = []string{rel}
	return res.Fleet
}

func checkGolden(t *testing.T, file string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./contract -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// agentResource is the instance's agent container resource.
func agentResource(di *reconciler.DesiredInstance) drivers.Resource {
	for _, r := range di.Resources {
		if r.Kind == drivers.KindContainer && r.Component == drivers.ComponentAgent {
			return r
		}
	}
	return drivers.Resource{}
}
