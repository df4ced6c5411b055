// Package taskqueue is the fleet's task queue: tasks from sources (a
// directory of task files, GitHub issues, a command), their states and
// transitions, and the dispatcher, a pure function of the tasks, the
// agents' states and the queue's limits that says which task moves where.
// jackin watch runs it; jackin queue reads and changes the tasks.
package taskqueue

import "time"

// State is a task's place in the queue.
type State string

// The states of a task.
const (
	StateQueued      State = "queued"       // waiting for an idle agent
	StateDispatched  State = "dispatched"   // its prompt was typed into an agent, which has not started on it yet
	StateWorking     State = "working"      // the agent works on it
	StateNeedsReview State = "needs-review" // the agent finished; a gate holds it until the operator approves
	StateDone        State = "done"         // finished
	StateFailed      State = "failed"       // gave up after MaxAttempts (or a source said so)
	StateCancelled   State = "cancelled"    // the operator cancelled it
)

// Final reports whether a task in state s never moves again by itself.
func (s State) Final() bool {
	return s == StateDone || s == StateFailed || s == StateCancelled
}

// Task is one unit of work for an agent.
type Task struct {
	Fleet  string `json:"fleet"`
	ID     string `json:"id"`     // unique in the fleet: SOURCE:KEY (dir:fix-login, github:owner/repo#12, command:abc)
	Source string `json:"source"` // the source's name in the manifest
	Title  string `json:"title"`
	Prompt string `json:"prompt"`
	// Priority: higher first; ties by CreatedAt, then ID.
	Priority int      `json:"priority"`
	Labels   []string `json:"labels,omitempty"`
	State    State    `json:"state"`
	// Instance is the instance the task was last dispatched to, and
	// Container that instance's agent container ID then: a different ID
	// later means the agent was recreated under the task.
	Instance  string `json:"instance,omitempty"`
	Container string `json:"container,omitempty"`
	// Boot is the supervisor boot the prompt went to (a restarted agent
	// container has a new one).
	Boot     string   `json:"boot,omitempty"`
	Attempts int      `json:"attempts"`
	Links    []string `json:"links,omitempty"` // work links the agent reported while on the task
	// CreatedAt is when a source first yielded the task; UpdatedAt its
	// last transition.
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// DispatchedAt is when the prompt was typed (zero when never).
	DispatchedAt time.Time `json:"dispatchedAt,omitempty"`
}

// Agent is what the dispatcher knows about one instance of the queue.
type Agent struct {
	Instance string
	// Present: the instance exists in the manifest and on the engine.
	Present bool
	// Container is the agent container's ID; Boot the supervisor's boot.
	Container string
	Boot      string
	// State is the agent's live state (agentstate values: starting, idle,
	// working, blocked, done, exited, unknown); StateSince when it began.
	State      string
	StateSince time.Time
	// IdleStopped: the instance was stopped by idle cleanup and may be
	// started again to take a task.
	IdleStopped bool
}

// Limits are the queue's settings from the manifest and the store.
type Limits struct {
	// MaxParallel bounds the tasks dispatched or working at once (0: no
	// bound but the instances, one task each). A task in needs-review does
	// not count (its agent is not working) but still holds its agent.
	MaxParallel int
	// MaxAttempts: a task that lost its agent this many times fails
	// instead of going back to the queue (0: DefaultMaxAttempts).
	MaxAttempts int
	// Paused: nothing new is dispatched (tasks in flight still follow
	// their agents).
	Paused bool
	// ReviewBeforeDone: a finished task waits in needs-review.
	ReviewBeforeDone bool
	// DispatchTimeout: a dispatched task whose agent has not started
	// working on it by then is requeued (0: DefaultDispatchTimeout).
	DispatchTimeout time.Duration
}

// Decision moves one task.
type Decision struct {
	Task string `json:"task"`
	From State  `json:"from"`
	To   State  `json:"to"`
	// Instance is the agent a dispatch goes to (To == StateDispatched);
	// Start is set when that instance was stopped by idle cleanup and
	// must be started first.
	Instance string `json:"instance,omitempty"`
	Start    bool   `json:"start,omitempty"`
	// Attempts is the task's Attempts after the move: one more than before
	// when the task is requeued or failed for its agent, else unchanged.
	// store.TransitionTask records it.
	Attempts int    `json:"attempts"`
	Why      string `json:"why"`
}

// Plan is the dispatcher's pass: given every task of the fleet, the
// queue's agents and the limits at time now, the transitions to make, in
// order. It changes nothing itself and is deterministic.
func Plan(tasks []Task, agents []Agent, lim Limits, now time.Time) []Decision {
	return plan(tasks, agents, lim, now)
}
