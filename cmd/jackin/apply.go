package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/contract"
	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
)

type applyOptions struct {
	plan        planFlags
	dryRun      bool
	parallel    int
	lockTimeout time.Duration
	// requireApproval refuses a plan that widens access unless approve is set.
	requireApproval bool
	approve         bool
	// force makes worktrees and clones from a source with uncommitted changes.
	force bool
	// adopt makes this manifest the owner of a fleet name another manifest owns.
	adopt bool
	// startCheck is how long a started agent must stay up (0: no check).
	startCheck time.Duration
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

The plan marks every create or recreate that widens access ("! widens
access", as in jackin diff). With --require-approval-for-widening, such a plan
is refused (exit 2, nothing changed) unless --approve is also given: CI can
gate access changes in review. After the plan, apply prints the changed
sections of the session contract of each instance it creates or recreates
(jackin explain prints the whole contract).

An agent that exits with a non-zero status within --start-check of the last
start is a failed action naming its status and last log line; a slow or loaded
host may need a longer window.

Exit codes: 0 all actions succeeded (or nothing to do), 1 an action failed,
2 invalid manifest, unreachable engine, lock timeout, or a widening plan
refused by --require-approval-for-widening.`,
		Example: `  jackin apply -f fleet.cue
  jackin apply -f fleet.cue --dry-run
  jackin apply -f fleets/ --parallel 16 -o json
  jackin apply -f fleet.cue --require-approval-for-widening          # in CI
  jackin apply -f fleet.cue --require-approval-for-widening --approve # after review`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			if opts.parallel < 1 {
				return exitWith(exitInvalid, fmt.Errorf("--parallel must be at least 1, got %d", opts.parallel))
			}
			if opts.startCheck < 0 {
				return exitWith(exitInvalid, fmt.Errorf("--start-check must be 0 (no check) or more, got %s", opts.startCheck))
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
	cmd.Flags().BoolVar(&opts.requireApproval, "require-approval-for-widening", false, "refuse (exit 2, change nothing) a plan that widens any instance's access, unless --approve is given")
	cmd.Flags().BoolVar(&opts.approve, "approve", false, "approve the access widenings of this plan (with --require-approval-for-widening)")
	cmd.Flags().BoolVar(&opts.force, "force", false, "make worktree and clone checkouts even when their src has uncommitted changes (which the checkout does not include)")
	cmd.Flags().DurationVar(&opts.startCheck, "start-check", pipeline.AgentStartCheck, "how long a started agent must stay up for its action to succeed (longer on a slow or loaded host; 0: no check)")
	cmd.Flags().BoolVar(&opts.adopt, "adopt", false, "take over a fleet name that another manifest owns (applied from elsewhere on disk)")
	return cmd
}

func (a *app) apply(ctx context.Context, files []string, opts applyOptions, format string) error {
	sess, err := a.openSession(ctx, files, true)
	if err != nil {
		return err
	}
	defer a.closeSession(sess)
	fleet, st := sess.fleet, sess.st

	lock, err := a.lockFleet(ctx, fleet.Name, "apply", opts.lockTimeout)
	if err != nil {
		return err
	}
	defer lock.Release()

	res, err := a.plan(ctx, sess, opts.plan.options(), true)
	if err != nil {
		return err
	}
	// Before anything is printed as a plan: another manifest's fleet is
	// not this one's to change.
	if _, err := a.env(sess).Own(ctx, fleet.Name, pipeline.ManifestIdentity(fleet.Sources), opts.adopt, res.Observed, res.Desired); err != nil {
		return exitWith(exitInvalid, err)
	}
	home, _ := os.UserHomeDir()
	widening := res.MarkWidenings(home)
	policyWidens := res.PolicyWidenings()
	tools, err := toolChanges(ctx, st, fleet)
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	if format == "text" {
		reconciler.WritePlanText(a.stdout, res.Plan, isTerminal(a.stdout))
		writePolicyChanges(a.stdout, res.Policies)
		writeCredentialRefresh(a.stdout, res, res.Refresh)
		writeToolChanges(a.stdout, tools)
	}
	// Checked before anything is recorded or executed: a refused plan
	// changes nothing on the engine (nor any egress policy).
	if opts.requireApproval && widening+len(policyWidens) > 0 && !opts.approve {
		return a.refuseWidening(fleet.Name, res.Plan, format, policyWidens)
	}
	if err := a.checkDirtySources(ctx, res, opts.force); err != nil {
		return err
	}
	var refused []string
	for _, c := range res.HostPortsInUse() {
		if res.MayBeFreed(c) {
			fmt.Fprintf(a.stderr, "warning: %s (unless a container this apply removes holds it)\n", c.Message)
			continue
		}
		refused = append(refused, c.Message)
	}
	if len(refused) > 0 {
		return exitWith(exitInvalid, fmt.Errorf("apply refused, nothing was changed:\n  %s", strings.Join(refused, "\n  ")))
	}
	if format == "text" {
		a.writeCompactContracts(fleet, res)
	}

	// From here the engine changes: the first signal lets the step in
	// flight finish (and the run be recorded) instead of exiting at once.
	defer signals.hold(stepInFlight)()
	ws := &pipeline.Checkouts{Store: st, StateDir: a.global.stateDir, Log: a.log.WithName("workspace")}
	done, err := a.env(sess).Apply(ctx, res, pipeline.ApplyOptions{Verb: "apply", Parallel: opts.parallel, Progress: a.stderr, Checkouts: ws, StartCheck: startCheckOption(opts.startCheck)})
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	results, sum := done.Results, done.Summary
	if err := recordTools(ctx, st, fleet, tools); err != nil {
		a.log.Error(err, "record the operator tools")
	}

	if format == "json" {
		doc := applyDocument{
			APIVersion: "jackin.dev/v1alpha1", Kind: "ApplyResult", Fleet: fleet.Name,
			Plan: withToolChanges(planDocument(res.Plan, res.Policies, res.Refresh), tools), Summary: sum, Results: resultDocs(results),
		}
		if err := writeStructured(a.stdout, "json", doc); err != nil {
			return err
		}
	} else if len(results) > 0 {
		fmt.Fprintln(a.stdout)
		writeResultsText(a, results)
		writeReleased(a.stdout, ws)
		fmt.Fprintf(a.stdout, "Apply complete: %s.\n", sum.String())
	}
	if sum.Failed > 0 {
		return &exitError{code: exitChanges, reported: true}
	}
	return nil
}

// checkDirtySources warns about each worktree or clone about to be made
// from a source with uncommitted changes and no ref: the checkout starts
// from HEAD, so those changes are not in it, which the operator may not
// expect. Without force it refuses (exit 2) before anything is changed.
func (a *app) checkDirtySources(ctx context.Context, res *pipeline.Result, force bool) error {
	dirty, err := res.DirtySources(ctx)
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	for _, d := range dirty {
		w := d.Want
		fmt.Fprintf(a.stderr, "warning: instance %s, %s mount %s: src %s has uncommitted changes (%s); the %s starts from HEAD %s and will not include them\n",
			d.Instance, w.Mode, w.Dst, w.Src, strings.Join(d.Dirty, ", "), w.Mode, shortCommit(d.Head))
	}
	if len(dirty) > 0 && !force {
		return exitWith(exitInvalid, errors.New("apply refused: a worktree or clone source has uncommitted changes (see the warnings above); commit or stash them, set ref on the mount, or pass --force to proceed without them; nothing was changed"))
	}
	return nil
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// refuseWidening reports a plan refused by --require-approval-for-widening:
// each widening on stderr (and, with -o json, the plan and the refusal on
// stdout), exit code 2.
func (a *app) refuseWidening(fleet string, p *reconciler.Plan, format string, policyWidens []string) error {
	n := p.WideningActions() + len(policyWidens)
	noun := "instances"
	if n == 1 {
		noun = "instance"
	}
	msg := fmt.Sprintf("apply refused: the plan widens the access of %d %s and --require-approval-for-widening is set; nothing was changed", n, noun)
	var b strings.Builder
	b.WriteString(msg + ":\n")
	for _, act := range p.Actions {
		for _, w := range act.Widens {
			fmt.Fprintf(&b, "  %s (%s): %s\n", act.Instance, act.Type, w.Message)
		}
	}
	for _, w := range policyWidens {
		fmt.Fprintf(&b, "  %s\n", w)
	}
	b.WriteString("Review these widenings, then run apply again with --approve to apply them.\n")
	fmt.Fprint(a.stderr, b.String())
	if format == "json" {
		doc := applyDocument{
			APIVersion: "jackin.dev/v1alpha1", Kind: "ApplyResult", Fleet: fleet,
			Plan: reconciler.PlanDocument(p), Results: []resultDoc{}, Refused: msg,
		}
		if err := writeStructured(a.stdout, "json", doc); err != nil {
			return err
		}
	}
	return &exitError{code: exitInvalid, err: errors.New(msg), reported: true}
}

// writeCompactContracts prints, after the plan, the changed sections of the
// session contract of each instance the plan creates or recreates, so the
// operator sees what an agent is about to be able to reach. It has no side
// effects: the contract is computed from the desired state already built.
func (a *app) writeCompactContracts(fleet *schema.Fleet, res *pipeline.Result) {
	var names []string
	for _, act := range res.Plan.Actions {
		if act.Desired != nil && (act.Type == reconciler.ActionCreate || act.Type == reconciler.ActionRecreate) {
			names = append(names, act.Instance)
		}
	}
	if len(names) == 0 {
		return
	}
	home, _ := os.UserHomeDir()
	doc, err := contract.Build(fleet, res.Desired, contract.Options{Instances: names, Home: home})
	if err != nil {
		// The contract is a report: failing to compute it must not stop apply.
		a.log.Error(err, "compute session contracts")
		return
	}
	fmt.Fprintln(a.stdout)
	for i := range doc.Instances {
		c := &doc.Instances[i]
		var prev *reconciler.Spec
		if spec, ok := res.Last[c.Instance]; ok {
			prev = &spec
		}
		if err := contract.WriteCompact(a.stdout, c, prev); err != nil {
			a.log.Error(err, "print session contract", "instance", c.Instance)
			return
		}
	}
	fmt.Fprintln(a.stdout, "(jackin explain -f PATH INSTANCE prints a whole session contract.)")
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

type applyDocument struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Fleet      string           `json:"fleet"`
	Plan       any              `json:"plan"`
	Summary    pipeline.Summary `json:"summary"`
	Results    []resultDoc      `json:"results"`
	// Refused says why nothing was applied (--require-approval-for-widening).
	Refused string `json:"refused,omitempty"`
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

// startCheckOption maps --start-check to pipeline.ApplyOptions.StartCheck,
// where zero means the default and a negative duration no check.
func startCheckOption(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
