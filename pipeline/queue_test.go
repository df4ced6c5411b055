package pipeline

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/taskqueue"
	"github.com/jackin-dev/jackin/worklinks"
)

// memTasks is an in-memory QueueStore with the store's compare-and-set
// rules (store.TransitionTask's contract).
type memTasks struct {
	mu     sync.Mutex
	tasks  map[string]taskqueue.Task
	trans  []string // "ID FROM>TO who"
	paused bool
	now    time.Time
}

func newMemTasks(now time.Time, tasks ...taskqueue.Task) *memTasks {
	m := &memTasks{tasks: map[string]taskqueue.Task{}, now: now}
	for _, t := range tasks {
		if t.State == "" {
			t.State = taskqueue.StateQueued
		}
		m.tasks[t.ID] = t
	}
	return m
}

func (m *memTasks) SyncTasks(_ context.Context, fleet, source string, tasks []taskqueue.Task) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	added := 0
	for _, t := range tasks {
		if _, ok := m.tasks[t.ID]; ok {
			continue
		}
		t.Fleet, t.Source, t.State, t.CreatedAt = fleet, source, taskqueue.StateQueued, m.now
		m.tasks[t.ID] = t
		m.trans = append(m.trans, t.ID+" >queued source:"+source)
		added++
	}
	return added, nil
}

func (m *memTasks) Tasks(context.Context, string) ([]taskqueue.Task, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]taskqueue.Task, 0, len(m.tasks))
	for _, t := range m.tasks {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (m *memTasks) TransitionTask(_ context.Context, _ string, d taskqueue.Decision, who string, set func(*taskqueue.Task)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tasks[d.Task]
	if !ok {
		return store.ErrNoTask
	}
	if t.State != d.From {
		return fmt.Errorf("move %s: it is %s: %w", d.Task, t.State, store.ErrTaskMoved)
	}
	if d.To == taskqueue.StateDispatched {
		t.Instance, t.Container, t.Boot, t.DispatchedAt = d.Instance, "", "", m.now
	}
	if d.Attempts > t.Attempts {
		t.Attempts = d.Attempts
	}
	if set != nil {
		set(&t)
	}
	t.State, t.UpdatedAt = d.To, m.now
	m.tasks[d.Task] = t
	m.trans = append(m.trans, fmt.Sprintf("%s %s>%s %s", d.Task, d.From, d.To, who))
	return nil
}

func (m *memTasks) QueuePaused(context.Context, string) (bool, error) { return m.paused, nil }

func (m *memTasks) AddTaskLinks(_ context.Context, _, id string, links []string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tasks[id]
	if !ok {
		return false, store.ErrNoTask
	}
	added := false
	for _, l := range links {
		if !slices.Contains(t.Links, l) {
			t.Links = append(t.Links, l)
			added = true
		}
	}
	sort.Strings(t.Links)
	m.tasks[id] = t
	return added, nil
}

func (m *memTasks) task(id string) taskqueue.Task {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tasks[id]
}

func (m *memTasks) transitions() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.trans...)
}

// fakeAgents are agents whose states the test sets; prompts are recorded
// and refused when the agent is not waiting (the supervisor's rule).
type fakeAgents struct {
	mu      sync.Mutex
	agents  map[string]taskqueue.Agent
	unseen  []string
	prompts []string // "instance container: text"
	refuse  map[string]string
	changed chan struct{}
}

func newFakeAgents(agents ...taskqueue.Agent) *fakeAgents {
	f := &fakeAgents{agents: map[string]taskqueue.Agent{}, refuse: map[string]string{}, changed: make(chan struct{}, 1)}
	for _, a := range agents {
		f.agents[a.Instance] = a
	}
	return f
}

func (f *fakeAgents) Agents(_ context.Context, fleet *schema.Fleet) ([]taskqueue.Agent, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []taskqueue.Agent
	for _, n := range fleet.Queue.Instances {
		if a, ok := f.agents[n]; ok {
			out = append(out, a)
		}
	}
	return out, f.unseen
}

