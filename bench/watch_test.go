package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/test/harness"
)

// healTrials is how many drifts each heal benchmark times (one per instance,
// so no instance is healed twice and no restart backoff applies).
const healTrials = 30

// startWatcher runs `jackin watch` on manifest in the background and waits
// until its first pass is done (the fleet is converged beforehand).
func startWatcher(b *testing.B, state, manifest string, extra ...string) *exec.Cmd {
	b.Helper()
	args := append([]string{"--state-dir", state, "watch", "-f", manifest, "-o", "json"}, extra...)
	cmd := exec.Command(jackinBin, args...)
	log, err := os.Create(filepath.Join(filepath.Dir(manifest), "watch.log"))
	must(b, err)
	cmd.Stdout, cmd.Stderr = log, log
	must(b, cmd.Start())
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	time.Sleep(2 * time.Second) // the first pass: one observe of a converged fleet
	return cmd
}

// startEvents streams container start events carrying label.
func startEvents(b *testing.B, ctx context.Context, cli *client.Client, label string) <-chan events.Message {
	b.Helper()
	res := cli.Events(ctx, client.EventsListOptions{Filters: client.Filters{}.
		Add("type", string(events.ContainerEventType)).
		Add("event", string(events.ActionStart)).
		Add("label", label)})
	out := make(chan events.Message, 256)
	go func() {
		for {
			select {
			case m := <-res.Messages:
				out <- m
			case <-res.Err:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// waitStart waits for the start event of a container whose label key has
// value, and returns when it was received.
func waitStart(b *testing.B, starts <-chan events.Message, key, value string) time.Time {
	b.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m := <-starts:
			if m.Actor.Attributes[key] == value {
				return time.Now()
			}
		case <-timeout:
			b.Fatalf("no start event for %s=%s within 30s", key, value)
		}
	}
}

// percentiles returns p50 and p95 of ds.
func percentiles(ds []time.Duration) (p50, p95, worst time.Duration) {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	idx := func(p float64) int { return min(len(s)-1, int(p*float64(len(s)-1)+0.5)) }
	return s[idx(0.5)], s[idx(0.95)], s[len(s)-1]
}

func reportLatency(b *testing.B, what string, ds []time.Duration, target string) (p50, p95 time.Duration) {
	p50, p95, worst := percentiles(ds)
	b.ReportMetric(float64(p50.Milliseconds()), what+"-p50-ms")
	b.ReportMetric(float64(p95.Milliseconds()), what+"-p95-ms")
	b.Logf("%s over %d trials: p50 %v, p95 %v, max %v (target %s)", what, len(ds), p50.Round(time.Millisecond), p95.Round(time.Millisecond), worst.Round(time.Millisecond), target)
	return p50, p95
}

// appliedFleet writes an n-instance manifest into a new directory and
// applies it; the fleet is removed when the benchmark ends.
func appliedFleet(b *testing.B, fleet string, n int) (dir, state, manifest string) {
	b.Helper()
	dir = b.TempDir()
	manifest = filepath.Join(dir, "fleet.cue")
	must(b, os.WriteFile(manifest, []byte(fleetCUE(fleet, n)), 0o644))
	state = filepath.Join(dir, "state")
	b.Cleanup(func() { harness.RemoveFleetObjects(fleet) })
	run(b, jackinBin, "--state-dir", state, "apply", "-f", manifest, "--parallel", "8")
	return dir, state, manifest
}

// healBench applies an n-instance fleet, starts watch, and times healTrials
// drifts made by drift(instance) until the instance's container starts again.
func healBench(b *testing.B, fleet string, n int, drift func(ctx context.Context, cli *client.Client, instance string, manifest string, i int) error) []time.Duration {
	b.Helper()
	dir, state, manifest := appliedFleet(b, fleet, n)
	startWatcher(b, state, manifest)

	cli, err := client.New(client.FromEnv)
	must(b, err)
	defer cli.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	starts := startEvents(b, ctx, cli, "dev.jackin.fleet="+fleet)
	var lat []time.Duration
	for i := 0; i < healTrials; i++ {
		instance := fmt.Sprintf("i%03d", i*n/healTrials)
		t0 := time.Now()
		must(b, drift(ctx, cli, instance, manifest, i))
		lat = append(lat, waitStart(b, starts, "dev.jackin.instance", instance).Sub(t0))
		if d := lat[len(lat)-1]; d > 5*time.Second {
			out, _ := os.ReadFile(filepath.Join(dir, "watch.log"))
			b.Logf("trial %d (%s) took %v; watch output so far:\n%s", i, instance, d, tail(string(out), 40))
		}
		time.Sleep(300 * time.Millisecond) // let the engine's follow-up events pass
	}
	return lat
}

// BenchmarkWatchHealKill times `docker kill` of an instance until it runs
// again under `jackin watch`, against the engine's own restart policy
// (unless-stopped) recovering from the same kill, in the same run.
func BenchmarkWatchHealKill(b *testing.B) {
	setup(b)
	lat := healBench(b, "bench-heal-kill", healTrials, func(ctx context.Context, cli *client.Client, instance, _ string, _ int) error {
		_, err := cli.ContainerKill(ctx, "jk-bench-heal-kill-"+instance, client.ContainerKillOptions{Signal: "KILL"})
		return err
	})
	reportLatency(b, "watch-heal-kill", lat, "p50 < 300ms, p95 < 1s")
	policy := restartPolicyBaseline(b)
	reportLatency(b, "restart-policy-kill", policy, "the engine's own recovery, for comparison")
	j, _, _ := percentiles(lat)
	r, _, _ := percentiles(policy)
	b.Logf("watch heal / restart policy, p50: %.2f", float64(j)/float64(r))
}

// BenchmarkWatchHealRemove times `docker rm -f` of an instance until a new
// container for it runs.
func BenchmarkWatchHealRemove(b *testing.B) {
	setup(b)
	lat := healBench(b, "bench-heal-rm", healTrials, func(ctx context.Context, cli *client.Client, instance, _ string, _ int) error {
		_, err := cli.ContainerRemove(ctx, "jk-bench-heal-rm-"+instance, client.ContainerRemoveOptions{Force: true})
		return err
	})
	reportLatency(b, "watch-heal-rm", lat, "p50 < 300ms, p95 < 1s")
}

// BenchmarkWatchManifestEdit100 times an env edit of one instance in a
// 100-instance fleet, from the file write until the recreated container runs.
func BenchmarkWatchManifestEdit100(b *testing.B) {
	setup(b)
	const n = 100
	fleet := "bench-heal-edit"
	lat := healBench(b, fleet, n, func(_ context.Context, _ *client.Client, instance, manifest string, i int) error {
		text := fleetCUE(fleet, n)
		num, _ := strconv.Atoi(strings.TrimPrefix(instance, "i"))
		old := fmt.Sprintf("env: {N: \"%d\"}", num)
		text = strings.Replace(text, old, fmt.Sprintf("env: {N: \"%d-edit-%d\"}", num, i), 1)
		// Keep earlier edits: rewrite from the current file.
		cur, err := os.ReadFile(manifest)
		if err != nil {
			return err
		}
		lines := strings.Split(string(cur), "\n")
		for k, l := range strings.Split(text, "\n") {
			if strings.Contains(l, fmt.Sprintf("%q:", instance)) {
				lines[k] = l
			}
		}
		return os.WriteFile(manifest, []byte(strings.Join(lines, "\n")), 0o644)
	})
	reportLatency(b, "watch-manifest-edit", lat, "p95 < 1.5s")
}

// restartPolicyBaseline kills healTrials containers that run with the
// engine's unless-stopped restart policy, each once after it has run for
// more than 10s (so the engine's own backoff is at its minimum), and times
// each until it runs again. The engine restarts in-process, with no API
// round trips: it is the floor for any external healer.
func restartPolicyBaseline(b *testing.B) []time.Duration {
	b.Helper()
	const label = "jackin.bench.restart=1"
	b.Cleanup(func() { harness.RemoveLabelled(label) })
	cli, err := client.New(client.FromEnv)
	must(b, err)
	defer cli.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var names []string
	for i := 0; i < healTrials; i++ {
		name := fmt.Sprintf("jackin-bench-restart-%03d", i)
		res, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
			Name:       name,
			Config:     &container.Config{Image: harness.AgentImage, Cmd: []string{"/agent", "idle"}, Labels: map[string]string{"jackin.bench.restart": "1", "jackin.bench.name": name}},
			HostConfig: &container.HostConfig{RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}},
		})
		must(b, err)
		_, err = cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{})
		must(b, err)
		names = append(names, name)
	}
	time.Sleep(11 * time.Second)
	starts := startEvents(b, ctx, cli, label)
	var lat []time.Duration
	for _, name := range names {
		// `docker kill` counts as a manual stop for the restart policy on
		// this engine (it never restarts), so the process is killed from
		// the host, as a crash or the kernel would.
		info, err := cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
		must(b, err)
		t0 := time.Now()
		must(b, syscall.Kill(info.Container.State.Pid, syscall.SIGKILL))
		lat = append(lat, waitStart(b, starts, "jackin.bench.name", name).Sub(t0))
		time.Sleep(300 * time.Millisecond)
	}
	return lat
}

