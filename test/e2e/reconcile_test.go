package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// instancesCUE renders n idle instances named a0..a(n-1) with the given env value.
func instancesCUE(names []string, extra string) string {
	var b strings.Builder
	b.WriteString("instances: {\n")
	for _, n := range names {
		fmt.Fprintf(&b, "\t%q: {role: image: %q, command: [\"/agent\", \"idle\"]%s}\n", n, agentImage, extra)
	}
	b.WriteString("}\n")
	return b.String()
}

// engineCalls reads the "engine calls" log line jackin writes at -v 1.
func engineCalls(t *testing.T, stderr string) (total, mutating int) {
	t.Helper()
	for _, line := range strings.Split(stderr, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "engine calls" {
			continue
		}
		return int(rec["total"].(float64)), int(rec["mutating"].(float64))
	}
	t.Fatalf("no \"engine calls\" log line in stderr:\n%s", stderr)
	return 0, 0
}

// engineEvents returns the engine's events for the fleet since a moment.
func engineEvents(t *testing.T, fleet string, since, until time.Time) []string {
	t.Helper()
	return dockerLines(t, "events", "--since", fmt.Sprint(since.Unix()), "--until", fmt.Sprint(until.Unix()+1),
		"--filter", "label=dev.jackin.fleet="+fleet, "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
}

func TestApplyThenConverged(t *testing.T) {
	e := newEnv(t)
	m := e.manifest(instancesCUE([]string{"web", "api"}, `, env: {MODE: "a"}`))

	r := e.jackin("apply", "-f", m)
	mustCode(t, r, 0, "first apply")
	for _, want := range []string{"+ api", "+ web", "Plan: 2 to create, 0 to recreate, 0 to start, 0 to stop, 0 to delete.", "web: created"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("first apply output lacks %q:\n%s", want, r)
		}
	}
	got := e.containers()
	if got[e.name("web")] != "running" || got[e.name("api")] != "running" || len(got) != 2 {
		t.Fatalf("containers after apply: %v", got)
	}
	if n := len(e.networks()); n != 2 {
		t.Fatalf("want 2 networks, got %d", n)
	}
	// Labels from design.md.
	labels := docker(t, "inspect", "--format", "{{json .Config.Labels}}", e.name("web"))
	for _, want := range []string{`"dev.jackin.managed-by":"jackin"`, `"dev.jackin.fleet":"` + e.fleet + `"`, `"dev.jackin.instance":"web"`, `"dev.jackin.component":"agent"`, `"dev.jackin.spec-hash":"`} {
		if !strings.Contains(labels, want) {
			t.Errorf("labels %s lack %s", labels, want)
		}
	}
	if rp := docker(t, "inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}", e.name("web")); rp != "no" {
		t.Errorf("restart policy %q, want no", rp)
	}

	// The second apply changes nothing: zero mutating engine calls, no engine events.
	time.Sleep(1100 * time.Millisecond) // events have one-second resolution
	since := time.Now()
	r = e.jackin("apply", "-f", m, "-v", "1", "--log-format", "json")
	mustCode(t, r, 0, "second apply")
	if !strings.Contains(r.stdout, fmt.Sprintf("No changes. Fleet %q matches the manifest.", e.fleet)) {
		t.Errorf("second apply should report no changes:\n%s", r)
	}
	total, mutating := engineCalls(t, r.stderr)
	if mutating != 0 {
		t.Errorf("second apply made %d mutating engine calls (total %d):\n%s", mutating, total, r.stderr)
	}
	if ev := engineEvents(t, e.fleet, since, time.Now()); len(ev) > 0 {
		t.Errorf("second apply caused engine events: %v", ev)
	}

	r = e.jackin("diff", "-f", m, "-v", "1", "--log-format", "json")
	mustCode(t, r, 0, "diff when converged")
	total, mutating = engineCalls(t, r.stderr)
	// ping, and one list per kind: containers, networks, volumes, images.
	if mutating != 0 || total > 5 {
		t.Errorf("diff on a converged fleet made %d calls (%d mutating); want at most 5 (ping + one list per kind):\n%s", total, mutating, r.stderr)
	}

	// get and history report the fleet.
	r = e.jackin("get", "-f", m, "-o", "json")
	mustCode(t, r, 0, "get")
	var list struct {
		Items []struct {
			Instance, Desired, Observed string
			InSync                      bool
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("get -o json: %v\n%s", err, r)
	}
	if len(list.Items) != 2 || !list.Items[0].InSync || list.Items[0].Observed != "running" {
		t.Errorf("get: %+v", list.Items)
	}
	r = e.jackin("history", "-f", m)
	mustCode(t, r, 0, "history")
	if !strings.Contains(r.stdout, "create") || !strings.Contains(r.stdout, "succeeded") {
		t.Errorf("history lacks the create run:\n%s", r)
	}
}

func TestDriftIsDetectedAndRepaired(t *testing.T) {
	e := newEnv(t)
	m := e.manifest(instancesCUE([]string{"web"}, `, env: {MODE: "a"}`))
	mustCode(t, e.jackin("apply", "-f", m), 0, "initial apply")
	web := e.name("web")

	cases := []struct {
		name   string
		drift  func()
		action string
		reason string
	}{
		{"docker stop", func() { docker(t, "stop", "-t", "1", web) }, "start", "container is exited"},
		{"docker rm -f", func() { docker(t, "rm", "-f", web) }, "create", "container " + web + " is missing"},
		{"env changed in manifest", func() {
			e.manifest(instancesCUE([]string{"web"}, `, env: {MODE: "b"}`))
		}, "recreate", "env changed"},
		{"image changed in manifest", func() {
			e.manifest(strings.Replace(instancesCUE([]string{"web"}, `, env: {MODE: "b"}`), agentImage, agentImageV2, 1))
		}, "recreate", "image changed"},
		{"network removed", func() {
			docker(t, "network", "disconnect", "-f", web, web)
			docker(t, "network", "rm", web)
		}, "recreate", "network " + web + " is missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.drift()
			r := e.jackin("diff", "-f", m, "-o", "json")
			mustCode(t, r, 1, "diff after drift")
			var plan struct {
				Actions []struct {
					Instance, Action string
					Reasons          []string
				}
			}
			if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil {
				t.Fatalf("plan json: %v\n%s", err, r)
			}
			if len(plan.Actions) != 1 || plan.Actions[0].Action != c.action || !strings.Contains(strings.Join(plan.Actions[0].Reasons, "; "), c.reason) {
				t.Fatalf("want %s with reason %q, got %+v", c.action, c.reason, plan.Actions)
			}
			r = e.jackin("apply", "-f", m)
			mustCode(t, r, 0, "apply repairs")
			mustCode(t, e.jackin("diff", "-f", m), 0, "diff after repair")
			if st := e.containers()[web]; st != "running" {
				t.Fatalf("after repair %s is %q", web, st)
			}
		})
	}
	// The env reason names the key, never the value.
	if img := docker(t, "inspect", "--format", "{{.Config.Image}}", web); img != agentImageV2 {
		t.Errorf("image after change: %s", img)
	}
}

