package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/orbstack"
	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/workspace"
)

func newDeleteCommand(a *app) *cobra.Command {
	var mf manifestFlags
	var fleetName string
	var parallel int
	var lockTimeout time.Duration
	var out outputFlag
	var purge, yes, adopt bool
	cmd := &cobra.Command{
		Use:   "delete (-f PATH... | --fleet NAME) [INSTANCE...] [--purge [--yes]]",
		Short: "Remove named instances, or the whole fleet, from the engine",
		Long: `delete removes the named instances' containers and networks, or every
instance of the fleet when none is named. It touches only objects labelled
for that fleet. The fleet is named by the manifest (-f) or by --fleet, so a
fleet whose manifest is gone can still be removed.

Ephemeral volumes are removed with their instance. Worktree and clone
checkouts are removed when their work is safe elsewhere (clean, and pushed
or merged); otherwise they are kept and recorded as preserved-dirty or
preserved-unpushed (jackin work lists them). --purge removes them too, and
an instance's kept checkouts even when it has nothing left on the engine:
it lists the work that will be lost first, and asks for confirmation on a
terminal; when stdin is not a terminal, --yes is required.

The manifest is not changed: a later apply recreates what it still lists.

Exit codes: 0 all removed, 1 a removal failed, 2 invalid input, unreachable
engine or lock timeout.`,
		Example: `  jackin delete -f fleet.cue web
  jackin delete --fleet demo
  jackin delete --fleet demo web --purge --yes`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			name, err := a.fleetFromFlags(ctx, mf.files, fleetName, true)
			if err != nil {
				return err
			}
			sess, err := a.openEngineSession(ctx, true)
			if err != nil {
				return err
			}
			defer a.closeSession(sess)
			drv, st := sess.drv, sess.st
			lock, err := a.lockFleet(ctx, name, "delete", lockTimeout)
			if err != nil {
				return err
			}
			defer lock.Release()

			observed, err := drv.Observe(ctx, name, nil)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			set, observed, inMachines := a.withMachines(ctx, name, drv, observed)
			var onEngines map[string]string
			if len(mf.files) > 0 {
				if set, observed, onEngines, err = a.withEngines(ctx, mf.files, name, set, observed); err != nil {
					return err
				}
			}
			if len(mf.files) > 0 {
				// A manifest names the fleet: only its owner's may delete it.
				if _, err := a.env(sess).Own(ctx, name, pipeline.ManifestIdentity(mf.files), adopt, reconciler.Observations{drivers.DefaultBackend: observed}, nil); err != nil {
					return exitWith(exitInvalid, err)
				}
			} else if known, err := a.fleetKnown(ctx, st, name, observed); err != nil {
				return exitWith(exitInvalid, err)
			} else if !known {
				return exitWith(exitInvalid, fmt.Errorf("no fleet named %q: nothing of it is on the engine or in the state dir %s (jackin history lists the fleets this state dir knows)", name, a.global.stateDir))
			}
			plan, purgeOnly, err := a.deletePlan(name, observed, args, purge)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			for i := range plan.Actions {
				if inMachines[plan.Actions[i].Instance] {
					plan.Actions[i].Backend = orbstack.Backend
				}
				if key := onEngines[plan.Actions[i].Instance]; key != "" {
					plan.Actions[i].Backend = key
					_, plan.Actions[i].Engine = drivers.SplitPlacement(key)
				}
			}
			ws := &pipeline.Checkouts{Store: st, StateDir: a.global.stateDir, Purge: purge, Log: a.log.WithName("workspace")}
			if purge {
				if err := a.confirmPurge(ctx, name, plan, purgeOnly, yes); err != nil {
					return err
				}
			}
			if len(plan.Actions) == 0 && len(purgeOnly) == 0 {
				fmt.Fprintf(a.stdout, "Nothing to delete: fleet %q has no instances on the engine.\n", name)
				return nil
			}
			if out.format == "text" && len(plan.Actions) > 0 {
				reconciler.WritePlanText(a.stdout, plan, isTerminal(a.stdout))
			}
			// From here the engine changes: the first signal lets the
			// step in flight finish instead of exiting at once.
			defer signals.hold(stepInFlight)()
			runID, err := st.BeginRun(ctx, name, "delete")
			if err != nil {
				return exitWith(exitInvalid, fmt.Errorf("record run: %w", err))
			}
			rec := pipeline.NewRecorder(st, name, runID, a.log)
			// The egress proxies' last decisions, before they go.
			if err := a.env(sess).PullBeforeRemoving(ctx, plan); err != nil {
				a.log.Error(err, "pull the egress log of proxies about to be removed")
			}
			// The agents' last state changes and token usage, before their
			// directories go.
			if _, err := a.env(sess).RecordAgentStates(ctx, name); err != nil {
				a.log.Error(err, "record the agents' state changes before delete")
			}
			a.env(sess).RecordUsageLogged(ctx, name)
			a.env(sess).RecordLinksLogged(ctx, name)
			results := reconciler.Execute(ctx, plan, drv, reconciler.ExecOptions{
				Parallel: parallel, Progress: a.stderr, Log: a.log.WithName("execute"), Recorder: rec, Workspaces: ws,
				StateDir: a.global.stateDir, Drivers: set,
			})
			// Instances with nothing on the engine but kept checkouts: only
			// their checkouts are purged.
			var purgeErr error
			for _, inst := range purgeOnly {
				if err := ws.Release(ctx, name, inst); err != nil {
					purgeErr = errors.Join(purgeErr, fmt.Errorf("purge the checkouts of %s: %w", inst, err))
				}
			}
			sum := pipeline.Summarize(results)
			outcome := "succeeded"
			if sum.Failed > 0 || purgeErr != nil {
				outcome = "failed"
			}
			if outcome == "succeeded" && ctx.Err() != nil {
				outcome = "interrupted"
			}
			if err := st.FinishRun(context.WithoutCancel(ctx), runID, outcome, sum.String()); err != nil {
				a.log.Error(err, "record run outcome")
			}
			if out.format == "json" {
				if err := writeStructured(a.stdout, "json", applyDocument{
					APIVersion: "jackin.dev/v1alpha1", Kind: "DeleteResult", Fleet: name,
					Plan: reconciler.PlanDocument(plan), Summary: sum, Results: resultDocs(results),
				}); err != nil {
					return err
				}
			} else {
				if len(results) > 0 {
					fmt.Fprintln(a.stdout)
					writeResultsText(a, results)
				}
				writeReleased(a.stdout, ws)
				fmt.Fprintf(a.stdout, "Delete complete: %s.\n", sum.String())
			}
			if purgeErr != nil {
				fmt.Fprintln(a.stderr, purgeErr)
			}
			if sum.Failed > 0 || purgeErr != nil {
				return &exitError{code: exitChanges, reported: true}
			}
			if len(args) == 0 {
				// The whole fleet is gone: its name is free again.
				if err := st.ReleaseFleet(context.WithoutCancel(ctx), name); err != nil {
					a.log.Error(err, "release the fleet's name", "fleet", name)
				}
			}
			return nil
		},
	}
	mf.register(cmd)
	cmd.Flags().StringVar(&fleetName, "fleet", "", "fleet name, instead of -f")
	cmd.Flags().IntVar(&parallel, "parallel", defaultParallel, "how many instances to remove at once")
	cmd.Flags().DurationVar(&lockTimeout, "lock-timeout", defaultLockTimeout, "how long to wait for another writer of the same fleet")
	cmd.Flags().BoolVar(&purge, "purge", false, "also remove worktree and clone checkouts holding uncommitted or unpushed work (listed first)")
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm --purge without a prompt (required when stdin is not a terminal)")
	cmd.Flags().BoolVar(&adopt, "adopt", false, "with -f: delete a fleet that another manifest owns")
	out.register(cmd, "text", "text", "json")
	return cmd
}

