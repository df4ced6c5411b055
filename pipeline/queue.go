package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/go-logr/logr"

	"github.com/jackin-dev/jackin/agentstate"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/taskqueue"
	"github.com/jackin-dev/jackin/worklinks"
)

// WhoWatch is who the dispatcher's transitions are recorded as.
const WhoWatch = "watch"

// QueueStore is the store as the dispatcher uses it.
type QueueStore interface {
	SyncTasks(ctx context.Context, fleet, source string, tasks []taskqueue.Task) (int, error)
	Tasks(ctx context.Context, fleet string) ([]taskqueue.Task, error)
	TransitionTask(ctx context.Context, fleet string, d taskqueue.Decision, who string, set func(*taskqueue.Task)) error
	QueuePaused(ctx context.Context, fleet string) (bool, error)
	AddTaskLinks(ctx context.Context, fleet, id string, links []string) (bool, error)
}

// QueueAgents are the queue's agents as the dispatcher sees and reaches
// them.
type QueueAgents interface {
	// Agents returns the live state of the fleet's queue instances, and
	// the names of those not looked at yet (just started following, or
	// their engine not answering).
	Agents(ctx context.Context, fleet *schema.Fleet) (agents []taskqueue.Agent, unseen []string)
	// Prompt types text into the instance's agent, in container, when it
	// waits for a prompt; the supervisor refuses otherwise.
	Prompt(ctx context.Context, fleet *schema.Fleet, instance, container, text string) error
	// Changed is signalled when an agent's state changes.
	Changed() <-chan struct{}
}

// TaskScanner is a source of tasks (taskqueue's sources).
type TaskScanner interface {
	Scan(ctx context.Context) ([]taskqueue.Task, error)
}

// QueueEvent is one thing the dispatcher did: a task's transition, a
// source's new tasks, an instance woken, or a problem.
type QueueEvent struct {
	Time time.Time `json:"time"`
	// Type is "transition", "source", "wake" or "error".
	Type     string          `json:"type"`
	Task     string          `json:"task,omitempty"`
	From     taskqueue.State `json:"from,omitempty"`
	To       taskqueue.State `json:"to,omitempty"`
	Instance string          `json:"instance,omitempty"`
	Source   string          `json:"source,omitempty"`
	Added    int             `json:"added,omitempty"`
	Message  string          `json:"message"`
}

// Queue event types.
const (
	QueueEventTransition = "transition"
	QueueEventSource     = "source"
	QueueEventWake       = "wake"
	QueueEventError      = "error"
)

// Dispatcher runs a fleet's queue: it reads the sources into the store at
// their intervals and, at every change of an agent, of the sources and
// every Tick, plans a pass (taskqueue.Plan) over the store's tasks and the
// agents' live states and carries it out. Everything it knows is in the
// store, so a new dispatcher (a restarted watch) resumes where the last
// one stopped.
type Dispatcher struct {
	Store  QueueStore
	Agents QueueAgents
	// Fleet returns the fleet as last loaded (a manifest edit can change
	// the queue).
	Fleet func() *schema.Fleet
	// Source makes the scanner of a source of the manifest.
	Source func(src schema.TaskSource) (TaskScanner, error)
	// Wake starts an instance stopped by idle cleanup (nil: none is ever
	// idle-stopped); IdleStopped lists those instances.
	Wake        func(ctx context.Context, fleet *schema.Fleet, instance string) error
	IdleStopped func(ctx context.Context, fleet string) (map[string]bool, error)
	// Links returns the work links the fleet's agents reported, by
	// instance (nil: none are attached to tasks).
	Links func(ctx context.Context, fleet string) (map[string][]worklinks.Link, error)
	// Report receives every event (from one goroutine at a time).
	Report func(QueueEvent)
	// Tick is the pass interval that catches what no signal announces
	// (jackin queue's changes from another process, dispatch timeouts).
	Tick time.Duration
	Now  func() time.Time
	Log  logr.Logger

	reportMu sync.Mutex
}

