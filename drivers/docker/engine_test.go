package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
)

// Integration tests: they run against the engine the environment points at,
// skip (loudly) when none answers, and fail instead when CI=true. -short
// skips them.

// engine returns a driver connected to a live engine, or skips the test.
func engine(t *testing.T) *Driver {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test against a Docker engine: skipped with -short")
	}
	d, err := New(t.Context(), testr.NewWithOptions(t, testr.Options{Verbosity: 1}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := d.Ping(ctx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and no Docker engine answers: %v", err)
		}
		t.Skipf("SKIPPING INTEGRATION TEST: no Docker engine answers (%v); start one (make engine) or set CI=true to make this a failure", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// newFleet returns a fleet name unique to this test and removes everything
// labelled with it when the test ends, whatever its outcome.
func newFleet(t *testing.T, d *Driver) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	fleet := "t" + hex.EncodeToString(b)
	t.Cleanup(func() { removeLabelled(t, d.Client(), drivers.LabelFleet+"="+fleet) })
	return fleet
}

// removeLabelled removes containers, networks and volumes carrying label,
// straight through the client so it works even when the driver does not.
func removeLabelled(t *testing.T, cli *client.Client, label string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := client.Filters{}.Add("label", label)
	if cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f}); err == nil {
		for _, c := range cs.Items {
			if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
				t.Logf("cleanup: remove container %s: %v", c.ID, err)
			}
		}
	}
	if ns, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f}); err == nil {
		for _, n := range ns.Items {
			if _, err := cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil {
				t.Logf("cleanup: remove network %s: %v", n.Name, err)
			}
		}
	}
	if vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f}); err == nil {
		for _, v := range vs.Items {
			if _, err := cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil {
				t.Logf("cleanup: remove volume %s: %v", v.Name, err)
			}
		}
	}
}

// agentContext builds the demo agent and lays out a build context like
// examples/offline/role: the Dockerfile, agent-bin, plus a .git directory and
// a .dockerignore'd file that must not reach the engine. It returns the
// directory and the agent binary's digest.
func agentContext(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "agent-bin")
	cmd := exec.Command("go", "build", "-o", bin, "../../examples/offline/role/agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the demo agent: %v\n%s", err, out)
	}
	df, err := os.ReadFile("../../examples/offline/role/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "Dockerfile"), string(df), 0o644)
	writeFile(t, filepath.Join(dir, ".dockerignore"), "*.log\n", 0o644)
	writeFile(t, filepath.Join(dir, "big.log"), strings.Repeat("x", 1<<20), 0o644)
	writeFile(t, filepath.Join(dir, ".git", "HEAD"), "ref: refs/heads/main\n", 0o644)
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

var agentOnce struct {
	sync.Once
	ref, id string
	err     error
}

// agentImage returns the demo agent image, built once per test binary (and
// kept: its tag is the binary's digest, so an unchanged agent is reused).
func agentImage(t *testing.T, d *Driver) (ref, id string) {
	t.Helper()
	agentOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jackin-agent-ctx-")
		if err != nil {
			agentOnce.err = err
			return
		}
		defer os.RemoveAll(dir)
		agentOnce.ref = "jackin-drvtest-agent:" + agentContext(t, dir)
		agentOnce.id, agentOnce.err = d.EnsureImage(t.Context(), drivers.ImageSpec{
			Ref:   agentOnce.ref,
			Build: &drivers.BuildSpec{Context: dir, Dockerfile: "Dockerfile"},
		}, io.Discard)
		if agentOnce.err == nil {
			removeStaleAgentImages(d.Client(), agentOnce.ref)
		}
	})
	if agentOnce.err != nil {
		t.Fatalf("demo agent image: %v", agentOnce.err)
	}
	return agentOnce.ref, agentOnce.id
}

// removeStaleAgentImages untags agent images built from an older agent.
func removeStaleAgentImages(cli *client.Client, keep string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := cli.ImageList(ctx, client.ImageListOptions{Filters: client.Filters{}.Add("reference", "jackin-drvtest-agent")})
	if err != nil {
		return
	}
	for _, img := range list.Items {
		for _, tag := range img.RepoTags {
			if tag != keep && strings.HasPrefix(tag, "jackin-drvtest-agent:") {
				_, _ = cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{PruneChildren: true})
			}
		}
	}
}

