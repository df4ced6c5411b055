package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/test/harness"
)

// watchLine is one JSON line of `jackin watch -o json`.
type watchLine struct {
	Fleet    string `json:"fleet"`
	Type     string `json:"type"`
	Instance string `json:"instance"`
	Action   string `json:"action"`
	Outcome  string `json:"outcome"`
	Message  string `json:"message"`
	// Task, From and To: a task transition of the queue (type "task").
	Task    string `json:"task"`
	From    string `json:"from"`
	To      string `json:"to"`
	Trigger *struct {
		Source string `json:"source"`
		Detail string `json:"detail"`
	} `json:"trigger"`
	LatencyMs int64 `json:"latencyMs"`
	Crash     *struct {
		Restarts int   `json:"restarts"`
		DelayMs  int64 `json:"delayMs"`
	} `json:"crash"`
}

func (l watchLine) source() string {
	if l.Trigger == nil {
		return ""
	}
	return l.Trigger.Source
}

// watcher is a `jackin watch -o json` running in the background.
type watcher struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{}
	code   int

	mu    sync.Mutex
	lines []watchLine
}

// startWatch runs jackin watch -o json with this env's state dir; the test's
// cleanup kills it if it is still running, before the fleet is removed.
func (e *env) startWatch(extraEnv []string, args ...string) *watcher {
	e.t.Helper()
	all := append([]string{"--state-dir", e.stateDir, "watch", "-o", "json"}, args...)
	w := &watcher{t: e.t, cmd: exec.Command(jackinBin, all...), done: make(chan struct{})}
	w.cmd.Env = append(os.Environ(), extraEnv...)
	w.cmd.Stderr = &w.stderr
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l watchLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				l = watchLine{Type: "unparsed", Message: sc.Text()}
			}
			w.mu.Lock()
			w.lines = append(w.lines, l)
			w.mu.Unlock()
		}
		err := w.cmd.Wait()
		w.code = 0
		if ee, ok := err.(*exec.ExitError); ok {
			w.code = ee.ExitCode()
		}
		close(w.done)
	}()
	e.t.Cleanup(func() {
		select {
		case <-w.done:
		default:
			_ = w.cmd.Process.Kill()
			<-w.done
		}
		if e.t.Failed() {
			e.t.Logf("watch output:\n%s\nwatch stderr:\n%s", w.dump(), w.stderr.String())
		}
	})
	return w
}

