package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackin-dev/jackin/agentstate"
	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/store"
)

// observedIdleStopped is the observed state of an instance idle cleanup
// stopped: stopped on purpose, not drift.
const observedIdleStopped = "idle-stopped"

// idleInfo is idle cleanup's view of an instance in `jackin get -o json`.
type idleInfo struct {
	// After and Action are the instance's policy (absent: none).
	After  string `json:"after,omitempty"`
	Action string `json:"action,omitempty"`
	// IdleSince is when the agent became idle or done (running agents),
	// or the idle time that got it stopped (idle-stopped ones); IdleFor
	// is how long, in seconds, as of now.
	IdleSince time.Time `json:"idleSince,omitzero"`
	IdleFor   float64   `json:"idleForSeconds,omitempty"`
	// Stopped is set while the instance is idle-stopped: when, and why.
	Stopped *idleStopped `json:"stopped,omitempty"`
	// LastAction is the last idle action taken on it.
	LastAction *store.IdleAction `json:"lastAction,omitempty"`
}

type idleStopped struct {
	At  time.Time `json:"at"`
	Why string    `json:"why"`
}

// addIdle fills each row's idle cleanup view from the manifest, the agent
// state and the store, and shows an idle-stopped instance as such.
func addIdle(ctx context.Context, st *store.Store, res *pipeline.Result, items []instanceStatus, now time.Time) error {
	var marks map[string]store.IdleStop
	var acts map[string]store.IdleAction
	if st != nil {
		var err error
		if marks, err = st.IdleStopped(ctx, res.Fleet.Name); err != nil {
			return err
		}
		if acts, err = st.IdleActions(ctx, res.Fleet.Name); err != nil {
			return err
		}
	}
	for i := range items {
		it := &items[i]
		info := &idleInfo{}
		if inst, ok := res.Fleet.Instances[it.Instance]; ok && inst.Idle != nil {
			info.After, info.Action = inst.Idle.After.String(), inst.Idle.Action
		}
		if a, ok := acts[it.Instance]; ok {
			info.LastAction = &a
		}
		if m, ok := marks[it.Instance]; ok && it.Observed != "running" && it.Observed != "missing" {
			it.Observed = observedIdleStopped
			info.Stopped = &idleStopped{At: m.At, Why: m.Why}
			info.IdleSince = m.IdleSince
		} else if ag := it.Agent; ag != nil && it.Observed == "running" && !ag.Since.IsZero() &&
			(ag.State == string(agentstate.StateIdle) || ag.State == string(agentstate.StateDone)) {
			info.IdleSince = ag.Since
		}
		if !info.IdleSince.IsZero() {
			info.IdleFor = now.Sub(info.IdleSince).Round(time.Second).Seconds()
		}
		if info.After == "" && info.LastAction == nil && info.Stopped == nil {
			continue
		}
		it.Idle = info
	}
	return nil
}

// idleCell is the IDLE column of get -o wide: how long the agent has
// been idle against its idle.after, or what idle cleanup did last.
func idleCell(it instanceStatus, now time.Time) string {
	in := it.Idle
	switch {
	case in == nil:
		return "-"
	case in.Stopped != nil:
		return fmt.Sprintf("stopped %s ago", humanAge(now.Sub(in.Stopped.At)))
	case !in.IdleSince.IsZero() && in.After != "":
		cell := fmt.Sprintf("%s/%s %s", humanAge(now.Sub(in.IdleSince)), in.After, in.Action)
		if a := in.LastAction; a != nil && a.Action == "exec" && a.IdleSince.Equal(in.IdleSince) {
			cell += " " + execResult(a)
		}
		return cell
	case in.LastAction != nil:
		return fmt.Sprintf("%s %s ago", lastActionText(in.LastAction), humanAge(now.Sub(in.LastAction.At)))
	case in.After != "":
		return "after " + in.After + " " + in.Action
	}
	return "-"
}

func lastActionText(a *store.IdleAction) string {
	if a.Action == "exec" {
		return "exec " + execResult(a)
	}
	if a.Error != "" {
		return "stop failed"
	}
	return "stopped"
}

func execResult(a *store.IdleAction) string {
	if a.ExitStatus == nil {
		return "(failed)"
	}
	return fmt.Sprintf("(exit %d)", *a.ExitStatus)
}

// addIdleColumn appends the IDLE column to get's wide table.
func addIdleColumn(t *table, items []instanceStatus, now time.Time) {
	if len(t.rows) != len(items)+1 {
		return
	}
	t.rows[0] = append(t.rows[0], "IDLE")
	for i, it := range items {
		t.rows[i+1] = append(t.rows[i+1], idleCell(it, now))
	}
}
