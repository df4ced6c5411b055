package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackin-dev/jackin/test/harness"
)

// serveGit serves a bare copy of src over git's dumb HTTP protocol on
// every address of this machine, and returns the URL a client reaching
// this machine at host uses, and a count of the requests served.
func serveGit(t *testing.T, src, host string) (string, *atomic.Int64) {
	t.Helper()
	served := t.TempDir()
	bare := filepath.Join(served, "app.git")
	hostGit(t, served, "clone", "-q", "--bare", src, bare)
	hostGit(t, bare, "update-server-info")
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	var fetched atomic.Int64
	files := http.FileServer(http.Dir(served))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		files.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)) + "/app.git", &fetched
}

// TestRemoteEngineCheckout: on a remote engine a clone mount takes a git
// URL, cloned into a volume on that engine by a short-lived container of
// the role image before the agent's (here the role, with git, is built on
// the engine, and the repository is served over dumb HTTP from this test),
// for an agent that is not root: the checkout is theirs.
// The agent sees the scratch branch; its commit survives a recreate;
// delete keeps the volume, delete --purge removes it; a URL that does not
// clone fails apply with git's words and leaves no agent container.
func TestRemoteEngineCheckout(t *testing.T) {
	e := newEnv(t)
	if err := harness.BuildRemoteEngineImage(); err != nil {
		t.Fatal(err)
	}
	engines, err := harness.StartRemoteEngines(t.TempDir(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(engines.Stop)
	sshEnv := []string{"JACKIN_SSH_COMMAND=" + engines.SSHCommand()}
	run := func(args ...string) result { return e.jackinEnv(sshEnv, args...) }

	// A role with git, built on r1 from the git image's files.
	img := gitImage(t)
	role := filepath.Join(e.dir, "gitrole")
	if err := os.MkdirAll(role, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := "jackin-e2e-export-" + e.fleet
	docker(t, "create", "--name", tmp, img)
	docker(t, "export", "-o", filepath.Join(role, "rootfs.tar"), tmp)
	docker(t, "rm", tmp)
	e.writeFile("gitrole/Dockerfile", "FROM scratch\nADD rootfs.tar /\nENV PATH=/usr/bin:/bin HOME=/root\nENTRYPOINT [\"/agent\"]\nCMD [\"idle\"]\n")

	src, _ := gitRepo(t, 0)
	head := hostGit(t, src, "rev-parse", "HEAD")
	gw := docker(t, "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", engines.Network)
	url, fetched := serveGit(t, src, gw)

	fleet := func(from, extra string) string {
		return e.manifest(fmt.Sprintf(`engines: r1: host: "ssh://root@r1"
instances: g: {
	engine: "r1"
	role: build: context: %q
	agent: "shell"
	security: user: "1000:1000"
	mounts: [{src: %q, dst: "/src", mode: "clone"}]
	%s
}
`, role, from, extra))
	}
	mf := fleet(url, "")
	mustCode(t, run("apply", "-f", mf), 0, "apply")
	if fetched.Load() == 0 {
		t.Fatalf("nothing was fetched from %s", url)
	}
	g := e.name("g")
	in := func(script string) string {
		t.Helper()
		out, err := engines.SSH("r1", "docker", "exec", g, "sh", "-c", "'"+script+"'")
		if err != nil {
			t.Fatalf("in %s on r1: %s: %v\n%s", g, script, err, out)
		}
		return out
	}
	branch := "jackin/" + e.fleet + "/g"
	if got := in("git -C /src symbolic-ref --short HEAD"); got != branch {
		t.Errorf("the checkout is on %q, want %s", got, branch)
	}
	if got := in("git -C /src rev-parse HEAD"); got != head {
		t.Errorf("the branch starts at %s, want the remote's HEAD %s", got, head)
	}
	if got := in("busybox stat -c %u:%g /src /src/.git /src/README"); got != "1000:1000\n1000:1000\n1000:1000" {
		t.Errorf("the checkout's owners %q, want the agent's user 1000:1000", got)
	}
	if out, _ := engines.SSH("r1", "docker", "ps", "-a", "--format", "'{{.Names}}'"); strings.Contains(out, "checkout") {
		t.Errorf("the checkout container was left on r1: %s", out)
	}

	// The agent's commit lives in the volume: a recreate keeps it.
	in("echo mine > /src/agent.txt && git -C /src add agent.txt && git -C /src -c user.name=agent -c user.email=a@example.com commit -q -m by-the-agent")
	before := remoteContainers(t, engines, "r1", e.fleet)[g][1]
	mf = fleet(url, `env: ROUND: "2"`)
	mustCode(t, run("apply", "-f", mf), 0, "apply recreating g")
	if id := remoteContainers(t, engines, "r1", e.fleet)[g][1]; id == before {
		t.Fatalf("g was not recreated")
	}
	if got := in("git -C /src log -1 --format=%s"); got != "by-the-agent" {
		t.Errorf("after the recreate the last commit is %q: the agent's work was lost", got)
	}
	mustCode(t, run("diff", "-f", mf), 0, "converged diff")

	volumes := func() string {
		out, err := engines.SSH("r1", "docker", "volume", "ls", "-q", "--filter", "label=dev.jackin.component=checkout", "--filter", "label=dev.jackin.fleet="+e.fleet)
		if err != nil {
			t.Fatalf("list volumes on r1: %v %s", err, out)
		}
		return out
	}
	mustCode(t, run("delete", "-f", mf), 0, "delete")
	if volumes() == "" {
		t.Fatal("delete removed the checkout volume, which may hold unpushed work")
	}
	r := run("delete", "-f", mf, "--purge", "--yes")
	mustCode(t, r, 0, "delete --purge")
	if !strings.Contains(r.stderr, "a checkout the instance cloned") {
		t.Errorf("purge did not list the volume it removes:\n%s", r)
	}
	if got := volumes(); got != "" {
		t.Errorf("purge kept the checkout volume: %s", got)
	}

	// A URL that does not clone fails apply with git's words, and no
	// agent container is made over an empty checkout.
	mf = fleet(strings.TrimSuffix(url, "app.git")+"missing.git", "")
	r = run("apply", "-f", mf)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "the checkout of") || !strings.Contains(r.stdout+r.stderr, "missing.git") {
		t.Errorf("apply of an unclonable URL:\n%s", r)
	}
	if _, ok := remoteContainers(t, engines, "r1", e.fleet)[g]; ok {
		t.Errorf("an agent container was made over a checkout that failed")
	}
}
