package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Idle cleanup (issue 20) through the real binary: jackin watch stops an
// agent idle for idle.after, get shows it idle-stopped, neither watch nor
// apply starts it again, jackin attach does; action "exec" runs its
// command once per idle period.

// moreScript prints what lands in /tmp/more (a turn of work), else waits.
const moreScript = `trap 'exit 0' TERM INT
while :; do
  if [ -f /tmp/more ]; then cat /tmp/more; rm -f /tmp/more; fi
  sleep 0.1
done`

// idleItem is the idle part of a get -o json item.
type idleItem struct {
	Instance string `json:"instance"`
	Observed string `json:"observed"`
	InSync   bool   `json:"inSync"`
	Idle     *struct {
		After     string    `json:"after"`
		Action    string    `json:"action"`
		IdleSince time.Time `json:"idleSince"`
		Stopped   *struct {
			At  time.Time `json:"at"`
			Why string    `json:"why"`
		} `json:"stopped"`
		LastAction *struct {
			Action     string `json:"action"`
			ExitStatus *int   `json:"exitStatus"`
			Output     string `json:"output"`
		} `json:"lastAction"`
	} `json:"idle"`
}

func (e *env) idleItem(t *testing.T, m, instance string) idleItem {
	t.Helper()
	for _, it := range getItems[idleItem](t, e, "-f", m) {
		if it.Instance == instance {
			return it
		}
	}
	t.Fatalf("get has no %s", instance)
	return idleItem{}
}

func idleLine(instance, text string) func(watchLine) bool {
	return func(l watchLine) bool {
		return l.Type == "idle" && l.Instance == instance && strings.Contains(l.Message, text)
	}
}