// DefaultQueueTick is Dispatcher.Tick when it is zero.
const DefaultQueueTick = time.Second

// Run dispatches until ctx ends. A fleet without a queue waits for one
// (a manifest edit can add it).
func (d *Dispatcher) Run(ctx context.Context) {
	if d.Now == nil {
		d.Now = time.Now
	}
	tick := d.Tick
	if tick <= 0 {
		tick = DefaultQueueTick
	}
	synced := make(chan struct{}, 1)
	sources := &sourceRunner{d: d, synced: synced, running: map[string]sourceRun{}}
	defer sources.stopAll()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		fleet := d.Fleet()
		sources.sync(ctx, fleet)
		// A pass that stopped early plans again at once, a few times: a
		// refusal that repeats (an agent's state not yet caught up) waits
		// for the next signal instead of spinning.
		for i := 0; i < 3 && ctx.Err() == nil && d.Pass(ctx, fleet); i++ {
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-synced:
		case <-d.Agents.Changed():
		}
	}
}

// Pass plans once and carries the decisions out in order. It stops at the
// first decision it could not carry out (a refused prompt, a task moved
// meanwhile, an instance to wake) and says so with again: a plan's later
// dispatches may count on an agent that earlier decision was to free.
func (d *Dispatcher) Pass(ctx context.Context, fleet *schema.Fleet) (again bool) {
	q := fleet.Queue
	if q == nil {
		return false
	}
	agents, unseen := d.Agents.Agents(ctx, fleet)
	tasks, err := d.Store.Tasks(ctx, fleet.Name)
	if err != nil {
		d.fail(ctx, "", fmt.Errorf("read the queue's tasks: %w", err))
		return false
	}
	// An agent not looked at yet is not gone: a task in flight on it
	// stays as it is (its state unknown), and nothing new goes to it.
	for _, name := range unseen {
		for _, t := range tasks {
			if t.Instance == name && (t.State == taskqueue.StateDispatched || t.State == taskqueue.StateWorking) {
				agents = append(agents, taskqueue.Agent{Instance: name, Present: true, Container: t.Container, Boot: t.Boot,
					State: string(agentstate.StateUnknown)})
				break
			}
		}
	}
	paused, err := d.Store.QueuePaused(ctx, fleet.Name)
	if err != nil {
		d.fail(ctx, "", err)
		return false
	}
	if d.IdleStopped != nil {
		stopped, err := d.IdleStopped(ctx, fleet.Name)
		if err != nil {
			d.fail(ctx, "", fmt.Errorf("read the idle-stopped instances: %w", err))
		}
		for i := range agents {
			if stopped[agents[i].Instance] {
				agents[i].IdleStopped, agents[i].Present = true, true
			}
		}
	}
	byID := make(map[string]taskqueue.Task, len(tasks))
	for _, t := range tasks {
		byID[t.ID] = t
	}
	byName := make(map[string]taskqueue.Agent, len(agents))
	for _, a := range agents {
		byName[a.Instance] = a
	}
	lim := taskqueue.Limits{MaxParallel: q.MaxParallel, MaxAttempts: q.MaxAttempts, Paused: paused,
		ReviewBeforeDone: q.ReviewBeforeDone, DispatchTimeout: q.DispatchTimeout}
	var links map[string][]worklinks.Link
	readLinks := func() {
		if links == nil && d.Links != nil {
			var err error
			if links, err = d.Links(ctx, fleet.Name); err != nil {
				d.Log.Error(err, "read the agents' work links for their tasks")
				links = map[string][]worklinks.Link{}
			}
		}
	}
	now := d.Now()
	moved := map[string]bool{}
	for _, dec := range taskqueue.Plan(tasks, agents, lim, now) {
		if ctx.Err() != nil {
			return false
		}
		t := byID[dec.Task]
		moved[dec.Task] = true
		if dec.To == taskqueue.StateDispatched {
			if !d.dispatch(ctx, fleet, dec, t, byName[dec.Instance]) {
				return true
			}
			continue
		}
		if t.Instance != "" {
			readLinks()
		}
		taskLinks := linksWithin(links[t.Instance], t.DispatchedAt, now, t.Links)
		err := d.Store.TransitionTask(ctx, fleet.Name, dec, WhoWatch, func(n *taskqueue.Task) {
			if len(taskLinks) > 0 {
				n.Links = taskLinks
			}
		})
		if err != nil {
			d.fail(ctx, dec.Task, err)
			return true
		}
		d.transition(dec, t.Instance, dec.Why)
	}
	// An agent publishes its links up to a second after it wrote them:
	// a task that finished lately still takes those it wrote before it
	// finished.
	for _, t := range tasks {
		if moved[t.ID] || t.Instance == "" || t.DispatchedAt.IsZero() || now.Sub(t.UpdatedAt) > linkGrace {
			continue
		}
		if t.State != taskqueue.StateDone && t.State != taskqueue.StateNeedsReview && t.State != taskqueue.StateFailed && t.State != taskqueue.StateQueued {
			continue
		}
		readLinks()
		if add := linksWithin(links[t.Instance], t.DispatchedAt, t.UpdatedAt, t.Links); len(add) > 0 {
			if _, err := d.Store.AddTaskLinks(ctx, fleet.Name, t.ID, add); err != nil {
				d.fail(ctx, t.ID, err)
			}
		}
	}
	return false
}

