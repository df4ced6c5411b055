package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/fake"
	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/supervisor"
	"github.com/jackin-dev/jackin/taskqueue"
)

// execFake is the in-memory backend with an exec: the relay answers
// status requests with status; any other command is recorded and prints
// output with exit status code.
type execFake struct {
	*fake.Driver
	mu     sync.Mutex
	status supervisor.Status
	ran    [][]string
	output string
	code   int
}

func (f *execFake) Exec(_ context.Context, id string, o drivers.ExecOptions) (drivers.ExecSession, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(o.Cmd) == 2 && o.Cmd[1] == "agent-relay" {
		b, _ := json.Marshal(f.status)
		return &fakeSession{out: bytes.NewReader(append(b, '\n'))}, nil
	}
	f.ran = append(f.ran, append([]string{id}, o.Cmd...))
	return &fakeSession{out: strings.NewReader(f.output), code: f.code}, nil
}

func (f *execFake) setStatus(st supervisor.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = st
}

func (f *execFake) commands() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.ran...)
}

type fakeSession struct {
	out  io.Reader
	code int
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func (s *fakeSession) Stdin() io.WriteCloser                    { return nopCloser{io.Discard} }
func (s *fakeSession) Stdout() io.Reader                        { return s.out }
func (s *fakeSession) Stderr() io.Reader                        { return strings.NewReader("") }
func (s *fakeSession) Resize(context.Context, uint, uint) error { return nil }
func (s *fakeSession) Wait(context.Context) (int, error)        { return s.code, nil }
func (s *fakeSession) Close() error                             { return nil }

// idleFleet is one instance "web" with the idle policy p.
func idleFleet(stateDir string, p *schema.Idle) *schema.Fleet {
	return fleetWith(stateDir, func(in *schema.Instance) {
		in.Network = schema.Network{Egress: schema.EgressOpen}
		in.Idle = p
	})
}

// publish writes the state the agent's supervisor would publish.
func publish(t *testing.T, env pipeline.Env, st supervisor.Status) {
	t.Helper()
	dir := supervisor.HostDir(env.StateDir, "demo", "web")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(dir, supervisor.StateFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func agentState(t *testing.T, drv *execFake) string {
	t.Helper()
	o, ok := drv.Object(drivers.KindContainer, "jk-demo-web")
	if !ok {
		t.Fatal("no agent container")
	}
	return o.State
}

// TestIdleCleanupStopsAndWakes: an agent idle past idle.after with no
// client and no task is stopped once and marked; a plan then leaves it
// stopped (no drift); WakeIdle starts it, waits for its supervisor and
// clears the mark; a new apply does not stop it again.
func TestIdleCleanupStopsAndWakes(t *testing.T) {
	drv := &execFake{Driver: newBackend().Driver}
	env := newEnv(t, drv)
	f := idleFleet(env.StateDir, &schema.Idle{After: time.Minute, Action: schema.IdleStop})
	apply(t, env, f)
	now := time.Now()
	st := supervisor.Status{V: 1, State: "idle", Since: now.Add(-2 * time.Minute), Boot: "b1"}
	publish(t, env, st)
	var tasks []taskqueue.Task
	var reports []string
	c := &pipeline.IdleCleanup{Env: env, Fleet: func() *schema.Fleet { return f },
		Tasks:  func(context.Context, string) ([]taskqueue.Task, error) { return tasks, nil },
		Report: func(inst, msg string) { reports = append(reports, inst+": "+msg) }}

	// Attached: nothing, and idle time restarts at the detach.
	drv.setStatus(supervisor.Status{V: 1, State: "idle", Since: st.Since, Boot: "b1", Clients: 1})
	if err := c.Pass(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	if agentState(t, drv) != drivers.StateRunning {
		t.Fatal("stopped with a client attached")
	}
	drv.setStatus(st)
	if err := c.Pass(t.Context(), now.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if agentState(t, drv) != drivers.StateRunning {
		t.Fatal("stopped 30s after the client left (after is 1m)")
	}
	// A task in flight: nothing.
	tasks = []taskqueue.Task{{ID: "dir:x", State: taskqueue.StateWorking, Instance: "web"}}
	if err := c.Pass(t.Context(), now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if agentState(t, drv) != drivers.StateRunning {
		t.Fatal("stopped with a task in flight")
	}
	tasks = []taskqueue.Task{{ID: "dir:x", State: taskqueue.StateDone, Instance: "web"}}
	// Found busy, it is checked live again only after a while.
	if err := c.Pass(t.Context(), now.Add(2*time.Minute+time.Second)); err != nil {
		t.Fatal(err)
	}
	if agentState(t, drv) != drivers.StateRunning {
		t.Fatal("checked again a second after it was found busy")
	}
	if err := c.Pass(t.Context(), now.Add(2*time.Minute+10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if agentState(t, drv) == drivers.StateRunning {
		t.Fatalf("not stopped; reports %v", reports)
	}
	marks, err := env.Store.IdleStopped(t.Context(), "demo")
	if err != nil || len(marks) != 1 || !marks["web"].IdleSince.Equal(now) {
		t.Fatalf("marks %+v, %v: want web idle since the client left", marks, err)
	}
	acts, _ := env.Store.IdleActions(t.Context(), "demo")
	if a := acts["web"]; a.Action != "stop" || a.Error != "" {
		t.Fatalf("idle action %+v", a)
	}
	if len(reports) != 1 || !strings.Contains(reports[0], "web: stopped for idleness") {
		t.Fatalf("reports %v", reports)
	}

	// Not drift: the plan leaves it stopped.
	res, err := env.Plan(t.Context(), f, reconciler.PlanOptions{Prune: true}, true)
	if err != nil {
		t.Fatal(err)
	}
	if a := res.Plan.Actions[0]; a.Type != reconciler.ActionNoop || !a.IdleStopped || res.Plan.HasChanges() {
		t.Fatalf("plan %+v: want a noop marked idle-stopped", a)
	}
	// Another pass does nothing more.
	if err := c.Pass(t.Context(), now.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if len(reports) != 1 {
		t.Fatalf("reports %v", reports)
	}

	// Wake: started, mark gone, a wake event in history.
	drv.setStatus(supervisor.Status{V: 1, State: "starting", Since: now, Boot: "b2"})
	if err := env.WakeIdle(t.Context(), f, "web"); err != nil {
		t.Fatal(err)
	}
	if agentState(t, drv) != drivers.StateRunning {
		t.Fatal("not started by WakeIdle")
	}
	if marks, _ := env.Store.IdleStopped(t.Context(), "demo"); len(marks) != 0 {
		t.Fatalf("marks after wake: %+v", marks)
	}
	events, _ := env.Store.Events(t.Context(), "demo", 50)
	kinds := map[string]bool{}
	for _, e := range events {
		kinds[e.Kind] = true
	}
	if !kinds[store.EventIdleStop] || !kinds[store.EventIdleWake] {
		t.Fatalf("events %+v: want idle-stop and idle-wake", events)
	}
	// A second wake is a no-op.
	if err := env.WakeIdle(t.Context(), f, "web"); err != nil {
		t.Fatal(err)
	}
}

// TestIdleCleanupExecsOncePerPeriod: the command runs once per idle
// period, its status and a redacted output tail are kept; a new period
// (the agent worked, then went idle again) runs it again.
func TestIdleCleanupExecsOncePerPeriod(t *testing.T) {
	drv := &execFake{Driver: newBackend().Driver, output: "line one\nStopping Gradle daemons\ntoken ghp_0123456789abcdefghijABCDEFGHIJ012345 leaked\n", code: 3}
	env := newEnv(t, drv)
	f := idleFleet(env.StateDir, &schema.Idle{After: time.Minute, Action: schema.IdleExec, Exec: []string{"gradle", "--stop"}})
	apply(t, env, f)
	now := time.Now()
	st := supervisor.Status{V: 1, State: "done", Since: now.Add(-2 * time.Minute), Boot: "b1"}
	publish(t, env, st)
	drv.setStatus(st)
	done := make(chan string, 4)
	c := &pipeline.IdleCleanup{Env: env, Fleet: func() *schema.Fleet { return f }, Report: func(inst, msg string) { done <- msg }}
	ran := func(want int) {
		t.Helper()
		if got := drv.commands(); len(got) != want {
			t.Fatalf("ran %v, want %d command(s)", got, want)
		}
	}
	pass := func(at time.Time) {
		t.Helper()
		if err := c.Pass(t.Context(), at); err != nil {
			t.Fatal(err)
		}
	}
	pass(now.Add(-90 * time.Second)) // 30s idle: not yet
	ran(0)
	pass(now)
	select {
	case msg := <-done:
		if !strings.Contains(msg, "idle exec exited with status 3") {
			t.Fatalf("report %q", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the command did not finish")
	}
	ran(1)
	if got := drv.commands()[0]; strings.Join(got[1:], " ") != "gradle --stop" {
		t.Fatalf("ran %v", got)
	}
	acts, _ := env.Store.IdleActions(t.Context(), "demo")
	a := acts["web"]
	if a.ExitStatus == nil || *a.ExitStatus != 3 || !strings.Contains(a.Output, "Stopping Gradle daemons") || strings.Contains(a.Output, "ghp_") {
		t.Fatalf("idle action %+v: want status 3 and the tail without the token", a)
	}
	pass(now.Add(time.Minute))
	pass(now.Add(time.Hour))
	ran(1)
	if agentState(t, drv) != drivers.StateRunning {
		t.Fatal("exec stopped the instance")
	}

	// A new idle period.
	st2 := supervisor.Status{V: 1, State: "idle", Since: now.Add(2 * time.Hour), Boot: "b1"}
	publish(t, env, st2)
	drv.setStatus(st2)
	pass(now.Add(2*time.Hour + 30*time.Second))
	ran(1)
	pass(now.Add(2*time.Hour + 2*time.Minute))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the second command did not finish")
	}
	ran(2)
}

// TestIdleStoppedMarkClears: the mark goes with a recreate that apply runs
// (a manifest change starts the instance), with a desired state set to
// stopped, and with an agent started outside idle cleanup; each clear is
// a wake event.
func TestIdleStoppedMarkClears(t *testing.T) {
	ctx := t.Context()
	mark := func(env pipeline.Env) {
		t.Helper()
		if err := env.Store.MarkIdleStopped(ctx, "demo", store.IdleStop{Instance: "web", Why: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	marked := func(env pipeline.Env) bool {
		t.Helper()
		m, err := env.Store.IdleStopped(ctx, "demo")
		if err != nil {
			t.Fatal(err)
		}
		_, ok := m["web"]
		return ok
	}
	policy := &schema.Idle{After: time.Minute, Action: schema.IdleStop}

	t.Run("recreate", func(t *testing.T) {
		drv := &execFake{Driver: newBackend().Driver}
		env := newEnv(t, drv)
		f := idleFleet(env.StateDir, policy)
		apply(t, env, f)
		mark(env)
		if err := drv.StopContainer("jk-demo-web"); err != nil {
			t.Fatal(err)
		}
		// Unchanged: left stopped.
		res, err := env.Plan(ctx, f, reconciler.PlanOptions{Prune: true}, true)
		if err != nil {
			t.Fatal(err)
		}
		if res.Plan.HasChanges() {
			t.Fatalf("an unchanged manifest changes an idle-stopped instance: %+v", res.Plan.Actions)
		}
		changed := idleFleet(env.StateDir, policy)
		in := changed.Instances["web"]
		in.Env = map[string]string{"A": "1"}
		changed.Instances["web"] = in
		done := apply(t, env, changed)
		if len(done.Results) != 1 || done.Results[0].Action.Type != reconciler.ActionRecreate {
			t.Fatalf("results %+v, want a recreate", done.Results)
		}
		if marked(env) || agentState(t, drv) != drivers.StateRunning {
			t.Fatalf("after the recreate: marked %v, agent %s", marked(env), agentState(t, drv))
		}
	})
	t.Run("desired stopped and started by hand", func(t *testing.T) {
		drv := &execFake{Driver: newBackend().Driver}
		env := newEnv(t, drv)
		f := idleFleet(env.StateDir, policy)
		apply(t, env, f)
		c := &pipeline.IdleCleanup{Env: env, Fleet: func() *schema.Fleet { return f }}
		// Running with a mark: started outside idle cleanup.
		mark(env)
		if err := c.Pass(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		if marked(env) {
			t.Fatal("the mark of a running agent stayed")
		}
		// Stopped with a mark, then the manifest says stopped.
		if err := drv.StopContainer("jk-demo-web"); err != nil {
			t.Fatal(err)
		}
		mark(env)
		if err := c.Pass(ctx, time.Now().Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
		if !marked(env) {
			t.Fatal("the mark of a stopped idle-stopped instance went")
		}
		stopped := idleFleet(env.StateDir, policy)
		in := stopped.Instances["web"]
		in.State = schema.StateStopped
		stopped.Instances["web"] = in
		c.Fleet = func() *schema.Fleet { return stopped }
		if err := c.Pass(ctx, time.Now().Add(20*time.Second)); err != nil {
			t.Fatal(err)
		}
		if marked(env) {
			t.Fatal("the mark stayed after the desired state became stopped")
		}
		events, _ := env.Store.Events(ctx, "demo", 20)
		n := 0
		for _, e := range events {
			if e.Kind == store.EventIdleWake {
				n++
			}
		}
		if n != 2 {
			t.Fatalf("%d wake events, want 2: %+v", n, events)
		}
	})
}
