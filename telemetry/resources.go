package telemetry

import (
	"math"
	"sort"
	"time"
)

// Sources of a resource sample.
const (
	// SourceCgroup: the container's cgroup files, read by jackin on the
	// engine's machine (no engine call per container).
	SourceCgroup = "cgroup"
	// SourceEngineStats: the engine's one-shot stats API, one request per
	// container (a remote engine, or cgroup files jackin cannot read).
	SourceEngineStats = "engine-stats"
)

// DefaultSampleInterval is how often a long-running view (the console)
// samples a fleet's resources: one pass for the whole fleet each time.
const DefaultSampleInterval = 2 * time.Second

// NearLimitFraction is how close to its limit a memory use is marked: at
// 90% or more of the limit.
const NearLimitFraction = 0.9

// ContainerSample is one container's counters at At, as a sampling pass
// read them.
type ContainerSample struct {
	ID        string
	Name      string
	Instance  string
	Component string
	// CPUNanos is the container's cumulative CPU time (all cores), since
	// its cgroup was made (the container's last start).
	CPUNanos uint64
	// MemoryBytes is the memory in use the way `docker stats` counts it:
	// the cgroup's usage less its inactive file cache.
	MemoryBytes int64
	// MemoryLimitBytes is the container's memory limit (0: none).
	MemoryLimitBytes int64
	// NanoCPUs is the container's CPU limit in billionths of a core (0:
	// none), when CPULimitKnown; otherwise the sampler could not see it and
	// the desired spec's limit stands in.
	NanoCPUs      int64
	CPULimitKnown bool
	// DiskBytes is the container's writable layer, when measured.
	DiskBytes *int64
	At        time.Time
	Source    string
	// PrevCPUNanos and PrevAt are an earlier reading of the CPU counter
	// the source took itself (the engine's stats with their previous
	// sample); PrevAt is zero without one.
	PrevCPUNanos uint64
	PrevAt       time.Time
}

// Samples is one sampling pass over a fleet's running containers.
type Samples struct {
	// At is when the pass started; each container has its own At.
	At time.Time
	// Took is how long the pass took.
	Took time.Duration
	// Source is the pass's source: SourceCgroup, SourceEngineStats, or
	// both joined with "+" when some containers needed the fallback.
	Source     string
	Containers []ContainerSample
	// VolumeBytes is, per instance, the size of its volumes (when
	// measured).
	VolumeBytes map[string]int64
	// DiskSource says how disk was measured ("layer-files", "engine"),
	// when it was.
	DiskSource string
	// CPUOnly: the cgroup containers' memory and limits were not read
	// (a pass for CPU alone); see WithMemoryOf.
	CPUOnly bool
}

// WithMemoryOf returns cur with the memory, limits and disk of each
// container taken from earlier where cur has only CPU (a CPU-only pass
// after a full one), and earlier's volumes: one pass to compare CPU
// with, the other for the rest. A container earlier lacks is dropped.
func (cur *Samples) WithMemoryOf(earlier *Samples) *Samples {
	if cur == nil || earlier == nil {
		return cur
	}
	byID := make(map[string]ContainerSample, len(earlier.Containers))
	for _, c := range earlier.Containers {
		byID[c.ID] = c
	}
	out := *cur
	out.Containers = make([]ContainerSample, 0, len(cur.Containers))
	out.VolumeBytes, out.DiskSource, out.CPUOnly = earlier.VolumeBytes, earlier.DiskSource, false
	for _, c := range cur.Containers {
		e, ok := byID[c.ID]
		if !ok {
			if !cur.CPUOnly || c.Source != SourceCgroup {
				out.Containers = append(out.Containers, c)
			}
			continue
		}
		if cur.CPUOnly && c.Source == SourceCgroup {
			c.MemoryBytes, c.MemoryLimitBytes = e.MemoryBytes, e.MemoryLimitBytes
			c.NanoCPUs, c.CPULimitKnown = e.NanoCPUs, e.CPULimitKnown
		}
		if c.DiskBytes == nil {
			c.DiskBytes = e.DiskBytes
		}
		out.Containers = append(out.Containers, c)
	}
	return &out
}

