// Package idle decides idle cleanup: whether an instance's agent has sat
// idle (or done) long enough, with no task in flight and nobody attached,
// for the instance's idle action (stop, or a command run in the agent
// container) to run, once per idle period. It is a pure function of what
// the caller observed; pipeline runs it in jackin watch and carries the
// action out.
package idle

import (
	"fmt"
	"strings"
	"time"

	"github.com/jackin-dev/jackin/agentstate"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/taskqueue"
)

// Input is what is known of one instance at Now.
type Input struct {
	// Policy is the instance's idle cleanup; nil: none.
	Policy *schema.Idle
	// Running: the agent container runs.
	Running bool
	// State is the agent's state (agentstate values), Since when it
	// began, Boot the supervisor run that reported it.
	State string
	Since time.Time
	Boot  string
	// Clients is how many attach clients are connected now; ClientSeen
	// the last time one was seen (zero: never). Idle time counts from the
	// later of Since and ClientSeen: an operator who just detached is not
	// stopped on at once.
	Clients    int
	ClientSeen time.Time
	// Busy: a task of the queue is in flight on the instance (dispatched,
	// working or waiting for review).
	Busy bool
	// IdleStopped: idle cleanup already stopped the instance.
	IdleStopped bool
	// LastPeriod is the idle period the last idle action was for.
	LastPeriod string
	Now        time.Time
}

// Verdict is the decision for one instance.
type Verdict struct {
	// Act says to run Action now, for Period.
	Act    bool
	Action string
	// Period names the idle period (Boot and Since): one action each.
	Period string
	// IdleSince is when idle time started counting; Due when Act becomes
	// true if nothing changes (zero when it never will as things are).
	IdleSince time.Time
	Due       time.Time
	// Why says why (not), in words for logs and the store.
	Why string
}

// Period names an idle period: the supervisor run and the time the agent
// became idle or done. A turn of work in between starts a new one.
func Period(boot string, since time.Time) string {
	return boot + "@" + since.UTC().Format(time.RFC3339Nano)
}

// Decide says whether in's idle action runs now.
func Decide(in Input) Verdict {
	v := Verdict{}
	if in.Policy == nil {
		v.Why = "no idle policy"
		return v
	}
	v.Action = in.Policy.Action
	switch {
	case in.IdleStopped:
		v.Why = "already idle-stopped"
		return v
	case !in.Running:
		v.Why = "the agent container is not running"
		return v
	case in.State != string(agentstate.StateIdle) && in.State != string(agentstate.StateDone):
		v.Why = "the agent is " + orUnknown(in.State)
		return v
	case in.Since.IsZero():
		v.Why = "the agent has not said since when it is " + in.State
		return v
	case in.Busy:
		v.Why = "a task of the queue is in flight on it"
		return v
	case in.Clients > 0:
		v.Why = fmt.Sprintf("%d client(s) attached", in.Clients)
		return v
	}
	v.Period = Period(in.Boot, in.Since)
	if in.LastPeriod == v.Period {
		v.Why = "its idle action already ran for this idle period"
		return v
	}
	v.IdleSince = in.Since
	if in.ClientSeen.After(v.IdleSince) {
		v.IdleSince = in.ClientSeen
	}
	v.Due = v.IdleSince.Add(in.Policy.After)
	idleFor := in.Now.Sub(v.IdleSince)
	if in.Now.Before(v.Due) {
		v.Why = fmt.Sprintf("agent %s for %s of %s", in.State, roundDur(idleFor), in.Policy.After)
		return v
	}
	v.Act = true
	v.Why = fmt.Sprintf("agent %s for %s (idle.after %s), no task in flight, no client attached", in.State, roundDur(idleFor), in.Policy.After)
	return v
}

// Busy returns the instances with a task in flight: one dispatched to
// them, worked on, or held for review. A queued task is no instance's
// (one requeued keeps the name of the instance it left), and a final one
// is over.
func Busy(tasks []taskqueue.Task) map[string]bool {
	out := map[string]bool{}
	for _, t := range tasks {
		if t.Instance == "" || t.State.Final() || t.State == taskqueue.StateQueued {
			continue
		}
		out[t.Instance] = true
	}
	return out
}

func roundDur(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

func orUnknown(s string) string {
	if strings.TrimSpace(s) == "" {
		return "in an unknown state"
	}
	return s
}
