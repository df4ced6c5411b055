package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/schema"
)

// Observations are a fleet's objects as each backend holds them, by backend
// name.
type Observations map[string]*drivers.Observed

// Backends lists the backends the desired instances name (the default when
// an instance names none), sorted.
func (d *Desired) Backends() []string {
	seen := map[string]bool{}
	for _, in := range d.Instances {
		seen[placementOf(in.Instance)] = true
	}
	out := make([]string, 0, len(seen))
	for b := range seen {
		out = append(out, b)
	}
	sort.Strings(out)
	return out
}

// placementOf is the drivers.Set key of the instance's backend and engine.
func placementOf(in schema.Instance) string {
	return drivers.PlacementKey(in.Backend, in.Engine)
}

func backendOf(b string) string {
	if b == "" {
		return drivers.DefaultBackend
	}
	return b
}

// imageRefsOn lists the image references the instances on one backend run.
func (d *Desired) imageRefsOn(backend string) []string {
	sub := d.on(backend)
	return sub.ImageRefs()
}

// on is the part of the desired state placed on one backend.
func (d *Desired) on(backend string) *Desired {
	sub := &Desired{Fleet: d.Fleet, StateDir: d.StateDir}
	for _, in := range d.Instances {
		if placementOf(in.Instance) == backend {
			sub.Instances = append(sub.Instances, in)
		}
	}
	return sub
}

// ObserveAll observes the fleet on every driver of set, in parallel: one
// list per kind on each backend, as a single Observe does. A backend that
// cannot be observed fails the whole observation (a plan made without it
// could delete what it holds); ObservePartitioned tells an unreachable
// declared engine apart instead.
func ObserveAll(ctx context.Context, set drivers.Set, d *Desired) (Observations, error) {
	out, parts, err := ObservePartitioned(ctx, set, d)
	if err != nil {
		return nil, err
	}
	for _, name := range sortedErrKeys(parts) {
		return nil, fmt.Errorf("observe backend %s: %w", name, parts[name])
	}
	return out, nil
}

// EngineObserveTimeout bounds the observation of one declared engine: an
// engine behind a cut network must not hold up the others' plan.
var EngineObserveTimeout = 20 * time.Second

// ObservePartitioned is ObserveAll, except that a declared engine (a key
// with an engine, "docker@NAME") that does not answer is a partition: it
// is returned in the second map, by key, as an
// *drivers.ErrEngineUnreachable, and the others are observed as usual.
// Any other failure fails the whole observation.
func ObservePartitioned(ctx context.Context, set drivers.Set, d *Desired) (Observations, map[string]error, error) {
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	out := Observations{}
	parts := map[string]error{}
	errs := make([]error, len(names))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			_, engine := drivers.SplitPlacement(name)
			octx := ctx
			if engine != "" {
				var cancel context.CancelFunc
				octx, cancel = context.WithTimeout(ctx, EngineObserveTimeout)
				defer cancel()
			}
			obs, err := set[name].Observe(octx, d.Fleet, d.imageRefsOn(name))
			if err != nil {
				var unreachable *drivers.ErrUnreachable
				if engine != "" && ctx.Err() == nil && (errors.As(err, &unreachable) || octx.Err() != nil) {
					cause := err
					if unreachable != nil {
						cause = unreachable.Err
					}
					mu.Lock()
					parts[name] = &drivers.ErrEngineUnreachable{Engine: engine, Endpoint: set[name].Endpoint(), Err: cause}
					mu.Unlock()
					return
				}
				errs[i] = fmt.Errorf("observe backend %s: %w", name, err)
				return
			}
			mu.Lock()
			out[name] = obs
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	return out, parts, nil
}

func sortedErrKeys(m map[string]error) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// BuildPlanAll plans a fleet that spans backends: each backend's part of
// the desired state against what that backend holds, one plan in the end,
// every action tagged with its backend. An instance moved from one backend
// to another is created on the new one and deleted from the old.
func BuildPlanAll(d *Desired, obs Observations, last LastApplied, opts PlanOptions) (*Plan, error) {
	if d == nil {
		return nil, fmt.Errorf("plan: no desired state")
	}
	for _, b := range d.Backends() {
		if _, ok := obs[b]; !ok && opts.Unreachable[b] == nil {
			return nil, fmt.Errorf("plan: backend %s was not observed", b)
		}
	}
	backends := make([]string, 0, len(obs))
	for b := range obs {
		backends = append(backends, b)
	}
	sort.Strings(backends)
	p := &Plan{Fleet: d.Fleet}
	sub := opts
	// The empty-manifest guard is about the whole manifest: a backend the
	// manifest no longer uses is emptied like any removed instance.
	sub.AllowEmpty = opts.AllowEmpty || len(d.Instances) > 0
	// Instances whose engine is cut off: never deleted elsewhere (a move
	// to that engine waits for it), never planned there.
	held := map[string]string{}
	for b := range opts.Unreachable {
		for _, in := range d.on(b).Instances {
			held[in.Name] = b
		}
	}
	for _, b := range backends {
		bp, err := BuildPlan(d.on(b), obs[b], last, sub)
		if err != nil {
			return nil, err
		}
		_, engine := drivers.SplitPlacement(b)
		for _, a := range bp.Actions {
			if a.Type == ActionDelete && held[a.Instance] != "" {
				// Its desired engine is cut off: the copy here stays
				// until the instance can be made there.
				continue
			}
			a.Backend, a.Engine = b, engine
			p.Actions = append(p.Actions, a)
		}
	}
	for _, b := range sortedErrKeys(opts.Unreachable) {
		_, engine := drivers.SplitPlacement(b)
		for _, in := range d.on(b).Instances {
			in := in
			err := opts.Unreachable[b]
			p.Actions = append(p.Actions, Action{
				Instance: in.Name, Type: ActionUnreachable, Backend: b, Engine: engine, Desired: &in,
				Reasons: []string{err.Error()}, Err: err,
			})
		}
	}
	sort.SliceStable(p.Actions, func(i, j int) bool { return p.Actions[i].Instance < p.Actions[j].Instance })
	return p, nil
}

// images are the observed image IDs by backend.
func (o Observations) images() map[string]map[string]string {
	out := map[string]map[string]string{}
	for b, obs := range o {
		out[b] = imagesOf(obs)
	}
	return out
}

// imagesOf is an observation's image IDs (nil for none).
func imagesOf(o *drivers.Observed) map[string]string {
	if o == nil {
		return nil
	}
	return o.Images
}
