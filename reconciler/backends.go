package reconciler

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/jackin-dev/jackin/drivers"
)

// Observations are a fleet's objects as each backend holds them, by backend
// name.
type Observations map[string]*drivers.Observed

// Backends lists the backends the desired instances name (the default when
// an instance names none), sorted.
func (d *Desired) Backends() []string {
	seen := map[string]bool{}
	for _, in := range d.Instances {
		seen[backendOf(in.Instance.Backend)] = true
	}
	out := make([]string, 0, len(seen))
	for b := range seen {
		out = append(out, b)
	}
	sort.Strings(out)
	return out
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
		if backendOf(in.Instance.Backend) == backend {
			sub.Instances = append(sub.Instances, in)
		}
	}
	return sub
}

// ObserveAll observes the fleet on every driver of set, in parallel: one
// list per kind on each backend, as a single Observe does. A backend that
// cannot be observed fails the whole observation (a plan made without it
// could delete what it holds).
func ObserveAll(ctx context.Context, set drivers.Set, d *Desired) (Observations, error) {
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	out := Observations{}
	errs := make([]error, len(names))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			obs, err := set[name].Observe(ctx, d.Fleet, d.imageRefsOn(name))
			if err != nil {
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
			return nil, err
		}
	}
	return out, nil
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
		if _, ok := obs[b]; !ok {
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
	for _, b := range backends {
		bp, err := BuildPlan(d.on(b), obs[b], last, sub)
		if err != nil {
			return nil, err
		}
		for _, a := range bp.Actions {
			a.Backend = b
			p.Actions = append(p.Actions, a)
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
