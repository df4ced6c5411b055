package reconciler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/schema"
)

// Watch modes.
const (
	ModeHeal = "heal" // apply every plan
	ModeWarn = "warn" // report drift, change nothing
)

// Trigger sources: why a watch pass ran.
const (
	TriggerStart     = "start"     // the first pass
	TriggerFile      = "file"      // a manifest file changed
	TriggerEngine    = "engine"    // an engine event about the fleet
	TriggerResync    = "resync"    // the periodic full resync
	TriggerReconnect = "reconnect" // the engine event stream was reopened
	// TriggerStreamEnded: the engine event stream ended or cannot be opened
	// (an engine restart); the pass finds out whether the engine answers.
	TriggerStreamEnded = "stream-ended"
	TriggerBackoff     = "backoff" // a crash-loop delay ran out
)

// Trigger is one reason for a watch pass.
type Trigger struct {
	Source   string    `json:"source"`
	Detail   string    `json:"detail,omitempty"`
	Instance string    `json:"instance,omitempty"`
	At       time.Time `json:"at"`
	// Event is the engine event behind an engine trigger.
	Event *drivers.Event `json:"-"`
}

func (t Trigger) String() string {
	if t.Detail == "" {
		return t.Source
	}
	return t.Source + " (" + t.Detail + ")"
}

// WatchEvent types, one output line each.
const (
	EventTrigger   = "trigger"    // something happened that starts a pass
	EventAction    = "action"     // an action ran (heal mode)
	EventDrift     = "drift"      // drift found (warn mode), or held back by a crash loop
	EventCrashLoop = "crashloop"  // an instance keeps exiting: restarts are delayed
	EventRecovered = "recovered"  // a crash-looping instance has stayed up
	EventOOMKilled = "oom-killed" // the kernel's OOM killer ended a container
	EventError     = "error"      // a pass or the manifest failed; watch goes on
	EventInfo      = "info"       // anything else worth a line
)

// WatchEvent is one line of watch output, and what the store records.
type WatchEvent struct {
	Time       time.Time   `json:"time"`
	Type       string      `json:"type"`
	Instance   string      `json:"instance,omitempty"`
	Trigger    *Trigger    `json:"trigger,omitempty"`
	Action     string      `json:"action,omitempty"`
	Outcome    string      `json:"outcome,omitempty"`
	Reasons    []string    `json:"reasons,omitempty"`
	Message    string      `json:"message,omitempty"`
	DurationMs int64       `json:"durationMs,omitempty"`
	LatencyMs  int64       `json:"latencyMs,omitempty"`
	Crash      *CrashState `json:"crash,omitempty"`
}

// CrashState is the crash-loop state of an instance: how many times in a row
// it exited soon after being started, and when the next start is allowed.
type CrashState struct {
	Restarts    int       `json:"restarts"`
	LastExit    string    `json:"lastExit,omitempty"`
	DelayMs     int64     `json:"delayMs"`
	NextAttempt time.Time `json:"nextAttempt"`
}

// WatchStore is what the watch loop records to.
type WatchStore interface {
	LastApplied(ctx context.Context, fleet string) (LastApplied, error)
	// BeginPass starts the record of a pass that changes the engine.
	BeginPass(ctx context.Context, fleet string, triggers []Trigger) (PassRecorder, error)
	// RecordEvent keeps a watch event (drift, heal, crash loop, error).
	RecordEvent(ctx context.Context, fleet string, ev WatchEvent) error
	// SetCrashState records an instance's crash-loop state; nil clears it.
	SetCrashState(ctx context.Context, fleet, instance string, st *CrashState) error
}

// PassRecorder records the actions of one pass.
type PassRecorder interface {
	Recorder
	Finish(ctx context.Context, results []ActionResult)
}

// BackoffPolicy delays restarts of an instance that keeps exiting.
type BackoffPolicy struct {
	// MinUptime: an exit sooner than this after jackin started the
	// container counts as a crash.
	MinUptime time.Duration
	// Initial is the delay after the second crash in a row (the first is
	// restarted at once); it doubles with each further crash up to Max.
	Initial time.Duration
	Max     time.Duration
}

// DefaultBackoff is the crash-loop policy watch uses unless told otherwise.
var DefaultBackoff = BackoffPolicy{MinUptime: 10 * time.Second, Initial: time.Second, Max: time.Minute}

