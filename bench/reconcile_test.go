// Package bench measures jackin against what users would pick instead, in the
// same run: docker-compose and a raw loop of engine API calls. Figures are
// ratios measured side by side, never timed assertions. Run with `make bench`.
package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/test/harness"
)

var (
	setupOnce sync.Once
	jackinBin string
	setupErr  error
)

// setup builds jackin and the agent images once, or skips without an engine.
func setup(b *testing.B) {
	b.Helper()
	if err := harness.EngineError(); err != nil {
		b.Skipf("no Docker engine: %v", err)
	}
	setupOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jackin-bench-")
		if err != nil {
			setupErr = err
			return
		}
		if jackinBin, setupErr = harness.BuildJackin(dir); setupErr != nil {
			return
		}
		setupErr = harness.BuildAgentImages(dir)
	})
	if setupErr != nil {
		b.Fatal(setupErr)
	}
}

func fleetCUE(fleet string, n int) string {
	var s strings.Builder
	fmt.Fprintf(&s, "apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: %q\ninstances: {\n", fleet)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&s, "\t\"i%03d\": {role: image: %q, command: [\"/agent\", \"idle\"], env: {N: \"%d\"}}\n", i, harness.AgentImage, i)
	}
	s.WriteString("}\n")
	return s.String()
}

// composeYAML is the equivalent compose project: one service and one network
// per instance, as jackin renders them, each network with an explicit /28
// (the engine's default pools hold only about thirty networks).
func composeYAML(n int, pool int) string {
	var s strings.Builder
	s.WriteString("version: \"2.4\"\nservices:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&s, "  i%03d:\n    image: %s\n    command: [\"/agent\", \"idle\"]\n    environment:\n      N: \"%d\"\n    networks: [n%03d]\n", i, harness.AgentImage, i, i)
	}
	s.WriteString("networks:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&s, "  n%03d:\n    ipam:\n      config: [{subnet: %s}]\n", i, subnet(pool, i))
	}
	return s.String()
}

func run(b *testing.B, name string, args ...string) (time.Duration, string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, name, args...)
	// Compose gets the parallelism jackin uses; unbounded, compose 1.x
	// stalls on this engine with a hundred services.
	cmd.Env = append(os.Environ(), "COMPOSE_PARALLEL_LIMIT=8")
	out, err := cmd.CombinedOutput()
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		b.Fatalf("%s %v did not finish in 10 minutes:\n%s", name, args, out)
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	return elapsed, string(out)
}

// runBounded runs a command with a deadline and reports failure instead of
// failing the benchmark.
func runBounded(limit time.Duration, name string, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "COMPOSE_PARALLEL_LIMIT=8")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return 0, fmt.Errorf("did not finish within %s", limit)
	}
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	return time.Since(start), nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func cleanupCompose(b *testing.B, file, project string) {
	b.Helper()
	_, _ = exec.Command("docker-compose", "-f", file, "-p", project, "down", "--remove-orphans", "-t", "1").CombinedOutput()
}

// BenchmarkDiffConverged100 times `jackin diff` on a converged 100-instance
// fleet against `docker-compose up -d` with nothing to change.
func BenchmarkDiffConverged100(b *testing.B) {
	setup(b)
	if _, err := exec.LookPath("docker-compose"); err != nil {
		b.Skip("docker-compose is not installed (apt-get install docker-compose)")
	}
	const n, trials = 100, 5
	dir := b.TempDir()
	fleet := "bench-diff"
	project := "jackinbenchdiff"
	manifest := filepath.Join(dir, "fleet.cue")
	compose := filepath.Join(dir, "docker-compose.yml")
	must(b, os.WriteFile(manifest, []byte(fleetCUE(fleet, n)), 0o644))
	must(b, os.WriteFile(compose, []byte(composeYAML(n, 215)), 0o644))
	state := filepath.Join(dir, "state")
	b.Cleanup(func() { harness.RemoveFleetObjects(fleet); cleanupCompose(b, compose, project) })

	// One side at a time, each with 100 containers on the engine: with both
	// fleets up at once, compose 1.x hangs on this engine.
	run(b, jackinBin, "--state-dir", state, "apply", "-f", manifest, "--parallel", "8")
	var jackinTimes, composeTimes []time.Duration
	var calls string
	for i := 0; i < trials; i++ {
		d, out := run(b, jackinBin, "--state-dir", state, "diff", "-f", manifest, "-v", "1", "--log-format", "json")
		if !strings.Contains(out, "No changes.") {
			b.Fatalf("fleet not converged:\n%s", out)
		}
		jackinTimes = append(jackinTimes, d)
		calls = engineCallsLine(out)
	}
	harness.RemoveFleetObjects(fleet)
	// compose 1.x intermittently hangs creating a hundred services at once
	// on this engine; create them ten at a time, then time the full no-op up.
	for start := 0; start < n; start += 10 {
		args := []string{"-f", compose, "-p", project, "up", "-d"}
		for i := start; i < start+10 && i < n; i++ {
			args = append(args, fmt.Sprintf("i%03d", i))
		}
		var err error
		for try := 0; try < 3; try++ {
			if _, err = runBounded(90*time.Second, "docker-compose", args...); err == nil {
				break
			}
			b.Logf("docker-compose batch from i%03d, try %d: %v", start, try+1, err)
		}
		if err != nil {
			b.Logf("docker-compose could not create the baseline project; jackin diff median %v, engine calls %s", median(jackinTimes), calls)
			b.Skip("no docker-compose baseline on this engine")
		}
	}
	for i := 0; i < trials; i++ {
		d, err := runBounded(2*time.Minute, "docker-compose", "-f", compose, "-p", project, "up", "-d")
		if err != nil {
			b.Fatalf("docker-compose up -d with nothing to change: %v", err)
		}
		composeTimes = append(composeTimes, d)
	}
	j, c := median(jackinTimes), median(composeTimes)
	b.ReportMetric(float64(j.Milliseconds()), "jackin-diff-ms")
	b.ReportMetric(float64(c.Milliseconds()), "compose-up-noop-ms")
	b.ReportMetric(float64(c)/float64(j), "speedup-x")
	b.Logf("converged %d instances, median of %d: jackin diff %v, docker-compose up -d (no change) %v: jackin is %.1fx faster (target >= 5x)", n, trials, j, c, float64(c)/float64(j))
	b.Logf("engine calls of one jackin diff: %s", calls)
}

