package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/pipeline"
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
outcome, reasons, error and duration, and before them the agents' recent
state changes (idle, working, blocked, done, exited), as their supervisors
reported them, and idle cleanup's stops, commands and wakes (idle-stop,
idle-exec, idle-wake). Without -f or --fleet it shows every fleet. A run whose
process died before it finished shows as interrupted.`,
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
			var st *store.Store
			var err error
			if _, serr := os.Stat(filepath.Join(a.global.stateDir, "agents")); serr == nil {
				// Agents published state changes: record the new ones
				// first (a write), so history shows them.
				st, err = a.openStore(ctx)
			} else {
				st, err = a.openStoreReadOnly(ctx)
			}
			if err != nil {
				return err
			}
			var runs []store.Run
			var agentEvents []agentStateDoc
			recoveryEvents := []recoveryDoc{}
			idleEvents := []recoveryDoc{}
			if st != nil {
				defer st.Close()
				if err := a.recordAgentStates(ctx, st, name); err != nil {
					a.log.Error(err, "record the agents' state changes")
				}
				a.recordUsage(ctx, st, name)
				if runs, err = st.Runs(ctx, name, limit); err != nil {
					return exitWith(exitInvalid, fmt.Errorf("read history: %w", err))
				}
				if agentEvents, err = agentStateDocs(ctx, st, name, limit); err != nil {
					return exitWith(exitInvalid, fmt.Errorf("read history: %w", err))
				}
				if recoveryEvents, err = recoveryDocs(ctx, st, name, limit); err != nil {
					return exitWith(exitInvalid, fmt.Errorf("read history: %w", err))
				}
				if idleEvents, err = eventDocs(ctx, st, name, limit, store.EventIdleStop, store.EventIdleExec, store.EventIdleWake); err != nil {
					return exitWith(exitInvalid, fmt.Errorf("read history: %w", err))
				}
			}
			docs := historyDocs(runs)
			if out.format != "table" {
				return writeStructured(a.stdout, out.format, map[string]any{"apiVersion": "jackin.dev/v1alpha1", "kind": "History", "runs": docs, "agentStates": agentEvents, "recovery": recoveryEvents, "idle": idleEvents})
			}
			if len(idleEvents) > 0 {
				fmt.Fprintln(a.stdout, "Idle cleanup (newest first):")
				for _, e := range idleEvents {
					fmt.Fprintf(a.stdout, "    %s  %-20s %-9s %s\n", e.At.Local().Format("2006-01-02 15:04:05"), e.Fleet+"/"+e.Instance, e.Kind, e.Message)
				}
				fmt.Fprintln(a.stdout)
			}
			if len(recoveryEvents) > 0 {
				fmt.Fprintln(a.stdout, "Snapshots and restores (newest first):")
				for _, e := range recoveryEvents {
					fmt.Fprintf(a.stdout, "    %s  %-20s %s\n", e.At.Local().Format("2006-01-02 15:04:05"), e.Fleet+"/"+e.Instance, e.Message)
				}
				fmt.Fprintln(a.stdout)
			}
			if len(agentEvents) > 0 {
				fmt.Fprintln(a.stdout, "Agent states (newest first):")
				for _, e := range agentEvents {
					fmt.Fprintf(a.stdout, "    %s  %-20s %s\n", e.At.Local().Format("2006-01-02 15:04:05"), e.Fleet+"/"+e.Instance, e.Message)
				}
				fmt.Fprintln(a.stdout)
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

// agentStateDoc is one recorded agent state change.
type agentStateDoc struct {
	Fleet    string          `json:"fleet"`
	Instance string          `json:"instance"`
	At       time.Time       `json:"at"`
	Message  string          `json:"message"`
	State    json.RawMessage `json:"state"`
}

// recordAgentStates records what the agents of fleet (every fleet when
// "") published since last time.
func (a *app) recordAgentStates(ctx context.Context, st *store.Store, fleet string) error {
	env := pipeline.Env{StateDir: a.global.stateDir, Store: st, Log: a.log}
	if fleet != "" {
		_, err := env.RecordAgentStates(ctx, fleet)
		return err
	}
	ents, err := os.ReadDir(filepath.Join(a.global.stateDir, "agents"))
	if err != nil {
		return nil
	}
	var errs []error
	for _, e := range ents {
		if e.IsDir() {
			_, err := env.RecordAgentStates(ctx, e.Name())
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// agentStateDocs are the newest agent state changes of fleet.
func agentStateDocs(ctx context.Context, st *store.Store, fleet string, limit int) ([]agentStateDoc, error) {
	evs, err := st.Events(ctx, fleet, 10*limit)
	if err != nil {
		return nil, err
	}
	out := []agentStateDoc{}
	for _, e := range evs {
		if e.Kind != store.EventAgentState {
			continue
		}
		out = append(out, agentStateDoc{Fleet: e.Fleet, Instance: e.Instance, At: e.At, Message: e.Message, State: e.Data})
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

// recoveryDoc is one recorded snapshot or restore.
type recoveryDoc struct {
	Fleet    string          `json:"fleet"`
	Instance string          `json:"instance"`
	Kind     string          `json:"kind"` // snapshot | restore
	At       time.Time       `json:"at"`
	Message  string          `json:"message"`
	Data     json.RawMessage `json:"data"`
}

// recoveryDocs are the newest snapshots and restores of fleet.
func recoveryDocs(ctx context.Context, st *store.Store, fleet string, limit int) ([]recoveryDoc, error) {
	evs, err := st.Events(ctx, fleet, 10*limit)
	if err != nil {
		return nil, err
	}
	out := []recoveryDoc{}
	for _, e := range evs {
		if e.Kind != pipeline.EventSnapshot && e.Kind != pipeline.EventRestore {
			continue
		}
		out = append(out, recoveryDoc{Fleet: e.Fleet, Instance: e.Instance, Kind: e.Kind, At: e.At, Message: e.Message, Data: e.Data})
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

// eventDocs are the newest events of fleet of the given kinds (idle
// cleanup's: idle-stop, idle-exec, idle-wake).
func eventDocs(ctx context.Context, st *store.Store, fleet string, limit int, kinds ...string) ([]recoveryDoc, error) {
	evs, err := st.Events(ctx, fleet, 10*limit)
	if err != nil {
		return nil, err
	}
	out := []recoveryDoc{}
	for _, e := range evs {
		if !slices.Contains(kinds, e.Kind) {
			continue
		}
		out = append(out, recoveryDoc{Fleet: e.Fleet, Instance: e.Instance, Kind: e.Kind, At: e.At, Message: e.Message, Data: e.Data})
		if len(out) == limit {
			break
		}
	}
	return out, nil
}
