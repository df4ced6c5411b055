// Package console is jackin's terminal UI: a live table of a fleet's
// instances (state, resources, tokens and cost, ports, egress denials,
// drift, description) with a detail pane for the selected one, over a
// Source the CLI implements with the same observation `jackin get` uses.
// It is read-mostly: attach, logs, explain and the manifest's own tools
// and handlers are its only actions; changing the fleet stays a reviewed
// manifest change.
package console

import (
	"context"
	"io"
	"os/exec"
	"time"

	"github.com/jackin-dev/jackin/telemetry"
)

// Source is what the console shows. Snapshot is called at start, after
// each change a Watcher reports and on the slow resync; Detail for the
// selected instance only, after a selection settles and after each
// snapshot. Both are called from a goroutine of their own, never two of
// the same kind at once.
type Source interface {
	Snapshot(ctx context.Context) (Snapshot, error)
	Detail(ctx context.Context, instance string) (Detail, error)
}

// Watcher is a Source that can say when something changed (an engine
// event, a state file an agent published): the console refreshes then,
// instead of polling. The channel is closed when ctx ends.
type Watcher interface {
	Watch(ctx context.Context) <-chan struct{}
}

// Attacher is a Source that can join the terminal to an instance's agent:
// the command runs in the foreground on the console's terminal while the
// console steps aside (jackin attach), and the console comes back when it
// ends (detach, or the agent's exit).
type Attacher interface {
	AttachCommand(instance string) (*exec.Cmd, error)
}

// LogFollower is a Source that can stream what an instance's agent
// printed, as plain text (escape sequences stripped): the last tail lines,
// then what it prints next, until ctx ends or the agent stops.
type LogFollower interface {
	FollowLogs(ctx context.Context, instance string, tail int) (io.ReadCloser, error)
}

// Explainer is a Source that can print an instance's session contract
// (jackin explain's text).
type Explainer interface {
	Explain(ctx context.Context, instance string) (string, error)
}

// Snapshot is the fleet at one moment.
type Snapshot struct {
	Fleet string
	// Origin says where the rows come from: "fleet.cue" (a manifest and
	// the engine) or "engine" (--fleet: no manifest, so no sync or
	// description).
	Origin string
	// Endpoint is the engine's address.
	Endpoint string
	Rows     []Row
	// Notes are problems that cost some columns (a store that could not
	// be read, a sampler that failed), shown in the header.
	Notes []string
	At    time.Time
	// Queue is the fleet's task queue; nil when it declares none.
	Queue *Queue
}

// Queue is the task queue at one moment.
type Queue struct {
	// Counts are the tasks by state (queued, dispatched, working,
	// needs-review, done, failed, cancelled).
	Counts map[string]int
	Paused bool
}

// QueueStates are the task states in the order the console lists them.
var QueueStates = []string{"queued", "dispatched", "working", "needs-review", "done", "failed", "cancelled"}

// Row is one instance.
type Row struct {
	Instance string
	Runtime  string
	// Observed is the container's state: running, stopped, missing,
	// orphan, oom-killed, crashloop, idle-stopped (stopped by idle
	// cleanup: in sync).
	Observed string
	// State is the agent's state (working, blocked, done, idle,
	// starting, exited, unknown); "" when no agent has run.
	State       string
	StateSince  time.Time
	StateDetail string
	ExitStatus  *int
	// Resources is nil when not sampled ("-").
	Resources *telemetry.Resources
	// Usage is nil when not known ("-"): one entry per model.
	Usage []telemetry.Usage
	// Ports are the published ports, "8080->80" or "127.0.0.1:8080->80/udp".
	Ports []string
	// Denied counts the egress proxy's denials in the last hour; nil when
	// not known (no store, no proxy).
	Denied *int
	// Sync is "in-sync" or "drift: ACTION"; "" when unknown (no manifest).
	Sync        string
	Description string
	// Task is the queue's task the agent holds ("" none): dispatched to
	// it, worked on, or waiting for review.
	Task *Task
	// Links are what the agent said it works on (the tag protocol), the
	// one to show first first: the newest pull request, else issue,
	// else repository.
	Links []Link
}

// Task is a queue task an agent holds.
type Task struct {
	ID, Title, State string
}

// Link is one of an instance's work links.
type Link struct {
	// Kind is repo, issue or pr.
	Kind string
	// Label is short (OWNER/REPO#N); URL is whole.
	Label, URL string
	// State is GitHub's, short ("open ci:passing rv:approved"); "" when
	// not known.
	State string
}

// Drift reports whether the row is out of sync with its manifest.
func (r Row) Drift() bool { return r.Sync != "" && r.Sync != "in-sync" }

// Running reports whether the instance's container runs.
func (r Row) Running() bool { return r.Observed == "running" }

// Detail is the selected instance's detail pane.
type Detail struct {
	Instance string
	// Contract are the contract's summary lines (jackin apply's compact
	// form).
	Contract []string
	// States are the last state changes, oldest first.
	States []StateChange
	// Egress are the last egress decisions, oldest first.
	Egress []EgressDecision
	// Logs are the last lines the agent printed, plain text.
	Logs []string
	// Problems say what could not be read (the pane shows the rest).
	Problems []string
}

// StateChange is one agent state change.
type StateChange struct {
	At     time.Time
	State  string
	Detail string
}

// EgressDecision is one connection the instance's egress proxy allowed or
// denied.
type EgressDecision struct {
	At          time.Time
	Allowed     bool
	Method      string
	Destination string
	Rule        string
}