func (f *fakeAgents) Prompt(_ context.Context, _ *schema.Fleet, instance, container, text string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if why := f.refuse[instance]; why != "" {
		return errors.New(why)
	}
	f.prompts = append(f.prompts, instance+" "+container+": "+text)
	return nil
}

func (f *fakeAgents) Changed() <-chan struct{} { return f.changed }

func (f *fakeAgents) set(instance, state string, since time.Time) {
	f.mu.Lock()
	a := f.agents[instance]
	a.State, a.StateSince = state, since
	f.agents[instance] = a
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

func (f *fakeAgents) promptsTyped() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.prompts...)
}

var t0 = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

func queueFleet(q schema.Queue) *schema.Fleet {
	f := &schema.Fleet{Name: "q", Instances: map[string]schema.Instance{}}
	for _, n := range q.Instances {
		f.Instances[n] = schema.Instance{Name: n}
	}
	f.Queue = &q
	return f
}

func agent(name, state string, since time.Time) taskqueue.Agent {
	return taskqueue.Agent{Instance: name, Present: true, Container: "ctr-" + name, Boot: "boot-" + name, State: state, StateSince: since}
}

func newDispatcher(st QueueStore, ag QueueAgents, fleet *schema.Fleet, events *[]QueueEvent) *Dispatcher {
	return &Dispatcher{Store: st, Agents: ag, Fleet: func() *schema.Fleet { return fleet }, Log: logr.Discard(),
		Now: func() time.Time { return t0.Add(time.Minute) }, Report: func(ev QueueEvent) { *events = append(*events, ev) }}
}

func TestDispatchTypesThePromptAndRecordsTheAgent(t *testing.T) {
	st := newMemTasks(t0,
		taskqueue.Task{ID: "dir:a", Prompt: "fix a", Priority: 1, CreatedAt: t0},
		taskqueue.Task{ID: "dir:b", Prompt: "fix b", CreatedAt: t0})
	ag := newFakeAgents(agent("w1", "idle", t0), agent("w2", "working", t0))
	var events []QueueEvent
	d := newDispatcher(st, ag, queueFleet(schema.Queue{Instances: []string{"w1", "w2"}}), &events)
	if again := d.Pass(context.Background(), d.Fleet()); again {
		t.Error("a pass that did all it planned asks to plan again")
	}
	if got := ag.promptsTyped(); !reflect.DeepEqual(got, []string{"w1 ctr-w1: fix a"}) {
		t.Fatalf("prompts %q: want the higher priority task typed into the idle agent only", got)
	}
	a := st.task("dir:a")
	if a.State != taskqueue.StateDispatched || a.Instance != "w1" || a.Container != "ctr-w1" || a.Boot != "boot-w1" || a.DispatchedAt.IsZero() {
		t.Errorf("dispatched task %+v", a)
	}
	if b := st.task("dir:b"); b.State != taskqueue.StateQueued {
		t.Errorf("dir:b is %s: no agent was free for it", b.State)
	}
	if len(events) != 1 || events[0].Type != QueueEventTransition || events[0].To != taskqueue.StateDispatched || events[0].Instance != "w1" {
		t.Errorf("events %+v", events)
	}
	// The same pass again: the agent has not started; nothing is typed twice.
	d.Pass(context.Background(), d.Fleet())
	if got := ag.promptsTyped(); len(got) != 1 {
		t.Errorf("a second pass typed again: %q", got)
	}
}

func TestDispatchRefusedPromptRequeuesWithoutAnAttempt(t *testing.T) {
	st := newMemTasks(t0, taskqueue.Task{ID: "dir:a", Prompt: "fix a", CreatedAt: t0})
	ag := newFakeAgents(agent("w1", "idle", t0))
	ag.refuse["w1"] = "the agent is working"
	var events []QueueEvent
	d := newDispatcher(st, ag, queueFleet(schema.Queue{Instances: []string{"w1"}}), &events)
	if again := d.Pass(context.Background(), d.Fleet()); !again {
		t.Error("a refused prompt does not ask for a new plan")
	}
	a := st.task("dir:a")
	if a.State != taskqueue.StateQueued || a.Attempts != 0 || a.Instance != "" {
		t.Errorf("after a refused prompt the task is %+v", a)
	}
	want := []string{"dir:a queued>dispatched watch", "dir:a dispatched>queued watch"}
	if got := st.transitions(); !reflect.DeepEqual(got, want) {
		t.Errorf("transitions %q, want %q", got, want)
	}
	if len(events) != 2 || !strings.Contains(events[1].Message, "refused the prompt: the agent is working") {
		t.Errorf("events %+v", events)
	}
}

