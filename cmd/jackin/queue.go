package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/taskqueue"
	"github.com/jackin-dev/jackin/termtext"
)

// plain is a task's text (written by others: an issue's author, a
// tracker, a task file) made safe for a terminal: escape sequences and
// control characters go, C1 ones too; line breaks and tabs stay.
func plain(s string) string {
	return strings.Map(func(r rune) rune {
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			return -1
		}
		return r
	}, termtext.String(s))
}

// oneLine is plain text on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(plain(s)), " ") }

// queueFlags are the flags every queue verb takes: the fleet (-f or
// --fleet) and, where it prints, -o.
type queueFlags struct {
	mf    manifestFlags
	fleet string
	out   outputFlag
}

func (q *queueFlags) register(cmd *cobra.Command, output bool) {
	q.mf.register(cmd)
	cmd.Flags().StringVar(&q.fleet, "fleet", "", "fleet name, instead of -f")
	if output {
		q.out.register(cmd, "table", "table", "json", "yaml")
	} else {
		q.out.format, q.out.allowed = "table", []string{"table"}
	}
}

// resolve validates the flags and names the fleet.
func (q *queueFlags) resolve(ctx context.Context, a *app) (string, error) {
	if err := q.out.validate(); err != nil {
		return "", err
	}
	return a.fleetFromFlags(ctx, q.mf.files, q.fleet, true)
}

func newQueueCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "List and change the fleet's task queue",
		Long: `queue reads and changes the fleet's task queue, kept in the state dir: the
tasks its sources (a directory of task files, GitHub issues, a command)
yielded and the ones added by hand, each in one state:

  queued        waiting for an idle agent
  dispatched    its prompt was typed into an agent, which has not started yet
  working       the agent works on it
  needs-review  finished, held by the review gate until approved
  done          finished
  failed        its agent was lost (exited, recreated, restarted, deleted)
                too many times
  cancelled     cancelled by the operator

jackin watch dispatches the queue; these verbs change it by hand. Every
change is recorded with who, when and why (queue show).

Exit codes: 0 success; 1 the task is not in a state the verb applies to (or
it moved meanwhile); 2 invalid input, an unknown task.`,
		Example: `  jackin queue list -f fleet.cue
  jackin queue add -f fleet.cue --title "Fix the login redirect" --prompt-file fix.md --priority 5
  jackin queue show --fleet demo dir:fix-login -o json
  jackin queue cancel -f fleet.cue dir:fix-login
  jackin queue pause -f fleet.cue`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		newQueueListCommand(a), newQueueShowCommand(a), newQueueAddCommand(a),
		newQueueRetryCommand(a), newQueueCancelCommand(a), newQueueApproveCommand(a),
		newQueuePauseCommand(a, true), newQueuePauseCommand(a, false),
	)
	return cmd
}

// taskDoc is a task as the queue verbs print it.
type taskDoc struct {
	taskqueue.Task
	Transitions []store.TaskTransition `json:"transitions,omitempty"`
}

