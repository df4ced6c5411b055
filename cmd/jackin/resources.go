package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/telemetry"
)

// Resource telemetry for jackin get (CPU, MEM, and DISK in -o wide) and
// for the console: the backends' ResourceSampler, one pass per fleet,
// added up per instance by telemetry.InstanceResources.

// minCPUWindow is the shortest interval get measures CPU over: get's
// first pass runs while it plans, the second after, so the plan's time
// is usually the window and this only waits on a very quick plan.
const minCPUWindow = 50 * time.Millisecond

// resourceHelp is get's help on the resource columns.
const resourceHelp = `CPU and MEM (running instances): CPU in percent of one core (measured since
the previous get of the fleet when that was at most 10s ago, otherwise over
the time get takes, at least 50ms), memory in use as docker stats counts
it, "/LIMIT" when the instance has one and "!" within 10% of it. An
instance's figures are its agent's and its sidecars' together (-o json
lists each sidecar's under resources.sidecars). On a local engine they are
read from the containers' cgroup files, otherwise from the engine's stats
(resources.source says which). -o wide adds DISK: the writable layers and
the instance's volumes (on a remote engine, the volumes are sized by the
engine's disk-usage call, which sizes everything it holds: slow);
--disk adds diskBytes to -o json and yaml.

COST (and usage in -o json): the instance's tokens and estimated cost so far,
from its runtime's own usage records (see jackin usage): "-" when none are
recorded, "?" when a model it used has no price. --no-telemetry skips all of
it.`

// resourceFlags are get's telemetry flags.
type resourceFlags struct {
	off  bool
	disk bool
}

func (f *resourceFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.off, "no-telemetry", false, "do not sample CPU, memory or disk nor read usage (no CPU, MEM and COST columns, no resources or usage in -o json)")
	cmd.Flags().BoolVar(&f.disk, "disk", false, "also measure disk (writable layers and volumes) for -o json and yaml; -o wide always does")
}

// resourceProbe is get's sampling: a first pass started while get plans,
// a second one after (for CPU), added up per instance.
type resourceProbe struct {
	fleet    string
	samplers []drivers.ResourceSampler
	// byBackend is the sampler of each backend name (to sample the
	// containers the plan observed).
	byBackend map[string]drivers.ResourceSampler
	// kept are the fleet's CPU readings a recent get kept; with them the
	// probe samples once, after the plan, the containers it observed (no
	// list of its own, no second pass).
	kept     map[string]cpuReading
	deferred bool
	opts     []drivers.SampleOption
	cancel   context.CancelFunc
	done     chan struct{}
	first    []*drivers.ResourceSamples // per sampler; nil where it failed
	errs     []error
}

// startResourceProbe starts the first pass on every backend of the
// session that can sample (nil when telemetry is off or none can). disk
// measures writable layers and volumes.
func (a *app) startResourceProbe(ctx context.Context, sess *session, flags resourceFlags, disk bool) *resourceProbe {
	if flags.off || sess == nil || sess.fleet == nil {
		return nil
	}
	p := &resourceProbe{fleet: sess.fleet.Name, done: make(chan struct{}), byBackend: map[string]drivers.ResourceSampler{}}
	seen := map[drivers.Driver]bool{}
	names := make([]string, 0, len(sess.set))
	for name := range sess.set {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		drv := sess.set[name]
		if s, ok := drv.(drivers.ResourceSampler); ok {
			p.byBackend[name] = s
			if !seen[drv] {
				seen[drv] = true
				p.samplers = append(p.samplers, s)
			}
		}
	}
	if len(p.samplers) == 0 {
		return nil
	}
	p.opts = []drivers.SampleOption{drivers.WithPreviousSample()}
	if disk || flags.disk {
		p.opts = append(p.opts, drivers.WithVolumes())
	}
	ctx, p.cancel = context.WithCancel(ctx)
	p.first, p.errs = make([]*drivers.ResourceSamples, len(p.samplers)), make([]error, len(p.samplers))
	kept, err := loadCPUReadings(a.global.stateDir, p.fleet)
	if err != nil {
		a.log.V(1).Info("kept CPU readings not used: a second pass measures CPU", "error", err)
	}
	p.kept = kept
	if !disk && !flags.disk && freshReadings(kept, time.Now()) {
		// A recent get kept readings: sample after the plan, once.
		p.deferred = true
		close(p.done)
		return p
	}
	opts := p.opts
	go func() {
		defer close(p.done)
		var wg sync.WaitGroup
		for i, s := range p.samplers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.first[i], p.errs[i] = s.SampleResources(ctx, p.fleet, opts...)
			}()
		}
		wg.Wait()
	}()
	return p
}

