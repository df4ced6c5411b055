package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/drivers"
)

// agentFlags name the fleet of the instance an agent verb works on: -f (the
// manifest) or --fleet; with neither, the instance name must be unique
// among the engine's fleets.
type agentFlags struct {
	mf    manifestFlags
	fleet string
}

func (f *agentFlags) register(cmd *cobra.Command) {
	f.mf.register(cmd)
	cmd.Flags().StringVar(&f.fleet, "fleet", "", "the instance's fleet, instead of -f (with neither, the instance name must be unique on the engine)")
}

// agentRef is one instance's agent container, found on the engine.
type agentRef struct {
	fleet, instance string
	drv             engine
	ctr             drivers.ObservedResource
}

// running reports whether the agent container runs.
func (r *agentRef) running() bool { return r.ctr.State == drivers.StateRunning }

// execer is the backend's way into the container.
func (r *agentRef) execer() (drivers.Execer, error) {
	ex, ok := r.drv.(drivers.Execer)
	if !ok {
		return nil, exitWith(exitInvalid, fmt.Errorf("backend %s cannot run commands in a container", r.drv.Name()))
	}
	return ex, nil
}

// findAgent resolves an instance name to its agent container. An unknown
// instance, or a name that several fleets use when none was named, is exit
// code 2. The caller closes nothing: the engine connection lives for the
// command.
func (a *app) findAgent(ctx context.Context, f agentFlags, instance string) (*agentRef, error) {
	fleet, err := a.fleetFromFlags(ctx, f.mf.files, f.fleet, false)
	if err != nil {
		return nil, err
	}
	drv, err := a.connect(ctx)
	if err != nil {
		return nil, err
	}
	loc, ok := drv.(drivers.AgentLocator)
	if !ok {
		return nil, exitWith(exitInvalid, fmt.Errorf("backend %s cannot find agent containers", drv.Name()))
	}
	found, err := loc.FindAgents(ctx, fleet, instance)
	if err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	if len(found) == 0 {
		// Not on the local engine: an instance in a machine of its own.
		if d, f := a.findAgentInMachines(ctx, fleet, instance); len(f) > 0 {
			drv, found = d, f
		}
	}
	if len(found) == 0 {
		kd, kf, err := a.findAgentInKubernetes(ctx, f.mf.files, instance)
		if err != nil {
			return nil, err
		}
		if len(kf) > 0 {
			drv, found = kd, kf
		}
	}
	switch {
	case len(found) == 0 && fleet != "":
		return nil, exitWith(exitInvalid, fmt.Errorf("instance %q of fleet %s has no agent container on %s (jackin apply creates it)", instance, fleet, drv.Endpoint()))
	case len(found) == 0:
		return nil, exitWith(exitInvalid, fmt.Errorf("no instance %q on %s", instance, drv.Endpoint()))
	case len(found) > 1:
		var fleets []string
		for _, c := range found {
			fleets = append(fleets, c.Labels[drivers.LabelFleet])
		}
		return nil, exitWith(exitInvalid, fmt.Errorf("instance %q is in several fleets (%s): name one with -f or --fleet", instance, strings.Join(fleets, ", ")))
	}
	return &agentRef{fleet: found[0].Labels[drivers.LabelFleet], instance: instance, drv: drv, ctr: found[0]}, nil
}

// requireRunning is exit code 2 for an agent that is not running.
func (r *agentRef) requireRunning(verb string) error {
	if r.running() {
		return nil
	}
	status := r.ctr.Status
	if status == "" {
		status = r.ctr.State
	}
	return exitWith(exitInvalid, errors.New("cannot "+verb+" instance "+r.instance+" of fleet "+r.fleet+": its agent container is not running ("+status+"); jackin apply starts it"))
}