func fleetLabels(fleet, instance, component string) map[string]string {
	return map[string]string{
		drivers.LabelManagedBy: drivers.ManagedByValue,
		drivers.LabelFleet:     fleet,
		drivers.LabelInstance:  instance,
		drivers.LabelComponent: component,
		drivers.LabelSpecHash:  "h1",
	}
}

// callsSince returns the calls made since before, without zero entries.
func callsSince(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, n := range after {
		if n -= before[k]; n != 0 {
			out[k] = n
		}
	}
	return out
}

func TestEngineContainerLifecycle(t *testing.T) {
	d := engine(t)
	fleet := newFleet(t, d)
	ctx := t.Context()
	ref, imageID := agentImage(t, d)
	cli := d.Client()
	prefix := "jk-" + fleet + "-web"

	// Networks and a volume; creating them again is idempotent.
	netA := drivers.Resource{Kind: drivers.KindNetwork, Name: prefix, Component: drivers.ComponentNetwork,
		Labels: fleetLabels(fleet, "web", drivers.ComponentNetwork), Network: &drivers.NetworkSpec{}}
	netB := drivers.Resource{Kind: drivers.KindNetwork, Name: prefix + "-side", Component: drivers.ComponentNetwork,
		Labels: fleetLabels(fleet, "web", drivers.ComponentNetwork), Network: &drivers.NetworkSpec{Internal: true}}
	vol := drivers.Resource{Kind: drivers.KindVolume, Name: prefix + "-data", Component: drivers.ComponentVolume,
		Labels: fleetLabels(fleet, "web", drivers.ComponentVolume), Volume: &drivers.VolumeSpec{}}
	ids := map[string]string{}
	for _, r := range []drivers.Resource{netA, netB, vol} {
		id, err := d.Create(ctx, r)
		if err != nil {
			t.Fatalf("create %s %s: %v", r.Kind, r.Name, err)
		}
		again, err := d.Create(ctx, r)
		if err != nil || again != id {
			t.Fatalf("create %s %s again: id %q (first %q), err %v", r.Kind, r.Name, again, id, err)
		}
		ids[r.Name] = id
	}
	if n, err := cli.NetworkInspect(ctx, ids[netB.Name], client.NetworkInspectOptions{}); err != nil || !n.Network.Internal || n.Network.Driver != "bridge" || n.Network.Attachable {
		t.Errorf("internal network: %+v, %v", n.Network.Network, err)
	}

	src := t.TempDir()
	writeFile(t, filepath.Join(src, "hello.txt"), "hi\n", 0o644)
	spec := &drivers.ContainerSpec{
		Image:      drivers.ImageSpec{Ref: ref},
		Command:    []string{"serve", ":8080"},
		Env:        map[string]string{"MODE": "test", "A": "1"},
		Mounts:     []drivers.MountSpec{{Type: "bind", Source: src, Target: "/work", ReadOnly: true}, {Type: "tmpfs", Target: "/scratch", SizeBytes: 4 << 20}, {Type: "volume", Source: vol.Name, Target: "/data"}},
		Ports:      []drivers.PortSpec{{ContainerPort: 8080, HostIP: "127.0.0.1", Protocol: "tcp"}},
		Networks:   []string{netA.Name, netB.Name},
		Hostname:   "web",
		Memory:     64 << 20,
		MemoryRes:  32 << 20,
		NanoCPUs:   500_000_000,
		PidsLimit:  64,
		StopSignal: "SIGINT",
		Running:    true,
	}
	ctr := drivers.Resource{Kind: drivers.KindContainer, Name: prefix, Component: drivers.ComponentAgent,
		Labels: fleetLabels(fleet, "web", drivers.ComponentAgent), Container: spec}
	id, err := d.Create(ctx, ctr)
	if err != nil {
		t.Fatal(err)
	}

	ins, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := ins.Container
	if c.Name != "/"+prefix || c.State.Status != container.StateCreated {
		t.Errorf("name %q state %q", c.Name, c.State.Status)
	}
	cfg, hc := c.Config, c.HostConfig
	if !slices.Equal(cfg.Cmd, []string{"serve", ":8080"}) || !slices.Contains(cfg.Env, "A=1") || !slices.Contains(cfg.Env, "MODE=test") ||
		cfg.Hostname != "web" || cfg.StopSignal != "SIGINT" || cfg.Image != ref {
		t.Errorf("config: cmd %v env %v hostname %q stop %q image %q", cfg.Cmd, cfg.Env, cfg.Hostname, cfg.StopSignal, cfg.Image)
	}
	for k, v := range ctr.Labels {
		if cfg.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cfg.Labels[k], v)
		}
	}
	if hc.Memory != 64<<20 || hc.MemoryReservation != 32<<20 || hc.NanoCPUs != 500_000_000 || hc.PidsLimit == nil || *hc.PidsLimit != 64 {
		t.Errorf("resources: memory %d reservation %d nanocpus %d pids %v", hc.Memory, hc.MemoryReservation, hc.NanoCPUs, hc.PidsLimit)
	}
	if hc.RestartPolicy.Name != container.RestartPolicyDisabled || string(hc.NetworkMode) != netA.Name {
		t.Errorf("restart policy %q network mode %q", hc.RestartPolicy.Name, hc.NetworkMode)
	}
	var sawBind, sawTmpfs, sawVolume bool
	for _, m := range hc.Mounts {
		switch m.Type {
		case mount.TypeBind:
			sawBind = m.Source == src && m.Target == "/work" && m.ReadOnly
		case mount.TypeTmpfs:
			sawTmpfs = m.Target == "/scratch" && m.TmpfsOptions != nil && m.TmpfsOptions.SizeBytes == 4<<20
		case mount.TypeVolume:
			sawVolume = m.Source == vol.Name && m.Target == "/data"
		}
	}
	if !sawBind || !sawTmpfs || !sawVolume {
		t.Errorf("mounts (bind ro %v, tmpfs 4MiB %v, volume %v): %+v", sawBind, sawTmpfs, sawVolume, hc.Mounts)
	}
	for _, m := range c.Mounts {
		if m.Destination == "/work" && m.RW {
			t.Errorf("bind mount is writable: %+v", m)
		}
	}
	p8080 := network.MustParsePort("8080/tcp")
	if b := hc.PortBindings[p8080]; len(b) != 1 || b[0].HostIP.String() != "127.0.0.1" || b[0].HostPort != "" {
		t.Errorf("port bindings: %+v", hc.PortBindings)
	}
	if _, ok := cfg.ExposedPorts[p8080]; !ok {
		t.Errorf("exposed ports: %v", cfg.ExposedPorts)
	}
	if nets := c.NetworkSettings.Networks; nets[netA.Name] == nil || nets[netB.Name] == nil || len(nets) != 2 {
		t.Errorf("networks: %v", c.NetworkSettings.Networks)
	}

	// Start, then reach the agent on the engine-picked loopback port.
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	ins, err = cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bound := ins.Container.NetworkSettings.Ports[p8080]
	if !ins.Container.State.Running || len(bound) == 0 || bound[0].HostIP.String() != "127.0.0.1" || bound[0].HostPort == "" {
		t.Fatalf("running %v, 8080 bound to %+v", ins.Container.State.Running, bound)
	}
	body := httpGet(t, "http://127.0.0.1:"+bound[0].HostPort+"/")
	if body != "ok web\n" {
		t.Errorf("agent answered %q, want %q", body, "ok web\n")
	}

	// Observe: one list per kind, plus one image list.
	before := d.Calls()
	obs, err := d.Observe(ctx, fleet, []string{ref, "jackin-drvtest-absent:none"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"GET /containers/json": 1, "GET /networks": 1, "GET /volumes": 1, "GET /images/json": 1}
	if got := callsSince(before, d.Calls()); !maps.Equal(got, want) {
		t.Errorf("observe made calls %v, want %v", got, want)
	}
	if len(obs.Containers) != 1 || len(obs.Networks) != 2 || len(obs.Volumes) != 1 {
		t.Fatalf("observed %d containers, %d networks, %d volumes", len(obs.Containers), len(obs.Networks), len(obs.Volumes))
	}
	oc := obs.Containers[0]
	if oc.Kind != drivers.KindContainer || oc.ID != id || oc.Name != prefix || oc.State != drivers.StateRunning || !strings.HasPrefix(oc.Status, "Up") ||
		oc.Image != ref || oc.ImageID != imageID || !slices.Equal(oc.Networks, []string{netA.Name, netB.Name}) ||
		oc.Instance() != "web" || time.Since(oc.Created) > 10*time.Minute {
		t.Errorf("observed container %+v", oc)
	}
	if n := obs.Networks[0]; n.ID != ids[netA.Name] || n.Name != netA.Name || n.Labels[drivers.LabelFleet] != fleet || n.Created.IsZero() {
		t.Errorf("observed network %+v", n)
	}
	if v := obs.Volumes[0]; v.ID != vol.Name || v.Name != vol.Name || v.Instance() != "web" || v.Created.IsZero() {
		t.Errorf("observed volume %+v", v)
	}
	if !maps.Equal(obs.Images, map[string]string{ref: imageID}) {
		t.Errorf("observed images %v", obs.Images)
	}
	before = d.Calls()
	if _, err := d.Observe(ctx, fleet, nil); err != nil {
		t.Fatal(err)
	}
	if got := callsSince(before, d.Calls()); got["GET /images/json"] != 0 || len(got) != 3 {
		t.Errorf("observe without image refs made calls %v", got)
	}

	// Stop is graceful: the agent gets its stop signal and exits 0.
	if err := d.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	ins, err = cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := ins.Container.State; st.Status != container.StateExited || st.ExitCode != 0 {
		t.Errorf("after stop: %s, exit code %d", st.Status, st.ExitCode)
	}
	if err := d.Stop(ctx, id); err != nil {
		t.Errorf("stopping a stopped container: %v", err)
	}

	// Missing containers: start and stop say so, remove does not mind.
	for name, op := range map[string]func(context.Context, string) error{"start": d.Start, "stop": d.Stop} {
		if err := op(ctx, "jk-"+fleet+"-nope"); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("%s of a missing container: %v", name, err)
		}
	}

	// Remove keeps the volume with the container gone, then everything goes.
	if err := d.Remove(ctx, drivers.KindContainer, id); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.VolumeInspect(ctx, vol.Name, client.VolumeInspectOptions{}); err != nil {
		t.Errorf("the volume went with the container: %v", err)
	}
	for _, rm := range []struct {
		kind drivers.Kind
		id   string
	}{{drivers.KindNetwork, ids[netA.Name]}, {drivers.KindNetwork, ids[netB.Name]}, {drivers.KindVolume, vol.Name}} {
		if err := d.Remove(ctx, rm.kind, rm.id); err != nil {
			t.Errorf("remove %s %s: %v", rm.kind, rm.id, err)
		}
	}
	for _, rm := range []struct {
		kind drivers.Kind
		id   string
	}{{drivers.KindContainer, id}, {drivers.KindNetwork, ids[netA.Name]}, {drivers.KindVolume, vol.Name}} {
		if err := d.Remove(ctx, rm.kind, rm.id); err != nil {
			t.Errorf("removing %s %s again: %v", rm.kind, rm.id, err)
		}
	}
	obs, err = d.Observe(ctx, fleet, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(obs.Containers)+len(obs.Networks)+len(obs.Volumes) != 0 {
		t.Errorf("left behind: %+v", obs)
	}
	if d.MutatingCalls() == 0 || d.Calls()["POST /containers/create"] != 1 || d.Calls()["POST /networks/{id}/connect"] != 1 {
		t.Errorf("calls: %v (mutating %d)", d.Calls(), d.MutatingCalls())
	}
}