func TestIdleCleanupStopsAndAttachWakes(t *testing.T) {
	e := newEnv(t)
	// sleepy stops after 2s idle; busy has no idle policy (the control).
	img, script := shellImage(t), cueString(moreScript)
	m := e.manifest(fmt.Sprintf("instances: {\n"+
		"\tsleepy: {role: image: %q, command: [\"/bin/sh\", \"-c\", %s], idle: {after: \"2s\", action: \"stop\"}}\n"+
		"\tbusy: {role: image: %q, command: [\"/bin/sh\", \"-c\", %s]}\n}\n", img, script, img, script))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	w := e.startWatch(nil, "-f", m, "--resync", "1s")
	w.waitFor("the idle stop", 60*time.Second, 1, idleLine("sleepy", "stopped for idleness"))
	e.waitState("sleepy", "exited", 15*time.Second)

	it := e.idleItem(t, m, "sleepy")
	if it.Observed != "idle-stopped" || !it.InSync || it.Idle == nil || it.Idle.Stopped == nil || !strings.Contains(it.Idle.Stopped.Why, "idle") {
		t.Fatalf("get: %+v, want idle-stopped and in sync with when and why", it)
	}
	// Stopped about after (2s) past the agent going idle: not sooner, and
	// within the 1s check plus the engine's stop.
	if d := it.Idle.Stopped.At.Sub(it.Idle.IdleSince); d < 2*time.Second || d > 8*time.Second {
		t.Fatalf("stopped %s after the agent went idle, want about 2s", d)
	}
	wide := e.jackin("get", "-f", m, "-o", "wide")
	mustCode(t, wide, 0, "get -o wide")
	if !strings.Contains(wide.stdout, "IDLE") || !strings.Contains(wide.stdout, "idle-stopped") || !strings.Contains(wide.stdout, "stopped ") {
		t.Fatalf("get -o wide does not show the idle stop:\n%s", wide.stdout)
	}

	// Watch resyncs every second and does not start it again; the
	// control instance is left running.
	time.Sleep(5 * time.Second)
	w.alive()
	if st := e.containers()[e.name("sleepy")]; st != "exited" {
		t.Fatalf("sleepy is %q 5s after the idle stop, want exited (watch restarted it?)", st)
	}
	if st := e.containers()[e.name("busy")]; st != "running" {
		t.Fatalf("busy (no idle policy) is %q, want running", st)
	}
	if starts := w.find(func(l watchLine) bool { return l.Type == "action" && l.Instance == "sleepy" }); len(starts) > 0 {
		t.Fatalf("watch acted on the idle-stopped instance: %+v", starts)
	}
	if code := w.stop(); code != 0 {
		t.Fatalf("watch exited %d after SIGINT", code)
	}

	// No drift for diff; apply of the same manifest leaves it stopped and says so.
	d := e.jackin("diff", "-f", m)
	mustCode(t, d, 0, "diff of an idle-stopped fleet")
	if !strings.Contains(d.stdout, "Idle-stopped, left stopped") || !strings.Contains(d.stdout, "sleepy") {
		t.Fatalf("diff does not note the idle-stopped instance:\n%s", d.stdout)
	}
	a := e.jackin("apply", "-f", m)
	mustCode(t, a, 0, "apply of an unchanged manifest")
	if !strings.Contains(a.stdout, "Idle-stopped, left stopped") || e.containers()[e.name("sleepy")] != "exited" {
		t.Fatalf("apply started the idle-stopped instance or did not say it is left stopped:\n%s", a)
	}

	// Attach without the manifest cannot start it; with it, it starts,
	// waits for the supervisor, clears the mark and attaches.
	r := e.jackinStdin(strings.NewReader(""), "attach", "--fleet", e.fleet, "sleepy")
	if r.code != 2 || !strings.Contains(r.stderr, "stopped by idle cleanup") {
		t.Fatalf("attach --fleet of an idle-stopped instance: want exit 2 naming idle cleanup, got:\n%s", r)
	}
	r = e.jackinStdin(strings.NewReader(""), "attach", "-f", m, "sleepy")
	mustCode(t, r, 0, "attach -f of an idle-stopped instance")
	if !strings.Contains(r.stderr, "starting sleepy (stopped by idle cleanup)") {
		t.Fatalf("attach did not say it starts the instance:\n%s", r)
	}
	if st := e.containers()[e.name("sleepy")]; st != "running" {
		t.Fatalf("sleepy is %q after attach, want running", st)
	}
	if it := e.idleItem(t, m, "sleepy"); it.Observed != "running" || it.Idle == nil || it.Idle.Stopped != nil {
		t.Fatalf("get after attach: %+v", it)
	}
	h := e.jackin("history", "-f", m, "-o", "json")
	mustCode(t, h, 0, "history")
	var hist struct {
		Idle []struct {
			Instance string `json:"instance"`
			Kind     string `json:"kind"`
			Message  string `json:"message"`
		} `json:"idle"`
	}
	if err := json.Unmarshal([]byte(h.stdout), &hist); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, ev := range hist.Idle {
		if ev.Instance == "sleepy" {
			kinds[ev.Kind] = true
		}
	}
	if !kinds["idle-stop"] || !kinds["idle-wake"] {
		t.Fatalf("history's idle events %+v: want idle-stop and idle-wake of sleepy", hist.Idle)
	}
}

