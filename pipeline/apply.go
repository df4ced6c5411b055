package pipeline

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackin-dev/jackin/reconciler"
)

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// Verb names the run in the history ("apply").
	Verb     string
	Parallel int
	// Progress receives image build and pull output.
	Progress io.Writer
	// Checkouts makes and releases the instances' checkouts.
	Checkouts *Checkouts
	// StartCheck is how long a started agent must stay up (default
	// AgentStartCheck; negative: no check).
	StartCheck time.Duration
}

// AgentStartCheck is how long after its start apply expects an agent to
// still be up: one that exited with a non-zero status by then (a command
// that does not exist, a missing credential) fails its action.
const AgentStartCheck = 300 * time.Millisecond

// Applied is what Apply did.
type Applied struct {
	Results []reconciler.ActionResult
	Summary Summary
	// Outcome is the run's: succeeded, failed or interrupted.
	Outcome string
	// PoliciesWritten names the instances whose egress policy was written.
	PoliciesWritten []string
}

// Apply executes a planned pass with everything that goes around a plan,
// in this order: egress policies first (a proxy this pass creates starts
// with its own, one already running reloads it: an allowlist change
// recreates nothing), then credential deliveries (a container created now
// finds its files in place, a running agent or proxy sees a rotated value
// without a recreate), a run in the history with the specs of converged
// instances the store did not know, the last log lines of egress proxies
// about to be removed, then the plan, each result recorded as it finishes.
// The caller holds the fleet lock and has made its checks (Gate).
func (e Env) Apply(ctx context.Context, res *Result, opts ApplyOptions) (*Applied, error) {
	if e.Store == nil {
		return nil, fmt.Errorf("apply needs the state dir's store")
	}
	out := &Applied{}
	changed, err := reconciler.WritePolicies(res.Desired)
	if err != nil {
		return nil, err
	}
	out.PoliciesWritten = changed
	for _, name := range changed {
		e.Log.V(1).Info("egress policy written; its proxy reloads it within a second", "instance", name)
	}
	e.writeCredentials(ctx, res.Desired, res.Plan)

	verb := opts.Verb
	if verb == "" {
		verb = "apply"
	}
	runID, err := e.Store.BeginRun(ctx, res.Fleet.Name, verb)
	if err != nil {
		return nil, fmt.Errorf("record run: %w", err)
	}
	rec := &storeRecorder{st: e.Store, fleet: res.Fleet.Name, runID: runID, log: e.Log}
	rec.backfillNoops(ctx, res)
	if err := e.PullBeforeRemoving(ctx, res.Plan); err != nil {
		e.Log.Error(err, "pull the egress log of proxies about to be removed")
	}
	// Before a delete removes an agent directory, what it published is kept.
	if _, err := e.RecordAgentStates(ctx, res.Fleet.Name); err != nil {
		e.Log.Error(err, "record the agents' state changes")
	}
	e.RecordUsageLogged(ctx, res.Fleet.Name) // and their token usage
	e.RecordLinksLogged(ctx, res.Fleet.Name) // and their work links

	start := time.Now()
	var ws reconciler.Workspaces
	if opts.Checkouts != nil {
		ws = opts.Checkouts
	}
	fallback, _ := e.Drivers.For("")
	check := opts.StartCheck
	if check == 0 {
		check = AgentStartCheck
	}
	out.Results = reconciler.Execute(ctx, res.Plan, fallback, reconciler.ExecOptions{
		StartCheck:    max(check, 0),
		Parallel:      opts.Parallel,
		Progress:      opts.Progress,
		Log:           e.Log.WithName("execute"),
		Recorder:      rec,
		Images:        res.ObservedOn("docker").Images,
		BackendImages: res.Images(),
		Drivers:       e.Drivers,
		Workspaces:    ws,
		StateDir:      e.StateDir,
		BeforeAction:  e.BeforeAction,
	})
	out.Summary = Summarize(out.Results)
	out.Outcome = "succeeded"
	if out.Summary.Failed > 0 {
		out.Outcome = "failed"
	} else if ctx.Err() != nil {
		out.Outcome = "interrupted"
	}
	if err := e.Store.FinishRun(context.WithoutCancel(ctx), runID, out.Outcome, out.Summary.String()); err != nil {
		e.Log.Error(err, "record run outcome")
	}
	e.Log.V(1).Info(verb+" finished", "fleet", res.Fleet.Name, "outcome", out.Outcome, "elapsed", time.Since(start).String())
	return out, nil
}

// BeforeHeal is what watch does around a plan before it executes it, the
// same as Apply: the egress proxies about to be removed have their last
// log lines pulled first (watch did not, and lost up to a few seconds of
// decisions on every proxy recreate).
func (e Env) BeforeHeal(ctx context.Context, p *reconciler.Plan) {
	if err := e.PullBeforeRemoving(ctx, p); err != nil {
		e.Log.Error(err, "pull the egress log of proxies about to be removed")
	}
}
