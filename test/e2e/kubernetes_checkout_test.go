package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/test/harness"
)

// TestKubernetesCheckout: a clone mount on Kubernetes takes a git URL,
// which an init container clones into a claim with the role image's git
// (here over dumb HTTP from this test, reached at the Pod network's
// gateway), for an agent that is not root: the checkout is theirs. The agent sees the scratch branch; its commit survives a
// deleted Pod (the claim is kept and not cloned again); delete keeps the
// claim, delete --purge removes it; a URL that does not clone fails apply
// with git's own words.
func TestKubernetesCheckout(t *testing.T) {
	e := newEnv(t)
	extra, ns := kubeEnv(t, e)
	img := gitImage(t)

	src, _ := gitRepo(t, 0)
	head := hostGit(t, src, "rev-parse", "HEAD")
	gw, err := harness.KubePodGateway()
	if err != nil {
		t.Fatal(err)
	}
	url, fetched := serveGit(t, src, gw)

	inst := func(name, from string) string {
		return `	` + name + `: {
		role: image: "` + img + `"
		backend: "kubernetes"
		kubernetes: namespace: "` + ns + `"
		security: user: "1000:1000"
		mounts: [{src: "` + from + `", dst: "/src", mode: "clone"}]
	}
`
	}
	m := e.manifest("instances: {\n" + inst("c", url) + "}")
	r := e.jackinEnv(extra, "apply", "-f", m)
	mustCode(t, r, 0, "apply")
	if fetched.Load() == 0 {
		t.Fatalf("the Pod fetched nothing from %s", url)
	}
	git := func(args ...string) string {
		t.Helper()
		r := e.jackinEnv(extra, append([]string{"exec", "-f", m, "c", "--", "git", "-C", "/src"}, args...)...)
		mustCode(t, r, 0, "exec git "+strings.Join(args, " "))
		return strings.TrimSpace(r.stdout)
	}
	branch := "jackin/" + e.fleet + "/c"
	if got := git("symbolic-ref", "--short", "HEAD"); got != branch {
		t.Errorf("the checkout is on %q, want the scratch branch %s", got, branch)
	}
	if got := git("rev-parse", "HEAD"); got != head {
		t.Errorf("the branch starts at %s, want the remote's HEAD %s", got, head)
	}
	r = e.jackinEnv(extra, "exec", "-f", m, "c", "--", "busybox", "stat", "-c", "%u:%g", "/src", "/src/.git", "/src/README")
	mustCode(t, r, 0, "stat the checkout")
	if got := strings.TrimSpace(r.stdout); got != "1000:1000\n1000:1000\n1000:1000" {
		t.Errorf("the checkout's owners %q, want the agent's user 1000:1000", got)
	}

	// The agent's commit lives in the claim: a new Pod keeps it.
	r = e.jackinEnv(extra, "exec", "-f", m, "c", "--", "sh", "-c",
		"echo mine > /src/agent.txt && git -C /src add agent.txt && git -C /src -c user.name=agent -c user.email=a@example.com commit -q -m by-the-agent")
	mustCode(t, r, 0, "the agent commits")
	pod, _ := getPod(t, ns, e.name("c"))
	if out, err := harness.Kubectl(kubeCfg, "-n", ns, "delete", "pod", e.name("c"), "--wait=true"); err != nil {
		t.Fatalf("delete pod: %v: %s", err, out)
	}
	mustCode(t, e.jackinEnv(extra, "apply", "-f", m), 0, "apply repairs the Pod")
	if p, ok := getPod(t, ns, e.name("c")); !ok || p.Metadata.UID == pod.Metadata.UID {
		t.Fatalf("Pod not recreated")
	}
	if got := git("log", "-1", "--format=%s"); got != "by-the-agent" {
		t.Errorf("after the Pod's recreate the last commit is %q: the agent's work was lost", got)
	}
	if out, _ := harness.Kubectl(kubeCfg, "-n", ns, "logs", e.name("c"), "-c", "checkout-0"); !strings.Contains(out, "already holds a checkout: kept") {
		t.Errorf("the new Pod's init container did not keep the checkout: %s", out)
	}

	// The contract names the claim and what keeps it.
	r = e.jackinEnv(extra, "explain", "-f", m, "c")
	mustCode(t, r, 0, "explain")
	if !strings.Contains(r.stdout, url) || !strings.Contains(r.stdout, "only jackin delete --purge removes the claim") {
		t.Errorf("explain does not describe the cloned claim:\n%s", r.stdout)
	}

	claims := func() string {
		out, err := harness.Kubectl(kubeCfg, "-n", ns, "get", "pvc", "-l", "dev.jackin.component=checkout", "-o", "name")
		if err != nil {
			t.Fatalf("get pvc: %v: %s", err, out)
		}
		return out
	}
	mustCode(t, e.jackinEnv(extra, "delete", "-f", m), 0, "delete")
	if _, ok := getPod(t, ns, e.name("c")); ok {
		t.Errorf("delete left the Pod")
	}
	if claims() == "" {
		t.Fatalf("delete removed the checkout claim, which may hold unpushed work")
	}
	r = e.jackinEnv(extra, "delete", "-f", m, "--purge", "--yes")
	mustCode(t, r, 0, "delete --purge")
	if !strings.Contains(r.stderr, "a checkout the instance cloned") {
		t.Errorf("purge did not list the claim it removes:\n%s", r)
	}
	// A claim being deleted lists until the claim's finalizer has run.
	for deadline := time.Now().Add(30 * time.Second); claims() != ""; {
		if time.Now().After(deadline) {
			t.Fatalf("purge kept the claim: %s", claims())
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A URL that does not clone fails apply with git's words.
	m = e.manifest("instances: {\n" + inst("d", strings.TrimSuffix(url, "app.git")+"missing.git") + "}")
	r = e.jackinEnv(extra, "apply", "-f", m)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "checkout-0") || !strings.Contains(r.stdout+r.stderr, "missing.git") {
		t.Errorf("apply of an unclonable URL:\n%s", r)
	}
}
