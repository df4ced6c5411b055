package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/store"
)

type historyRun struct {
	ID         int64           `json:"id"`
	Fleet      string          `json:"fleet"`
	Verb       string          `json:"verb"`
	Outcome    string          `json:"outcome"`
	Summary    string          `json:"summary"`
	StartedAt  time.Time       `json:"startedAt"`
	FinishedAt time.Time       `json:"finishedAt,omitzero"`
	Actions    []historyAction `json:"actions"`
}

type historyAction struct {
	Instance   string    `json:"instance"`
	Action     string    `json:"action"`
	Reasons    []string  `json:"reasons"`
	Outcome    string    `json:"outcome"`
	Error      string    `json:"error,omitempty"`
	DurationMs int64     `json:"durationMs"`
	At         time.Time `json:"at"`
}

func newHistoryCommand(a *app) *cobra.Command {
	var mf manifestFlags
	var fleetName string
	var limit int
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "history [-f PATH... | --fleet NAME]",
		Short: "Show recent runs and their actions",
		Long: `history lists recent apply and delete runs, newest first, with each action's
outcome, reasons, error and duration. Without -f or --fleet it shows every
fleet. A run whose process died before it finished shows as interrupted.`,
		Example: `  jackin history -f fleet.cue
  jackin history --fleet demo --limit 5 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			name := fleetName
			if len(mf.files) > 0 {
				fleet, err := a.loadFleet(ctx, mf.files)
				if err != nil {
					return err
				}
				name = fleet.Name
			}
			st, err := a.openStoreReadOnly(ctx)
			if err != nil {
				return err
			}
			var runs []store.Run
			if st != nil {
				defer st.Close()
				if runs, err = st.Runs(ctx, name, limit); err != nil {
					return exitWith(exitInvalid, fmt.Errorf("read history: %w", err))
				}
			}
			docs := historyDocs(runs)
			if out.format != "table" {
				return writeStructured(a.stdout, out.format, map[string]any{"apiVersion": "jackin.dev/v1alpha1", "kind": "History", "runs": docs})
			}
			if len(docs) == 0 {
				fmt.Fprintln(a.stdout, "No runs recorded.")
				return nil
			}
			for i, r := range docs {
				if i > 0 {
					fmt.Fprintln(a.stdout)
				}
				fmt.Fprintf(a.stdout, "Run %d  %s  fleet %q  %s  %s", r.ID, r.StartedAt.Local().Format("2006-01-02 15:04:05"), r.Fleet, r.Verb, r.Outcome)
				if r.Summary != "" {
					fmt.Fprintf(a.stdout, "  (%s)", r.Summary)
				}
				fmt.Fprintln(a.stdout)
				if len(r.Actions) == 0 {
					fmt.Fprintln(a.stdout, "    no changes")
				}
				for _, act := range r.Actions {
					fmt.Fprintf(a.stdout, "    %-20s %-9s %-9s %6s", act.Instance, act.Action, act.Outcome, (time.Duration(act.DurationMs) * time.Millisecond).String())
					if len(act.Reasons) > 0 {
						fmt.Fprintf(a.stdout, "  %s", strings.Join(act.Reasons, "; "))
					}
					fmt.Fprintln(a.stdout)
					if act.Error != "" {
						fmt.Fprintf(a.stdout, "        error: %s\n", act.Error)
					}
				}
			}
			return nil
		},
	}
	mf.register(cmd)
	cmd.Flags().StringVar(&fleetName, "fleet", "", "fleet name, instead of -f")
	cmd.Flags().IntVar(&limit, "limit", 20, "how many runs to show")
	out.register(cmd, "table", "table", "json", "yaml")
	return cmd
}

func historyDocs(runs []store.Run) []historyRun {
	docs := make([]historyRun, 0, len(runs))
	for _, r := range runs {
		d := historyRun{ID: r.ID, Fleet: r.Fleet, Verb: r.Verb, Outcome: r.Outcome, Summary: r.Summary, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Actions: []historyAction{}}
		for _, act := range r.Actions {
			reasons := act.Reasons
			if reasons == nil {
				reasons = []string{}
			}
			d.Actions = append(d.Actions, historyAction{Instance: act.Instance, Action: act.Action, Reasons: reasons, Outcome: act.Outcome, Error: act.Error, DurationMs: act.Duration.Milliseconds(), At: act.At})
		}
		docs = append(docs, d)
	}
	return docs
}
