package main

import (
	"context"
	"fmt"
	"sort"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/kubernetes"
	"github.com/jackin-dev/jackin/drivers/orbstack"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// findAgentInMachines looks for an instance's agent in OrbStack machines
// (backend orbstack-isolated), when the orb command is installed: attach,
// logs and exec then go through the machine's engine as on Docker.
func (a *app) findAgentInMachines(ctx context.Context, fleet, instance string) (engine, []drivers.ObservedResource) {
	if _, err := orbstack.LookOrb(); err != nil {
		return nil, nil
	}
	drv, err := drivers.Open(ctx, orbstack.Backend, a.log)
	if err != nil {
		return nil, nil
	}
	eng, ok := drv.(engine)
	if !ok {
		return nil, nil
	}
	loc, ok := drv.(drivers.AgentLocator)
	if !ok {
		return nil, nil
	}
	found, err := loc.FindAgents(ctx, fleet, instance)
	if err != nil {
		a.log.V(1).Info("cannot look for the agent in OrbStack machines", "error", err.Error())
		return nil, nil
	}
	return eng, found
}

// withMachines adds, for delete, what the fleet holds in OrbStack machines
// (when the orb command is installed): their objects to observed, and the
// OrbStack driver to the set. machineInstances are the instances found
// there, whose delete actions run on that backend.
func (a *app) withMachines(ctx context.Context, fleet string, def engine, observed *drivers.Observed) (drivers.Set, *drivers.Observed, map[string]bool) {
	set := drivers.Set{drivers.DefaultBackend: def}
	if _, err := orbstack.LookOrb(); err != nil {
		return set, observed, nil
	}
	drv, err := drivers.Open(ctx, orbstack.Backend, a.log)
	if err != nil {
		return set, observed, nil
	}
	obs, err := drv.Observe(ctx, fleet, nil)
	if err != nil {
		a.log.V(1).Info("cannot observe the fleet's OrbStack machines", "error", err.Error())
		return set, observed, nil
	}
	in := map[string]bool{}
	merged := mergeObserved(observed, obs, func(instance string) { in[instance] = true })
	set[orbstack.Backend] = drv
	return set, merged, in
}

// mergeObserved returns base with another backend's objects added (base
// is not changed), calling found with the instance of each.
func mergeObserved(base, other *drivers.Observed, found func(instance string)) *drivers.Observed {
	merged := *base
	for _, list := range [][]drivers.ObservedResource{other.Networks, other.Volumes, other.Containers} {
		for _, r := range list {
			found(r.Instance())
		}
	}
	merged.Networks = append(append([]drivers.ObservedResource(nil), base.Networks...), other.Networks...)
	merged.Volumes = append(append([]drivers.ObservedResource(nil), base.Volumes...), other.Volumes...)
	merged.Containers = append(append([]drivers.ObservedResource(nil), base.Containers...), other.Containers...)
	return &merged
}

// withEngines adds, for delete with a manifest, what the fleet holds on
// the Docker engines the manifest declares: their objects to observed and
// their drivers to the set. onEngine maps each instance found there to its
// drivers.Set key, on which its delete actions run. An engine that does
// not answer fails the delete (exit 2) naming it: nothing is removed
// anywhere while part of the fleet cannot be seen.
func (a *app) withEngines(ctx context.Context, files []string, fleet string, set drivers.Set, observed *drivers.Observed) (drivers.Set, *drivers.Observed, map[string]string, error) {
	f, err := a.loadFleet(ctx, files)
	if err != nil {
		return nil, nil, nil, err
	}
	onEngine := map[string]string{}
	merged := observed
	add := func(key string, drv drivers.Driver, obs *drivers.Observed) {
		set[key] = drv
		merged = mergeObserved(merged, obs, func(instance string) { onEngine[instance] = key })
	}
	names := make([]string, 0, len(f.Engines))
	for name := range f.Engines {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		drv, err := a.openEngine(ctx, f.Engines[name])
		if err != nil {
			return nil, nil, nil, err
		}
		octx, cancel := context.WithTimeout(ctx, reconciler.EngineObserveTimeout)
		obs, err := drv.Observe(octx, fleet, nil)
		cancel()
		if err != nil {
			return nil, nil, nil, exitWith(exitInvalid, fmt.Errorf("delete: engine %s (%s) cannot be observed, so nothing was deleted: %w", name, f.Engines[name].Host, err))
		}
		add(drivers.PlacementKey(drivers.DefaultBackend, name), drv, obs)
	}
	if len(kubernetes.ConfigFor(f).Instances) > 0 {
		// The namespaces the manifest's Kubernetes instances name.
		drv, err := a.openKubernetes(ctx, f)
		if err != nil {
			return nil, nil, nil, err
		}
		obs, err := drv.Observe(ctx, fleet, nil)
		if err != nil {
			return nil, nil, nil, exitWith(exitInvalid, fmt.Errorf("delete: the Kubernetes instances cannot be observed, so nothing was deleted: %w", err))
		}
		add(schema.BackendKubernetes, drv, obs)
	}
	return set, merged, onEngine, nil
}
