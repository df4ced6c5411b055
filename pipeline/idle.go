package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/jackin-dev/jackin/credentials"
	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/idle"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/supervisor"
	"github.com/jackin-dev/jackin/taskqueue"
	"github.com/jackin-dev/jackin/termtext"
)

// IdleStoppedSet is the set of the fleet's instances idle cleanup stopped
// (reconciler.PlanOptions.IdleStopped); a nil store has none.
func (e Env) IdleStoppedSet(ctx context.Context, fleet string) (map[string]bool, error) {
	out := map[string]bool{}
	if e.Store == nil {
		return out, nil
	}
	marks, err := e.Store.IdleStopped(ctx, fleet)
	if err != nil {
		return nil, err
	}
	for name := range marks {
		out[name] = true
	}
	return out, nil
}

// WakeLockTimeout is how long WakeIdle waits for the fleet lock.
const WakeLockTimeout = 30 * time.Second

// WakeSupervisorTimeout is how long WakeIdle waits, after the start, for
// the agent's supervisor to answer.
const WakeSupervisorTimeout = 30 * time.Second

// WakeIdle starts an idle-stopped instance again, the way apply starts a
// stopped one (its serving sidecars first, sources verified, snapshots by
// its recovery policy), records it as a run "wake" in the history, clears
// the mark, and waits until the agent's supervisor answers: the instance
// can take a prompt when it returns. It is a no-op for an instance that is
// not idle-stopped. A manifest change that recreates the instance starts
// it too. It takes the fleet's lock itself (waiting up to
// WakeLockTimeout): call it without holding the lock.
func (e Env) WakeIdle(ctx context.Context, fleet *schema.Fleet, instance string) error {
	if e.Store == nil {
		return nil
	}
	marks, err := e.Store.IdleStopped(ctx, fleet.Name)
	if err != nil {
		return err
	}
	if _, ok := marks[instance]; !ok {
		return nil
	}
	lock, err := store.AcquireLock(ctx, e.StateDir, fleet.Name, "wake", WakeLockTimeout, nil)
	if err != nil {
		return fmt.Errorf("wake %s: %w", instance, err)
	}
	defer func() {
		if err := lock.Release(); err != nil {
			e.Log.Error(err, "release the fleet lock")
		}
	}()
	// Planned as if it had no mark: its start is then the plan's action.
	res, err := e.Plan(ctx, fleet, reconciler.PlanOptions{IdleStopped: map[string]bool{}}, true)
	if err != nil {
		return fmt.Errorf("wake %s: %w", instance, err)
	}
	if err := res.Narrow([]string{instance}); err != nil {
		return fmt.Errorf("wake %s: %w", instance, err)
	}
	act := res.Plan.Actions[0]
	switch act.Type {
	case reconciler.ActionNoop:
		// Started by someone else meanwhile.
		if _, err := e.Store.ClearIdleStopped(ctx, fleet.Name, instance, "found running"); err != nil {
			return err
		}
	case reconciler.ActionStart, reconciler.ActionCreate, reconciler.ActionRecreate:
		applied, err := e.Apply(ctx, res, ApplyOptions{Verb: "wake"})
		if err != nil {
			return fmt.Errorf("wake %s: %w", instance, err)
		}
		for _, r := range applied.Results {
			if r.Err != nil {
				return fmt.Errorf("wake %s: %s failed: %w", instance, r.Action.Type, r.Err)
			}
		}
	default:
		return fmt.Errorf("wake %s: the plan for it is %s, not a start (%s)", instance, act.Type, strings.Join(act.Reasons, "; "))
	}
	ctr, ex, err := e.agentOf(ctx, fleet, instance)
	if err != nil {
		return fmt.Errorf("wake %s: %w", instance, err)
	}
	if _, err := WaitSupervisor(ctx, ex, ctr.ID, WakeSupervisorTimeout); err != nil {
		return fmt.Errorf("wake %s: started, but %w", instance, err)
	}
	return nil
}

