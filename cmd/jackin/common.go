package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/docker"
	"github.com/jackin-dev/jackin/manifests"
	"github.com/jackin-dev/jackin/pipeline"
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

// connect opens the default backend, the Docker engine, from the registry;
// unreachable is exit code 2 with one line.
func (a *app) connect(ctx context.Context) (engine, error) {
	drv, err := a.openBackend(ctx, drivers.DefaultBackend)
	if err != nil {
		return nil, err
	}
	eng, ok := drv.(engine)
	if !ok {
		return nil, exitWith(exitInvalid, fmt.Errorf("backend %s does not count its calls", drv.Name()))
	}
	return eng, nil
}

// openBackend opens a backend by name and checks that it answers.
func (a *app) openBackend(ctx context.Context, name string) (drivers.Driver, error) {
	drv, err := drivers.Open(ctx, name, a.log)
	if err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	if err := drv.Ping(ctx); err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	return drv, nil
}

// openBackends opens every backend the fleet's instances name, besides
// the default one: one plan spans them all.
func (a *app) openBackends(ctx context.Context, fleet *schema.Fleet, def engine) (drivers.Set, error) {
	set := drivers.Set{drivers.DefaultBackend: def}
	if fleet == nil {
		return set, nil
	}
	for _, in := range fleet.Instances {
		if in.Engine != "" {
			key := drivers.PlacementKey(in.Backend, in.Engine)
			if set[key] != nil {
				continue
			}
			drv, err := a.openEngine(ctx, fleet.Engines[in.Engine])
			if err != nil {
				return nil, err
			}
			set[key] = drv
			continue
		}
		b := in.Backend
		if b == "" || set[b] != nil {
			continue
		}
		if b == schema.BackendKubernetes {
			drv, err := a.openKubernetes(ctx, fleet)
			if err != nil {
				return nil, err
			}
			set[b] = drv
			continue
		}
		drv, err := a.openBackend(ctx, b)
		if err != nil {
			return nil, err
		}
		set[b] = drv
	}
	return set, nil
}

// openEngine makes the driver of a declared Docker engine without
// contacting it: an engine that does not answer is a partition the plan
// reports (its instances unreachable), not a failed command. jackin's own
// bind sources (the state dir, and the credentials on the tmpfs) are
// copied to a remote engine's host through its connection.
func (a *app) openEngine(ctx context.Context, e schema.Engine) (drivers.Driver, error) {
	cfg := docker.EngineConfig{Name: e.Name, Host: e.Host}
	if e.TLS != nil {
		cfg.TLS = &docker.TLSFiles{CA: e.TLS.CA, Cert: e.TLS.Cert, Key: e.TLS.Key}
	}
	if e.Remote() {
		cfg.HostFiles = &docker.HostFiles{
			Roots: []string{a.global.stateDir}, TmpfsRoots: []string{reconciler.SecretsBase()},
			Dir: docker.DefaultRemoteDir, TmpfsDir: docker.DefaultRemoteTmpfsDir,
		}
		if exe, err := os.Executable(); err == nil && keepDials {
			cfg.Keeper = []string{exe, dialKeeperCommand}
		}
	}
	drv, err := docker.OpenEngine(ctx, a.log.WithName("engine").WithValues("engine", e.Name), cfg)
	if err != nil {
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

var fleetNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// validFleetName mirrors the schema's rule for names given on the command line.
func validFleetName(s string) bool { return len(s) <= 30 && fleetNameRE.MatchString(s) }

// session is what the engine-facing commands share: the validated fleet,
// the backends and the store.
type session struct {
	fleet *schema.Fleet
	drv   engine       // the default backend, the local Docker engine
	set   drivers.Set  // every backend the fleet uses, by name
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
	if sess.set, err = a.openBackends(ctx, fleet, sess.drv); err != nil {
		a.closeSession(sess)
		return nil, err
	}
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
	return &session{drv: drv, set: drivers.Set{drivers.DefaultBackend: drv}, st: st}, nil
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

// narrowPlan keeps, of a planned pass, only the named instances (all when
// none is named); an unknown name is exit code 2.
func narrowPlan(res *pipeline.Result, names []string) error {
	if err := res.Narrow(names); err != nil {
		return exitWith(exitInvalid, err)
	}
	return nil
}

// env is the pipeline's view of the session.
func (a *app) env(s *session) pipeline.Env {
	return pipeline.Env{StateDir: a.global.stateDir, Store: s.st, Drivers: s.set, Log: a.log}
}

// plan runs the pipeline's planning stage for the session's fleet.
func (a *app) plan(ctx context.Context, s *session, opts reconciler.PlanOptions, writable bool) (*pipeline.Result, error) {
	res, err := a.env(s).Plan(ctx, s.fleet, opts, writable)
	if err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	return res, nil
}
