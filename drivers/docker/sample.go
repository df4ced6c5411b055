package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/telemetry"
)

var _ drivers.ResourceSampler = (*Driver)(nil)

// statsParallel bounds the engine stats requests in flight at once.
const statsParallel = 64

// Disk sources.
const (
	// diskLayerFiles: the writable layers' and volumes' files, walked by
	// jackin on the engine's machine.
	diskLayerFiles = "layer-files"
	// diskEngine: the engine's container list with sizes, and for volumes
	// its disk-usage call (which sizes everything on the engine).
	diskEngine = "engine"
)

// sampleState is what the sampler learns about the engine once per
// driver (whether its containers' cgroup and layer files are on this
// machine, and where), and per container what does not change between
// passes: its cgroup directories and its limits.
type sampleState struct {
	mu        sync.Mutex
	localDone bool // host's local facts set
	infoDone  bool // host's facts from the engine's info set
	host      sampleHost

	cacheMu sync.Mutex
	cache   map[string]*cgroupEntry // by container ID
}

// cgroupEntry is a container's cgroup directories and limits, found by
// its first pass. The limits are read again only for a new container: the
// engine changes them only on `docker update`, which jackin never runs.
type cgroupEntry struct {
	cpuacct, cpu, mem string
	systemd           bool // found in the systemd driver's layout
	limitsRead        bool
	memLimit          int64
	nanoCPUs          int64
	cpuLimitKnown     bool
}

// sampleHost is what the sampler knows of the engine's machine.
type sampleHost struct {
	// local: the engine listens on a unix socket of this Linux machine,
	// so its cgroup and layer files may be readable by this process
	// (found only if they are: an engine in a VM behind the socket has
	// none here).
	local bool
	// cgroupRoot is where the cgroup hierarchies are mounted
	// (/sys/fs/cgroup); "" disables the cgroup source.
	cgroupRoot string
	cgroupV2   bool
	// systemd: look for docker-<id>.scope under system.slice (the
	// systemd cgroup driver) before docker/<id> (cgroupfs); both are
	// tried, and the one found first is tried first after.
	systemd bool
	// memTotal is the engine machine's memory: the stats API reports it
	// as the limit of a container without one (from the engine's info).
	memTotal int64
	// rootDir and storage locate the writable layers
	// (<rootDir>/<storage>/<mount-id>/diff); "" when unusable (from the
	// engine's info).
	rootDir, storage string
}

// layerDrivers are the storage drivers whose writable layer is
// <root>/<driver>/<mount-id>/diff.
var layerDrivers = map[string]bool{"overlay2": true, "fuse-overlayfs": true}

// samplerHosts holds each driver's sampleState.
var samplerHosts sync.Map // *Driver -> *sampleState

func (d *Driver) samplerState() *sampleState {
	v, _ := samplerHosts.LoadOrStore(d, &sampleState{})
	return v.(*sampleState)
}

// sampleHostFacts returns what the sampler knows of the engine's machine.
// The local facts cost no engine call: where the cgroup files are is
// found by looking (the cgroup v2 marker, then each container's
// directory in both drivers' layouts), as the engine's info call costs
// more than a whole `jackin get` (50 to 500 ms measured on Docker
// 20.10). withInfo also asks the engine's info, once per driver: for
// the stats API (the machine's memory) and for disk (where the layers
// are). A failed info call is asked again next pass.
func (d *Driver) sampleHostFacts(ctx context.Context, withInfo bool) (sampleHost, error) {
	st := d.samplerState()
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.localDone {
		h := &st.host
		h.local = strings.HasPrefix(d.endpoint, "unix://") && runtime.GOOS == "linux"
		if h.local && isDir("/sys/fs/cgroup") {
			h.cgroupRoot = "/sys/fs/cgroup"
			h.cgroupV2 = fileExists("/sys/fs/cgroup/cgroup.controllers")
			// systemd distributions on cgroup v2 default to the systemd
			// driver; cgroupfs otherwise.
			h.systemd = h.cgroupV2 && isDir("/sys/fs/cgroup/system.slice")
		}
		st.localDone = true
	}
	if !withInfo || st.infoDone {
		return st.host, nil
	}
	res, err := d.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return st.host, d.wrap(err, "engine info")
	}
	info := res.Info
	h := &st.host
	h.memTotal = info.MemTotal
	if info.OSType != "linux" {
		h.local, h.cgroupRoot = false, ""
	}
	if h.local && layerDrivers[info.Driver] && info.DockerRootDir != "" {
		if isDir(filepath.Join(info.DockerRootDir, "image", info.Driver, "layerdb", "mounts")) {
			h.rootDir, h.storage = info.DockerRootDir, info.Driver
		}
	}
	d.log.V(2).Info("resource sampler: engine info", "local", h.local, "cgroupDriver", info.CgroupDriver, "cgroupVersion", info.CgroupVersion,
		"storageDriver", info.Driver, "layerFiles", h.rootDir != "")
	st.infoDone = true
	return st.host, nil
}

