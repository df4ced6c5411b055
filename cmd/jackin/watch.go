package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/manifests"
	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
)

type watchOptions struct {
	mode        string
	resync      time.Duration
	allowEmpty  bool
	parallel    int
	lockTimeout time.Duration
	minUptime   time.Duration
	backoffMax  time.Duration
	debounce    time.Duration
	force       bool
	adopt       bool
}

func newWatchCommand(a *app) *cobra.Command {
	var mf manifestFlags
	var opts watchOptions
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "watch -f PATH...",
		Short: "Keep the fleet matching the manifest: heal drift as it happens",
		Long: `watch runs the apply pipeline in a loop. A pass runs at start, then after:
  - a change to a manifest file (the directories holding them are watched, so
    editors that save by rename are seen; a burst of changes is one pass);
  - an engine event about the fleet: a container of it dies, stops, is
    destroyed or is OOM-killed, or one of its networks is removed or
    disconnected (the stream is reopened when it ends, for example after an
    engine restart, and a full resync follows every reopening);
  - every --resync, as a safety net.

--mode heal (the default) applies each plan; --mode warn only reports drift,
a line per instance and an event in the store, and changes nothing.

In heal mode watch also runs idle cleanup: an instance with idle: {after,
action} whose agent has been idle or done for after, with no task of the
queue in flight and no client attached, is stopped (marked idle-stopped:
not drift, watch leaves it stopped until a task or jackin attach starts it)
or has its idle command run in its container, once per idle period.

Safety: an invalid, unreadable or emptied manifest keeps the last valid one
(the errors are printed once, with file:line) and deletes nothing; an emptied
fleet is only deleted with --allow-empty. An instance that keeps exiting
within --min-uptime of being started is restarted with exponential backoff
(1s, 2s, 4s ... up to --backoff-max), shown as crashloop by jackin get. The
fleet lock is held only while a heal runs, so jackin apply can run alongside.

The fleet's task queue (queue: in the manifest) is dispatched in heal mode:
the sources are read at their intervals into the store, and a queued task's
prompt is typed into a queue instance whose agent waits for one (the agent's
state is followed live through its supervisor). The task then follows the
agent: working, done (or needs-review under gates.beforeDone, until jackin
queue approve), back to the queue when the agent exits, is recreated or is
deleted (failed after maxAttempts). A restart of watch resumes from the store.

One line per trigger, action and task transition goes to stdout, with timestamps (-o json:
JSON lines). Each heal is recorded in the store (jackin history) with its
trigger and latency. The first SIGINT or SIGTERM finishes the action in
flight, records it and exits 0; a second exits at once.`,
		Example: `  jackin watch -f fleet.cue
  jackin watch -f fleets/ --mode warn -o json
  jackin watch -f fleet.cue --resync 10s --min-uptime 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			if opts.mode != reconciler.ModeHeal && opts.mode != reconciler.ModeWarn {
				return exitWith(exitInvalid, fmt.Errorf("unknown --mode %q: use heal or warn", opts.mode))
			}
			if opts.parallel < 1 {
				return exitWith(exitInvalid, fmt.Errorf("--parallel must be at least 1, got %d", opts.parallel))
			}
			if opts.resync < 100*time.Millisecond {
				return exitWith(exitInvalid, fmt.Errorf("--resync must be at least 100ms, got %s", opts.resync))
			}
			if opts.minUptime <= 0 || opts.backoffMax < time.Second {
				return exitWith(exitInvalid, errors.New("--min-uptime must be positive and --backoff-max at least 1s"))
			}
			return a.watch(cmd.Context(), mf.files, opts, out.format)
		},
	}
	mf.register(cmd)
	out.register(cmd, "text", "text", "json")
	f := cmd.Flags()
	f.StringVar(&opts.mode, "mode", reconciler.ModeHeal, "heal: apply every plan; warn: report drift and change nothing")
	f.DurationVar(&opts.resync, "resync", 30*time.Second, "interval of the full resync that backs up file and engine events")
	f.BoolVar(&opts.allowEmpty, "allow-empty", false, "let a manifest edited down to zero instances delete the fleet")
	f.IntVar(&opts.parallel, "parallel", defaultParallel, "how many instances to change at once")
	f.DurationVar(&opts.lockTimeout, "lock-timeout", defaultLockTimeout, "how long a heal waits for another writer of the same fleet before trying again later")
	f.DurationVar(&opts.minUptime, "min-uptime", reconciler.DefaultBackoff.MinUptime, "an instance that exits sooner than this after a start is crashing")
	f.DurationVar(&opts.backoffMax, "backoff-max", reconciler.DefaultBackoff.Max, "the longest delay between restarts of a crashing instance")
	f.DurationVar(&opts.debounce, "debounce", 100*time.Millisecond, "quiet time that ends a burst of manifest file changes")
	f.BoolVar(&opts.force, "force", false, "make worktrees and clones from a source with uncommitted changes (from its HEAD, without them)")
	f.BoolVar(&opts.adopt, "adopt", false, "take over a fleet name that another manifest owns (applied from elsewhere on disk)")
	return cmd
}

func (a *app) watch(ctx context.Context, files []string, opts watchOptions, format string) error {
	for _, f := range files {
		if f == "-" {
			return exitWith(exitInvalid, errors.New("watch cannot read the manifest from stdin (-f -): name files or directories"))
		}
	}
	sess, err := a.openSession(ctx, files, true)
	if err != nil {
		return err
	}
	defer a.closeSession(sess)
	fleet, drv, st := sess.fleet, sess.drv, sess.st

	changes, err := manifests.WatchFiles(ctx, files, manifests.WatchOptions{Quiet: opts.debounce, Log: a.log.WithName("files")})
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	fileTriggers := make(chan reconciler.Trigger)
	go func() {
		defer close(fileTriggers)
		for fc := range changes {
			select {
			case fileTriggers <- reconciler.Trigger{Source: reconciler.TriggerFile, Detail: strings.Join(fc.Paths, ", "), At: fc.First}:
			case <-ctx.Done():
				return
			}
		}
	}()

	// Each backend that streams its changes does so on its own stream: the
	// local engine's and every declared engine's events (over its own
	// connection), and the Kubernetes watch API. A stream that cannot
	// open (an engine cut off) is retried on its own and delays no other;
	// the engine's return opens it again and heals.
	events := map[string]drivers.EventSource{}
	for key, d := range sess.set {
		backend, _ := drivers.SplitPlacement(key)
		if es, ok := d.(drivers.EventSource); ok && (backend == drivers.DefaultBackend || backend == schema.BackendKubernetes) {
			events[key] = es
		}
	}
	w := &watchOutput{w: a.stdout, format: format, fleet: fleet.Name}
	w.emit(reconciler.WatchEvent{Time: time.Now(), Type: reconciler.EventInfo, Message: fmt.Sprintf(
		"watching fleet %q (%d instances) on %s: mode %s, resync every %s; stop with Ctrl-C",
		fleet.Name, len(fleet.Instances), drv.Endpoint(), opts.mode, opts.resync)})

	// Egress policy files and the proxies' logs (heal mode only: warn
	// changes nothing).
	env := a.env(sess)
	observed, err := drv.Observe(ctx, fleet.Name, nil)
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	owner, err := env.Own(ctx, fleet.Name, pipeline.ManifestIdentity(fleet.Sources), opts.adopt, reconciler.Observations{drivers.DefaultBackend: observed}, nil)
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	var egressUp *pipeline.EgressUpkeep
	if opts.mode == reconciler.ModeHeal {
		upCtx, stopUp := context.WithCancel(ctx)
		if egressUp, err = env.StartEgressUpkeep(upCtx, fleet); err != nil {
			stopUp()
			return exitWith(exitInvalid, err)
		}
		defer egressUp.Wait()
		defer stopUp()
	}
	// The links' GitHub states are polled here, each on its own schedule.
	var current atomic.Pointer[schema.Fleet]
	current.Store(fleet)
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	go env.PollLinks(pollCtx, current.Load, pipeline.LinkPollEvery)
	// The task queue is dispatched here (heal mode only: warn changes
	// nothing), following each queue agent's state stream.
	if opts.mode == reconciler.ModeHeal {
		stopQueue := a.runQueue(ctx, sess, env, current.Load, w)
		defer stopQueue()
		// Idle cleanup acts (heal mode only: warn changes nothing).
		idle := &pipeline.IdleCleanup{
			Env:   env,
			Fleet: current.Load,
			// Never an instance with a task of the queue in flight.
			Tasks: sess.st.Tasks,
			Lock: func(ctx context.Context) (func(), error) {
				lock, err := a.lockFleet(ctx, fleet.Name, "watch", opts.lockTimeout)
				if err != nil {
					return nil, err
				}
				step := signals.hold(stepInFlight)
				return func() {
					step()
					if err := lock.Release(); err != nil {
						a.log.Error(err, "release the fleet lock")
					}
				}, nil
			},
			Report: func(instance, msg string) {
				w.emit(reconciler.WatchEvent{Time: time.Now(), Type: watchEventIdle, Instance: instance, Message: msg})
			},
		}
		idleDone := make(chan struct{})
		go func() {
			defer close(idleDone)
			idle.Run(pollCtx)
		}()
		defer func() {
			stopPoll()
			<-idleDone
		}()
	}
	err = reconciler.Watch(ctx, reconciler.WatchConfig{
		Fleet: fleet,
		Load: func(ctx context.Context) (*schema.Fleet, error) {
			f, err := a.reloadFleet(ctx, files)
			if err == nil && f.Name == fleet.Name {
				current.Store(f)
			}
			// Egress allowlists reload without a recreate, but only from a
			// manifest watch will apply: not another fleet's, and not an
			// emptied one it keeps the last valid state over.
			if err == nil && egressUp != nil && f.Name == fleet.Name && (len(f.Instances) > 0 || opts.allowEmpty) {
				err = egressUp.Reload(f)
			}
			return f, err
		},
		Files:   fileTriggers,
		Driver:  drv,
		Drivers: sess.set,
		Events:  events,
		Store:   &watchStore{st: st, app: a},
		Lock: func(ctx context.Context) (func(), error) {
			lock, err := a.lockFleet(ctx, fleet.Name, "watch", opts.lockTimeout)
			if err != nil {
				return nil, err
			}
			// A heal changes the engine: the first signal lets it finish.
			step := signals.hold(stepInFlight)
			return func() {
				step()
				if err := lock.Release(); err != nil {
					a.log.Error(err, "release the fleet lock")
				}
			}, nil
		},
		Report: w.emit,
		OnObserved: func(ctx context.Context, fleet string, obs *drivers.Observed) error {
			if _, err := env.RecordAgentStates(ctx, fleet); err != nil {
				a.log.Error(err, "record the agents' state changes")
			}
			env.RecordUsageLogged(ctx, fleet)
			env.RecordLinksLogged(ctx, fleet)
			return pipeline.RecordOOMKills(ctx, st, fleet, obs)
		},
		Workspaces: &pipeline.Checkouts{Store: st, StateDir: a.global.stateDir, Log: a.log.WithName("workspace"), RefuseDirty: !opts.force},
		StateDir:   a.global.stateDir,
		Credentials: func(ctx context.Context, d *reconciler.Desired) *reconciler.Desired {
			return env.ReadCredentials(ctx, d, opts.mode == reconciler.ModeHeal)
		},
		WriteCredentials: env.WriteCredentials,
		IdleStopped:      env.IdleStoppedSet,
		BeforeExecute:    env.BeforeHeal,
		BeforeAction:     env.BeforeAction,
		Owner:            owner,
		Log:              a.log.WithName("watch"),
		Progress:         a.stderr,
		Mode:             opts.mode,
		Resync:           opts.resync,
		AllowEmpty:       opts.allowEmpty,
		Parallel:         opts.parallel,
		Backoff:          reconciler.BackoffPolicy{MinUptime: opts.minUptime, Initial: time.Second, Max: opts.backoffMax},
	})
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	w.emit(reconciler.WatchEvent{Time: time.Now(), Type: reconciler.EventInfo, Message: "watch stopped"})
	return nil
}

// runQueue starts the queue's dispatcher; the function it returns stops
// it and waits for it (before the session's store closes).
func (a *app) runQueue(ctx context.Context, sess *session, env pipeline.Env, fleet func() *schema.Fleet, w *watchOutput) func() {
	agents := &pipeline.LiveAgents{Drivers: sess.set, Log: a.log.WithName("queue")}
	d := &pipeline.Dispatcher{
		Store:  sess.st,
		Agents: agents,
		Fleet:  fleet,
		Source: env.QueueSource(fleet),
		Links:  env.FleetLinks,
		// Idle-stopped instances take tasks: woken first.
		Wake:        env.WakeIdle,
		IdleStopped: env.IdleStoppedSet,
		Report:      w.emitQueue,
		Log:         a.log.WithName("queue"),
	}
	qctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(qctx)
	}()
	return func() {
		stop()
		<-done
		agents.Close()
	}
}

// watchEventIdle is the type of a watch line about idle cleanup (the
// store keeps those as idle-* events of their own).
const watchEventIdle = "idle"

// reloadFleet loads the manifests again for watch: diagnostics become the
// error, one line each, so watch can report them once.
func (a *app) reloadFleet(ctx context.Context, files []string) (*schema.Fleet, error) {
	res, err := manifests.Load(ctx, files, manifests.Options{StateDir: a.global.stateDir})
	if err != nil {
		var diags manifests.Diagnostics
		if errors.As(err, &diags) {
			lines := make([]string, 0, len(diags))
			for _, d := range diags {
				lines = append(lines, d.String())
			}
			return nil, fmt.Errorf("manifest is invalid: %d error(s):\n%s", len(diags), strings.Join(lines, "\n"))
		}
		return nil, err
	}
	res.Fleet.StateDir = a.global.stateDir
	return res.Fleet, nil
}

// watchOutput prints watch events as timestamped lines or JSON lines.
type watchOutput struct {
	mu     sync.Mutex
	w      io.Writer
	format string
	fleet  string
}

// watchLine is the JSON-lines form of a watch event.
type watchLine struct {
	Fleet string `json:"fleet"`
	reconciler.WatchEvent
}

func (o *watchOutput) emit(ev reconciler.WatchEvent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.format == "json" {
		b, err := json.Marshal(watchLine{Fleet: o.fleet, WatchEvent: ev})
		if err == nil {
			fmt.Fprintf(o.w, "%s\n", b)
		}
		return
	}
	ts := ev.Time.Local().Format("2006-01-02T15:04:05.000Z07:00")
	fmt.Fprintf(o.w, "%s  %s\n", ts, indentRest(watchText(ev)))
}

// watchQueueLine is the JSON-lines form of a queue event: type "task"
// (a transition), "task-source", "task-wake" or "error".
type watchQueueLine struct {
	Fleet string `json:"fleet"`
	pipeline.QueueEvent
}

func (o *watchOutput) emitQueue(ev pipeline.QueueEvent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.format == "json" {
		switch ev.Type {
		case pipeline.QueueEventTransition:
			ev.Type = "task"
		case pipeline.QueueEventError:
		default:
			ev.Type = "task-" + ev.Type
		}
		b, err := json.Marshal(watchQueueLine{Fleet: o.fleet, QueueEvent: ev})
		if err == nil {
			fmt.Fprintf(o.w, "%s\n", b)
		}
		return
	}
	ts := ev.Time.Local().Format("2006-01-02T15:04:05.000Z07:00")
	fmt.Fprintf(o.w, "%s  %s\n", ts, indentRest(queueText(ev)))
}

// queueText is the human form of one queue event.
func queueText(ev pipeline.QueueEvent) string {
	switch ev.Type {
	case pipeline.QueueEventTransition:
		on := ""
		if ev.Instance != "" {
			on = " on " + ev.Instance
		}
		return fmt.Sprintf("task %s: %s -> %s%s: %s", ev.Task, ev.From, ev.To, on, ev.Message)
	case pipeline.QueueEventError:
		if ev.Task != "" {
			return "error: task " + ev.Task + ": " + ev.Message
		}
		return "error: queue: " + ev.Message
	}
	return "queue: " + ev.Message
}

// watchText is the human form of one watch event.
func watchText(ev reconciler.WatchEvent) string {
	who := ""
	if ev.Instance != "" {
		who = ev.Instance + ": "
	}
	switch ev.Type {
	case reconciler.EventTrigger:
		return "trigger " + ev.Message
	case reconciler.EventAction:
		cause := ""
		if ev.Trigger != nil {
			cause = fmt.Sprintf(" (latency %dms after %s)", ev.LatencyMs, ev.Trigger.String())
		}
		switch ev.Outcome {
		case reconciler.OutcomeSucceeded:
			return fmt.Sprintf("%s%s in %dms%s", who, pastTense[reconciler.ActionType(ev.Action)], ev.DurationMs, cause)
		case reconciler.OutcomeFailed:
			return fmt.Sprintf("%s%s failed after %dms: %s", who, ev.Action, ev.DurationMs, ev.Message)
		default:
			return fmt.Sprintf("%s%s skipped: %s", who, ev.Action, ev.Message)
		}
	case reconciler.EventDrift:
		if ev.Message != "" {
			return who + ev.Message
		}
		return fmt.Sprintf("%sdrift: would %s: %s", who, ev.Action, strings.Join(ev.Reasons, "; "))
	case reconciler.EventCrashLoop:
		return who + "crashloop: " + ev.Message
	case reconciler.EventRecovered, reconciler.EventOOMKilled:
		return who + ev.Message
	case reconciler.EventError:
		return "error: " + who + ev.Message
	}
	return who + ev.Message
}

// indentRest indents the continuation lines of a multi-line message under
// its first line.
func indentRest(s string) string {
	return strings.ReplaceAll(s, "\n", "\n    ")
}

// watchStore is the store as the watch loop sees it.
type watchStore struct {
	st  *store.Store
	app *app
}

func (s *watchStore) LastApplied(ctx context.Context, fleet string) (reconciler.LastApplied, error) {
	return pipeline.LastApplied(ctx, s.st, fleet)
}

func (s *watchStore) BeginPass(ctx context.Context, fleet string, triggers []reconciler.Trigger) (reconciler.PassRecorder, error) {
	runID, err := s.st.BeginRun(ctx, fleet, "watch")
	if err != nil {
		return nil, err
	}
	causes := make([]string, 0, len(triggers))
	seen := map[string]bool{}
	for _, t := range triggers {
		if c := t.String(); !seen[c] {
			seen[c] = true
			causes = append(causes, c)
		}
	}
	return pipeline.NewPassRecorder(s.st, fleet, runID, strings.Join(causes, "; "), s.app.log), nil
}

func (s *watchStore) RecordEvent(ctx context.Context, fleet string, ev reconciler.WatchEvent) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode watch event: %w", err)
	}
	msg := ev.Message
	if msg == "" && ev.Type == reconciler.EventAction {
		msg = watchText(ev)
	}
	kind := "watch-" + ev.Type
	if ev.Type == reconciler.EventOOMKilled {
		kind = ev.Type // the kind apply and get record too
	}
	return s.st.RecordEvent(ctx, store.Event{Fleet: fleet, Instance: ev.Instance, Kind: kind, Message: msg, At: ev.Time, Data: data})
}

func (s *watchStore) SetCrashState(ctx context.Context, fleet, instance string, c *reconciler.CrashState) error {
	if c == nil {
		return s.st.ClearCrashState(ctx, fleet, instance)
	}
	return s.st.SetCrashState(ctx, fleet, store.CrashState{Instance: instance, Restarts: c.Restarts, LastExit: c.LastExit, NextAttempt: c.NextAttempt})
}
