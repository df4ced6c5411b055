package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/system"

	"github.com/jackin-dev/jackin/drivers"
)

func TestPathTemplate(t *testing.T) {
	for in, want := range map[string]string{
		"/_ping":                                      "/_ping",
		"/v1.41/containers/json":                      "/containers/json",
		"/v1.41/containers/create":                    "/containers/create",
		"/v1.41/containers/3f2a9c0d1e/start":          "/containers/{id}/start",
		"/v1.41/containers/jk-demo-web/json":          "/containers/{id}/json",
		"/v1.41/containers/3f2a9c0d1e":                "/containers/{id}",
		"/v1.41/containers/abc/checkpoints/cp1":       "/containers/{id}/checkpoints/{id}",
		"/v1.44/networks":                             "/networks",
		"/v1.41/networks/create":                      "/networks/create",
		"/v1.41/networks/jk-demo-web":                 "/networks/{id}",
		"/v1.41/networks/9a8b/connect":                "/networks/{id}/connect",
		"/v1.41/volumes":                              "/volumes",
		"/v1.41/volumes/jk-demo-data":                 "/volumes/{id}",
		"/v1.41/images/json":                          "/images/json",
		"/v1.41/images/create":                        "/images/create",
		"/v1.41/images/alpine:3/json":                 "/images/{id}/json",
		"/v1.41/images/docker.io/library/alpine/json": "/images/{id}/json",
		"/v1.41/images/docker.io/library/alpine":      "/images/{id}",
		"/v1.41/build":                                "/build",
		"/v1.41/info":                                 "/info",
		"/v1.41":                                      "/",
		"/version":                                    "/version",
		"/v1.41/exec/77/start":                        "/exec/{id}/start",
	} {
		if got := pathTemplate(in); got != want {
			t.Errorf("pathTemplate(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCallCounter(t *testing.T) {
	c := newCallCounter(logr.Discard())
	for _, r := range []struct{ method, path string }{
		{http.MethodHead, "/_ping"},
		{http.MethodGet, "/v1.41/containers/json"},
		{http.MethodGet, "/v1.41/containers/json"},
		{http.MethodPost, "/v1.41/containers/abc/start"},
		{http.MethodPost, "/v1.41/containers/def/start"},
		{http.MethodDelete, "/v1.41/networks/n1"},
	} {
		req, err := http.NewRequest(r.method, "http://api.moby.localhost"+r.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.hook(req); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{
		"HEAD /_ping":                 1,
		"GET /containers/json":        2,
		"POST /containers/{id}/start": 2,
		"DELETE /networks/{id}":       1,
	}
	if got := c.snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	if got := c.mutatingCalls(); got != 3 {
		t.Errorf("mutating = %d, want 3", got)
	}
	// The snapshot is a copy.
	c.snapshot()["GET /containers/json"] = 99
	if c.snapshot()["GET /containers/json"] != 2 {
		t.Error("snapshot shares the counter's map")
	}
}

func TestDockerignore(t *testing.T) {
	m, err := parseDockerignore(strings.NewReader(`
# comment
*.log
build/
**/secret.txt
/docs
!docs/keep.md
tmp?
[ab].bin
`))
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]bool{
		".git":             true, // always
		".git/config":      true,
		".github/x.yml":    false,
		"app.log":          true,
		"sub/app.log":      false, // * does not cross directories
		"build":            true,
		"build/out/bin":    true,
		"secret.txt":       true,
		"a/b/secret.txt":   true,
		"docs/index.md":    true,
		"docs/keep.md":     false,
		"tmp1":             true,
		"tmp12":            false,
		"a.bin":            true,
		"c.bin":            false,
		"main.go":          false,
		"agent/main.go":    false,
		"Dockerfile":       false,
		"builder/file.txt": false,
	} {
		if got := m.excluded(rel); got != want {
			t.Errorf("excluded(%q) = %v, want %v", rel, got, want)
		}
	}
	var none *ignoreMatcher
	if !none.excluded(".git/HEAD") || none.excluded("main.go") {
		t.Error("without a .dockerignore only .git is excluded")
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestWriteBuildContext(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM scratch\n", 0o644)
	writeFile(t, filepath.Join(dir, ".dockerignore"), "*.log\nDockerfile\nnested/skip\n", 0o644)
	writeFile(t, filepath.Join(dir, "agent-bin"), "\x7fELF", 0o755)
	writeFile(t, filepath.Join(dir, "z.txt"), "z", 0o600)
	writeFile(t, filepath.Join(dir, "debug.log"), "noise", 0o644)
	writeFile(t, filepath.Join(dir, ".git", "HEAD"), "ref: refs/heads/main\n", 0o644)
	writeFile(t, filepath.Join(dir, "nested", "a.go"), "package a\n", 0o644)
	writeFile(t, filepath.Join(dir, "nested", "skip", "b.go"), "package b\n", 0o644)
	if err := os.Symlink("z.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}

	archive := func() []byte {
		var buf bytes.Buffer
		if err := writeBuildContext(&buf, dir, "Dockerfile"); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	first := archive()
	if !bytes.Equal(first, archive()) {
		t.Error("the same context gave two different archives")
	}

	type entry struct {
		mode int64
		link string
		body string
	}
	got := map[string]entry{}
	var order []string
	tr := tar.NewReader(bytes.NewReader(first))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		order = append(order, h.Name)
		got[h.Name] = entry{mode: h.Mode & 0o7777, link: h.Linkname, body: string(body)}
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(contextEpoch) {
			t.Errorf("%s: owner %d:%d time %v, want 0:0 at the epoch", h.Name, h.Uid, h.Gid, h.ModTime)
		}
	}
	wantOrder := []string{".dockerignore", "Dockerfile", "agent-bin", "link", "nested/", "nested/a.go", "z.txt"}
	if !reflect.DeepEqual(order, wantOrder) {
		t.Errorf("entries = %v, want %v", order, wantOrder)
	}
	if e := got["agent-bin"]; e.mode != 0o755 || e.body != "\x7fELF" {
		t.Errorf("agent-bin = %+v, want mode 755 and its content", e)
	}
	if e := got["z.txt"]; e.mode != 0o600 {
		t.Errorf("z.txt mode = %o, want 600", e.mode)
	}
	if e := got["link"]; e.link != "z.txt" {
		t.Errorf("link = %+v, want a symlink to z.txt", e)
	}
}

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"alpine":                          "docker.io/library/alpine:latest",
		"alpine:latest":                   "docker.io/library/alpine:latest",
		"docker.io/library/alpine":        "docker.io/library/alpine:latest",
		"docker.io/library/alpine:latest": "docker.io/library/alpine:latest",
		"jackin-e2e-agent:v1":             "docker.io/library/jackin-e2e-agent:v1",
		"ghcr.io/acme/agent:1.2":          "ghcr.io/acme/agent:1.2",
		"localhost:5000/agent":            "localhost:5000/agent:latest",
		"sha256:abc":                      "sha256:abc", // not a reference: unchanged
	} {
		if got := normalizeRef(in); got != want {
			t.Errorf("normalizeRef(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMatchImages(t *testing.T) {
	dg := "sha256:" + strings.Repeat("a", 64)
	images := []image.Summary{
		{ID: "sha256:111", RepoTags: []string{"alpine:latest", "docker.io/acme/x:1"}},
		{ID: "sha256:222", RepoTags: []string{"jackin-e2e-agent:v1"}, RepoDigests: []string{"acme/y@" + dg}},
		{ID: "sha256:333", RepoTags: []string{"<none>:<none>"}},
	}
	got := matchImages([]string{
		"alpine", "docker.io/library/alpine:latest", "acme/x:1", "jackin-e2e-agent:v1",
		"jackin-e2e-agent:v2", "acme/y@" + dg, "sha256:333", "<none>:<none>",
	}, images)
	want := map[string]string{
		"alpine":                          "sha256:111",
		"docker.io/library/alpine:latest": "sha256:111",
		"acme/x:1":                        "sha256:111",
		"jackin-e2e-agent:v1":             "sha256:222",
		"acme/y@" + dg:                    "sha256:222",
		"sha256:333":                      "sha256:333",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("matchImages = %v, want %v", got, want)
	}
}

func TestObservedContainer(t *testing.T) {
	c := container.Summary{
		ID: "c1", Names: []string{"/other/alias", "/jk-demo-web"}, Image: "agent:v1", ImageID: "sha256:1",
		Created: 1700000000, State: container.StateExited, Status: "Exited (1) 3 seconds ago",
		Labels: map[string]string{drivers.LabelInstance: "web"},
		NetworkSettings: &container.NetworkSettingsSummary{Networks: map[string]*network.EndpointSettings{
			"jk-demo-web": {}, "extra": {},
		}},
	}
	r := observedContainer(c)
	if r.Name != "jk-demo-web" || r.State != drivers.StateExited || r.Status != c.Status || r.Image != "agent:v1" ||
		r.ImageID != "sha256:1" || r.Created.Unix() != 1700000000 || r.Instance() != "web" ||
		!reflect.DeepEqual(r.Networks, []string{"extra", "jk-demo-web"}) {
		t.Errorf("observedContainer = %+v", r)
	}
}

func TestContainerCreateOptions(t *testing.T) {
	r := drivers.Resource{
		Kind: drivers.KindContainer, Name: "jk-f-web",
		Labels: map[string]string{drivers.LabelManagedBy: drivers.ManagedByValue, drivers.LabelFleet: "f"},
		Container: &drivers.ContainerSpec{
			Image:   drivers.ImageSpec{Ref: "agent:v1"},
			Command: []string{"serve", ":8080"},
			Env:     map[string]string{"B": "2", "A": "1"},
			Mounts: []drivers.MountSpec{
				{Type: "bind", Source: "/src", Target: "/work", ReadOnly: true},
				{Type: "tmpfs", Target: "/tmp", SizeBytes: 1 << 20},
			},
			Ports:      []drivers.PortSpec{{ContainerPort: 8080, HostIP: "127.0.0.1"}, {ContainerPort: 53, HostPort: 5353, Protocol: "udp"}},
			Networks:   []string{"n1", "n2"},
			Hostname:   "web",
			Memory:     64 << 20,
			MemoryRes:  32 << 20,
			NanoCPUs:   5e8,
			PidsLimit:  64,
			StopSignal: "SIGINT",
		},
	}
	opts, later, err := containerCreateOptions(r, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg, hc := opts.Config, opts.HostConfig
	if opts.Name != "jk-f-web" || cfg.Image != "agent:v1" || !reflect.DeepEqual(cfg.Cmd, []string{"serve", ":8080"}) ||
		!reflect.DeepEqual(cfg.Env, []string{"A=1", "B=2"}) || cfg.Hostname != "web" || cfg.StopSignal != "SIGINT" ||
		cfg.Labels[drivers.LabelFleet] != "f" {
		t.Errorf("config = %+v", cfg)
	}
	if hc.Memory != 64<<20 || hc.MemoryReservation != 32<<20 || hc.NanoCPUs != 5e8 || hc.PidsLimit == nil || *hc.PidsLimit != 64 ||
		hc.RestartPolicy.Name != container.RestartPolicyDisabled || hc.NetworkMode != "n1" {
		t.Errorf("host config = %+v", hc)
	}
	wantMounts := []mount.Mount{
		{Type: mount.TypeBind, Source: "/src", Target: "/work", ReadOnly: true},
		{Type: mount.TypeTmpfs, Target: "/tmp", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 1 << 20}},
	}
	if !reflect.DeepEqual(hc.Mounts, wantMounts) {
		t.Errorf("mounts = %+v", hc.Mounts)
	}
	p8080 := network.MustParsePort("8080/tcp")
	p53 := network.MustParsePort("53/udp")
	if _, ok := cfg.ExposedPorts[p8080]; !ok || len(cfg.ExposedPorts) != 2 {
		t.Errorf("exposed = %v", cfg.ExposedPorts)
	}
	if b := hc.PortBindings[p8080]; len(b) != 1 || b[0].HostIP.String() != "127.0.0.1" || b[0].HostPort != "" {
		t.Errorf("8080 binding = %+v", b)
	}
	if b := hc.PortBindings[p53]; len(b) != 1 || b[0].HostIP.IsValid() || b[0].HostPort != "5353" {
		t.Errorf("53 binding = %+v", b)
	}
	if len(opts.NetworkingConfig.EndpointsConfig) != 1 || !reflect.DeepEqual(later, []string{"n2"}) {
		t.Errorf("API 1.41: endpoints %v, later %v", opts.NetworkingConfig.EndpointsConfig, later)
	}
	opts, later, err = containerCreateOptions(r, true)
	if err != nil || len(opts.NetworkingConfig.EndpointsConfig) != 2 || len(later) != 0 {
		t.Errorf("API 1.44: endpoints %v, later %v, err %v", opts.NetworkingConfig.EndpointsConfig, later, err)
	}
	if opts.HostConfig.PidsLimit == nil {
		t.Error("pids limit lost")
	}
	r.Container.PidsLimit = 0
	r.Container.Mounts = []drivers.MountSpec{{Type: "nfs", Target: "/x"}}
	if _, _, err := containerCreateOptions(r, true); err == nil || !strings.Contains(err.Error(), `"nfs"`) {
		t.Errorf("unsupported mount type: err = %v", err)
	}
}

func TestReadJSONStream(t *testing.T) {
	var out bytes.Buffer
	id, err := readJSONStream(strings.NewReader(`{"stream":"Step 1/2 : FROM scratch\n"}
{"status":"Pulling fs layer","id":"abc","progress":"[=> ]"}
{"aux":{"ID":"sha256:feed"}}
{"stream":"Successfully built feed\n"}
`), &out)
	if err != nil || id != "sha256:feed" {
		t.Fatalf("id %q err %v", id, err)
	}
	if want := "Step 1/2 : FROM scratch\nabc: Pulling fs layer [=> ]\nSuccessfully built feed\n"; out.String() != want {
		t.Errorf("progress = %q, want %q", out.String(), want)
	}
	_, err = readJSONStream(strings.NewReader(`{"stream":"Step 2/2 : COPY x /x\n"}
{"errorDetail":{"message":"COPY failed: file not found"},"error":"COPY failed: file not found"}
`), io.Discard)
	if err == nil || err.Error() != "COPY failed: file not found" {
		t.Errorf("err = %v", err)
	}
	_, err = readJSONStream(strings.NewReader(`{"error":"pull access denied"}`), io.Discard)
	if err == nil || err.Error() != "pull access denied" {
		t.Errorf("err = %v", err)
	}
}

func TestOwnerOf(t *testing.T) {
	for _, c := range []struct {
		labels map[string]string
		want   string
	}{
		{nil, "unlabelled"},
		{map[string]string{drivers.LabelFleet: "f"}, "unlabelled"},
		{map[string]string{drivers.LabelManagedBy: "jackin", drivers.LabelFleet: "g"}, "fleet g"},
		{map[string]string{drivers.LabelManagedBy: "jackin", drivers.LabelFleet: "f"}, ""},
	} {
		if got := ownerOf(c.labels, "f"); got != c.want {
			t.Errorf("ownerOf(%v) = %q, want %q", c.labels, got, c.want)
		}
	}
}

// TestUnreachable needs no engine: a socket path that does not exist.
func TestUnreachable(t *testing.T) {
	const host = "unix:///nonexistent/docker.sock"
	t.Setenv("DOCKER_HOST", host)
	t.Setenv("DOCKER_API_VERSION", "")
	d, err := New(t.Context(), logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if d.Endpoint() != host {
		t.Errorf("endpoint = %q", d.Endpoint())
	}
	var unreachable *drivers.ErrUnreachable
	err = d.Ping(t.Context())
	if !errors.As(err, &unreachable) || unreachable.Endpoint != host {
		t.Fatalf("Ping: want *ErrUnreachable for %s, got %T %v", host, err, err)
	}
	if msg := err.Error(); !strings.Contains(msg, host) || strings.Contains(msg, "\n") {
		t.Errorf("message should be one line naming the endpoint: %q", msg)
	}
	if _, err := d.Observe(t.Context(), "f", nil); !errors.As(err, &unreachable) {
		t.Errorf("Observe: want *ErrUnreachable, got %T %v", err, err)
	}
	if err := d.Remove(t.Context(), drivers.KindContainer, "x"); !errors.As(err, &unreachable) {
		t.Errorf("Remove: want *ErrUnreachable, got %T %v", err, err)
	}
	if d.Calls()["HEAD /_ping"] == 0 {
		t.Errorf("the failed pings were not counted: %v", d.Calls())
	}
}

func TestContainerCreateOptionsEgress(t *testing.T) {
	side := drivers.Resource{Kind: drivers.KindContainer, Name: "jk-f-web-egress", Container: &drivers.ContainerSpec{
		Image: drivers.ImageSpec{Ref: "jackin-sidecar:x"}, Networks: []string{"jk-f-web-out", "jk-f-web"},
		Aliases: map[string][]string{"jk-f-web": {"egress"}},
		User:    "65534:65534", CapDrop: []string{"ALL"}, NoNewPrivileges: true, ReadOnlyRoot: true,
	}}
	opts, later, err := containerCreateOptions(side, true)
	if err != nil {
		t.Fatal(err)
	}
	if a := opts.NetworkingConfig.EndpointsConfig["jk-f-web"]; a == nil || !reflect.DeepEqual(a.Aliases, []string{"egress"}) || len(later) != 0 {
		t.Errorf("API 1.44: alias on the internal network: %+v, later %v", a, later)
	}
	hc := opts.HostConfig
	if opts.Config.User != "65534:65534" || !reflect.DeepEqual([]string(hc.CapDrop), []string{"ALL"}) || !hc.ReadonlyRootfs ||
		!reflect.DeepEqual(hc.SecurityOpt, []string{"no-new-privileges"}) || hc.NetworkMode != "jk-f-web-out" {
		t.Errorf("hardening: user %q host config %+v", opts.Config.User, hc)
	}
	if _, later, _ := containerCreateOptions(side, false); !reflect.DeepEqual(later, []string{"jk-f-web"}) {
		t.Errorf("API 1.41: the internal network is connected after create (with its alias): later %v", later)
	}

	none := drivers.Resource{Kind: drivers.KindContainer, Name: "jk-f-sealed", Container: &drivers.ContainerSpec{Image: drivers.ImageSpec{Ref: "a"}, NoNetwork: true}}
	opts, _, err = containerCreateOptions(none, false)
	if err != nil || opts.HostConfig.NetworkMode != "none" || opts.NetworkingConfig != nil {
		t.Errorf("egress none: network mode %q, networking %+v, err %v", opts.HostConfig.NetworkMode, opts.NetworkingConfig, err)
	}
}

func TestUnsupportedLimitsNameWhatIsMissing(t *testing.T) {
	full := system.Info{MemoryLimit: true, CPUCfsQuota: true, PidsLimit: true, CgroupVersion: "1"}
	limited := &drivers.ContainerSpec{Memory: 64 << 20, NanoCPUs: 1e9, PidsLimit: 100}
	if err := unsupportedLimits("c", limited, full); err != nil {
		t.Fatalf("a host with every controller: %v", err)
	}
	if err := unsupportedLimits("c", &drivers.ContainerSpec{}, system.Info{}); err != nil {
		t.Fatalf("no limits need nothing: %v", err)
	}
	noPids := full
	noPids.PidsLimit = false
	err := unsupportedLimits("c", limited, noPids)
	if err == nil || !strings.Contains(err.Error(), "cannot enforce pids") || strings.Contains(err.Error(), "memory") {
		t.Fatalf("missing pids controller: %v", err)
	}
	err = unsupportedLimits("c", &drivers.ContainerSpec{MemoryRes: 1 << 20}, system.Info{CgroupVersion: "1"})
	if err == nil || !strings.Contains(err.Error(), "memory and memoryReservation") || !strings.Contains(err.Error(), "cgroup v1") {
		t.Fatalf("missing memory controller: %v", err)
	}
}

// With DOCKER_HOST unset, the driver talks to the docker CLI's current
// context (how Colima, and Docker Desktop or OrbStack without their
// /var/run/docker.sock link, are reached on macOS).
func TestNewUsesTheCurrentDockerContext(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv("DOCKER_HOST", "")
	t.Setenv("DOCKER_CONTEXT", "")
	sum := sha256.Sum256([]byte("colima"))
	meta := filepath.Join(dir, "contexts", "meta", hex.EncodeToString(sum[:]), "meta.json")
	if err := os.MkdirAll(filepath.Dir(meta), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(meta, []byte(`{"Name":"colima","Endpoints":{"docker":{"Host":"unix:///tmp/colima-test.sock"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"currentContext":"colima"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := New(context.Background(), logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := d.Endpoint(); got != "unix:///tmp/colima-test.sock" {
		t.Errorf("endpoint %s, want the context's", got)
	}
}

func TestRunsAsRoot(t *testing.T) {
	for _, c := range []struct {
		spec, image string
		root        bool
	}{
		{"", "", true},
		{"", "root", true},
		{"", "0:0", true},
		{"root:staff", "node", true},
		{"", "node", false},
		{"", "1000", false},
		{"1000:20", "", false},
		{"agent", "root", false},
		{"", "toor", false}, // a name only the image's passwd could map to 0
	} {
		if got := runsAsRoot(c.spec, c.image); got != c.root {
			t.Errorf("runsAsRoot(%q, %q) = %v, want %v", c.spec, c.image, got, c.root)
		}
	}
}