// preferLayout remembers which cgroup layout containers were found in.
func (d *Driver) preferLayout(systemd bool) {
	st := d.samplerState()
	st.mu.Lock()
	st.host.systemd = systemd
	st.mu.Unlock()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// sampleTarget is a container a pass samples.
type sampleTarget struct {
	id, name, instance, component string
	sizeRw                        *int64
}

// SampleResources samples the fleet's running containers in one pass:
// one label-filtered list call (none with WithContainersOf), then per
// container its cgroup files when this process can read them (a local
// engine: no engine call; every CPU counter first, then memory), else the
// engine's stats (stream=false: one-shot, or with its previous sample
// about a second earlier under WithPreviousSample), statsParallel at a
// time: the engine answers them together. Disk (WithDisk) is the
// writable layer, walked on disk for a local overlay2 or fuse-overlayfs
// engine, else the list call's SizeRw; WithVolumes adds the fleet's
// volumes per instance, walked on disk for local volumes, else from the
// engine's disk-usage call.
func (d *Driver) SampleResources(ctx context.Context, fleet string, opts ...drivers.SampleOption) (*drivers.ResourceSamples, error) {
	o := drivers.ApplySampleOptions(opts...)
	start := time.Now()
	if err := d.ensureNegotiated(ctx); err != nil {
		return nil, err
	}
	host, err := d.sampleHostFacts(ctx, o.Disk)
	if err != nil {
		d.log.V(1).Info("engine info failed: disk through the engine", "error", err)
	}
	if o.Source == telemetry.SourceEngineStats {
		host.cgroupRoot = ""
	}
	localLayers := o.Disk && host.rootDir != ""

	var (
		wg      sync.WaitGroup
		volumes map[string]int64
		volErr  error
		volSrc  string
	)
	if o.Volumes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			volumes, volSrc, volErr = d.volumeSizes(ctx, fleet, host)
		}()
	}
	var targets []sampleTarget
	if o.Containers != nil && (!o.Disk || localLayers) {
		for _, c := range o.Containers.Containers {
			targets = append(targets, sampleTarget{id: c.ID, name: c.Name, instance: c.Instance, component: c.Component})
		}
	} else {
		filters := fleetFilters(fleet).Add("status", "running")
		res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{Filters: filters, Size: o.Disk && !localLayers})
		if err != nil {
			wg.Wait()
			return nil, d.wrap(err, "list running containers of fleet %q", fleet)
		}
		for _, c := range res.Items {
			t := sampleTarget{id: c.ID, name: containerName(c.Names), instance: c.Labels[drivers.LabelInstance], component: c.Labels[drivers.LabelComponent]}
			if o.Disk && !localLayers {
				size := c.SizeRw
				t.sizeRw = &size
			}
			targets = append(targets, t)
		}
	}

	out := &drivers.ResourceSamples{At: start, Containers: make([]telemetry.ContainerSample, 0, len(targets)), CPUOnly: o.CPUOnly}
	var viaStats []sampleTarget
	if host.cgroupRoot == "" {
		viaStats = targets
	} else {
		st := d.samplerState()
		st.cacheMu.Lock()
		if st.cache == nil {
			st.cache = map[string]*cgroupEntry{}
		}
		listed := o.Containers == nil
		seen := make(map[string]bool, len(targets))
		buf := make([]byte, 8192)
		layout := host.systemd
		// The CPU counters first, all together: a CPU figure compares two
		// passes' readings, and these are the readings.
		type read struct {
			t sampleTarget
			e *cgroupEntry
		}
		reads := make([]read, 0, len(targets))
		for _, t := range targets {
			seen[t.id] = true
			s, e, ok := host.cgroupCPU(t, st.cache, buf)
			if !ok {
				viaStats = append(viaStats, t)
				continue
			}
			if e.systemd != host.systemd {
				host.systemd, layout = e.systemd, e.systemd // try that layout first from here on
			}
			out.Containers = append(out.Containers, s)
			reads = append(reads, read{t, e})
		}
		if !o.CPUOnly {
			kept := out.Containers[:0]
			for i := range out.Containers {
				if host.cgroupMemory(&out.Containers[i], reads[i].e, st.cache, buf) {
					kept = append(kept, out.Containers[i])
				} else {
					viaStats = append(viaStats, reads[i].t)
				}
			}
			out.Containers = kept
		}
		if layout != st.host.systemd {
			defer d.preferLayout(layout)
		}
		if listed { // forget containers gone from the fleet
			for id := range st.cache {
				if !seen[id] {
					delete(st.cache, id)
				}
			}
		}
		st.cacheMu.Unlock()
	}
	if len(viaStats) > 0 {
		if host, err = d.sampleHostFacts(ctx, true); err != nil {
			d.log.V(1).Info("engine info failed: limits as the stats API reports them", "error", err)
		}
		out.Containers = append(out.Containers, d.statsSamples(ctx, viaStats, host, o.PreviousSample)...)
	}
	if o.Disk {
		out.DiskSource = diskEngine
		if localLayers {
			out.DiskSource = diskLayerFiles
			for i := range out.Containers {
				c := &out.Containers[i]
				if n, err := host.layerSize(c.ID); err == nil {
					c.DiskBytes = &n
				} else {
					d.log.V(1).Info("writable layer not measured", "container", c.Name, "error", err)
				}
			}
		} else {
			sizes := map[string]*int64{}
			for _, t := range targets {
				sizes[t.id] = t.sizeRw
			}
			for i := range out.Containers {
				out.Containers[i].DiskBytes = sizes[out.Containers[i].ID]
			}
		}
	}
	wg.Wait()
	if o.Volumes {
		if volErr != nil {
			d.log.V(1).Info("volume sizes not measured", "fleet", fleet, "error", volErr)
		} else {
			out.VolumeBytes = volumes
			if volSrc != out.DiskSource {
				out.DiskSource = telemetry.JoinSources(out.DiskSource, volSrc)
			}
		}
	}
	sources := make([]string, 0, 2)
	for _, c := range out.Containers {
		sources = append(sources, c.Source)
	}
	out.Source = telemetry.JoinSources(sources...)
	out.Took = time.Since(start)
	d.log.V(2).Info("sampled fleet resources", "fleet", fleet, "containers", len(out.Containers), "source", out.Source,
		"viaStats", len(viaStats), "took", out.Took)
	return out, nil
}

