package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/egress"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
)

// policyChange is an allowlist change apply makes by rewriting a policy
// file (no recreate).
type policyChange struct {
	Instance string   `json:"instance"`
	Added    []string `json:"added"`
	Removed  []string `json:"removed"`
}

// planWithPolicies is the plan document with the pending allowlist changes
// (absent when there are none, so the document is otherwise unchanged).
type planWithPolicies struct {
	reconciler.PlanDoc
	EgressPolicies []policyChange `json:"egressPolicies,omitempty"`
	// CredentialRefresh lists file and proxy credentials rewritten in
	// place (names only).
	CredentialRefresh []credentialRefresh `json:"credentialRefresh,omitempty"`
}

// planDocument is reconciler.PlanDocument plus the pending allowlist changes.
func planDocument(p *reconciler.Plan, changes []policyChange, refresh []credentialRefresh) any {
	doc := reconciler.PlanDocument(p)
	pd, ok := doc.(reconciler.PlanDoc)
	if !ok || len(changes)+len(refresh) == 0 {
		return doc
	}
	for i := range changes {
		if changes[i].Added == nil {
			changes[i].Added = []string{}
		}
		if changes[i].Removed == nil {
			changes[i].Removed = []string{}
		}
	}
	return planWithPolicies{PlanDoc: pd, EgressPolicies: changes, CredentialRefresh: refresh}
}

// pendingPolicies lists the instances, not created by the plan, whose
// egress policy file differs from the manifest's allowlist.
func pendingPolicies(res *planResult) []policyChange {
	creating := map[string]bool{}
	for _, act := range res.plan.Actions {
		if act.Type == reconciler.ActionCreate {
			creating[act.Instance] = true
		}
	}
	var out []policyChange
	for i := range res.desired.Instances {
		in := &res.desired.Instances[i]
		if creating[in.Name] {
			continue
		}
		if added, removed, pending := in.PolicyChange(); pending {
			out = append(out, policyChange{Instance: in.Name, Added: added, Removed: removed})
		}
	}
	return out
}

// policyWidenings are the allowlist additions, one line each.
func policyWidenings(changes []policyChange) []string {
	var out []string
	for _, c := range changes {
		if len(c.Added) > 0 {
			out = append(out, fmt.Sprintf("%s (egress policy): the allowlist adds %s", c.Instance, strings.Join(c.Added, ", ")))
		}
	}
	return out
}

// writePolicyChanges prints pending allowlist changes after a plan.
func writePolicyChanges(w io.Writer, changes []policyChange) {
	for _, c := range changes {
		var parts []string
		for _, r := range c.Added {
			parts = append(parts, "+ "+r)
		}
		for _, r := range c.Removed {
			parts = append(parts, "- "+r)
		}
		what := strings.Join(parts, ", ")
		if what == "" {
			what = "the policy file differs"
		}
		fmt.Fprintf(w, "~ %s: egress allowlist changed: %s (the policy file is rewritten and the proxy reloads it; nothing is recreated)\n", c.Instance, what)
		if len(c.Added) > 0 {
			fmt.Fprintf(w, "    ! widens access: the allowlist adds %s\n", strings.Join(c.Added, ", "))
		}
	}
}

// pullBeforeRemoving pulls the logs of the egress proxies a plan is about
// to remove (recreate or delete), so their last decisions are not lost.
func pullBeforeRemoving(ctx context.Context, drv drivers.Driver, st *store.Store, p *reconciler.Plan) error {
	lr, ok := drv.(drivers.LogReader)
	if !ok {
		return nil
	}
	var doomed []drivers.ObservedResource
	for _, act := range p.Actions {
		if act.Mutates() && (act.Type == reconciler.ActionRecreate || act.Type == reconciler.ActionDelete) {
			doomed = append(doomed, act.Observed...)
		}
	}
	return pullEgressContainers(ctx, lr, st, p.Fleet, doomed)
}

// egressUpkeep is watch's side of egress: it writes the policy files of the
// manifest in force (on start, on each reload, and again every second, so a
// policy file changed or removed out of band is healed like other drift)
// and pulls the proxies' decision logs into the store every few seconds.
type egressUpkeep struct {
	a   *app
	drv drivers.Driver
	st  *store.Store

	mu      sync.Mutex // guards desired
	desired *reconciler.Desired
	writeMu sync.Mutex // serialises writes (the loop and a reload)
	written map[string]bool
	done    chan struct{}
}

// startEgressUpkeep writes the fleet's policies and starts the loop; stop it
// by cancelling ctx, then wait().
func (a *app) startEgressUpkeep(ctx context.Context, fleet *schema.Fleet, drv drivers.Driver, st *store.Store) (*egressUpkeep, error) {
	u := &egressUpkeep{a: a, drv: drv, st: st, done: make(chan struct{}), written: map[string]bool{}}
	if err := u.reload(fleet); err != nil {
		close(u.done)
		return nil, err
	}
	go u.loop(ctx)
	return u, nil
}

// reload takes a newly loaded manifest and writes its policies.
func (u *egressUpkeep) reload(fleet *schema.Fleet) error {
	desired, err := reconciler.BuildDesired(fleet)
	if err != nil {
		return err
	}
	u.mu.Lock()
	u.desired = desired
	u.mu.Unlock()
	return u.write()
}

func (u *egressUpkeep) write() error {
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
		u.a.log.Info("egress policy "+verb+"; the proxy reloads it", "instance", name)
	}
	return err
}

