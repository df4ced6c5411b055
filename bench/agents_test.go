package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Benchmarks of the agent supervisor (issue 15): each measured against the
// same thing done directly, in the same run. The figures are for a human to
// copy; none is asserted.

// BenchmarkAgentAttachKeystroke times single keystrokes until their echo
// comes back, through `jackin attach` and through `docker exec -it` into
// the same container, interleaved one for one. The agent is busybox cat on
// the supervisor's terminal, the direct side busybox cat on the exec's
// terminal: in both the terminal's line discipline echoes, so the round
// trip is the transport alone. Targets: attach at most 1.2x exec, p95 < 20ms.
func BenchmarkAgentAttachKeystroke(b *testing.B) {
	setup(b)
	img := runtimeImage(b)
	const warmup, n = 20, 200
	f := applyAgentFleet(b, "bench-agent-keys", fmt.Sprintf("\techo: {role: image: %q, agent: \"shell\", command: [\"/bin/cat\"]}\n", img))
	ctr := f.container("echo")

	attach := startPTY(b, "jackin attach", jackinBin, "--state-dir", f.state, "attach", "--fleet", f.name, "echo")
	direct := startPTY(b, "docker exec -it", "docker", "exec", "-it", ctr, "cat")
	relay := startRelay(b, "docker exec -i ... agent-relay", ctr)
	t0 := time.Now()
	attach.ready(b, 'Z')
	b.Logf("jackin attach echoed its first keystroke %v after it started", time.Since(t0).Round(time.Millisecond))
	direct.ready(b, 'Z')
	relay.ready(b, 'Z')

	var viaAttach, viaExec, viaRelay []time.Duration
	for i := 0; i < warmup+n; i++ {
		c := byte('a' + i%25) // never Z, never the detach keys
		// Rotate which goes first, so none always follows another.
		var ja, dx, rl time.Duration
		switch i % 3 {
		case 0:
			ja, dx, rl = attach.keystroke(b, c), direct.keystroke(b, c), relay.keystroke(b, c)
		case 1:
			dx, rl, ja = direct.keystroke(b, c), relay.keystroke(b, c), attach.keystroke(b, c)
		default:
			rl, ja, dx = relay.keystroke(b, c), attach.keystroke(b, c), direct.keystroke(b, c)
		}
		if i >= warmup {
			viaAttach, viaExec, viaRelay = append(viaAttach, ja), append(viaExec, dx), append(viaRelay, rl)
		}
	}
	attach.finish("\x10\x11") // ctrl-p ctrl-q: detach, the agent keeps running
	direct.finish("\r\x04")   // end cat's input
	relay.finish("")

	ja50, ja95 := reportLatencyUS(b, "attach-keystroke", viaAttach, "p95 < 20ms")
	dx50, dx95 := reportLatencyUS(b, "exec-keystroke", viaExec, "the direct way")
	rl50, rl95 := reportLatencyUS(b, "relay-keystroke", viaRelay, "to tell where the time goes: the docker CLI running jackin's relay, the attach protocol spoken from the benchmark, no jackin attach process or host terminal")
	r50, r95 := float64(ja50)/float64(dx50), float64(ja95)/float64(dx95)
	b.ReportMetric(r50, "attach/exec-p50-x")
	b.ReportMetric(r95, "attach/exec-p95-x")
	b.Logf("keystroke round trip, %d keystrokes each, interleaved: jackin attach p50 %v p95 %v, docker exec -it p50 %v p95 %v: attach/exec %.2fx at p50, %.2fx at p95 (target <= 1.2x, p95 < 20ms)",
		n, ja50, ja95, dx50, dx95, r50, r95)
	// The relay leg runs the docker CLI without a terminal (a multiplexed
	// stream), jackin attach the engine API in-process: the split is rough.
	b.Logf("where the time goes, p50 (p95): the relay and the supervisor, relay leg - exec leg, %v (%v); jackin attach's own process and host terminal against the CLI's non-tty stream, attach leg - relay leg, %v (%v)",
		rl50-dx50, rl95-dx95, ja50-rl50, ja95-rl95)
}

// reportLatencyUS is reportLatency with microsecond figures (keystrokes
// take well under a millisecond here).
func reportLatencyUS(b *testing.B, what string, ds []time.Duration, target string) (p50, p95 time.Duration) {
	p50, p95, worst := percentiles(ds)
	b.ReportMetric(float64(p50.Microseconds()), what+"-p50-us")
	b.ReportMetric(float64(p95.Microseconds()), what+"-p95-us")
	b.Logf("%s over %d trials: p50 %v, p95 %v, max %v (%s)", what, len(ds), p50.Round(time.Microsecond), p95.Round(time.Microsecond), worst.Round(time.Microsecond), target)
	return p50.Round(time.Microsecond), p95.Round(time.Microsecond)
}