// cgroupLayouts are the container's cgroup directories for the CPU
// counter, the CPU limit and memory in each layout, h.systemd's first:
// docker/<id> (the cgroupfs driver) and system.slice/docker-<id>.scope
// (systemd). Which exists is found by reading the CPU counter.
func (h sampleHost) cgroupLayouts(id string) [2]cgroupEntry {
	var out [2]cgroupEntry
	for i, systemd := range []bool{h.systemd, !h.systemd} {
		p := filepath.Join("docker", id)
		if systemd {
			p = filepath.Join("system.slice", "docker-"+id+".scope")
		}
		if h.cgroupV2 {
			dir := filepath.Join(h.cgroupRoot, p)
			out[i] = cgroupEntry{cpuacct: dir, cpu: dir, mem: dir, systemd: systemd}
			continue
		}
		out[i] = cgroupEntry{cpuacct: filepath.Join(h.cgroupRoot, "cpuacct", p), cpu: filepath.Join(h.cgroupRoot, "cpu", p),
			mem: filepath.Join(h.cgroupRoot, "memory", p), systemd: systemd}
	}
	return out
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// readCgroup reads a container's counters from its cgroup files (the CPU
// counter alone with cpuOnly); false when they are not there or not
// readable (the stats API is used then). cache keeps each container's
// directories and limits between passes.
func (h sampleHost) readCgroup(t sampleTarget, cache map[string]*cgroupEntry, buf []byte, cpuOnly bool) (telemetry.ContainerSample, bool) {
	s, e, ok := h.cgroupCPU(t, cache, buf)
	if !ok || cpuOnly {
		return s, ok
	}
	return s, h.cgroupMemory(&s, e, cache, buf)
}

// cgroupCPU reads a container's CPU counter, finding its directories on
// its first pass.
func (h sampleHost) cgroupCPU(t sampleTarget, cache map[string]*cgroupEntry, buf []byte) (telemetry.ContainerSample, *cgroupEntry, bool) {
	if h.cgroupRoot == "" || t.id == "" {
		return telemetry.ContainerSample{}, nil, false
	}
	s := telemetry.ContainerSample{ID: t.id, Name: t.name, Instance: t.instance, Component: t.component, Source: telemetry.SourceCgroup}
	if e := cache[t.id]; e != nil {
		if err := readCgroupCPU(&s, e, h.cgroupV2, buf); err == nil {
			return s, e, true
		}
		delete(cache, t.id) // gone, or not ours to read: looked for again next time
		return telemetry.ContainerSample{}, nil, false
	}
	for _, e := range h.cgroupLayouts(t.id) {
		if err := readCgroupCPU(&s, &e, h.cgroupV2, buf); err == nil {
			cache[t.id] = &e
			return s, &e, true
		}
	}
	return telemetry.ContainerSample{}, nil, false
}

// cgroupMemory adds a container's memory and limits to s.
func (h sampleHost) cgroupMemory(s *telemetry.ContainerSample, e *cgroupEntry, cache map[string]*cgroupEntry, buf []byte) bool {
	var err error
	if h.cgroupV2 {
		err = readMemoryV2(s, e, buf)
	} else {
		err = readMemoryV1(s, e, buf)
	}
	if err != nil {
		delete(cache, s.ID)
		return false
	}
	s.MemoryLimitBytes, s.NanoCPUs, s.CPULimitKnown = e.memLimit, e.nanoCPUs, e.cpuLimitKnown
	if h.memTotal > 0 && s.MemoryLimitBytes >= h.memTotal {
		s.MemoryLimitBytes = 0 // more than the machine has: no limit
	}
	return true
}

// unlimitedV1 is where cgroup v1's "no limit" values start
// (PAGE_COUNTER_MAX pages: 9223372036854771712 with 4 KiB pages).
const unlimitedV1 = int64(1) << 62

// readCgroupCPU reads the CPU counter: cpuacct.usage (nanoseconds), or
// cpu.stat's usage_usec on cgroup v2.
func readCgroupCPU(s *telemetry.ContainerSample, e *cgroupEntry, v2 bool, buf []byte) error {
	if v2 {
		b, err := readSmall(filepath.Join(e.cpuacct, "cpu.stat"), buf)
		if err != nil {
			return err
		}
		s.At = time.Now()
		s.CPUNanos = statValue(b, "usage_usec") * 1000
		return nil
	}
	b, err := readSmall(filepath.Join(e.cpuacct, "cpuacct.usage"), buf)
	if err != nil {
		return err
	}
	s.At = time.Now()
	s.CPUNanos, err = parseUint(b)
	return err
}

// readMemoryV1 reads cgroup v1 files: memory.usage_in_bytes less
// memory.stat's total_inactive_file, and once per container
// memory.limit_in_bytes and cpu.cfs_quota_us / cpu.cfs_period_us.
func readMemoryV1(s *telemetry.ContainerSample, e *cgroupEntry, buf []byte) error {
	b, err := readSmall(filepath.Join(e.mem, "memory.usage_in_bytes"), buf)
	if err != nil {
		return err
	}
	usage, err := parseUint(b)
	if err != nil {
		return err
	}
	if b, err = readSmall(filepath.Join(e.mem, "memory.stat"), buf); err != nil {
		return err
	}
	s.MemoryBytes = memoryWithoutCache(usage, statValue(b, "total_inactive_file"))
	if e.limitsRead {
		return nil
	}
	if b, err = readSmall(filepath.Join(e.mem, "memory.limit_in_bytes"), buf); err != nil {
		return err
	}
	limit, err := parseUint(b)
	if err != nil {
		return err
	}
	e.memLimit = 0
	if limit < uint64(unlimitedV1) {
		e.memLimit = int64(limit)
	}
	// The CPU limit: cfs_quota_us of -1 is none (and the period is not
	// read).
	if b, err = readSmall(filepath.Join(e.cpu, "cpu.cfs_quota_us"), buf); err == nil {
		if quota, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64); err == nil && quota <= 0 {
			e.nanoCPUs, e.cpuLimitKnown = 0, true
		} else if err == nil {
			if b, err = readSmall(filepath.Join(e.cpu, "cpu.cfs_period_us"), buf); err == nil {
				if period, perr := parseUint(b); perr == nil {
					e.nanoCPUs, e.cpuLimitKnown = nanoCPUs(quota, int64(period)), true
				}
			}
		}
	}
	e.limitsRead = true
	return nil
}