func TestDispatchFollowsTheAgentAndAttachesItsLinks(t *testing.T) {
	for _, gate := range []bool{false, true} {
		t.Run(fmt.Sprintf("review=%v", gate), func(t *testing.T) {
			disp := t0.Add(10 * time.Second)
			st := newMemTasks(t0, taskqueue.Task{ID: "dir:a", Prompt: "fix a", CreatedAt: t0, State: taskqueue.StateWorking,
				Instance: "w1", Container: "ctr-w1", Boot: "boot-w1", DispatchedAt: disp})
			ag := newFakeAgents(agent("w1", "done", disp.Add(20*time.Second)))
			var events []QueueEvent
			d := newDispatcher(st, ag, queueFleet(schema.Queue{Instances: []string{"w1"}, ReviewBeforeDone: gate}), &events)
			d.Links = func(context.Context, string) (map[string][]worklinks.Link, error) {
				return map[string][]worklinks.Link{"w1": {
					{Kind: worklinks.KindPR, URL: "https://github.com/acme/app/pull/7", FirstSeen: disp.Add(5 * time.Second), LastSeen: disp.Add(5 * time.Second)},
					{Kind: worklinks.KindIssue, URL: "https://github.com/acme/app/issues/1", FirstSeen: t0, LastSeen: t0}, // before the task
				}}, nil
			}
			d.Pass(context.Background(), d.Fleet())
			a := st.task("dir:a")
			want := taskqueue.StateDone
			if gate {
				want = taskqueue.StateNeedsReview
			}
			if a.State != want {
				t.Fatalf("the task is %s, want %s", a.State, want)
			}
			if !reflect.DeepEqual(a.Links, []string{"https://github.com/acme/app/pull/7"}) {
				t.Errorf("links %q: want the PR the agent wrote while on the task, not the older issue", a.Links)
			}
			if len(events) != 1 || events[0].From != taskqueue.StateWorking || events[0].To != want {
				t.Errorf("events %+v", events)
			}
		})
	}
}

func TestDispatchAttachesLinksPublishedAfterTheTaskFinished(t *testing.T) {
	disp := t0.Add(10 * time.Second)
	finished := t0.Add(58 * time.Second)
	st := newMemTasks(t0, taskqueue.Task{ID: "dir:a", Prompt: "fix a", CreatedAt: t0, State: taskqueue.StateDone,
		Instance: "w1", Container: "ctr-w1", Boot: "boot-w1", DispatchedAt: disp, UpdatedAt: finished})
	ag := newFakeAgents(agent("w1", "working", finished))
	var events []QueueEvent
	d := newDispatcher(st, ag, queueFleet(schema.Queue{Instances: []string{"w1"}}), &events)
	d.Links = func(context.Context, string) (map[string][]worklinks.Link, error) {
		return map[string][]worklinks.Link{"w1": {
			{Kind: worklinks.KindPR, URL: "https://github.com/acme/app/pull/7", LastSeen: finished.Add(-time.Second)},  // written on the task
			{Kind: worklinks.KindPR, URL: "https://github.com/acme/app/pull/8", LastSeen: finished.Add(time.Second)},   // the next task's
			{Kind: worklinks.KindIssue, URL: "https://github.com/acme/app/issues/1", LastSeen: disp.Add(-time.Second)}, // before it
		}}, nil
	}
	d.Pass(context.Background(), d.Fleet())
	if a := st.task("dir:a"); !reflect.DeepEqual(a.Links, []string{"https://github.com/acme/app/pull/7"}) || a.State != taskqueue.StateDone {
		t.Errorf("task %+v: want the PR written while on it, published late", a)
	}
	if tr := st.transitions(); len(tr) != 0 {
		t.Errorf("attaching links made transitions %q", tr)
	}
}