// BenchmarkColdApply50 times a cold `jackin apply` of 50 instances against a
// raw loop of engine API calls doing the same work (network create, container
// create, start; 8 at a time) and against `docker-compose up -d`.
func BenchmarkColdApply50(b *testing.B) {
	setup(b)
	const n, parallel, trials = 50, 8, 3
	dir := b.TempDir()
	fleet := "bench-cold"
	project := "jackinbenchcold"
	manifest := filepath.Join(dir, "fleet.cue")
	compose := filepath.Join(dir, "docker-compose.yml")
	must(b, os.WriteFile(manifest, []byte(fleetCUE(fleet, n)), 0o644))
	must(b, os.WriteFile(compose, []byte(composeYAML(n, 216)), 0o644))
	hasCompose := true
	if _, err := exec.LookPath("docker-compose"); err != nil {
		hasCompose = false
	}
	rawLabel := "jackin.bench.raw=1"
	b.Cleanup(func() {
		harness.RemoveFleetObjects(fleet)
		harness.RemoveLabelled(rawLabel)
		if hasCompose {
			cleanupCompose(b, compose, project)
		}
	})
	cli, err := client.New(client.FromEnv)
	must(b, err)
	defer cli.Close()

	var jackinTimes, rawTimes, composeTimes []time.Duration
	for i := 0; i < trials; i++ {
		state := filepath.Join(dir, fmt.Sprintf("state-%d", i))
		d, out := run(b, jackinBin, "--state-dir", state, "apply", "-f", manifest, "--parallel", fmt.Sprint(parallel))
		if !strings.Contains(out, fmt.Sprintf("%d succeeded, 0 failed", n)) {
			b.Fatalf("jackin apply did not create %d instances:\n%s", n, out)
		}
		jackinTimes = append(jackinTimes, d)
		harness.RemoveFleetObjects(fleet)

		start := time.Now()
		must(b, rawLoop(context.Background(), cli, n, parallel))
		rawTimes = append(rawTimes, time.Since(start))
		harness.RemoveLabelled(rawLabel)

		if hasCompose {
			if d, err := runBounded(3*time.Minute, "docker-compose", "-f", compose, "-p", project, "up", "-d"); err != nil {
				b.Logf("docker-compose up -d of %d services: %v (not counted)", n, err)
			} else {
				composeTimes = append(composeTimes, d)
			}
			cleanupCompose(b, compose, project)
		}
	}
	j, r := median(jackinTimes), median(rawTimes)
	b.ReportMetric(float64(j.Milliseconds()), "jackin-apply-ms")
	b.ReportMetric(float64(r.Milliseconds()), "raw-loop-ms")
	b.ReportMetric(float64(j)/float64(r), "vs-raw-x")
	msg := fmt.Sprintf("cold apply of %d instances, parallel %d, median of %d: jackin %v, raw API loop %v: ratio %.2f (target <= 1.15)", n, parallel, trials, j, r, float64(j)/float64(r))
	if len(composeTimes) > 0 {
		c := median(composeTimes)
		b.ReportMetric(float64(c.Milliseconds()), "compose-up-ms")
		msg += fmt.Sprintf("; docker-compose up -d %v", c)
	}
	b.Log(msg)
}

// rawLoop is the physical limit: per instance, create a network, create a
// container on it and start it, with the same parallelism as jackin.
func rawLoop(ctx context.Context, cli *client.Client, n, parallel int) error {
	sem := make(chan struct{}, parallel)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			name := fmt.Sprintf("jackin-raw-%03d", i)
			labels := map[string]string{"jackin.bench.raw": "1"}
			ipam := &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix(subnet(217, i))}}}
			if _, err := cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: labels, IPAM: ipam}); err != nil {
				errs <- err
				return
			}
			res, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
				Name:             name,
				Config:           &container.Config{Image: harness.AgentImage, Cmd: []string{"/agent", "idle"}, Env: []string{fmt.Sprintf("N=%d", i)}, Labels: labels},
				HostConfig:       &container.HostConfig{NetworkMode: container.NetworkMode(name)},
				NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{name: {}}},
			})
			if err != nil {
				errs <- err
				return
			}
			if _, err := cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return nil
}

// subnet is the i-th /28 of 10.<second>.0.0/16, for the comparison runs
// (jackin allocates its own from 10.213.0.0/16).
func subnet(second, i int) string {
	return fmt.Sprintf("10.%d.%d.%d/28", second, i/16, (i%16)*16)
}

func engineCallsLine(out string) string {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "engine calls" {
			delete(rec, "ts")
			delete(rec, "level")
			delete(rec, "msg")
			delete(rec, "logger")
			b, _ := json.Marshal(rec)
			return string(b)
		}
	}
	return "(no engine calls line)"
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