func TestOrphanDeletedOthersUntouched(t *testing.T) {
	e := newEnv(t)
	other := newEnv(t)
	m := e.manifest(instancesCUE([]string{"keep", "gone"}, ""))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	om := other.manifest(instancesCUE([]string{"gone"}, ""))
	mustCode(t, other.jackin("apply", "-f", om), 0, "apply other fleet")
	// An unlabelled container whose name looks like one of ours.
	lookalike := e.name("gone") + "-x"
	docker(t, "run", "-d", "--name", lookalike, agentImage)
	t.Cleanup(func() { _, _ = exec.Command("docker", "rm", "-f", lookalike).CombinedOutput() })

	m = e.manifest(instancesCUE([]string{"keep"}, ""))
	r := e.jackin("diff", "-f", m)
	mustCode(t, r, 1, "diff")
	if !strings.Contains(r.stdout, "- gone") || !strings.Contains(r.stdout, "not in the manifest") {
		t.Fatalf("diff should plan the orphan's delete:\n%s", r)
	}
	// --prune=false only reports.
	r = e.jackin("apply", "-f", m, "--prune=false")
	mustCode(t, r, 0, "apply --prune=false")
	if _, ok := e.containers()[e.name("gone")]; !ok {
		t.Fatalf("--prune=false deleted the orphan:\n%s", r)
	}
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply prunes")
	got := e.containers()
	if _, ok := got[e.name("gone")]; ok || len(got) != 1 {
		t.Fatalf("after prune: %v", got)
	}
	if n := len(e.networks()); n != 1 {
		t.Errorf("orphan network left behind: %v", e.networks())
	}
	if st := other.containers()[other.name("gone")]; st != "running" {
		t.Errorf("other fleet's container was touched: %q", st)
	}
	if st := docker(t, "inspect", "--format", "{{.State.Status}}", lookalike); st != "running" {
		t.Errorf("unlabelled look-alike was touched: %q", st)
	}

	// An empty manifest deletes nothing without --allow-empty.
	empty := e.manifest("instances: {}\n")
	r = e.jackin("apply", "-f", empty)
	mustCode(t, r, 2, "apply of an empty fleet")
	if !strings.Contains(r.stderr, "--allow-empty") || len(e.containers()) != 1 {
		t.Fatalf("empty manifest guard:\n%s\ncontainers: %v", r, e.containers())
	}
	mustCode(t, e.jackin("apply", "-f", empty, "--allow-empty"), 0, "apply --allow-empty")
	if len(e.containers()) != 0 || len(e.networks()) != 0 {
		t.Fatalf("--allow-empty left objects: %v %v", e.containers(), e.networks())
	}
}