// delay is the wait before restart number n (n crashes in a row).
func (p BackoffPolicy) delay(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	d := p.Initial
	for i := 2; i < n && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// WatchConfig is everything the watch loop needs.
type WatchConfig struct {
	// Fleet is the manifest as loaded (and validated) at start.
	Fleet *schema.Fleet
	// Load reloads the manifests after a file event.
	Load func(ctx context.Context) (*schema.Fleet, error)
	// Files delivers manifest file changes (already debounced); nil: none.
	Files  <-chan Trigger
	Driver drivers.Driver
	// Drivers, when set, are every backend the fleet uses, by name: each
	// pass observes them all (in parallel) and plans one plan over them.
	// Driver is then the default backend's.
	Drivers drivers.Set
	// Events are the backends whose changes are streamed, by placement
	// (drivers.Set's keys): each stream is kept open on its own, so one
	// that is down (an unreachable engine) delays nothing from the
	// others. None: rely on resyncs.
	Events map[string]drivers.EventSource
	Store  WatchStore
	// Lock takes the fleet's writer lock for one heal; release frees it.
	Lock func(ctx context.Context) (release func(), err error)
	// Report receives every watch event, in order, from one goroutine.
	Report func(WatchEvent)
	Log    logr.Logger
	// Progress receives image build output; nil discards it.
	Progress io.Writer
	// Workspaces makes and releases the isolated checkouts of instances.
	Workspaces Workspaces
	// StateDir is passed to Execute (ExecOptions.StateDir).
	StateDir string
	// OnObserved, when set, sees every observation before it is planned
	// (the CLI records OOM kills there: a restart clears the engine's flag).
	OnObserved func(ctx context.Context, fleet string, obs *drivers.Observed) error
	// Credentials, when set, reads the credentials of the desired state
	// once per pass, before it is planned; it writes nothing.
	Credentials func(ctx context.Context, d *Desired) *Desired
	// WriteCredentials, when set, writes the file and proxy deliveries of
	// a pass's credentials under the fleet lock, before the heal is
	// planned again (a rotated value is then in place without a
	// recreate); it returns d with the instances it could not write for
	// failed.
	WriteCredentials func(ctx context.Context, d *Desired) *Desired
	// BeforeExecute, when set, runs under the fleet lock right before a
	// heal's plan is executed: what apply does around a plan (the egress
	// proxies about to be removed have their last log lines pulled).
	BeforeExecute func(ctx context.Context, p *Plan)
	// BeforeAction is passed to Execute (ExecOptions.BeforeAction).
	BeforeAction func(ctx context.Context, fleet string, act Action) error
	// Owner, when set, labels every object watch creates with the fleet's
	// owner (see ResolveOwner).
	Owner Owner
	// IdleStopped, when set, says which instances idle cleanup stopped
	// (PlanOptions.IdleStopped): watch leaves them stopped.
	IdleStopped func(ctx context.Context, fleet string) (map[string]bool, error)

	Mode       string
	Resync     time.Duration
	AllowEmpty bool
	Parallel   int
	Backoff    BackoffPolicy
	// Coalesce is how long a pass waits for more engine events after the
	// first (a `docker rm -f` is a die then a destroy); 0 means 20ms.
	Coalesce time.Duration
}

// watcher is the state of one watch loop. Only the loop goroutine touches it.
type watcher struct {
	cfg      WatchConfig
	fleet    *schema.Fleet
	desired  *Desired
	loadErr  string            // the manifest error last reported, to report it once
	drift    map[string]string // warn mode: the drift last reported per instance
	crashes  map[string]*crashEntry
	expected map[string]time.Time // container IDs jackin itself stopped or removed
	killed   map[string]time.Time // container IDs someone else signalled
	// died holds agent containers an engine die event reported, until the
	// engine's container list agrees: the list can say "running" for a
	// while after the event.
	died map[string]time.Time
	// oomSeen holds containers whose OOM kill was recorded from its event.
	oomSeen map[string]bool
	// unhealed is the first engine trigger about each instance not yet healed
	// or found in sync: the engine's list can lag its events, so the pass a
	// die event starts may see nothing to do and the next one heals.
	unhealed  map[string]Trigger
	wakeTimer *time.Timer
	// down are the declared engines found unreachable, by name
	// (partition.go).
	down map[string]*engineDown
}

// crashEntry tracks one instance's exits.
type crashEntry struct {
	hash      string    // the spec the crashes happened with
	startedAt time.Time // when watch last started the container
	crashes   int       // exits in a row sooner than MinUptime after a start
	lastExit  string
	notBefore time.Time // no start before this
	reported  time.Time // notBefore last reported
}

// Watch runs the reconcile loop until ctx ends: a pass at start, then one
// after each manifest change, each engine event about the fleet (a burst of
// them is one pass), each reconnect of the event stream, each crash-loop
// delay that runs out, and every cfg.Resync. A pass that finds nothing to do
// costs one observe. Heal mode takes the fleet lock only to execute, and
// re-plans under it, so a concurrent apply and watch agree.
//
// It returns nil when ctx ends: the action in flight finishes and is
// recorded first. Failures inside a pass are reported and the loop goes on.
func Watch(ctx context.Context, cfg WatchConfig) error {
	if cfg.Fleet == nil {
		return errors.New("watch: no manifest")
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeHeal
	}
	if cfg.Mode != ModeHeal && cfg.Mode != ModeWarn {
		return fmt.Errorf("watch: unknown mode %q (heal or warn)", cfg.Mode)
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Backoff == (BackoffPolicy{}) {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Coalesce <= 0 {
		cfg.Coalesce = 20 * time.Millisecond
	}
	desired, err := BuildDesired(cfg.Fleet)
	if err != nil {
		return err
	}
	if cfg.Owner.ID != "" {
		desired.SetOwner(cfg.Owner)
	}
	w := &watcher{
		cfg: cfg, fleet: cfg.Fleet, desired: desired,
		drift: map[string]string{}, crashes: map[string]*crashEntry{}, expected: map[string]time.Time{},
		unhealed: map[string]Trigger{}, killed: map[string]time.Time{}, died: map[string]time.Time{},
		oomSeen:   map[string]bool{},
		wakeTimer: time.NewTimer(time.Hour),
	}
	w.wakeTimer.Stop()

	triggers := make(chan Trigger, 1024)
	var wg sync.WaitGroup
	defer wg.Wait()
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	if len(cfg.Events) > 0 {
		var readies []chan struct{}
		for name, src := range cfg.Events {
			ready := make(chan struct{})
			readies = append(readies, ready)
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.streamEvents(streamCtx, name, src, triggers, ready)
			}()
		}
		// Subscribe before the first observe, so nothing falls between
		// them (a stream that cannot open within the wait is retried).
		wait := time.After(5 * time.Second)
	subscribe:
		for _, ready := range readies {
			select {
			case <-ready:
			case <-wait:
				break subscribe
			case <-ctx.Done():
				break subscribe
			}
		}
	}
	if cfg.Files != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case t, ok := <-cfg.Files:
					if !ok {
						return
					}
					select {
					case triggers <- t:
					case <-streamCtx.Done():
						return
					}
				case <-streamCtx.Done():
					return
				}
			}
		}()
	}

	resync := time.NewTicker(cfg.Resync)
	defer resync.Stop()
	pending := []Trigger{{Source: TriggerStart, At: time.Now()}}
	for {
		if len(pending) > 0 {
			pending = w.gather(ctx, triggers, pending)
			w.pass(ctx, pending)
			pending = nil
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case t := <-triggers:
			pending = append(pending, t)
		case <-resync.C:
			pending = append(pending, Trigger{Source: TriggerResync, At: time.Now()})
		case now := <-w.wakeTimer.C:
			pending = append(pending, Trigger{Source: TriggerBackoff, At: now})
		}
	}
}