// stop abandons a probe get did not finish (it failed before).
func (p *resourceProbe) stop() {
	if p != nil {
		p.cancel()
	}
}

// finish takes the second pass and fills the rows of running instances.
// A backend that cannot be sampled costs its rows their resources, not
// the command: it is logged.
func (a *app) finishResourceProbe(ctx context.Context, p *resourceProbe, desired *reconciler.Desired, observed reconciler.Observations, items []instanceStatus) {
	if p == nil {
		return
	}
	defer p.cancel()
	select {
	case <-p.done:
	case <-ctx.Done():
		return
	}
	if p.deferred {
		p.sampleObserved(ctx, observed)
	}
	limits := desiredLimits(desired)
	all := map[string]*telemetry.Resources{}
	kept := p.kept
	var latest []*drivers.ResourceSamples
	for i, s := range p.samplers {
		first := p.first[i]
		if p.errs[i] != nil || first == nil {
			a.log.V(1).Info("resources not sampled", "fleet", p.fleet, "error", p.errs[i])
			continue
		}
		useKeptReadings(first, kept)
		prev, cur, err := secondPass(ctx, s, p.fleet, first)
		latest = append(latest, cur)
		if err != nil {
			a.log.V(1).Info("second resource pass failed: no CPU figures", "fleet", p.fleet, "error", err)
		}
		for inst, r := range telemetry.InstanceResources(prev, cur, limits) {
			all[inst] = r
		}
		a.log.V(2).Info("resources sampled", "fleet", p.fleet, "source", cur.Source, "containers", len(cur.Containers),
			"firstPass", first.Took, "disk", first.DiskSource)
	}
	if err := saveCPUReadings(a.global.stateDir, p.fleet, latest); err != nil {
		a.log.V(1).Info("CPU readings not kept: the next get takes a second pass", "error", err)
	}
	for i := range items {
		if items[i].Observed != "running" {
			continue
		}
		if r, ok := all[items[i].Instance]; ok {
			items[i].Resources = r
		}
	}
}

// secondPass reads again the CPU counters of the containers first read
// from files (the engine's stats with their previous sample already give
// CPU), at least minCPUWindow after them, and returns the pair to
// compare; memory, limits and disk stay the first pass's (read while get
// planned). Without a second pass cur is first.
func secondPass(ctx context.Context, s drivers.ResourceSampler, fleet string, first *drivers.ResourceSamples) (prev, cur *drivers.ResourceSamples, err error) {
	again := &drivers.ResourceSamples{}
	var kept []telemetry.ContainerSample
	var latest time.Time
	for _, c := range first.Containers {
		if c.PrevAt.IsZero() {
			again.Containers = append(again.Containers, c)
			if c.At.After(latest) {
				latest = c.At
			}
		} else {
			kept = append(kept, c)
		}
	}
	if len(again.Containers) == 0 {
		return nil, first, nil
	}
	if wait := minCPUWindow - time.Since(latest); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, first, ctx.Err()
		}
	}
	second, err := s.SampleResources(ctx, fleet, drivers.WithContainersOf(again), drivers.WithCPUOnly())
	if err != nil {
		return nil, first, err
	}
	cur = second.WithMemoryOf(first)
	cur.Containers = append(cur.Containers, kept...)
	sources := make([]string, 0, len(cur.Containers))
	for _, c := range cur.Containers {
		sources = append(sources, c.Source)
	}
	cur.Source = telemetry.JoinSources(sources...)
	cur.Took = first.Took + second.Took
	return first, cur, nil
}

// desiredLimits are the desired containers' limits by name: what the
// engine's stats cannot say (the CPU limit).
func desiredLimits(d *reconciler.Desired) map[string]telemetry.Limits {
	out := map[string]telemetry.Limits{}
	if d == nil {
		return out
	}
	for _, in := range d.Instances {
		for _, r := range in.Resources {
			if r.Kind == drivers.KindContainer && r.Container != nil {
				out[r.Name] = telemetry.Limits{NanoCPUs: r.Container.NanoCPUs, MemoryBytes: r.Container.Memory}
			}
		}
	}
	return out
}

// withResources is head, then the resource columns, then tail.
func withResources(head, res []string, tail ...string) []string {
	return append(append(head, res...), tail...)
}

// resourceHeaders are the table's resource columns (none when telemetry
// is off).
func resourceHeaders(flags resourceFlags, wide bool) []string {
	switch {
	case flags.off:
		return nil
	case wide:
		return []string{"CPU", "MEM", "DISK"}
	}
	return []string{"CPU", "MEM"}
}