// fleetKnown reports whether a fleet named on the command line exists: it
// has objects on the engine, or this state dir knows it (an owner, specs,
// checkouts or history).
func (a *app) fleetKnown(ctx context.Context, st *store.Store, fleet string, observed *drivers.Observed) (bool, error) {
	if len(observed.Containers)+len(observed.Networks)+len(observed.Volumes) > 0 {
		return true, nil
	}
	if o, err := st.FleetOwner(ctx, fleet); err != nil || o != nil {
		return o != nil, err
	}
	if last, err := st.LastApplied(ctx, fleet); err != nil || len(last) > 0 {
		return len(last) > 0, err
	}
	if cs, err := workspace.List(a.global.stateDir, fleet, ""); err != nil || len(cs) > 0 {
		return len(cs) > 0, err
	}
	runs, err := st.Runs(ctx, fleet, 1)
	return len(runs) > 0, err
}

// deletePlan plans the deletion of the named instances (every live one when
// none is named). With purge, an instance that has nothing on the engine
// but kept checkouts is not an error: it is returned in purgeOnly (and,
// when no instance is named, every such instance is).
func (a *app) deletePlan(fleet string, observed *drivers.Observed, names []string, purge bool) (*reconciler.Plan, []string, error) {
	if !purge {
		p, err := reconciler.DeletePlan(fleet, observed, names)
		if err != nil {
			if kept := checkoutVolumes(fleet, observed, names); len(kept) > 0 {
				err = fmt.Errorf("%w; kept there: %s (checkouts the instance cloned, kept as they may hold unpushed work): jackin delete --purge removes them", err, strings.Join(kept, ", "))
			}
		}
		return p, nil, err
	}
	all, err := reconciler.DeletePlan(fleet, observed, nil)
	if err != nil {
		return nil, nil, err
	}
	live := map[string]bool{}
	for _, act := range all.Actions {
		live[act.Instance] = true
	}
	// Volumes an instance cloned checkouts into (a Pod's claims, volumes
	// on a remote engine) outlive its delete: an instance of which only
	// they are left is deleted again, to purge them.
	for inst, vs := range keptCheckouts(fleet, observed) {
		if !live[inst] && (len(names) == 0 || slices.Contains(names, inst)) {
			all.Actions = append(all.Actions, reconciler.Action{Instance: inst, Type: reconciler.ActionDelete, Reasons: []string{reconciler.ReasonDeleteRequest}, Observed: vs, Pruned: true})
			live[inst] = true
		}
	}
	sort.Slice(all.Actions, func(i, j int) bool { return all.Actions[i].Instance < all.Actions[j].Instance })
	for i := range all.Actions {
		all.Actions[i].Purge = true
	}
	checkouts, err := workspace.List(a.global.stateDir, fleet, "")
	if err != nil {
		return nil, nil, err
	}
	kept := map[string]bool{}
	for _, c := range checkouts {
		kept[c.Instance] = true
	}
	var purgeOnly []string
	if len(names) == 0 {
		for inst := range kept {
			if !live[inst] {
				purgeOnly = append(purgeOnly, inst)
			}
		}
		sort.Strings(purgeOnly)
		return all, purgeOnly, nil
	}
	var liveNames []string
	seen := map[string]bool{}
	for _, n := range names {
		switch {
		case seen[n]:
		case live[n]:
			liveNames = append(liveNames, n)
		case kept[n]:
			purgeOnly = append(purgeOnly, n)
		default:
			// Not on the engine and nothing kept: DeletePlan says so.
			liveNames = append(liveNames, n)
		}
		seen[n] = true
	}
	p := &reconciler.Plan{Fleet: fleet}
	var unknown []string
	for _, n := range liveNames {
		i := slices.IndexFunc(all.Actions, func(a reconciler.Action) bool { return a.Instance == n })
		if i < 0 {
			unknown = append(unknown, strconv.Quote(n))
			continue
		}
		p.Actions = append(p.Actions, all.Actions[i])
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, nil, fmt.Errorf("fleet %q has no instance named %s on the backend, and keeps no checkout of it", fleet, strings.Join(unknown, ", "))
	}
	sort.Slice(p.Actions, func(i, j int) bool { return p.Actions[i].Instance < p.Actions[j].Instance })
	return p, purgeOnly, nil
}

