package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/store"
)

// planFlags are the flags that shape a plan, shared by diff and apply.
type planFlags struct {
	prune      bool
	allowEmpty bool
}

func (p *planFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&p.prune, "prune", true, "delete instances of this fleet that are no longer in the manifest (--prune=false only reports them)")
	cmd.Flags().BoolVar(&p.allowEmpty, "allow-empty", false, "allow a manifest with zero instances to delete the fleet's instances")
}

func (p planFlags) options() reconciler.PlanOptions {
	return reconciler.PlanOptions{Prune: p.prune, AllowEmpty: p.allowEmpty}
}

func newDiffCommand(a *app) *cobra.Command {
	var mf manifestFlags
	var pf planFlags
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "diff -f PATH... [INSTANCE...]",
		Short: "Show what apply would change, and why",
		Long: `diff compares the manifest with what the engine runs and prints the plan:
  +    create     -/+  recreate (with the changed fields)
  ~    start/stop -    delete (an instance no longer in the manifest)
It changes nothing. Operator tools added, changed or removed since the last
apply, and a change of the task queue (its sources and instances: what
types prompts into which agents), are listed after the plan (toolChanges in
-o json, the queue's with kind "queue") and count as changes.

A create or recreate that widens the instance's access compared with what was
last applied is marked "! widens access: ..." (in -o json: the action's
"widens" list): a host path newly mounted or made writable, a sensitive path
exposed, wider egress, a port newly or more widely published, Docker access,
a new credential, a resource limit raised or removed. A new instance, or one
whose last-applied spec is unknown, is compared with no access at all.

Naming instances narrows the plan, the exit code and the policy and
credential changes to them; a name neither in the manifest nor on the
engine is an error.

Exit codes: 0 converged, 1 changes pending, 2 error (invalid manifest,
unreachable engine, unknown instance).`,
		Example: `  jackin diff -f fleet.cue
  jackin diff -f fleet.cue web api
  jackin diff -f fleet.cue -o json | jq '.actions[] | select(.action != "noop")'
  jackin diff -f fleet.cue -o json | jq '.actions[] | select(.widens) | {instance, widens}'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			return a.diffInstances(cmd.Context(), mf.files, args, pf, out.format)
		},
	}
	mf.register(cmd)
	pf.register(cmd)
	out.register(cmd, "text", "text", "json")
	return cmd
}

// diff prints the plan and returns exit 1 when there are changes.
func (a *app) diff(ctx context.Context, files []string, pf planFlags, format string) error {
	return a.diffInstances(ctx, files, nil, pf, format)
}

// diffInstances is diff narrowed to the named instances (all when none is
// named): the plan, the pending changes and the exit code are theirs.
func (a *app) diffInstances(ctx context.Context, files, names []string, pf planFlags, format string) error {
	sess, err := a.openSession(ctx, files, false)
	if err != nil {
		return err
	}
	defer a.closeSession(sess)
	res, err := a.plan(ctx, sess, pf.options(), false)
	if err != nil {
		return err
	}
	if err := narrowPlan(res, names); err != nil {
		return err
	}
	home, _ := os.UserHomeDir()
	res.MarkWidenings(home)
	pending, refresh := res.Policies, res.Refresh
	var tools []toolChange
	if len(names) == 0 { // tools are the fleet's, not an instance's
		if tools, err = toolChanges(ctx, sess.st, sess.fleet); err != nil {
			return exitWith(exitInvalid, err)
		}
	}
	if format == "json" {
		if err := writeStructured(a.stdout, "json", withToolChanges(planDocument(res.Plan, pending, refresh), tools)); err != nil {
			return err
		}
	} else if len(names) > 0 && !listsChanges(res.Plan) {
		// "Fleet X matches the manifest" would claim more than was compared.
		var listed []string
		for _, act := range res.Plan.Actions {
			listed = append(listed, act.Instance)
		}
		fmt.Fprintf(a.stdout, "No changes. %s %s the manifest.\n", strings.Join(listed, ", "), pluralVerb(len(listed), "matches", "match"))
		var idle []string
		for _, act := range res.Plan.Actions {
			if act.IdleStopped {
				idle = append(idle, act.Instance)
			}
		}
		if len(idle) > 0 {
			fmt.Fprintf(a.stdout, "Idle-stopped, left stopped (a task or jackin attach starts them): %s.\n", strings.Join(idle, ", "))
		}
		writePolicyChanges(a.stdout, pending)
		writeCredentialRefresh(a.stdout, res, refresh)
	} else {
		if err := a.printPlan(res.Plan, format); err != nil {
			return err
		}
		writePolicyChanges(a.stdout, pending)
		writeCredentialRefresh(a.stdout, res, refresh)
		writeToolChanges(a.stdout, tools)
	}
	for _, busy := range res.HostPortsInUse() {
		fmt.Fprintf(a.stderr, "warning: %s\n", busy.Message)
	}
	failed := false
	for _, act := range res.Plan.Actions {
		if act.Err != nil {
			failed = true
			fmt.Fprintf(a.stderr, "error: instance %s: %v\n", act.Instance, act.Err)
		}
	}
	if failed {
		return &exitError{code: exitInvalid, reported: true}
	}
	if res.Plan.HasChanges() || len(pending) > 0 || len(refresh) > 0 || len(tools) > 0 {
		return &exitError{code: exitChanges, reported: true}
	}
	return nil
}

// listsChanges reports whether the text plan lists an action: anything but
// a noop that cannot fail.
func listsChanges(p *reconciler.Plan) bool {
	for _, act := range p.Actions {
		if act.Type != reconciler.ActionNoop || act.Err != nil {
			return true
		}
	}
	return false
}

func pluralVerb(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func (a *app) printPlan(p *reconciler.Plan, format string) error {
	if format == "json" {
		return writeStructured(a.stdout, "json", reconciler.PlanDocument(p))
	}
	reconciler.WritePlanText(a.stdout, p, isTerminal(a.stdout))
	return nil
}

// openStoreReadOnly opens the store only when it already exists, so a
// read-only command never creates state.
func (a *app) openStoreReadOnly(ctx context.Context) (*store.Store, error) {
	if _, err := os.Stat(filepath.Join(a.global.stateDir, "jackin.db")); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return a.openStore(ctx)
}
