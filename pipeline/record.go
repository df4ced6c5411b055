package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-logr/logr"

	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/store"
)

// NewRecorder is a reconciler.Recorder that records each finished action of
// run runID in the store and keeps last-applied specs (delete uses it
// beside Apply).
func NewRecorder(st *store.Store, fleet string, runID int64, log logr.Logger) reconciler.Recorder {
	return &storeRecorder{st: st, fleet: fleet, runID: runID, log: log}
}

// storeRecorder records each finished action and keeps last-applied specs.
type storeRecorder struct {
	st    *store.Store
	fleet string
	runID int64
	log   logr.Logger
}

// ActionFinished is called by the executor for every action it ran. Store
// writes ignore cancellation: an interrupted apply still records what it did.
func (r *storeRecorder) ActionFinished(ctx context.Context, res reconciler.ActionResult) {
	ctx = context.WithoutCancel(ctx)
	errText := ""
	if res.Err != nil {
		errText = res.Err.Error()
	}
	if err := r.st.RecordAction(ctx, r.runID, store.ActionRecord{
		Instance: res.Action.Instance, Action: string(res.Action.Type), Reasons: res.Action.Reasons,
		Outcome: res.Outcome, Error: errText, Duration: res.Duration, At: time.Now(),
	}); err != nil {
		r.log.Error(err, "record action", "instance", res.Action.Instance)
	}
	if res.Outcome != reconciler.OutcomeSucceeded {
		return
	}
	if res.Action.Type != reconciler.ActionNoop {
		// A create, recreate or start ran the instance again; a stop or
		// delete is the manifest's: either way idle cleanup no longer
		// holds it.
		if _, err := r.st.ClearIdleStopped(ctx, r.fleet, res.Action.Instance, string(res.Action.Type)+" succeeded"); err != nil {
			r.log.Error(err, "clear the idle-stopped mark", "instance", res.Action.Instance)
		}
	}
	switch res.Action.Type {
	case reconciler.ActionCreate, reconciler.ActionRecreate:
		r.setLastApplied(ctx, res.Action.Desired)
	case reconciler.ActionDelete:
		if err := r.st.DeleteLastApplied(ctx, r.fleet, res.Action.Instance); err != nil {
			r.log.Error(err, "forget last-applied spec", "instance", res.Action.Instance)
		}
	}
}

// backfillNoops records the spec of converged instances the store does not
// know (a fresh state dir), so later recreates can name the changed fields.
func (r *storeRecorder) backfillNoops(ctx context.Context, res *Result) {
	for _, act := range res.Plan.Actions {
		if act.Desired == nil || act.Type == reconciler.ActionCreate || act.Type == reconciler.ActionRecreate {
			continue
		}
		if _, ok := res.Last[act.Instance]; !ok {
			r.setLastApplied(ctx, act.Desired)
		}
	}
}

func (r *storeRecorder) setLastApplied(ctx context.Context, d *reconciler.DesiredInstance) {
	if d == nil {
		return
	}
	spec, err := json.Marshal(d.Spec)
	if err == nil {
		err = r.st.SetLastApplied(ctx, r.fleet, d.Name, d.Hash, spec)
	}
	if err != nil {
		r.log.Error(err, "record last-applied spec", "instance", d.Name)
	}
}

// Summary counts outcomes.
type Summary struct {
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Skipped   int `json:"skipped"`
}

func (s Summary) String() string {
	return fmt.Sprintf("%d succeeded, %d failed, %d skipped", s.Succeeded, s.Failed, s.Skipped)
}

// Summarize counts the outcomes of results.
func Summarize(results []reconciler.ActionResult) Summary {
	var s Summary
	for _, r := range results {
		switch r.Outcome {
		case reconciler.OutcomeSucceeded:
			s.Succeeded++
		case reconciler.OutcomeFailed:
			s.Failed++
		default:
			s.Skipped++
		}
	}
	return s
}

// NewPassRecorder records one watch heal as a run (begun as runID) whose
// summary names its triggers.
func NewPassRecorder(st *store.Store, fleet string, runID int64, triggers string, log logr.Logger) reconciler.PassRecorder {
	return &passRecorder{storeRecorder: storeRecorder{st: st, fleet: fleet, runID: runID, log: log}, triggers: triggers}
}

// passRecorder records one heal as a run of verb "watch".
type passRecorder struct {
	storeRecorder
	triggers string
}

func (p *passRecorder) Finish(ctx context.Context, results []reconciler.ActionResult) {
	sum := Summarize(results)
	outcome := store.OutcomeSucceeded
	switch {
	case sum.Failed > 0:
		outcome = store.OutcomeFailed
	case sum.Skipped > 0:
		outcome = store.OutcomeInterrupted
	}
	if err := p.st.FinishRun(ctx, p.runID, outcome, sum.String()+"; trigger: "+p.triggers); err != nil {
		p.log.Error(err, "record watch pass outcome")
	}
}