func TestIdleCleanupExecOncePerIdlePeriod(t *testing.T) {
	e := newEnv(t)
	m := e.shellFleet(t, map[string]string{"a": moreScript},
		`, idle: {after: "2s", action: "exec", exec: ["sh", "-c", "echo ran >> /tmp/idle-marker; echo done-$(wc -l < /tmp/idle-marker)"]}`)
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	w := e.startWatch(nil, "-f", m, "--resync", "1s")
	w.waitFor("the idle exec", 60*time.Second, 1, idleLine("a", "idle exec exited with status 0"))
	marker := func() int {
		r := e.jackin("exec", "-f", m, "a", "--", "cat", "/tmp/idle-marker")
		mustCode(t, r, 0, "read the marker")
		return strings.Count(r.stdout, "ran")
	}
	// The agent stays idle: once for this period, however long.
	time.Sleep(5 * time.Second)
	if n := marker(); n != 1 {
		t.Fatalf("the idle command ran %d times in one idle period, want 1", n)
	}
	if st := e.containers()[e.name("a")]; st != "running" {
		t.Fatalf("exec stopped the instance: %q", st)
	}
	// A turn of work, then idle again: a new period, a second run.
	e.more(t, m, "a", "some work\n")
	w.waitFor("the second idle exec", 60*time.Second, 2, idleLine("a", "idle exec exited with status 0"))
	if n := marker(); n != 2 {
		t.Fatalf("the idle command ran %d times over two idle periods, want 2", n)
	}
	it := e.idleItem(t, m, "a")
	if it.Idle == nil || it.Idle.LastAction == nil || it.Idle.LastAction.Action != "exec" || it.Idle.LastAction.ExitStatus == nil ||
		*it.Idle.LastAction.ExitStatus != 0 || !strings.Contains(it.Idle.LastAction.Output, "done-2") {
		t.Fatalf("get's idle view %+v: want the last exec with status 0 and its output", it.Idle)
	}
	if code := w.stop(); code != 0 {
		t.Fatalf("watch exited %d after SIGINT", code)
	}
}

// readScript works on each line typed into it (a prompt): it prints for a
// second, then waits for the next.
const readScript = `trap 'exit 0' TERM INT
while read -r line; do echo "working on: $line"; sleep 1; echo finished; done`

// taskState is the state of task id, from jackin queue list -o json.
func (e *env) taskState(t *testing.T, m, id string) string {
	t.Helper()
	r := e.jackin("queue", "list", "-f", m, "-o", "json")
	mustCode(t, r, 0, "queue list")
	var list struct {
		Items []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("queue list -o json: %v\n%s", err, r)
	}
	for _, it := range list.Items {
		if it.ID == id {
			return it.State
		}
	}
	return ""
}

// TestIdleStoppedInstanceWakesForATask: a task dispatched to an
// idle-stopped instance starts it again (WakeIdle), idle cleanup leaves it
// alone while the task is in flight, and stops it again once the task is
// done and the agent has been idle for after.
func TestIdleStoppedInstanceWakesForATask(t *testing.T) {
	e := newEnv(t)
	if err := os.MkdirAll(filepath.Join(e.dir, "tasks"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := e.manifest(fmt.Sprintf("queue: {sources: [{name: \"t\", dir: \"tasks\"}], instances: [\"sleepy\"]}\n"+
		"instances: sleepy: {role: image: %q, command: [\"/bin/sh\", \"-c\", %s], idle: {after: \"2s\", action: \"stop\"}}\n",
		shellImage(t), cueString(readScript)))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	w := e.startWatch(nil, "-f", m, "--resync", "1s")
	w.waitFor("the idle stop", 60*time.Second, 1, idleLine("sleepy", "stopped for idleness"))
	e.waitState("sleepy", "exited", 15*time.Second)

	e.writeFile("tasks/hello.md", "---\ntitle: say hello\n---\nhello from the queue\n")
	w.waitFor("the wake for the task", 60*time.Second, 1, func(l watchLine) bool { return l.Type == "task-wake" && l.Instance == "sleepy" })
	if st := e.containers()[e.name("sleepy")]; st != "running" {
		t.Fatalf("sleepy is %q after the wake, want running", st)
	}
	if it := e.idleItem(t, m, "sleepy"); it.Observed != "running" || it.Idle == nil || it.Idle.Stopped != nil {
		t.Fatalf("get after the wake: %+v", it)
	}
	// Stopped again only after the task is over and the agent idle for 2s.
	w.waitFor("the second idle stop", 90*time.Second, 2, idleLine("sleepy", "stopped for idleness"))
	if st := e.taskState(t, m, "t:hello"); st != "done" {
		t.Fatalf("idle cleanup stopped sleepy with its task %q, want done first", st)
	}
	if code := w.stop(); code != 0 {
		t.Fatalf("watch exited %d after SIGINT", code)
	}
}
