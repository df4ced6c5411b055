package bench

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

	"github.com/jackin-dev/jackin/supervisor"
)

// BenchmarkQueueDispatchLatency runs jackin watch over a queue of short
// tasks (a dir source) and two Claude Code stand-ins that take 200ms a
// turn, and times each dispatch: from the moment an agent turned done
// (the state its supervisor published, from the Stop hook) to the moment
// the next task's prompt arrived in the agent (the stand-in's own log of
// the line it read). That path is the supervisor's state stream to watch,
// the dispatcher's pass and its store writes, a new exec into the
// container and the prompt typed on the agent's terminal. Target: p95
// under 1s.
func BenchmarkQueueDispatchLatency(b *testing.B) {
	setup(b)
	img := runtimeImage(b)
	const agents, tasks = 2, 60
	dir := b.TempDir()
	must(b, os.MkdirAll(filepath.Join(dir, "tasks"), 0o755))
	for i := range tasks {
		must(b, os.WriteFile(filepath.Join(dir, "tasks", fmt.Sprintf("t%03d.md", i)),
			[]byte(fmt.Sprintf("---\ntitle: task %d\n---\nbench task %d\n", i, i)), 0o644))
	}
	var inst strings.Builder
	for i := range agents {
		fmt.Fprintf(&inst, "\tq%d: {role: image: %q, agent: \"claude\", env: {STANDIN_TURN_MS: \"200\", STANDIN_LOG: \"/tmp/standin.jsonl\"}}\n", i, img)
	}
	f := applyAgentFleetIn(b, dir, "bench-queue-dispatch", "queue: sources: [{name: \"t\", dir: \"tasks\"}]\n", inst.String())
	for i := range agents {
		waitPublished(b, f.agentDir(fmt.Sprintf("q%d", i)), "idle", 60*time.Second)
	}

	start := time.Now()
	startWatcher(b, f.state, f.manifest, "-v", "1")
	deadline := time.Now().Add(5 * time.Minute)
	for {
		out, err := f.jackinOut(time.Minute, "queue", "list", "-f", f.manifest, "-o", "json")
		if err != nil {
			b.Fatalf("queue list: %v\n%s", err, tail(out, 20))
		}
		var doc struct {
			Items []struct {
				State string `json:"state"`
			} `json:"items"`
		}
		must(b, json.Unmarshal([]byte(out), &doc))
		done := 0
		for _, it := range doc.Items {
			if it.State == "done" {
				done++
			}
		}
		if done == tasks {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("after 5m %d of %d tasks are done", done, tasks)
		}
		time.Sleep(500 * time.Millisecond)
	}
	b.Logf("%d tasks of a 200ms turn on %d agents done in %v", tasks, agents, time.Since(start).Round(time.Millisecond))

	var lat []time.Duration
	for i := range agents {
		name := fmt.Sprintf("q%d", i)
		lat = append(lat, dispatchGaps(b, f, name)...)
	}
	if len(lat) < tasks-agents {
		b.Fatalf("%d dispatches measured, want %d", len(lat), tasks-agents)
	}
	reportLatency(b, "idle-to-prompt", lat, "p95 < 1s")
	// Where the time goes, from watch's own log of each dispatch: the
	// agent's state change until the dispatch began (the stream, the
	// pass), recording it, typing the prompt (an exec into the container).
	raw, err := os.ReadFile(filepath.Join(dir, "watch.log"))
	must(b, err)
	var seen, record, prompt []time.Duration
	for _, line := range strings.Split(string(raw), "\n") {
		var ev struct {
			Msg   string `json:"msg"`
			Since int64  `json:"sinceAgentStateMs"`
			Rec   int64  `json:"recordMs"`
			Typed int64  `json:"promptMs"`
			State string `json:"agentState"`
		}
		if json.Unmarshal([]byte(line), &ev) != nil || ev.Msg != "dispatch" || ev.State != "done" {
			continue
		}
		seen = append(seen, time.Duration(ev.Since)*time.Millisecond)
		record = append(record, time.Duration(ev.Rec)*time.Millisecond)
		prompt = append(prompt, time.Duration(ev.Typed)*time.Millisecond)
	}
	if len(seen) > 0 {
		reportLatency(b, "state-to-dispatch", seen, "part: the state stream and the pass")
		reportLatency(b, "record-dispatch", record, "part: the store")
		reportLatency(b, "type-prompt", prompt, "part: exec into the container and the supervisor")
	}
}

// dispatchGaps pairs each prompt an agent read (but its first) with the
// done state its supervisor published last before it.
func dispatchGaps(b *testing.B, f *agentFleet, instance string) []time.Duration {
	b.Helper()
	states, err := supervisor.ReadEvents(f.agentDir(instance))
	must(b, err)
	var dones []time.Time
	for _, st := range states {
		if st.State == "done" {
			dones = append(dones, st.Since)
		}
	}
	sort.Slice(dones, func(i, j int) bool { return dones[i].Before(dones[j]) })
	out, err := exec.Command("docker", "exec", f.container(instance), "cat", "/tmp/standin.jsonl").Output()
	must(b, err)
	var starts []time.Time
	for _, line := range strings.Split(string(out), "\n") {
		var ev struct {
			Kind  string    `json:"kind"`
			Phase string    `json:"phase"`
			TS    time.Time `json:"ts"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Kind == "turn" && ev.Phase == "start" {
			starts = append(starts, ev.TS)
		}
	}
	var gaps []time.Duration
	for k := 1; k < len(starts); k++ {
		// The done that ended the previous turn.
		var last time.Time
		for _, d := range dones {
			if d.After(starts[k-1]) && d.Before(starts[k]) {
				last = d
			}
		}
		if last.IsZero() {
			b.Fatalf("%s: no done between the prompts read at %s and %s", instance, starts[k-1].Format(time.StampMicro), starts[k].Format(time.StampMicro))
		}
		gaps = append(gaps, starts[k].Sub(last))
	}
	b.Logf("%s: %d prompts read, %d dispatch gaps", instance, len(starts), len(gaps))
	return gaps
}

// waitPublished waits until the agent's supervisor published state.
func waitPublished(b *testing.B, dir, state string, limit time.Duration) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for {
		if st, err := supervisor.ReadPublished(dir); err == nil && st.State == state {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s never published %s", dir, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
