package docker

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/moby/moby/api/types/container"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/telemetry"
	"github.com/jackin-dev/jackin/test/harness"
)

// The fixtures under testdata/cgroup are one container's files in each
// layout the sampler reads: cgroup v1 with the cgroupfs driver (copied
// from this machine's engine, Docker 20.10: a 64Mi limit, plus a 1.5-CPU
// quota), v1 with the systemd driver and no limits, v2 with the systemd
// driver (a 64Mi limit, half a CPU) and v2 with cgroupfs and no limits.
const fixtureID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestReadCgroupFixtures(t *testing.T) {
	cases := []struct {
		dir           string
		v2, systemd   bool
		cpu           uint64
		mem, memLimit int64
		nano          int64
	}{
		// usage 8310784 less total_inactive_file 1507328.
		{dir: "v1", cpu: 2058381223, mem: 6803456, memLimit: 64 << 20, nano: 1500e6},
		// total_inactive_file 0 (inactive_file, the cgroup's own, is not
		// the one docker stats uses on v1); the "no limit" value.
		{dir: "v1-systemd", systemd: true, cpu: 5000, mem: 4096000},
		// usage_usec in nanoseconds; memory.current less inactive_file.
		{dir: "v2", v2: true, systemd: true, cpu: 2058381000, mem: 6803456, memLimit: 64 << 20, nano: 500e6},
		// inactive_file above the usage: the usage stands, as in docker stats.
		{dir: "v2-cgroupfs", v2: true, cpu: 7000, mem: 1000},
	}
	for _, c := range cases {
		t.Run(c.dir, func(t *testing.T) {
			h := sampleHost{cgroupRoot: filepath.Join("testdata", "cgroup", c.dir), cgroupV2: c.v2, systemd: c.systemd}
			cache := map[string]*cgroupEntry{}
			target := sampleTarget{id: fixtureID, name: "jk-f-web", instance: "web", component: "agent"}
			before := time.Now()
			s, ok := h.readCgroup(target, cache, make([]byte, 8192), false)
			if !ok {
				t.Fatal("fixture not read")
			}
			if s.CPUNanos != c.cpu || s.MemoryBytes != c.mem || s.MemoryLimitBytes != c.memLimit || s.NanoCPUs != c.nano || !s.CPULimitKnown {
				t.Errorf("got cpu %d mem %d limit %d nanoCPUs %d (known %v); want %d %d %d %d",
					s.CPUNanos, s.MemoryBytes, s.MemoryLimitBytes, s.NanoCPUs, s.CPULimitKnown, c.cpu, c.mem, c.memLimit, c.nano)
			}
			if s.Source != telemetry.SourceCgroup || s.ID != fixtureID || s.Instance != "web" || s.Component != "agent" || s.At.Before(before) {
				t.Errorf("sample = %+v", s)
			}
			if e := cache[fixtureID]; e == nil || !e.limitsRead {
				t.Fatal("directories and limits not cached")
			}
			// The driver's other layout is tried too.
			h.systemd = !h.systemd
			delete(cache, fixtureID)
			if _, ok := h.readCgroup(target, cache, make([]byte, 8192), false); !ok {
				t.Error("not found when the engine names the other cgroup driver")
			}
			// A limit over the machine's memory is no limit.
			h.memTotal = 32 << 20
			if s, _ := h.readCgroup(target, cache, make([]byte, 8192), false); s.MemoryLimitBytes != 0 {
				t.Errorf("limit %d above the machine's memory kept", s.MemoryLimitBytes)
			}
		})
	}
	t.Run("not there", func(t *testing.T) {
		h := sampleHost{cgroupRoot: filepath.Join("testdata", "cgroup", "v1")}
		cache := map[string]*cgroupEntry{}
		if _, ok := h.readCgroup(sampleTarget{id: "feedface"}, cache, make([]byte, 8192), false); ok || len(cache) != 0 {
			t.Error("a container without cgroup files was read")
		}
		if _, ok := (sampleHost{}).readCgroup(sampleTarget{id: fixtureID}, cache, make([]byte, 8192), false); ok {
			t.Error("read with the cgroup source off")
		}
	})
	t.Run("a cached container removed", func(t *testing.T) {
		dir := t.TempDir()
		h := sampleHost{cgroupRoot: dir}
		for _, c := range []string{"cpuacct", "cpu", "memory"} {
			src := filepath.Join("testdata", "cgroup", "v1", c, "docker", fixtureID)
			dst := filepath.Join(dir, c, "docker", fixtureID)
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			ents, _ := os.ReadDir(src)
			for _, e := range ents {
				b, _ := os.ReadFile(filepath.Join(src, e.Name()))
				if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		cache := map[string]*cgroupEntry{}
		if _, ok := h.readCgroup(sampleTarget{id: fixtureID}, cache, make([]byte, 8192), false); !ok {
			t.Fatal("copy not read")
		}
		if err := os.RemoveAll(filepath.Join(dir, "cpuacct")); err != nil {
			t.Fatal(err)
		}
		if _, ok := h.readCgroup(sampleTarget{id: fixtureID}, cache, make([]byte, 8192), false); ok || cache[fixtureID] != nil {
			t.Error("a container whose files went was read, or stayed cached")
		}
	})
}

func TestCgroupParsing(t *testing.T) {
	stat := []byte("cache 1\ninactive_file 5\ntotal_inactive_file 77\ntotal_inactive_file_x 9\nusage_usec 12")
	for key, want := range map[string]uint64{"total_inactive_file": 77, "inactive_file": 5, "usage_usec": 12, "missing": 0, "cache": 1} {
		if got := statValue(stat, key); got != want {
			t.Errorf("statValue(%q) = %d, want %d", key, got, want)
		}
	}
	for in, want := range map[string]int64{"max 100000\n": 0, "150000 100000\n": 1500e6, "50000 100000": 500e6, "200000 50000": 4e9} {
		got, ok := parseCPUMax([]byte(in))
		if !ok || got != want {
			t.Errorf("parseCPUMax(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "max", "x 100000", "100 y"} {
		if _, ok := parseCPUMax([]byte(bad)); ok {
			t.Errorf("parseCPUMax(%q) accepted", bad)
		}
	}
	if nanoCPUs(-1, 100000) != 0 || nanoCPUs(100000, 0) != 0 || nanoCPUs(250000, 100000) != 2500e6 {
		t.Error("nanoCPUs")
	}
	if memoryWithoutCache(100, 30) != 70 || memoryWithoutCache(100, 100) != 100 || memoryWithoutCache(100, 200) != 100 {
		t.Error("memoryWithoutCache")
	}
}

func TestStatsToSample(t *testing.T) {
	read := time.Date(2026, 12, 4, 12, 0, 1, 0, time.UTC)
	var st container.StatsResponse
	st.Read, st.PreRead = read, read.Add(-time.Second)
	st.CPUStats.CPUUsage.TotalUsage, st.PreCPUStats.CPUUsage.TotalUsage = 3e9, 2e9
	st.MemoryStats.Usage, st.MemoryStats.Limit = 10<<20, 64<<20
	st.MemoryStats.Stats = map[string]uint64{"total_inactive_file": 2 << 20, "inactive_file": 1 << 20}
	tg := sampleTarget{id: "c1", name: "jk-f-w", instance: "w", component: "agent"}
	s := statsToSample(tg, st, 1<<30)
	if s.CPUNanos != 3e9 || s.PrevCPUNanos != 2e9 || !s.PrevAt.Equal(st.PreRead) || !s.At.Equal(read) ||
		s.MemoryBytes != 8<<20 || s.MemoryLimitBytes != 64<<20 || s.CPULimitKnown || s.Source != telemetry.SourceEngineStats {
		t.Errorf("v1 record: %+v", s)
	}
	// cgroup v2: no total_ keys; the machine's memory as the limit is none;
	// no previous sample (one-shot).
	st.MemoryStats.Stats = map[string]uint64{"inactive_file": 1 << 20}
	st.MemoryStats.Limit = 1 << 30
	st.PreRead = time.Time{}
	s = statsToSample(tg, st, 1<<30)
	if s.MemoryBytes != 9<<20 || s.MemoryLimitBytes != 0 || !s.PrevAt.IsZero() {
		t.Errorf("v2 record: %+v", s)
	}
}

func TestDirSize(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a"), string(make([]byte, 1000)), 0o644)
	writeFile(t, filepath.Join(dir, "sub", "b"), string(make([]byte, 234)), 0o644)
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "sub", "a-again")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	n, err := dirSize(dir)
	if err != nil || n != 1234+int64(len("a")) {
		t.Errorf("dirSize = %d, %v; want %d (a file with two links once, a symlink its own size)", n, err, 1234+len("a"))
	}
	if _, err := dirSize(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing directory measured")
	}

	// A writable layer found from the container's mount id.
	root := t.TempDir()
	h := sampleHost{rootDir: root, storage: "overlay2"}
	writeFile(t, filepath.Join(root, "image", "overlay2", "layerdb", "mounts", "c1", "mount-id"), "m1\n", 0o644)
	writeFile(t, filepath.Join(root, "overlay2", "m1", "diff", "tmp", "out"), string(make([]byte, 4096)), 0o644)
	if n, err := h.layerSize("c1"); err != nil || n != 4096 {
		t.Errorf("layerSize = %d, %v", n, err)
	}
	writeFile(t, filepath.Join(root, "image", "overlay2", "layerdb", "mounts", "c2", "mount-id"), "../../etc", 0o644)
	if _, err := h.layerSize("c2"); err == nil {
		t.Error("a mount id with a path in it was followed")
	}
}

// TestEngineSampleResources samples a fleet of two containers of one
// instance (a busy agent with a 64Mi memory limit and half a CPU, an idle
// sidecar without limits) on the engine the environment names: the
// limits are reported, the agent's CPU rises and its sidecar's does not,
// the pass is one list call and nothing per container on a local engine,
// and the engine's stats give the same through a TCP endpoint.
func TestEngineSampleResources(t *testing.T) {
	d := engine(t)
	fleet := newFleet(t, d)
	ctx := t.Context()
	ref := shellImage(t, d)
	volName := "jk-" + fleet + "-web-home"
	if _, err := d.Create(ctx, drivers.Resource{Kind: drivers.KindVolume, Name: volName, Component: drivers.ComponentHome,
		Labels: fleetLabels(fleet, "web", drivers.ComponentHome), Volume: &drivers.VolumeSpec{}}); err != nil {
		t.Fatal(err)
	}
	start := func(name, component, script string, mem, nano int64, mounts []drivers.MountSpec) string {
		id, err := d.Create(ctx, drivers.Resource{
			Kind: drivers.KindContainer, Name: name, Component: component, Labels: fleetLabels(fleet, "web", component),
			Container: &drivers.ContainerSpec{
				Image: drivers.ImageSpec{Ref: ref}, Command: []string{"/bin/sh", "-c", script},
				NoNetwork: true, Running: true, StopSignal: "SIGKILL", Memory: mem, NanoCPUs: nano, Mounts: mounts,
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	agentName, sideName := "jk-"+fleet+"-web", "jk-"+fleet+"-web-egress"
	// 1 MiB in the writable layer and 2 MiB in the volume, then a busy loop.
	agentID := start(agentName, drivers.ComponentAgent,
		"head -c 1048576 /dev/zero > /big && head -c 2097152 /dev/zero > /home/big && while :; do :; done",
		64<<20, 500e6, []drivers.MountSpec{{Type: "volume", Source: volName, Target: "/home"}})
	start(sideName, drivers.ComponentEgress, "exec sleep 3600", 0, 0, nil)
	time.Sleep(500 * time.Millisecond) // the files written

	check := func(t *testing.T, prev, cur *drivers.ResourceSamples, wantSource string) {
		t.Helper()
		if len(cur.Containers) != 2 || cur.Source != wantSource {
			t.Fatalf("pass: %d containers, source %q; want 2, %q", len(cur.Containers), cur.Source, wantSource)
		}
		byName := map[string]telemetry.ContainerSample{}
		for _, c := range cur.Containers {
			byName[c.Name] = c
		}
		ag, side := byName[agentName], byName[sideName]
		if ag.ID != agentID || ag.Instance != "web" || ag.Component != drivers.ComponentAgent || side.Component != drivers.ComponentEgress {
			t.Fatalf("containers: %+v", cur.Containers)
		}
		if ag.MemoryLimitBytes != 64<<20 || side.MemoryLimitBytes != 0 {
			t.Errorf("memory limits: agent %d, sidecar %d; want %d, 0", ag.MemoryLimitBytes, side.MemoryLimitBytes, 64<<20)
		}
		if wantSource == telemetry.SourceCgroup && (ag.NanoCPUs != 500e6 || !ag.CPULimitKnown || side.NanoCPUs != 0 || !side.CPULimitKnown) {
			t.Errorf("CPU limits from the cgroup: agent %d (known %v), sidecar %d; want 500000000, 0", ag.NanoCPUs, ag.CPULimitKnown, side.NanoCPUs)
		}
		if ag.MemoryBytes <= 0 || ag.MemoryBytes > 64<<20 || side.MemoryBytes <= 0 {
			t.Errorf("memory: agent %d, sidecar %d", ag.MemoryBytes, side.MemoryBytes)
		}
		desired := map[string]telemetry.Limits{agentName: {NanoCPUs: 500e6, MemoryBytes: 64 << 20}}
		r := telemetry.InstanceResources(prev, cur, desired)["web"]
		if r == nil {
			t.Fatal("no resources for instance web")
		}
		t.Logf("web: cpu %.1f%% (limit %v), memory %d of %d, window %v, source %s, sidecars %+v",
			r.CPUPercent, deref(r.CPULimitPercent), r.MemoryBytes, r.MemoryLimitBytes, r.CPUWindow, r.Source, r.Sidecars)
		// Half a CPU, busy: up to 50% of a core (less on a loaded
		// machine: the test machines' two cores are shared), never much
		// more (the quota holds it).
		if r.CPUPercent < 5 || r.CPUPercent > 65 {
			t.Errorf("busy agent capped at half a CPU: cpu %.1f%%, want up to about 50", r.CPUPercent)
		}
		if len(r.Sidecars) != 1 || r.Sidecars[0].CPUPercent > 5 {
			t.Errorf("idle sidecar: %+v", r.Sidecars)
		}
		if r.MemoryBytes != ag.MemoryBytes+side.MemoryBytes || r.MemoryLimitBytes != 0 {
			t.Errorf("instance memory %d (limit %d): want the sum, and no limit (the sidecar has none)", r.MemoryBytes, r.MemoryLimitBytes)
		}
	}

	t.Run("local", func(t *testing.T) {
		calls := d.Calls()
		first, err := d.SampleResources(ctx, fleet)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		second, err := d.SampleResources(ctx, fleet, drivers.WithContainersOf(first))
		if err != nil {
			t.Fatal(err)
		}
		want := telemetry.SourceCgroup
		if _, err := os.Stat("/sys/fs/cgroup/memory/docker/" + agentID); err != nil {
			if _, err := os.Stat("/sys/fs/cgroup/system.slice/docker-" + agentID + ".scope"); err != nil {
				want = telemetry.SourceEngineStats
				t.Logf("this machine's engine keeps its cgroups elsewhere: expecting %s", want)
			}
		}
		check(t, first, second, want)
		got := callsSince(calls, d.Calls())
		delete(got, "GET /info") // once per driver
		if want == telemetry.SourceCgroup && (got["GET /containers/json"] != 1 || len(got) != 1) {
			t.Errorf("two cgroup passes made %v; want one list call", got)
		}
		t.Logf("pass took %v, then %v; calls %v", first.Took, second.Took, got)
	})

	t.Run("engine stats", func(t *testing.T) {
		first, err := d.SampleResources(ctx, fleet, drivers.WithSource(telemetry.SourceEngineStats))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		second, err := d.SampleResources(ctx, fleet, drivers.WithSource(telemetry.SourceEngineStats), drivers.WithContainersOf(first))
		if err != nil {
			t.Fatal(err)
		}
		check(t, first, second, telemetry.SourceEngineStats)
		// With the engine's previous sample, one pass gives CPU.
		one, err := d.SampleResources(ctx, fleet, drivers.WithSource(telemetry.SourceEngineStats), drivers.WithPreviousSample())
		if err != nil {
			t.Fatal(err)
		}
		check(t, nil, one, telemetry.SourceEngineStats)
	})

	t.Run("remote engine", func(t *testing.T) {
		p, err := harness.StartEngineProxy()
		if err != nil {
			t.Skipf("no TCP endpoint for the engine: %v", err)
		}
		defer p.Close()
		t.Setenv("DOCKER_HOST", p.Host())
		rd, err := New(ctx, testr.New(t))
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		first, err := rd.SampleResources(ctx, fleet)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		second, err := rd.SampleResources(ctx, fleet, drivers.WithContainersOf(first))
		if err != nil {
			t.Fatal(err)
		}
		check(t, first, second, telemetry.SourceEngineStats)
		if n := rd.Calls()["GET /containers/{id}/stats"]; n != 4 {
			t.Errorf("stats calls: %d, want 4 (two containers, two passes)", n)
		}
		// Disk through the engine: the list's SizeRw, the volumes from
		// its disk usage.
		s, err := rd.SampleResources(ctx, fleet, drivers.WithVolumes())
		if err != nil {
			t.Fatal(err)
		}
		r := telemetry.InstanceResources(nil, s, nil)["web"]
		t.Logf("disk source %s: instance %v, volumes %v", s.DiskSource, deref64(r.DiskBytes), s.VolumeBytes)
		if s.DiskSource != "engine" || r.DiskBytes == nil || *r.DiskBytes < 3<<20 || *r.DiskBytes > 4<<20 {
			t.Errorf("disk through the engine: %v from %q; want the 1 MiB layer file and the 2 MiB volume file", deref64(r.DiskBytes), s.DiskSource)
		}
	})

	t.Run("disk", func(t *testing.T) {
		s, err := d.SampleResources(ctx, fleet, drivers.WithVolumes())
		if err != nil {
			t.Fatal(err)
		}
		r := telemetry.InstanceResources(nil, s, nil)["web"]
		t.Logf("disk source %s: instance %v, volumes %v", s.DiskSource, deref64(r.DiskBytes), s.VolumeBytes)
		if r.DiskBytes == nil || *r.DiskBytes < 3<<20 || *r.DiskBytes > 4<<20 {
			t.Errorf("disk: %v; want the 1 MiB layer file and the 2 MiB volume file", deref64(r.DiskBytes))
		}
		if s.VolumeBytes["web"] < 2<<20 {
			t.Errorf("volume bytes %v", s.VolumeBytes)
		}
		for _, c := range s.Containers {
			if c.DiskBytes == nil {
				t.Errorf("%s: writable layer not measured", c.Name)
			}
		}
	})
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func deref64(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}
