package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackin-dev/jackin/test/harness"
)

var (
	dindOnce sync.Once
	dindErr  error
)

// dindImages builds the private-daemon test images once: the daemon image
// (a few minutes the first time on a machine), the broken one, and the
// egress test images.
func dindImages(t *testing.T) {
	t.Helper()
	egressImages(t)
	dindOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jackin-e2e-dind-")
		if err != nil {
			dindErr = err
			return
		}
		defer os.RemoveAll(dir)
		if dindErr = harness.BuildDindImage(); dindErr == nil {
			dindErr = harness.BuildBrokenDindImage(dir)
		}
	})
	if dindErr != nil {
		t.Fatalf("build the private-daemon test images: %v", dindErr)
	}
}

// innerContext is a build context for the agents' own image: the demo
// agent, FROM scratch (their daemons can pull nothing).
func innerContext(t *testing.T, e *env) string {
	t.Helper()
	dir := filepath.Join(e.dir, "inner")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := harness.GoBuild(filepath.Join(dir, "agent"), "./examples/offline/role/agent"); err != nil {
		t.Fatal(err)
	}
	df := "FROM scratch\nCOPY agent /agent\nENTRYPOINT [\"/agent\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// inAgent runs a shell command in an agent container (the daemon image
// doubles as the agents' image, for its docker CLI).
func inAgent(container, script string) (string, error) {
	out, err := exec.Command("docker", "exec", container, "sh", "-c", script).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func mustInAgent(t *testing.T, container, script string) string {
	t.Helper()
	out, err := inAgent(container, script)
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", container, script, err, out)
	}
	return out
}

func TestPrivateDocker(t *testing.T) {
	e := newEnv(t)
	dindImages(t)
	ti := testInternet(t, e)
	ctxDir := innerContext(t, e)
	// The images of the host engine this test and the daemon use: other
	// tests running meanwhile may add and remove images of their own.
	hostImages := func() map[string]string {
		out := map[string]string{}
		for _, ref := range []string{harness.DindImage, harness.BrokenDindImage, harness.EgressAgentImage, harness.UpstreamImage} {
			out[ref] = docker(t, "image", "inspect", "-f", "{{.Id}}", ref)
		}
		return out
	}
	hostImagesBefore := hostImages()
	// "capabilities": this engine refuses --privileged (see environment.md).
	manifest := func(envA string) string {
		return e.manifest(fmt.Sprintf(`defaults: {
	role: image: %[1]q
	command: ["sh", "-c", "trap exit TERM; sleep infinity & wait"]
	docker: "private"
	dockerDaemon: {image: %[1]q, privilege: "capabilities"}
	mounts: [{src: %[2]q, dst: "/ctx", mode: "ro"}]
}
instances: {
	a: env: {MARK: %[3]q}
	b: {}
	fenced: network: {egress: "allowlist", allow: ["allowed.test"], egressNetwork: %[4]q}
}`, harness.DindImage, ctxDir, envA, ti.Network))
	}
	m := manifest("1")
	r := e.jackin("apply", "-f", m)
	mustCode(t, r, 0, "apply")
	a, b, fenced := e.name("a"), e.name("b"), e.name("fenced")
	got := e.containers()
	for _, c := range []string{a, a + "-dind", b, b + "-dind", fenced, fenced + "-dind", fenced + "-egress"} {
		if got[c] != "running" {
			t.Fatalf("%s is not running: %v\n%s", c, got, r)
		}
	}
	if err := exec.Command("docker", "image", "inspect", "inner:1").Run(); err == nil {
		t.Fatal("the host engine already has inner:1: the test could not tell the daemons apart")
	}

	t.Run("the agent builds and runs on its private daemon, unseen by the host", func(t *testing.T) {
		mustInAgent(t, a, "DOCKER_BUILDKIT=0 docker build -q -t inner:1 /ctx && docker run -d --name innerc inner:1 idle")
		if out := mustInAgent(t, a, "docker ps --format '{{.Names}} {{.Image}}'"); !strings.Contains(out, "innerc inner:1") {
			t.Errorf("the private daemon does not list innerc: %q", out)
		}
		if names := dockerLines(t, "ps", "-a", "--format", "{{.Names}}"); slices.Contains(names, "innerc") {
			t.Error("the host engine lists the inner container")
		}
		if err := exec.Command("docker", "image", "inspect", "inner:1").Run(); err == nil {
			t.Error("the host engine has the inner image")
		}
	})

	t.Run("docker info shows the sidecar's daemon, not the host's", func(t *testing.T) {
		inner := mustInAgent(t, a, "docker info --format '{{.ID}} {{.Name}}'")
		host := docker(t, "info", "--format", "{{.ID}} {{.Name}}")
		if inner == host || !strings.HasSuffix(inner, " docker") {
			t.Errorf("inner daemon %q, host daemon %q", inner, host)
		}
		if env := mustInAgent(t, a, "env"); !strings.Contains(env, "DOCKER_HOST=tcp://docker:2376") || !strings.Contains(env, "DOCKER_TLS_VERIFY=1") || !strings.Contains(env, "TESTCONTAINERS_HOST_OVERRIDE=docker") {
			t.Errorf("agent env:\n%s", env)
		}
		if mounts := docker(t, "inspect", "-f", "{{json .Mounts}}", a, a+"-dind"); strings.Contains(mounts, "docker.sock") {
			t.Errorf("a host socket is mounted: %s", mounts)
		}
	})

	t.Run("without the client certificate the daemon refuses the connection", func(t *testing.T) {
		out, err := inAgent(a, "mkdir -p /tmp/nocert && cp /run/jackin/docker/ca.pem /tmp/nocert/ && DOCKER_CERT_PATH=/tmp/nocert docker version --format '{{.Server.Version}}'")
		if err == nil || !strings.Contains(out, "bad certificate") {
			t.Errorf("no client certificate: err %v: %s", err, out)
		}
		out, err = inAgent(a, "DOCKER_TLS_VERIFY= DOCKER_CERT_PATH= docker -H tcp://docker:2376 version --format '{{.Server.Version}}'")
		if err == nil || !strings.Contains(out, "HTTPS") {
			t.Errorf("plain HTTP: err %v: %s", err, out)
		}
		// The key is the agent's to read only, never writable.
		if out, err := inAgent(a, "echo x >> /run/jackin/docker/key.pem"); err == nil {
			t.Errorf("the client key is writable in the agent: %s", out)
		}
	})

	t.Run("two private instances cannot see each other's daemons", func(t *testing.T) {
		if out := mustInAgent(t, b, "docker ps -a --format '{{.Names}}'"); strings.Contains(out, "innerc") {
			t.Errorf("b's daemon lists a's container: %q", out)
		}
		aIP := docker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", a+"-dind")
		for _, host := range []string{a + "-dind", aIP} {
			out, err := inAgent(b, "timeout 10 docker -H tcp://"+host+":2376 ps")
			if err == nil {
				t.Errorf("b reached a's daemon at %s: %s", host, out)
			}
		}
	})

	t.Run("the egress allowlist covers the daemon's containers", func(t *testing.T) {
		mustInAgent(t, fenced, "DOCKER_BUILDKIT=0 docker build -q -t inner:1 /ctx")
		for _, addr := range []string{ti.IPs["allowed.test"] + ":80", ti.IPs["denied.test"] + ":80"} {
			if out, err := inAgent(fenced, "docker run --rm inner:1 dial "+addr); err == nil {
				t.Errorf("an inner container connected straight to %s: %s", addr, out)
			}
		}
		// Through the proxy (by address: the inner containers use the
		// daemon's resolver), under the instance's allowlist.
		proxy := docker(t, "inspect", "-f", fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).IPAddress}}`, fenced), fenced+"-egress")
		out, err := inAgent(fenced, "docker run --rm -e HTTP_PROXY=http://"+proxy+":3128 inner:1 fetch http://allowed.test/inner")
		if err != nil || !strings.Contains(out, "upstream allowed.test /inner") {
			t.Errorf("an inner container through the proxy to an allowed host: %v: %s", err, out)
		}
		out, err = inAgent(fenced, "docker run --rm -e HTTP_PROXY=http://"+proxy+":3128 inner:1 fetch http://denied.test/")
		if err == nil || !strings.Contains(out, "403") {
			t.Errorf("an inner container through the proxy to a denied host: %v: %s", err, out)
		}
		r := e.jackin("egress", "log", "-f", m, "fenced", "--denied")
		if !strings.Contains(r.stdout, "denied.test") {
			t.Errorf("the inner container's denied request is not in the egress log:\n%s", r)
		}
	})

	t.Run("the daemon's data survives a recreate of the agent", func(t *testing.T) {
		before := e.containerID(a)
		mustCode(t, e.jackin("apply", "-f", manifest("2")), 0, "apply with a changed env")
		if after := e.containerID(a); after == before || after == "" {
			t.Fatalf("the agent was not recreated (%s → %s)", before, after)
		}
		if out, err := inAgent(a, "docker image inspect -f '{{.Id}}' inner:1"); err != nil {
			t.Errorf("the inner image did not survive the recreate: %s", out)
		}
	})

	t.Run("a daemon killed uncleanly starts again", func(t *testing.T) {
		docker(t, "kill", a+"-dind")
		mustCode(t, e.jackin("apply", "-f", m), 0, "apply after docker kill of the daemon")
		if out := mustInAgent(t, a, "docker version --format '{{.Server.Version}}'"); out == "" {
			t.Error("the daemon does not answer after its restart")
		}
	})

	t.Run("the contract states what the sidecar holds", func(t *testing.T) {
		r := e.jackin("explain", "-f", m, "a", "-o", "json")
		mustCode(t, r, 0, "explain")
		for _, want := range []string{`"dockerAccess": "private"`, `"sidecar": "` + a + `-dind"`, "SYS_ADMIN", `"innerEgressCovered": false`, "private-docker-daemon"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("explain lacks %s", want)
			}
		}
		// What the contract says the sidecar holds is what the engine gave it.
		var doc struct {
			Instances []struct {
				Sandbox struct {
					DockerDaemon struct {
						Capabilities []string `json:"capabilities"`
					} `json:"dockerDaemon"`
				} `json:"sandbox"`
			} `json:"instances"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Instances) != 1 {
			t.Fatalf("explain -o json: %v (%d instances)", err, len(doc.Instances))
		}
		var hc struct {
			Privileged        bool
			CapAdd, CapDrop   []string
			SecurityOpt       []string
			DeviceCgroupRules []string
			MaskedPaths       []string
		}
		if err := json.Unmarshal([]byte(docker(t, "inspect", "-f", "{{json .HostConfig}}", a+"-dind")), &hc); err != nil {
			t.Fatal(err)
		}
		observed := slices.Clone(hc.CapAdd)
		for i := range observed {
			observed[i] = strings.TrimPrefix(observed[i], "CAP_")
		}
		slices.Sort(observed)
		claimed := slices.Sorted(slices.Values(doc.Instances[0].Sandbox.DockerDaemon.Capabilities))
		if hc.Privileged || !slices.Equal(observed, claimed) || !slices.Equal(hc.CapDrop, []string{"ALL"}) ||
			!slices.Contains(hc.SecurityOpt, "seccomp=unconfined") || !slices.Contains(hc.SecurityOpt, "apparmor=unconfined") ||
			len(hc.MaskedPaths) == 0 || !slices.Equal(hc.DeviceCgroupRules, []string{"a *:* rwm"}) {
			t.Errorf("the sidecar holds %+v; the contract says capabilities %v", hc, claimed)
		}
		r = e.jackin("explain", "-f", m, "fenced", "-o", "json")
		if !strings.Contains(r.stdout, `"innerEgressCovered": true`) {
			t.Errorf("explain fenced: inner egress not covered:\n%s", r.stdout)
		}
	})

	t.Run("delete removes the sidecar, its volume and its certificates, and no host image", func(t *testing.T) {
		tlsDir := filepath.Join(e.stateDir, "docker", e.fleet, "a")
		if _, err := os.Stat(filepath.Join(tlsDir, "ca-key.pem")); err != nil {
			t.Fatalf("certificates before delete: %v", err)
		}
		mustCode(t, e.jackin("apply", "-f", e.manifest(fmt.Sprintf(`instances: b: {role: image: %[1]q, command: ["sh", "-c", "trap exit TERM; sleep infinity & wait"], docker: "private", dockerDaemon: {image: %[1]q, privilege: "capabilities"}}`, harness.DindImage))), 0, "apply without a")
		got := e.containers()
		for _, c := range []string{a, a + "-dind"} {
			if _, ok := got[c]; ok {
				t.Errorf("%s outlived its instance", c)
			}
		}
		if vols := dockerLines(t, "volume", "ls", "-q", "--filter", "name="+a+"-dind-data"); len(vols) != 0 {
			t.Errorf("the daemon's volume outlived its instance: %v", vols)
		}
		if _, err := os.Stat(tlsDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the certificates outlived their instance: %v", err)
		}
		if after := hostImages(); !maps.Equal(after, hostImagesBefore) {
			t.Errorf("host images changed: %v → %v", hostImagesBefore, after)
		}
	})

}