func TestStateStoppedThenRunning(t *testing.T) {
	e := newEnv(t)
	m := e.manifest(instancesCUE([]string{"web"}, ""))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	m = e.manifest(instancesCUE([]string{"web"}, `, state: "stopped"`))
	r := e.jackin("apply", "-f", m)
	mustCode(t, r, 0, "apply stopped")
	if !strings.Contains(r.stdout, "1 to stop") {
		t.Fatalf("plan summary missing:\n%s", r)
	}
	if st := e.containers()[e.name("web")]; st != "exited" {
		t.Fatalf("want exited, got %q\n%s", st, r)
	}
	mustCode(t, e.jackin("diff", "-f", m), 0, "diff converged when stopped")
	m = e.manifest(instancesCUE([]string{"web"}, ""))
	r = e.jackin("apply", "-f", m)
	mustCode(t, r, 0, "apply running")
	if !strings.Contains(r.stdout, "1 to start") {
		t.Errorf("want a start:\n%s", r)
	}
	if st := e.containers()[e.name("web")]; st != "running" {
		t.Fatalf("want running, got %q", st)
	}
}

func TestConcurrentAppliesTakeTurns(t *testing.T) {
	e := newEnv(t)
	names := make([]string, 6)
	for i := range names {
		names[i] = fmt.Sprintf("c%d", i)
	}
	m := e.manifest(instancesCUE(names, ""))
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.jackin("apply", "-f", m, "--parallel", "2")
		}()
	}
	wg.Wait()
	waited := 0
	for i, r := range results {
		mustCode(t, r, 0, fmt.Sprintf("apply %d", i))
		if strings.Contains(r.stderr, "Waiting for the lock") {
			waited++
		}
	}
	if waited != 1 {
		t.Errorf("want exactly one apply to wait for the lock, got %d:\n%s\n%s", waited, results[0], results[1])
	}
	if got := e.containers(); len(got) != len(names) {
		t.Fatalf("want %d containers, got %v", len(names), got)
	}
	mustCode(t, e.jackin("diff", "-f", m), 0, "diff after both")

	// A lock held longer than --lock-timeout: exit 2 naming the holder.
	slow := e.manifest(instancesCUE(append(names, "d0", "d1", "d2", "d3"), ""))
	first := exec.Command(jackinBin, "--state-dir", e.stateDir, "apply", "-f", slow, "--parallel", "1")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	r := e.jackin("apply", "-f", slow, "--lock-timeout", "100ms")
	_ = first.Wait()
	if r.code == 0 {
		t.Skip("the first apply finished before the second asked for the lock")
	}
	mustCode(t, r, 2, "apply with a short --lock-timeout")
	if !strings.Contains(r.stderr, "jackin apply (pid") {
		t.Errorf("timeout message should name the holder:\n%s", r)
	}
}