func TestDispatchRequeuesWhenTheAgentIsLost(t *testing.T) {
	disp := t0.Add(10 * time.Second)
	st := newMemTasks(t0, taskqueue.Task{ID: "dir:a", Prompt: "fix a", CreatedAt: t0, State: taskqueue.StateWorking,
		Instance: "w1", Container: "ctr-w1", Boot: "boot-w1", DispatchedAt: disp})
	lost := agent("w1", "idle", disp.Add(time.Second))
	lost.Boot = "boot-2" // restarted: a new supervisor run
	ag := newFakeAgents(lost, agent("w2", "working", t0))
	var events []QueueEvent
	d := newDispatcher(st, ag, queueFleet(schema.Queue{Instances: []string{"w1", "w2"}, MaxAttempts: 3}), &events)
	d.Pass(context.Background(), d.Fleet())
	a := st.task("dir:a")
	// Requeued with an attempt counted, and (w1 waits again) dispatched
	// to it in the next pass, never in the same one.
	if a.Attempts != 1 {
		t.Errorf("attempts %d, want 1", a.Attempts)
	}
	if got := st.transitions(); len(got) < 1 || got[0] != "dir:a working>queued watch" {
		t.Errorf("transitions %q", got)
	}
	d.Pass(context.Background(), d.Fleet())
	if a := st.task("dir:a"); a.State != taskqueue.StateDispatched || a.Boot != "boot-2" {
		t.Errorf("the requeued task is %+v, want dispatched again to the restarted agent", a)
	}
}

func TestDispatchLeavesTheTaskOfAnUnseenAgent(t *testing.T) {
	st := newMemTasks(t0,
		taskqueue.Task{ID: "dir:a", Prompt: "fix a", CreatedAt: t0, State: taskqueue.StateWorking,
			Instance: "w1", Container: "ctr-w1", Boot: "boot-w1", DispatchedAt: t0.Add(50 * time.Second)},
		taskqueue.Task{ID: "dir:b", Prompt: "fix b", CreatedAt: t0})
	ag := newFakeAgents(agent("w2", "idle", t0)) // w1 not looked at yet: not gone
	ag.unseen = []string{"w1"}
	var events []QueueEvent
	d := newDispatcher(st, ag, queueFleet(schema.Queue{Instances: []string{"w1", "w2"}}), &events)
	d.Pass(context.Background(), d.Fleet())
	if a := st.task("dir:a"); a.State != taskqueue.StateWorking || a.Attempts != 0 {
		t.Errorf("the task on an agent not seen yet moved: %+v", a)
	}
	if got := ag.promptsTyped(); !reflect.DeepEqual(got, []string{"w2 ctr-w2: fix b"}) {
		t.Errorf("prompts %q: the seen idle agent still takes a task", got)
	}
	// Without the unseen rule, w1 would look gone and the task requeued.
	ag.unseen = nil
	d.Pass(context.Background(), d.Fleet())
	if a := st.task("dir:a"); a.State != taskqueue.StateQueued || a.Attempts != 1 {
		t.Errorf("a task whose agent is gone: %+v", a)
	}
}

