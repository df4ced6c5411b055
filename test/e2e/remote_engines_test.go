package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/test/harness"
)

// remoteFleet is a fleet over the local engine and two remote ones: l on
// the local engine, a on r1, b on r2, each built from a role build context
// (so the image is built on the engine where the instance runs). extra is
// added to every instance.
func remoteFleet(e *env, role string, names []string, extra string) string {
	var b strings.Builder
	b.WriteString("engines: {\n  r1: host: \"ssh://root@r1\"\n  r2: host: \"ssh://root@r2\"\n}\n")
	fmt.Fprintf(&b, "defaults: {role: build: context: %q, agent: \"shell\", network: egress: \"none\"}\n", role)
	b.WriteString("instances: {\n")
	engine := map[string]string{"a": "r1", "b": "r2", "c": "r2"}
	for _, n := range names {
		eng := ""
		if engine[n] != "" {
			eng = fmt.Sprintf("engine: %q, ", engine[n])
		}
		cred := ""
		if n == "a" {
			// A file credential on a remote engine: read here, delivered
			// on r1's tmpfs, refreshed in place.
			cred = "credentials: E2E_TOKEN: from: env: \"E2E_REMOTE_TOKEN\", "
		}
		fmt.Fprintf(&b, "  %s: {%s%s%s}\n", n, eng, cred, extra)
	}
	b.WriteString("}\n")
	return e.manifest(b.String())
}

// remoteContainers lists engine name's containers of the fleet, "name
// state id".
func remoteContainers(t *testing.T, r *harness.RemoteEngines, engine, fleet string) map[string][2]string {
	t.Helper()
	out, err := r.SSH(engine, "docker", "ps", "-a", "--filter", "label=dev.jackin.fleet="+fleet, "--format", "'{{.Names}} {{.State}} {{.ID}}'")
	if err != nil {
		t.Fatalf("list containers on %s: %v\n%s", engine, err, out)
	}
	m := map[string][2]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 3 {
			m[f[0]] = [2]string{f[1], f[2]}
		}
	}
	return m
}

