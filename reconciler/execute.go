package reconciler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/jackin-dev/jackin/credentials"
	"github.com/jackin-dev/jackin/drivers"
)

// DefaultParallel is how many instances Execute changes at once when
// ExecOptions.Parallel is not set.
const DefaultParallel = 8

// Outcomes of an executed action.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeSkipped   = "skipped"
)

// ExecOptions tune Execute.
type ExecOptions struct {
	// Parallel bounds how many instances (and image builds or pulls) run at
	// once; 0 means DefaultParallel.
	Parallel int
	// Progress receives image build and pull output; nil discards it.
	Progress io.Writer
	// Log receives structured logs; the zero Logger discards them.
	Log logr.Logger
	// Recorder, when set, is told about every result as it finishes.
	Recorder Recorder
	// Images are the image references already present (ref -> image ID), as
	// observed; these need no EnsureImage call.
	Images map[string]string
	// BackendImages are Images per backend, for actions that name one.
	BackendImages map[string]map[string]string
	// Workspaces makes the worktrees and clones of created and recreated
	// instances before their containers, and releases those of deleted
	// instances. Nil: an action that needs a checkout fails with a clear
	// error, and a delete leaves checkouts alone (nothing is lost).
	Workspaces Workspaces
	// StateDir, when set, is where the instance files jackin keeps on the
	// host live (the private daemon's certificates, the egress policy):
	// a delete removes them. Empty leaves them alone.
	StateDir string
	// FinishStarted lets an action that has started run all its steps after
	// ctx is cancelled (watch stops between actions, never inside one);
	// actions not yet started are still skipped.
	FinishStarted bool
	// StartCheck, when set, is how long after its start an agent must still
	// be up: apply reports an agent that exited with a non-zero status
	// within it as a failed action, naming the status and its last log
	// line that holds no secret. Executed actions are checked together,
	// with one list per backend after the last start. An agent with its own
	// readiness probe, or killed by the OOM killer (reported as oom-killed),
	// is not checked here.
	StartCheck time.Duration
	// Drivers, when set, runs each action on the driver of its backend
	// (Action.Backend); the driver given to Execute serves actions that
	// name none.
	Drivers drivers.Set
	// BeforeAction, when set, runs before the first step of each mutating
	// action (the snapshot an instance's recovery policy asks for); its
	// error fails the action before anything changes.
	BeforeAction func(ctx context.Context, fleet string, act Action) error
}

// driverFor is the driver an action runs on.
func (o ExecOptions) driverFor(act Action, fallback drivers.Driver) (drivers.Driver, error) {
	if act.Backend == "" || o.Drivers == nil {
		return fallback, nil
	}
	return o.Drivers.For(act.Backend)
}

// Workspaces are the host-side isolated checkouts of instances.
type Workspaces interface {
	// Prepare makes (or finds) every checkout in.Checkouts lists. It is
	// idempotent.
	Prepare(ctx context.Context, fleet string, in *DesiredInstance) error
	// Release handles the checkouts of a deleted instance: removes those
	// whose work is safe elsewhere and keeps (and records) the others.
	Release(ctx context.Context, fleet, instance string) error
}

// Recorder is told about each action result as soon as it is known (the CLI
// records it in the store and keeps last-applied specs). Calls are
// serialised: an implementation need not be safe for concurrent use.
type Recorder interface {
	ActionFinished(ctx context.Context, r ActionResult)
}

// ActionResult is what happened to one action.
type ActionResult struct {
	Action   Action
	Outcome  string // OutcomeSucceeded, OutcomeFailed or OutcomeSkipped
	Err      error  // why it failed or was skipped
	Duration time.Duration
}