func TestInvalidManifestChangesNothing(t *testing.T) {
	e := newEnv(t)
	m := e.writeFile("fleet.cue", fmt.Sprintf("apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: %q\ninstances: web: {role: image: %q, state: \"paused\"}\n", e.fleet, agentImage))
	for _, verb := range []string{"apply", "diff", "validate"} {
		r := e.jackin(verb, "-f", m)
		mustCode(t, r, 2, verb+" of an invalid manifest")
		if !strings.Contains(r.stderr, "fleet.cue:4:") {
			t.Errorf("%s: error should name fleet.cue:4:\n%s", verb, r)
		}
	}
	if len(e.containers()) != 0 || len(e.networks()) != 0 {
		t.Fatalf("invalid manifest changed the engine: %v %v", e.containers(), e.networks())
	}
}

func TestEngineUnreachable(t *testing.T) {
	e := newEnv(t)
	m := e.manifest(instancesCUE([]string{"web"}, ""))
	for _, verb := range []string{"diff", "apply", "get"} {
		r := e.jackinEnv([]string{"DOCKER_HOST=unix:///nonexistent/docker.sock"}, verb, "-f", m)
		mustCode(t, r, 2, verb+" with no engine")
		if !strings.Contains(r.stderr, "unix:///nonexistent/docker.sock") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("%s: want one line naming the endpoint:\n%s", verb, r)
		}
	}
}

func TestNameTakenByUnownedContainer(t *testing.T) {
	e := newEnv(t)
	squatter := e.name("web")
	docker(t, "run", "-d", "--name", squatter, agentImage)
	t.Cleanup(func() { _, _ = exec.Command("docker", "rm", "-f", squatter).CombinedOutput() })
	m := e.manifest(instancesCUE([]string{"web", "ok"}, ""))
	r := e.jackin("apply", "-f", m)
	mustCode(t, r, 1, "apply with a squatted name")
	if !strings.Contains(r.stdout, "already taken by unlabelled") {
		t.Errorf("error should name the unowned object:\n%s", r)
	}
	if st := docker(t, "inspect", "--format", "{{.State.Status}}", squatter); st != "running" {
		t.Errorf("the unowned container was touched: %s", st)
	}
	if st := e.containers()[e.name("ok")]; st != "running" {
		t.Errorf("the other instance should still be created, got %q\n%s", st, r)
	}
}

func TestMissingImageNamesImageAndInstance(t *testing.T) {
	e := newEnv(t)
	m := e.manifest(`instances: web: role: image: "jackin-e2e-absent:nope"` + "\n")
	r := e.jackin("apply", "-f", m)
	mustCode(t, r, 1, "apply with a missing image")
	if !strings.Contains(r.stdout, "jackin-e2e-absent:nope") || !strings.Contains(r.stdout, "web") {
		t.Errorf("error should name the image and the instance:\n%s", r)
	}
}

func TestSIGKILLMidwayThenConverges(t *testing.T) {
	e := newEnv(t)
	names := make([]string, 20)
	for i := range names {
		names[i] = fmt.Sprintf("k%02d", i)
	}
	m := e.manifest(instancesCUE(names, ""))
	cmd := exec.Command(jackinBin, "--state-dir", e.stateDir, "apply", "-f", m, "--parallel", "4")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(e.containers()) < 4 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	killedMidway := len(e.containers()) < 20
	if !killedMidway {
		t.Logf("apply finished before SIGKILL; the re-apply check still runs")
	}
	r := e.jackin("apply", "-f", m)
	mustCode(t, r, 0, "apply after SIGKILL")
	got := e.containers()
	if len(got) != 20 {
		t.Fatalf("want 20 containers, got %d: %v", len(got), got)
	}
	for name, st := range got {
		if st != "running" {
			t.Errorf("%s is %s", name, st)
		}
	}
	if nets := e.networks(); len(nets) != 20 {
		t.Fatalf("want 20 networks (no duplicates, no orphans), got %d: %v", len(nets), nets)
	}
	mustCode(t, e.jackin("diff", "-f", m), 0, "diff after recovery")
	r = e.jackin("history", "-f", m)
	if killedMidway && !strings.Contains(r.stdout, "interrupted") {
		t.Errorf("history should show the killed run as interrupted:\n%s", r)
	}
}