func (w *watcher) dump() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, l := range w.lines {
		j, _ := json.Marshal(l)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// find returns the lines matching.
func (w *watcher) find(match func(watchLine) bool) []watchLine {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []watchLine
	for _, l := range w.lines {
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}

// waitFor waits until n lines match, failing after timeout or if watch exits.
func (w *watcher) waitFor(what string, timeout time.Duration, n int, match func(watchLine) bool) []watchLine {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if got := w.find(match); len(got) >= n {
			return got
		}
		select {
		case <-w.done:
			w.t.Fatalf("watch exited (code %d) while waiting for %s", w.code, what)
		default:
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// healed matches a succeeded action on instance by a trigger source; action
// may list alternatives ("create|recreate").
func healed(instance, action, source string) func(watchLine) bool {
	return func(l watchLine) bool {
		return l.Type == "action" && l.Instance == instance && slices.Contains(strings.Split(action, "|"), l.Action) &&
			l.Outcome == "succeeded" && (source == "" || l.source() == source)
	}
}

// stop sends SIGINT and returns the exit code.
func (w *watcher) stop() int {
	w.t.Helper()
	_ = w.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		w.t.Fatal("watch did not exit within 30s of SIGINT")
	}
	return w.code
}

// alive fails the test if watch has exited.
func (w *watcher) alive() {
	w.t.Helper()
	select {
	case <-w.done:
		w.t.Fatalf("watch exited with code %d", w.code)
	default:
	}
}

func (e *env) waitState(instance, state string, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for e.containers()[e.name(instance)] != state {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s is %q after %s, want %q", instance, e.containers()[e.name(instance)], timeout, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func idleInstances(names ...string) string {
	var b strings.Builder
	b.WriteString("instances: {\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %s: {role: image: %q, agent: \"shell\"}\n", n, agentImage)
	}
	b.WriteString("}\n")
	return b.String()
}

func TestWatchHealsEveryKindOfDrift(t *testing.T) {
	e := newEnv(t)
	path := e.manifest(idleInstances("a", "b"))
	w := e.startWatch(nil, "-f", path, "--resync", "1h") // only events heal here
	w.waitFor("a and b created", time.Minute, 2, func(l watchLine) bool { return l.Type == "action" && l.Action == "create" && l.Outcome == "succeeded" })
	e.waitState("a", "running", 10*time.Second)
	e.waitState("b", "running", 10*time.Second)

	docker(t, "kill", e.name("a"))
	w.waitFor("a restarted after docker kill", 30*time.Second, 1, healed("a", "start", "engine"))
	e.waitState("a", "running", 10*time.Second)

	// rm -f is a die then a destroy: a pass may see the container being
	// removed (a recreate) or gone (a create).
	docker(t, "rm", "-f", e.name("b"))
	w.waitFor("b created after docker rm -f", 30*time.Second, 1, healed("b", "create|recreate", "engine"))
	e.waitState("b", "running", 10*time.Second)

	// A network in use cannot be removed: disconnect first, as an operator would.
	docker(t, "network", "disconnect", "-f", e.name("a"), e.name("a"))
	docker(t, "network", "rm", e.name("a"))
	// The disconnect alone already starts a recreate, which can race the
	// removal and fail to start; the retry then comes from the backoff.
	w.waitFor("a recreated after its network was removed", 30*time.Second, 1, healed("a", "recreate", ""))
	e.waitState("a", "running", 10*time.Second)
	if nets := e.networks(); len(nets) != 2 {
		t.Fatalf("networks after the heal: %v", nets)
	}

	// Manifest edits: env (recreate), a new instance (create), a removed one (delete).
	e.manifest(strings.Replace(idleInstances("a", "b"), `a: {`, `a: {env: K: "v", `, 1))
	w.waitFor("a recreated for its env", 30*time.Second, 1, healed("a", "recreate", "file"))
	env := docker(t, "inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", e.name("a"))
	if !strings.Contains(env, "K=v") {
		t.Fatalf("a's env after the edit: %s", env)
	}
	e.manifest(strings.Replace(idleInstances("a", "b", "c"), `a: {`, `a: {env: K: "v", `, 1))
	w.waitFor("c created", 30*time.Second, 1, healed("c", "create", "file"))
	e.waitState("c", "running", 10*time.Second)
	e.manifest(strings.Replace(idleInstances("a", "b"), `a: {`, `a: {env: K: "v", `, 1))
	w.waitFor("c deleted", 30*time.Second, 1, healed("c", "delete", "file"))
	if _, ok := e.containers()[e.name("c")]; ok {
		t.Fatal("c's container is still there")
	}

	// A concurrent apply works, and both agree: nothing left to do.
	mustCode(t, e.jackin("apply", "-f", path), 0, "apply while watch runs")
	mustCode(t, e.jackin("diff", "-f", path), 0, "diff after apply and watch")

	// Every heal is in the store, with its trigger and latency.
	events := e.jackin("history", "--fleet", e.fleet, "-o", "json")
	mustCode(t, events, 0, "history")
	if !strings.Contains(events.stdout, `"verb": "watch"`) || !strings.Contains(events.stdout, "trigger: engine") {
		t.Fatalf("history does not show the watch heals with their triggers:\n%s", events.stdout)
	}
	for _, l := range w.find(func(l watchLine) bool { return l.Type == "action" }) {
		if l.Trigger == nil || l.LatencyMs <= 0 {
			t.Fatalf("an action without trigger or latency: %+v", l)
		}
	}
	if code := w.stop(); code != 0 {
		t.Fatalf("watch exited %d after SIGINT, want 0\n%s", code, w.stderr.String())
	}
}

func TestWatchInvalidManifestKeepsTheFleet(t *testing.T) {
	e := newEnv(t)
	path := e.manifest(idleInstances("a", "b"))
	w := e.startWatch(nil, "-f", path)
	w.waitFor("created", time.Minute, 2, func(l watchLine) bool { return l.Type == "action" && l.Outcome == "succeeded" })
	ids := docker(t, "ps", "-q", "--no-trunc", "--filter", "label=dev.jackin.fleet="+e.fleet)

	e.writeFile("fleet.cue", "apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: "+fmt.Sprintf("%q", e.fleet)+"\ninstances: {\n  a: {role: image: 42}\n")
	errs := w.waitFor("the manifest error", 30*time.Second, 1, func(l watchLine) bool { return l.Type == "error" })
	if !strings.Contains(errs[0].Message, "fleet.cue:") {
		t.Fatalf("the error does not name file:line: %q", errs[0].Message)
	}
	// An emptied manifest is refused the same way.
	e.manifest("instances: {}\n")
	w.waitFor("the empty-manifest error", 30*time.Second, 2, func(l watchLine) bool { return l.Type == "error" })
	time.Sleep(time.Second)
	w.alive()
	if now := docker(t, "ps", "-q", "--no-trunc", "--filter", "label=dev.jackin.fleet="+e.fleet); now != ids {
		t.Fatalf("containers changed under an invalid manifest:\nbefore %s\nafter  %s", ids, now)
	}
	// Still healing with the last valid manifest.
	docker(t, "kill", e.name("a"))
	w.waitFor("a restarted under the last valid manifest", 30*time.Second, 1, healed("a", "start", "engine"))

	// Fixed, with a new instance: applied.
	e.manifest(idleInstances("a", "b", "c"))
	w.waitFor("c created after the fix", 30*time.Second, 1, healed("c", "create", "file"))
	if n := len(w.find(func(l watchLine) bool { return l.Type == "action" && l.Action == "delete" })); n != 0 {
		t.Fatalf("%d deletes during the invalid period", n)
	}
	if code := w.stop(); code != 0 {
		t.Fatalf("watch exited %d after SIGINT, want 0", code)
	}
}

func TestWatchSurvivesTheEngineGoingAway(t *testing.T) {
	// The engine here is shared with other tests and may not be ours to
	// restart, so the restart is simulated: jackin reaches the engine
	// through a proxy that cuts every connection (the event stream ends)
	// and refuses new ones for a while, then comes back.
	e := newEnv(t)
	proxy, err := harness.StartEngineProxy()
	if err != nil {
		t.Skipf("cannot proxy the engine: %v", err)
	}
	defer proxy.Close()
	path := e.manifest(idleInstances("a", "b"))
	w := e.startWatch([]string{"DOCKER_HOST=" + proxy.Host()}, "-f", path, "--resync", "1h")
	w.waitFor("created", time.Minute, 2, func(l watchLine) bool { return l.Type == "action" && l.Outcome == "succeeded" })
	e.waitState("a", "running", 10*time.Second)

	proxy.Down()
	w.waitFor("the stream end noticed", 10*time.Second, 1, func(l watchLine) bool { return l.source() == "stream-ended" })
	// While jackin cannot see the engine: one instance removed, one stopped.
	docker(t, "rm", "-f", e.name("a"))
	docker(t, "stop", "-t", "1", e.name("b"))
	time.Sleep(time.Second)
	if err := proxy.Up(); err != nil {
		t.Fatal(err)
	}
	w.waitFor("the reconnect", 30*time.Second, 1, func(l watchLine) bool { return l.source() == "reconnect" })
	w.waitFor("a created by the resync after the reconnect", 30*time.Second, 1, healed("a", "create", "reconnect"))
	w.waitFor("b started by the resync after the reconnect", 30*time.Second, 1, healed("b", "start", "reconnect"))
	e.waitState("a", "running", 10*time.Second)
	e.waitState("b", "running", 10*time.Second)
	if code := w.stop(); code != 0 {
		t.Fatalf("watch exited %d after SIGINT, want 0", code)
	}
}

func TestWatchCrashLoopBacksOff(t *testing.T) {
	e := newEnv(t)
	path := e.manifest(fmt.Sprintf("instances: {\n  crash: {role: image: %q, agent: \"shell\", command: [\"exit\", \"3\"]}\n  ok: {role: image: %q, agent: \"shell\"}\n}\n", agentImage, agentImage))
	w := e.startWatch(nil, "-f", path, "--resync", "2s")
	w.waitFor("a delay of 4s", 90*time.Second, 1, func(l watchLine) bool {
		return l.Type == "crashloop" && l.Crash != nil && l.Crash.DelayMs >= 4000
	})

	// get shows it while watch runs.
	r := e.jackin("get", "-f", path, "-o", "json")
	mustCode(t, r, 0, "get")
	var list struct {
		Items []struct {
			Instance    string `json:"instance"`
			Observed    string `json:"observed"`
			Restarts    int    `json:"restarts"`
			NextAttempt string `json:"nextAttempt"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatal(err)
	}
	for _, it := range list.Items {
		switch it.Instance {
		case "crash":
			if it.Observed != "crashloop" || it.Restarts < 3 || it.NextAttempt == "" {
				t.Fatalf("get shows %+v for the crashing instance", it)
			}
		case "ok":
			if it.Observed != "running" {
				t.Fatalf("get shows %+v for the healthy instance", it)
			}
		}
	}
	table := e.jackin("get", "-f", path)
	if !strings.Contains(table.stdout, "crashloop (") {
		t.Fatalf("the table does not show the crash loop:\n%s", table.stdout)
	}

	starts := w.find(func(l watchLine) bool {
		return l.Type == "action" && l.Instance == "crash" && l.Outcome == "succeeded" && (l.Action == "start" || l.Action == "create")
	})
	// 0, at once, +1s, +2s, +4s: a few starts, where a hot loop (or the
	// 2s resync alone) would make many more.
	if len(starts) < 3 || len(starts) > 7 {
		t.Fatalf("%d starts before the 4s delay; want 3 to 7", len(starts))
	}
	var delays []int64
	for _, l := range w.find(func(l watchLine) bool { return l.Type == "crashloop" }) {
		delays = append(delays, l.Crash.DelayMs)
	}
	for i := 1; i < len(delays); i++ {
		if delays[i] < delays[i-1] {
			t.Fatalf("delays do not grow: %v", delays)
		}
	}
	if code := w.stop(); code != 0 {
		t.Fatalf("watch exited %d after SIGINT, want 0", code)
	}
	// With watch gone, nobody is restarting it: get no longer says crashloop.
	if after := e.jackin("get", "-f", path); strings.Contains(after.stdout, "crashloop") {
		t.Fatalf("get still shows a crash loop after watch exited:\n%s", after.stdout)
	}
}

func TestWatchWarnModeChangesNothing(t *testing.T) {
	e := newEnv(t)
	path := e.manifest(idleInstances("a", "b"))
	mustCode(t, e.jackin("apply", "-f", path), 0, "apply")
	docker(t, "kill", e.name("a"))
	e.manifest(idleInstances("a", "b", "c"))
	before := docker(t, "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.State}}", "--filter", "label=dev.jackin.fleet="+e.fleet)

	w := e.startWatch(nil, "-f", path, "--mode", "warn", "--resync", "1s")
	drift := w.waitFor("drift of a and c", 30*time.Second, 2, func(l watchLine) bool { return l.Type == "drift" })
	got := map[string]string{}
	for _, d := range drift {
		got[d.Instance] = d.Action
	}
	if got["a"] != "start" || got["c"] != "create" {
		t.Fatalf("drift reported: %v", got)
	}
	docker(t, "kill", e.name("b"))
	w.waitFor("drift of b", 30*time.Second, 1, func(l watchLine) bool { return l.Type == "drift" && l.Instance == "b" })
	time.Sleep(3 * time.Second) // three resyncs: each drift is reported once
	if n := len(w.find(func(l watchLine) bool { return l.Type == "drift" })); n != 3 {
		t.Fatalf("%d drift lines, want 3 (a, b, c once each)", n)
	}
	if n := len(w.find(func(l watchLine) bool { return l.Type == "action" })); n != 0 {
		t.Fatalf("warn mode ran %d actions", n)
	}
	after := docker(t, "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.State}}", "--filter", "label=dev.jackin.fleet="+e.fleet)
	if strings.Count(after, "running") != 0 || len(strings.Fields(after)) != len(strings.Fields(before)) {
		t.Fatalf("warn mode changed the engine:\nbefore %s\nafter  %s", before, after)
	}
	if code := w.stop(); code != 0 {
		t.Fatalf("watch exited %d after SIGINT, want 0", code)
	}
}

func TestWatchMakesAndKeepsWorktrees(t *testing.T) {
	e := newEnv(t)
	src, _ := gitRepo(t, 1)
	inst := func(names ...string) string {
		var b strings.Builder
		b.WriteString("instances: {\n")
		for _, n := range names {
			fmt.Fprintf(&b, "  %s: {role: image: %q, agent: \"shell\", mounts: [{src: %q, dst: \"/work\", mode: \"worktree\"}]}\n", n, agentImage, src)
		}
		b.WriteString("}\n")
		return b.String()
	}
	path := e.manifest(inst("a"))
	w := e.startWatch(nil, "-f", path)
	w.waitFor("a created with its worktree", time.Minute, 1, healed("a", "create", ""))
	if !exists(filepath.Join(e.checkoutPath("a"), "README")) {
		t.Fatalf("no worktree at %s", e.checkoutPath("a"))
	}
	// Uncommitted work in the worktree, then the instance leaves the
	// manifest: watch deletes it but keeps the dirty checkout.
	if err := os.WriteFile(filepath.Join(e.checkoutPath("a"), "wip.txt"), []byte("unsaved\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.manifest(inst("b"))
	w.waitFor("a deleted", time.Minute, 1, healed("a", "delete", "file"))
	w.waitFor("b created", time.Minute, 1, healed("b", "create", "file"))
	if !exists(filepath.Join(e.checkoutPath("a"), "wip.txt")) {
		t.Fatal("watch's delete removed a dirty worktree")
	}
	kept := false
	for _, c := range e.work().Checkouts {
		if c.Instance == "a" && c.Status == "preserved-dirty" {
			kept = true
		}
	}
	if !kept {
		t.Fatalf("jackin work does not report a's checkout as preserved-dirty: %+v", e.work().Checkouts)
	}
	if code := w.stop(); code != 0 {
		t.Fatalf("watch exited %d after SIGINT, want 0", code)
	}
}

func TestWatchRefusesADirtySourceWithoutForce(t *testing.T) {
	e := newEnv(t)
	src, _ := gitRepo(t, 1)
	if err := os.WriteFile(filepath.Join(src, "README"), []byte("uncommitted\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := e.manifest(fmt.Sprintf("instances: a: {role: image: %q, agent: \"shell\", mounts: [{src: %q, dst: \"/work\", mode: \"worktree\"}]}\n", agentImage, src))
	w := e.startWatch(nil, "-f", path)
	failed := w.waitFor("a's create refused", time.Minute, 1, func(l watchLine) bool {
		return l.Type == "action" && l.Instance == "a" && l.Outcome == "failed"
	})
	if !strings.Contains(failed[0].Message, "uncommitted changes") || !strings.Contains(failed[0].Message, "--force") {
		t.Fatalf("the refusal does not say why and how to proceed: %q", failed[0].Message)
	}
	if exists(e.checkoutPath("a")) {
		t.Fatal("a worktree was made from a dirty source without --force")
	}
	w.alive()
	if code := w.stop(); code != 0 {
		t.Fatalf("watch exited %d after SIGINT, want 0", code)
	}
	// With --force, it is made (from HEAD).
	w2 := e.startWatch(nil, "-f", path, "--force")
	w2.waitFor("a created with --force", time.Minute, 1, healed("a", "create", ""))
	if code := w2.stop(); code != 0 {
		t.Fatalf("watch --force exited %d after SIGINT, want 0", code)
	}
}

func TestWatchRecordsOOMKills(t *testing.T) {
	e := newEnv(t)
	path := e.manifest(fmt.Sprintf("instances: hog: {role: image: %q, agent: \"shell\", command: [\"/agent\", \"alloc\", \"256\"], resources: memory: \"32Mi\"}\n", agentImage))
	w := e.startWatch(nil, "-f", path)
	// Each run is OOM-killed at once: watch restarts it with backoff, and
	// records every kill before the restart clears the engine's flag.
	w.waitFor("a crash loop of OOM kills", 90*time.Second, 1, func(l watchLine) bool { return l.Type == "crashloop" && l.Instance == "hog" })
	if code := w.stop(); code != 0 {
		t.Fatalf("watch exited %d after SIGINT, want 0", code)
	}
	st, err := store.Open(context.Background(), e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.Events(context.Background(), e.fleet, 0)
	if err != nil {
		t.Fatal(err)
	}
	ooms := 0
	for _, ev := range evs {
		if ev.Kind == "oom-killed" && ev.Instance == "hog" {
			ooms++
		}
	}
	if ooms == 0 {
		t.Fatalf("no oom-killed event in the store after watch restarted an OOM-killed instance: %+v", evs)
	}
}
