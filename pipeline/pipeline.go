// Package pipeline is jackin's one reconcile path: a validated fleet is
// rendered into desired state, its credentials read, every backend it uses
// observed (in parallel), the result planned, checked (access widenings,
// busy host ports, dirty checkout sources), executed with everything apply
// does around a plan (egress policies, credential deliveries, the proxies'
// last log lines before they are replaced) and recorded in the store. apply,
// diff, get and delete call it once; watch calls the same stages in its
// loop. The commands parse flags, call it and print.
package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/jackin-dev/jackin/contract"
	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
)

// Env is what a reconcile pass runs with.
type Env struct {
	// StateDir is jackin's state directory.
	StateDir string
	// Store is the history database; nil for a read-only command before
	// any state exists.
	Store *store.Store
	// Drivers are the open backends, by name.
	Drivers drivers.Set
	Log     logr.Logger
}

// Result is a planned pass: everything the plan was made from, and what it
// would change beside the engine.
type Result struct {
	Fleet    *schema.Fleet
	Desired  *reconciler.Desired
	Observed reconciler.Observations
	Plan     *reconciler.Plan
	Last     reconciler.LastApplied
	// Policies are the allowlist changes made by rewriting a policy file;
	// Refresh the credentials rewritten in place (no recreate).
	Policies []PolicyChange
	Refresh  []CredentialRefresh
	// Unreachable are the declared engines that did not answer, by
	// drivers.Set key: a partition (their instances are planned as
	// unreachable, nothing of theirs deleted).
	Unreachable map[string]error
}

// ObservedOn is what one backend holds of the fleet (never nil).
func (r *Result) ObservedOn(backend string) *drivers.Observed {
	if o := r.Observed[backend]; o != nil {
		return o
	}
	return &drivers.Observed{}
}

// Images are the observed image IDs by backend, for the executor.
func (r *Result) Images() map[string]map[string]string {
	out := map[string]map[string]string{}
	for b, o := range r.Observed {
		out[b] = o.Images
	}
	return out
}

// Plan renders fleet, reads its credentials (the plan needs their
// digests; writable lets a command that may write state create the digest
// key), observes every backend the fleet uses, records OOM kills, and
// plans. It changes nothing on a backend.
func (e Env) Plan(ctx context.Context, fleet *schema.Fleet, opts reconciler.PlanOptions, writable bool) (*Result, error) {
	desired, err := reconciler.BuildDesired(fleet)
	if err != nil {
		return nil, err
	}
	if desired, err = ResolveCredentials(ctx, e.StateDir, desired, writable); err != nil {
		return nil, err
	}
	observed, unreachable, err := reconciler.ObservePartitioned(ctx, e.Drivers, desired)
	if err != nil {
		return nil, err
	}
	if len(unreachable) > 0 {
		opts.Unreachable = unreachable
	}
	for _, o := range observed {
		if err := RecordOOMKills(ctx, e.Store, fleet.Name, o); err != nil {
			return nil, err
		}
	}
	last, err := LastApplied(ctx, e.Store, fleet.Name)
	if err != nil {
		return nil, err
	}
	if opts.IdleStopped == nil {
		if opts.IdleStopped, err = e.IdleStoppedSet(ctx, fleet.Name); err != nil {
			return nil, err
		}
	}
	plan, err := reconciler.BuildPlanAll(desired, observed, last, opts)
	if err != nil {
		return nil, err
	}
	res := &Result{Fleet: fleet, Desired: desired, Observed: observed, Plan: plan, Last: last, Unreachable: unreachable}
	res.Policies = pendingPolicies(res)
	res.Refresh = pendingCredentials(res)
	return res, nil
}

// LastApplied reads the fleet's last-applied specs from the store; a nil
// store (no state yet) has none.
func LastApplied(ctx context.Context, st *store.Store, fleet string) (reconciler.LastApplied, error) {
	if st == nil {
		return reconciler.LastApplied{}, nil
	}
	rows, err := st.LastApplied(ctx, fleet)
	if err != nil {
		return nil, fmt.Errorf("read last-applied specs: %w", err)
	}
	out := make(reconciler.LastApplied, len(rows))
	for name, row := range rows {
		var spec reconciler.Spec
		if err := json.Unmarshal(row.Spec, &spec); err != nil {
			// An unreadable record only costs precision in recreate reasons.
			continue
		}
		out[name] = spec
	}
	return out, nil
}

// RecordOOMKills keeps an "oom-killed" event for every agent container
// observed killed by the kernel's OOM killer, once per kill (its container
// ID and finish time are in the message). It runs before any plan is
// executed: starting the container again clears the engine's OOMKilled flag.
func RecordOOMKills(ctx context.Context, st *store.Store, fleet string, observed *drivers.Observed) error {
	if st == nil {
		return nil
	}
	for _, c := range observed.Containers {
		if !c.OOMKilled || c.Labels[drivers.LabelComponent] != drivers.ComponentAgent {
			continue
		}
		at := c.FinishedAt
		msg := fmt.Sprintf("container %s (%s) was killed by the kernel's OOM killer (out of memory) at %s",
			c.Name, shortID(c.ID), at.UTC().Format(time.RFC3339Nano))
		data, _ := json.Marshal(map[string]any{"containerID": c.ID, "finishedAt": at})
		if _, err := st.RecordEventOnce(ctx, store.Event{Fleet: fleet, Instance: c.Instance(), Kind: "oom-killed", Message: msg, At: at, Data: data}); err != nil {
			return err
		}
	}
	return nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// UnknownInstancesError names instances that are neither in the manifest
// nor on a backend.
type UnknownInstancesError struct {
	Fleet string
	Names []string
}

func (e *UnknownInstancesError) Error() string {
	return fmt.Sprintf("no instance named %s in fleet %q or on the engine", strings.Join(e.Names, ", "), e.Fleet)
}

// Narrow keeps, of a planned pass, only the named instances, in the plan's
// order; no names keeps everything. A name that is neither in the manifest
// nor on a backend (an orphan is in the plan as a delete) is an
// *UnknownInstancesError naming every such name once, sorted.
func (r *Result) Narrow(names []string) error {
	if len(names) == 0 {
		return nil
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	plan := &reconciler.Plan{Fleet: r.Plan.Fleet}
	found := map[string]bool{}
	for _, act := range r.Plan.Actions {
		if want[act.Instance] {
			plan.Actions = append(plan.Actions, act)
			found[act.Instance] = true
		}
	}
	var unknown []string
	for n := range want {
		if !found[n] {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return &UnknownInstancesError{Fleet: r.Plan.Fleet, Names: unknown}
	}
	desired := *r.Desired
	desired.Instances = nil
	for _, in := range r.Desired.Instances {
		if want[in.Name] {
			desired.Instances = append(desired.Instances, in)
		}
	}
	r.Plan, r.Desired = plan, &desired
	keep := func(instance string) bool { return want[instance] }
	r.Policies = filter(r.Policies, func(c PolicyChange) bool { return keep(c.Instance) })
	r.Refresh = filter(r.Refresh, func(c CredentialRefresh) bool { return keep(c.Instance) })
	return nil
}

func filter[T any](in []T, keep func(T) bool) []T {
	var out []T
	for _, x := range in {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// MarkWidenings marks each create and recreate that widens access over the
// last-applied spec (sensitive paths matched against home, the directory a
// manifest's ~ expands to), and returns how many actions widen.
func (r *Result) MarkWidenings(home string) int {
	return contract.MarkWidenings(r.Plan, r.Last, home)
}