func TestDeleteCommand(t *testing.T) {
	e := newEnv(t)
	m := e.manifest(instancesCUE([]string{"a", "b"}, ""))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	r := e.jackin("delete", "-f", m, "a")
	mustCode(t, r, 0, "delete a")
	if got := e.containers(); len(got) != 1 || got[e.name("b")] == "" {
		t.Fatalf("after delete a: %v", got)
	}
	r = e.jackin("delete", "--fleet", e.fleet)
	mustCode(t, r, 0, "delete fleet")
	if len(e.containers()) != 0 || len(e.networks()) != 0 {
		t.Fatalf("delete --fleet left %v %v", e.containers(), e.networks())
	}
	mustCode(t, e.jackin("delete", "--fleet", e.fleet), 0, "delete of an empty fleet")
}

// TestMoreInstancesThanDefaultAddressPools creates more per-instance networks
// than the engine's default address pools hold (about thirty): jackin assigns
// each network a /28 from its own pool.
func TestMoreInstancesThanDefaultAddressPools(t *testing.T) {
	e := newEnv(t)
	names := make([]string, 40)
	for i := range names {
		names[i] = fmt.Sprintf("p%02d", i)
	}
	m := e.manifest(instancesCUE(names, ""))
	r := e.jackin("apply", "-f", m)
	mustCode(t, r, 0, "apply of 40 instances")
	if n := len(e.networks()); n != 40 {
		t.Fatalf("want 40 networks, got %d", n)
	}
	subnets := map[string]bool{}
	for _, n := range e.networks() {
		s := docker(t, "network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", n)
		if !strings.HasPrefix(s, "10.213.") || !strings.HasSuffix(s, "/28") || subnets[s] {
			t.Fatalf("network %s has subnet %q: want a distinct /28 from 10.213.0.0/16", n, s)
		}
		subnets[s] = true
	}
}

// TestRoleBuildRebuildsOnlyWhenTheContextChanges builds the role image
// through the engine API, tagged by a hash of the build context.
func TestRoleBuildRebuildsOnlyWhenTheContextChanges(t *testing.T) {
	e := newEnv(t)
	ctxDir := filepath.Join(e.dir, "role")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// FROM an image already on the engine: no registry is needed.
	e.writeFile("role/Dockerfile", "FROM "+agentImage+"\nCOPY note.txt /note.txt\n")
	e.writeFile("role/note.txt", "v1 "+e.fleet+"\n")
	m := e.manifest(`instances: web: {role: build: context: "./role", command: ["/agent", "idle"]}` + "\n")

	r := e.jackin("apply", "-f", m)
	mustCode(t, r, 0, "first apply builds")
	if !strings.Contains(r.stderr, "Successfully built") {
		t.Errorf("build progress should stream to stderr:\n%s", r)
	}
	tag1 := docker(t, "inspect", "--format", "{{.Config.Image}}", e.name("web"))
	if !strings.HasPrefix(tag1, "jackin-role:") {
		t.Fatalf("image %q is not a jackin-role:<context hash> tag", tag1)
	}
	t.Cleanup(func() { _, _ = exec.Command("docker", "rmi", "-f", tag1).CombinedOutput() })

	r = e.jackin("apply", "-f", m)
	mustCode(t, r, 0, "second apply")
	if strings.Contains(r.stderr, "Step 1/") || !strings.Contains(r.stdout, "No changes.") {
		t.Errorf("an unchanged context must not rebuild or recreate:\n%s", r)
	}

	e.writeFile("role/note.txt", "v2 "+e.fleet+"\n")
	r = e.jackin("diff", "-f", m)
	mustCode(t, r, 1, "diff after a context change")
	if !strings.Contains(r.stdout, "image changed: "+tag1) {
		t.Errorf("want an image change from %s:\n%s", tag1, r)
	}
	r = e.jackin("apply", "-f", m)
	mustCode(t, r, 0, "apply rebuilds")
	tag2 := docker(t, "inspect", "--format", "{{.Config.Image}}", e.name("web"))
	t.Cleanup(func() { _, _ = exec.Command("docker", "rmi", "-f", tag2).CombinedOutput() })
	if tag2 == tag1 || !strings.Contains(r.stderr, "Successfully built") {
		t.Fatalf("context change should rebuild to a new tag: %s -> %s\n%s", tag1, tag2, r)
	}
}
