package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/test/harness"
)

// The Kubernetes backend against a real single-node cluster built here
// (test/harness/kube/cluster.sh: etcd, the control plane and a kubelet on
// containerd; its network plugin does not enforce NetworkPolicy).

var (
	kubeOnce sync.Once
	kubeCfg  string
	kubeErr  error
)

// kubeEnv brings the test cluster up (once; cached binaries), makes a
// namespace of the test's own (removed afterwards, with everything in it)
// and returns the environment jackin runs with.
func kubeEnv(t *testing.T, e *env) (extra []string, ns string) {
	t.Helper()
	kubeOnce.Do(func() { kubeCfg, kubeErr = harness.KubeUp() })
	if kubeErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the test cluster did not come up: %v", kubeErr)
		}
		t.Skipf("\n\n*** SKIPPING KUBERNETES TEST: the test cluster did not come up (%v). ***\n", kubeErr)
	}
	ns = e.fleet
	if out, err := harness.Kubectl(kubeCfg, "create", "namespace", ns); err != nil {
		t.Fatalf("create namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = harness.Kubectl(kubeCfg, "delete", "namespace", ns, "--wait=false") })
	return []string{"KUBECONFIG=" + kubeCfg, "JACKIN_KUBE_IMAGE_LOAD=" + harness.KubeImageLoad()}, ns
}

type kubePod struct {
	Metadata struct {
		Labels map[string]string `json:"labels"`
		UID    string            `json:"uid"`
	} `json:"metadata"`
	Spec struct {
		AutomountServiceAccountToken *bool `json:"automountServiceAccountToken"`
		Containers                   []struct {
			Name      string `json:"name"`
			Command   []string
			Resources struct {
				Limits map[string]string `json:"limits"`
			} `json:"resources"`
			SecurityContext struct {
				Privileged               *bool  `json:"privileged"`
				RunAsUser                *int64 `json:"runAsUser"`
				AllowPrivilegeEscalation *bool  `json:"allowPrivilegeEscalation"`
				ReadOnlyRootFilesystem   *bool  `json:"readOnlyRootFilesystem"`
				Capabilities             struct {
					Drop []string `json:"drop"`
				} `json:"capabilities"`
				SeccompProfile struct {
					Type string `json:"type"`
				} `json:"seccompProfile"`
			} `json:"securityContext"`
			Env []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"env"`
		} `json:"containers"`
		Volumes []struct {
			HostPath any `json:"hostPath"`
		} `json:"volumes"`
	} `json:"spec"`
	Status struct {
		Phase string `json:"phase"`
	} `json:"status"`
}

func getPod(t *testing.T, ns, name string) (kubePod, bool) {
	t.Helper()
	out, err := harness.Kubectl(kubeCfg, "-n", ns, "get", "pod", name, "-o", "json")
	if err != nil {
		if strings.Contains(out, "NotFound") {
			return kubePod{}, false
		}
		t.Fatalf("kubectl get pod %s: %v: %s", name, err, out)
	}
	var p kubePod
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatal(err)
	}
	return p, true
}

// TestKubernetesFleet: a fleet on the cluster converges (the agent Pod
// runs the supervisor, exec works through the API server, the Pod spec
// carries the profile's hardening, limits and labels, env values only in
// the Secret); a converged diff changes nothing; a deleted Pod is seen and
// repaired; an egress-limited instance is refused on this cluster (its
// network plugin ignores NetworkPolicy: fail closed), runs with
// allowUnenforcedPolicy and a contract saying egress is not enforced; an
// orphan is collected.
func TestKubernetesFleet(t *testing.T) {
	e := newEnv(t)
	extra, ns := kubeEnv(t, e)
	base := `	a: {
		role: image: "` + agentImage + `"
		backend: "kubernetes"
		kubernetes: namespace: "` + ns + `"
		profile: "hardened"
		security: readOnlyRoot: true
		env: GREETING: "hello-from-the-secret"
		resources: {memory: "256Mi", cpus: 0.5}
		mounts: [{dst: "/work", mode: "ephemeral"}]
	}
`
	limited := func(allow bool) string {
		a := ""
		if allow {
			a = ", allowUnenforcedPolicy: true"
		}
		return `	b: {
		role: image: "` + agentImage + `"
		backend: "kubernetes"
		kubernetes: {namespace: "` + ns + `"` + a + `}
		network: egress: "none"
	}
`
	}
	m := e.manifest("instances: {\n" + base + "}")
	r := e.jackinEnv(extra, "apply", "-f", m)
	mustCode(t, r, 0, "apply")
	pod, ok := getPod(t, ns, e.name("a"))
	if !ok || pod.Status.Phase != "Running" {
		t.Fatalf("agent Pod %v phase %q after apply:\n%s", ok, pod.Status.Phase, r)
	}
	c := pod.Spec.Containers[0]
	sc := c.SecurityContext
	switch {
	case pod.Metadata.Labels["app.kubernetes.io/managed-by"] != "jackin" || pod.Metadata.Labels["dev.jackin.fleet"] != e.fleet:
		t.Errorf("labels %v", pod.Metadata.Labels)
	case sc.RunAsUser == nil || *sc.RunAsUser == 0:
		t.Errorf("the hardened agent runs as root: %+v", sc)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("privilege escalation allowed: %+v", sc)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("root filesystem writable: %+v", sc)
	case len(sc.Capabilities.Drop) == 0 || sc.Capabilities.Drop[0] != "ALL":
		t.Errorf("capabilities %+v", sc.Capabilities)
	case sc.SeccompProfile.Type != "RuntimeDefault":
		t.Errorf("seccomp %+v", sc.SeccompProfile)
	case c.Resources.Limits["memory"] != "256Mi" || c.Resources.Limits["cpu"] != "500m":
		t.Errorf("limits %v", c.Resources.Limits)
	case len(c.Command) == 0 || c.Command[0] != "/run/jackin/bin/jackin" || c.Command[1] != "supervise":
		t.Errorf("PID 1 is %q, want the supervisor", c.Command)
	}
	for _, ev := range c.Env {
		if ev.Value != "" && strings.Contains(ev.Value, "hello-from-the-secret") {
			t.Errorf("env value in the Pod spec: %+v", ev)
		}
	}
	for _, v := range pod.Spec.Volumes {
		if v.HostPath != nil {
			t.Errorf("hostPath volume in the agent Pod")
		}
	}

	// exec goes through pods/exec; the env value arrives from the Secret.
	r = e.jackinEnv(extra, "exec", "-f", m, "a", "--", "/run/jackin/bin/jackin", "version")
	mustCode(t, r, 0, "exec")
	if !strings.Contains(r.stdout, "jackin") {
		t.Errorf("exec output %q", r.stdout)
	}

	r = e.jackinEnv(extra, "diff", "-f", m)
	mustCode(t, r, 0, "converged diff")

	// A Pod deleted behind jackin's back is seen and repaired.
	if out, err := harness.Kubectl(kubeCfg, "-n", ns, "delete", "pod", e.name("a"), "--wait=true"); err != nil {
		t.Fatalf("delete pod: %v: %s", err, out)
	}
	r = e.jackinEnv(extra, "diff", "-f", m)
	mustCode(t, r, 1, "diff after the Pod was deleted")
	if !strings.Contains(r.stdout, "no Pod") {
		t.Errorf("diff does not name the missing Pod:\n%s", r)
	}
	mustCode(t, e.jackinEnv(extra, "apply", "-f", m), 0, "apply repairs the Pod")
	if p, ok := getPod(t, ns, e.name("a")); !ok || p.Status.Phase != "Running" || p.Metadata.UID == pod.Metadata.UID {
		t.Fatalf("Pod not repaired: %v %q", ok, p.Status.Phase)
	}

	// Fail closed: egress "none" relies on NetworkPolicy, which this
	// cluster stores and does not enforce.
	m = e.manifest("instances: {\n" + base + limited(false) + "}")
	r = e.jackinEnv(extra, "apply", "-f", m)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "does not enforce NetworkPolicy") {
		t.Fatalf("egress-limited instance not refused:\n%s", r)
	}
	if _, ok := getPod(t, ns, e.name("b")); ok {
		t.Fatal("the refused instance's Pod exists")
	}
	m = e.manifest("instances: {\n" + base + limited(true) + "}")
	mustCode(t, e.jackinEnv(extra, "apply", "-f", m), 0, "apply with allowUnenforcedPolicy")
	if p, ok := getPod(t, ns, e.name("b")); !ok || p.Status.Phase != "Running" {
		t.Fatalf("allowUnenforcedPolicy instance not running: %v %q", ok, p.Status.Phase)
	}
	r = e.jackinEnv(extra, "explain", "-f", m, "b")
	mustCode(t, r, 0, "explain")
	if !strings.Contains(r.stdout, "NOT enforced") || !strings.Contains(r.stdout, "Secrets readable by") {
		t.Errorf("the contract does not say egress is not enforced:\n%s", r.stdout)
	}
	out, err := harness.Kubectl(kubeCfg, "-n", ns, "get", "networkpolicy", e.name("b"), "-o", "jsonpath={.spec.policyTypes}")
	if err != nil || !strings.Contains(out, "Egress") {
		t.Errorf("b's NetworkPolicy: %v %s", err, out)
	}

	// watch heals from the watch API: with an hour between resyncs, only
	// the deletion's and the edit's watch events can start the heals.
	w := e.startWatch(extra, "-f", m, "--resync", "1h")
	w.waitFor("the first pass", time.Minute, 1, func(l watchLine) bool { return l.Type == "info" && strings.Contains(l.Message, "watching fleet") })
	time.Sleep(2 * time.Second) // the first pass subscribes before it observes; let it finish
	before, _ := getPod(t, ns, e.name("a"))
	if out, err := harness.Kubectl(kubeCfg, "-n", ns, "delete", "pod", e.name("a"), "--wait=false"); err != nil {
		t.Fatalf("delete pod: %v: %s", err, out)
	}
	w.waitFor("a's Pod healed from its deletion event", 2*time.Minute, 1, func(l watchLine) bool {
		return l.Type == "action" && l.Instance == "a" && l.Outcome == "succeeded" && l.source() == "engine"
	})
	if p, ok := getPod(t, ns, e.name("a")); !ok || p.Metadata.UID == before.Metadata.UID {
		t.Fatalf("a's Pod not replaced by watch: %v", ok)
	}
	if out, err := harness.Kubectl(kubeCfg, "-n", ns, "patch", "networkpolicy", e.name("b"), "--type=json",
		"-p", `[{"op":"replace","path":"/spec/policyTypes","value":["Ingress"]}]`); err != nil {
		t.Fatalf("edit b's NetworkPolicy: %v: %s", err, out)
	}
	w.waitFor("b's NetworkPolicy healed from its change event", 2*time.Minute, 1, func(l watchLine) bool {
		return l.Type == "action" && l.Instance == "b" && l.Outcome == "succeeded" && l.source() == "engine"
	})
	if out, err := harness.Kubectl(kubeCfg, "-n", ns, "get", "networkpolicy", e.name("b"), "-o", "jsonpath={.spec.policyTypes}"); err != nil || !strings.Contains(out, "Egress") {
		t.Errorf("b's NetworkPolicy after watch healed it: %v %s", err, out)
	}
	if code := w.stop(); code != 0 {
		t.Fatalf("watch exited %d", code)
	}

	// An orphan is collected.
	m = e.manifest("instances: {\n" + base + "}")
	mustCode(t, e.jackinEnv(extra, "apply", "-f", m), 0, "apply without b")
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, ok := getPod(t, ns, e.name("b"))
		secret, err := harness.Kubectl(kubeCfg, "-n", ns, "get", "secret", e.name("b"), "-o", "name")
		if !ok && err != nil && strings.Contains(secret, "NotFound") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan b not collected (pod %v, secret %q)", ok, secret)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
