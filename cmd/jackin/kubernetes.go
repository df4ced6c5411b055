package main

import (
	"context"
	"fmt"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/kubernetes"
	"github.com/jackin-dev/jackin/schema"
)

// openKubernetes opens the Kubernetes backend for the fleet's kubernetes
// instances (their context and namespaces) and checks the API server
// answers.
func (a *app) openKubernetes(ctx context.Context, fleet *schema.Fleet) (drivers.Driver, error) {
	drv, err := kubernetes.New(ctx, a.log.WithName(kubernetes.Backend), kubernetes.ConfigFor(fleet))
	if err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	if err := drv.Ping(ctx); err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	return drv, nil
}

// findAgentInKubernetes looks for an instance's agent Pod when the
// manifest (-f) places the instance on Kubernetes: attach, logs and exec
// then go through the API server (pods/exec, pods/log).
func (a *app) findAgentInKubernetes(ctx context.Context, files []string, instance string) (engine, []drivers.ObservedResource, error) {
	if len(files) == 0 {
		return nil, nil, nil
	}
	fleet, err := a.loadFleet(ctx, files)
	if err != nil {
		return nil, nil, err
	}
	in, ok := fleet.Instances[instance]
	if !ok || in.Backend != schema.BackendKubernetes {
		return nil, nil, nil
	}
	drv, err := a.openKubernetes(ctx, fleet)
	if err != nil {
		return nil, nil, err
	}
	k := drv.(*kubernetes.Driver)
	found, err := k.FindAgents(ctx, fleet.Name, instance)
	if err != nil {
		return nil, nil, exitWith(exitInvalid, fmt.Errorf("find instance %s on Kubernetes: %w", instance, err))
	}
	return k, found, nil
}