// gather adds the triggers already queued, and, when the batch holds an
// engine event, those that follow within the coalescing window.
func (w *watcher) gather(ctx context.Context, triggers <-chan Trigger, batch []Trigger) []Trigger {
	var window <-chan time.Time
	for {
		if window == nil && slices.ContainsFunc(batch, func(t Trigger) bool { return t.Source == TriggerEngine }) {
			window = time.After(w.cfg.Coalesce)
		}
		if window == nil {
			select {
			case t := <-triggers:
				batch = append(batch, t)
				continue
			default:
				return batch
			}
		}
		select {
		case t := <-triggers:
			batch = append(batch, t)
		case <-window:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
}

// streamEvents keeps one backend's event stream open, reopening it with a
// growing delay after it ends. The end of a stream and every reopening queue
// a trigger: a full resync covers whatever changed while it was down.
func (w *watcher) streamEvents(ctx context.Context, name string, src drivers.EventSource, out chan<- Trigger, ready chan<- struct{}) {
	what := "engine event stream"
	if name != drivers.DefaultBackend {
		what = name + " event stream"
	}
	const minRetry, maxRetry = 100 * time.Millisecond, 5 * time.Second
	retry := minRetry
	signalReady := func() {
		if ready != nil {
			close(ready)
			ready = nil
		}
	}
	defer signalReady()
	var downSince time.Time
	for attempt := 0; ctx.Err() == nil; attempt++ {
		events, errs, err := src.Events(ctx, w.fleet.Name)
		signalReady()
		if err != nil {
			if downSince.IsZero() {
				downSince = time.Now()
				w.send(ctx, out, Trigger{Source: TriggerStreamEnded, Detail: "cannot open the " + what + ": " + err.Error(), At: downSince})
			}
			select {
			case <-time.After(retry):
			case <-ctx.Done():
				return
			}
			retry = min(retry*2, maxRetry)
			continue
		}
		if attempt > 0 {
			detail := what + " reopened"
			if !downSince.IsZero() {
				detail += fmt.Sprintf(" after %s", time.Since(downSince).Round(time.Millisecond))
			}
			w.send(ctx, out, Trigger{Source: TriggerReconnect, Detail: detail, At: time.Now()})
		}
		downSince = time.Time{}
		retry = minRetry
		for ev := range events {
			w.send(ctx, out, engineTrigger(ev))
		}
		err = <-errs
		if ctx.Err() != nil {
			return
		}
		downSince = time.Now()
		w.send(ctx, out, Trigger{Source: TriggerStreamEnded, Detail: what + " ended: " + errString(err), At: downSince})
	}
}

func (w *watcher) send(ctx context.Context, out chan<- Trigger, t Trigger) {
	select {
	case out <- t:
	case <-ctx.Done():
	}
}

func engineTrigger(ev drivers.Event) Trigger {
	detail := string(ev.Kind) + " " + ev.Action + " " + ev.Name
	if ev.Action == drivers.EventDie && ev.ExitCode != "" {
		detail += " (exit " + ev.ExitCode + ")"
	}
	return Trigger{Source: TriggerEngine, Detail: detail, Instance: ev.Instance, At: ev.Time, Event: &ev}
}

// pass runs one reconcile pass for a batch of triggers.
func (w *watcher) pass(ctx context.Context, batch []Trigger) {
	reload := false
	for _, t := range batch {
		if t.Source != TriggerStart {
			t := t
			w.report(WatchEvent{Time: time.Now(), Type: EventTrigger, Instance: t.Instance, Trigger: &t, Message: t.String()})
		}
		switch t.Source {
		case TriggerFile:
			reload = true
		case TriggerEngine:
			if w.noteEngineEvent(ctx, t) {
				if old, ok := w.unhealed[t.Instance]; !ok || t.At.Before(old.At) {
					t.Event = nil
					w.unhealed[t.Instance] = t
				}
			}
		}
	}
	if reload {
		w.reload(ctx)
	}
	w.clearStable(ctx, time.Now())
	desired := w.desired
	if w.cfg.Credentials != nil {
		desired = w.cfg.Credentials(ctx, desired)
	}
	plan, _, err := w.plan(ctx, desired)
	if err != nil {
		w.reportError(err)
		return
	}
	w.notePartitions(ctx, plan, time.Now())
	w.holdCrashing(ctx, plan, time.Now())
	refresh := w.cfg.Mode == ModeHeal && credentialsPending(desired)
	if !plan.HasChanges() && !refresh {
		w.clearDrift(plan)
		w.scheduleWake(time.Now())
		return
	}
	if w.cfg.Mode == ModeWarn {
		w.reportDrift(ctx, plan)
		w.scheduleWake(time.Now())
		return
	}
	w.heal(ctx, batch, desired)
	w.scheduleWake(time.Now())
}

// credentialsPending reports whether a file or proxy credential of d holds
// another value than its source's (a refresh to write, with no action).
func credentialsPending(d *Desired) bool {
	for i := range d.Instances {
		if len(d.Instances[i].CredentialsPending()) > 0 {
			return true
		}
	}
	return false
}

// plan observes the engine and plans desired (the last valid desired
// state, with the pass's credentials).
func (w *watcher) plan(ctx context.Context, desired *Desired) (*Plan, Observations, error) {
	set := w.cfg.Drivers
	if set == nil {
		set = drivers.Set{drivers.DefaultBackend: w.cfg.Driver}
	}
	all, unreachable, err := ObservePartitioned(ctx, set, desired)
	if err != nil {
		return nil, nil, err
	}
	for _, observed := range all {
		w.applyDied(observed, time.Now())
		if w.cfg.OnObserved != nil {
			// A kill already recorded from its oom event is not recorded again.
			seen := *observed
			seen.Containers = append([]drivers.ObservedResource(nil), observed.Containers...)
			for i := range seen.Containers {
				if w.oomSeen[seen.Containers[i].ID] {
					seen.Containers[i].OOMKilled = false
				}
			}
			if err := w.cfg.OnObserved(ctx, w.fleet.Name, &seen); err != nil {
				w.cfg.Log.Error(err, "record what was observed")
			}
		}
	}
	last, err := w.cfg.Store.LastApplied(ctx, w.fleet.Name)
	if err != nil {
		return nil, nil, err
	}
	// Read after observing: idle cleanup marks an instance before it
	// stops it, so a stopped container seen here has its mark.
	var idle map[string]bool
	if w.cfg.IdleStopped != nil {
		if idle, err = w.cfg.IdleStopped(ctx, w.fleet.Name); err != nil {
			return nil, nil, err
		}
	}
	plan, err := BuildPlanAll(desired, all, last, PlanOptions{Prune: true, AllowEmpty: w.cfg.AllowEmpty, Unreachable: unreachable, IdleStopped: idle})
	if err != nil {
		return nil, nil, err
	}
	return plan, all, nil
}

// applyDied marks as exited the containers a die event reported that the
// engine's list still shows running, so the pass the event starts heals at
// once. A list that agrees (or 10s without agreement) ends the override.
func (w *watcher) applyDied(obs *drivers.Observed, now time.Time) {
	if len(w.died) == 0 {
		return
	}
	for i := range obs.Containers {
		c := &obs.Containers[i]
		at, ok := w.died[c.ID]
		if !ok {
			continue
		}
		if c.State != drivers.StateRunning || now.Sub(at) > 10*time.Second {
			delete(w.died, c.ID)
			continue
		}
		c.State, c.Status = drivers.StateExited, "exited (an engine event said so; its list still says running)"
	}
}

// reload reads the manifests again. An invalid, unreadable or emptied
// manifest keeps the last valid desired state: it is reported once, and
// nothing is deleted because of it.
func (w *watcher) reload(ctx context.Context) {
	fleet, err := w.cfg.Load(ctx)
	if err == nil && fleet.Name != w.fleet.Name {
		err = fmt.Errorf("the fleet name changed from %q to %q: watch keeps %q; restart watch to switch fleets", w.fleet.Name, fleet.Name, w.fleet.Name)
	}
	if err == nil && len(fleet.Instances) == 0 && !w.cfg.AllowEmpty {
		err = fmt.Errorf("the manifest now declares no instances; watch keeps the last valid manifest and deletes nothing (pass --allow-empty to let an empty manifest delete the fleet)")
	}
	var desired *Desired
	if err == nil {
		desired, err = BuildDesired(fleet)
		if err == nil && w.cfg.Owner.ID != "" {
			desired.SetOwner(w.cfg.Owner)
		}
	}
	if err != nil {
		msg := err.Error()
		if msg != w.loadErr {
			w.loadErr = msg
			w.report(WatchEvent{Time: time.Now(), Type: EventError, Message: "manifest not applied, keeping the last valid one: " + msg})
			w.record(ctx, WatchEvent{Time: time.Now(), Type: EventError, Message: "manifest not applied: " + msg})
		}
		return
	}
	if w.loadErr != "" {
		w.report(WatchEvent{Time: time.Now(), Type: EventInfo, Message: "manifest is valid again"})
	}
	w.loadErr = ""
	w.fleet, w.desired = fleet, desired
}

// noteEngineEvent updates crash bookkeeping from an engine event, and
// reports whether the event is drift: a container of an instance (its agent
// or a sidecar: a crashing egress proxy backs off like a crashing agent)
// that died or went away, and not because jackin stopped or removed it.
func (w *watcher) noteEngineEvent(ctx context.Context, t Trigger) bool {
	ev := t.Event
	if ev == nil || ev.Kind != drivers.KindContainer || ev.Instance == "" {
		return false
	}
	_, ours := w.expected[ev.ID]
	switch {
	case ev.Action == drivers.EventDestroy:
		delete(w.oomSeen, ev.ID)
		delete(w.expected, ev.ID)
		delete(w.killed, ev.ID)
		delete(w.died, ev.ID)
		return !ours
	case ev.Action == drivers.EventOOM:
		// Recorded now: the engine's own flag is cleared by the restart
		// that follows, and its list may not show the exit yet.
		oom := WatchEvent{Time: time.Now(), Type: EventOOMKilled, Instance: ev.Instance,
			Message: fmt.Sprintf("container %s was killed by the kernel's OOM killer (out of memory) at %s", ev.Name, ev.Time.UTC().Format(time.RFC3339Nano))}
		w.report(oom)
		w.record(ctx, oom)
		w.oomSeen[ev.ID] = true
		return true
	case ev.Action == drivers.EventKill:
		// Someone signalled it (docker kill, docker stop): the exit that
		// follows is drift to heal at once, not a crash to back off from.
		if !ours {
			w.killed[ev.ID] = ev.Time
		}
		return false
	case ev.Action != drivers.EventDie || ours:
		return !ours
	}
	w.died[ev.ID] = ev.Time
	if _, killed := w.killed[ev.ID]; killed {
		delete(w.killed, ev.ID)
		if e := w.crashes[ev.Instance]; e != nil {
			e.startedAt = time.Time{}
		}
		return true
	}
	e := w.crashes[ev.Instance]
	if e == nil {
		e = &crashEntry{}
		w.crashes[ev.Instance] = e
	}
	e.lastExit = ev.ExitCode
	if e.startedAt.IsZero() && e.crashes > 0 {
		// The exit of a start that failed (a daemon that died before it
		// answered): the failure was counted, and its backoff stands.
		return true
	}
	if !e.startedAt.IsZero() && ev.Time.Sub(e.startedAt) < w.cfg.Backoff.MinUptime {
		e.crashes++
	} else {
		e.crashes = 1
	}
	e.startedAt = time.Time{}
	w.backOff(ctx, ev.Instance, e, ev.Time, fmt.Sprintf("exited %d time(s) in a row within %s of starting (last exit code %s)",
		e.crashes, w.cfg.Backoff.MinUptime, orUnknown(e.lastExit)))
	return true
}

// backOff sets the delay before the instance's next start from its count of
// failures in a row, and reports and records it once it is more than zero.
func (w *watcher) backOff(ctx context.Context, instance string, e *crashEntry, from time.Time, what string) {
	delay := w.cfg.Backoff.delay(e.crashes)
	e.notBefore = from.Add(delay)
	if delay <= 0 {
		return
	}
	st := e.state(delay)
	ev := WatchEvent{Time: time.Now(), Type: EventCrashLoop, Instance: instance, Crash: st,
		Message: fmt.Sprintf("%s; next start in %s, at %s", what, delay, st.NextAttempt.Local().Format("15:04:05.000"))}
	w.report(ev)
	w.record(ctx, ev)
	if err := w.cfg.Store.SetCrashState(ctx, w.fleet.Name, instance, st); err != nil {
		w.cfg.Log.Error(err, "record crash-loop state", "instance", instance)
	}
}

func (e *crashEntry) state(delay time.Duration) *CrashState {
	return &CrashState{Restarts: e.crashes, LastExit: e.lastExit, DelayMs: delay.Milliseconds(), NextAttempt: e.notBefore}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// holdCrashing turns the start, create and recreate actions of instances
// still in their crash-loop delay into noops. A new spec ends the delay: it
// may be the fix.
func (w *watcher) holdCrashing(ctx context.Context, p *Plan, now time.Time) {
	for i := range p.Actions {
		a := &p.Actions[i]
		e := w.crashes[a.Instance]
		if e == nil || a.Desired == nil {
			continue
		}
		if e.hash != "" && e.hash != a.Desired.Hash {
			w.clearCrash(ctx, a.Instance, "spec changed")
			continue
		}
		if a.Type != ActionStart && a.Type != ActionCreate && a.Type != ActionRecreate {
			continue
		}
		if !now.Before(e.notBefore) {
			continue
		}
		if !e.reported.Equal(e.notBefore) {
			e.reported = e.notBefore
			w.report(WatchEvent{Time: now, Type: EventDrift, Instance: a.Instance, Action: string(a.Type), Reasons: a.Reasons,
				Message: fmt.Sprintf("held back by the crash-loop delay until %s", e.notBefore.Local().Format("15:04:05.000"))})
		}
		a.Type, a.Reasons = ActionNoop, nil
	}
}

// clearStable ends the crash loop of instances that have stayed up for
// MinUptime since their last start.
func (w *watcher) clearStable(ctx context.Context, now time.Time) {
	for name, e := range w.crashes {
		if !e.startedAt.IsZero() && now.Sub(e.startedAt) >= w.cfg.Backoff.MinUptime {
			if e.crashes >= 2 {
				w.clearCrash(ctx, name, fmt.Sprintf("up for %s", now.Sub(e.startedAt).Round(time.Second)))
			} else {
				delete(w.crashes, name)
			}
		}
	}
}

func (w *watcher) clearCrash(ctx context.Context, name, why string) {
	e := w.crashes[name]
	delete(w.crashes, name)
	if e == nil || e.crashes < 2 {
		return
	}
	w.report(WatchEvent{Time: time.Now(), Type: EventRecovered, Instance: name, Message: "crash loop over: " + why})
	if err := w.cfg.Store.SetCrashState(ctx, w.fleet.Name, name, nil); err != nil {
		w.cfg.Log.Error(err, "clear crash-loop state", "instance", name)
	}
}

// scheduleWake sets the timer for the next crash-loop deadline: a delay
// that runs out, or an instance that will have stayed up long enough.
func (w *watcher) scheduleWake(now time.Time) {
	var next time.Time
	for _, e := range w.crashes {
		var t time.Time
		switch {
		case e.notBefore.After(now):
			t = e.notBefore
		case !e.startedAt.IsZero() && e.crashes >= 2:
			t = e.startedAt.Add(w.cfg.Backoff.MinUptime)
		default:
			continue
		}
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if t := w.nextPartitionRetry(); !t.IsZero() && (next.IsZero() || t.Before(next)) {
		next = t
	}
	w.wakeTimer.Stop()
	select {
	case <-w.wakeTimer.C:
	default:
	}
	if !next.IsZero() {
		w.wakeTimer.Reset(max(next.Sub(now), time.Millisecond))
	}
}

// heal executes a plan under the fleet lock. The plan is made again under
// the lock: a concurrent apply may have changed the engine meanwhile. The
// pass's credentials are written first, under the lock too.
func (w *watcher) heal(ctx context.Context, batch []Trigger, desired *Desired) {
	release, err := w.cfg.Lock(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.reportError(fmt.Errorf("not healing now: %w", err))
		}
		return
	}
	defer release()
	if w.cfg.WriteCredentials != nil {
		desired = w.cfg.WriteCredentials(ctx, desired)
	}
	plan, observed, err := w.plan(ctx, desired)
	if err != nil {
		w.reportError(err)
		return
	}
	w.notePartitions(ctx, plan, time.Now())
	w.holdCrashing(ctx, plan, time.Now())
	if !plan.HasChanges() {
		return
	}
	for _, a := range plan.Actions {
		if !a.Mutates() {
			continue
		}
		for _, o := range a.Observed {
			if o.Kind == drivers.KindContainer && (a.Type != ActionStart) {
				w.expected[o.ID] = time.Now()
			}
		}
	}
	rec, err := w.cfg.Store.BeginPass(context.WithoutCancel(ctx), w.fleet.Name, batch)
	if err != nil {
		w.reportError(fmt.Errorf("record watch pass: %w", err))
		return
	}
	pr := &passReporter{w: w, rec: rec, batch: batch}
	if w.cfg.BeforeExecute != nil {
		w.cfg.BeforeExecute(ctx, plan)
	}
	results := Execute(ctx, plan, w.cfg.Driver, ExecOptions{
		Parallel:      w.cfg.Parallel,
		Progress:      w.cfg.Progress,
		Log:           w.cfg.Log.WithName("execute"),
		Recorder:      pr,
		Images:        imagesOf(observed[drivers.DefaultBackend]),
		BackendImages: observed.images(),
		Drivers:       w.cfg.Drivers,
		Workspaces:    w.cfg.Workspaces,
		StateDir:      w.cfg.StateDir,
		FinishStarted: true,
		BeforeAction:  w.cfg.BeforeAction,
	})
	rec.Finish(context.WithoutCancel(ctx), results)
	w.pruneExpected()
}

// pruneExpected forgets container IDs jackin stopped long ago (their die
// event has come or never will).
func (w *watcher) pruneExpected() {
	for _, m := range []map[string]time.Time{w.expected, w.killed, w.died} {
		for id, at := range m {
			if time.Since(at) > time.Minute {
				delete(m, id)
			}
		}
	}
}

// passReporter reports and records each result with its trigger and latency.
type passReporter struct {
	w     *watcher
	rec   PassRecorder
	batch []Trigger
}

func (p *passReporter) ActionFinished(ctx context.Context, r ActionResult) {
	p.rec.ActionFinished(ctx, r)
	w := p.w
	now := time.Now()
	trig := causeOf(p.batch, r.Action.Instance)
	if t, ok := w.unhealed[r.Action.Instance]; ok && t.At.Before(trig.At) {
		trig = t
	}
	if r.Outcome == OutcomeSucceeded {
		delete(w.unhealed, r.Action.Instance)
	}
	ev := WatchEvent{
		Time: now, Type: EventAction, Instance: r.Action.Instance, Trigger: &trig, Action: string(r.Action.Type),
		Outcome: r.Outcome, Reasons: r.Action.Reasons, DurationMs: r.Duration.Milliseconds(),
		LatencyMs: now.Sub(trig.At).Milliseconds(),
	}
	if r.Err != nil {
		ev.Message = r.Err.Error()
	}
	w.report(ev)
	w.record(ctx, ev)
	starts := r.Action.Type == ActionStart || r.Action.Type == ActionCreate || r.Action.Type == ActionRecreate
	if !starts || r.Action.Desired == nil {
		return
	}
	e := w.crashes[r.Action.Instance]
	if e == nil {
		e = &crashEntry{}
		w.crashes[r.Action.Instance] = e
	}
	e.hash = r.Action.Desired.Hash
	switch r.Outcome {
	case OutcomeSucceeded:
		for _, o := range r.Action.Observed {
			delete(w.died, o.ID)
		}
		if r.Action.Desired.Running {
			e.startedAt = now
		}
	case OutcomeFailed:
		// A failing create or start (an image that does not build, a port
		// taken) is retried with the same backoff as a crash, not at every
		// resync at full rate.
		e.crashes++
		e.lastExit = ""
		w.backOff(ctx, r.Action.Instance, e, now, fmt.Sprintf("%s failed %d time(s) in a row", r.Action.Type, e.crashes))
	}
}

// causeOf picks the trigger a result answers: the earliest about the
// instance, else the earliest of the batch.
func causeOf(batch []Trigger, instance string) Trigger {
	var best, first *Trigger
	for i := range batch {
		t := &batch[i]
		if first == nil || t.At.Before(first.At) {
			first = t
		}
		if t.Instance == instance && (best == nil || t.At.Before(best.At)) {
			best = t
		}
	}
	if best == nil {
		best = first
	}
	out := *best
	out.Event = nil
	return out
}

// forgetInSync drops the unhealed trigger of instances found in sync by a
// pass that another trigger started.
func (w *watcher) forgetInSync(p *Plan, batch []Trigger) {
	for _, a := range p.Actions {
		if a.Mutates() {
			continue
		}
		if !slices.ContainsFunc(batch, func(t Trigger) bool { return t.Instance == a.Instance }) {
			delete(w.unhealed, a.Instance)
		}
	}
}

// reportDrift reports each instance whose drift changed since last said.
func (w *watcher) reportDrift(ctx context.Context, p *Plan) {
	w.clearDrift(p)
	for _, a := range p.Actions {
		if !a.Mutates() {
			continue
		}
		// The reasons carry the engine's status text ("Exited (1) 3
		// seconds ago"), which changes every pass: the action is the key.
		key := string(a.Type)
		if w.drift[a.Instance] == key {
			continue
		}
		w.drift[a.Instance] = key
		ev := WatchEvent{Time: time.Now(), Type: EventDrift, Instance: a.Instance, Action: string(a.Type), Reasons: a.Reasons,
			Message: "drift: would " + string(a.Type) + ": " + strings.Join(a.Reasons, "; ")}
		w.report(ev)
		w.record(ctx, ev)
	}
}

// clearDrift forgets the reported drift of instances now in sync.
func (w *watcher) clearDrift(p *Plan) {
	for _, a := range p.Actions {
		if !a.Mutates() {
			delete(w.drift, a.Instance)
		}
	}
}

func (w *watcher) reportError(err error) {
	w.report(WatchEvent{Time: time.Now(), Type: EventError, Message: err.Error()})
}

func (w *watcher) report(ev WatchEvent) {
	if w.cfg.Report != nil {
		w.cfg.Report(ev)
	}
}

func (w *watcher) record(ctx context.Context, ev WatchEvent) {
	if err := w.cfg.Store.RecordEvent(context.WithoutCancel(ctx), w.fleet.Name, ev); err != nil {
		w.cfg.Log.Error(err, "record watch event")
	}
}
