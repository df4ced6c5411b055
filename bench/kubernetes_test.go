package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/test/harness"
)

// BenchmarkKubernetesDiffConverged: `jackin diff` of 100 converged
// Kubernetes instances (one list per kind: Pods, Secrets, claims,
// NetworkPolicies) against `kubectl diff --server-side` of the same live
// objects, in the same run, on the test cluster (test/harness/kube).
// Target: jackin at least 5x faster.
func BenchmarkKubernetesDiffConverged(b *testing.B) {
	setup(b)
	const n = 100
	b.Setenv("JACKIN_KUBE_PVS", "240") // a runtime-home claim per instance
	kc, err := harness.KubeUp()
	if err != nil {
		b.Fatal(err)
	}
	kubectl := func(args ...string) string {
		out, err := harness.Kubectl(kc, args...)
		if err != nil {
			b.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	fleet := fmt.Sprintf("kbench%d", time.Now().Unix()%100000)
	kubectl("create", "namespace", fleet)
	b.Cleanup(func() {
		_, _ = harness.Kubectl(kc, "delete", "namespace", fleet, "--wait=true", "--timeout=120s")
		_ = exec.Command("bash", harness.KubeScript(), "recycle").Run()
	})
	var s strings.Builder
	fmt.Fprintf(&s, "apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: %q\ninstances: {\n", fleet)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&s, "\t\"i%03d\": {role: image: %q, backend: \"kubernetes\", kubernetes: namespace: %q, env: {N: \"%d\"}}\n", i, harness.AgentImage, fleet, i)
	}
	s.WriteString("}\n")
	dir := b.TempDir()
	m := filepath.Join(dir, "fleet.cue")
	must(b, os.WriteFile(m, []byte(s.String()), 0o644))
	state := filepath.Join(dir, "state")
	env := append(os.Environ(), "KUBECONFIG="+kc, "JACKIN_KUBE_IMAGE_LOAD="+harness.KubeImageLoad())
	applyStart := time.Now()
	runEnv(b, env, "", jackinBin, "--state-dir", state, "apply", "-f", m)
	b.Logf("apply of %d Kubernetes instances: %s", n, time.Since(applyStart).Round(time.Millisecond))

	// The same live objects, as kubectl would be given them.
	raw := kubectl("-n", fleet, "get", "pods,secrets,persistentvolumeclaims,networkpolicies", "-l", "dev.jackin.fleet="+fleet, "-o", "json")
	var list struct {
		Items []map[string]any `json:"items"`
	}
	must(b, json.Unmarshal([]byte(raw), &list))
	for _, it := range list.Items {
		delete(it, "status")
		if md, ok := it["metadata"].(map[string]any); ok {
			for _, k := range []string{"resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"} {
				delete(md, k)
			}
		}
	}
	objs, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": list.Items})
	must(b, err)
	objFile := filepath.Join(dir, "objects.json")
	must(b, os.WriteFile(objFile, objs, 0o644))
	b.Logf("%d objects", len(list.Items))

	var jackinTimes, kubectlTimes []time.Duration
	for i := 0; i < 3; i++ {
		d, out := runEnv(b, env, "", jackinBin, "--state-dir", state, "diff", "-f", m)
		if !strings.Contains(out, "No changes") {
			b.Fatalf("diff is not converged:\n%s", out)
		}
		jackinTimes = append(jackinTimes, d)
		start := time.Now()
		cmd := exec.Command(kubectlPath(), "--kubeconfig", kc, "diff", "--server-side", "--field-manager", "jackin", "--force-conflicts", "-f", objFile)
		kout, err := cmd.CombinedOutput()
		kubectlTimes = append(kubectlTimes, time.Since(start))
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() > 1) {
			b.Fatalf("kubectl diff: %v\n%s", err, kout)
		}
	}
	jm, km := median(jackinTimes), median(kubectlTimes)
	ratio := float64(km) / float64(jm)
	b.ReportMetric(jm.Seconds(), "jackin-diff-s")
	b.ReportMetric(km.Seconds(), "kubectl-diff-s")
	b.ReportMetric(ratio, "speedup")
	verdict := "met"
	if ratio < 5 {
		verdict = "NOT met"
	}
	b.Logf("converged diff of %d Kubernetes instances (%d objects): jackin %s, kubectl diff --server-side %s: %.1fx (target 5x: %s)",
		n, len(list.Items), jm.Round(time.Millisecond), km.Round(time.Millisecond), ratio, verdict)
}

func kubectlPath() string {
	cache := os.Getenv("JACKIN_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "jackin")
	}
	return filepath.Join(cache, "kube-v1.37.2", "bin", "kubectl")
}