// readMemoryV2 reads cgroup v2 files: memory.current less memory.stat's
// inactive_file, and once per container memory.max and cpu.max.
func readMemoryV2(s *telemetry.ContainerSample, e *cgroupEntry, buf []byte) error {
	dir := e.mem
	b, err := readSmall(filepath.Join(dir, "memory.current"), buf)
	if err != nil {
		return err
	}
	usage, err := parseUint(b)
	if err != nil {
		return err
	}
	if b, err = readSmall(filepath.Join(dir, "memory.stat"), buf); err != nil {
		return err
	}
	s.MemoryBytes = memoryWithoutCache(usage, statValue(b, "inactive_file"))
	if e.limitsRead {
		return nil
	}
	if b, err = readSmall(filepath.Join(dir, "memory.max"), buf); err != nil {
		return err
	}
	e.memLimit = 0
	if v := bytes.TrimSpace(b); string(v) != "max" {
		limit, err := parseUint(v)
		if err != nil {
			return err
		}
		e.memLimit = int64(limit)
	}
	if b, err = readSmall(filepath.Join(dir, "cpu.max"), buf); err == nil {
		if n, ok := parseCPUMax(b); ok {
			e.nanoCPUs, e.cpuLimitKnown = n, true
		}
	}
	e.limitsRead = true
	return nil
}

