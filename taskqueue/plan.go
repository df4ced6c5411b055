package taskqueue

import (
	"fmt"
	"sort"
	"time"
)

// DefaultMaxAttempts is the attempts a task gets when Limits.MaxAttempts is
// 0: a task requeued twice fails on its third loss.
const DefaultMaxAttempts = 3

// DefaultDispatchTimeout is Limits.DispatchTimeout when it is 0: long
// enough for an idle-stopped agent to start and a runtime to take the
// prompt, short enough that a prompt lost on the way is retried.
const DefaultDispatchTimeout = 5 * time.Minute

// The agent states (agentstate's values) the dispatcher reads.
const (
	agentIdle    = "idle"
	agentDone    = "done"
	agentWorking = "working"
	agentBlocked = "blocked"
	agentExited  = "exited"
)

// waiting reports whether an agent in state s waits for a prompt. "done"
// (a finished turn nobody looked at) counts: an agent of the queue ends
// every task in done, and the queue would stall if it waited for the
// operator to look; the finished turn's task was moved on first.
func waiting(s string) bool { return s == agentIdle || s == agentDone }

// busy reports whether an agent in state s is on a turn.
func busy(s string) bool { return s == agentWorking || s == agentBlocked }

// plan is Plan's body. The pass has two steps:
//
//  1. Every dispatched or working task follows its agent (the instance
//     it went to, checked by container ID and supervisor boot):
//     dispatched→working when the agent is working or blocked since the
//     dispatch; dispatched or working→done (needs-review under the gate)
//     when the agent waits again after a turn; →queued with one attempt
//     more (→failed when that reaches MaxAttempts) when the agent exited,
//     is gone (deleted, or no longer of the queue), was recreated (another
//     container) or restarted (another boot), or never started within
//     DispatchTimeout.
//  2. Unless Paused, queued tasks (highest Priority, then oldest
//     CreatedAt, then ID) go to free agents while fewer than MaxParallel
//     tasks are dispatched or working: first agents waiting for a prompt
//     (longest waiting first, then by name), then idle-stopped ones (by
//     name, with Start). A free agent is Present and holds no task that is
//     dispatched, working or needs-review (the operator reviews its work
//     before it takes another). An agent freed by step 1 is used in the
//     same pass, so a caller that fails to apply a decision must stop and
//     plan again rather than apply the dispatches after it.
//
// A task moves at most once per pass (a requeued task waits for the next).
func plan(tasks []Task, agents []Agent, lim Limits, now time.Time) []Decision {
	maxAttempts := lim.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = DefaultMaxAttempts
	}
	timeout := lim.DispatchTimeout
	if timeout <= 0 {
		timeout = DefaultDispatchTimeout
	}
	byName := make(map[string]Agent, len(agents))
	for _, a := range agents {
		if _, dup := byName[a.Instance]; !dup {
			byName[a.Instance] = a
		}
	}

	var out []Decision
	held := map[string]bool{} // instances holding a task after step 1
	inFlight := 0
	var queued []*Task

	// Step 1, in task order so the decisions are deterministic.
	order := make([]*Task, 0, len(tasks))
	for i := range tasks {
		order = append(order, &tasks[i])
	}
	sort.Slice(order, func(i, j int) bool { return before(order[i], order[j]) })
	for _, t := range order {
		switch t.State {
		case StateQueued:
			queued = append(queued, t)
			continue
		case StateNeedsReview:
			held[t.Instance] = true
			continue
		case StateDispatched, StateWorking:
		default:
			continue
		}
		d, moved := follow(t, byName, lim.ReviewBeforeDone, maxAttempts, timeout, now)
		if !moved {
			held[t.Instance] = true
			inFlight++
			continue
		}
		out = append(out, d)
		switch d.To {
		case StateDispatched, StateWorking:
			held[t.Instance] = true
			inFlight++
		case StateNeedsReview:
			held[t.Instance] = true
		}
	}

	// Step 2.
	if lim.Paused || len(queued) == 0 {
		return out
	}
	var running, stopped []Agent
	for _, name := range sortedNames(byName) {
		a := byName[name]
		if !a.Present || held[a.Instance] {
			continue
		}
		switch {
		case a.IdleStopped:
			stopped = append(stopped, a)
		case waiting(a.State):
			running = append(running, a)
		}
	}
	sort.SliceStable(running, func(i, j int) bool { return running[i].StateSince.Before(running[j].StateSince) })
	free := append(running, stopped...)
	for i, t := range queued {
		if i >= len(free) || (lim.MaxParallel > 0 && inFlight >= lim.MaxParallel) {
			break
		}
		a := free[i]
		d := Decision{Task: t.ID, From: StateQueued, To: StateDispatched, Instance: a.Instance, Attempts: t.Attempts}
		if a.IdleStopped {
			d.Start = true
			d.Why = fmt.Sprintf("%s was stopped for idleness: start it for the task", a.Instance)
		} else {
			d.Why = fmt.Sprintf("%s is %s with no task", a.Instance, a.State)
		}
		out = append(out, d)
		inFlight++
	}
	return out
}