func (u *egressUpkeep) loop(ctx context.Context) {
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
			u.a.log.Error(err, "write egress policies")
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
			if err := pullEgressLogs(ctx, u.drv, u.st, desired.Fleet); err != nil && ctx.Err() == nil {
				u.a.log.V(1).Info("pull egress logs", "error", err.Error())
			}
		}
	}
}

// wait returns when the loop has stopped.
func (u *egressUpkeep) wait() { <-u.done }

func newEgressCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "egress",
		Short: "Egress proxies: their connection log",
	}
	cmd.AddCommand(newEgressLogCommand(a))
	return cmd
}

// egressLog is the -o json document of `jackin egress log`.
type egressLog struct {
	APIVersion string                 `json:"apiVersion"`
	Kind       string                 `json:"kind"`
	Fleet      string                 `json:"fleet"`
	Items      []store.EgressDecision `json:"items"`
}

func newEgressLogCommand(a *app) *cobra.Command {
	var mf manifestFlags
	var out outputFlag
	var fleetName string
	var denied, follow bool
	var limit int
	cmd := &cobra.Command{
		Use:   "log (-f PATH... | --fleet NAME) [INSTANCE]",
		Short: "Show the connections each instance's egress proxy allowed and denied",
		Long: `log pulls the decisions of the fleet's egress proxies (one per instance in
egress "allowlist") from their containers' logs into jackin's store, then prints
them, oldest first: time, instance, allowed or denied, method (CONNECT, GET, ...),
destination, the rule that decided, bytes each way and duration.

With --follow it pulls and prints new decisions every second until interrupted.
-o json prints one document ({"kind": "EgressLog", "items": [...]}); with
--follow, one decision per line.`,
		Example: `  jackin egress log -f fleet.cue
  jackin egress log --fleet demo web --denied
  jackin egress log -f fleet.cue --follow -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			fleetName, err := a.fleetFromFlags(ctx, mf.files, fleetName, true)
			if err != nil {
				return err
			}
			instance := ""
			if len(args) == 1 {
				instance = args[0]
			}
			sess, err := a.openEngineSession(ctx, true)
			if err != nil {
				return err
			}
			defer a.closeSession(sess)
			drv, st := sess.drv, sess.st
			q := store.EgressQuery{Fleet: fleetName, Instance: instance, Denied: denied, Limit: limit}
			if err := pullEgressLogs(ctx, drv, st, fleetName); err != nil {
				return exitWith(exitInvalid, err)
			}
			items, err := st.EgressDecisions(ctx, q)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			if !follow {
				if out.format == "json" {
					if items == nil {
						items = []store.EgressDecision{}
					}
					return writeStructured(a.stdout, "json", egressLog{APIVersion: "jackin.dev/v1alpha1", Kind: "EgressLog", Fleet: fleetName, Items: items})
				}
				writeEgressTable(a.stdout, items, true)
				return nil
			}
			header := true
			for {
				if out.format == "json" {
					enc := json.NewEncoder(a.stdout)
					for _, d := range items {
						_ = enc.Encode(d)
					}
				} else if len(items) > 0 {
					writeEgressTable(a.stdout, items, header)
					header = false
				}
				if len(items) > 0 {
					q.AfterID = items[len(items)-1].ID
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Second):
				}
				if err := pullEgressLogs(ctx, drv, st, fleetName); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					fmt.Fprintf(a.stderr, "warning: %v\n", err)
				}
				q.Limit = 0
				if items, err = st.EgressDecisions(ctx, q); err != nil {
					return exitWith(exitInvalid, err)
				}
			}
		},
	}
	mf.register(cmd)
	out.register(cmd, "text", "text", "json")
	cmd.Flags().StringVar(&fleetName, "fleet", "", "the fleet's name (instead of -f)")
	cmd.Flags().BoolVar(&denied, "denied", false, "only denied connections")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep pulling and printing new decisions every second")
	cmd.Flags().IntVar(&limit, "limit", 1000, "at most this many of the newest decisions (before --follow's new ones)")
	return cmd
}

func writeEgressTable(w io.Writer, items []store.EgressDecision, header bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header {
		fmt.Fprintln(tw, "TIME\tINSTANCE\tDECISION\tMETHOD\tDESTINATION\tRULE\tUP\tDOWN\tMS")
	}
	for _, d := range items {
		decision := "allowed"
		if !d.Allowed {
			decision = "DENIED"
		}
		rule := d.Rule
		if d.Error != "" {
			rule += " (error: " + d.Error + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", d.Time.Local().Format("2006-01-02 15:04:05.000"), d.Instance, decision, d.Method,
			d.Host+":"+strconv.Itoa(d.Port), rule, d.BytesUp, d.BytesDown, d.DurationMs)
	}
	_ = tw.Flush()
}

// pullEgressLogs reads the new decision lines of every egress proxy of the
// fleet into the store. The instance comes from the container's label, not
// from the line.
func pullEgressLogs(ctx context.Context, drv drivers.Driver, st *store.Store, fleet string) error {
	lr, ok := drv.(drivers.LogReader)
	if !ok {
		return fmt.Errorf("the %s backend cannot read container logs", drv.Name())
	}
	obs, err := drv.Observe(ctx, fleet, nil)
	if err != nil {
		return err
	}
	return pullEgressContainers(ctx, lr, st, fleet, obs.Containers)
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
