package main

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/contract"
	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// explainObserveTimeout bounds the optional engine observation: explain
// must answer even when the engine hangs.
const explainObserveTimeout = 10 * time.Second

func newExplainCommand(a *app) *cobra.Command {
	var mf manifestFlags
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "explain -f PATH... [INSTANCE...]",
		Short: "Print each instance's session contract: exactly what it can reach",
		Long: `explain prints the session contract of each named instance (every instance
when none is named), computed from the same resolved desired state apply uses:

   1 identity       2 sandbox       3 filesystem     4 credentials
   5 network        6 service ports 7 resources      8 host-side effects
   9 recovery      10 residual risk 11 tier recommendation

It performs none of the effects it lists: no image build or pull, no network,
no container, nothing written to the state dir. It observes the engine
read-only to mark host effects "planned" or "present"; when the engine is
unreachable it still answers and marks their presence unknown.

-o json prints one versioned document (apiVersion jackin.dev/v1alpha1, kind
SessionContract) listing the instances; its field names are a stable API.

Exit codes: 0 printed, 2 invalid manifest or unknown instance.`,
		Example: `  jackin explain -f fleet.cue web
  jackin explain -f fleet.cue -o json | jq '.instances[].warnings'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			return a.explain(cmd.Context(), mf.files, args, out.format)
		},
	}
	mf.register(cmd)
	out.register(cmd, "text", "text", "json")
	return cmd
}

func (a *app) explain(ctx context.Context, files, names []string, format string) error {
	fleet, err := a.loadFleet(ctx, files)
	if err != nil {
		return err
	}
	desired, err := reconciler.BuildDesired(fleet)
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	// Unknown names fail before the engine is asked anything.
	var unknown []string
	for _, n := range names {
		if desired.Instance(n) == nil {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return exitWith(exitInvalid, &contract.UnknownInstancesError{Fleet: fleet.Name, Names: unknown})
	}
	home, _ := os.UserHomeDir()
	doc, err := contract.Build(fleet, desired, contract.Options{
		Instances:     names,
		Home:          home,
		StateDir:      a.global.stateDir,
		ManifestPaths: files,
		Observation:   a.observeForExplain(ctx, fleet, desired),
	})
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	if format == "json" {
		return contract.WriteJSON(a.stdout, doc)
	}
	return contract.WriteText(a.stdout, doc)
}

// observeForExplain looks at the engine and the state dir without changing
// either: list calls only, and a stat of the state files (the store is not
// opened). An unreachable engine is recorded, not an error.
func (a *app) observeForExplain(ctx context.Context, fleet *schema.Fleet, desired *reconciler.Desired) *contract.Observation {
	obs := &contract.Observation{StateFiles: contract.ObserveStateDir(a.global.stateDir, fleet.Name)}
	drv, err := drivers.Open(ctx, drivers.DefaultBackend, a.log)
	if err != nil {
		obs.EngineError = err.Error()
		return obs
	}
	obs.Endpoint = drv.Endpoint()
	if eng, ok := drv.(engine); ok {
		defer a.logEngineCalls(eng)
	}
	ctx, cancel := context.WithTimeout(ctx, explainObserveTimeout)
	defer cancel()
	if err := drv.Ping(ctx); err != nil {
		obs.EngineError = engineErrorText(err)
		return obs
	}
	observed, err := drv.Observe(ctx, fleet.Name, desired.ImageRefs())
	if err != nil {
		obs.EngineError = engineErrorText(err)
		return obs
	}
	obs.Engine = observed
	return obs
}

func engineErrorText(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer within " + explainObserveTimeout.String() + ": " + err.Error()
	}
	return err.Error()
}
