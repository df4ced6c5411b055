package schema

import "time"

// Queue is the fleet's task queue (fleet-level queue): where tasks come
// from, which instances take them and the limits jackin watch dispatches
// them under.
type Queue struct {
	Sources []TaskSource `json:"sources"`
	// Instances are the instances that take tasks, sorted: the ones the
	// manifest names, or those whose labels match Selector, or (neither
	// given) every instance of the fleet.
	Instances []string `json:"instances"`
	// Selector is the label selector as written (nil: none).
	Selector map[string]string `json:"selector,omitempty"`
	// MaxParallel bounds the tasks in flight (0: one per instance).
	MaxParallel int `json:"maxParallel,omitempty"`
	// MaxAttempts is how many times a task is dispatched before a lost
	// one fails (DefaultMaxAttempts when unset).
	MaxAttempts int `json:"maxAttempts"`
	// DispatchTimeout requeues a dispatched task whose agent has not
	// started on it by then.
	DispatchTimeout time.Duration `json:"dispatchTimeout"`
	// ReviewBeforeDone (gates.beforeDone "review"): a finished task waits
	// in needs-review until the operator approves it.
	ReviewBeforeDone bool `json:"reviewBeforeDone,omitempty"`
}

// Takes reports whether instance takes tasks from the queue.
func (q *Queue) Takes(instance string) bool {
	if q == nil {
		return false
	}
	for _, n := range q.Instances {
		if n == instance {
			return true
		}
	}
	return false
}

// GateReview is gates.beforeDone "review": a finished task waits for
// the operator's approval.
const GateReview = "review"

// Task source kinds.
const (
	TaskSourceDir     = "dir"
	TaskSourceGitHub  = "github"
	TaskSourceCommand = "command"
)

// Queue defaults.
const (
	DefaultMaxAttempts     = 3
	DefaultDispatchTimeout = 2 * time.Minute
	DefaultDirEvery        = 2 * time.Second
	DefaultCommandEvery    = 30 * time.Second
	DefaultGitHubEvery     = time.Minute
)

// TaskSource is one source of the queue's tasks: exactly one of Dir,
// GitHub and Command is set, as Kind says.
type TaskSource struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Dir is the task files' directory, absolute.
	Dir string `json:"dir,omitempty"`
	// GitHub is the repository whose issues are tasks.
	GitHub *GitHubTasks `json:"github,omitempty"`
	// Command is the program that prints tasks (argv[0] resolved), run
	// in WorkDir, the directory of the manifest that declares it.
	Command []string `json:"command,omitempty"`
	WorkDir string   `json:"workDir,omitempty"`
	// Every is how often the source is read.
	Every time.Duration `json:"every"`
}

// GitHubTasks is a github task source: the open issues of Repo that
// carry every one of Labels.
type GitHubTasks struct {
	Repo   string   `json:"repo"`
	Labels []string `json:"labels,omitempty"`
	// Priorities give an issue the highest priority of its labels here.
	Priorities map[string]int `json:"priorities,omitempty"`
}