// TestRemoteEngines: one fleet over the local engine and two remote
// engines reached through ssh (containers running sshd and their own
// dockerd on a private network). It converges with each role image built
// on its engine and a file credential delivered on a remote host (and
// refreshed there in place); a converged diff makes no mutating call; drift on a
// remote engine is repaired and an orphan there collected; with one remote
// engine cut off mid-watch nothing is deleted anywhere, diff exits 2
// naming it, the rest converges, and its return heals; an apply across
// engines killed with SIGKILL converges on the next apply; delete -f
// removes the fleet from every engine and wipes the credential copies on
// the remote hosts.
func TestRemoteEngines(t *testing.T) {
	e := newEnv(t)
	if err := harness.BuildRemoteEngineImage(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	engines, err := harness.StartRemoteEngines(t.TempDir(), "r1", "r2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(engines.Stop)
	t.Logf("two remote engines up in %s", time.Since(started).Round(time.Millisecond))
	sshEnv := []string{"JACKIN_SSH_COMMAND=" + engines.SSHCommand(), "E2E_REMOTE_TOKEN=first-value"}
	run := func(args ...string) result { return e.jackinEnv(sshEnv, args...) }
	// delivered is the credential file as a's container on r1 sees it.
	delivered := func() string {
		t.Helper()
		out, err := engines.SSH("r1", "docker", "cp", e.name("a")+":/run/secrets/E2E_TOKEN", "-")
		if err != nil {
			t.Fatalf("read the delivered credential on r1: %v\n%s", err, out)
		}
		return out
	}

	role := filepath.Join(e.dir, "role")
	if err := os.MkdirAll(role, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := harness.GoBuild(filepath.Join(role, "agent"), "./examples/offline/role/agent"); err != nil {
		t.Fatal(err)
	}
	e.writeFile("role/Dockerfile", "FROM scratch\nCOPY agent /agent\nENTRYPOINT [\"/agent\"]\nCMD [\"idle\"]\n")

	mf := remoteFleet(e, role, []string{"l", "a", "b"}, "")
	mustCode(t, run("apply", "-f", mf), 0, "first apply")
	if e.containers()[e.name("l")] != "running" {
		t.Fatalf("l on the local engine: %v", e.containers())
	}
	if _, ok := e.containers()[e.name("a")]; ok {
		t.Fatalf("a (engine r1) is on the local engine: %v", e.containers())
	}
	r1, r2 := remoteContainers(t, engines, "r1", e.fleet), remoteContainers(t, engines, "r2", e.fleet)
	if r1[e.name("a")][0] != "running" || len(r1) != 1 {
		t.Fatalf("r1 holds %v, want a running", r1)
	}
	if r2[e.name("b")][0] != "running" || len(r2) != 1 {
		t.Fatalf("r2 holds %v, want b running", r2)
	}
	if out, err := engines.SSH("r1", "docker", "image", "ls", "--filter", "label=dev.jackin.built-by", "--format", "'{{.Repository}}'"); err != nil || !strings.Contains(out, "jackin-role") {
		t.Errorf("the role image was not built on r1: %v %s", err, out)
	}

	if got := delivered(); !strings.Contains(got, "first-value") {
		t.Errorf("a's credential file on r1 does not hold the value:\n%q", got)
	}

	// Converged: diff exits 0 and makes no mutating call on any engine.
	d := run("-v", "1", "diff", "-f", mf)
	mustCode(t, d, 0, "converged diff")
	if !strings.Contains(d.stderr, `"mutating":0`) {
		t.Errorf("converged diff: no engine-calls line with mutating 0:\n%s", d.stderr)
	}
	g := run("get", "-f", mf, "-o", "json")
	mustCode(t, g, 0, "get")
	var list struct {
		Items []struct{ Instance, Engine, Observed string }
	}
	if err := json.Unmarshal([]byte(g.stdout), &list); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"l": "local", "a": "r1", "b": "r2"}
	for _, it := range list.Items {
		if want[it.Instance] != it.Engine || it.Observed != "running" {
			t.Errorf("get: %s on %q (%s), want %q running", it.Instance, it.Engine, it.Observed, want[it.Instance])
		}
	}
	if tbl := run("get", "-f", mf, "--no-telemetry"); !strings.Contains(tbl.stdout, "ENGINE") {
		t.Errorf("get table has no ENGINE column:\n%s", tbl)
	}
	x := run("explain", "-f", mf, "a")
	mustCode(t, x, 0, "explain a")
	if !strings.Contains(x.stdout, "r1 (ssh://root@r1)") || !strings.Contains(x.stdout, "root on ssh://root@r1") {
		t.Errorf("a's contract does not name its engine and its host's root:\n%s", x.stdout)
	}

	// A rotated credential is rewritten in place on r1, no recreate.
	aID := remoteContainers(t, engines, "r1", e.fleet)[e.name("a")][1]
	sshEnv[1] = "E2E_REMOTE_TOKEN=second-value"
	mustCode(t, run("apply", "-f", mf), 0, "apply refreshing a's credential")
	if got := delivered(); !strings.Contains(got, "second-value") {
		t.Errorf("a's refreshed credential did not reach r1:\n%q", got)
	}
	if id := remoteContainers(t, engines, "r1", e.fleet)[e.name("a")][1]; id != aID {
		t.Errorf("a was recreated (%s -> %s) for a credential refresh", aID, id)
	}

	// Drift on r1 repaired; an orphan on r2 (c, removed from the manifest)
	// collected.
	if out, err := engines.SSH("r1", "docker", "rm", "-f", e.name("a")); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	withC := remoteFleet(e, role, []string{"l", "a", "b", "c"}, "")
	mustCode(t, run("apply", "-f", withC), 0, "apply repairing a and creating c")
	if remoteContainers(t, engines, "r1", e.fleet)[e.name("a")][0] != "running" {
		t.Fatal("a's drift on r1 was not repaired")
	}
	if remoteContainers(t, engines, "r2", e.fleet)[e.name("c")][0] != "running" {
		t.Fatal("c was not made on r2")
	}
	mf = remoteFleet(e, role, []string{"l", "a", "b"}, "")
	mustCode(t, run("apply", "-f", mf), 0, "apply collecting c")
	if _, ok := remoteContainers(t, engines, "r2", e.fleet)[e.name("c")]; ok {
		t.Fatal("the orphan c on r2 was not collected")
	}

	// r2 cut off mid-watch: nothing deleted anywhere, diff exits 2 naming
	// it, drift elsewhere healed; its return heals.
	bBefore := remoteContainers(t, engines, "r2", e.fleet)[e.name("b")][1]
	w := e.startWatch(sshEnv, "-f", mf, "--resync", "2s")
	w.waitFor("watch started", 60*time.Second, 1, func(l watchLine) bool { return l.Type == "info" && strings.Contains(l.Message, "watching fleet") })
	if err := engines.Cut("r2"); err != nil {
		t.Fatal(err)
	}
	w.waitFor("r2 reported unreachable", 60*time.Second, 1, func(l watchLine) bool {
		return strings.Contains(l.Message, "engine r2 is unreachable")
	})
	docker(t, "rm", "-f", e.name("l"))
	if out, err := engines.SSH("r1", "docker", "rm", "-f", e.name("a")); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	w.waitFor("l healed", 60*time.Second, 1, healed("l", "create|recreate", ""))
	w.waitFor("a healed on r1", 60*time.Second, 1, healed("a", "create|recreate", ""))
	d = run("diff", "-f", mf)
	mustCode(t, d, 2, "diff with r2 cut off")
	if !strings.Contains(d.stderr, "engine r2 is unreachable") || !strings.Contains(d.stdout, "b (unreachable: engine r2)") {
		t.Errorf("diff does not name the cut engine:\n%s", d)
	}
	for _, l := range w.find(func(l watchLine) bool { return l.Type == "action" && l.Instance == "b" }) {
		t.Errorf("watch acted on b while r2 was cut off: %+v", l)
	}
	if err := engines.Restore("r2"); err != nil {
		t.Fatal(err)
	}
	w.waitFor("r2 answers again", 60*time.Second, 1, func(l watchLine) bool {
		return strings.Contains(l.Message, "engine r2 answers again")
	})
	w.alive()
	if code := w.stop(); code != 0 {
		t.Errorf("watch exited %d", code)
	}
	if got := remoteContainers(t, engines, "r2", e.fleet)[e.name("b")]; got[0] != "running" || got[1] != bBefore {
		t.Errorf("b on r2 after the partition: %v, want the same container (%s) running", got, bBefore)
	}
	mustCode(t, run("diff", "-f", mf), 0, "diff after r2's return")

	// watch heals a remote engine from its own event stream: with an hour
	// between resyncs, only r1's events can start the heal.
	w = e.startWatch(sshEnv, "-f", mf, "--resync", "1h")
	w.waitFor("watch started", 60*time.Second, 1, func(l watchLine) bool { return l.Type == "info" && strings.Contains(l.Message, "watching fleet") })
	time.Sleep(2 * time.Second) // the first pass subscribes before it observes; let it finish
	if out, err := engines.SSH("r1", "docker", "rm", "-f", e.name("a")); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	w.waitFor("a healed on r1 from r1's events", 2*time.Minute, 1, healed("a", "create|recreate", "engine"))
	if code := w.stop(); code != 0 {
		t.Errorf("watch exited %d", code)
	}

	// SIGKILL of an apply that recreates on every engine converges.
	changed := remoteFleet(e, role, []string{"l", "a", "b"}, "env: {ROUND: \"2\"}")
	cmd := exec.Command(jackinBin, "--state-dir", e.stateDir, "apply", "-f", changed)
	cmd.Env = append(os.Environ(), sshEnv...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	mustCode(t, run("apply", "-f", changed), 0, "apply after SIGKILL")
	mustCode(t, run("diff", "-f", changed), 0, "diff after the SIGKILL recovery")
	for eng, inst := range map[string]string{"r1": "a", "r2": "b"} {
		got := remoteContainers(t, engines, eng, e.fleet)
		if len(got) != 1 || got[e.name(inst)][0] != "running" {
			t.Errorf("%s after the SIGKILL recovery: %v, want %s running alone", eng, got, inst)
		}
	}

	// delete -f reaches every engine the manifest declares, and wipes the
	// credential copies on r1's tmpfs.
	secretOnR1 := func() string {
		out, _ := engines.SSH("r1", "grep", "-r", "-l", "-e", "second-value", "/dev/shm/jackin-remote")
		return out
	}
	if secretOnR1() == "" {
		t.Fatal("a's credential value is not on r1's tmpfs before the delete")
	}
	mustCode(t, run("delete", "-f", changed), 0, "delete across engines")
	if left := secretOnR1(); left != "" {
		t.Errorf("a's credential value outlived its delete on r1: %s", left)
	}
	for _, eng := range []string{"r1", "r2"} {
		if got := remoteContainers(t, engines, eng, e.fleet); len(got) != 0 {
			t.Errorf("%s after delete: %v", eng, got)
		}
	}
	if got := e.containers(); len(got) != 0 {
		t.Errorf("the local engine after delete: %v", got)
	}
	t.Logf("whole test: %s", time.Since(started).Round(time.Millisecond))
}
