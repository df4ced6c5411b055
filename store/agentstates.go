package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// EventAgentState is the event kind of an agent's state change.
const EventAgentState = "agent-state"

// AgentState is one state change an agent's supervisor published.
type AgentState struct {
	Boot       string    `json:"boot"`
	Seq        int64     `json:"seq"`
	State      string    `json:"state"`
	Detail     string    `json:"detail,omitempty"`
	ExitStatus int       `json:"exitStatus,omitempty"`
	At         time.Time `json:"-"`
}

// RecordAgentStates records the state changes not recorded before (by
// boot and seq) as events of kind EventAgentState, in one transaction,
// and returns how many were new.
func (s *Store) RecordAgentStates(ctx context.Context, fleet, instance string, states []AgentState) (int, error) {
	if len(states) == 0 {
		return 0, nil
	}
	n := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		n = 0
		for _, st := range states {
			res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO agent_states_seen(fleet, instance, boot, seq) VALUES(?,?,?,?)`, fleet, instance, st.Boot, st.Seq)
			if err != nil {
				return fmt.Errorf("record agent state: %w", err)
			}
			if k, _ := res.RowsAffected(); k == 0 {
				continue
			}
			msg := "agent " + st.State
			if st.Detail != "" {
				msg += " (" + st.Detail + ")"
			}
			if st.State == "exited" {
				msg += fmt.Sprintf(" with status %d", st.ExitStatus)
			}
			data, _ := json.Marshal(st)
			if _, err := tx.ExecContext(ctx, `INSERT INTO events(fleet, instance, kind, message, at, data) VALUES(?,?,?,?,?,?)`,
				fleet, instance, EventAgentState, msg, st.At.UnixNano(), string(data)); err != nil {
				return fmt.Errorf("record agent state: %w", err)
			}
			n++
		}
		return nil
	})
	return n, err
}
