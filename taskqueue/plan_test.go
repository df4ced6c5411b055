package taskqueue

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files of the dispatcher's cases")

var t0 = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

// at is t0 plus s seconds.
func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

// q is a queued task created at t0+created seconds.
func q(id string, prio, created int) Task {
	return Task{ID: id, Priority: prio, State: StateQueued, CreatedAt: at(created)}
}

// on is a task in state st on instance inst (container c-INST, boot
// b-INST), dispatched at t0+disp seconds.
func on(id string, st State, inst string, disp int) Task {
	return Task{ID: id, State: st, Instance: inst, Container: "c-" + inst, Boot: "b-" + inst, CreatedAt: t0, DispatchedAt: at(disp)}
}

// ag is a present agent in state st since t0+since seconds.
func ag(inst, st string, since int) Agent {
	return Agent{Instance: inst, Present: true, Container: "c-" + inst, Boot: "b-" + inst, State: st, StateSince: at(since)}
}

func withAttempts(t Task, n int) Task { t.Attempts = n; return t }

type planCase struct {
	name   string
	tasks  []Task
	agents []Agent
	lim    Limits
	now    time.Time // t0+100s when zero
}

var planCases = []planCase{
	{
		name:  "dispatch-to-idle-and-done-only",
		tasks: []Task{q("t1", 0, 1), q("t2", 0, 2), q("t3", 0, 3)},
		agents: []Agent{
			ag("a-working", "working", 0), ag("b-blocked", "blocked", 0), ag("c-starting", "starting", 0),
			ag("d-exited", "exited", 0), ag("e-unknown", "unknown", 0), ag("f-idle", "idle", 10), ag("g-done", "done", 5),
		},
	},
	{
		name: "priority-then-age-then-id",
		tasks: []Task{
			q("low", 1, 0), q("high-new", 5, 30), q("high-old", 5, 10), q("high-tie-b", 5, 20), q("high-tie-a", 5, 20),
		},
		agents: []Agent{ag("w1", "idle", 3), ag("w2", "idle", 1), ag("w3", "idle", 2), ag("w4", "idle", 4)},
	},
	{
		name:   "paused-dispatches-nothing-but-follows-agents",
		tasks:  []Task{q("t1", 0, 0), on("t2", StateWorking, "w1", 10)},
		agents: []Agent{ag("w1", "idle", 50), ag("w2", "idle", 0)},
		lim:    Limits{Paused: true},
	},
	{
		name:   "max-parallel-counts-dispatched-and-working",
		tasks:  []Task{on("busy", StateWorking, "w1", 0), on("sent", StateDispatched, "w2", 90), q("t1", 0, 1), q("t2", 0, 2), q("t3", 0, 3)},
		agents: []Agent{ag("w1", "working", 5), ag("w2", "idle", 0), ag("w3", "idle", 0), ag("w4", "idle", 0), ag("w5", "idle", 0)},
		lim:    Limits{MaxParallel: 3},
	},
	{
		name:   "max-parallel-reached",
		tasks:  []Task{on("busy", StateWorking, "w1", 0), q("t1", 0, 1)},
		agents: []Agent{ag("w1", "working", 5), ag("w2", "idle", 0)},
		lim:    Limits{MaxParallel: 1},
	},
	{
		name:   "needs-review-is-not-counted-but-holds-its-agent",
		tasks:  []Task{on("review", StateNeedsReview, "w1", 0), q("t1", 0, 1), q("t2", 0, 2)},
		agents: []Agent{ag("w1", "done", 50), ag("w2", "idle", 0)},
		lim:    Limits{MaxParallel: 1},
	},
	{
		name:   "no-two-tasks-on-one-agent",
		tasks:  []Task{on("sent", StateDispatched, "w1", 99), q("t1", 0, 1), q("t2", 0, 2)},
		agents: []Agent{ag("w1", "idle", 0)},
	},
	{
		name:   "final-tasks-hold-no-agent",
		tasks:  []Task{on("d", StateDone, "w1", 0), on("f", StateFailed, "w2", 0), on("c", StateCancelled, "w3", 0), q("t1", 0, 1), q("t2", 0, 2), q("t3", 0, 3)},
		agents: []Agent{ag("w1", "done", 0), ag("w2", "idle", 0), ag("w3", "idle", 0)},
	},
	{
		name:  "idle-stopped-after-running-agents",
		tasks: []Task{q("t1", 0, 1), q("t2", 0, 2), q("t3", 0, 3), q("t4", 0, 4)},
		agents: []Agent{
			{Instance: "a-stopped", Present: true, State: "exited", IdleStopped: true},
			{Instance: "b-stopped-gone", Present: false, IdleStopped: true},
			ag("z-idle", "idle", 0),
			{Instance: "c-stopped", Present: true, State: "unknown", IdleStopped: true},
		},
	},
	{
		name: "idle-stopped-with-a-task-is-not-free",
		tasks: []Task{
			{ID: "review", State: StateNeedsReview, Instance: "a-stopped"}, q("t1", 0, 1),
		},
		agents: []Agent{{Instance: "a-stopped", Present: true, State: "exited", IdleStopped: true}},
	},
	{
		name: "dispatched-to-working",
		tasks: []Task{
			on("working", StateDispatched, "w1", 50), on("blocked", StateDispatched, "w2", 50),
			on("stale-working", StateDispatched, "w3", 50), on("still-idle", StateDispatched, "w4", 50),
		},
		agents: []Agent{ag("w1", "working", 51), ag("w2", "blocked", 60), ag("w3", "working", 40), ag("w4", "idle", 10)},
	},
	{
		name: "dispatched-finished-between-passes",
		tasks: []Task{
			on("quick", StateDispatched, "w1", 50), on("done-before", StateDispatched, "w2", 50),
		},
		agents: []Agent{ag("w1", "done", 55), ag("w2", "done", 20)},
	},
	{
		name: "working-to-done",
		tasks: []Task{
			on("to-idle", StateWorking, "w1", 10), on("to-done", StateWorking, "w2", 10),
			on("blocked", StateWorking, "w3", 10), on("working", StateWorking, "w4", 10), on("starting", StateWorking, "w5", 10),
		},
		agents: []Agent{ag("w1", "idle", 60), ag("w2", "done", 60), ag("w3", "blocked", 60), ag("w4", "working", 11), ag("w5", "starting", 60)},
	},
	{
		name:   "working-to-needs-review-under-the-gate",
		tasks:  []Task{on("t", StateWorking, "w1", 10), on("quick", StateDispatched, "w2", 10), q("next", 0, 0)},
		agents: []Agent{ag("w1", "done", 60), ag("w2", "done", 60)},
		lim:    Limits{ReviewBeforeDone: true},
	},
	{
		name:   "finished-agent-takes-the-next-task-in-the-same-pass",
		tasks:  []Task{on("t", StateWorking, "w1", 10), q("next", 0, 0)},
		agents: []Agent{ag("w1", "done", 60)},
		lim:    Limits{MaxParallel: 1},
	},
	{
		name: "requeue-on-exit-recreate-restart-delete",
		tasks: []Task{
			on("exited", StateWorking, "w1", 10), on("recreated", StateWorking, "w2", 10),
			on("restarted", StateDispatched, "w3", 90), on("deleted", StateWorking, "w4", 10),
			on("absent", StateWorking, "w5", 10),
		},
		agents: []Agent{
			ag("w1", "exited", 50),
			{Instance: "w2", Present: true, Container: "c-new", Boot: "b-w2", State: "idle", StateSince: at(50)},
			{Instance: "w3", Present: true, Container: "c-w3", Boot: "b-new", State: "idle", StateSince: at(95)},
			{Instance: "w4", Present: false},
		},
	},
	{
		name: "failed-after-max-attempts",
		tasks: []Task{
			withAttempts(on("second-loss", StateWorking, "w1", 10), 1), withAttempts(on("third-loss", StateWorking, "w2", 10), 2),
		},
		agents: []Agent{ag("w1", "exited", 50), ag("w2", "exited", 50)},
	},
	{
		name:   "max-attempts-one-fails-at-once",
		tasks:  []Task{on("t", StateDispatched, "w1", 10)},
		agents: []Agent{ag("w1", "exited", 50)},
		lim:    Limits{MaxAttempts: 1},
	},
	{
		name:   "dispatch-timeout",
		tasks:  []Task{on("timed-out", StateDispatched, "w1", 0), on("in-time", StateDispatched, "w2", 50)},
		agents: []Agent{ag("w1", "idle", 0), ag("w2", "idle", 0)},
		lim:    Limits{DispatchTimeout: time.Minute},
	},
	{
		name:   "requeued-task-waits-for-the-next-pass",
		tasks:  []Task{on("lost", StateWorking, "w1", 0), q("other", 0, 50)},
		agents: []Agent{{Instance: "w1", Present: true, Container: "c-w1", Boot: "b-new", State: "idle", StateSince: at(60)}, ag("w2", "idle", 0)},
	},
}

