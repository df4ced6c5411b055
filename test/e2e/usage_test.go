package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Token and cost telemetry (issue 16) through the real binary: runtime
// stand-ins in agent containers write their usage records as the runtimes
// document them (Claude Code's transcripts with a response repeated over
// several lines, Codex's cumulative token_count events, Gemini CLI's
// JSON Lines chat with a reply written twice, OpenCode's message.updated
// events); the supervisors publish the totals; jackin usage shows them per
// instance and model, priced or unknown, the same after a container
// restart re-reads the files, and after jackin delete.

type usageRow struct {
	Fleet            string   `json:"fleet"`
	Instance         string   `json:"instance"`
	Model            string   `json:"model"`
	InputTokens      int64    `json:"inputTokens"`
	OutputTokens     int64    `json:"outputTokens"`
	CacheReadTokens  int64    `json:"cacheReadTokens"`
	CacheWriteTokens int64    `json:"cacheWriteTokens"`
	CostUSD          *float64 `json:"costUSD"`
}

func (r usageRow) tokens() [4]int64 {
	return [4]int64{r.InputTokens, r.OutputTokens, r.CacheReadTokens, r.CacheWriteTokens}
}

// usageOf is `jackin usage --fleet F -o json`, by instance.
func (e *env) usageOf(t *testing.T) map[string]usageRow {
	t.Helper()
	r := e.jackin("usage", "--fleet", e.fleet, "-o", "json")
	mustCode(t, r, 0, "usage -o json")
	var l struct {
		APIVersion string     `json:"apiVersion"`
		Kind       string     `json:"kind"`
		Items      []usageRow `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || l.Kind != "Usage" || l.APIVersion != "jackin.dev/v1alpha1" {
		t.Fatalf("usage -o json: %v\n%s", err, r)
	}
	out := map[string]usageRow{}
	for _, it := range l.Items {
		if _, dup := out[it.Instance]; dup {
			t.Fatalf("%s: more than one model: %+v", it.Instance, l.Items)
		}
		out[it.Instance] = it
	}
	return out
}

// usageTurns types each line into the instance's agent and waits for its
// reply.
func (e *env) usageTurns(t *testing.T, instance string, lines ...string) {
	t.Helper()
	e.agtWait(t, instance, "idle", 60*time.Second)
	p := e.agtAttach(t, instance)
	p.waitText("stand-in", 15*time.Second)
	for _, l := range lines {
		p.send(l + "\r")
		p.waitText("reply: "+l, 20*time.Second)
	}
	e.agtWait(t, instance, "done,idle", 20*time.Second) // amp: terminal activity, idle
	p.send("\x10\x11")                                  // detach
	if code := p.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("attach %s: exit %d\n%s", instance, code, p.String())
	}
}

// usageExpect polls jackin usage until each instance shows want.
func (e *env) usageExpect(t *testing.T, want map[string][4]int64) map[string]usageRow {
	t.Helper()
	var got map[string]usageRow
	ok := agtUntil(30*time.Second, func() bool {
		got = e.usageOf(t)
		for inst, w := range want {
			if got[inst].tokens() != w {
				return false
			}
		}
		return true
	})
	if !ok {
		diag := ""
		for inst := range want {
			b, _ := os.ReadFile(filepath.Join(e.stateDir, "agents", e.fleet, inst, "usage.json"))
			diag += fmt.Sprintf("--- %s usage.json: %s\n", inst, b)
		}
		t.Fatalf("jackin usage never showed %v; it shows %+v\n%s", want, got, diag)
	}
	return got
}

func TestUsageTelemetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := agtRuntimeImage(t)
	m := e.manifest(fmt.Sprintf(`instances: {
	cl: {role: image: %[1]q, agent: "claude", env: {STANDIN_TURN_MS: "100", STANDIN_MODEL: "claude-sonnet-4-5-20250929"}}
	cx: {role: image: %[1]q, agent: "codex", env: {STANDIN_TURN_MS: "100"}}
	ge: {role: image: %[1]q, agent: "gemini", env: {STANDIN_TURN_MS: "100", STANDIN_MODEL: "gemini-2.5-flash"}}
	oc: {role: image: %[1]q, agent: "opencode", env: {STANDIN_TURN_MS: "100", STANDIN_MODEL: "claude-haiku-4-5"}}
	amp: {role: image: %[1]q, agent: "amp", env: {STANDIN_TURN_MS: "100"}}
}`, img))
	mustCode(t, e.jackin("apply", "-f", m, "--parallel", "8"), 0, "apply")

	for _, inst := range []string{"cl", "cx", "ge", "oc", "amp"} {
		e.usageTurns(t, inst, "first turn", "second")
	}
	// The stand-ins' figures (test/harness/standin), two turns each:
	//   claude: per turn n two responses, the first written as two lines
	//     repeating its usage: input 3+4, cache writes 100+200, cache
	//     reads 1000n each, output 20+20 (counted twice, it would differ);
	//   codex: cumulative input 1000+2000 of which cached 500+1000,
	//     output 10+len("reply: "+line) per turn;
	//   gemini: input 1000, output 10+len(reply) plus 5 thoughts per turn;
	//   opencode: input 1000, output 10+len(reply) per turn.
	out := 10 + len("reply: first turn") + 10 + len("reply: second")
	want := map[string][4]int64{
		"cl": {14, 80, 6000, 600},
		"cx": {1500, int64(out), 1500, 0},
		"ge": {2000, int64(out + 10), 0, 0},
		"oc": {2000, int64(out), 0, 0},
	}
	got := e.usageExpect(t, want)
	if _, ok := got["amp"]; ok {
		t.Errorf("amp records no usage jackin reads, yet: %+v", got["amp"])
	}
	// Priced at the table's list prices; the stand-in Codex model unknown.
	cost := func(in, out, cr, cw, pin, pout, pcr, pcw float64) float64 {
		return (in*pin + out*pout + cr*pcr + cw*pcw) / 1e6
	}
	for inst, c := range map[string]float64{
		"cl": cost(14, 80, 6000, 600, 3, 15, 0.30, 3.75),
		"ge": cost(2000, float64(out+10), 0, 0, 0.30, 2.50, 0.03, 0),
		"oc": cost(2000, float64(out), 0, 0, 1, 5, 0.10, 1.25),
	} {
		if got[inst].CostUSD == nil || math.Abs(*got[inst].CostUSD-c) > 1e-6 {
			t.Errorf("%s: cost %v, want %v", inst, got[inst].CostUSD, c)
		}
	}
	if got["cx"].Model != "gpt-standin" || got["cx"].CostUSD != nil {
		t.Errorf("cx: an unknown model priced: %+v", got["cx"])
	}
	r := e.jackin("usage", "--fleet", e.fleet)
	mustCode(t, r, 0, "usage")
	for _, s := range []string{"claude-sonnet-4-5-20250929", "gpt-standin", "TOTAL"} {
		if !contains(r.stdout, s) {
			t.Errorf("usage table lacks %q:\n%s", s, r.stdout)
		}
	}

	// A container restart re-reads every file: nothing counts twice.
	for _, inst := range []string{"cl", "cx", "ge", "oc"} {
		before, _ := os.ReadFile(filepath.Join(e.stateDir, "agents", e.fleet, inst, "usage.json"))
		docker(t, "restart", "-t", "5", e.name(inst))
		if inst == "oc" {
			continue // its events are not replayed: nothing to publish again
		}
		if !agtUntil(30*time.Second, func() bool {
			b, _ := os.ReadFile(filepath.Join(e.stateDir, "agents", e.fleet, inst, "usage.json"))
			return len(b) > 0 && string(b) != string(before)
		}) {
			t.Fatalf("%s: no usage published after the restart\n%s", inst, e.agtDiag(inst))
		}
	}
	e.usageExpect(t, want)

	// A turn after the restart (a new session of the stand-in) adds to it.
	e.usageTurns(t, "cl", "third")
	want["cl"] = [4]int64{14 + 7, 80 + 40, 6000 + 2000, 600 + 300}
	got = e.usageExpect(t, want)

	// jackin get shows the same totals: usage in -o json, COST in the
	// table ("?" for the unpriced model, "-" for amp, which records none).
	e.usageInGet(t, m, want, got)

	// Deleted: the totals stay.
	mustCode(t, e.jackin("delete", "--fleet", e.fleet), 0, "delete")
	if _, err := os.Stat(filepath.Join(e.stateDir, "agents", e.fleet, "cl")); err == nil {
		t.Error("the agent directory outlived delete")
	}
	e.usageExpect(t, want)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// usageInGet checks `jackin get`'s usage against jackin usage's figures:
// the tokens of each instance in -o json, and its COST cell.
func (e *env) usageInGet(t *testing.T, m string, want map[string][4]int64, priced map[string]usageRow) {
	t.Helper()
	items := getItems[struct {
		Instance string    `json:"instance"`
		Usage    *usageRow `json:"usage"`
	}](t, e, "-f", m)
	seen := map[string]bool{}
	for _, it := range items {
		seen[it.Instance] = true
		w, ok := want[it.Instance]
		switch {
		case !ok && it.Usage != nil:
			t.Errorf("get: %s has usage %+v, it records none", it.Instance, *it.Usage)
		case ok && it.Usage == nil:
			t.Errorf("get: %s has no usage, want %v", it.Instance, w)
		case ok && it.Usage.tokens() != w:
			t.Errorf("get: %s usage %+v, want %v", it.Instance, *it.Usage, w)
		}
	}
	if len(seen) != 5 {
		t.Fatalf("get -o json lists %d instances: %+v", len(seen), items)
	}
	r := e.jackin("get", "-f", m)
	mustCode(t, r, 0, "get")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	col := strings.Index(lines[0], "COST")
	if col < 0 {
		t.Fatalf("get has no COST column:\n%s", r.stdout)
	}
	cell := func(inst string) string {
		for _, l := range lines[1:] {
			if f := strings.Fields(l); len(f) > 0 && f[0] == inst && len(l) > col {
				return strings.Fields(l[col:])[0]
			}
		}
		t.Fatalf("get has no row for %s:\n%s", inst, r.stdout)
		return ""
	}
	if c := cell("amp"); c != "-" {
		t.Errorf("amp's COST %q, want -", c)
	}
	if c := cell("cx"); c != "?" {
		t.Errorf("cx's COST (an unpriced model) %q, want ?", c)
	}
	if c := cell("cl"); !strings.HasPrefix(c, "$") || c != formatUSD(*priced["cl"].CostUSD) {
		t.Errorf("cl's COST %q, want %s", c, formatUSD(*priced["cl"].CostUSD))
	}
	if r := e.jackin("get", "-f", m, "--no-telemetry"); strings.Contains(r.stdout, "COST") {
		t.Errorf("get --no-telemetry still has COST:\n%s", r.stdout)
	}
}

// formatUSD is how jackin's tables print a cost (cmd/jackin formatCost).
func formatUSD(c float64) string {
	if c > 0 && c < 0.01 {
		return fmt.Sprintf("$%.4f", c)
	}
	return fmt.Sprintf("$%.2f", c)
}
