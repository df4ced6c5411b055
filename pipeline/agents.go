package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/supervisor"
)

// RecordAgentStates records in the store, as events, the agent state
// changes the fleet's supervisors published since the last time (each
// once, by supervisor run and change counter), so history shows them
// after the instance and its agent directory are gone. It returns how
// many were new.
func (e Env) RecordAgentStates(ctx context.Context, fleet string) (int, error) {
	if e.Store == nil {
		return 0, nil
	}
	root := filepath.Dir(supervisor.HostDir(e.StateDir, fleet, "x"))
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	total := 0
	var errs []error
	for _, ent := range ents {
		if !ent.IsDir() || strings.HasPrefix(ent.Name(), ".") {
			continue // .removed-*: a deleted instance's leftovers
		}
		published, err := supervisor.ReadEvents(filepath.Join(root, ent.Name()))
		if err != nil {
			errs = append(errs, err)
		}
		states := make([]store.AgentState, 0, len(published))
		for _, st := range published {
			states = append(states, store.AgentState{Boot: st.Boot, Seq: st.Seq, State: st.State, Detail: st.Detail, ExitStatus: st.ExitStatus, At: st.Since})
		}
		n, err := e.Store.RecordAgentStates(ctx, fleet, ent.Name(), states)
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}