// follow decides where a dispatched or working task goes given its agent;
// moved is false when it stays.
func follow(t *Task, agents map[string]Agent, review bool, maxAttempts int, timeout time.Duration, now time.Time) (Decision, bool) {
	d := Decision{Task: t.ID, From: t.State, Instance: t.Instance, Attempts: t.Attempts}
	a, ok := agents[t.Instance]
	switch {
	case !ok || !a.Present:
		return requeue(d, t.Instance+" is gone (deleted or no longer of the queue)", maxAttempts), true
	case a.Container != t.Container:
		return requeue(d, t.Instance+" was recreated (another container) mid-task", maxAttempts), true
	case a.Boot != t.Boot:
		return requeue(d, t.Instance+" was restarted (another supervisor boot) mid-task", maxAttempts), true
	case a.State == agentExited:
		return requeue(d, t.Instance+"'s agent exited mid-task", maxAttempts), true
	}
	since := !a.StateSince.Before(t.DispatchedAt) // the agent's state began after the prompt went
	finished := func(why string) (Decision, bool) {
		d.To = StateDone
		if review {
			d.To = StateNeedsReview
			why += "; the gate holds it for review"
		}
		d.Why = why
		return d, true
	}
	if t.State == StateDispatched {
		switch {
		case busy(a.State) && since:
			d.To, d.Why = StateWorking, fmt.Sprintf("%s is %s on it", t.Instance, a.State)
			return d, true
		case a.State == agentDone && a.StateSince.After(t.DispatchedAt):
			// A turn shorter than the passes' interval: the agent went
			// working and finished between two looks.
			return finished(t.Instance + " finished a turn after the dispatch")
		case !now.Before(t.DispatchedAt.Add(timeout)):
			return requeue(d, fmt.Sprintf("%s did not start on it within %s", t.Instance, timeout), maxAttempts), true
		}
		return d, false
	}
	if waiting(a.State) {
		return finished(fmt.Sprintf("%s is %s again after working on it", t.Instance, a.State))
	}
	return d, false
}

// requeue sends a task back to the queue with one attempt more, or fails it
// when that makes MaxAttempts.
func requeue(d Decision, why string, maxAttempts int) Decision {
	d.Attempts++
	if d.Attempts >= maxAttempts {
		d.To = StateFailed
		d.Why = fmt.Sprintf("%s; attempt %d of %d: giving up", why, d.Attempts, maxAttempts)
		return d
	}
	d.To = StateQueued
	d.Why = fmt.Sprintf("%s; attempt %d of %d: back to the queue", why, d.Attempts, maxAttempts)
	return d
}

// before is the queue's order: higher Priority, older CreatedAt, then ID.
func before(a, b *Task) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return a.ID < b.ID
}

func sortedNames(m map[string]Agent) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