// agentOf finds the instance's agent container and the backend's exec.
func (e Env) agentOf(ctx context.Context, fleet *schema.Fleet, instance string) (drivers.ObservedResource, drivers.Execer, error) {
	inst, ok := fleet.Instances[instance]
	if !ok {
		return drivers.ObservedResource{}, nil, fmt.Errorf("no instance %q in fleet %s", instance, fleet.Name)
	}
	key := inst.Backend
	if inst.Engine != "" {
		key = drivers.PlacementKey(inst.Backend, inst.Engine)
	}
	drv, err := e.Drivers.For(key)
	if err != nil {
		return drivers.ObservedResource{}, nil, err
	}
	ex, ok := drv.(drivers.Execer)
	if !ok {
		return drivers.ObservedResource{}, nil, fmt.Errorf("backend %s cannot run commands in a container", drv.Name())
	}
	obs, err := drv.Observe(ctx, fleet.Name, nil)
	if err != nil {
		return drivers.ObservedResource{}, nil, err
	}
	for _, c := range obs.Containers {
		if c.Instance() == instance && c.Labels[drivers.LabelFleet] == fleet.Name && c.Labels[drivers.LabelComponent] == drivers.ComponentAgent {
			return c, ex, nil
		}
	}
	return drivers.ObservedResource{}, nil, fmt.Errorf("instance %s has no agent container", instance)
}