// render writes decisions one a line, for the golden files.
func render(ds []Decision) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "%s: %s -> %s", d.Task, d.From, d.To)
		if d.Instance != "" {
			fmt.Fprintf(&b, " instance=%s", d.Instance)
		}
		if d.Start {
			b.WriteString(" start")
		}
		fmt.Fprintf(&b, " attempts=%d\n    why: %s\n", d.Attempts, d.Why)
	}
	if len(ds) == 0 {
		b.WriteString("(no decisions)\n")
	}
	return b.String()
}

// TestPlanGolden: each case's decisions against testdata/NAME.golden
// (go test ./taskqueue -run TestPlanGolden -update rewrites them).
func TestPlanGolden(t *testing.T) {
	for _, c := range planCases {
		t.Run(c.name, func(t *testing.T) {
			now := c.now
			if now.IsZero() {
				now = at(100)
			}
			got := render(Plan(c.tasks, c.agents, c.lim, now))
			path := filepath.Join("testdata", c.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("decisions differ from %s:\n--- got\n%s--- want\n%s", path, got, want)
			}
		})
	}
}

// TestPlanGoldenFilesHaveCases: no golden file is left without its case.
func TestPlanGoldenFilesHaveCases(t *testing.T) {
	names := map[string]bool{}
	for _, c := range planCases {
		names[c.name+".golden"] = true
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.golden"))
	for _, f := range files {
		if !names[filepath.Base(f)] {
			t.Errorf("%s has no case", f)
		}
	}
}

// TestPlanInvariants: over random fleets, Plan never gives an agent two
// tasks, never exceeds MaxParallel, never dispatches while paused or to an
// agent not waiting, moves a task at most once, and answers the same for
// the same input in any order.
func TestPlanInvariants(t *testing.T) {
	r := rand.New(rand.NewSource(20))
	states := []string{"idle", "done", "working", "blocked", "starting", "exited", "unknown"}
	taskStates := []State{StateQueued, StateQueued, StateQueued, StateDispatched, StateWorking, StateNeedsReview, StateDone}
	for round := range 500 {
		var agents []Agent
		for i := range 1 + r.Intn(6) {
			a := ag(fmt.Sprintf("w%d", i), states[r.Intn(len(states))], r.Intn(100))
			a.Present = r.Intn(8) != 0
			a.IdleStopped = r.Intn(6) == 0
			agents = append(agents, a)
		}
		var tasks []Task
		busy := map[string]bool{}
		for i := range r.Intn(10) {
			st := taskStates[r.Intn(len(taskStates))]
			if st == StateQueued {
				tasks = append(tasks, q(fmt.Sprintf("t%d", i), r.Intn(3), r.Intn(50)))
				continue
			}
			inst := fmt.Sprintf("w%d", r.Intn(len(agents)))
			if busy[inst] && !st.Final() {
				continue
			}
			if !st.Final() {
				busy[inst] = true
			}
			tasks = append(tasks, withAttempts(on(fmt.Sprintf("t%d", i), st, inst, r.Intn(100)), r.Intn(3)))
		}
		lim := Limits{MaxParallel: r.Intn(4), Paused: r.Intn(5) == 0, ReviewBeforeDone: r.Intn(2) == 0}
		got := Plan(tasks, agents, lim, at(100))

		shuffled := append([]Task(nil), tasks...)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if again := Plan(shuffled, agents, lim, at(100)); render(again) != render(got) {
			t.Fatalf("round %d: order changed the answer:\n%s\nvs\n%s", round, render(got), render(again))
		}

		// Apply the decisions and check the result.
		byID := map[string]*Task{}
		for i := range tasks {
			byID[tasks[i].ID] = &tasks[i]
		}
		agentOf := map[string]Agent{}
		for _, a := range agents {
			agentOf[a.Instance] = a
		}
		moved := map[string]bool{}
		for _, d := range got {
			if moved[d.Task] {
				t.Fatalf("round %d: %s moved twice:\n%s", round, d.Task, render(got))
			}
			moved[d.Task] = true
			tk := byID[d.Task]
			if tk.State != d.From || d.Why == "" {
				t.Fatalf("round %d: decision %+v for a task in %s", round, d, tk.State)
			}
			if d.To == StateDispatched {
				if lim.Paused {
					t.Fatalf("round %d: dispatched while paused", round)
				}
				a := agentOf[d.Instance]
				if !a.Present || (!a.IdleStopped && !waiting(a.State)) || d.Start != a.IdleStopped {
					t.Fatalf("round %d: dispatched to %+v (start %v)", round, a, d.Start)
				}
				tk.Instance = d.Instance
			}
			tk.State = d.To
		}
		held := map[string]int{}
		flight := 0
		for _, tk := range tasks {
			if tk.State == StateDispatched || tk.State == StateWorking {
				flight++
			}
			if tk.State == StateDispatched || tk.State == StateWorking || tk.State == StateNeedsReview {
				held[tk.Instance]++
				if held[tk.Instance] > 1 {
					t.Fatalf("round %d: two tasks on %s:\n%s", round, tk.Instance, render(got))
				}
			}
		}
		dispatched := 0
		for _, d := range got {
			if d.To == StateDispatched {
				dispatched++
			}
		}
		if lim.MaxParallel > 0 && dispatched > 0 && flight > lim.MaxParallel {
			t.Fatalf("round %d: %d in flight, max %d:\n%s", round, flight, lim.MaxParallel, render(got))
		}
	}
}