// Execute carries out a plan through a driver and returns one result per
// mutating action (noops and deletes kept by --prune=false produce none), in
// plan order.
//
// Images that create and recreate actions need, and that opts.Images does
// not list, are ensured first: each distinct reference once, in parallel up
// to the bound. A failed image fails only the instances that use it. Then
// instances run in parallel up to the bound; within an instance, resources
// are created in order (network before container) and removed in reverse. A
// failed instance does not stop the others.
//
// When ctx is cancelled, the engine call in flight finishes (driver calls
// are made without ctx's cancellation), the instance stops after it
// (failed, "interrupted after ...") and actions not yet started are skipped.
func Execute(ctx context.Context, p *Plan, drv drivers.Driver, opts ExecOptions) []ActionResult {
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = DefaultParallel
	}
	log := opts.Log
	var todo []int
	for i, a := range p.Actions {
		if a.Mutates() {
			todo = append(todo, i)
		}
	}
	results := make([]ActionResult, len(todo))
	if len(todo) == 0 {
		return results
	}

	var checkMu sync.Mutex
	var toCheck []startedAgent // agents started by succeeded actions (StartCheck)
	var recMu sync.Mutex
	finish := func(k int, r ActionResult) {
		results[k] = r
		if opts.Recorder != nil {
			recMu.Lock()
			defer recMu.Unlock()
			opts.Recorder.ActionFinished(ctx, r)
		}
	}

	actions := make([]Action, len(todo))
	for k, i := range todo {
		actions[k] = p.Actions[i]
	}
	imgErrs := ensureImages(ctx, actions, drv, opts, parallel)

	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for k, act := range actions {
		acquired := false
		select {
		case sem <- struct{}{}:
			acquired = true
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			if acquired {
				<-sem
			}
			finish(k, ActionResult{Action: act, Outcome: OutcomeSkipped, Err: fmt.Errorf("interrupted before it started: %w", context.Cause(ctx))})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if ctx.Err() != nil {
				finish(k, ActionResult{Action: act, Outcome: OutcomeSkipped, Err: fmt.Errorf("interrupted before it started: %w", context.Cause(ctx))})
				return
			}
			start := time.Now()
			log.V(1).Info("action started", "instance", act.Instance, "action", string(act.Type))
			started, err := runAction(ctx, p.Fleet, act, drv, imgErrs, log, opts)
			r := ActionResult{Action: act, Outcome: OutcomeSucceeded, Err: err, Duration: time.Since(start)}
			if err != nil {
				r.Outcome = OutcomeFailed
			}
			log.V(1).Info("action finished", "instance", act.Instance, "action", string(act.Type), "outcome", r.Outcome, "error", errString(err), "elapsed", r.Duration.String())
			if err == nil && started != nil && opts.StartCheck > 0 {
				checkMu.Lock()
				toCheck = append(toCheck, startedAgent{k: k, result: r, agentStart: *started})
				checkMu.Unlock()
				return
			}
			finish(k, r)
		}()
	}
	wg.Wait()
	for _, c := range checkStarts(ctx, p.Fleet, toCheck, drv, opts) {
		finish(c.k, c.result)
	}
	return results
}

// agentStart is an agent container an action started, and when.
type agentStart struct {
	name, id string
	at       time.Time
}

// startedAgent is a succeeded action whose agent start is yet to be checked.
type startedAgent struct {
	k      int
	result ActionResult
	agentStart
}