// WaitSupervisor waits until the supervisor of agent container id answers
// a status request, polling, for at most timeout; it returns that status.
func WaitSupervisor(ctx context.Context, ex drivers.Execer, id string, timeout time.Duration) (supervisor.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		st, err := supervisorStatus(ctx, ex, id)
		if err == nil && st.State != "" {
			return st, nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return supervisor.Status{}, fmt.Errorf("the agent's supervisor did not answer within %s: %w", timeout, errors.Join(last, context.Cause(ctx)))
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// supervisorStatus asks the supervisor of container id for its status once.
func supervisorStatus(ctx context.Context, ex drivers.Execer, id string) (supervisor.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := supervisor.Connect(ctx, ex, id)
	if err != nil {
		return supervisor.Status{}, err
	}
	defer conn.Close()
	type answer struct {
		st  supervisor.Status
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		st, err := conn.Status()
		ch <- answer{st, err}
	}()
	select {
	case a := <-ch:
		return supervisor.Clean(a.st), a.err
	case <-ctx.Done():
		return supervisor.Status{}, context.Cause(ctx)
	}
}

// IdleCleanup is idle cleanup as jackin watch runs it: every Every, the
// agents of instances with an idle policy are checked (the state their
// supervisors published: file reads only); an instance past its idle.after
// is confirmed live (its container, its supervisor's state and attached
// clients, the queue's tasks) and its action run, once per idle period.
type IdleCleanup struct {
	Env Env
	// Fleet is the manifest now (watch reloads it).
	Fleet func() *schema.Fleet
	// Tasks, when set, are the fleet's queue tasks: an instance with one
	// in flight is never acted on; an error acts on nothing.
	Tasks func(ctx context.Context, fleet string) ([]taskqueue.Task, error)
	// Lock takes the fleet's writer lock for a stop.
	Lock func(ctx context.Context) (release func(), err error)
	// Report receives one line per action taken or failed.
	Report func(instance, message string)
	// Every is the check interval (default 1s).
	Every time.Duration
	// ExecTimeout bounds an idle exec command (default 10m).
	ExecTimeout time.Duration

	mu         sync.Mutex
	clientSeen map[string]time.Time
	inflight   map[string]bool
	skip       map[string]string // instance -> period found not running
	retryAt    map[string]time.Time
	lastMarks  time.Time
	wg         sync.WaitGroup
}

// Run checks until ctx ends, then waits for commands in flight.
func (c *IdleCleanup) Run(ctx context.Context) {
	every := c.Every
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	defer c.wg.Wait()
	for {
		if err := c.Pass(ctx, time.Now()); err != nil && ctx.Err() == nil {
			c.Env.Log.Error(err, "idle cleanup")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// statusRetry is how long an instance whose supervisor did not answer
// waits before it is asked again.
const statusRetry = 10 * time.Second

// notNowRetry is how long a due instance found busy (a task in flight)
// waits before it is checked live again.
const notNowRetry = 5 * time.Second

// marksCheckEvery is how often marks are checked against the engine (an
// instance started by hand, or taken out of the manifest).
const marksCheckEvery = 5 * time.Second

// Pass is one check at now.
func (c *IdleCleanup) Pass(ctx context.Context, now time.Time) error {
	e := c.Env
	fleet := c.Fleet()
	if fleet == nil || e.Store == nil {
		return nil
	}
	c.mu.Lock()
	if c.clientSeen == nil {
		c.clientSeen, c.inflight, c.skip, c.retryAt = map[string]time.Time{}, map[string]bool{}, map[string]string{}, map[string]time.Time{}
	}
	c.mu.Unlock()
	policies := false
	for _, inst := range fleet.Instances {
		policies = policies || inst.Idle != nil
	}
	if !policies && now.Sub(c.lastMarks) < marksCheckEvery {
		return nil // nothing to check but, now and then, marks left from before
	}
	marks, err := e.Store.IdleStopped(ctx, fleet.Name)
	if err != nil {
		return err
	}
	acts, err := e.Store.IdleActions(ctx, fleet.Name)
	if err != nil {
		return err
	}
	var due []string
	for _, name := range sortedKeys(fleet.Instances) {
		inst := fleet.Instances[name]
		if inst.Idle == nil || inst.State != schema.StateRunning {
			continue
		}
		if _, stopped := marks[name]; stopped {
			continue
		}
		pub, err := supervisor.ReadPublished(supervisor.HostDir(e.StateDir, fleet.Name, name))
		if err != nil {
			continue // no agent has published yet
		}
		c.mu.Lock()
		v := idle.Decide(idle.Input{Policy: inst.Idle, Running: true, State: pub.State, Since: pub.Since, Boot: pub.Boot,
			ClientSeen: c.clientSeen[name], LastPeriod: acts[name].Period, Now: now})
		skip := c.inflight[name] || c.skip[name] == v.Period || now.Before(c.retryAt[name])
		c.mu.Unlock()
		if v.Act && !skip {
			due = append(due, name)
		}
	}
	checkMarks := now.Sub(c.lastMarks) >= marksCheckEvery
	if checkMarks && len(marks) == 0 {
		c.lastMarks, checkMarks = now, false
	}
	if len(due) == 0 && !checkMarks {
		return nil
	}
	desired, err := reconciler.BuildDesired(fleet)
	if err != nil {
		return err
	}
	observed, unreachable, err := reconciler.ObservePartitioned(ctx, e.Drivers, desired)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	for n := range marks {
		set[n] = true
	}
	plan, err := reconciler.BuildPlanAll(desired, observed, nil, reconciler.PlanOptions{Unreachable: unreachable, IdleStopped: set, AllowEmpty: true})
	if err != nil {
		return err
	}
	byName := map[string]reconciler.Action{}
	for _, a := range plan.Actions {
		byName[a.Instance] = a
	}
	if checkMarks {
		c.lastMarks = now
		c.checkMarks(ctx, fleet, marks, byName)
	}
	for _, name := range due {
		c.consider(ctx, fleet, byName[name], acts[name].Period, now)
	}
	return nil
}

// checkMarks clears the marks idle cleanup no longer holds: an instance
// gone from the manifest, one whose desired state is now stopped, one
// whose agent was started by other means.
func (c *IdleCleanup) checkMarks(ctx context.Context, fleet *schema.Fleet, marks map[string]store.IdleStop, byName map[string]reconciler.Action) {
	for _, name := range sortedKeys(marks) {
		act, ok := byName[name]
		why := ""
		switch {
		case !ok || act.Desired == nil:
			why = "no longer in the manifest"
		case !act.Desired.Running:
			why = "its desired state is stopped"
		case act.Type == reconciler.ActionUnreachable:
			continue
		default:
			if ctr, ok := agentContainer(act); ok && ctr.State == drivers.StateRunning {
				why = "its agent was started outside idle cleanup"
			}
		}
		if why == "" {
			continue
		}
		if ok, err := c.Env.Store.ClearIdleStopped(ctx, fleet.Name, name, why); err != nil {
			c.Env.Log.Error(err, "clear an idle-stopped mark", "instance", name)
		} else if ok {
			c.report(name, "no longer idle-stopped: "+why)
		}
	}
}

func agentContainer(act reconciler.Action) (drivers.ObservedResource, bool) {
	for _, o := range act.Observed {
		if o.Kind == drivers.KindContainer && o.Labels[drivers.LabelComponent] == drivers.ComponentAgent {
			return o, true
		}
	}
	return drivers.ObservedResource{}, false
}

// consider confirms a due instance live and runs its action.
func (c *IdleCleanup) consider(ctx context.Context, fleet *schema.Fleet, act reconciler.Action, lastPeriod string, now time.Time) {
	e := c.Env
	if act.Desired == nil || act.Type == reconciler.ActionUnreachable {
		return
	}
	name := act.Instance
	policy := act.Desired.Instance.Idle
	ctr, ok := agentContainer(act)
	if !ok || ctr.State != drivers.StateRunning {
		// Stopped for another reason: watch heals that; nothing here
		// until its agent reports a new period.
		if pub, err := supervisor.ReadPublished(supervisor.HostDir(e.StateDir, fleet.Name, name)); err == nil {
			c.mu.Lock()
			c.skip[name] = idle.Period(pub.Boot, pub.Since)
			c.mu.Unlock()
		}
		return
	}
	drv, err := e.Drivers.For(act.Backend)
	if err != nil {
		return
	}
	ex, ok := drv.(drivers.Execer)
	if !ok {
		return
	}
	st, err := supervisorStatus(ctx, ex, ctr.ID)
	if err != nil {
		// Asked again later, not every second.
		e.Log.V(1).Info("idle cleanup: the supervisor did not answer", "instance", name, "error", err.Error())
		c.mu.Lock()
		c.retryAt[name] = now.Add(statusRetry)
		c.mu.Unlock()
		return
	}
	busy := false
	if c.Tasks != nil {
		tasks, err := c.Tasks(ctx, fleet.Name)
		if err != nil {
			e.Log.Error(err, "idle cleanup: read the queue's tasks; acting on nothing")
			return
		}
		busy = idle.Busy(tasks)[name]
	}
	c.mu.Lock()
	if st.Clients > 0 {
		c.clientSeen[name] = now
	}
	in := idle.Input{Policy: policy, Running: true, State: st.State, Since: st.Since, Boot: st.Boot, Clients: st.Clients,
		ClientSeen: c.clientSeen[name], Busy: busy, LastPeriod: lastPeriod, Now: now}
	c.mu.Unlock()
	v := idle.Decide(in)
	if !v.Act {
		// A task held for review can keep an idle agent busy for long:
		// asked again in a while, not every second.
		e.Log.V(1).Info("idle cleanup: not now", "instance", name, "why", v.Why)
		c.mu.Lock()
		c.retryAt[name] = now.Add(notNowRetry)
		c.mu.Unlock()
		return
	}
	switch v.Action {
	case schema.IdleStop:
		c.stop(ctx, fleet, act, v)
	case schema.IdleExec:
		c.mu.Lock()
		c.inflight[name] = true
		c.mu.Unlock()
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			msg := c.exec(ctx, fleet, act, ex, ctr.ID, v)
			// No longer in flight before it is reported: a pass that
			// follows the report may start the next period's command.
			c.mu.Lock()
			delete(c.inflight, name)
			c.mu.Unlock()
			c.report(name, msg)
		}()
	}
}

// stop marks the instance idle-stopped, then stops it as a stop action
// does (the agent, then its sidecars), under the fleet lock.
func (c *IdleCleanup) stop(ctx context.Context, fleet *schema.Fleet, act reconciler.Action, v idle.Verdict) {
	e := c.Env
	name := act.Instance
	if c.Lock != nil {
		release, err := c.Lock(ctx)
		if err != nil {
			e.Log.Error(err, "idle cleanup: take the fleet lock; trying again later", "instance", name)
			return
		}
		defer release()
	}
	if c.Tasks != nil {
		// A task may have been dispatched while the lock was waited for.
		tasks, err := c.Tasks(ctx, fleet.Name)
		if err != nil || idle.Busy(tasks)[name] {
			return
		}
	}
	ctx = context.WithoutCancel(ctx) // a stop begun is finished and recorded
	if err := e.Store.MarkIdleStopped(ctx, fleet.Name, store.IdleStop{Instance: name, IdleSince: v.IdleSince, Why: v.Why}); err != nil {
		e.Log.Error(err, "idle cleanup", "instance", name)
		return
	}
	stop := act
	stop.Type, stop.Reasons, stop.Missing, stop.IdleStopped = reconciler.ActionStop, []string{"idle cleanup: " + v.Why}, nil, false
	fallback, _ := e.Drivers.For("")
	results := reconciler.Execute(ctx, &reconciler.Plan{Fleet: fleet.Name, Actions: []reconciler.Action{stop}}, fallback,
		reconciler.ExecOptions{Parallel: 1, Drivers: e.Drivers, Log: e.Log.WithName("idle")})
	rec := store.IdleAction{Instance: name, Action: schema.IdleStop, Period: v.Period, IdleSince: v.IdleSince}
	if len(results) == 1 && results[0].Err != nil {
		rec.Error = results[0].Err.Error()
		if _, err := e.Store.ClearIdleStopped(ctx, fleet.Name, name, "idle stop failed"); err != nil {
			e.Log.Error(err, "idle cleanup", "instance", name)
		}
		c.report(name, "idle stop failed: "+rec.Error)
	} else {
		c.report(name, "stopped for idleness: "+v.Why)
	}
	if err := e.Store.RecordIdleAction(ctx, fleet.Name, rec); err != nil {
		e.Log.Error(err, "idle cleanup", "instance", name)
	}
}

// maxExecOutput is how much of an idle command's output is read.
const maxExecOutput = 64 << 10

// exec runs the instance's idle command in its agent container (no shell
// but one the manifest names) and records its exit status and the tail of
// its output, with anything that looks like a secret, or is one of the
// instance's credential values, redacted. It returns the line to report.
func (c *IdleCleanup) exec(ctx context.Context, fleet *schema.Fleet, act reconciler.Action, ex drivers.Execer, id string, v idle.Verdict) string {
	e := c.Env
	name := act.Instance
	timeout := c.ExecTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	rec := store.IdleAction{Instance: name, Action: schema.IdleExec, Period: v.Period, IdleSince: v.IdleSince}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, status, err := runExec(runCtx, ex, id, act.Desired.Instance.Idle.Exec)
	if err != nil {
		rec.Error = err.Error()
	} else {
		rec.ExitStatus = &status
	}
	rec.Output = c.safeTail(ctx, fleet, act, out)
	ctx = context.WithoutCancel(ctx)
	if err := e.Store.RecordIdleAction(ctx, fleet.Name, rec); err != nil {
		e.Log.Error(err, "idle cleanup", "instance", name)
	}
	if err != nil {
		return "idle exec could not run: " + rec.Error
	}
	return fmt.Sprintf("idle exec exited with status %d (%s)", status, v.Why)
}

// runExec runs argv in container id and returns its output (stdout, then
// stderr; at most maxExecOutput of each) and exit status.
func runExec(ctx context.Context, ex drivers.Execer, id string, argv []string) ([]byte, int, error) {
	sess, err := ex.Exec(ctx, id, drivers.ExecOptions{Cmd: argv})
	if err != nil {
		return nil, 0, err
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); copyTail(&stdout, sess.Stdout()) }()
	go func() { defer wg.Done(); copyTail(&stderr, sess.Stderr()) }()
	status, err := sess.Wait(ctx)
	wg.Wait()
	if err != nil {
		return nil, 0, err
	}
	return append(stdout.Bytes(), stderr.Bytes()...), status, nil
}

// copyTail reads r to its end, keeping its last maxExecOutput bytes.
func copyTail(dst *bytes.Buffer, r io.Reader) {
	if r == nil {
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		dst.Write(buf[:n])
		if dst.Len() > maxExecOutput {
			tail := append([]byte(nil), dst.Bytes()[dst.Len()-maxExecOutput:]...)
			dst.Reset()
			dst.Write(tail)
		}
		if err != nil {
			return
		}
	}
}

// safeTail is the last lines of out fit to keep: terminal escapes
// stripped, then redacted (credentials.Redact: the instance's credential
// values, secret shapes), at most three lines of 200 characters.
func (c *IdleCleanup) safeTail(ctx context.Context, fleet *schema.Fleet, act reconciler.Action, out []byte) string {
	text := termtext.String(string(out))
	lines := strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == '\r' })
	var kept []string
	for i := len(lines) - 1; i >= 0 && len(kept) < 3; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			kept = append([]string{l}, kept...)
		}
	}
	if len(kept) == 0 {
		return ""
	}
	var known [][]byte
	if len(act.Desired.Instance.Credentials) > 0 {
		one := &reconciler.Desired{Fleet: fleet.Name, StateDir: c.Env.StateDir, Instances: []reconciler.DesiredInstance{*act.Desired}}
		if d, err := ResolveCredentials(ctx, c.Env.StateDir, one, false); err == nil && d.Instances[0].Credentials != nil {
			for _, v := range d.Instances[0].Credentials.Values {
				known = append(known, v)
			}
		} else {
			// Values unknown: keep nothing rather than risk one.
			return "(output withheld: the instance's credentials could not be read to redact it)"
		}
	}
	return credentials.Redact([]byte(strings.Join(kept, "\n")), known...)
}

func (c *IdleCleanup) report(instance, msg string) {
	if c.Report != nil {
		c.Report(instance, msg)
	}
}
