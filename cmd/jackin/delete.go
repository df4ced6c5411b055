package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/reconciler"
)

func newDeleteCommand(a *app) *cobra.Command {
	var mf manifestFlags
	var fleetName string
	var parallel int
	var lockTimeout time.Duration
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "delete (-f PATH... | --fleet NAME) [INSTANCE...]",
		Short: "Remove named instances, or the whole fleet, from the engine",
		Long: `delete removes the named instances' containers and networks, or every
instance of the fleet when none is named. It touches only objects labelled
for that fleet. The fleet is named by the manifest (-f) or by --fleet, so a
fleet whose manifest is gone can still be removed.

The manifest is not changed: a later apply recreates what it still lists.

Exit codes: 0 all removed, 1 a removal failed, 2 invalid input, unreachable
engine or lock timeout.`,
		Example: `  jackin delete -f fleet.cue web
  jackin delete --fleet demo`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			name := fleetName
			switch {
			case len(mf.files) > 0 && fleetName != "":
				return exitWith(exitInvalid, errors.New("give either -f or --fleet, not both"))
			case len(mf.files) > 0:
				fleet, err := a.loadFleet(ctx, mf.files)
				if err != nil {
					return err
				}
				name = fleet.Name
			case fleetName == "":
				return exitWith(exitInvalid, errors.New("name the fleet: -f PATH or --fleet NAME"))
			case !validFleetName(fleetName):
				return exitWith(exitInvalid, fmt.Errorf("--fleet %q is not a fleet name: a lowercase DNS label of at most 30 characters", fleetName))
			}
			drv, err := a.connect(ctx)
			if err != nil {
				return err
			}
			defer a.logEngineCalls(drv)
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			lock, err := a.lockFleet(ctx, name, "delete", lockTimeout)
			if err != nil {
				return err
			}
			defer lock.Release()

			observed, err := drv.Observe(ctx, name, nil)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			plan, err := reconciler.DeletePlan(name, observed, args)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			if len(plan.Actions) == 0 {
				fmt.Fprintf(a.stdout, "Nothing to delete: fleet %q has no instances on the engine.\n", name)
				return nil
			}
			if out.format == "text" {
				reconciler.WritePlanText(a.stdout, plan, isTerminal(a.stdout))
			}
			runID, err := st.BeginRun(ctx, name, "delete")
			if err != nil {
				return exitWith(exitInvalid, fmt.Errorf("record run: %w", err))
			}
			rec := &storeRecorder{st: st, fleet: name, runID: runID, log: a.log}
			results := reconciler.Execute(ctx, plan, drv, reconciler.ExecOptions{
				Parallel: parallel, Progress: a.stderr, Log: a.log.WithName("execute"), Recorder: rec,
			})
			sum := summarize(results)
			outcome := "succeeded"
			if sum.Failed > 0 {
				outcome = "failed"
			}
			if sum.Failed == 0 && ctx.Err() != nil {
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
				fmt.Fprintln(a.stdout)
				writeResultsText(a, results)
				fmt.Fprintf(a.stdout, "Delete complete: %s.\n", sum.String())
			}
			if sum.Failed > 0 {
				return &exitError{code: exitChanges, reported: true}
			}
			return nil
		},
	}
	mf.register(cmd)
	cmd.Flags().StringVar(&fleetName, "fleet", "", "fleet name, instead of -f")
	cmd.Flags().IntVar(&parallel, "parallel", defaultParallel, "how many instances to remove at once")
	cmd.Flags().DurationVar(&lockTimeout, "lock-timeout", defaultLockTimeout, "how long to wait for another writer of the same fleet")
	out.register(cmd, "text", "text", "json")
	return cmd
}