func newQueueListCommand(a *app) *cobra.Command {
	var q queueFlags
	var states []string
	cmd := &cobra.Command{
		Use:   "list [-f PATH... | --fleet NAME]",
		Short: "List the fleet's tasks",
		Long: `list prints the fleet's tasks: first those not finished, in the order the
dispatcher takes them (highest priority, oldest, then by ID), then the
finished ones, newest first. AGE is the time since a source first yielded
the task. --state narrows the list to some states.`,
		Example: `  jackin queue list -f fleet.cue
  jackin queue list --fleet demo --state queued,failed -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			fleet, err := q.resolve(ctx, a)
			if err != nil {
				return err
			}
			want := map[taskqueue.State]bool{}
			for _, s := range states {
				for _, one := range strings.Split(s, ",") {
					st := taskqueue.State(strings.TrimSpace(one))
					if !knownState(st) {
						return exitWith(exitInvalid, fmt.Errorf("--state %q: not a task state (%s)", one, stateNames()))
					}
					want[st] = true
				}
			}
			st, err := a.openStoreReadOnly(ctx)
			if err != nil {
				return err
			}
			var tasks []taskqueue.Task
			paused := false
			if st != nil {
				defer st.Close()
				if tasks, err = st.Tasks(ctx, fleet); err != nil {
					return exitWith(exitInvalid, err)
				}
				if paused, err = st.QueuePaused(ctx, fleet); err != nil {
					return exitWith(exitInvalid, err)
				}
			}
			tasks = listOrder(tasks, want)
			if q.out.format != "table" {
				items := make([]taskqueue.Task, 0, len(tasks))
				items = append(items, tasks...)
				return writeStructured(a.stdout, q.out.format, map[string]any{"apiVersion": "jackin.dev/v1alpha1", "kind": "TaskList", "fleet": fleet, "paused": paused, "items": items})
			}
			if paused {
				fmt.Fprintf(a.stdout, "The queue of %s is paused: nothing new is dispatched (jackin queue resume).\n", fleet)
			}
			if len(tasks) == 0 {
				fmt.Fprintf(a.stdout, "No tasks in the queue of %s.\n", fleet)
				return nil
			}
			now := time.Now()
			var t table
			t.add("ID", "STATE", "INSTANCE", "ATTEMPTS", "PRIORITY", "TITLE", "AGE")
			for _, tk := range tasks {
				inst := tk.Instance
				if inst == "" {
					inst = "-"
				}
				t.add(oneLine(tk.ID), string(tk.State), oneLine(inst), fmt.Sprint(tk.Attempts), fmt.Sprint(tk.Priority), clip(oneLine(tk.Title), 50), humanAge(now.Sub(tk.CreatedAt)))
			}
			t.write(a.stdout)
			return nil
		},
	}
	q.register(cmd, true)
	cmd.Flags().StringSliceVar(&states, "state", nil, "only tasks in these states (comma-separated or repeated)")
	return cmd
}

// listOrder keeps the tasks in want (all when empty): the unfinished in
// the dispatcher's order, then the finished, newest first.
func listOrder(tasks []taskqueue.Task, want map[taskqueue.State]bool) []taskqueue.Task {
	var open, final []taskqueue.Task
	for _, t := range tasks {
		if len(want) > 0 && !want[t.State] {
			continue
		}
		if t.State.Final() {
			final = append(final, t)
		} else {
			open = append(open, t)
		}
	}
	taskqueue.SortTasks(open)
	for i := 1; i < len(final); i++ { // newest first, stable for equal times
		for j := i; j > 0 && final[j].UpdatedAt.After(final[j-1].UpdatedAt); j-- {
			final[j], final[j-1] = final[j-1], final[j]
		}
	}
	return append(open, final...)
}

var allStates = []taskqueue.State{taskqueue.StateQueued, taskqueue.StateDispatched, taskqueue.StateWorking, taskqueue.StateNeedsReview,
	taskqueue.StateDone, taskqueue.StateFailed, taskqueue.StateCancelled}

func knownState(s taskqueue.State) bool {
	for _, k := range allStates {
		if s == k {
			return true
		}
	}
	return false
}

func stateNames() string {
	names := make([]string, len(allStates))
	for i, s := range allStates {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// clip cuts s to n runes with "...".
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}

func newQueueShowCommand(a *app) *cobra.Command {
	var q queueFlags
	cmd := &cobra.Command{
		Use:   "show [-f PATH... | --fleet NAME] TASK",
		Short: "Show a task and its transitions",
		Long: `show prints a task (its source, state, instance, attempts, links, prompt)
and every transition it made: when, from which state to which, who made it
(source:NAME, watch, operator:USER) and why.`,
		Example: `  jackin queue show -f fleet.cue dir:fix-login
  jackin queue show --fleet demo github:o/r#12 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			fleet, err := q.resolve(ctx, a)
			if err != nil {
				return err
			}
			st, err := a.openStoreReadOnly(ctx)
			if err != nil {
				return err
			}
			if st == nil {
				return exitWith(exitInvalid, fmt.Errorf("the fleet %s has no task %q", fleet, args[0]))
			}
			defer st.Close()
			t, err := queueTask(ctx, st, fleet, args[0])
			if err != nil {
				return err
			}
			trs, err := st.TaskTransitions(ctx, fleet, t.ID)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			if q.out.format != "table" {
				doc := map[string]any{"apiVersion": "jackin.dev/v1alpha1", "kind": "Task"}
				doc["task"] = taskDoc{Task: t, Transitions: trs}
				return writeStructured(a.stdout, q.out.format, doc)
			}
			writeTask(a.stdout, t, trs)
			return nil
		},
	}
	q.register(cmd, true)
	return cmd
}