// dispatch carries out a dispatch: the task is recorded dispatched to the
// agent's container and supervisor boot first (so a watch that dies now
// leaves a task the next one finds in flight, never one typed twice), then
// its prompt is typed. A refused prompt (the agent is no longer waiting)
// puts the task back in the queue, no attempt counted. An idle-stopped
// instance is woken instead; a later pass dispatches to it once it waits.
func (d *Dispatcher) dispatch(ctx context.Context, fleet *schema.Fleet, dec taskqueue.Decision, t taskqueue.Task, a taskqueue.Agent) bool {
	if dec.Start {
		if d.Wake == nil {
			return false
		}
		if err := d.Wake(ctx, fleet, dec.Instance); err != nil {
			d.fail(ctx, dec.Task, fmt.Errorf("start %s for task %s: %w", dec.Instance, dec.Task, err))
			return false
		}
		d.report(QueueEvent{Type: QueueEventWake, Task: dec.Task, Instance: dec.Instance,
			Message: fmt.Sprintf("started %s (stopped for idleness) for task %s", dec.Instance, dec.Task)})
		return false
	}
	prompt := PromptText(t.Prompt)
	if prompt == "" || len(prompt) > schema.MaxPrompt {
		fail := taskqueue.Decision{Task: dec.Task, From: taskqueue.StateQueued, To: taskqueue.StateFailed, Attempts: t.Attempts,
			Why: fmt.Sprintf("its prompt (%d bytes) is empty or longer than %d: no agent can take it", len(prompt), schema.MaxPrompt)}
		if err := d.Store.TransitionTask(ctx, fleet.Name, fail, WhoWatch, nil); err != nil {
			d.fail(ctx, dec.Task, err)
			return false
		}
		d.transition(fail, "", fail.Why)
		return false
	}
	began := time.Now()
	if err := d.Store.TransitionTask(ctx, fleet.Name, dec, WhoWatch, func(n *taskqueue.Task) {
		n.Container, n.Boot = a.Container, a.Boot
	}); err != nil {
		d.fail(ctx, dec.Task, err)
		return false
	}
	recorded := time.Now()
	err := d.Agents.Prompt(ctx, fleet, dec.Instance, a.Container, prompt)
	d.Log.V(1).Info("dispatch", "task", dec.Task, "instance", dec.Instance, "agentState", a.State,
		"sinceAgentStateMs", began.Sub(a.StateSince).Milliseconds(), "recordMs", recorded.Sub(began).Milliseconds(),
		"promptMs", time.Since(recorded).Milliseconds(), "refused", err != nil)
	if err != nil {
		back := taskqueue.Decision{Task: dec.Task, From: taskqueue.StateDispatched, To: taskqueue.StateQueued, Attempts: t.Attempts,
			Why: fmt.Sprintf("%s refused the prompt: %s", dec.Instance, agentText(err.Error()))}
		if berr := d.Store.TransitionTask(ctx, fleet.Name, back, WhoWatch, func(n *taskqueue.Task) {
			n.Instance, n.Container, n.Boot, n.DispatchedAt = "", "", "", time.Time{}
		}); berr != nil {
			// The next passes requeue it when the dispatch times out.
			d.fail(ctx, dec.Task, berr)
			return false
		}
		d.transition(dec, dec.Instance, dec.Why)
		d.transition(back, dec.Instance, back.Why)
		return false
	}
	d.transition(dec, dec.Instance, dec.Why)
	return true
}

