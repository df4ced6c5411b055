package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/test/harness"
)

// The OrbStack benchmarks run against the orb stand-in (test/harness/orb):
// a machine is a container of the local engine running its own dockerd,
// so both sides pay the same machine start-up and the figures compare
// what jackin adds to the steps an operator would type.

// orbBench builds the stand-in and the private-daemon image its machines
// run, and returns the environment that puts it on PATH.
func orbBench(b *testing.B) (env []string, orbBin, logPath string) {
	b.Helper()
	setup(b)
	if err := harness.BuildDindImage(); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	bin, err := harness.BuildOrb(dir)
	if err != nil {
		b.Fatal(err)
	}
	logPath = filepath.Join(dir, "orb.log")
	mac := filepath.Join(dir, "mac")
	must(b, os.MkdirAll(mac, 0o755))
	env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"), "ORB_SIM_LOG="+logPath, "ORB_SIM_MAC="+mac)
	return env, bin, logPath
}

// runEnv runs a command with env and fails the benchmark when it fails.
func runEnv(b *testing.B, env []string, stdin string, name string, args ...string) (time.Duration, string) {
	b.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return d, string(out)
}

// BenchmarkOrbStackFirstApply: `jackin apply` of one OrbStack instance
// (machine with cloud-init, wait for its Docker, image streamed in, agent
// created and started) against the same steps by hand with the orb and
// docker CLIs (orb create --isolated --isolate-network -c, polling
// `orb -m NAME -u root docker version`, `docker save | orb -m NAME -u root
// docker load`, `orb -m NAME -u root docker run -d`: root, as the
// machine's default user cannot use its Docker). Seven trials each, alternating; the ratio is
// the median of each back-to-back pair's.
// Target: at most 1.15x. Then a converged diff of the instance, which must
// make no orb create and no image transfer.
func BenchmarkOrbStackFirstApply(b *testing.B) {
	env, orb, logPath := orbBench(b)
	const trials = 7
	var jk, raw []time.Duration
	ud := filepath.Join(b.TempDir(), "user-data.yaml")
	must(b, os.WriteFile(ud, []byte("#cloud-config\npackages: [docker.io]\nruncmd:\n  - [mkdir, -p, /jackin]\n"), 0o644))
	for i := 0; i < trials; i++ {
		fleet := fmt.Sprintf("borb%d%d", os.Getpid()%1000, i)
		dir := b.TempDir()
		m := filepath.Join(dir, "fleet.cue")
		body := fmt.Sprintf("apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: %q\ninstances: a: {backend: \"orbstack-isolated\", role: image: %q, command: [\"/agent\", \"idle\"]}\n", fleet, harness.AgentImage)
		must(b, os.WriteFile(m, []byte(body), 0o644))
		state := filepath.Join(dir, "state")
		d, _ := runEnv(b, env, "", jackinBin, "--state-dir", state, "apply", "-f", m)
		jk = append(jk, d)
		if i == 0 {
			creates, loads := harness.CountOrbCalls(logPath, "create"), harness.OrbImageLoads("jk-"+fleet+"-a")
			dd, out := runEnv(b, env, "", jackinBin, "--state-dir", state, "diff", "-f", m)
			c2, l2 := harness.CountOrbCalls(logPath, "create"), harness.OrbImageLoads("jk-"+fleet+"-a")
			if c2 != creates || l2 != loads {
				b.Errorf("converged diff: orb creates %d→%d, image loads %d→%d; want none", creates, c2, loads, l2)
			}
			b.Logf("converged diff of the OrbStack instance: %v, %d orb creates and %d image transfers during it (%s)", dd.Round(time.Millisecond), c2-creates, l2-loads, strings.TrimSpace(out))
		}
		_, _ = runEnv(b, env, "", jackinBin, "--state-dir", state, "delete", "--fleet", fleet)
		harness.RemoveOrbMachines("jk-" + fleet + "-")

		name := "jk-" + fleet + "raw"
		start := time.Now()
		runEnv(b, env, "", orb, "create", "--isolated", "--isolate-network", "-c", ud, "debian:bookworm", name)
		deadline := time.Now().Add(2 * time.Minute)
		delay := 100 * time.Millisecond
		for {
			cmd := exec.Command(orb, "-m", name, "-u", "root", "docker", "version")
			cmd.Env = env
			if cmd.Run() == nil {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("machine %s: docker never answered", name)
			}
			time.Sleep(delay)
			if delay < 2*time.Second {
				delay *= 2
			}
		}
		pipe := exec.Command("sh", "-c", "docker save "+harness.AgentImage+" | "+orb+" -m "+name+" -u root docker load -q")
		pipe.Env = env
		if out, err := pipe.CombinedOutput(); err != nil {
			b.Fatalf("docker save | orb docker load: %v\n%s", err, out)
		}
		runEnv(b, env, "", orb, "-m", name, "-u", "root", "docker", "run", "-d", "--name", name, harness.AgentImage, "/agent", "idle")
		raw = append(raw, time.Since(start))
		harness.RemoveOrbMachines(name)
	}
	mj, mr := median(jk), median(raw)
	ratio, ratios := pairedRatio(jk, raw)
	b.ReportMetric(float64(mj.Milliseconds()), "jackin-ms")
	b.ReportMetric(float64(mr.Milliseconds()), "by-hand-ms")
	b.ReportMetric(ratio, "ratio")
	b.Logf("first apply of one OrbStack instance: jackin median %v %v; by hand with orb and docker median %v %v; ratio %.2f, the median of each trial's pair %v (target <= 1.15; ratio of the medians %.2f)",
		mj, roundAll(jk), mr, roundAll(raw), ratio, ratios, float64(mj)/float64(mr))
}

