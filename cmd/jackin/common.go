package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/docker"
	"github.com/jackin-dev/jackin/manifests"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
)

// loadFleet loads and validates the manifests; diagnostics go to stderr and
// an invalid manifest is exit code 2.
func (a *app) loadFleet(ctx context.Context, files []string) (*schema.Fleet, error) {
	if len(files) == 0 {
		return nil, exitWith(exitInvalid, errors.New("no manifest given: use -f PATH (a file, a directory, or - for stdin)"))
	}
	res, err := manifests.Load(ctx, files, manifests.Options{Stdin: a.stdin, StateDir: a.global.stateDir})
	if res != nil {
		for _, w := range res.Warnings {
			fmt.Fprintf(a.stderr, "warning: %s\n", w.String())
		}
	}
	if err != nil {
		var diags manifests.Diagnostics
		if errors.As(err, &diags) {
			for _, d := range diags {
				fmt.Fprintln(a.stderr, d.String())
			}
			fmt.Fprintf(a.stderr, "manifest is invalid: %d error(s)\n", len(diags))
			return nil, &exitError{code: exitInvalid, err: err, reported: true}
		}
		return nil, exitWith(exitInvalid, err)
	}
	// Worktree and clone checkouts live under the state dir, so the
	// desired mounts depend on it.
	res.Fleet.StateDir = a.global.stateDir
	a.log.V(1).Info("manifest loaded", "fleet", res.Fleet.Name, "instances", len(res.Fleet.Instances), "sources", res.Fleet.Sources)
	return res.Fleet, nil
}

// engine is the driver the CLI uses, with its call counters.
type engine interface {
	drivers.Driver
	Calls() map[string]int
	MutatingCalls() int
}

// connect opens the Docker engine; unreachable is exit code 2 with one line.
func (a *app) connect(ctx context.Context) (engine, error) {
	drv, err := docker.New(ctx, a.log.WithName("docker"))
	if err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	if err := drv.Ping(ctx); err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	return drv, nil
}

// logEngineCalls reports how many engine calls the command made, by kind.
func (a *app) logEngineCalls(drv engine) {
	calls := drv.Calls()
	keys := make([]string, 0, len(calls))
	total := 0
	for k, n := range calls {
		keys = append(keys, k)
		total += n
	}
	sort.Strings(keys)
	kv := []any{"total", total, "mutating", drv.MutatingCalls()}
	for _, k := range keys {
		kv = append(kv, k, calls[k])
	}
	a.log.V(1).Info("engine calls", kv...)
}

func (a *app) openStore(ctx context.Context) (*store.Store, error) {
	st, err := store.Open(ctx, a.global.stateDir)
	if err != nil {
		return nil, exitWith(exitInvalid, fmt.Errorf("open state dir: %w", err))
	}
	return st, nil
}