// PromptText is a task's prompt as typed: the source's text (an issue
// body, a file: someone else's writing) without terminal control
// characters, which could end the supervisor's bracketed paste early or
// drive the agent's terminal; newlines and tabs stay.
func PromptText(s string) string {
	s = strings.TrimSpace(strings.ToValidUTF8(s, ""))
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if r == '\r' {
			return '\n'
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return -1
		}
		return r
	}, s)
}

// agentText is text that came from inside an agent's container (a
// supervisor's refusal: the agent could have written it) fit for the
// store and the operator's terminal: one line of printable characters,
// at most 300 bytes.
func agentText(s string) string {
	s = strings.Join(strings.Fields(PromptText(s)), " ")
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "..."
	}
	return s
}

// linkGrace is how long after a task's last move the links its agent
// wrote before that move are still attached to it.
const linkGrace = 5 * time.Second

// linksWithin are the URLs of the links an agent last wrote between the
// task's dispatch and until, with those the task has, sorted; nil when
// none is new.
func linksWithin(links []worklinks.Link, since, until time.Time, have []string) []string {
	set := map[string]bool{}
	for _, u := range have {
		set[u] = true
	}
	added := false
	for _, l := range links {
		if !since.IsZero() && !l.LastSeen.Before(since) && !l.LastSeen.After(until) && !set[l.URL] {
			set[l.URL] = true
			added = true
		}
	}
	if !added {
		return nil
	}
	out := make([]string, 0, len(set))
	for u := range set {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

func (d *Dispatcher) transition(dec taskqueue.Decision, instance, why string) {
	if instance == "" {
		instance = dec.Instance
	}
	d.report(QueueEvent{Type: QueueEventTransition, Task: dec.Task, From: dec.From, To: dec.To, Instance: instance, Message: why})
}

// fail reports a problem; a task moved by someone else meanwhile is only
// logged (the next pass plans again from what the store says).
func (d *Dispatcher) fail(ctx context.Context, task string, err error) {
	if ctx.Err() != nil {
		return
	}
	if isTaskMoved(err) {
		d.Log.V(1).Info("a task moved meanwhile: planning again", "task", task, "reason", err.Error())
		return
	}
	d.report(QueueEvent{Type: QueueEventError, Task: task, Message: err.Error()})
}

// isTaskMoved reports a compare-and-set that lost.
func isTaskMoved(err error) bool { return errors.Is(err, store.ErrTaskMoved) }

func (d *Dispatcher) report(ev QueueEvent) {
	if ev.Time.IsZero() {
		ev.Time = d.Now()
	}
	d.reportMu.Lock()
	defer d.reportMu.Unlock()
	if d.Report != nil {
		d.Report(ev)
	}
}

// sourceRun is one source's scanning goroutine.
type sourceRun struct {
	spec   schema.TaskSource
	cancel context.CancelFunc
	done   chan struct{}
}

// sourceRunner keeps one goroutine per source of the manifest, each
// scanning at its interval and syncing what it finds into the store.
type sourceRunner struct {
	d       *Dispatcher
	synced  chan struct{}
	running map[string]sourceRun
}

func (r *sourceRunner) sync(ctx context.Context, fleet *schema.Fleet) {
	want := map[string]schema.TaskSource{}
	if fleet.Queue != nil {
		for _, s := range fleet.Queue.Sources {
			want[s.Name] = s
		}
	}
	for name, run := range r.running {
		if spec, ok := want[name]; !ok || !sameSource(spec, run.spec) {
			run.cancel()
			<-run.done
			delete(r.running, name)
		}
	}
	for name, spec := range want {
		if _, ok := r.running[name]; ok {
			continue
		}
		scanner, err := r.d.Source(spec)
		if err != nil {
			r.d.report(QueueEvent{Type: QueueEventError, Source: name, Message: fmt.Sprintf("source %s: %v", name, err)})
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		run := sourceRun{spec: spec, cancel: cancel, done: make(chan struct{})}
		r.running[name] = run
		go r.scan(sctx, fleet.Name, spec, scanner, run.done)
	}
}

func (r *sourceRunner) stopAll() {
	for name, run := range r.running {
		run.cancel()
		<-run.done
		delete(r.running, name)
	}
}

// scan reads one source now and at every interval. A failed scan is
// reported once until the source reads again (a tracker that is down
// must not flood watch's output).
func (r *sourceRunner) scan(ctx context.Context, fleet string, spec schema.TaskSource, s TaskScanner, done chan struct{}) {
	defer close(done)
	every := spec.Every
	if every <= 0 {
		every = schema.DefaultDirEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	failing := ""
	for {
		// A scan may answer the tasks it could read and an error about
		// those it skipped: the tasks are kept either way.
		tasks, err := s.Scan(ctx)
		if len(tasks) > 0 {
			added, serr := r.d.Store.SyncTasks(ctx, fleet, spec.Name, tasks)
			err = errors.Join(err, serr)
			if added > 0 {
				r.d.report(QueueEvent{Type: QueueEventSource, Source: spec.Name, Added: added,
					Message: fmt.Sprintf("source %s: %d new task(s)", spec.Name, added)})
				select {
				case r.synced <- struct{}{}:
				default:
				}
			}
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && err.Error() != failing:
			failing = err.Error()
			r.d.report(QueueEvent{Type: QueueEventError, Source: spec.Name, Message: fmt.Sprintf("source %s: %v", spec.Name, err)})
		case err == nil && failing != "":
			failing = ""
			r.d.report(QueueEvent{Type: QueueEventSource, Source: spec.Name, Message: fmt.Sprintf("source %s reads again", spec.Name)})
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sameSource reports whether a source's declaration is unchanged (its
// scanner can keep running).
func sameSource(a, b schema.TaskSource) bool {
	if a.Kind != b.Kind || a.Dir != b.Dir || a.Every != b.Every || a.WorkDir != b.WorkDir || strings.Join(a.Command, "\x00") != strings.Join(b.Command, "\x00") {
		return false
	}
	if (a.GitHub == nil) != (b.GitHub == nil) {
		return false
	}
	if a.GitHub == nil {
		return true
	}
	if a.GitHub.Repo != b.GitHub.Repo || strings.Join(a.GitHub.Labels, "\x00") != strings.Join(b.GitHub.Labels, "\x00") || len(a.GitHub.Priorities) != len(b.GitHub.Priorities) {
		return false
	}
	for k, v := range a.GitHub.Priorities {
		if w, ok := b.GitHub.Priorities[k]; !ok || w != v {
			return false
		}
	}
	return true
}
