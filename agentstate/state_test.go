package agentstate

import (
	"testing"
	"time"
)

func run(events ...EventKind) []State {
	t0 := time.Unix(0, 0)
	m := NewMachine(t0)
	var out []State
	for i, k := range events {
		out = append(out, m.Apply(Event{Kind: k, Time: t0.Add(time.Duration(i+1) * time.Second), Detail: "Bash"}).State)
	}
	return out
}

func TestClaudeHookSequences(t *testing.T) {
	cases := []struct {
		name   string
		events []EventKind
		want   []State
	}{
		{"a turn", []EventKind{EventSessionStart, EventPrompt, EventTool, EventTool, EventTurnEnd},
			[]State{StateIdle, StateWorking, StateWorking, StateWorking, StateDone}},
		{"a permission in a turn, then answered", []EventKind{EventSessionStart, EventPrompt, EventPermission, EventTool, EventTurnEnd},
			[]State{StateIdle, StateWorking, StateBlocked, StateWorking, StateDone}},
		// Claude's Stop can arrive before the last subagent and tool hooks:
		// the turn stays ended.
		{"out-of-order Stop", []EventKind{EventSessionStart, EventPrompt, EventTool, EventTurnEnd, EventTool, EventSubagentEnd},
			[]State{StateIdle, StateWorking, StateWorking, StateDone, StateDone, StateDone}},
		{"done until seen, then idle", []EventKind{EventPrompt, EventTurnEnd, EventIdlePrompt, EventSeen},
			[]State{StateWorking, StateDone, StateDone, StateIdle}},
		{"a new prompt reopens", []EventKind{EventPrompt, EventTurnEnd, EventPrompt, EventTool},
			[]State{StateWorking, StateDone, StateWorking, StateWorking}},
		{"exit is final", []EventKind{EventPrompt, EventExit, EventPrompt},
			[]State{StateWorking, StateExited, StateExited}},
	}
	for _, c := range cases {
		got := run(c.events...)
		for i := range c.want {
			if got[i] != c.want[i] {
				t.Errorf("%s: after %v: %v, want %v", c.name, c.events[:i+1], got, c.want)
				break
			}
		}
	}
}

func TestTerminalActivityOnlyWithoutHooks(t *testing.T) {
	if got := run(EventOutput, EventQuiet, EventOutput); got[0] != StateWorking || got[1] != StateIdle || got[2] != StateWorking {
		t.Fatalf("a runtime without hooks: %v", got)
	}
	// Once hooks are heard, terminal activity no longer moves the state.
	if got := run(EventSessionStart, EventOutput, EventQuiet); got[1] != StateIdle || got[2] != StateIdle {
		t.Fatalf("a runtime with hooks: %v", got)
	}
}

func TestSinceAndDetail(t *testing.T) {
	t0 := time.Unix(100, 0)
	m := NewMachine(t0)
	m.Apply(Event{Kind: EventPrompt, Time: t0.Add(time.Second)})
	m.Apply(Event{Kind: EventTool, Time: t0.Add(2 * time.Second)})
	if s := m.State(); s.Since != t0.Add(time.Second) {
		t.Fatalf("a tool in a working turn moved since: %+v", s)
	}
	s := m.Apply(Event{Kind: EventPermission, Time: t0.Add(3 * time.Second), Detail: "Bash"})
	if s.State != StateBlocked || s.Detail != "Bash" {
		t.Fatalf("blocked: %+v", s)
	}
	s = m.Apply(Event{Kind: EventExit, Time: t0.Add(4 * time.Second), Status: 2})
	if s.State != StateExited || s.Status != 2 {
		t.Fatalf("exited: %+v", s)
	}
}

// Codex reports only finished turns (notify): terminal activity opens a
// turn, notify closes it, and the done state holds until seen.
func TestTurnEndOnlyRuntime(t *testing.T) {
	t0 := time.Unix(0, 0)
	m := NewMachine(t0)
	m.OpenTurnsOnOutput()
	seq := []struct {
		k    EventKind
		want State
	}{
		{EventQuiet, StateIdle},
		{EventOutput, StateWorking},
		{EventOutput, StateWorking},
		{EventTurnEnd, StateDone},
		{EventQuiet, StateDone},
		{EventSeen, StateIdle},
		{EventOutput, StateWorking},
		{EventTurnEnd, StateDone},
		{EventSeen, StateIdle},
		{EventOutput, StateWorking}, // a redraw...
		{EventQuiet, StateIdle},     // ...that fell silent
		{EventOutput, StateWorking},
		{EventQuiet, StateIdle},   // a silent stretch of a real turn...
		{EventTurnEnd, StateDone}, // ...still ends done
	}
	for i, s := range seq {
		if got := m.Apply(Event{Kind: s.k, Time: t0.Add(time.Duration(i) * time.Second)}).State; got != s.want {
			t.Fatalf("step %d (%s): %s, want %s", i, s.k, got, s.want)
		}
	}
}

// Output right after Codex's notify is the end of that turn's printing,
// not a new turn: done holds.
func TestTrailingOutputKeepsDone(t *testing.T) {
	t0 := time.Unix(0, 0)
	m := NewMachine(t0)
	m.OpenTurnsOnOutput()
	m.Apply(Event{Kind: EventOutput, Time: t0})
	m.Apply(Event{Kind: EventTurnEnd, Time: t0.Add(time.Second)})
	if got := m.Apply(Event{Kind: EventOutput, Time: t0.Add(time.Second + 2*time.Millisecond)}).State; got != StateDone {
		t.Fatalf("output 2ms after the turn's end: %s, want done", got)
	}
	if got := m.Apply(Event{Kind: EventOutput, Time: t0.Add(3 * time.Second)}).State; got != StateWorking {
		t.Fatalf("output 2s after the turn's end: %s, want working", got)
	}
}
