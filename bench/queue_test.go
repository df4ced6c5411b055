package bench

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/taskqueue"
)

// BenchmarkQueueDispatchPass is the dispatcher's pass (taskqueue.Plan)
// over 1,000 queued tasks, 1,000 finished ones and 20 instances: 10 idle
// or done, 5 working on a task, 5 with a task dispatched, so the pass
// follows 10 tasks and dispatches 10. Target: under 10 ms.
func BenchmarkQueueDispatchPass(b *testing.B) {
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	var tasks []taskqueue.Task
	for i := range 1000 {
		tasks = append(tasks, taskqueue.Task{ID: fmt.Sprintf("dir:task-%04d", i), Title: "a task", Prompt: "do it", Priority: i % 5,
			State: taskqueue.StateQueued, CreatedAt: t0.Add(time.Duration(i) * time.Second), Labels: []string{"bench"}})
		tasks = append(tasks, taskqueue.Task{ID: fmt.Sprintf("dir:old-%04d", i), State: taskqueue.StateDone, Instance: fmt.Sprintf("a%02d", i%20),
			CreatedAt: t0.Add(-time.Hour)})
	}
	var agents []taskqueue.Agent
	for i := range 20 {
		inst := fmt.Sprintf("a%02d", i)
		a := taskqueue.Agent{Instance: inst, Present: true, Container: "c-" + inst, Boot: "b-" + inst, State: "idle", StateSince: t0.Add(time.Duration(i) * time.Minute)}
		switch {
		case i < 5:
			a.State = "working"
			tasks = append(tasks, taskqueue.Task{ID: "dir:busy-" + inst, State: taskqueue.StateWorking, Instance: inst, Container: a.Container, Boot: a.Boot,
				CreatedAt: t0, DispatchedAt: t0})
		case i < 10:
			tasks = append(tasks, taskqueue.Task{ID: "dir:sent-" + inst, State: taskqueue.StateDispatched, Instance: inst, Container: a.Container, Boot: a.Boot,
				CreatedAt: t0, DispatchedAt: t0.Add(2 * time.Hour)})
			a.StateSince = t0.Add(3 * time.Hour)
			a.State = "working"
		case i%2 == 0:
			a.State = "done"
		}
		agents = append(agents, a)
	}
	lim := taskqueue.Limits{MaxParallel: 20}
	now := t0.Add(4 * time.Hour)
	const passes = 200
	b.ReportAllocs()
	b.ResetTimer()
	var all []time.Duration
	for i := 0; i < b.N; i++ {
		for range passes {
			start := time.Now()
			ds := taskqueue.Plan(tasks, agents, lim, now)
			all = append(all, time.Since(start))
			if len(ds) != 15 { // 5 dispatched -> working, 10 dispatches
				b.Fatalf("%d decisions, want 15", len(ds))
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	p50, p95 := all[len(all)/2], all[len(all)*95/100]
	b.ReportMetric(float64(p50.Microseconds()), "pass-p50-us")
	b.ReportMetric(float64(p95.Microseconds()), "pass-p95-us")
	b.Logf("dispatcher pass, 1000 queued tasks over 20 instances: p50 %v, p95 %v over %d passes (target < 10ms)", p50, p95, len(all))
}