func writeTask(w io.Writer, t taskqueue.Task, trs []store.TaskTransition) {
	field := func(k, v string) {
		if v = oneLine(v); v != "" {
			fmt.Fprintf(w, "%-11s %s\n", k+":", v)
		}
	}
	field("ID", t.ID)
	field("Title", t.Title)
	field("Source", t.Source)
	field("State", string(t.State))
	field("Priority", fmt.Sprint(t.Priority))
	field("Labels", strings.Join(t.Labels, ", "))
	field("Instance", t.Instance)
	field("Attempts", fmt.Sprint(t.Attempts))
	field("Created", t.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	if !t.DispatchedAt.IsZero() {
		field("Dispatched", t.DispatchedAt.Local().Format("2006-01-02 15:04:05"))
	}
	for _, l := range t.Links {
		field("Link", l)
	}
	fmt.Fprintln(w, "Prompt:")
	for _, line := range strings.Split(plain(t.Prompt), "\n") {
		fmt.Fprintln(w, "    "+line)
	}
	fmt.Fprintln(w, "Transitions:")
	for _, tr := range trs {
		from := string(tr.From)
		if from == "" {
			from = "(new)"
		}
		inst := ""
		if tr.Instance != "" {
			inst = " on " + oneLine(tr.Instance)
		}
		fmt.Fprintf(w, "    %s  %s -> %s%s  by %s: %s\n", tr.At.Local().Format("2006-01-02 15:04:05"), from, tr.To, inst, oneLine(tr.Who), oneLine(tr.Why))
	}
}

// queueTask reads a task; an unknown one is exit 2.
func queueTask(ctx context.Context, st *store.Store, fleet, id string) (taskqueue.Task, error) {
	t, err := st.Task(ctx, fleet, id)
	if errors.Is(err, store.ErrNoTask) {
		return t, exitWith(exitInvalid, fmt.Errorf("the fleet %s has no task %q (jackin queue list)", fleet, id))
	}
	if err != nil {
		return t, exitWith(exitInvalid, err)
	}
	return t, nil
}

// operator is who a queue verb records: operator:USER.
func operator() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "operator:" + u.Username
	}
	return "operator"
}

func newQueueAddCommand(a *app) *cobra.Command {
	var q queueFlags
	var id, title, prompt, promptFile string
	var priority int
	var labels []string
	cmd := &cobra.Command{
		Use:   "add [-f PATH... | --fleet NAME] --prompt TEXT | --prompt-file PATH [--title T] [--priority N] [--label L]...",
		Short: "Add a task by hand",
		Long: `add queues a task with the given prompt (--prompt, or --prompt-file; - reads
stdin). Its ID is manual:KEY, KEY from --id or made up; its title defaults to
the prompt's first line. It is dispatched like a source's task, by priority
then age.`,
		Example: `  jackin queue add -f fleet.cue --title "Bump the Go version" --prompt "Bump go.mod to Go 1.26 and fix what breaks."
  jackin queue add --fleet demo --prompt-file task.md --priority 5 --label chore --id bump-go`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			fleet, err := q.resolve(ctx, a)
			if err != nil {
				return err
			}
			text, err := a.promptText(prompt, promptFile, cmd.Flags().Changed("prompt"))
			if err != nil {
				return err
			}
			if id == "" {
				b := make([]byte, 4)
				_, _ = rand.Read(b)
				id = hex.EncodeToString(b)
			}
			if title == "" {
				title, _, _ = strings.Cut(text, "\n")
			}
			if err := taskqueue.CheckTask(id, text, labels); err != nil {
				return exitWith(exitInvalid, fmt.Errorf("add a task: %w", err))
			}
			t := taskqueue.Task{ID: "manual:" + id, Source: "manual", Title: taskqueue.CutTitle(title), Prompt: text, Priority: priority, Labels: labels}
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.AddTask(ctx, fleet, t, operator()); err != nil {
				if errors.Is(err, store.ErrTaskExists) {
					return exitWith(exitInvalid, fmt.Errorf("the fleet %s has a task %s already: choose another --id", fleet, t.ID))
				}
				return exitWith(exitInvalid, err)
			}
			return a.printTask(ctx, st, fleet, t.ID, q.out.format, fmt.Sprintf("Task %s queued in %s.", t.ID, fleet))
		},
	}
	q.register(cmd, true)
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "the task's key (ID manual:KEY; default: made up)")
	f.StringVar(&title, "title", "", "the task's title (default: the prompt's first line)")
	f.StringVar(&prompt, "prompt", "", "the prompt typed into the agent")
	f.StringVar(&promptFile, "prompt-file", "", "read the prompt from a file (- : stdin)")
	f.IntVar(&priority, "priority", 0, "higher is dispatched first")
	f.StringArrayVar(&labels, "label", nil, "a label (repeatable)")
	return cmd
}