// checkStarts waits until opts.StartCheck has passed since the last start,
// lists each backend's containers once, and fails the actions whose agent
// exited with a non-zero status since (not by the OOM killer).
func checkStarts(ctx context.Context, fleet string, started []startedAgent, drv drivers.Driver, opts ExecOptions) []startedAgent {
	if len(started) == 0 {
		return nil
	}
	last := started[0].at
	for _, s := range started {
		if s.at.After(last) {
			last = s.at
		}
	}
	select {
	case <-time.After(time.Until(last.Add(opts.StartCheck))):
	case <-ctx.Done():
		return started // interrupted: what ran is reported as it ran
	}
	// One read per backend: the started containers alone where the
	// backend can report them by ID, else the fleet's whole list.
	ids := map[string][]string{} // by backend
	for _, s := range started {
		ids[s.result.Action.Backend] = append(ids[s.result.Action.Backend], s.id)
	}
	observed := map[string][]drivers.ObservedResource{} // by backend
	for i := range started {
		s := &started[i]
		d, err := opts.driverFor(s.result.Action, drv)
		if err != nil {
			continue
		}
		backend := s.result.Action.Backend
		cs, ok := observed[backend]
		if !ok {
			if st, can := d.(drivers.ContainerStater); can {
				cs, err = st.ContainerStates(ctx, ids[backend])
			} else {
				var obs *drivers.Observed
				if obs, err = d.Observe(ctx, fleet, nil); err == nil {
					cs = obs.Containers
				}
			}
			if err != nil {
				opts.Log.Error(err, "check that the started agents are up")
				return started
			}
			observed[backend] = cs
		}
		for _, c := range cs {
			if c.ID != s.id && c.Name != s.name && strings.TrimPrefix(c.Name, "/") != s.name {
				continue
			}
			if c.State != drivers.StateExited && c.State != drivers.StateDead {
				break
			}
			code, known := exitStatus(c.Status)
			if c.OOMKilled || (known && code == 0) {
				break
			}
			if agentSpec := desiredContainers(s.result.Action.Desired)[drivers.ComponentAgent]; known && code == 137 && agentSpec != nil && agentSpec.Memory > 0 {
				// A SIGKILL under a memory limit is the OOM killer's,
				// which the engine may mark only after the exit is
				// listed (under load, after seconds): not a failed start.
				break
			}
			status := "an unknown status"
			if known {
				status = "status " + strconv.Itoa(code)
			}
			msg := fmt.Sprintf("the agent container %s exited with %s right after it started", s.name, status)
			if line := lastSafeLogLine(ctx, d, c.ID, s.result.Action.Desired); line != "" {
				msg += "; its last log line: " + line
			}
			s.result.Outcome, s.result.Err = OutcomeFailed, errors.New(msg)
			break
		}
	}
	return started
}

// holdsAny reports whether line holds any of the values, however short
// (Redact leaves values under four bytes alone).
func holdsAny(line string, values [][]byte) bool {
	for _, v := range values {
		if t := strings.TrimSpace(string(v)); t != "" && strings.Contains(line, t) {
			return true
		}
	}
	return false
}

// exitStatus reads the exit status from the engine's status text
// ("Exited (3) 1 second ago").
func exitStatus(status string) (int, bool) {
	_, rest, ok := strings.Cut(status, "(")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, ")")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	return n, err == nil
}

