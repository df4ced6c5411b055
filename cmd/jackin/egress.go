package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/store"
)

// planWithPolicies is the plan document with the pending allowlist changes
// (absent when there are none, so the document is otherwise unchanged).
type planWithPolicies struct {
	reconciler.PlanDoc
	EgressPolicies []pipeline.PolicyChange `json:"egressPolicies,omitempty"`
	// CredentialRefresh lists file and proxy credentials rewritten in
	// place (names only).
	CredentialRefresh []pipeline.CredentialRefresh `json:"credentialRefresh,omitempty"`
}

// planDocument is reconciler.PlanDocument plus the pending allowlist changes.
func planDocument(p *reconciler.Plan, changes []pipeline.PolicyChange, refresh []pipeline.CredentialRefresh) any {
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

// writePolicyChanges prints pending allowlist changes after a plan.
func writePolicyChanges(w io.Writer, changes []pipeline.PolicyChange) {
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
			st, env := sess.st, a.env(sess)
			q := store.EgressQuery{Fleet: fleetName, Instance: instance, Denied: denied, Limit: limit}
			if err := env.PullEgressLogs(ctx, fleetName); err != nil {
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
				if err := env.PullEgressLogs(ctx, fleetName); err != nil {
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
