// Package supervisor is the in-container side of an agent: what runs as
// PID 1 of the agent container (the static jackin binary). This file is its
// state machine: one state per agent, derived from the runtime's documented
// hook events first and from terminal activity when a runtime has no hooks.
package agentstate

import (
	"time"
)

// State is what an agent is doing, as the operator sees it.
type State string

// The states of an agent.
const (
	StateStarting State = "starting" // the runtime is starting
	StateIdle     State = "idle"     // waiting for a prompt
	StateWorking  State = "working"  // on a turn
	StateBlocked  State = "blocked"  // waiting for a permission or an answer
	StateDone     State = "done"     // finished a turn the operator has not looked at since
	StateExited   State = "exited"   // the runtime exited (with Status)
	StateUnknown  State = "unknown"  // nothing is known yet
)

// EventKind is what happened, in the runtime-neutral words the adapters
// translate their hooks into.
type EventKind string

// The events a runtime adapter reports.
const (
	EventSessionStart EventKind = "session-start" // Claude SessionStart
	EventPrompt       EventKind = "prompt"        // a prompt was submitted (Claude UserPromptSubmit)
	EventTool         EventKind = "tool"          // a tool ran or is about to (Pre/PostToolUse)
	EventPermission   EventKind = "permission"    // the runtime asks for a permission (Notification permission_prompt)
	EventIdlePrompt   EventKind = "idle-prompt"   // the runtime waits for input (Notification idle_prompt)
	EventTurnEnd      EventKind = "turn-end"      // a turn ended (Claude Stop)
	EventSubagentEnd  EventKind = "subagent-end"  // a subagent's turn ended (Claude SubagentStop)
	EventSessionEnd   EventKind = "session-end"   // the session ended (Claude SessionEnd)
	EventOutput       EventKind = "output"        // the terminal printed (runtimes without hooks)
	EventQuiet        EventKind = "quiet"         // the terminal has been quiet for a while (idem)
	EventSeen         EventKind = "seen"          // the operator attached or looked
	EventExit         EventKind = "exit"          // the runtime's process exited (Status set)
)

// Event is one thing an adapter or the supervisor observed.
type Event struct {
	Kind EventKind
	Time time.Time
	// Detail is a short, secret-free description (the tool a permission
	// is for); Status the exit status of EventExit.
	Detail string
	Status int
}

// Snapshot is the machine's current state.
type Snapshot struct {
	State  State
	Since  time.Time
	Detail string
	Status int // exit status when State is exited
}

// Machine derives an agent's state from its events. It is not safe for
// concurrent use: the supervisor feeds it from one goroutine.
type Machine struct {
	cur Snapshot
	// turn counts prompts: an event of a turn that already ended (a late
	// PostToolUse or SubagentStop arriving after Stop) does not reopen it.
	turn      int
	endedTurn int
	hooks     bool // the runtime reports hooks: terminal activity is ignored
	// outputOpensTurns: the runtime's hooks report only the end of a turn
	// (Codex's notify), so terminal activity after a turn opens the next.
	outputOpensTurns bool
	// turnEndedAt is when the runtime last reported a turn's end.
	turnEndedAt time.Time
}

// trailingOutput is how long after a runtime reports a turn's end its
// terminal output is still that turn's (the CLI finishes printing while
// its notify program runs), not the start of the next.
const trailingOutput = 500 * time.Millisecond

// OpenTurnsOnOutput is for a runtime whose hooks report only the end of a
// turn: terminal activity while idle or done opens a turn, which the
// runtime's turn-end closes.
func (m *Machine) OpenTurnsOnOutput() { m.outputOpensTurns = true }

// NewMachine starts in starting.
func NewMachine(at time.Time) *Machine {
	return &Machine{cur: Snapshot{State: StateStarting, Since: at}}
}

// State is the current snapshot.
func (m *Machine) State() Snapshot { return m.cur }

// Apply feeds one event and returns the state after it.
func (m *Machine) Apply(ev Event) Snapshot {
	if m.cur.State == StateExited {
		return m.cur // nothing comes back from an exit but a new machine
	}
	switch ev.Kind {
	case EventExit:
		m.set(StateExited, ev.Time, "")
		m.cur.Status = ev.Status
	case EventSessionStart:
		m.hooks = true
		m.set(StateIdle, ev.Time, "")
	case EventPrompt:
		m.hooks = true
		m.turn++
		m.set(StateWorking, ev.Time, "")
	case EventTool:
		m.hooks = true
		if m.turnOpen() {
			m.set(StateWorking, ev.Time, "")
		}
	case EventPermission:
		m.hooks = true
		if m.turnOpen() || m.turn == 0 {
			m.set(StateBlocked, ev.Time, ev.Detail)
		}
	case EventIdlePrompt:
		m.hooks = true
		// Waiting for input after a turn the operator has not seen is
		// still "done"; otherwise it is idle.
		if m.cur.State != StateDone {
			m.set(StateIdle, ev.Time, "")
		}
	case EventTurnEnd:
		m.hooks = true
		if m.turnOpen() || m.outputOpensTurns {
			m.endedTurn = m.turn
			m.turnEndedAt = ev.Time
			m.set(StateDone, ev.Time, "")
		}
	case EventSubagentEnd:
		m.hooks = true // the main turn goes on: no change
	case EventSessionEnd:
		m.hooks = true
		m.set(StateIdle, ev.Time, "")
	case EventSeen:
		if m.cur.State == StateDone {
			m.set(StateIdle, ev.Time, "")
		}
	case EventOutput:
		switch {
		case m.outputOpensTurns:
			trailing := !m.turnEndedAt.IsZero() && ev.Time.Sub(m.turnEndedAt) < trailingOutput
			if !m.turnOpen() && m.cur.State != StateBlocked && !trailing {
				m.turn++
				m.set(StateWorking, ev.Time, "")
			}
		case !m.hooks && m.cur.State != StateWorking:
			m.set(StateWorking, ev.Time, "")
		}
	case EventQuiet:
		switch {
		case m.outputOpensTurns:
			// A turn opened by output that falls silent without the
			// runtime's turn-end was a redraw, not a turn: idle. (A real
			// turn keeps its spinner going.)
			if m.cur.State == StateWorking || m.cur.State == StateStarting {
				m.endedTurn = m.turn
				m.set(StateIdle, ev.Time, "")
			}
		case !m.hooks && (m.cur.State == StateWorking || m.cur.State == StateStarting):
			m.set(StateIdle, ev.Time, "")
		}
	}
	return m.cur
}

// turnOpen reports whether a prompt started a turn that has not ended.
func (m *Machine) turnOpen() bool { return m.turn > m.endedTurn }

func (m *Machine) set(s State, at time.Time, detail string) {
	if m.cur.State == s && m.cur.Detail == detail {
		return // the same state keeps its since
	}
	m.cur = Snapshot{State: s, Since: at, Detail: detail}
}