// Claude Code hook payloads, as its documentation gives them.
const (
	claudePrompt = `{"session_id":"bench-session","transcript_path":"/home/agent/.claude/projects/-home-agent/bench-session.jsonl","cwd":"/home/agent","permission_mode":"bypassPermissions","hook_event_name":"UserPromptSubmit","prompt":"bench prompt %d"}`
	claudeStop   = `{"session_id":"bench-session","transcript_path":"/home/agent/.claude/projects/-home-agent/bench-session.jsonl","cwd":"/home/agent","permission_mode":"bypassPermissions","hook_event_name":"Stop","stop_hook_active":false}`
)

// BenchmarkAgentHookToGet fires Claude Code hook events in a claude
// stand-in's container the way Claude Code does (its hook command,
// `/run/jackin/bin/jackin hook claude`, with the event's JSON on stdin; run
// here through docker exec) and times each until `jackin get -o json`
// shows the new state, polling get back to back. Figures: from the end of
// the hook command (the target, p95 < 500ms) and from its start; when the
// supervisor published the state file (polled every 2ms); and the direct
// references: a docker exec of `true` with the same stdin, and one get.
func BenchmarkAgentHookToGet(b *testing.B) {
	setup(b)
	img := runtimeImage(b)
	const events = 20
	f := applyAgentFleet(b, "bench-agent-hook", fmt.Sprintf("\tcl: {role: image: %q, agent: \"claude\"}\n", img))
	ctr := f.container("cl")
	stateFile := filepath.Join(f.agentDir("cl"), "state.json")

	// The stand-in has started and its supervisor publishes a state.
	deadline := time.Now().Add(30 * time.Second)
	for st := ""; st == "" || st == "unknown" || st == "starting"; st = f.agentState(b, "cl") {
		if time.Now().After(deadline) {
			b.Fatalf("the claude stand-in's state is still %q after 30s", st)
		}
		time.Sleep(100 * time.Millisecond)
	}

	var execD, published, afterExec, full, execTrue, getD []time.Duration
	var toSupervisor, toFileSeen, fileToGet []time.Duration
	for i := 0; i < events; i++ {
		payload, want := fmt.Sprintf(claudePrompt, i), "working"
		if i%2 == 1 {
			payload, want = claudeStop, "done"
		}
		type seen struct{ at, since time.Time }
		pub := make(chan seen, 1)
		stop := make(chan struct{})
		t0 := time.Now()
		go func() { // the state file, as the supervisor replaces it
			needle := []byte(`"state":"` + want + `"`)
			for {
				if data, err := os.ReadFile(stateFile); err == nil && bytes.Contains(data, needle) {
					at := time.Now()
					var st struct {
						Since time.Time `json:"since"`
					}
					_ = json.Unmarshal(data, &st)
					pub <- seen{at, st.Since}
					return
				}
				select {
				case <-stop:
					pub <- seen{}
					return
				case <-time.After(2 * time.Millisecond):
				}
			}
		}()
		hook := exec.Command("docker", "exec", "-i", ctr, "/run/jackin/bin/jackin", "hook", "claude")
		hook.Stdin = strings.NewReader(payload)
		if out, err := hook.CombinedOutput(); err != nil {
			close(stop)
			b.Fatalf("hook command: %v\n%s", err, out)
		}
		t1 := time.Now()
		var t2 time.Time
		for {
			start := time.Now()
			st := f.agentState(b, "cl")
			t2 = time.Now()
			getD = append(getD, t2.Sub(start))
			if st == want {
				break
			}
			if t2.Sub(t0) > 10*time.Second {
				close(stop)
				b.Fatalf("event %d: jackin get still shows %q, want %q, 10s after the hook", i, st, want)
			}
		}
		close(stop)
		tp := <-pub
		execD = append(execD, t1.Sub(t0))
		afterExec = append(afterExec, t2.Sub(t1))
		full = append(full, t2.Sub(t0))
		if !tp.at.IsZero() {
			published = append(published, tp.at.Sub(t0))
			// The supervisor's clock is this machine's (same kernel).
			toSupervisor = append(toSupervisor, tp.since.Sub(t0))
			toFileSeen = append(toFileSeen, tp.at.Sub(tp.since))
			fileToGet = append(fileToGet, t2.Sub(tp.at))
		}

		// The direct reference: the same exec with nothing to deliver.
		plain := exec.Command("docker", "exec", "-i", ctr, "/bin/true")
		plain.Stdin = strings.NewReader(payload)
		s := time.Now()
		if out, err := plain.CombinedOutput(); err != nil {
			b.Fatalf("docker exec true: %v\n%s", err, out)
		}
		execTrue = append(execTrue, time.Since(s))
		time.Sleep(50 * time.Millisecond)
	}
	_, a95 := reportLatency(b, "hook-exec-end-to-get", afterExec, "p95 < 500ms")
	reportLatency(b, "hook-exec-start-to-get", full, "the whole path, the hook's docker exec included")
	reportLatency(b, "hook-command-docker-exec", execD, "the hook command through docker exec")
	reportLatency(b, "docker-exec-true", execTrue, "the direct reference: docker exec of true with the same stdin")
	if len(published) > 0 {
		reportLatency(b, "hook-to-state-file", published, "from the start of the hook's exec to the supervisor's state file")
		reportLatency(b, "split-exec-start-to-supervisor", toSupervisor, "docker exec, the hook command's start, the socket: until the state's since")
		reportLatency(b, "split-supervisor-to-file-seen", toFileSeen, "the state's since until the file is seen here (2ms polls)")
		reportLatency(b, "split-file-to-get", fileToGet, "the file seen until a get returns it (back-to-back gets)")
	}

	// The hook command's own cost, as a runtime really runs it (inside the
	// container, no docker exec): one exec runs it 20 times, another runs
	// busybox true 20 times the same way.
	loop := func(cmd string) time.Duration {
		script := fmt.Sprintf(`P='%s'; Q='%s'; i=0; while [ $i -lt 10 ]; do printf '%%s' "$P" | %s; printf '%%s' "$Q" | %s; i=$((i+1)); done`,
			fmt.Sprintf(claudePrompt, 99), claudeStop, cmd, cmd)
		s := time.Now()
		if out, err := exec.Command("docker", "exec", ctr, "sh", "-c", script).CombinedOutput(); err != nil {
			b.Fatalf("hook loop: %v\n%s", err, out)
		}
		return time.Since(s)
	}
	hooks, trues := loop("/run/jackin/bin/jackin hook claude"), loop("/bin/true")
	perHook := (hooks - trues) / 20
	b.ReportMetric(float64(perHook.Microseconds())/1000, "hook-command-in-container-ms")
	b.Logf("the hook command run in the container (no docker exec), 20 runs: %v in all, %v with busybox true in its place: %v per hook beyond true", hooks.Round(time.Millisecond), trues.Round(time.Millisecond), perHook.Round(time.Millisecond))
	g50, g95, _ := percentiles(getD)
	b.ReportMetric(float64(g50.Milliseconds()), "one-get-p50-ms")
	b.Logf("one jackin get -o json (1 instance) over %d calls: p50 %v, p95 %v; polled back to back, so the figures to get include up to one get of waiting", len(getD), g50.Round(time.Millisecond), g95.Round(time.Millisecond))
	b.Logf("hook event to jackin get, %d events: p95 %v after the hook command returned (target < 500ms)", events, a95)
}

