package reconciler

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"

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
			err := runAction(ctx, p.Fleet, act, drv, imgErrs, log, opts)
			r := ActionResult{Action: act, Outcome: OutcomeSucceeded, Err: err, Duration: time.Since(start)}
			if err != nil {
				r.Outcome = OutcomeFailed
			}
			log.V(1).Info("action finished", "instance", act.Instance, "action", string(act.Type), "outcome", r.Outcome, "error", errString(err), "elapsed", r.Duration.String())
			finish(k, r)
		}()
	}
	wg.Wait()
	return results
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
	instances []string
}

// ensureImages makes sure every image the create and recreate actions need
// is present, each distinct reference once. It returns the error per
// reference that could not be made available.
func ensureImages(ctx context.Context, actions []Action, drv drivers.Driver, opts ExecOptions, parallel int) map[string]error {
	needs := map[string]*imageNeed{}
	for _, a := range actions {
		if a.Type != ActionCreate && a.Type != ActionRecreate {
			continue
		}
		for _, r := range a.Missing {
			if r.Kind != drivers.KindContainer || r.Container == nil || r.Container.Image.Ref == "" {
				continue
			}
			img := r.Container.Image
			if _, ok := opts.Images[img.Ref]; ok {
				continue
			}
			n := needs[img.Ref]
			if n == nil {
				n = &imageNeed{spec: img}
				needs[img.Ref] = n
			}
			n.instances = append(n.instances, a.Instance)
		}
	}
	errs := map[string]error{}
	if len(needs) == 0 {
		return errs
	}
	refs := make([]string, 0, len(needs))
	for ref := range needs {
		refs = append(refs, ref)
	}
	sort.Strings(refs)

	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	progress = &lockedWriter{w: progress}
	var mu sync.Mutex
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, ref := range refs {
		n := needs[ref]
		if ctx.Err() != nil {
			errs[ref] = context.Cause(ctx)
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			opts.Log.V(1).Info("ensuring image", "image", ref, "build", n.spec.Build != nil, "instances", n.instances)
			var err error
			if n.spec.Build != nil && n.spec.Build.Prepare != nil {
				err = n.spec.Build.Prepare()
			}
			if err == nil {
				_, err = drv.EnsureImage(ctx, n.spec, progress)
			}
			opts.Log.V(1).Info("image ensured", "image", ref, "error", errString(err), "elapsed", time.Since(start).String())
			if err != nil {
				mu.Lock()
				errs[ref] = err
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

// step is one engine call of an action.
type step struct {
	desc string
	run  func(ctx context.Context) error
}

// runAction executes one action's steps in order, stopping at the first
// failure, or after the step in flight when ctx is cancelled (unless
// finishStarted).
func runAction(ctx context.Context, fleet string, act Action, drv drivers.Driver, imgErrs map[string]error, log logr.Logger, opts ExecOptions) error {
	finishStarted := opts.FinishStarted
	if act.Err != nil {
		return act.Err
	}
	for _, r := range act.Missing {
		if r.Kind == drivers.KindContainer && r.Container != nil {
			if err, ok := imgErrs[r.Container.Image.Ref]; ok {
				return fmt.Errorf("image %s for instance %s is not available: %w", r.Container.Image.Ref, act.Instance, err)
			}
		}
	}
	steps := actionSteps(fleet, act, drv, opts)
	callCtx := context.WithoutCancel(ctx)
	if finishStarted {
		ctx = callCtx
	}
	for i, s := range steps {
		if i > 0 && ctx.Err() != nil {
			return fmt.Errorf("interrupted after %s: %w", steps[i-1].desc, context.Cause(ctx))
		}
		log.V(2).Info("step", "instance", act.Instance, "step", s.desc)
		if err := s.run(callCtx); err != nil {
			return fmt.Errorf("%s: %w", s.desc, err)
		}
	}
	return nil
}

// actionSteps lists the engine calls of an action, with the host-side
// checkout steps: made first on create and recreate (before anything is
// removed, so a failure leaves the old container running), released last
// on delete (after the container that used them is gone).
func actionSteps(fleet string, act Action, drv drivers.Driver, opts ExecOptions) []step {
	ws := opts.Workspaces
	var steps []step
	if (act.Type == ActionCreate || act.Type == ActionRecreate) && act.Desired != nil && len(act.Desired.Checkouts) > 0 {
		in := act.Desired
		steps = append(steps, step{"prepare worktree and clone checkouts", func(ctx context.Context) error {
			if ws == nil {
				return fmt.Errorf("instance %s has worktree or clone mounts, and this command cannot make checkouts: use jackin apply", in.Name)
			}
			return ws.Prepare(ctx, fleet, in)
		}})
	}
	if t := act.Type; (t == ActionCreate || t == ActionRecreate || t == ActionStart) && act.Desired != nil && act.Desired.DockerTLS != nil {
		// Before anything is stopped (a failure leaves the old containers
		// running), and on a start too: certificates deleted by hand are
		// made again instead of failing every start.
		tls := act.Desired.DockerTLS
		steps = append(steps, step{"prepare the private Docker daemon's certificates", func(ctx context.Context) error { return tls.Prepare() }})
	}
	var containers, networks []drivers.ObservedResource
	for _, o := range act.Observed {
		switch o.Kind {
		case drivers.KindContainer:
			containers = append(containers, o)
		case drivers.KindNetwork:
			networks = append(networks, o)
		}
	}
	agentID, agentName, agentState := "", "", ""
	for _, c := range containers {
		if c.Labels[drivers.LabelComponent] == drivers.ComponentAgent {
			agentID, agentName, agentState = c.ID, c.Name, c.State
			break
		}
	}

	stopRemove := func(c drivers.ObservedResource) {
		if c.State == drivers.StateRunning || c.State == drivers.StateRestarting || c.State == drivers.StatePaused {
			steps = append(steps, step{"stop container " + c.Name, func(ctx context.Context) error { return drv.Stop(ctx, c.ID) }})
		}
		steps = append(steps, step{"remove container " + c.Name, func(ctx context.Context) error {
			return drv.Remove(ctx, drivers.KindContainer, c.ID)
		}})
	}
	removeNetwork := func(n drivers.ObservedResource) {
		steps = append(steps, step{"remove network " + n.Name, func(ctx context.Context) error {
			return drv.Remove(ctx, drivers.KindNetwork, n.ID)
		}})
	}
	createMissing := func() {
		created := map[string]string{} // container name -> ID
		var ctrNames []string
		var agentName string
		var seeds []drivers.Resource // volumes created here that start as a copy of a host directory
		ready := map[string]*drivers.ReadyProbe{}
		specs := map[string]*drivers.ContainerSpec{} // container name -> spec
		for _, r := range act.Missing {
			if r.Kind == drivers.KindContainer {
				specs[r.Name] = r.Container
			}
			steps = append(steps, step{"create " + string(r.Kind) + " " + r.Name, func(ctx context.Context) error {
				if r.Kind == drivers.KindContainer {
					if err := verifySources(r.Container); err != nil {
						return err
					}
				}
				id, err := drv.Create(ctx, r)
				if err == nil && r.Kind == drivers.KindContainer {
					created[r.Name] = id
				}
				return err
			}})
			if r.Kind == drivers.KindContainer {
				ctrNames = append(ctrNames, r.Name)
				if r.Component == drivers.ComponentAgent {
					agentName = r.Name
				}
				if r.Container != nil && r.Container.Ready != nil {
					ready[r.Name] = r.Container.Ready
				}
			}
			if r.Kind == drivers.KindVolume && r.Volume != nil && r.Volume.Seed != "" {
				seeds = append(seeds, r)
			}
		}
		for _, v := range seeds {
			// Through the new container, before it first starts: the copy
			// lands in the volume mounted at the target.
			steps = append(steps, step{"copy " + v.Volume.Seed + " into volume " + v.Name, func(ctx context.Context) error {
				if p := v.Volume.SeedPin; p != nil {
					if err := p.Verify(); err != nil {
						return fmt.Errorf("the seed directory %w: nothing was copied; run jackin apply to validate the manifest again", err)
					}
				}
				s, ok := drv.(drivers.Seeder)
				if !ok {
					return fmt.Errorf("the %s backend cannot copy %s into a volume", drv.Name(), v.Volume.Seed)
				}
				if created[agentName] == "" {
					return fmt.Errorf("no container was created to copy %s through", v.Volume.Seed)
				}
				return s.Seed(ctx, created[agentName], v.Volume.Target, v.Volume.Seed)
			}})
		}
		if act.Desired != nil && act.Desired.Running {
			// A container others depend on (the private daemon) first, and
			// the rest once it answers.
			sort.SliceStable(ctrNames, func(i, j int) bool { return serves(ready[ctrNames[i]]) && !serves(ready[ctrNames[j]]) })
			for _, name := range ctrNames {
				steps = append(steps, startStep(drv, name, func() string { return created[name] }, specs[name]))
				if probe := ready[name]; serves(probe) {
					steps = append(steps, waitReadyStep(drv, name, func() string { return created[name] }, *probe))
				}
			}
			// Then the checks that a container stays up, once all started.
			for _, name := range ctrNames {
				if probe := ready[name]; probe != nil && !serves(probe) {
					steps = append(steps, waitReadyStep(drv, name, func() string { return created[name] }, *probe))
				}
			}
		}
	}

	switch act.Type {
	case ActionCreate:
		createMissing()
	case ActionRecreate:
		// The containers replaced are those of the components created
		// again, and any the desired state no longer has; the networks
		// replaced are those created again, and any no longer desired.
		replace := map[string]bool{}
		replaceComp := map[string]bool{}
		for _, r := range act.Missing {
			switch r.Kind {
			case drivers.KindNetwork:
				replace[r.Name] = true
			case drivers.KindContainer:
				replaceComp[r.Component] = true
			}
		}
		wantNet, wantComp := map[string]bool{}, map[string]bool{}
		if act.Desired != nil {
			for _, r := range act.Desired.Resources {
				switch r.Kind {
				case drivers.KindNetwork:
					wantNet[r.Name] = true
				case drivers.KindContainer:
					wantComp[r.Component] = true
				}
			}
		}
		for _, c := range containers {
			if comp := c.Labels[drivers.LabelComponent]; replaceComp[comp] || !wantComp[comp] {
				stopRemove(c)
			}
		}
		for _, n := range networks {
			if replace[n.Name] || !wantNet[n.Name] {
				removeNetwork(n)
			}
		}
		createMissing()
	case ActionStart:
		if agentState == drivers.StatePaused {
			// The Driver contract has no unpause, and an engine refuses to
			// start a paused container: stop it (an engine can stop a paused
			// container), then start it.
			steps = append(steps, step{"stop container " + agentName, func(ctx context.Context) error { return drv.Stop(ctx, agentID) }})
		}
		// A container the agent depends on (the private daemon) starts, and
		// answers, first; one already running is asked again before the
		// agent starts (it may be running without ever having answered).
		probes := readyProbes(act.Desired)
		specs := desiredContainers(act.Desired)
		agentStarted := agentState != drivers.StateRunning && agentState != drivers.StateRestarting
		for _, c := range containers {
			probe := probes[c.Labels[drivers.LabelComponent]]
			if c.ID == agentID || !serves(probe) {
				continue
			}
			running := c.State == drivers.StateRunning || c.State == drivers.StateRestarting
			if running && !agentStarted {
				continue
			}
			if !running {
				if c.State == drivers.StatePaused {
					steps = append(steps, step{"stop container " + c.Name, func(ctx context.Context) error { return drv.Stop(ctx, c.ID) }})
				}
				steps = append(steps, startStep(drv, c.Name, func() string { return c.ID }, specs[c.Labels[drivers.LabelComponent]]))
			}
			steps = append(steps, waitReadyStep(drv, c.Name, func() string { return c.ID }, *probe))
		}
		if agentStarted {
			steps = append(steps, startStep(drv, agentName, func() string { return agentID }, specs[drivers.ComponentAgent]))
		}
		for _, c := range containers {
			if serves(probes[c.Labels[drivers.LabelComponent]]) {
				continue
			}
			if c.ID != agentID && c.State != drivers.StateRunning && c.State != drivers.StateRestarting {
				if c.State == drivers.StatePaused {
					steps = append(steps, step{"stop container " + c.Name, func(ctx context.Context) error { return drv.Stop(ctx, c.ID) }})
				}
				steps = append(steps, startStep(drv, c.Name, func() string { return c.ID }, specs[c.Labels[drivers.LabelComponent]]))
			}
		}
		if p := probes[drivers.ComponentAgent]; agentStarted && p != nil && !serves(p) {
			steps = append(steps, waitReadyStep(drv, agentName, func() string { return agentID }, *p))
		}
	case ActionStop:
		steps = append(steps, step{"stop container " + agentName, func(ctx context.Context) error { return drv.Stop(ctx, agentID) }})
		for _, c := range containers {
			if c.ID != agentID && (c.State == drivers.StateRunning || c.State == drivers.StateRestarting || c.State == drivers.StatePaused) {
				steps = append(steps, step{"stop container " + c.Name, func(ctx context.Context) error { return drv.Stop(ctx, c.ID) }})
			}
		}
	case ActionDelete:
		// Containers, then networks, then the ephemeral volumes (which
		// live as long as the instance). Other volumes are kept.
		for _, c := range containers {
			stopRemove(c)
		}
		for _, n := range networks {
			removeNetwork(n)
		}
		for _, o := range act.Observed {
			if o.Kind == drivers.KindVolume && drivers.OwnedByInstance(o.Labels[drivers.LabelComponent]) {
				steps = append(steps, step{"remove volume " + o.Name, func(ctx context.Context) error {
					return drv.Remove(ctx, drivers.KindVolume, o.ID)
				}})
			}
		}
		// Host files before checkouts: a checkout that cannot be released
		// fails the step, and must not leave keys and values behind.
		if opts.StateDir != "" {
			steps = append(steps, step{"remove the instance's certificates, credentials and egress policy", func(ctx context.Context) error {
				return RemoveInstanceFiles(opts.StateDir, fleet, act.Instance)
			}})
		}
		if ws != nil {
			steps = append(steps, step{"release worktree and clone checkouts", func(ctx context.Context) error {
				return ws.Release(ctx, fleet, act.Instance)
			}})
		}
	}
	return steps
}

// startStep starts a container, after checking its bind sources (when its
// desired spec is known) are still what was validated: the engine resolves
// a bind's host path at every start, so a source swapped for a symlink
// since would be followed.
func startStep(drv drivers.Driver, name string, id func() string, spec *drivers.ContainerSpec) step {
	return step{"start container " + name, func(ctx context.Context) error {
		if err := verifySources(spec); err != nil {
			return err
		}
		return drv.Start(ctx, id())
	}}
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
	if in == nil {
		return out
	}
	for _, r := range in.Resources {
		if r.Kind == drivers.KindContainer && r.Container != nil && r.Container.Ready != nil {
			out[r.Component] = r.Container.Ready
		}
	}
	return out
}

// serves reports whether a probe asks whether a container serves (and so
// starts before the others), rather than whether it stays up.
func serves(p *drivers.ReadyProbe) bool { return p != nil && len(p.Exec) > 0 }

// waitReadyStep waits for a started container's probe, when the backend
// can run one.
func waitReadyStep(drv drivers.Driver, name string, id func() string, probe drivers.ReadyProbe) step {
	label := "wait for container " + name + " to answer"
	if !serves(&probe) {
		label = "watch container " + name + " start"
	}
	return step{label, func(ctx context.Context) error {
		w, ok := drv.(drivers.ReadyWaiter)
		if !ok {
			return nil
		}
		return w.WaitReady(ctx, id(), probe)
	}}
}
