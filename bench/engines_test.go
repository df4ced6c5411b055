package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/test/harness"
)

// enginesFleet is n instances built from role, spread over the local
// engine and the remote engines r1 and r2 when spread is set, all on the
// local engine otherwise.
func enginesFleet(fleet, role string, n int, spread bool) string {
	var s strings.Builder
	fmt.Fprintf(&s, "apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: %q\n", fleet)
	s.WriteString("engines: {\n  r1: host: \"ssh://root@r1\"\n  r2: host: \"ssh://root@r2\"\n}\n")
	fmt.Fprintf(&s, "defaults: {role: build: context: %q, agent: \"shell\", network: egress: \"none\"}\ninstances: {\n", role)
	engines := []string{"", "r1", "r2"}
	for i := 0; i < n; i++ {
		eng := ""
		if spread && engines[i%3] != "" {
			eng = fmt.Sprintf("engine: %q, ", engines[i%3])
		}
		fmt.Fprintf(&s, "\t\"i%03d\": {%senv: {N: \"%d\"}}\n", i, eng, i)
	}
	s.WriteString("}\n")
	return s.String()
}

// BenchmarkDiffConvergedEngines: a converged diff of N instances spread
// over three engines (the local one and two reached over ssh: containers
// running sshd and their own dockerd) against a converged diff of the same
// N on the local engine alone, in the same run. Target: within 1.5x. The
// remote engines are observed in parallel with the local one; "warm" is
// with jackin's ssh connection to each engine already open and a
// dial-stdio connection ready in its dial keeper (both are kept a minute
// after a command), "cold" pays the ssh handshakes and starts the docker
// CLI on each engine's host.
func BenchmarkDiffConvergedEngines(b *testing.B) {
	setup(b)
	if err := harness.BuildRemoteEngineImage(); err != nil {
		b.Fatal(err)
	}
	const n, trials = 30, 7
	dir := b.TempDir()
	engines, err := harness.StartRemoteEngines(b.TempDir(), "r1", "r2")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(engines.Stop)
	sshEnv := "JACKIN_SSH_COMMAND=" + engines.SSHCommand()

	role := filepath.Join(dir, "role")
	must(b, os.MkdirAll(role, 0o755))
	must(b, harness.GoBuild(filepath.Join(role, "agent"), "./examples/offline/role/agent"))
	must(b, os.WriteFile(filepath.Join(role, "Dockerfile"), []byte("FROM scratch\nCOPY agent /agent\nENTRYPOINT [\"/agent\"]\nCMD [\"idle\"]\n"), 0o644))
	one, three := filepath.Join(dir, "one.cue"), filepath.Join(dir, "three.cue")
	must(b, os.WriteFile(one, []byte(enginesFleet("bench-eng1", role, n, false)), 0o644))
	must(b, os.WriteFile(three, []byte(enginesFleet("bench-eng3", role, n, true)), 0o644))
	b.Cleanup(func() { harness.RemoveFleetObjects("bench-eng1"); harness.RemoveFleetObjects("bench-eng3") })

	state := filepath.Join(dir, "state")
	jackin := func(args ...string) (time.Duration, string) {
		b.Helper()
		return runWithEnv(b, []string{sshEnv}, jackinBin, append([]string{"--state-dir", state}, args...)...)
	}
	jackin("apply", "-f", one, "--parallel", "8")
	jackin("apply", "-f", three, "--parallel", "8")
	diff := func(manifest string) time.Duration {
		d, out := jackin("diff", "-f", manifest)
		if !strings.Contains(out, "No changes.") {
			b.Fatalf("fleet not converged:\n%s", out)
		}
		return d
	}
	closeMux := func() {
		for _, name := range engines.Names {
			_ = exec.Command("ssh", "-F", filepath.Join(engines.Dir, "ssh_config"), "-o", "ControlPath="+muxDir()+"/%C", "-O", "exit", name).Run()
		}
	}
	var oneT, threeT, coldT []time.Duration
	// A pause after each diff: the dial keepers replace the connection a
	// command used once it is done with it, and that work (an ssh and a
	// docker CLI started per engine) must not fall on the next diff,
	// whichever it is.
	settle := func() { time.Sleep(time.Second) }
	for i := 0; i < trials; i++ {
		// Interleaved, so load on the machine falls on both alike.
		oneT = append(oneT, diff(one))
		settle()
		threeT = append(threeT, diff(three))
		settle()
	}
	for i := 0; i < 3; i++ {
		closeMux()
		settle()
		coldT = append(coldT, diff(three))
		settle()
	}
	o, t, c := median(oneT), median(threeT), median(coldT)
	b.ReportMetric(float64(o.Milliseconds()), "one-engine-ms")
	b.ReportMetric(float64(t.Milliseconds()), "three-engines-ms")
	b.ReportMetric(float64(c.Milliseconds()), "three-engines-cold-ms")
	b.ReportMetric(float64(t)/float64(o), "ratio-x")
	b.Logf("converged diff of %d instances, median of %d: one engine %v, three engines (local + 2 over ssh) %v: %.2fx (target <= 1.5x); with new ssh connections (cold) %v: %.2fx",
		n, trials, o, t, float64(t)/float64(o), c, float64(c)/float64(o))
}

// runWithEnv is run with extra environment variables.
func runWithEnv(b *testing.B, env []string, name string, args ...string) (time.Duration, string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	elapsed := time.Since(start)
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	return elapsed, string(out)
}

// muxDir is jackin's ssh control socket directory (drivers/docker).
func muxDir() string { return filepath.Join(os.TempDir(), fmt.Sprintf("jackin-ssh-%d", os.Getuid())) }
