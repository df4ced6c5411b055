package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/test/harness"
)

// qTask is a task as jackin queue show -o json prints it.
type qTask struct {
	ID          string   `json:"id"`
	State       string   `json:"state"`
	Instance    string   `json:"instance"`
	Attempts    int      `json:"attempts"`
	Links       []string `json:"links"`
	Transitions []struct {
		From     string    `json:"from"`
		To       string    `json:"to"`
		Instance string    `json:"instance"`
		Who      string    `json:"who"`
		Why      string    `json:"why"`
		At       time.Time `json:"at"`
	} `json:"transitions"`
}

// queueList is jackin queue list -o json's tasks by ID.
func (e *env) queueList(t *testing.T, m string) map[string]qTask {
	t.Helper()
	r := e.jackin("queue", "list", "-f", m, "-o", "json")
	mustCode(t, r, 0, "queue list")
	var doc struct {
		Items []qTask `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("queue list -o json: %v\n%s", err, r)
	}
	out := map[string]qTask{}
	for _, it := range doc.Items {
		out[it.ID] = it
	}
	return out
}

// queueShow is one task with its transitions.
func (e *env) queueShow(t *testing.T, m, id string) qTask {
	t.Helper()
	r := e.jackin("queue", "show", "-f", m, id, "-o", "json")
	mustCode(t, r, 0, "queue show "+id)
	var doc struct {
		Task qTask `json:"task"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("queue show -o json: %v\n%s", err, r)
	}
	return doc.Task
}