// promptText is add's prompt from --prompt or --prompt-file.
func (a *app) promptText(prompt, file string, given bool) (string, error) {
	switch {
	case given && file != "":
		return "", exitWith(exitInvalid, errors.New("give either --prompt or --prompt-file, not both"))
	case file == "-":
		b, err := io.ReadAll(io.LimitReader(a.stdin, taskqueue.MaxPrompt+1))
		if err != nil {
			return "", exitWith(exitInvalid, fmt.Errorf("read the prompt from stdin: %w", err))
		}
		prompt = string(b)
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return "", exitWith(exitInvalid, fmt.Errorf("--prompt-file: %w", err))
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, taskqueue.MaxPrompt+1))
		if err != nil {
			return "", exitWith(exitInvalid, fmt.Errorf("--prompt-file %s: %w", file, err))
		}
		prompt = string(b)
	case !given:
		return "", exitWith(exitInvalid, errors.New("give the task's prompt: --prompt TEXT or --prompt-file PATH"))
	}
	return strings.TrimSpace(prompt), nil
}

// printTask prints a task after a change: the document, or msg.
func (a *app) printTask(ctx context.Context, st *store.Store, fleet, id, format, msg string) error {
	if format == "table" {
		fmt.Fprintln(a.stdout, msg)
		return nil
	}
	t, err := st.Task(ctx, fleet, id)
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	return writeStructured(a.stdout, format, map[string]any{"apiVersion": "jackin.dev/v1alpha1", "kind": "Task", "task": taskDoc{Task: t}})
}

// moveVerb is a queue verb that moves one task from some states to one.
type moveVerb struct {
	use, short, long, example string
	// from says whether a task in state s may move; allowed names them.
	from    func(s taskqueue.State) bool
	allowed string
	to      taskqueue.State
	// set changes the task with the move (nil: nothing).
	set func(*taskqueue.Task)
	// note is said after the move (may be "").
	note func(t taskqueue.Task) string
}

func (a *app) newMoveCommand(v moveVerb) *cobra.Command {
	var q queueFlags
	var reason string
	cmd := &cobra.Command{
		Use:     v.use,
		Short:   v.short,
		Long:    v.long,
		Example: v.example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			fleet, err := q.resolve(ctx, a)
			if err != nil {
				return err
			}
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			t, err := queueTask(ctx, st, fleet, args[0])
			if err != nil {
				return err
			}
			if !v.from(t.State) {
				return exitWith(exitChanges, fmt.Errorf("task %s is %s: %s applies to a task that is %s", oneLine(t.ID), t.State, strings.Fields(v.use)[0], v.allowed))
			}
			who := operator()
			why := fmt.Sprintf("%s by %s", strings.Fields(v.use)[0], who)
			if reason != "" {
				why += ": " + strings.Join(strings.Fields(reason), " ")
			}
			d := taskqueue.Decision{Task: t.ID, From: t.State, To: v.to, Instance: t.Instance, Why: why}
			if err := st.TransitionTask(ctx, fleet, d, who, v.set); err != nil {
				if errors.Is(err, store.ErrTaskMoved) {
					return exitWith(exitChanges, fmt.Errorf("task %s: %w: look again (jackin queue show)", oneLine(t.ID), store.ErrTaskMoved))
				}
				return exitWith(exitInvalid, err)
			}
			msg := fmt.Sprintf("Task %s: %s -> %s.", oneLine(t.ID), t.State, v.to)
			if v.note != nil {
				if n := v.note(t); n != "" {
					msg += "\n" + n
				}
			}
			return a.printTask(ctx, st, fleet, t.ID, q.out.format, msg)
		},
	}
	q.register(cmd, true)
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded with the transition")
	return cmd
}