func TestEngineNameConflicts(t *testing.T) {
	d := engine(t)
	fleet := newFleet(t, d)
	ctx := t.Context()
	ref, _ := agentImage(t, d)
	cli := d.Client()
	labels := fleetLabels(fleet, "web", drivers.ComponentAgent)
	other := "x" + fleet
	// Objects that are not ours are cleaned up by name and label.
	t.Cleanup(func() { removeLabelled(t, cli, drivers.LabelFleet+"="+other) })
	t.Cleanup(func() { removeLabelled(t, cli, "jackin.drvtest.squatter="+fleet) })
	squatterLabels := map[string]string{"jackin.drvtest.squatter": fleet}

	// An unlabelled running container holding our name.
	squatter := "jk-" + fleet + "-web"
	sq, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: squatter, Config: &container.Config{Image: ref, Labels: squatterLabels}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerStart(ctx, sq.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	// Another fleet's container.
	foreign := "jk-" + fleet + "-other"
	fc, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: foreign, Config: &container.Config{Image: ref, Labels: fleetLabels(other, "other", drivers.ComponentAgent)}})
	if err != nil {
		t.Fatal(err)
	}

	spec := func() *drivers.ContainerSpec { return &drivers.ContainerSpec{Image: drivers.ImageSpec{Ref: ref}} }
	for _, c := range []struct{ name, id, owner string }{{squatter, sq.ID, "unlabelled"}, {foreign, fc.ID, "fleet " + other}} {
		_, err := d.Create(ctx, drivers.Resource{Kind: drivers.KindContainer, Name: c.name, Labels: labels, Container: spec()})
		var conflict *drivers.ErrNameConflict
		if !errors.As(err, &conflict) {
			t.Fatalf("create over %s: want *ErrNameConflict, got %T %v", c.name, err, err)
		}
		if conflict.Kind != drivers.KindContainer || conflict.Name != c.name || conflict.ID != c.id || conflict.Owner != c.owner || conflict.Instance != "web" {
			t.Errorf("conflict = %+v", conflict)
		}
		if !strings.Contains(err.Error(), "already taken by "+c.owner) {
			t.Errorf("message: %v", err)
		}
	}
	// (The squatter inherits the image's labels, dev.jackin.managed-by among
	// them: built images carry it. Without a fleet label it is still not ours.)
	ins, err := cli.ContainerInspect(ctx, squatter, client.ContainerInspectOptions{})
	if err != nil || ins.Container.ID != sq.ID || !ins.Container.State.Running ||
		ins.Container.Config.Labels[drivers.LabelFleet] != "" || ins.Container.Config.Labels["jackin.drvtest.squatter"] != fleet {
		t.Errorf("the squatter was touched: %+v %v", ins.Container.State, err)
	}
	if ins, err := cli.ContainerInspect(ctx, foreign, client.ContainerInspectOptions{}); err != nil || ins.Container.ID != fc.ID {
		t.Errorf("the other fleet's container was touched: %v", err)
	}

	// Our own container twice: the second create says it exists.
	own := drivers.Resource{Kind: drivers.KindContainer, Name: "jk-" + fleet + "-own", Labels: labels, Container: spec()}
	if _, err := d.Create(ctx, own); err != nil {
		t.Fatal(err)
	}
	_, err = d.Create(ctx, own)
	var conflict *drivers.ErrNameConflict
	if err == nil || errors.As(err, &conflict) || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second create of our own container: %T %v", err, err)
	}

	// An unlabelled network: no duplicate is created next to it, and a name
	// it merely contains (the engine's filter matches substrings) is free.
	netName := "jk-" + fleet + "-net"
	sn, err := cli.NetworkCreate(ctx, netName, client.NetworkCreateOptions{Driver: "bridge", Labels: squatterLabels})
	if err != nil {
		t.Fatal(err)
	}
	netLabels := fleetLabels(fleet, "web", drivers.ComponentNetwork)
	_, err = d.Create(ctx, drivers.Resource{Kind: drivers.KindNetwork, Name: netName, Labels: netLabels, Network: &drivers.NetworkSpec{}})
	if !errors.As(err, &conflict) || conflict.ID != sn.ID || conflict.Owner != "unlabelled" || conflict.Kind != drivers.KindNetwork {
		t.Errorf("network over an unlabelled one: %T %v", err, err)
	}
	list, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: client.Filters{}.Add("name", netName)})
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for _, n := range list.Items {
		if n.Name == netName {
			same++
		}
	}
	if same != 1 {
		t.Errorf("%d networks named %s, want 1", same, netName)
	}
	if _, err := d.Create(ctx, drivers.Resource{Kind: drivers.KindNetwork, Name: "jk-" + fleet + "-ne", Labels: netLabels, Network: &drivers.NetworkSpec{}}); err != nil {
		t.Errorf("a name the squatter's contains: %v", err)
	}

	// An unlabelled volume keeps its labels and is not claimed.
	volName := "jk-" + fleet + "-vol"
	if _, err := cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: volName, Labels: squatterLabels}); err != nil {
		t.Fatal(err)
	}
	_, err = d.Create(ctx, drivers.Resource{Kind: drivers.KindVolume, Name: volName, Labels: fleetLabels(fleet, "web", drivers.ComponentVolume), Volume: &drivers.VolumeSpec{}})
	if !errors.As(err, &conflict) || conflict.Owner != "unlabelled" || conflict.Kind != drivers.KindVolume {
		t.Errorf("volume over an unlabelled one: %T %v", err, err)
	}
	if v, err := cli.VolumeInspect(ctx, volName, client.VolumeInspectOptions{}); err != nil || v.Volume.Labels[drivers.LabelManagedBy] != "" {
		t.Errorf("the unlabelled volume changed: %+v %v", v.Volume.Labels, err)
	}
}