// Limits are a container's limits as the desired spec sets them: the
// caller's stand-in for what a sample cannot see.
type Limits struct {
	NanoCPUs    int64
	MemoryBytes int64
}

// ContainerResources is one container's share of an instance's resources.
type ContainerResources struct {
	Name             string   `json:"name"`
	Component        string   `json:"component"`
	CPUPercent       float64  `json:"cpuPercent"`
	CPULimitPercent  *float64 `json:"cpuLimitPercent,omitempty"`
	MemoryBytes      int64    `json:"memoryBytes"`
	MemoryLimitBytes int64    `json:"memoryLimitBytes,omitempty"`
	NearMemoryLimit  bool     `json:"nearMemoryLimit,omitempty"`
	DiskBytes        *int64   `json:"diskBytes,omitempty"`
}

// CPUPercent is the CPU used between two readings of a cumulative CPU
// counter, in percent of one core (200 is two cores busy). It is false
// when the interval is not positive. A counter lower than before means
// the container restarted in between (a new cgroup counts from zero): the
// CPU since that restart, cur, is spread over the whole interval, a lower
// bound.
func CPUPercent(prevNanos, curNanos uint64, prevAt, curAt time.Time) (float64, bool) {
	interval := curAt.Sub(prevAt)
	if interval <= 0 {
		return 0, false
	}
	delta := curNanos - prevNanos
	if curNanos < prevNanos {
		delta = curNanos
	}
	return float64(delta) / float64(interval.Nanoseconds()) * 100, true
}

// CPULimitPercent is cpuPercent (of one core) as a percent of a limit of
// nanoCPUs billionths of a core; false without a limit.
func CPULimitPercent(cpuPercent float64, nanoCPUs int64) (float64, bool) {
	if nanoCPUs <= 0 {
		return 0, false
	}
	return cpuPercent / (float64(nanoCPUs) / 1e9), true
}

// NearLimit reports a memory use at NearLimitFraction of its limit or
// more; never without a limit.
func NearLimit(used, limit int64) bool {
	return limit > 0 && float64(used) >= NearLimitFraction*float64(limit)
}

// round1 keeps one decimal: the figures are for people and for JSON that
// diffs cleanly.
func round1(f float64) float64 { return math.Round(f*10) / 10 }