// queueUntil polls the queue until every task in ids is in state, failing
// after d with the queue and the watch output.
func (e *env) queueUntil(t *testing.T, m string, d time.Duration, state string, ids ...string) map[string]qTask {
	t.Helper()
	var tasks map[string]qTask
	if !agtUntil(d, func() bool {
		tasks = e.queueList(t, m)
		for _, id := range ids {
			if tasks[id].State != state {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("after %s the tasks %v are not all %s: %+v", d, ids, state, tasks)
	}
	return tasks
}

// count is how many transitions of task go to state.
func (q qTask) count(to string) int {
	n := 0
	for _, tr := range q.Transitions {
		if tr.To == to {
			n++
		}
	}
	return n
}

// checkOneAtATime fails when an agent held two tasks at once: each
// task's spans from a dispatch to the move that ended it, per instance,
// must not overlap.
func checkOneAtATime(t *testing.T, tasks []qTask) {
	t.Helper()
	type span struct {
		task       string
		start, end time.Time
	}
	by := map[string][]span{}
	for _, q := range tasks {
		var cur *span
		inst := ""
		for _, tr := range q.Transitions {
			switch {
			case tr.To == "dispatched":
				cur, inst = &span{task: q.ID, start: tr.At}, tr.Instance
			case cur != nil && tr.To != "working":
				cur.end = tr.At
				by[inst] = append(by[inst], *cur)
				cur = nil
			}
		}
		if cur != nil {
			t.Errorf("task %s is still on %s", q.ID, inst)
		}
	}
	for inst, spans := range by {
		sort.Slice(spans, func(i, j int) bool { return spans[i].start.Before(spans[j].start) })
		for i := 1; i < len(spans); i++ {
			if spans[i].start.Before(spans[i-1].end) {
				t.Errorf("%s held %s (%s-%s) and %s (from %s) at once", inst, spans[i-1].task, spans[i-1].start.Format("15:04:05.000"),
					spans[i-1].end.Format("15:04:05.000"), spans[i].task, spans[i].start.Format("15:04:05.000"))
			}
		}
	}
}

// replies counts the agents' answers to a prompt in their terminals: how
// many times it was typed and worked on.
func (e *env) replies(t *testing.T, text string, instances ...string) int {
	t.Helper()
	n := 0
	for _, inst := range instances {
		out, err := exec.Command("docker", "logs", e.name(inst)).CombinedOutput()
		if err != nil {
			t.Fatalf("docker logs %s: %v\n%s", inst, err, out)
		}
		n += strings.Count(string(out), "reply: "+text)
	}
	return n
}

// writeTasks writes task files under dir/tasks: name -> "priority|prompt".
func (e *env) writeTasks(t *testing.T, tasks map[string]string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(e.dir, "tasks"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, spec := range tasks {
		prio, prompt, _ := strings.Cut(spec, "|")
		e.writeFile(filepath.Join("tasks", name+".md"), fmt.Sprintf("---\ntitle: %s\npriority: %s\n---\n%s\n", name, prio, prompt))
	}
}

// TestQueueDispatchesDirTasks: three task files, two stand-in agents that
// work a moment on each prompt and write a tag: every task ends done
// exactly once, each prompt is typed once, no agent holds two tasks at
// once, the tag each agent wrote is attached to its task, and watch
// prints a line per transition.
func TestQueueDispatchesDirTasks(t *testing.T) {
	e := newEnv(t)
	img := agtRuntimeImage(t)
	prompts := map[string]string{}
	files := map[string]string{}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("job%d", i)
		prompts["files:"+name] = fmt.Sprintf("queue job %d <jackin:issue>https://github.com/acme/app/issues/%d</jackin:issue>", i, i)
		files[name] = fmt.Sprintf("%d|%s", 4-i, prompts["files:"+name])
	}
	e.writeTasks(t, files)
	m := e.manifest(fmt.Sprintf(`queue: sources: [{name: "files", dir: "tasks"}]
instances: {
	a1: {role: image: %[1]q, agent: "claude", env: STANDIN_TURN_MS: "1500"}
	a2: {role: image: %[1]q, agent: "claude", env: STANDIN_TURN_MS: "1500"}
}`, img))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	e.agtWait(t, "a1", "idle", 30*time.Second)
	e.agtWait(t, "a2", "idle", 30*time.Second)

	start := time.Now()
	w := e.startWatch(nil, "-f", m)
	e.queueUntil(t, m, 60*time.Second, "done", "files:job1", "files:job2", "files:job3")
	t.Logf("three tasks of 1.5s on two agents done in %s", time.Since(start).Round(time.Millisecond))

	var all []qTask
	used := map[string]bool{}
	for id, prompt := range prompts {
		q := e.queueShow(t, m, id)
		all = append(all, q)
		if q.count("done") != 1 || q.count("dispatched") != 1 || q.Attempts != 0 {
			t.Errorf("%s: %d done and %d dispatched transitions, %d attempts; want one each, none lost: %+v", id, q.count("done"), q.count("dispatched"), q.Attempts, q.Transitions)
		}
		for _, tr := range q.Transitions {
			if tr.To == "dispatched" && tr.Who != "watch" {
				t.Errorf("%s dispatched by %q", id, tr.Who)
			}
		}
		used[q.Instance] = true
		if n := e.replies(t, prompt[:11], "a1", "a2"); n != 1 {
			t.Errorf("%s: the agents answered its prompt %d times, want once", id, n)
		}
	}
	if !used["a1"] || !used["a2"] {
		t.Errorf("the tasks went to %v: both idle agents should have taken some", used)
	}
	checkOneAtATime(t, all)
	// The tag each agent wrote while on a task is that task's link (the
	// agent publishes its links within a second).
	for id := range prompts {
		want := "https://github.com/acme/app/issues/" + strings.TrimPrefix(id, "files:job")
		var q qTask
		if !agtUntil(10*time.Second, func() bool {
			q = e.queueShow(t, m, id)
			return len(q.Links) == 1 && q.Links[0] == want
		}) {
			t.Errorf("%s: links %q, want [%s]", id, q.Links, want)
		}
	}
	lines := w.find(func(l watchLine) bool { return l.Type == "task" && l.To == "done" })
	if len(lines) != 3 {
		t.Errorf("watch printed %d task done lines, want 3:\n%s", len(lines), w.dump())
	}
	if code := w.stop(); code != 0 {
		t.Fatalf("watch exited %d after SIGINT", code)
	}

	// explain says where the agent's prompts come from; the queue is part
	// of the reviewed manifest: diff shows a change of it until applied.
	r := e.jackin("explain", "-f", m, "a1")
	mustCode(t, r, 0, "explain")
	if !strings.Contains(r.stdout, "task queue") || !strings.Contains(r.stdout, "takes tasks from the fleet's queue") {
		t.Errorf("explain does not mention the queue:\n%s", r.stdout)
	}
	mustCode(t, e.jackin("diff", "-f", m), 0, "diff after apply")
	b, _ := os.ReadFile(m)
	if err := os.WriteFile(m, []byte(strings.Replace(string(b), `queue: sources:`, `queue: instances: ["a1"], queue: sources:`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	r = e.jackin("diff", "-f", m)
	mustCode(t, r, 1, "diff after a queue change")
	if !strings.Contains(r.stdout, "Task queue:\n  ~ sources files (dir ") || !strings.Contains(r.stdout, "into instances a1, 3 attempts; was: ") {
		t.Errorf("diff does not show the queue change:\n%s", r)
	}
}

// TestQueueRequeueAndWatchRestart: a task whose agent is killed mid-task
// goes back to the queue and is done later; a watch stopped while an agent
// works on a task and started again resumes from the store: the task
// finished meanwhile is done, nothing is typed twice, nothing is lost.
func TestQueueRequeueAndWatchRestart(t *testing.T) {
	e := newEnv(t)
	img := agtRuntimeImage(t)
	prompts := map[string]string{
		"files:first":  "queue first task",
		"files:second": "queue second task",
		"files:third":  "queue third task",
	}
	e.writeTasks(t, map[string]string{"first": "3|" + prompts["files:first"], "second": "2|" + prompts["files:second"], "third": "1|" + prompts["files:third"]})
	m := e.manifest(fmt.Sprintf(`queue: {sources: [{name: "files", dir: "tasks"}], maxAttempts: 3}
instances: a1: {role: image: %q, agent: "claude", env: STANDIN_TURN_MS: "3000"}`, img))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	e.agtWait(t, "a1", "idle", 30*time.Second)

	w := e.startWatch(nil, "-f", m)
	e.queueUntil(t, m, 30*time.Second, "working", "files:first")
	docker(t, "kill", e.name("a1"))
	// watch heals the agent (a new supervisor boot); the task goes back
	// to the queue with one attempt counted and is done on the new agent.
	e.queueUntil(t, m, 60*time.Second, "done", "files:first")
	first := e.queueShow(t, m, "files:first")
	requeued := false
	for _, tr := range first.Transitions {
		if tr.From == "working" && tr.To == "queued" && tr.Who == "watch" {
			requeued = true
		}
	}
	if !requeued || first.Attempts != 1 || first.count("done") != 1 || first.count("dispatched") != 2 {
		t.Errorf("first: requeued %v, %d attempts, %d done, %d dispatched; want a requeue, 1 attempt, done once after a second dispatch: %+v",
			requeued, first.Attempts, first.count("done"), first.count("dispatched"), first.Transitions)
	}

	// Stop watch while the agent works on the second task, let the agent
	// finish it, start watch again.
	e.queueUntil(t, m, 30*time.Second, "working", "files:second")
	if code := w.stop(); code != 0 {
		t.Fatalf("watch exited %d after SIGINT", code)
	}
	e.agtWait(t, "a1", "done", 30*time.Second)
	if st := e.queueShow(t, m, "files:second").State; st != "working" {
		t.Fatalf("with watch stopped the second task is %s, want still working", st)
	}
	w2 := e.startWatch(nil, "-f", m)
	e.queueUntil(t, m, 60*time.Second, "done", "files:second", "files:third")

	var all []qTask
	for id, prompt := range prompts {
		q := e.queueShow(t, m, id)
		all = append(all, q)
		if q.count("done") != 1 {
			t.Errorf("%s done %d times", id, q.count("done"))
		}
		if id == "files:first" {
			continue
		}
		if q.count("dispatched") != 1 || q.Attempts != 0 {
			t.Errorf("%s: %d dispatches, %d attempts; want one, none lost: %+v", id, q.count("dispatched"), q.Attempts, q.Transitions)
		}
		if n := e.replies(t, prompt, "a1"); n != 1 {
			t.Errorf("%s: answered %d times, want once (nothing repeated across the watch restart)", id, n)
		}
	}
	checkOneAtATime(t, all)
	if code := w2.stop(); code != 0 {
		t.Fatalf("the second watch exited %d after SIGINT", code)
	}
}

// TestQueueGitHubSourceAndReviewGate: the open issues of a repository with
// the source's label become tasks (through the GitHub stand-in, with the
// fleet's token), the highest priority first; the review gate holds each
// finished task in needs-review, its agent taking nothing else, until
// jackin queue approve.
func TestQueueGitHubSourceAndReviewGate(t *testing.T) {
	e := newEnv(t)
	img := agtRuntimeImage(t)
	const token = "e2e-gh-queue-token-9d2a"
	gh := harness.StartGitHub(token)
	defer gh.Close()
	gh.PutIssue("acme", "app", 1, harness.GitHubIssue{State: "open", Title: "Fix the login", Body: "The login sends users home.", Labels: []string{"agent"}})
	gh.PutIssue("acme", "app", 2, harness.GitHubIssue{State: "open", Title: "Urgent outage", Body: "Restore the API.", Labels: []string{"agent", "urgent"}})
	gh.PutIssue("acme", "app", 3, harness.GitHubIssue{State: "open", Title: "Not for agents", Labels: []string{"design"}})
	gh.PutIssue("acme", "app", 4, harness.GitHubIssue{State: "open", Title: "A pull request", Labels: []string{"agent"}, PullRequest: true})
	tokenFile := e.writeFile("gh-token", token+"\n")
	m := e.manifest(fmt.Sprintf(`github: {token: file: %s, apiURL: %s}
queue: {
	sources: [{name: "gh", github: {repo: "acme/app", labels: ["agent"], priorities: urgent: 10, every: "1s"}}]
	gates: beforeDone: "review"
}
instances: a1: {role: image: %q, agent: "claude", env: STANDIN_TURN_MS: "300"}`, agtCUE(tokenFile), agtCUE(gh.APIURL()), img))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	e.agtWait(t, "a1", "idle", 30*time.Second)

	w := e.startWatch(nil, "-f", m)
	// The urgent issue first; the other waits while the gate holds it.
	tasks := e.queueUntil(t, m, 60*time.Second, "needs-review", "gh:acme/app#2")
	if len(tasks) != 2 || tasks["gh:acme/app#1"].ID == "" {
		t.Fatalf("tasks %+v: want issues 1 and 2 (not 3, unlabelled, nor the pull request)", tasks)
	}
	time.Sleep(2 * time.Second)
	if st := e.queueShow(t, m, "gh:acme/app#1").State; st != "queued" {
		t.Fatalf("issue 1 is %s while issue 2 waits for review on the only agent, want queued", st)
	}
	mustCode(t, e.jackin("queue", "approve", "-f", m, "gh:acme/app#2"), 0, "approve #2")
	e.queueUntil(t, m, 30*time.Second, "needs-review", "gh:acme/app#1")
	mustCode(t, e.jackin("queue", "approve", "-f", m, "gh:acme/app#1"), 0, "approve #1")
	e.queueUntil(t, m, 10*time.Second, "done", "gh:acme/app#1", "gh:acme/app#2")

	for _, id := range []string{"gh:acme/app#1", "gh:acme/app#2"} {
		q := e.queueShow(t, m, id)
		var path []string
		for _, tr := range q.Transitions {
			path = append(path, tr.To+"("+strings.SplitN(tr.Who, ":", 2)[0]+")")
		}
		if got := strings.Join(path, " "); got != "queued(source) dispatched(watch) working(watch) needs-review(watch) done(operator)" &&
			got != "queued(source) dispatched(watch) needs-review(watch) done(operator)" {
			t.Errorf("%s went %s", id, got)
		}
	}
	if n := e.replies(t, "GitHub issue acme/app#2: Urgent outage", "a1"); n != 1 {
		t.Errorf("issue 2's prompt (one bracketed paste) answered %d times, want once", n)
	}
	if strings.Contains(w.dump()+w.stderr.String(), token) {
		t.Error("the GitHub token is in watch's output")
	}
	if code := w.stop(); code != 0 {
		t.Fatalf("watch exited %d after SIGINT", code)
	}
}