func newQueueRetryCommand(a *app) *cobra.Command {
	return a.newMoveCommand(moveVerb{
		use:   "retry [-f PATH... | --fleet NAME] TASK",
		short: "Queue a failed or cancelled task again",
		long: `retry puts a failed or cancelled task back in the queue with its attempts
counted from zero again.`,
		example: `  jackin queue retry -f fleet.cue dir:fix-login`,
		from:    func(s taskqueue.State) bool { return s == taskqueue.StateFailed || s == taskqueue.StateCancelled },
		allowed: "failed or cancelled",
		to:      taskqueue.StateQueued,
		set:     func(t *taskqueue.Task) { t.Attempts = 0 },
	})
}

func newQueueCancelCommand(a *app) *cobra.Command {
	return a.newMoveCommand(moveVerb{
		use:   "cancel [-f PATH... | --fleet NAME] TASK",
		short: "Cancel a task that is not finished",
		long: `cancel moves a task that is not finished (queued, dispatched, working,
needs-review) to cancelled: it is never dispatched again (retry queues it
again). A task on an agent is only marked: the agent keeps what it was doing
(its turn goes on; interrupt it with jackin attach), and the agent takes a new
task once it is idle again.`,
		example: `  jackin queue cancel -f fleet.cue dir:fix-login --reason "fixed by hand"`,
		from:    func(s taskqueue.State) bool { return !s.Final() },
		allowed: "not finished (queued, dispatched, working or needs-review)",
		to:      taskqueue.StateCancelled,
		note: func(t taskqueue.Task) string {
			if t.Instance != "" && (t.State == taskqueue.StateDispatched || t.State == taskqueue.StateWorking) {
				inst := oneLine(t.Instance)
				return fmt.Sprintf("The agent of %s keeps what it was doing: jackin only stops tracking the task (interrupt the agent with jackin attach %s).", inst, inst)
			}
			return ""
		},
	})
}

func newQueueApproveCommand(a *app) *cobra.Command {
	return a.newMoveCommand(moveVerb{
		use:   "approve [-f PATH... | --fleet NAME] TASK",
		short: "Approve a task held for review",
		long: `approve moves a task the review gate holds (needs-review) to done; its
agent may then take the next task.`,
		example: `  jackin queue approve -f fleet.cue dir:fix-login`,
		from:    func(s taskqueue.State) bool { return s == taskqueue.StateNeedsReview },
		allowed: "needs-review",
		to:      taskqueue.StateDone,
	})
}

func newQueuePauseCommand(a *app, pause bool) *cobra.Command {
	var q queueFlags
	verb, short, long := "resume", "Resume dispatching the fleet's queue", `resume lets jackin watch dispatch queued tasks again.`
	if pause {
		verb, short, long = "pause", "Stop dispatching new tasks", `pause stops jackin watch from dispatching queued tasks until resume. Tasks on
agents go on and still follow their agents (done, needs-review, requeued).`
	}
	cmd := &cobra.Command{
		Use:     verb + " [-f PATH... | --fleet NAME]",
		Short:   short,
		Long:    long,
		Example: "  jackin queue " + verb + " -f fleet.cue",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			fleet, err := q.resolve(ctx, a)
			if err != nil {
				return err
			}
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.SetQueuePaused(ctx, fleet, pause, operator()); err != nil {
				return exitWith(exitInvalid, err)
			}
			if pause {
				fmt.Fprintf(a.stdout, "The queue of %s is paused: nothing new is dispatched until jackin queue resume.\n", fleet)
			} else {
				fmt.Fprintf(a.stdout, "The queue of %s is resumed.\n", fleet)
			}
			return nil
		},
	}
	q.register(cmd, false)
	return cmd
}