// lastApplied reads the fleet's last-applied specs from the store; a nil
// store (no state yet) has none.
func lastApplied(ctx context.Context, st *store.Store, fleet string) (reconciler.LastApplied, error) {
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

// planResult is everything a plan was computed from.
type planResult struct {
	desired  *reconciler.Desired
	observed *drivers.Observed
	plan     *reconciler.Plan
	last     reconciler.LastApplied
}

// computePlan observes the engine and plans the fleet. Credentials are
// read from their sources (the plan needs their digests); writable lets a
// command that may write state create the digest key.
func computePlan(ctx context.Context, fleet *schema.Fleet, drv drivers.Driver, st *store.Store, opts reconciler.PlanOptions, writable bool) (*planResult, error) {
	desired, err := reconciler.BuildDesired(fleet)
	if err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	if desired, err = resolveCredentials(ctx, fleet.StateDir, desired, writable); err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	observed, err := drv.Observe(ctx, fleet.Name, desired.ImageRefs())
	if err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	if err := recordOOMKills(ctx, st, fleet.Name, observed); err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	last, err := lastApplied(ctx, st, fleet.Name)
	if err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	plan, err := reconciler.BuildPlan(desired, observed, last, opts)
	if err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	return &planResult{desired: desired, observed: observed, plan: plan, last: last}, nil
}

// recordOOMKills keeps an "oom-killed" event for every agent container
// observed killed by the kernel's OOM killer, once per kill (its container
// ID and finish time are in the message). It runs before any plan is
// executed: starting the container again clears the engine's OOMKilled flag.
func recordOOMKills(ctx context.Context, st *store.Store, fleet string, observed *drivers.Observed) error {
	if st == nil {
		return nil
	}
	for _, c := range observed.Containers {
		if !c.OOMKilled || c.Labels[drivers.LabelComponent] != drivers.ComponentAgent {
			continue
		}
		at := c.FinishedAt
		msg := fmt.Sprintf("container %s (%s) was killed by the kernel's OOM killer (out of memory) at %s",
			c.Name, shortContainerID(c.ID), at.UTC().Format(time.RFC3339Nano))
		data, _ := json.Marshal(map[string]any{"containerID": c.ID, "finishedAt": at})
		if _, err := st.RecordEventOnce(ctx, store.Event{Fleet: fleet, Instance: c.Instance(), Kind: "oom-killed", Message: msg, At: at, Data: data}); err != nil {
			return err
		}
	}
	return nil
}

func shortContainerID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

var fleetNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// validFleetName mirrors the schema's rule for names given on the command line.
func validFleetName(s string) bool { return len(s) <= 30 && fleetNameRE.MatchString(s) }

// session is what the engine-facing commands share: the validated fleet,
// the engine and the store.
type session struct {
	fleet *schema.Fleet
	drv   engine
	st    *store.Store // nil for a read-only command before any state exists
}

// openSession loads the manifests, connects to the engine and opens the
// store. A writable session creates the state dir; a read-only one never
// does. Close it with closeSession.
func (a *app) openSession(ctx context.Context, files []string, writable bool) (*session, error) {
	fleet, err := a.loadFleet(ctx, files)
	if err != nil {
		return nil, err
	}
	sess, err := a.openEngineSession(ctx, writable)
	if err != nil {
		return nil, err
	}
	sess.fleet = fleet
	return sess, nil
}

// openEngineSession connects to the engine and opens the store, for the
// commands that name a fleet without loading its manifest (fleet is nil).
func (a *app) openEngineSession(ctx context.Context, writable bool) (*session, error) {
	drv, err := a.connect(ctx)
	if err != nil {
		return nil, err
	}
	var st *store.Store
	if writable {
		st, err = a.openStore(ctx)
	} else {
		st, err = a.openStoreReadOnly(ctx)
	}
	if err != nil {
		a.logEngineCalls(drv)
		return nil, err
	}
	return &session{drv: drv, st: st}, nil
}

// closeSession logs the engine calls the command made and closes the store.
func (a *app) closeSession(s *session) {
	a.logEngineCalls(s.drv)
	if s.st != nil {
		s.st.Close()
	}
}

// fleetFromFlags names the fleet a command works on: the manifest's (-f) or
// --fleet's. required says one of them must be given; otherwise "" means
// every fleet.
func (a *app) fleetFromFlags(ctx context.Context, files []string, fleetName string, required bool) (string, error) {
	switch {
	case len(files) > 0 && fleetName != "":
		return "", exitWith(exitInvalid, errors.New("give either -f or --fleet, not both"))
	case len(files) > 0:
		fleet, err := a.loadFleet(ctx, files)
		if err != nil {
			return "", err
		}
		return fleet.Name, nil
	case fleetName == "" && required:
		return "", exitWith(exitInvalid, errors.New("name the fleet: -f PATH or --fleet NAME"))
	case fleetName != "" && !validFleetName(fleetName):
		return "", exitWith(exitInvalid, fmt.Errorf("--fleet %q is not a fleet name: a lowercase DNS label of at most 30 characters", fleetName))
	}
	return fleetName, nil
}

// narrowPlan keeps, of a plan and its desired state, only the named
// instances, in the plan's order; no names keeps everything. A name that is
// neither in the manifest nor on the engine (an orphan is in the plan as a
// delete) is an error naming every such name once, sorted.
func narrowPlan(res *planResult, names []string) error {
	if len(names) == 0 {
		return nil
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	plan := &reconciler.Plan{Fleet: res.plan.Fleet}
	found := map[string]bool{}
	for _, act := range res.plan.Actions {
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
		return exitWith(exitInvalid, fmt.Errorf("no instance named %s in fleet %q or on the engine", strings.Join(unknown, ", "), res.plan.Fleet))
	}
	desired := *res.desired
	desired.Instances = nil
	for _, in := range res.desired.Instances {
		if want[in.Name] {
			desired.Instances = append(desired.Instances, in)
		}
	}
	res.plan, res.desired = plan, &desired
	return nil
}
