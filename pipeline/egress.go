package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/egress"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
)

// PolicyChange is an allowlist change apply makes by rewriting a policy
// file (no recreate).
type PolicyChange struct {
	Instance string   `json:"instance"`
	Added    []string `json:"added"`
	Removed  []string `json:"removed"`
}

// pendingPolicies lists the instances, not created by the plan, whose
// egress policy file differs from the manifest's allowlist.
func pendingPolicies(res *Result) []PolicyChange {
	creating := map[string]bool{}
	for _, act := range res.Plan.Actions {
		if act.Type == reconciler.ActionCreate {
			creating[act.Instance] = true
		}
	}
	var out []PolicyChange
	for i := range res.Desired.Instances {
		in := &res.Desired.Instances[i]
		if creating[in.Name] {
			continue
		}
		if added, removed, pending := in.PolicyChange(); pending {
			out = append(out, PolicyChange{Instance: in.Name, Added: added, Removed: removed})
		}
	}
	return out
}

// PolicyWidenings are the allowlist additions, one line each.
func (r *Result) PolicyWidenings() []string {
	var out []string
	for _, c := range r.Policies {
		if len(c.Added) > 0 {
			out = append(out, fmt.Sprintf("%s (egress policy): the allowlist adds %s", c.Instance, strings.Join(c.Added, ", ")))
		}
	}
	return out
}

// PullBeforeRemoving pulls the logs of the egress proxies a plan is about
// to remove (recreate or delete), on each backend, so their last decisions
// are not lost. apply and watch both do it before they execute.
func (e Env) PullBeforeRemoving(ctx context.Context, p *reconciler.Plan) error {
	if e.Store == nil {
		return nil
	}
	doomed := map[string][]drivers.ObservedResource{}
	for _, act := range p.Actions {
		if act.Mutates() && (act.Type == reconciler.ActionRecreate || act.Type == reconciler.ActionDelete) {
			doomed[backendOf(act)] = append(doomed[backendOf(act)], act.Observed...)
		}
	}
	var errs []error
	for b, ctrs := range doomed {
		drv, err := e.Drivers.For(b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lr, ok := drv.(drivers.LogReader)
		if !ok {
			continue
		}
		errs = append(errs, pullEgressContainers(ctx, lr, e.Store, p.Fleet, ctrs))
	}
	return errors.Join(errs...)
}

func backendOf(act reconciler.Action) string {
	if act.Backend == "" {
		return drivers.DefaultBackend
	}
	return act.Backend
}

// PullEgressLogs reads the new decision lines of every egress proxy of the
// fleet, on every backend, into the store. The instance comes from the
// container's label, not from the line.
func (e Env) PullEgressLogs(ctx context.Context, fleet string) error {
	var errs []error
	for _, drv := range e.Drivers {
		lr, ok := drv.(drivers.LogReader)
		if !ok {
			continue
		}
		obs, err := drv.Observe(ctx, fleet, nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, pullEgressContainers(ctx, lr, e.Store, fleet, obs.Containers))
	}
	return errors.Join(errs...)
}

// pullEgressContainers pulls the decision lines of the egress proxies among
// containers.
func pullEgressContainers(ctx context.Context, lr drivers.LogReader, st *store.Store, fleet string, containers []drivers.ObservedResource) error {
	var errs []error
	for _, c := range containers {
		if c.Kind != drivers.KindContainer || c.Labels[drivers.LabelManagedBy] != drivers.ManagedByValue || c.Labels[drivers.LabelComponent] != drivers.ComponentEgress {
			continue
		}
		since, err := st.EgressPulledUntil(ctx, fleet, c.ID)
		if err != nil {
			return err
		}
		lines, err := lr.ContainerLogs(ctx, c.ID, since)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var ds []store.EgressDecision
		until := since
		for _, l := range lines {
			if l.Time.After(until) {
				until = l.Time
			}
			d, ok := egress.ParseDecision(l.Text)
			if !ok {
				continue
			}
			ds = append(ds, store.EgressDecision{Fleet: fleet, Instance: c.Instance(), Time: d.Time, Host: d.Host, Port: d.Port,
				Method: d.Method, Allowed: d.Allowed, Rule: d.Rule, BytesUp: d.BytesUp, BytesDown: d.BytesDown, DurationMs: d.DurationMs, Error: d.Error})
		}
		if len(lines) == 0 {
			continue
		}
		if _, err := st.AddEgressDecisions(ctx, fleet, c.ID, until, ds); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// EgressUpkeep is watch's side of egress: it writes the policy files of the
// manifest in force (on start, on each reload, and again every second, so a
// policy file changed or removed out of band is healed like other drift)
// and pulls the proxies' decision logs into the store every few seconds.
type EgressUpkeep struct {
	env Env

	mu      sync.Mutex // guards desired
	desired *reconciler.Desired
	writeMu sync.Mutex // serialises writes (the loop and a reload)
	written map[string]bool
	done    chan struct{}
}

// StartEgressUpkeep writes the fleet's policies and starts the loop; stop it
// by cancelling ctx, then Wait.
func (e Env) StartEgressUpkeep(ctx context.Context, fleet *schema.Fleet) (*EgressUpkeep, error) {
	u := &EgressUpkeep{env: e, done: make(chan struct{}), written: map[string]bool{}}
	if err := u.Reload(fleet); err != nil {
		close(u.done)
		return nil, err
	}
	go u.loop(ctx)
	return u, nil
}

// Reload takes a newly loaded manifest and writes its policies.
func (u *EgressUpkeep) Reload(fleet *schema.Fleet) error {
	desired, err := reconciler.BuildDesired(fleet)
	if err != nil {
		return err
	}
	u.mu.Lock()
	u.desired = desired
	u.mu.Unlock()
	return u.write()
}

func (u *EgressUpkeep) write() error {
	u.writeMu.Lock()
	defer u.writeMu.Unlock()
	u.mu.Lock()
	desired := u.desired
	u.mu.Unlock()
	changed, err := reconciler.WritePolicies(desired)
	for _, name := range changed {
		verb := "written"
		if u.written[name] {
			verb = "rewritten (it differed from the manifest)"
		}
		u.written[name] = true
		u.env.Log.Info("egress policy "+verb+"; the proxy reloads it", "instance", name)
	}
	return err
}

func (u *EgressUpkeep) loop(ctx context.Context) {
	defer close(u.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := u.write(); err != nil {
			u.env.Log.Error(err, "write egress policies")
		}
		if n%5 != 0 {
			continue
		}
		u.mu.Lock()
		desired := u.desired
		u.mu.Unlock()
		any := false
		for _, in := range desired.Instances {
			any = any || in.Policy != nil
		}
		if any {
			if err := u.env.PullEgressLogs(ctx, desired.Fleet); err != nil && ctx.Err() == nil {
				u.env.Log.V(1).Info("pull egress logs", "error", err.Error())
			}
		}
	}
}

// Wait returns when the loop has stopped.
func (u *EgressUpkeep) Wait() { <-u.done }