// BenchmarkWatchRSS200 samples the resident set size of `jackin watch` over
// a 200-instance fleet with a resync every 2s (JACKIN_BENCH_WATCH_MINUTES,
// default 10, sets how long).
func BenchmarkWatchRSS200(b *testing.B) {
	setup(b)
	const n = 200
	minutes := 10.0
	if v := os.Getenv("JACKIN_BENCH_WATCH_MINUTES"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		must(b, err)
		minutes = f
	}
	_, state, manifest := appliedFleet(b, "bench-watch-rss", n)
	cmd := startWatcher(b, state, manifest, "--resync", "2s")

	total := time.Duration(minutes * float64(time.Minute))
	step := min(30*time.Second, total/4)
	var samples []int64
	for elapsed := time.Duration(0); elapsed < total; elapsed += step {
		time.Sleep(step)
		kb, err := rssKB(cmd.Process.Pid)
		must(b, err)
		samples = append(samples, kb)
	}
	first, last, peak := samples[0], samples[len(samples)-1], int64(0)
	for _, s := range samples {
		peak = max(peak, s)
	}
	b.ReportMetric(float64(last)/1024, "rss-final-MB")
	b.ReportMetric(float64(peak)/1024, "rss-peak-MB")
	b.Logf("jackin watch over %d instances, resync every 2s, %.1f min: RSS first sample %.1f MB, peak %.1f MB, final %.1f MB (target < 60 MB, not growing); samples (KB): %v",
		n, minutes, float64(first)/1024, float64(peak)/1024, float64(last)/1024, samples)
}

// rssKB reads VmRSS of a process from /proc.
func rssKB(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