func TestDispatchWakesAnIdleStoppedInstance(t *testing.T) {
	st := newMemTasks(t0, taskqueue.Task{ID: "dir:a", Prompt: "fix a", CreatedAt: t0})
	stopped := taskqueue.Agent{Instance: "w1", Present: true, Container: "ctr-w1", State: "exited"}
	ag := newFakeAgents(stopped)
	var events []QueueEvent
	var woke []string
	d := newDispatcher(st, ag, queueFleet(schema.Queue{Instances: []string{"w1"}}), &events)
	d.IdleStopped = func(context.Context, string) (map[string]bool, error) { return map[string]bool{"w1": true}, nil }
	d.Wake = func(_ context.Context, _ *schema.Fleet, instance string) error {
		woke = append(woke, instance)
		return nil
	}
	d.Pass(context.Background(), d.Fleet())
	if !reflect.DeepEqual(woke, []string{"w1"}) {
		t.Fatalf("woke %q", woke)
	}
	if a := st.task("dir:a"); a.State != taskqueue.StateQueued || len(ag.promptsTyped()) != 0 {
		t.Errorf("the task went on before its agent was up: %+v", a)
	}
	if len(events) != 1 || events[0].Type != QueueEventWake {
		t.Errorf("events %+v", events)
	}
}

func TestDispatchFailsAnUntypeablePrompt(t *testing.T) {
	st := newMemTasks(t0, taskqueue.Task{ID: "dir:a", Prompt: "\x1b\x07 \r", CreatedAt: t0})
	ag := newFakeAgents(agent("w1", "idle", t0))
	var events []QueueEvent
	d := newDispatcher(st, ag, queueFleet(schema.Queue{Instances: []string{"w1"}}), &events)
	d.Pass(context.Background(), d.Fleet())
	if a := st.task("dir:a"); a.State != taskqueue.StateFailed || len(ag.promptsTyped()) != 0 {
		t.Errorf("an empty prompt: %+v", a)
	}
}

func TestAgentTextIsOneBoundedLine(t *testing.T) {
	in := "the agent is \x1b[2Jworking\n\rnow " + strings.Repeat("x", 400)
	got := agentText(in)
	if strings.ContainsAny(got, "\x1b\n\r") || !strings.HasPrefix(got, "the agent is [2Jworking now x") || len(got) > 303 {
		t.Errorf("agentText = %q", got)
	}
}

func TestPromptTextDropsTerminalControls(t *testing.T) {
	in := "Fix it\x1b[201~\x1b]0;title\x07 now\r\nsecond\tline\x00"
	want := "Fix it[201~]0;title now\n\nsecond\tline"
	if got := PromptText(in); got != want {
		t.Errorf("PromptText = %q, want %q", got, want)
	}
}

// scanFunc is a TaskScanner from a function.
type scanFunc func(context.Context) ([]taskqueue.Task, error)

func (f scanFunc) Scan(ctx context.Context) ([]taskqueue.Task, error) { return f(ctx) }

func TestDispatcherRunSyncsSourcesAndDispatchesOnAgentChanges(t *testing.T) {
	st := newMemTasks(t0)
	ag := newFakeAgents(agent("w1", "working", t0))
	fleet := queueFleet(schema.Queue{Instances: []string{"w1"}, Sources: []schema.TaskSource{{Name: "files", Kind: schema.TaskSourceDir, Every: time.Hour}}})
	var mu sync.Mutex
	var events []QueueEvent
	d := &Dispatcher{Store: st, Agents: ag, Fleet: func() *schema.Fleet { return fleet }, Log: logr.Discard(), Tick: time.Hour,
		Source: func(src schema.TaskSource) (TaskScanner, error) {
			return scanFunc(func(context.Context) ([]taskqueue.Task, error) {
				return []taskqueue.Task{{ID: "files:one", Prompt: "do one"}}, nil
			}), nil
		},
		Report: func(ev QueueEvent) { mu.Lock(); events = append(events, ev); mu.Unlock() }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, func() bool { return st.task("files:one").ID != "" })
	if len(ag.promptsTyped()) != 0 {
		t.Fatal("a prompt went to a working agent")
	}
	// The agent turns idle: the change alone (the tick is an hour away)
	// brings the dispatch.
	ag.set("w1", "idle", time.Now())
	waitFor(t, func() bool { return len(ag.promptsTyped()) == 1 })
	if a := st.task("files:one"); a.State != taskqueue.StateDispatched {
		t.Errorf("task %+v", a)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) < 2 || events[0].Type != QueueEventSource || events[0].Added != 1 {
		t.Errorf("events %+v", events)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