// resourceCells are a row's resource columns: "12%", "310Mi/512Mi" ("!"
// added within 10% of the limit), and DISK in -o wide; "-" when not
// sampled.
func resourceCells(r *telemetry.Resources, flags resourceFlags, wide bool) []string {
	if flags.off {
		return nil
	}
	cpu, mem, disk := "-", "-", "-"
	if r != nil {
		if r.CPUWindow > 0 {
			cpu = percentText(r.CPUPercent)
		}
		mem = bytesText(r.MemoryBytes)
		if r.MemoryLimitBytes > 0 {
			mem += "/" + bytesText(r.MemoryLimitBytes)
		}
		if r.NearMemoryLimit {
			mem += "!"
		}
		if r.DiskBytes != nil {
			disk = bytesText(*r.DiskBytes)
		}
	}
	if wide {
		return []string{cpu, mem, disk}
	}
	return []string{cpu, mem}
}

// percentText is 0.4%, 12%, 180%.
func percentText(p float64) string {
	if p < 10 && p != 0 {
		return fmt.Sprintf("%.1f%%", p)
	}
	return fmt.Sprintf("%.0f%%", p)
}

// bytesText is a size in binary units the way the manifest writes them:
// 512Mi, 1.5Gi, 900Ki, 12B.
func bytesText(n int64) string {
	units := []string{"Ki", "Mi", "Gi", "Ti", "Pi"}
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	v := float64(n)
	for i, u := range units {
		v /= 1024
		if v < 1024 || i == len(units)-1 {
			if v < 10 && v != float64(int64(v)) {
				return fmt.Sprintf("%.1f%s", v, u)
			}
			return fmt.Sprintf("%.0f%s", v, u)
		}
	}
	return ""
}

// resourceMonitor samples a fleet again and again (the console): each
// call is one pass, its CPU measured since the previous call's. It is
// safe for concurrent use; the calls are serialized.
type resourceMonitor struct {
	sampler drivers.ResourceSampler
	desired map[string]telemetry.Limits

	mu   sync.Mutex
	prev *drivers.ResourceSamples
}

// newResourceMonitor returns a monitor of drv, or nil when it cannot
// sample. desired (may be nil) gives the CPU limits the engine's stats
// do not carry.
func newResourceMonitor(drv drivers.Driver, desired *reconciler.Desired) *resourceMonitor {
	s, ok := drv.(drivers.ResourceSampler)
	if !ok {
		return nil
	}
	return &resourceMonitor{sampler: s, desired: desiredLimits(desired)}
}

// Sample is one pass over fleet, per instance. The first call has no CPU
// figure (CPUWindow 0) unless the source carried an earlier reading.
func (m *resourceMonitor) Sample(ctx context.Context, fleet string, _ reconciler.Observations) (map[string]telemetry.Resources, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, err := m.sampler.SampleResources(ctx, fleet)
	if err != nil {
		return nil, err
	}
	out := map[string]telemetry.Resources{}
	for inst, r := range telemetry.InstanceResources(m.prev, cur, m.desired) {
		out[inst] = *r
	}
	m.prev = cur
	return out, nil
}

// freshReadings says whether kept holds a reading recent enough to
// measure CPU from.
func freshReadings(kept map[string]cpuReading, now time.Time) bool {
	for _, r := range kept {
		if age := now.Sub(r.At); age >= 0 && age <= cpuReadingMaxAge {
			return true
		}
	}
	return false
}

// sampleObserved is the deferred probe's one pass: on each backend, the
// running containers the plan observed (no list of the probe's own).
func (p *resourceProbe) sampleObserved(ctx context.Context, observed reconciler.Observations) {
	targets := map[drivers.ResourceSampler]*drivers.ResourceSamples{}
	for backend, obs := range observed {
		s := p.byBackend[backend]
		if s == nil || obs == nil {
			continue
		}
		t := targets[s]
		if t == nil {
			t = &drivers.ResourceSamples{}
			targets[s] = t
		}
		for _, c := range obs.Containers {
			if c.State != drivers.StateRunning {
				continue
			}
			t.Containers = append(t.Containers, telemetry.ContainerSample{ID: c.ID, Name: c.Name,
				Instance: c.Instance(), Component: c.Labels[drivers.LabelComponent]})
		}
	}
	var wg sync.WaitGroup
	for i, s := range p.samplers {
		t := targets[s]
		if t == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.first[i], p.errs[i] = s.SampleResources(ctx, p.fleet, append(p.opts, drivers.WithContainersOf(t))...)
		}()
	}
	wg.Wait()
}