func TestEngineImages(t *testing.T) {
	d := engine(t)
	fleet := newFleet(t, d)
	ctx := t.Context()
	cli := d.Client()

	dir := t.TempDir()
	agentContext(t, dir)
	ref := "jackin-drvtest-" + fleet + ":build"
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	})
	img := drivers.ImageSpec{Ref: ref, Build: &drivers.BuildSpec{Context: dir, Dockerfile: "Dockerfile", Args: map[string]string{"UNUSED": "x"}}}
	var progress bytes.Buffer
	id, err := d.EnsureImage(ctx, img, &progress)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, progress.String())
	}
	if !strings.HasPrefix(id, "sha256:") || !strings.Contains(progress.String(), "Step 1/") {
		t.Errorf("id %q, progress:\n%s", id, progress.String())
	}
	ins, err := cli.ImageInspect(ctx, ref)
	if err != nil || ins.ID != id || ins.Config.Labels[drivers.LabelBuiltBy] != drivers.ManagedByValue {
		t.Errorf("built image: id %q labels %v err %v", ins.ID, ins.Config, err)
	}
	before := d.Calls()
	again, err := d.EnsureImage(ctx, img, io.Discard)
	if got := callsSince(before, d.Calls()); err != nil || again != id || !maps.Equal(got, map[string]int{"GET /images/{id}/json": 1}) {
		t.Errorf("second EnsureImage: id %q err %v calls %v", again, err, got)
	}

	// A failing build names the image and the engine's reason.
	bad := t.TempDir()
	writeFile(t, filepath.Join(bad, "Dockerfile"), "FROM scratch\nCOPY missing.txt /x\n", 0o644)
	badRef := "jackin-drvtest-" + fleet + ":bad"
	_, err = d.EnsureImage(ctx, drivers.ImageSpec{Ref: badRef, Build: &drivers.BuildSpec{Context: bad}}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `"`+badRef+`"`) || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("failing build: %v", err)
	}

	// A context that cannot be archived is reported as such, not as an
	// unreachable engine (the failed archive aborts the upload).
	_, err = d.EnsureImage(ctx, drivers.ImageSpec{Ref: badRef, Build: &drivers.BuildSpec{Context: filepath.Join(bad, "absent")}}, io.Discard)
	var unreachable *drivers.ErrUnreachable
	if err == nil || errors.As(err, &unreachable) || !strings.Contains(err.Error(), "archive build context") {
		t.Errorf("unarchivable context: %T %v", err, err)
	}

	// A missing image without a build: one pull attempt, which fails here.
	missing := "jackin-drvtest-missing-" + fleet + ":none"
	before = d.Calls()
	start := time.Now()
	_, err = d.EnsureImage(ctx, drivers.ImageSpec{Ref: missing}, io.Discard)
	want := fmt.Sprintf("image %q is not available locally and could not be pulled", missing)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("missing image: %v", err)
	}
	if got := callsSince(before, d.Calls()); got["POST /images/create"] != 1 {
		t.Errorf("want exactly one pull attempt, calls %v", got)
	}
	t.Logf("missing image: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
}