// InstanceResources adds up a pass per instance: the agent and its
// sidecars. CPU needs an earlier reading: the container's in prev, an
// earlier pass (nil: none), or else the one the sample carries
// (PrevAt); a container with neither has no CPU figure (and an instance
// with none CPUWindow 0). desired, by
// container name, gives the CPU limits a sample could not see (the
// engine's stats carry the memory limit, not the CPU one).
//
// An instance's memory and CPU are its containers' sums. Its limit is the
// sum of theirs when every one of them has a limit, and none otherwise
// (it is unbounded as a whole). It is near its memory limit when any of
// its containers is near its own (the kernel's OOM killer acts per
// container), or the sum near the summed limit. Sidecars lists each
// sidecar's own figures when there are any.
func InstanceResources(prev, cur *Samples, desired map[string]Limits) map[string]*Resources {
	out := map[string]*Resources{}
	if cur == nil {
		return out
	}
	before := map[string]ContainerSample{}
	if prev != nil {
		for _, c := range prev.Containers {
			before[c.ID] = c
		}
	}
	type acc struct {
		res                      *Resources
		sources                  map[string]bool
		memLimitAll, cpuLimitAll bool
		memLimit, nanoCPUs       int64
		window                   time.Duration
		cpuMeasured, disk        bool
		diskBytes                int64
	}
	accs := map[string]*acc{}
	for _, c := range cur.Containers {
		if c.Instance == "" {
			continue
		}
		a := accs[c.Instance]
		if a == nil {
			a = &acc{res: &Resources{SampledAt: cur.At}, sources: map[string]bool{}, memLimitAll: true, cpuLimitAll: true}
			accs[c.Instance] = a
		}
		a.sources[c.Source] = true
		cr := ContainerResources{Name: c.Name, Component: c.Component, MemoryBytes: c.MemoryBytes, DiskBytes: c.DiskBytes}

		memLimit := c.MemoryLimitBytes
		cr.MemoryLimitBytes = memLimit
		cr.NearMemoryLimit = NearLimit(c.MemoryBytes, memLimit)
		nano := c.NanoCPUs
		if !c.CPULimitKnown {
			nano = desired[c.Name].NanoCPUs
		}
		if pct, w, ok := containerCPU(before, c); ok {
			cr.CPUPercent = round1(pct)
			a.res.CPUPercent += pct
			a.cpuMeasured = true
			if a.window == 0 || w < a.window {
				a.window = w
			}
			if lp, ok := CPULimitPercent(pct, nano); ok {
				lp = round1(lp)
				cr.CPULimitPercent = &lp
			}
		}

		a.res.MemoryBytes += c.MemoryBytes
		a.res.NearMemoryLimit = a.res.NearMemoryLimit || cr.NearMemoryLimit
		if memLimit > 0 {
			a.memLimit += memLimit
		} else {
			a.memLimitAll = false
		}
		if nano > 0 {
			a.nanoCPUs += nano
		} else {
			a.cpuLimitAll = false
		}
		if c.DiskBytes != nil {
			a.disk = true
			a.diskBytes += *c.DiskBytes
		}
		if c.Component != "" && c.Component != "agent" {
			a.res.Sidecars = append(a.res.Sidecars, cr)
		}
	}
	for inst, a := range accs {
		r := a.res
		if a.memLimitAll {
			r.MemoryLimitBytes = a.memLimit
			r.NearMemoryLimit = r.NearMemoryLimit || NearLimit(r.MemoryBytes, a.memLimit)
		}
		if a.cpuMeasured {
			r.CPUWindow = a.window
			r.CPUWindowSeconds = math.Round(a.window.Seconds()*1000) / 1000
			if a.cpuLimitAll {
				if lp, ok := CPULimitPercent(r.CPUPercent, a.nanoCPUs); ok {
					lp = round1(lp)
					r.CPULimitPercent = &lp
				}
			}
		}
		r.CPUPercent = round1(r.CPUPercent)
		if v, ok := cur.VolumeBytes[inst]; ok {
			a.disk = true
			a.diskBytes += v
		}
		if a.disk {
			d := a.diskBytes
			r.DiskBytes = &d
		}
		r.Source = joinSources(a.sources)
		sort.Slice(r.Sidecars, func(i, j int) bool { return r.Sidecars[i].Name < r.Sidecars[j].Name })
		out[inst] = r
	}
	return out
}

// containerCPU is c's CPU percent against its reading in before, or else
// against the earlier reading c carries, and the interval it covers.
func containerCPU(before map[string]ContainerSample, c ContainerSample) (float64, time.Duration, bool) {
	if p, ok := before[c.ID]; ok {
		if pct, ok := CPUPercent(p.CPUNanos, c.CPUNanos, p.At, c.At); ok {
			return pct, c.At.Sub(p.At), true
		}
	}
	if !c.PrevAt.IsZero() {
		if pct, ok := CPUPercent(c.PrevCPUNanos, c.CPUNanos, c.PrevAt, c.At); ok {
			return pct, c.At.Sub(c.PrevAt), true
		}
	}
	return 0, 0, false
}

// joinSources names the sources used, sorted, joined with "+".
func joinSources(set map[string]bool) string {
	var names []string
	for s := range set {
		if s != "" {
			names = append(names, s)
		}
	}
	sort.Strings(names)
	out := ""
	for i, n := range names {
		if i > 0 {
			out += "+"
		}
		out += n
	}
	return out
}

// JoinSources is joinSources for a list: the distinct sources, sorted,
// joined with "+".
func JoinSources(sources ...string) string {
	set := map[string]bool{}
	for _, s := range sources {
		set[s] = true
	}
	return joinSources(set)
}