// pairedRatio is the median of a[i]/b[i], each pair measured back to back,
// and the ratios: the machine's speed drifts between trials (the same
// by-hand steps took 3.4 s and 5.0 s in one run), and a pair shares its
// moment of it where the two medians need not.
func pairedRatio(a, b []time.Duration) (float64, []string) {
	rs := make([]float64, len(a))
	out := make([]string, len(a))
	for i := range a {
		rs[i] = float64(a[i]) / float64(b[i])
		out[i] = strconv.FormatFloat(rs[i], 'f', 2, 64)
	}
	sorted := slices.Clone(rs)
	slices.Sort(sorted)
	return sorted[len(sorted)/2], out
}

var transferLine = regexp.MustCompile(`"image transferred".*"bytes":(\d+).*"ms":(\d+)`)

// BenchmarkOrbStackImageTransfer: jackin's image transfer into a machine
// (the host engine's image save streamed into the machine engine's image
// load over jackin's `orb -m NAME -u root docker system dial-stdio`
// connection, timed by jackin's own -v 2 log line) against a raw `docker
// save | orb -m NAME -u root docker load` pipe of the same image into the
// same machine after the image is removed there. Five trials each,
// alternating; the ratio is the median of each back-to-back pair's.
// Target: at most 1.1x.
func BenchmarkOrbStackImageTransfer(b *testing.B) {
	env, orb, _ := orbBench(b)
	fleet := fmt.Sprintf("borbx%d", os.Getpid()%1000)
	dir := b.TempDir()
	m := filepath.Join(dir, "fleet.cue")
	body := fmt.Sprintf("apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: %q\ninstances: a: {backend: \"orbstack-isolated\", role: image: %q, command: [\"/agent\", \"idle\"]}\n", fleet, harness.AgentImage)
	must(b, os.WriteFile(m, []byte(body), 0o644))
	state := filepath.Join(dir, "state")
	machine := "jk-" + fleet + "-a"
	b.Cleanup(func() {
		_, _ = exec.Command(jackinBin, "--state-dir", state, "delete", "--fleet", fleet).CombinedOutput()
		harness.RemoveOrbMachines("jk-" + fleet + "-")
	})
	runEnv(b, env, "", jackinBin, "--state-dir", state, "apply", "-f", m)
	// Out of the machine's way: the agent container and the image it
	// holds, so each trial loads the whole image again.
	clear := func() {
		runEnv(b, env, "", orb, "-m", machine, "-u", "root", "docker", "rm", "-f", machine)
		runEnv(b, env, "", orb, "-m", machine, "-u", "root", "docker", "rmi", "-f", harness.AgentImage)
	}
	const trials = 5
	var jk, raw []time.Duration
	var size int64
	for i := 0; i < trials; i++ {
		clear()
		_, out := runEnv(b, env, "", jackinBin, "--state-dir", state, "apply", "-f", m, "-v", "2")
		mm := transferLine.FindStringSubmatch(out)
		if mm == nil {
			b.Fatalf("apply after the image was removed in the machine logged no transfer:\n%s", out)
		}
		size, _ = strconv.ParseInt(mm[1], 10, 64)
		ms, _ := strconv.Atoi(mm[2])
		jk = append(jk, time.Duration(ms)*time.Millisecond)

		clear()
		pipe := exec.Command("sh", "-c", "docker save "+harness.AgentImage+" | "+orb+" -m "+machine+" -u root docker load -q")
		pipe.Env = env
		start := time.Now()
		if out, err := pipe.CombinedOutput(); err != nil {
			b.Fatalf("docker save | orb docker load: %v\n%s", err, out)
		}
		raw = append(raw, time.Since(start))
	}
	mj, mr := median(jk), median(raw)
	ratio, ratios := pairedRatio(jk, raw)
	b.ReportMetric(float64(mj.Milliseconds()), "jackin-ms")
	b.ReportMetric(float64(mr.Milliseconds()), "pipe-ms")
	b.ReportMetric(ratio, "ratio")
	b.Logf("image transfer of %d bytes into a machine: jackin median %v %v; docker save | orb -m NAME -u root docker load median %v %v; ratio %.2f, the median of each trial's pair %v (target <= 1.1; ratio of the medians %.2f)",
		size, mj, roundAll(jk), mr, roundAll(raw), ratio, ratios, float64(mj)/float64(mr))
}