// httpGet fetches url, retrying briefly while the server starts.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				return string(b)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestEngineSettlesDuplicateNetworks: a network of the same name made
// meanwhile (a killed jackin's create landing late) is removed after a
// create, keeping the oldest, so container creates by name stay unambiguous.
func TestEngineSettlesDuplicateNetworks(t *testing.T) {
	d := engine(t)
	fleet := newFleet(t, d)
	ctx := t.Context()
	cli := d.Client()
	labels := fleetLabels(fleet, "web", drivers.ComponentNetwork)
	name := "jk-" + fleet + "-web"
	first, err := cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	second, err := cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: labels})
	if err != nil {
		t.Skipf("this engine refuses duplicate network names (nothing to settle): %v", err)
	}
	r := drivers.Resource{Kind: drivers.KindNetwork, Name: name, Component: drivers.ComponentNetwork, Labels: labels, Network: &drivers.NetworkSpec{}}
	if got := d.settleDuplicates(ctx, r, fleet, second.ID); got != first.ID {
		t.Errorf("kept %s, want the oldest %s", shortID(got), shortID(first.ID))
	}
	list, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: client.Filters{}.Add("name", name)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range list.Items {
		if n.Name == name {
			ids = append(ids, n.ID)
		}
	}
	if len(ids) != 1 || ids[0] != first.ID {
		t.Errorf("networks named %s: %v", name, ids)
	}
}