func TestPrivateDockerThatNeverAnswersKeepsTheAgentStopped(t *testing.T) {
	e := newEnv(t)
	dindImages(t)
	m := e.manifest(fmt.Sprintf(`instances: {
	a: {role: image: %q, command: ["sh", "-c", "trap exit TERM; sleep infinity & wait"], docker: "private", dockerDaemon: {image: %q, privilege: "capabilities"}}
	ok: {role: image: %q}
}`, harness.DindImage, harness.BrokenDindImage, agentImage))
	r := e.jackin("apply", "-f", m)
	if r.code == 0 {
		t.Fatalf("apply with a daemon that cannot start succeeded:\n%s", r)
	}
	for _, want := range []string{"the private Docker daemon " + e.name("a") + "-dind", "stopped before it answered", "dockerd stub: refusing to start"} {
		if !strings.Contains(r.stderr+r.stdout, want) {
			t.Errorf("error lacks %q:\n%s", want, r)
		}
	}
	got := e.containers()
	if got[e.name("a")] == "running" {
		t.Error("the agent was started although its daemon never answered")
	}
	if got[e.name("ok")] != "running" {
		t.Errorf("the other instance did not proceed: %v", got)
	}
}

func TestPrivateDockerBadInput(t *testing.T) {
	e := newEnv(t)
	for name, c := range map[string]struct{ body, want string }{
		"unknown privilege": {`instances: a: {role: image: "x:1", docker: "private", dockerDaemon: privilege: "root"}`, "dockerDaemon.privilege"},
		"docker client env": {`instances: a: {role: image: "x:1", docker: "private", env: DOCKER_CERT_PATH: "/x"}`, "env.DOCKER_CERT_PATH"},
		"host daemon":       {`instances: a: {role: image: "x:1", env: DOCKER_HOST: "unix:///var/run/docker.sock"}`, "env.DOCKER_HOST"},
		"unknown mode":      {`instances: a: {role: image: "x:1", docker: "host"}`, "docker"},
		"stray daemon":      {`instances: a: {role: image: "x:1", dockerDaemon: privilege: "capabilities"}`, `instances.a.dockerDaemon: dockerDaemon configures the private Docker daemon, and this instance has docker: "none"`},
	} {
		t.Run(name, func(t *testing.T) {
			m := e.writeFile(strings.ReplaceAll(name, " ", "-")+".cue", fmt.Sprintf("apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: %q\n%s\n", e.fleet, c.body))
			r := e.jackin("validate", "-f", m)
			if r.code == 0 || !strings.Contains(r.stderr, m+":4:") || !strings.Contains(r.stderr, c.want) {
				t.Errorf("want an error at %s:4 naming %s:\n%s", m, c.want, r)
			}
		})
	}
}

// containerID is the engine's ID of the named container, or "".
func (e *env) containerID(name string) string {
	ids := dockerLines(e.t, "ps", "-aq", "--no-trunc", "--filter", "name=^/"+name+"$")
	if len(ids) != 1 {
		return ""
	}
	return ids[0]
}