// memoryWithoutCache is `docker stats`'s memory: usage less the inactive
// file cache, when that is smaller.
func memoryWithoutCache(usage, inactiveFile uint64) int64 {
	if inactiveFile < usage {
		usage -= inactiveFile
	}
	return int64(usage)
}

// nanoCPUs turns a CFS quota and period (microseconds) into billionths of
// a core; 0 for no quota.
func nanoCPUs(quota, period int64) int64 {
	if quota <= 0 || period <= 0 {
		return 0
	}
	return quota * 1e9 / period
}

// parseCPUMax reads cgroup v2's cpu.max ("max 100000", "150000 100000"):
// the limit in billionths of a core, 0 for none.
func parseCPUMax(b []byte) (int64, bool) {
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	period, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, false
	}
	if f[0] == "max" {
		return 0, true
	}
	quota, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, false
	}
	return nanoCPUs(quota, period), true
}

// parseUint reads a file holding one unsigned number.
func parseUint(b []byte) (uint64, error) {
	return strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
}

// statValue finds key's value in a "key value" per line file (memory.stat,
// cpu.stat); 0 when absent.
func statValue(b []byte, key string) uint64 {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(line) > len(key) && line[len(key)] == ' ' && string(line[:len(key)]) == key {
			v, err := strconv.ParseUint(string(bytes.TrimSpace(line[len(key)+1:])), 10, 64)
			if err == nil {
				return v
			}
		}
	}
	return 0
}

// readSmall reads a small file (a cgroup file) into buf with three system
// calls and no allocation beyond the path.
func readSmall(path string, buf []byte) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], nil
}

// statsSamples samples containers through the engine's one-shot stats,
// statsParallel at a time. A container that fails (it stopped meanwhile)
// is left out.
func (d *Driver) statsSamples(ctx context.Context, targets []sampleTarget, host sampleHost, previous bool) []telemetry.ContainerSample {
	results := make([]*telemetry.ContainerSample, len(targets))
	sem := make(chan struct{}, statsParallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := d.statsSample(ctx, t, host, previous)
			if err != nil {
				d.log.V(1).Info("container stats failed", "container", t.name, "error", err)
				return
			}
			results[i] = &s
		}()
	}
	wg.Wait()
	out := make([]telemetry.ContainerSample, 0, len(targets))
	for _, s := range results {
		if s != nil {
			out = append(out, *s)
		}
	}
	return out
}