// agentState is the instance's agent.state in `jackin get -o json`.
func (f *agentFleet) agentState(b *testing.B, instance string) string {
	b.Helper()
	_, out := f.jackinTimed(b, "get", "-f", f.manifest, "-o", "json", instance)
	var list struct {
		Items []struct {
			Instance string `json:"instance"`
			Agent    *struct {
				State string `json:"state"`
			} `json:"agent"`
		} `json:"items"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		b.Fatalf("jackin get -o json: %v\n%s", err, out)
	}
	for _, it := range list.Items {
		if it.Instance == instance && it.Agent != nil {
			return it.Agent.State
		}
	}
	return ""
}

// BenchmarkAgentSupervisorRSS reads the supervisor's resident set size
// (VmRSS of PID 1 in the agent container) after its agent printed 5,000
// lines (the recent screen keeps the last 2,000), beside one whose agent
// printed nothing, and after an attach replayed that screen. The direct
// references: the agent's own process (busybox sleep) in the same
// container, and the engine's containerd shim of the container, which is
// what holds a `docker run -t` container's terminal. Target: < 15 MB.
func BenchmarkAgentSupervisorRSS(b *testing.B) {
	setup(b)
	img := runtimeImage(b)
	const lines = 5000
	loud := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "line $i: the quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwxyz"; i=$((i+1)); done; exec sleep 1d`, lines)
	f := applyAgentFleet(b, "bench-agent-rss", fmt.Sprintf("\tquiet: {role: image: %q, agent: \"shell\", command: [\"/bin/sleep\", \"1d\"]}\n\tloud: {role: image: %q, agent: \"shell\", command: [\"/bin/sh\", \"-c\", %s]}\n",
		img, img, cueQuote(loud)))
	applied := time.Now()

	// The loud agent has printed everything once its shell became sleep.
	deadline := time.Now().Add(60 * time.Second)
	var sleepPID int
	for {
		pid, err := pidOf(f.container("loud"), "sleep")
		if err == nil {
			sleepPID = pid
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the loud agent did not finish printing in 60s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The supervisor has read it all, and has run long enough to have
	// settled after its start (it trims its start-up pages a few seconds in).
	time.Sleep(max(time.Second, 6*time.Second-time.Since(applied)))

	sup := func(instance string) map[string]int64 {
		st, err := procStatus(f.container(instance), 1)
		must(b, err)
		return st
	}
	quiet, loudSt := sup("quiet"), sup("loud")
	sleepSt, err := procStatus(f.container("loud"), sleepPID)
	must(b, err)
	shell, _ := exec.Command("docker", "exec", f.container("loud"), "sh", "-c", "grep VmRSS /proc/$$/status").CombinedOutput()
	binKB, pssKB, err := smapsOf(f.container("loud"), 1, "/jackin")
	must(b, err)

	// The engine's per-container process: the shim, the parent of the
	// container's PID 1 (readable when this machine shares the engine's
	// PID namespace).
	shimKB := int64(-1)
	if out, err := exec.Command("docker", "inspect", "-f", "{{.State.Pid}}", f.container("loud")).Output(); err == nil {
		var pid int
		fmt.Sscan(string(out), &pid)
		if st, err := hostProcStatus(pid); err == nil {
			if shim, err := hostProcStatus(int(st["PPid"])); err == nil {
				shimKB = shim["VmRSS"]
			}
		}
	}

	// One attach: the recent screen comes first.
	att := startPTY(b, "jackin attach", jackinBin, "--state-dir", f.state, "attach", "--fleet", f.name, "loud")
	last := fmt.Sprintf("line %d:", lines-1)
	if !att.waitText(last, 30*time.Second) {
		b.Fatalf("attach did not replay %q within 30s; got:\n%q", last, tail(att.seen.String(), 10))
	}
	time.Sleep(300 * time.Millisecond)
	att.drain()
	replayed := len(regexp.MustCompile(`line \d+:`).FindAll(att.seen.Bytes(), -1))
	att.finish("\x10\x11")
	time.Sleep(500 * time.Millisecond)
	afterAttach := sup("loud")

	b.ReportMetric(float64(loudSt["VmRSS"])/1024, "supervisor-rss-MB")
	b.ReportMetric(float64(loudSt["RssAnon"])/1024, "supervisor-anon-MB")
	b.ReportMetric(float64(afterAttach["VmHWM"])/1024, "supervisor-peak-rss-MB")
	b.ReportMetric(float64(quiet["VmRSS"])/1024, "supervisor-quiet-rss-MB")
	b.ReportMetric(float64(afterAttach["VmRSS"])/1024, "supervisor-after-attach-rss-MB")
	b.ReportMetric(float64(sleepSt["VmRSS"])/1024, "agent-sleep-rss-MB")
	b.Logf("supervisor (PID 1) after %d lines printed: VmRSS %s (anon %s, file %s, peak %s); after an attach that replayed %d lines: VmRSS %s (anon %s, peak %s) (target < 15 MB; file pages are the kernel's to drop and fault back, anon is the supervisor's own)",
		lines, mb(loudSt["VmRSS"]), mb(loudSt["RssAnon"]), mb(loudSt["RssFile"]), mb(loudSt["VmHWM"]), replayed, mb(afterAttach["VmRSS"]), mb(afterAttach["RssAnon"]), mb(afterAttach["VmHWM"]))
	b.Logf("of which the jackin binary's own mappings (its %s file: text and data the supervisor touched) %s; Pss %s (the binary's pages are shared by every agent container of the state dir: here 2)",
		binSize(), mb(binKB), mb(pssKB))
	b.ReportMetric(float64(binKB)/1024, "supervisor-binary-rss-MB")
	b.Logf("supervisor of an agent that printed nothing: VmRSS %s (anon %s, file %s)", mb(quiet["VmRSS"]), mb(quiet["RssAnon"]), mb(quiet["RssFile"]))
	b.Logf("direct references in the same container: the agent's busybox sleep VmRSS %s; a busybox sh %s", mb(sleepSt["VmRSS"]), strings.Join(strings.Fields(string(shell)), " "))
	if shimKB >= 0 {
		b.ReportMetric(float64(shimKB)/1024, "containerd-shim-rss-MB")
		b.Logf("the engine's containerd shim of the same container: VmRSS %s", mb(shimKB))
	}
}

// cueQuote quotes s as a CUE string (JSON's quoting, which CUE reads).
func cueQuote(s string) string {
	q, _ := json.Marshal(s)
	if bytes.Contains(q, []byte(`\(`)) {
		panic("a CUE interpolation in " + s)
	}
	return string(q)
}

// BenchmarkAgentGet100 times `jackin get -o json` on 100 running agents
// whose supervisors have published their state (100 state files read)
// against today's get, the same command on the same fleet with no state
// to read (the fleet's agent directories moved away for the run), trials
// interleaved. Target: within 1.5x. `jackin diff` on the same fleet is
// reported for reference.
func BenchmarkAgentGet100(b *testing.B) {
	setup(b)
	img := runtimeImage(b)
	const n, trials = 100, 5
	var inst strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&inst, "\t\"a%03d\": {role: image: %q, agent: \"shell\", command: [\"/bin/sleep\", \"1d\"], resources: memory: \"64Mi\"}\n", i, img)
	}
	f := applyAgentFleet(b, "bench-agent-get", inst.String())

	fleetDir := filepath.Join(f.state, "agents", f.name)
	deadline := time.Now().Add(60 * time.Second)
	for {
		published := 0
		for i := 0; i < n; i++ {
			if _, err := os.Stat(filepath.Join(fleetDir, fmt.Sprintf("a%03d", i), "state.json")); err == nil {
				published++
			}
		}
		if published == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d supervisors published a state in 60s", published, n)
		}
		time.Sleep(200 * time.Millisecond)
	}

	states := func(out []byte) map[string]int {
		var list struct {
			Items []struct {
				Agent *struct {
					State string `json:"state"`
				} `json:"agent"`
			} `json:"items"`
		}
		if err := json.Unmarshal(out, &list); err != nil {
			b.Fatalf("jackin get -o json: %v\n%s", err, out)
		}
		m := map[string]int{}
		for _, it := range list.Items {
			if it.Agent == nil {
				m["(none)"]++
			} else {
				m[it.Agent.State]++
			}
		}
		return m
	}
	away := fleetDir + ".away"
	b.Cleanup(func() { _ = os.Rename(away, fleetDir) })
	f.jackinTimed(b, "get", "-f", f.manifest, "-o", "json") // warm the page cache
	var with, without []time.Duration
	var withStates, withoutStates map[string]int
	for i := 0; i < trials; i++ {
		d, out := f.jackinTimed(b, "get", "-f", f.manifest, "-o", "json")
		with, withStates = append(with, d), states(out)
		must(b, os.Rename(fleetDir, away))
		d, out = f.jackinTimed(b, "get", "-f", f.manifest, "-o", "json")
		without, withoutStates = append(without, d), states(out)
		must(b, os.Rename(away, fleetDir))
	}
	var diffs []time.Duration
	for i := 0; i < 3; i++ {
		d, out := f.jackinTimed(b, "diff", "-f", f.manifest)
		if !strings.Contains(string(out), "No changes.") {
			b.Logf("jackin diff on the applied fleet did not say No changes.:\n%s", tail(string(out), 20))
		}
		diffs = append(diffs, d)
	}
	w, wo, df := median(with), median(without), median(diffs)
	ratio := float64(w) / float64(wo)
	b.ReportMetric(float64(w.Milliseconds()), "get-with-state-ms")
	b.ReportMetric(float64(wo.Milliseconds()), "get-without-state-ms")
	b.ReportMetric(ratio, "with/without-x")
	b.ReportMetric(float64(df.Milliseconds()), "diff-ms")
	b.Logf("jackin get -o json on %d running agents, median of %d interleaved: with their state files %v (states %v), without (today's get: no agent directories) %v (states %v): %.2fx (target <= 1.5x); jackin diff on the same fleet, median of 3: %v",
		n, trials, w.Round(time.Millisecond), withStates, wo.Round(time.Millisecond), withoutStates, ratio, df.Round(time.Millisecond))
	b.Logf("all trials: with %v; without %v", roundAll(with), roundAll(without))
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// binSize is the size of the jackin binary the supervisors run.
func binSize() string {
	fi, err := os.Stat(jackinBin)
	if err != nil {
		return "?"
	}
	return mb(fi.Size() / 1024)
}
