package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/test/harness"
)

// BenchmarkPrivateDockerCreate: `jackin apply` of one instance with a
// private Docker daemon (network, data volume, certificates, the daemon,
// the wait until it answers over TLS, the agent), against the same done by
// hand with the docker CLI in the same run (network, volume, the daemon on
// its unix socket only, polling `docker version` inside it, agent; TCP
// without TLS would make dockerd wait 15 s on purpose, and certificates by
// hand are no one's quick path). Five trials each,
// alternating; medians. No target in the issue: the figure is the cost of
// a private daemon at create.
func BenchmarkPrivateDockerCreate(b *testing.B) {
	setup(b)
	if err := harness.BuildDindImage(); err != nil {
		b.Fatal(err)
	}
	img := harness.DindImage
	sleep := `["sh", "-c", "trap exit TERM; sleep infinity & wait"]`
	const trials = 5
	var jk, raw []time.Duration
	for i := 0; i < trials; i++ {
		fleet := fmt.Sprintf("bdind%d%d", os.Getpid()%1000, i)
		dir := b.TempDir()
		m := filepath.Join(dir, "fleet.cue")
		body := fmt.Sprintf("apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: %q\ninstances: a: {role: image: %q, command: %s, docker: \"private\", dockerDaemon: {image: %q, privilege: \"capabilities\"}}\n", fleet, img, sleep, img)
		must(b, os.WriteFile(m, []byte(body), 0o644))
		state := filepath.Join(dir, "state")
		d, _ := run(b, jackinBin, "--state-dir", state, "apply", "-f", m)
		jk = append(jk, d)
		_, _ = run(b, jackinBin, "--state-dir", state, "delete", "--fleet", fleet)
		harness.RemoveFleetObjects(fleet)

		d, err := rawPrivateDocker(fleet+"raw", img)
		harness.RemoveLabelled("jackin.bench.raw=" + fleet + "raw")
		if err != nil {
			b.Fatal(err)
		}
		raw = append(raw, d)
	}
	mj, mr := median(jk), median(raw)
	b.ReportMetric(float64(mj.Milliseconds()), "jackin-ms")
	b.ReportMetric(float64(mr.Milliseconds()), "by-hand-ms")
	b.ReportMetric(float64(mj)/float64(mr), "ratio")
	b.Logf("create of one instance with a private daemon: jackin apply median %v %v; by hand with the docker CLI (unix socket, no TLS) median %v %v; ratio %.2f",
		mj, jk, mr, raw, float64(mj)/float64(mr))
}

// rawPrivateDocker creates what a private instance is, by hand, and
// returns how long until the agent runs with its daemon answering.
func rawPrivateDocker(name, img string) (time.Duration, error) {
	label := "jackin.bench.raw=" + name
	docker := func(args ...string) error {
		if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("docker %s: %v: %s", strings.Join(args[:min(3, len(args))], " "), err, out)
		}
		return nil
	}
	start := time.Now()
	if err := docker("network", "create", "--label", label, name); err != nil {
		return 0, err
	}
	if err := docker("volume", "create", "--label", label, name+"-data"); err != nil {
		return 0, err
	}
	args := []string{"run", "-d", "--name", name + "-dind", "--label", label, "--network", name, "--network-alias", "docker",
		"--cap-drop", "ALL", "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
		"--device-cgroup-rule", "a *:* rwm", "--sysctl", "net.ipv4.ip_forward=1",
		"-v", "/sys/fs/cgroup:/sys/fs/cgroup", "-v", name + "-data:/var/lib/docker", "--tmpfs", "/run"}
	for _, c := range schema.DaemonCapabilitySet {
		args = append(args, "--cap-add", c)
	}
	if err := docker(append(args, img, "dockerd", "--host=unix:///run/docker.sock")...); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(90 * time.Second)
	for exec.Command("docker", "exec", name+"-dind", "docker", "-H", "unix:///run/docker.sock", "version").Run() != nil {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the daemon %s-dind did not answer", name)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := docker("run", "-d", "--name", name, "--label", label, "--network", name,
		img, "sh", "-c", "trap exit TERM; sleep infinity & wait"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
