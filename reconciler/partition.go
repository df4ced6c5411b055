package reconciler

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// engineDown is a declared engine watch found unreachable: how many passes
// in a row, and when the next retry is due.
type engineDown struct {
	fails     int
	since     time.Time
	notBefore time.Time
	err       string
}

// partitionRetry is the delay before retry number n of an unreachable
// engine: 1s, doubling, at most max.
func partitionRetry(n int, max time.Duration) time.Duration {
	d := time.Second
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// notePartitions takes the plan's unreachable actions out (they are not
// changes to make: the instances are left as they are), reports each
// engine that stopped or started answering once, and sets every
// unreachable engine's next retry with backoff (scheduleWake wakes the loop
// for it). Called on every pass's plan, heal's included.
func (w *watcher) notePartitions(ctx context.Context, p *Plan, now time.Time) {
	if w.down == nil {
		w.down = map[string]*engineDown{}
	}
	cut := map[string][]string{} // engine -> instances
	why := map[string]string{}
	for i := range p.Actions {
		a := &p.Actions[i]
		if a.Type != ActionUnreachable {
			continue
		}
		cut[a.Engine] = append(cut[a.Engine], a.Instance)
		why[a.Engine] = errString(a.Err)
		a.Type, a.Err, a.Reasons = ActionNoop, nil, nil
	}
	for engine, e := range w.down {
		if _, still := cut[engine]; still {
			continue
		}
		delete(w.down, engine)
		ev := WatchEvent{Time: now, Type: EventRecovered,
			Message: fmt.Sprintf("engine %s answers again (unreachable for %s): its instances are reconciled", engine, now.Sub(e.since).Round(time.Second))}
		w.report(ev)
		w.record(ctx, ev)
	}
	engines := make([]string, 0, len(cut))
	for e := range cut {
		engines = append(engines, e)
	}
	sort.Strings(engines)
	for _, engine := range engines {
		e := w.down[engine]
		if e == nil {
			e = &engineDown{since: now}
			w.down[engine] = e
		}
		if now.Before(e.notBefore) {
			continue // a pass another trigger started: the retry stands
		}
		e.fails++
		delay := partitionRetry(e.fails, w.cfg.Resync)
		e.notBefore = now.Add(delay)
		if e.fails == 1 || e.err != why[engine] {
			e.err = why[engine]
			sort.Strings(cut[engine])
			ev := WatchEvent{Time: now, Type: EventError,
				Message: fmt.Sprintf("%s; instances %s left as they are; retrying with backoff (next in %s)", why[engine], strings.Join(cut[engine], ", "), delay)}
			w.report(ev)
			w.record(ctx, ev)
		}
	}
}

// nextPartitionRetry is the earliest retry due of an unreachable engine.
func (w *watcher) nextPartitionRetry() time.Time {
	var next time.Time
	for _, e := range w.down {
		if next.IsZero() || e.notBefore.Before(next) {
			next = e.notBefore
		}
	}
	return next
}