func (d *Driver) statsSample(ctx context.Context, t sampleTarget, host sampleHost, previous bool) (telemetry.ContainerSample, error) {
	res, err := d.cli.ContainerStats(ctx, t.id, client.ContainerStatsOptions{IncludePreviousSample: previous})
	if err != nil {
		return telemetry.ContainerSample{}, d.wrap(err, "stats of container %s", t.name)
	}
	defer res.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&st); err != nil {
		return telemetry.ContainerSample{}, fmt.Errorf("decode stats of container %s: %w", t.name, err)
	}
	return statsToSample(t, st, host.memTotal), nil
}

// statsToSample reads an engine stats record the way `docker stats` does:
// memory is usage less total_inactive_file (cgroup v1) or inactive_file
// (v2). The engine reports the machine's memory as the limit of a
// container without one: that is no limit. The CPU limit is not in it.
// A previous sample (PreRead, PreCPUStats) becomes PrevAt and
// PrevCPUNanos.
func statsToSample(t sampleTarget, st container.StatsResponse, memTotal int64) telemetry.ContainerSample {
	s := telemetry.ContainerSample{ID: t.id, Name: t.name, Instance: t.instance, Component: t.component,
		Source: telemetry.SourceEngineStats, At: st.Read, CPUNanos: st.CPUStats.CPUUsage.TotalUsage}
	if s.At.IsZero() {
		s.At = time.Now()
	}
	if !st.PreRead.IsZero() && st.PreRead.Before(s.At) {
		s.PrevCPUNanos, s.PrevAt = st.PreCPUStats.CPUUsage.TotalUsage, st.PreRead
	}
	mem := st.MemoryStats
	inactive, ok := mem.Stats["total_inactive_file"]
	if !ok {
		inactive = mem.Stats["inactive_file"]
	}
	s.MemoryBytes = memoryWithoutCache(mem.Usage, inactive)
	if limit := int64(mem.Limit); limit > 0 && limit < unlimitedV1 && (memTotal <= 0 || limit < memTotal) {
		s.MemoryLimitBytes = limit
	}
	return s
}

// layerSize is the size of a container's writable layer, walked on disk:
// <root>/image/<driver>/layerdb/mounts/<id>/mount-id names the layer,
// <root>/<driver>/<mount-id>/diff holds it.
func (h sampleHost) layerSize(id string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(h.rootDir, "image", h.storage, "layerdb", "mounts", id, "mount-id"))
	if err != nil {
		return 0, err
	}
	mountID := strings.TrimSpace(string(b))
	if mountID == "" || strings.ContainsAny(mountID, "/.") {
		return 0, fmt.Errorf("layer of container %s: unexpected mount id %q", id, mountID)
	}
	return dirSize(filepath.Join(h.rootDir, h.storage, mountID, "diff"))
}

// dirSize adds up the sizes of what is under dir but directories, a file
// with several links once: what the engine reports as a layer's size.
func dirSize(dir string) (int64, error) {
	var total int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if e.IsDir() {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += fi.Size()
		return nil
	})
	return total, err
}

// volumeSizes sizes the fleet's volumes per instance: walked on disk when
// they are local volumes this process can read, else through the
// engine's disk-usage call (slow: it sizes every image, container and
// volume on the engine).
func (d *Driver) volumeSizes(ctx context.Context, fleet string, host sampleHost) (map[string]int64, string, error) {
	res, err := d.cli.VolumeList(ctx, client.VolumeListOptions{Filters: fleetFilters(fleet)})
	if err != nil {
		return nil, "", d.wrap(err, "list volumes of fleet %q", fleet)
	}
	out := map[string]int64{}
	if host.local {
		walked := true
		for _, v := range res.Items {
			inst := v.Labels[drivers.LabelInstance]
			if inst == "" {
				continue
			}
			if v.Driver != "local" || v.Mountpoint == "" {
				walked = false
				break
			}
			n, err := dirSize(v.Mountpoint)
			if err != nil {
				walked = false
				break
			}
			out[inst] += n
		}
		if walked {
			return out, diskLayerFiles, nil
		}
		out = map[string]int64{}
	}
	du, err := d.cli.DiskUsage(ctx, client.DiskUsageOptions{Volumes: true})
	if err != nil {
		return nil, "", d.wrap(err, "engine disk usage")
	}
	for _, v := range du.Volumes.Items {
		if ownerOf(v.Labels, fleet) != "" || v.Labels[drivers.LabelInstance] == "" || v.UsageData == nil || v.UsageData.Size < 0 {
			continue
		}
		out[v.Labels[drivers.LabelInstance]] += v.UsageData.Size
	}
	return out, diskEngine, nil
}