// lastSafeLogLine is the last line of the container's log that holds no
// secret: none of the instance's credential values and no shape of one
// (credentials.Redact leaves it unchanged); printable, at most 200 bytes.
func lastSafeLogLine(ctx context.Context, drv drivers.Driver, id string, in *DesiredInstance) string {
	lt, ok := drv.(drivers.LogTailer)
	if !ok {
		return ""
	}
	lines, err := lt.ContainerLogTail(ctx, id, 20)
	if err != nil {
		return ""
	}
	var known [][]byte
	if in != nil && in.Credentials != nil {
		for _, v := range in.Credentials.Values {
			known = append(known, v)
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		line := strings.TrimSpace(lines[i])
		if line == "" || credentials.Redact([]byte(line), known...) != line || holdsAny(line, known) {
			continue
		}
		line = strings.Map(func(r rune) rune {
			if r == '\t' || (r >= ' ' && r != 0x7f && !(r >= 0x80 && r < 0xa0)) {
				return r
			}
			return '?'
		}, line)
		if len(line) > 200 {
			line = line[:200] + "..."
		}
		return strconv.Quote(line)
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// imageNeed is one image reference the plan needs and the instances using it.
type imageNeed struct {
	spec      drivers.ImageSpec
	drv       drivers.Driver
	instances []string
}

// imageKey names an image on one backend: the same reference on two
// backends is two images to make available.
func imageKey(backend, ref string) string {
	if backend == "" {
		return ref
	}
	return backend + " " + ref
}

// ensureImages makes sure every image the create and recreate actions need
// is present on their backend, each distinct reference once per backend.
// It returns the error per imageKey that could not be made available.
func ensureImages(ctx context.Context, actions []Action, drv drivers.Driver, opts ExecOptions, parallel int) map[string]error {
	needs := map[string]*imageNeed{}
	errs := map[string]error{}
	for _, a := range actions {
		if a.Type != ActionCreate && a.Type != ActionRecreate {
			continue
		}
		present := opts.Images
		if a.Backend != "" && opts.BackendImages != nil {
			present = opts.BackendImages[a.Backend]
		}
		for _, r := range a.Missing {
			if r.Kind != drivers.KindContainer || r.Container == nil || r.Container.Image.Ref == "" {
				continue
			}
			img := r.Container.Image
			if _, ok := present[img.Ref]; ok {
				continue
			}
			key := imageKey(a.Backend, img.Ref)
			n := needs[key]
			if n == nil {
				d, err := opts.driverFor(a, drv)
				if err != nil {
					errs[key] = err
					continue
				}
				n = &imageNeed{spec: img, drv: d}
				needs[key] = n
			}
			n.instances = append(n.instances, a.Instance)
		}
	}
	if len(needs) == 0 {
		return errs
	}
	keys := make([]string, 0, len(needs))
	for key := range needs {
		keys = append(keys, key)
	}
	sort.Strings(keys)

	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	progress = &lockedWriter{w: progress}
	var mu sync.Mutex
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, key := range keys {
		n := needs[key]
		if ctx.Err() != nil {
			errs[key] = context.Cause(ctx)
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			ref := n.spec.Ref
			opts.Log.V(1).Info("ensuring image", "image", ref, "backend", n.drv.Name(), "build", n.spec.Build != nil, "instances", n.instances)
			var err error
			if n.spec.Build != nil && n.spec.Build.Prepare != nil {
				err = n.spec.Build.Prepare()
			}
			if err == nil {
				_, err = n.drv.EnsureImage(ctx, n.spec, progress)
			}
			opts.Log.V(1).Info("image ensured", "image", ref, "error", errString(err), "elapsed", time.Since(start).String())
			if err != nil {
				mu.Lock()
				errs[key] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// lockedWriter serialises writes from concurrent image builds and pulls.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// runAction executes one action's steps in order, stopping at the first
// failure, or after the step in flight when ctx is cancelled (unless
// opts.FinishStarted).
func runAction(ctx context.Context, fleet string, act Action, drv drivers.Driver, imgErrs map[string]error, log logr.Logger, opts ExecOptions) (*agentStart, error) {
	if act.Err != nil {
		return nil, act.Err
	}
	drv, err := opts.driverFor(act, drv)
	if err != nil {
		return nil, err
	}
	for _, r := range act.Missing {
		if r.Kind == drivers.KindContainer && r.Container != nil {
			if err, ok := imgErrs[imageKey(act.Backend, r.Container.Image.Ref)]; ok {
				return nil, fmt.Errorf("image %s for instance %s is not available: %w", r.Container.Image.Ref, act.Instance, err)
			}
		}
	}
	if opts.BeforeAction != nil {
		if err := opts.BeforeAction(ctx, fleet, act); err != nil {
			return nil, err
		}
	}
	steps := Steps(act, StepOptions{RemoveFiles: opts.StateDir != "", ReleaseCheckouts: opts.Workspaces != nil})
	callCtx := context.WithoutCancel(ctx)
	if opts.FinishStarted {
		ctx = callCtx
	}
	run := stepRunner{fleet: fleet, act: act, drv: drv, opts: opts, created: map[string]string{}, steps: steps}
	defer func() {
		// A transfer the host staged ends with its action: a container
		// create already waited for it; anything else is stopped.
		if run.settle != nil {
			run.settle()
		}
	}()
	for i, s := range steps {
		if i > 0 && ctx.Err() != nil {
			return run.started, fmt.Errorf("interrupted after %s: %w", steps[i-1], context.Cause(ctx))
		}
		log.V(2).Info("step", "instance", act.Instance, "step", s.String())
		if err := run.step(callCtx, s); err != nil {
			return run.started, fmt.Errorf("%s: %w", s, err)
		}
	}
	if h, ok := drv.(drivers.InstanceHost); ok && act.Type == ActionDelete {
		// The instance's own host (an OrbStack machine) goes with it.
		if err := h.RemoveInstance(callCtx, fleet, act.Instance); err != nil {
			return run.started, fmt.Errorf("remove the host of instance %s: %w", act.Instance, err)
		}
		if opts.StateDir != "" {
			RemoveMachineFiles(opts.StateDir, fleet, act.Instance)
		}
	}
	return run.started, nil
}

// prepareHost makes or adopts the instance's own host, on a backend that
// gives each instance one, before its first resource is created.
func (r *stepRunner) prepareHost(ctx context.Context) error {
	h, ok := r.drv.(drivers.InstanceHost)
	if !ok || r.hostReady || r.act.Desired == nil {
		return nil
	}
	setup := drivers.InstanceSetup{Fleet: r.fleet, Instance: r.act.Desired.Instance, Resources: r.act.Desired.Resources}
	if err := h.PrepareInstance(ctx, setup); err != nil {
		return err
	}
	r.hostReady = true
	if st, ok := r.drv.(drivers.ImageStager); ok {
		// Only the images of the containers this action creates.
		stage := setup
		stage.Resources = nil
		for _, s := range r.steps {
			if s.Kind == StepCreate && s.Resource != nil && s.Resource.Kind == drivers.KindContainer {
				stage.Resources = append(stage.Resources, *s.Resource)
			}
		}
		// Called with none as well: what PrepareInstance began for the
		// images is the stager's to hand on or give up.
		r.settle = st.StageImages(ctx, stage)
	}
	return nil
}

// stepRunner carries out the steps of one action. It decides nothing: the
// steps say what to do; it only remembers the IDs of what it created.
type stepRunner struct {
	fleet   string
	act     Action
	drv     drivers.Driver
	opts    ExecOptions
	created map[string]string // object name -> ID, for objects this action created
	// started is the agent container this action started, for StartCheck:
	// only one without a readiness probe of its own.
	started *agentStart
	// hostReady: the instance's own host was prepared (InstanceHost).
	hostReady bool
	// settle ends the image staging the host began (ImageStager), if any.
	settle func()
	// steps are the action's steps (what it creates is staged).
	steps []Step
}

// id is the ID of the step's object: observed, or created by this action.
func (r *stepRunner) id(s Step) string {
	if s.ID != "" {
		return s.ID
	}
	return r.created[s.Name]
}

func (r *stepRunner) step(ctx context.Context, s Step) error {
	drv := r.drv
	switch s.Kind {
	case StepPrepareCheckouts:
		if r.opts.Workspaces == nil {
			return fmt.Errorf("instance %s has worktree or clone mounts, and this command cannot make checkouts: use jackin apply", r.act.Instance)
		}
		return r.opts.Workspaces.Prepare(ctx, r.fleet, r.act.Desired)
	case StepPrepareDockerTLS:
		return r.act.Desired.DockerTLS.Prepare()
	case StepPrepareAgent:
		return r.act.Desired.Agent.Prepare()
	case StepCreate:
		if err := r.prepareHost(ctx); err != nil {
			return err
		}
		if s.Resource.Kind == drivers.KindContainer {
			if s.Resource.Component == drivers.ComponentAgent && r.act.Desired != nil {
				if err := r.act.Desired.Agent.Ready(); err != nil {
					return err
				}
			}
			if err := verifySources(s.Resource.Container); err != nil {
				return err
			}
		}
		id, err := drv.Create(ctx, *s.Resource)
		if err == nil {
			r.created[s.Name] = id
		}
		return err
	case StepSeed:
		v := s.Seed.Volume
		if v.SeedPin != nil {
			if err := v.SeedPin.Verify(); err != nil {
				return fmt.Errorf("the seed directory %w: nothing was copied; run jackin apply to validate the manifest again", err)
			}
		}
		seeder, ok := drv.(drivers.Seeder)
		if !ok {
			return fmt.Errorf("the %s backend cannot copy %s into a volume", drv.Name(), v.Seed)
		}
		through := r.created[s.Through]
		if through == "" {
			return fmt.Errorf("no container was created to copy %s through", v.Seed)
		}
		return seeder.Seed(ctx, through, v.Target, v.Seed)
	case StepStart:
		if err := r.prepareHost(ctx); err != nil {
			return err
		}
		if s.Agent && r.act.Desired != nil {
			if err := r.act.Desired.Agent.Ready(); err != nil {
				return err
			}
		}
		// The engine resolves a bind's host path at every start, so a
		// source swapped for a symlink since validation would be followed.
		if err := verifySources(s.Spec); err != nil {
			return err
		}
		if err := drv.Start(ctx, r.id(s)); err != nil {
			return err
		}
		if s.Agent && (s.Spec == nil || s.Spec.Ready == nil) {
			r.started = &agentStart{name: s.Name, id: r.id(s), at: time.Now()}
		}
		return nil
	case StepWaitReady, StepWatchStart:
		w, ok := drv.(drivers.ReadyWaiter)
		if !ok {
			return nil
		}
		return w.WaitReady(ctx, r.id(s), *s.Probe)
	case StepStop, StepRemove:
		if r.act.Type == ActionRecreate {
			// The instance's own host is made or adopted before anything
			// is stopped: one that cannot be (a machine made with other
			// settings or shares) leaves the old containers running.
			if err := r.prepareHost(ctx); err != nil {
				return err
			}
		}
		if s.Kind == StepStop {
			return drv.Stop(ctx, r.id(s))
		}
		return drv.Remove(ctx, s.Object, r.id(s))
	case StepRemoveFiles:
		if f, ok := drv.(drivers.HostFileForgetter); ok {
			// Its copies on a remote engine's host first: the values
			// there must not outlive the instance either.
			secrets, _, _ := CredentialDirs(r.opts.StateDir, r.fleet, r.act.Instance)
			if err := f.ForgetHostFiles(ctx, []string{secrets, DockerTLSDir(r.opts.StateDir, r.fleet, r.act.Instance)}); err != nil {
				return err
			}
		}
		return RemoveInstanceFiles(r.opts.StateDir, r.fleet, r.act.Instance)
	case StepReleaseCheckouts:
		return r.opts.Workspaces.Release(ctx, r.fleet, r.act.Instance)
	}
	return fmt.Errorf("unknown step %q", s.Kind)
}

// verifySources checks every bind source of a container spec against its
// validated identity.
func verifySources(spec *drivers.ContainerSpec) error {
	if spec == nil {
		return nil
	}
	for _, m := range spec.Mounts {
		if err := m.VerifySource(); err != nil {
			return fmt.Errorf("refused: mount %s: %w; nothing was started with it: find what changed the path, then run jackin apply to validate the manifest again", m.Target, err)
		}
	}
	return nil
}

// desiredContainers maps each desired container component to its spec.
func desiredContainers(in *DesiredInstance) map[string]*drivers.ContainerSpec {
	out := map[string]*drivers.ContainerSpec{}
	if in == nil {
		return out
	}
	for _, r := range in.Resources {
		if r.Kind == drivers.KindContainer && r.Container != nil {
			out[r.Component] = r.Container
		}
	}
	return out
}

// readyProbes maps each desired container component that has a readiness
// probe to it.
func readyProbes(in *DesiredInstance) map[string]*drivers.ReadyProbe {
	out := map[string]*drivers.ReadyProbe{}
	for comp, spec := range desiredContainers(in) {
		if spec.Ready != nil {
			out[comp] = spec.Ready
		}
	}
	return out
}

// serves reports whether a probe asks whether a container serves (and so
// starts before the others), rather than whether it stays up.
func serves(p *drivers.ReadyProbe) bool { return p != nil && len(p.Exec) > 0 }
