package e2e

import (
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/test/harness"
)

// TestKubernetesPrivateDocker: docker "private" on Kubernetes runs the
// daemon in a privileged Pod of its own, reached over TLS by the agent
// (which runs a container on it); in a namespace whose Pod Security level
// is baseline the instance is refused with that reason before any of its
// objects is made.
func TestKubernetesPrivateDocker(t *testing.T) {
	e := newEnv(t)
	extra, ns := kubeEnv(t, e)
	if err := harness.BuildDindImage(); err != nil {
		t.Fatalf("build %s: %v", harness.DindImage, err)
	}
	strict := ns + "-baseline"
	if out, err := harness.Kubectl(kubeCfg, "create", "namespace", strict); err != nil {
		t.Fatalf("create namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = harness.Kubectl(kubeCfg, "delete", "namespace", strict, "--wait=false") })
	if out, err := harness.Kubectl(kubeCfg, "label", "namespace", strict, "pod-security.kubernetes.io/enforce=baseline"); err != nil {
		t.Fatalf("label namespace: %v: %s", err, out)
	}
	inst := func(name, namespace string) string {
		return `	` + name + `: {
		role: image: "` + harness.DindImage + `"
		command: ["sh", "-c", "trap exit TERM; sleep infinity & wait"]
		backend: "kubernetes"
		kubernetes: namespace: "` + namespace + `"
		docker: "private"
		dockerDaemon: image: "` + harness.DindImage + `"
	}
`
	}
	m := e.manifest("instances: {\n" + inst("a", ns) + "}")
	r := e.jackinEnv(extra, "apply", "-f", m)
	mustCode(t, r, 0, "apply")

	daemon, ok := getPod(t, ns, e.name("a")+"-dind")
	if !ok {
		t.Fatalf("the daemon's Pod %s-dind is missing", e.name("a"))
	}
	if daemon.Status.Phase != "Running" || daemon.Spec.Containers[0].SecurityContext.Privileged == nil || !*daemon.Spec.Containers[0].SecurityContext.Privileged {
		t.Errorf("the daemon's Pod: phase %q, privileged %v", daemon.Status.Phase, daemon.Spec.Containers[0].SecurityContext.Privileged)
	}
	for _, v := range daemon.Spec.Volumes {
		if v.HostPath != nil {
			t.Errorf("the daemon's Pod mounts a node path: %+v", v)
		}
	}
	if pod, ok := getPod(t, ns, e.name("a")); !ok || pod.Status.Phase != "Running" {
		t.Fatalf("the agent's Pod is not running")
	}

	in := func(script string) string {
		t.Helper()
		r := e.jackinEnv(extra, "exec", "-f", m, "a", "--", "sh", "-c", script)
		mustCode(t, r, 0, "exec "+script)
		return strings.TrimSpace(r.stdout)
	}
	if env := in("env"); !strings.Contains(env, "DOCKER_HOST=tcp://docker:2376") || !strings.Contains(env, "DOCKER_TLS_VERIFY=1") {
		t.Errorf("agent env:\n%s", env)
	}
	if name := in("docker info --format '{{.Name}}'"); name != "docker" {
		t.Errorf("docker info names %q, want the daemon Pod's host name docker", name)
	}
	// A container on the private daemon: an image of the agent's own
	// shell and C library, imported (the daemon can pull nothing here).
	got := in("tar -C / -chf - usr/bin/dash usr/lib/x86_64-linux-gnu/libc.so.6 lib64/ld-linux-x86-64.so.2 2>/dev/null | docker import - tiny:1 >/dev/null && docker run --rm tiny:1 /usr/bin/dash -c 'echo inner-ok'")
	if got != "inner-ok" {
		t.Errorf("a container on the private daemon said %q", got)
	}
	// Without TLS the daemon does not answer.
	r = e.jackinEnv(extra, "exec", "-f", m, "a", "--", "sh", "-c", "DOCKER_TLS_VERIFY= DOCKER_CERT_PATH= docker -H tcp://docker:2376 info")
	if r.code == 0 {
		t.Errorf("the daemon answered a client without its certificate:\n%s", r)
	}

	// Baseline refuses a privileged Pod: refused, nothing of b is made.
	m = e.manifest("instances: {\n" + inst("a", ns) + inst("b", strict) + "}")
	r = e.jackinEnv(extra, "apply", "-f", m)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, `enforces Pod Security level "baseline"`) {
		t.Fatalf("b in a baseline namespace was not refused:\n%s", r)
	}
	if out, _ := harness.Kubectl(kubeCfg, "-n", strict, "get", "pods,secrets,pvc,networkpolicies", "-l", "dev.jackin.instance=b", "-o", "name"); out != "" {
		t.Errorf("the refused instance left objects: %s", out)
	}
	r = e.jackinEnv(extra, "explain", "-f", m, "a", "-o", "json")
	mustCode(t, r, 0, "explain")
	if !strings.Contains(r.stdout, "privileged Pod") || !strings.Contains(r.stdout, "root in it is root on the node") {
		t.Errorf("the contract does not describe the daemon's privileged Pod:\n%s", r.stdout)
	}
}
