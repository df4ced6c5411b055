package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/docker"
	"github.com/jackin-dev/jackin/telemetry"
)

// Benchmarks of resource telemetry (issue 16): a sampling pass over a
// fleet of running agents, jackin's own CPU while sampling at the default
// interval, and jackin get with and without telemetry.

// telemetryFleet applies n running agents (agent "shell", the runtime
// image, sleep 1d, a 32Mi memory limit) as fleet name.
func telemetryFleet(b *testing.B, name string, n int) *agentFleet {
	b.Helper()
	img := runtimeImage(b)
	var inst strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&inst, "\t\"t%03d\": {role: image: %q, agent: \"shell\", command: [\"/bin/sleep\", \"1d\"], resources: memory: \"32Mi\"}\n", i, img)
	}
	return applyAgentFleet(b, name, inst.String())
}

// cpuTime is this process's CPU time so far (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func durPercentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

// BenchmarkTelemetrySample200 samples 200 running agents
// (JACKIN_BENCH_TELEMETRY_N changes that) in process, through the Docker
// driver: 30 passes back to back (one list call, then the cgroup files;
// target: one pass under 200 ms), then a sampling loop at
// telemetry.DefaultSampleInterval for 30 s (JACKIN_BENCH_TELEMETRY_SECONDS)
// measuring this process's CPU time over the wall time (target: under 2%
// of one core), then one pass through the engine's stats API for
// comparison.
func BenchmarkTelemetrySample200(b *testing.B) {
	setup(b)
	n := envInt("JACKIN_BENCH_TELEMETRY_N", 200)
	loopFor := time.Duration(envInt("JACKIN_BENCH_TELEMETRY_SECONDS", 30)) * time.Second
	f := telemetryFleet(b, "bench-tel-sample", n)
	ctx := context.Background()
	d, err := docker.New(ctx, logr.Discard())
	must(b, err)
	defer d.Close()
	must(b, d.Ping(ctx))

	// The supervisors start their agents a moment after the apply.
	var first *drivers.ResourceSamples
	deadline := time.Now().Add(60 * time.Second)
	for {
		first, err = d.SampleResources(ctx, f.name)
		must(b, err)
		if len(first.Containers) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(first.Containers) != n {
		b.Fatalf("a pass found %d running containers, want %d", len(first.Containers), n)
	}
	b.Logf("first pass (finds the cgroup directories, reads the limits): %v, source %s", first.Took.Round(time.Microsecond), first.Source)

	const passes = 30
	var took, cpu []time.Duration
	callsBefore := d.Calls()
	prev := first
	for i := 0; i < passes; i++ {
		c0, t0 := cpuTime(), time.Now()
		cur, err := d.SampleResources(ctx, f.name)
		must(b, err)
		res := telemetry.InstanceResources(prev, cur, nil)
		took, cpu = append(took, time.Since(t0)), append(cpu, cpuTime()-c0)
		if len(res) != n || cur.Source != telemetry.SourceCgroup && i == 0 {
			b.Logf("pass %d: %d instances, source %s", i, len(res), cur.Source)
		}
		prev = cur
	}
	calls := map[string]int{}
	for k, v := range d.Calls() {
		if v -= callsBefore[k]; v > 0 {
			calls[k] = v
		}
	}
	p50, pmax := median(took), durPercentile(took, 1)
	b.ReportMetric(float64(p50.Microseconds())/1000, "pass-p50-ms")
	b.ReportMetric(float64(pmax.Microseconds())/1000, "pass-max-ms")
	b.ReportMetric(float64(median(cpu).Microseconds())/1000, "pass-cpu-ms")
	b.Logf("one pass over %d running agents, %d passes back to back: p50 %v, p90 %v, max %v (target < 200 ms); CPU per pass p50 %v; source %s; engine calls for %d passes: %v",
		n, passes, p50.Round(time.Microsecond), durPercentile(took, 0.9).Round(time.Microsecond), pmax.Round(time.Microsecond),
		median(cpu).Round(time.Microsecond), prev.Source, passes, calls)

	// The loop a long-running view runs: a full pass (list included)
	// every DefaultSampleInterval, CPU figures against the previous pass.
	interval := telemetry.DefaultSampleInterval
	tick := time.NewTicker(interval)
	c0, w0 := cpuTime(), time.Now()
	loops := 0
	for time.Since(w0) < loopFor {
		<-tick.C
		cur, err := d.SampleResources(ctx, f.name)
		must(b, err)
		_ = telemetry.InstanceResources(prev, cur, nil)
		prev = cur
		loops++
	}
	tick.Stop()
	wall, used := time.Since(w0), cpuTime()-c0
	pct := float64(used) / float64(wall) * 100
	b.ReportMetric(pct, "loop-cpu-%-of-core")
	b.Logf("sampling loop every %v for %v (%d passes): jackin's CPU %v = %.2f%% of one core (target < 2%%)",
		interval, wall.Round(time.Millisecond), loops, used.Round(time.Millisecond), pct)

	// For comparison: the same pass through the engine's stats API.
	t0 := time.Now()
	viaStats, err := d.SampleResources(ctx, f.name, drivers.WithSource(telemetry.SourceEngineStats))
	must(b, err)
	st := time.Since(t0)
	b.ReportMetric(float64(st.Milliseconds()), "engine-stats-pass-ms")
	b.Logf("the same pass through the engine's one-shot stats (%d requests, 64 at a time): %v, %.0fx the cgroup pass",
		len(viaStats.Containers), st.Round(time.Millisecond), float64(st)/float64(p50))
}

// BenchmarkTelemetryGet100 times `jackin get -o json` on 100 running
// agents with resource telemetry (two cgroup passes, the first while get
// plans) against `jackin get -o json --no-telemetry`, trials interleaved
// (target: within 1.5x), and `get -o wide` (disk: writable layers and
// volumes) for reference.
func BenchmarkTelemetryGet100(b *testing.B) {
	setup(b)
	const n, trials = 100, 9
	f := telemetryFleet(b, "bench-tel-get", n)
	sampled := func(out []byte) (withRes int, source string) {
		var list struct {
			Items []struct {
				Resources *struct {
					Source string `json:"source"`
				} `json:"resources"`
			} `json:"items"`
		}
		if err := json.Unmarshal(out, &list); err != nil {
			b.Fatalf("jackin get -o json: %v\n%s", err, out)
		}
		for _, it := range list.Items {
			if it.Resources != nil {
				withRes++
				source = it.Resources.Source
			}
		}
		return withRes, source
	}
	// Until every supervisor runs its agent, and to warm the page cache.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, out := f.jackinTimed(b, "get", "-f", f.manifest, "-o", "json")
		if k, _ := sampled(out); k == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	f.jackinTimed(b, "get", "-f", f.manifest, "-o", "json", "--no-telemetry")
	var with, without []time.Duration
	var k int
	var source string
	for i := 0; i < trials; i++ {
		if i%2 == 0 {
			d, out := f.jackinTimed(b, "get", "-f", f.manifest, "-o", "json")
			with, without = append(with, d), append(without, mustTime(f.jackinTimed(b, "get", "-f", f.manifest, "-o", "json", "--no-telemetry")))
			k, source = sampled(out)
		} else {
			without = append(without, mustTime(f.jackinTimed(b, "get", "-f", f.manifest, "-o", "json", "--no-telemetry")))
			d, out := f.jackinTimed(b, "get", "-f", f.manifest, "-o", "json")
			with = append(with, d)
			k, source = sampled(out)
		}
	}
	if k != n {
		b.Errorf("get -o json: %d of %d items have resources", k, n)
	}
	// Cold: no recent get's readings (the first get of a while), so get
	// takes its own two passes, the second at least 50ms after the first.
	var cold, coldWithout []time.Duration
	for i := 0; i < 5; i++ {
		os.Remove(filepath.Join(f.state, "telemetry", f.name+".cpu.json"))
		d, _ := f.jackinTimed(b, "get", "-f", f.manifest, "-o", "json")
		cold = append(cold, d)
		coldWithout = append(coldWithout, mustTime(f.jackinTimed(b, "get", "-f", f.manifest, "-o", "json", "--no-telemetry")))
	}
	var wides []time.Duration
	for i := 0; i < 3; i++ {
		d, out := f.jackinTimed(b, "get", "-f", f.manifest, "-o", "wide")
		if !strings.Contains(string(out), "DISK") {
			b.Errorf("get -o wide has no DISK column:\n%s", tail(string(out), 5))
		}
		wides = append(wides, d)
	}
	w, wo, wd := median(with), median(without), median(wides)
	ratio := float64(w) / float64(wo)
	b.ReportMetric(float64(w.Milliseconds()), "get-telemetry-ms")
	b.ReportMetric(float64(wo.Milliseconds()), "get-no-telemetry-ms")
	b.ReportMetric(ratio, "telemetry/none-x")
	b.ReportMetric(float64(wd.Milliseconds()), "get-wide-ms")
	b.Logf("jackin get -o json on %d running agents, median of %d interleaved: with telemetry %v (source %s), --no-telemetry %v: %.2fx (target <= 1.5x); get -o wide (disk too), median of 3: %v",
		n, trials, w.Round(time.Millisecond), source, wo.Round(time.Millisecond), ratio, wd.Round(time.Millisecond))
	b.Logf("all trials: with %v; without %v", roundAll(with), roundAll(without))
	c, cw := median(cold), median(coldWithout)
	b.ReportMetric(float64(float64(c)/float64(cw)), "cold-telemetry/none-x")
	b.Logf("cold (no readings kept from a get in the last 10s: two passes), median of 5: %v against %v: %.2fx",
		c.Round(time.Millisecond), cw.Round(time.Millisecond), float64(c)/float64(cw))
}

func mustTime(d time.Duration, _ []byte) time.Duration { return d }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