// keptCheckouts are the fleet's checkout volumes (a Pod's claims, volumes
// on a remote engine), by instance.
func keptCheckouts(fleet string, observed *drivers.Observed) map[string][]drivers.ObservedResource {
	out := map[string][]drivers.ObservedResource{}
	for _, v := range observed.Volumes {
		if v.Labels[drivers.LabelManagedBy] == drivers.ManagedByValue && v.Labels[drivers.LabelFleet] == fleet &&
			v.Labels[drivers.LabelComponent] == drivers.ComponentCheckout {
			out[v.Instance()] = append(out[v.Instance()], v)
		}
	}
	return out
}

// checkoutVolumes names the kept checkout volumes of the named instances,
// for an error that would otherwise say only that nothing of them is
// there.
func checkoutVolumes(fleet string, observed *drivers.Observed, names []string) []string {
	var out []string
	for inst, vs := range keptCheckouts(fleet, observed) {
		if slices.Contains(names, inst) {
			for _, v := range vs {
				out = append(out, inst+"'s "+v.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// confirmPurge lists the work --purge would destroy and asks for
// confirmation: --yes, or "yes" typed on a terminal. Nothing to lose needs
// no confirmation.
func (a *app) confirmPurge(ctx context.Context, fleet string, p *reconciler.Plan, purgeOnly []string, yes bool) error {
	instances := append([]string(nil), purgeOnly...)
	for _, act := range p.Actions {
		instances = append(instances, act.Instance)
	}
	var lost []string
	for _, act := range p.Actions {
		for _, o := range act.Observed {
			if o.Kind == drivers.KindVolume && o.Labels[drivers.LabelComponent] == drivers.ComponentCheckout {
				lost = append(lost, fmt.Sprintf("  %s: the volume %s, a checkout the instance cloned (jackin cannot see from here whether it holds unpushed work)", act.Instance, o.Name))
			}
		}
	}
	for _, inst := range instances {
		list, err := workspace.List(a.global.stateDir, fleet, inst)
		if err != nil {
			return exitWith(exitInvalid, err)
		}
		for _, c := range list {
			st := workspace.Inspect(ctx, c)
			if st.Safe() {
				continue
			}
			lost = append(lost, fmt.Sprintf("  %s: %s %s on %s (%s)", c.Instance, c.Mode, c.Path, c.Branch, pipeline.StateDetail(st)))
		}
	}
	if len(lost) == 0 {
		return nil
	}
	sort.Strings(lost)
	fmt.Fprintf(a.stderr, "--purge removes this work for good (uncommitted files and unpushed commits on the scratch branches):\n%s\n", strings.Join(lost, "\n"))
	if yes {
		return nil
	}
	if !stdinIsTerminal(a.stdin) {
		return exitWith(exitInvalid, errors.New("delete --purge refused: it would remove the work listed above, and stdin is not a terminal to confirm it; pass --yes to confirm; nothing was changed"))
	}
	fmt.Fprint(a.stderr, "Type yes to remove it: ")
	answer, _ := bufio.NewReader(a.stdin).ReadString('\n')
	if strings.TrimSpace(answer) != "yes" {
		return exitWith(exitInvalid, errors.New("delete --purge not confirmed; nothing was changed"))
	}
	return nil
}

// stdinIsTerminal reports whether r is a terminal a person can answer on
// (a character device such as /dev/null is not).
func stdinIsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}
