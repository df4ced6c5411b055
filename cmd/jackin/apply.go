package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/store"
)

type applyOptions struct {
	plan        planFlags
	dryRun      bool
	parallel    int
	lockTimeout time.Duration
}

func newApplyCommand(a *app) *cobra.Command {
	var mf manifestFlags
	var opts applyOptions
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "apply -f PATH...",
		Short: "Create, repair and garbage-collect instances to match the manifest",
		Long: `apply prints the plan, executes it, then prints every result. Instances run
in parallel (--parallel); a failed instance does not stop the others. Each run
and action is recorded in the history (jackin history).

Only one writer per fleet runs at a time: a second apply waits for the lock up
to --lock-timeout, saying who holds it, then fails.

Instances removed from the manifest are deleted (--prune=false only reports
them). A manifest with zero instances deletes nothing without --allow-empty.

Exit codes: 0 all actions succeeded (or nothing to do), 1 an action failed,
2 invalid manifest, unreachable engine or lock timeout.`,
		Example: `  jackin apply -f fleet.cue
  jackin apply -f fleet.cue --dry-run
  jackin apply -f fleets/ --parallel 16 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			if opts.parallel < 1 {
				return exitWith(exitInvalid, fmt.Errorf("--parallel must be at least 1, got %d", opts.parallel))
			}
			if opts.dryRun {
				return a.diff(cmd.Context(), mf.files, opts.plan, out.format)
			}
			return a.apply(cmd.Context(), mf.files, opts, out.format)
		},
	}
	mf.register(cmd)
	opts.plan.register(cmd)
	out.register(cmd, "text", "text", "json")
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "print the plan and change nothing (the same as diff, with its exit codes)")
	cmd.Flags().IntVar(&opts.parallel, "parallel", defaultParallel, "how many instances to change at once")
	cmd.Flags().DurationVar(&opts.lockTimeout, "lock-timeout", defaultLockTimeout, "how long to wait for another writer of the same fleet")
	return cmd
}

func (a *app) apply(ctx context.Context, files []string, opts applyOptions, format string) error {
	sess, err := a.openSession(ctx, files, true)
	if err != nil {
		return err
	}
	defer a.closeSession(sess)
	fleet, drv, st := sess.fleet, sess.drv, sess.st

	lock, err := a.lockFleet(ctx, fleet.Name, "apply", opts.lockTimeout)
	if err != nil {
		return err
	}
	defer lock.Release()

	res, err := computePlan(ctx, fleet, drv, st, opts.plan.options())
	if err != nil {
		return err
	}
	if format == "text" {
		reconciler.WritePlanText(a.stdout, res.plan, isTerminal(a.stdout))
	}

	runID, err := st.BeginRun(ctx, fleet.Name, "apply")
	if err != nil {
		return exitWith(exitInvalid, fmt.Errorf("record run: %w", err))
	}
	rec := &storeRecorder{st: st, fleet: fleet.Name, runID: runID, log: a.log}
	rec.backfillNoops(ctx, res)

	start := time.Now()
	results := reconciler.Execute(ctx, res.plan, drv, reconciler.ExecOptions{
		Parallel: opts.parallel,
		Progress: a.stderr,
		Log:      a.log.WithName("execute"),
		Recorder: rec,
		Images:   res.observed.Images,
	})
	sum := summarize(results)
	outcome := "succeeded"
	if sum.Failed > 0 {
		outcome = "failed"
	} else if ctx.Err() != nil {
		outcome = "interrupted"
	}
	if err := st.FinishRun(context.WithoutCancel(ctx), runID, outcome, sum.String()); err != nil {
		a.log.Error(err, "record run outcome")
	}
	a.log.V(1).Info("apply finished", "fleet", fleet.Name, "outcome", outcome, "elapsed", time.Since(start).String())

	if format == "json" {
		doc := applyDocument{
			APIVersion: "jackin.dev/v1alpha1", Kind: "ApplyResult", Fleet: fleet.Name,
			Plan: reconciler.PlanDocument(res.plan), Summary: sum, Results: resultDocs(results),
		}
		if err := writeStructured(a.stdout, "json", doc); err != nil {
			return err
		}
	} else if len(results) > 0 {
		fmt.Fprintln(a.stdout)
		writeResultsText(a, results)
		fmt.Fprintf(a.stdout, "Apply complete: %s.\n", sum.String())
	}
	if sum.Failed > 0 {
		return &exitError{code: exitChanges, reported: true}
	}
	return nil
}

// lockFleet takes the per-fleet writer lock, saying who holds it while waiting.
func (a *app) lockFleet(ctx context.Context, fleet, verb string, timeout time.Duration) (*store.Lock, error) {
	lock, err := store.AcquireLock(ctx, a.global.stateDir, fleet, verb, timeout, func(h store.Holder) {
		fmt.Fprintf(a.stderr, "Waiting for the lock on fleet %q: held by %s; waiting up to %s.\n", fleet, h, timeout)
	})
	if err != nil {
		if errors.Is(err, store.ErrLockTimeout) {
			return nil, exitWith(exitInvalid, err)
		}
		return nil, exitWith(exitInvalid, fmt.Errorf("lock fleet %q: %w", fleet, err))
	}
	return lock, nil
}

// storeRecorder records each finished action and keeps last-applied specs.
type storeRecorder struct {
	st    *store.Store
	fleet string
	runID int64
	log   logr.Logger
}

// ActionFinished is called by the executor for every action it ran. Store
// writes ignore cancellation: an interrupted apply still records what it did.
func (r *storeRecorder) ActionFinished(ctx context.Context, res reconciler.ActionResult) {
	ctx = context.WithoutCancel(ctx)
	errText := ""
	if res.Err != nil {
		errText = res.Err.Error()
	}
	if err := r.st.RecordAction(ctx, r.runID, store.ActionRecord{
		Instance: res.Action.Instance, Action: string(res.Action.Type), Reasons: res.Action.Reasons,
		Outcome: res.Outcome, Error: errText, Duration: res.Duration, At: time.Now(),
	}); err != nil {
		r.log.Error(err, "record action", "instance", res.Action.Instance)
	}
	if res.Outcome != reconciler.OutcomeSucceeded {
		return
	}
	switch res.Action.Type {
	case reconciler.ActionCreate, reconciler.ActionRecreate:
		r.setLastApplied(ctx, res.Action.Desired)
	case reconciler.ActionDelete:
		if err := r.st.DeleteLastApplied(ctx, r.fleet, res.Action.Instance); err != nil {
			r.log.Error(err, "forget last-applied spec", "instance", res.Action.Instance)
		}
	}
}

// backfillNoops records the spec of converged instances the store does not
// know (a fresh state dir), so later recreates can name the changed fields.
func (r *storeRecorder) backfillNoops(ctx context.Context, res *planResult) {
	for _, act := range res.plan.Actions {
		if act.Desired == nil || act.Type == reconciler.ActionCreate || act.Type == reconciler.ActionRecreate {
			continue
		}
		if _, ok := res.last[act.Instance]; !ok {
			r.setLastApplied(ctx, act.Desired)
		}
	}
}

func (r *storeRecorder) setLastApplied(ctx context.Context, d *reconciler.DesiredInstance) {
	if d == nil {
		return
	}
	spec, err := json.Marshal(d.Spec)
	if err == nil {
		err = r.st.SetLastApplied(ctx, r.fleet, d.Name, d.Hash, spec)
	}
	if err != nil {
		r.log.Error(err, "record last-applied spec", "instance", d.Name)
	}
}

// resultSummary counts outcomes.
type resultSummary struct {
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Skipped   int `json:"skipped"`
}

func (s resultSummary) String() string {
	return fmt.Sprintf("%d succeeded, %d failed, %d skipped", s.Succeeded, s.Failed, s.Skipped)
}

func summarize(results []reconciler.ActionResult) resultSummary {
	var s resultSummary
	for _, r := range results {
		switch r.Outcome {
		case reconciler.OutcomeSucceeded:
			s.Succeeded++
		case reconciler.OutcomeFailed:
			s.Failed++
		default:
			s.Skipped++
		}
	}
	return s
}

type applyDocument struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Fleet      string        `json:"fleet"`
	Plan       any           `json:"plan"`
	Summary    resultSummary `json:"summary"`
	Results    []resultDoc   `json:"results"`
}

type resultDoc struct {
	Instance   string `json:"instance"`
	Action     string `json:"action"`
	Outcome    string `json:"outcome"`
	Error      string `json:"error,omitempty"`
	DurationMs int64  `json:"durationMs"`
}

func resultDocs(results []reconciler.ActionResult) []resultDoc {
	docs := make([]resultDoc, 0, len(results))
	for _, r := range results {
		d := resultDoc{Instance: r.Action.Instance, Action: string(r.Action.Type), Outcome: r.Outcome, DurationMs: r.Duration.Milliseconds()}
		if r.Err != nil {
			d.Error = r.Err.Error()
		}
		docs = append(docs, d)
	}
	return docs
}

var pastTense = map[reconciler.ActionType]string{
	reconciler.ActionCreate: "created", reconciler.ActionRecreate: "recreated", reconciler.ActionStart: "started",
	reconciler.ActionStop: "stopped", reconciler.ActionDelete: "deleted",
}

func writeResultsText(a *app, results []reconciler.ActionResult) {
	for _, r := range results {
		d := r.Duration.Round(10 * time.Millisecond)
		switch r.Outcome {
		case reconciler.OutcomeSucceeded:
			fmt.Fprintf(a.stdout, "%s: %s in %s\n", r.Action.Instance, pastTense[r.Action.Type], d)
		case reconciler.OutcomeFailed:
			fmt.Fprintf(a.stdout, "%s: %s failed after %s: %v\n", r.Action.Instance, r.Action.Type, d, r.Err)
		default:
			reason := "interrupted"
			if r.Err != nil {
				reason = r.Err.Error()
			}
			fmt.Fprintf(a.stdout, "%s: %s skipped: %s\n", r.Action.Instance, r.Action.Type, reason)
		}
	}
}
