package harness

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// KubeScript is the script that builds (cached outside the clone), starts
// and stops the test cluster: a single node on loopback (see
// test/harness/kube/cluster.sh).
func KubeScript() string { return filepath.Join(RepoRoot(), "test", "harness", "kube", "cluster.sh") }

// KubeUp starts the test cluster unless it already runs (the binaries
// are built once and cached) and returns its kubeconfig's path.
func KubeUp() (string, error) {
	cmd := exec.Command("bash", KubeScript(), "up")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s up: %v\n%s", KubeScript(), err, out.String())
	}
	env, err := exec.Command("bash", KubeScript(), "env").Output()
	if err != nil {
		return "", fmt.Errorf("%s env: %v", KubeScript(), err)
	}
	kc := strings.TrimPrefix(strings.TrimSpace(string(env)), "KUBECONFIG=")
	if _, err := os.Stat(kc); err != nil {
		return "", fmt.Errorf("the cluster's kubeconfig: %w", err)
	}
	return kc, nil
}

// KubeImageLoad is the JACKIN_KUBE_IMAGE_LOAD command that loads an image
// tar (docker save, on stdin) into the test cluster's node.
func KubeImageLoad() string { return "bash " + KubeScript() + " import -" }

// Kubectl runs the test cluster's kubectl (the cached build) with
// kubeconfig.
func Kubectl(kubeconfig string, args ...string) (string, error) {
	cache := os.Getenv("JACKIN_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "jackin")
	}
	bin := filepath.Join(cache, "kube-v1.37.2", "bin", "kubectl")
	out, err := exec.Command(bin, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// KubePodGateway is the address the test cluster's Pods reach this
// machine at: the gateway of the Pod network's bridge (cluster.sh's
// POD_SUBNET, its first address).
func KubePodGateway() (string, error) {
	subnet := os.Getenv("JACKIN_KUBE_POD_SUBNET")
	if subnet == "" {
		subnet = "10.244.77.0/24"
	}
	prefix, err := netip.ParsePrefix(subnet)
	if err != nil {
		return "", fmt.Errorf("the Pod subnet %q: %w", subnet, err)
	}
	return prefix.Masked().Addr().Next().String(), nil
}
