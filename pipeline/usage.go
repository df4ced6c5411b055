package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackin-dev/jackin/supervisor"
)

// RecordUsage records in the store the token usage the fleet's
// supervisors published (usage.json in each agent directory), keeping
// per instance, session and model the largest figures seen, so the totals
// outlive the instance and its agent directory and a re-read counts
// nothing twice. It writes only what grew and returns how many rows did.
func (e Env) RecordUsage(ctx context.Context, fleet string) (int, error) {
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
	now := time.Now()
	for _, ent := range ents {
		if !ent.IsDir() || strings.HasPrefix(ent.Name(), ".") {
			continue // .removed-*: a deleted instance's leftovers
		}
		rep, err := supervisor.ReadUsage(filepath.Join(root, ent.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n, err := e.Store.RecordUsage(ctx, fleet, ent.Name(), rep.Entries, now)
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// RecordUsageLogged is RecordUsage for the callers that go on whatever
// happens (apply, delete and watch before they change the engine): its
// error is logged.
func (e Env) RecordUsageLogged(ctx context.Context, fleet string) {
	if _, err := e.RecordUsage(ctx, fleet); err != nil {
		e.Log.Error(err, "record the agents' token usage")
	}
}
