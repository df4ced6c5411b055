package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/store"
)

// hardeningProbe is the part of `/agent probe` these tests read.
type hardeningProbe struct {
	UID              int    `json:"uid"`
	GID              int    `json:"gid"`
	CapEff           string `json:"capEff"`
	CapBnd           string `json:"capBnd"`
	NoNewPrivs       int    `json:"noNewPrivs"`
	NofileSoft       uint64 `json:"nofileSoft"`
	NofileHard       uint64 `json:"nofileHard"`
	MemoryLimitBytes int64  `json:"memoryLimitBytes"`
	PidsLimit        int64  `json:"pidsLimit"`
	Paths            []struct {
		Path     string `json:"path"`
		Writable bool   `json:"writable"`
		Error    string `json:"error"`
	} `json:"paths"`
}

func (e *env) hardeningProbe(instance string, dirs ...string) hardeningProbe {
	e.t.Helper()
	out := docker(e.t, append([]string{"exec", e.name(instance), "/agent", "probe"}, dirs...)...)
	var p hardeningProbe
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		e.t.Fatalf("probe output: %v\n%s", err, out)
	}
	e.t.Logf("probe %s: %s", instance, out)
	return p
}

// TestHardeningNofileLimit: resources.nofile is the open-files limit of the
// agent's processes (soft and hard), as the contract says, next to the
// memory and pids limits; an instance without it keeps the engine's default.
func TestHardeningNofileLimit(t *testing.T) {
	e := newEnv(t)
	m := e.manifest(fmt.Sprintf(`instances: {
	limited: {
		role: image: %[1]q
		command: ["/agent", "idle"]
		resources: {memory: "64Mi", pids: 40, nofile: 2048}
	}
	plain: {
		role: image: %[1]q
		command: ["/agent", "idle"]
	}
}
`, agentImage))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")

	doc, r := e.explainDoc("-f", m, "limited")
	if len(doc.Instances) != 1 {
		t.Fatalf("want one contract:\n%s", r)
	}
	c := doc.Instances[0]
	if c.Resources.Nofile.Value != 2048 || c.Resources.Nofile.Unlimited || c.Resources.Nofile.Unit != "files" {
		t.Fatalf("contract nofile: %+v", c.Resources.Nofile)
	}
	p := e.hardeningProbe("limited")
	if p.NofileSoft != uint64(c.Resources.Nofile.Value) || p.NofileHard != uint64(c.Resources.Nofile.Value) {
		t.Errorf("nofile: contract %+v, in force soft %d hard %d", c.Resources.Nofile, p.NofileSoft, p.NofileHard)
	}
	if p.MemoryLimitBytes != c.Resources.Memory.Value || p.PidsLimit != c.Resources.Pids.Value {
		t.Errorf("limits: contract memory %+v pids %+v, in force %d and %d", c.Resources.Memory, c.Resources.Pids, p.MemoryLimitBytes, p.PidsLimit)
	}
	if got := docker(t, "inspect", "--format", "{{json .HostConfig.Ulimits}}", e.name("limited")); !strings.Contains(got, `"Name":"nofile","Hard":2048,"Soft":2048`) {
		t.Errorf("engine ulimits: %s", got)
	}

	plainDoc, _ := e.explainDoc("-f", m, "plain")
	if n := plainDoc.Instances[0].Resources.Nofile; !n.Unlimited || !strings.Contains(n.Text, "engine default") {
		t.Errorf("plain contract nofile: %+v", n)
	}
	if pp := e.hardeningProbe("plain"); pp.NofileSoft == 2048 {
		t.Errorf("an instance without nofile got the limit of another: %+v", pp)
	}

	// Raising the limit recreates with the field as the reason.
	m = e.manifest(fmt.Sprintf(`instances: {
	limited: {
		role: image: %[1]q
		command: ["/agent", "idle"]
		resources: {memory: "64Mi", pids: 40, nofile: 4096}
	}
	plain: {
		role: image: %[1]q
		command: ["/agent", "idle"]
	}
}
`, agentImage))
	d := e.jackin("diff", "-f", m)
	mustCode(t, d, 1, "diff after raising nofile")
	if !strings.Contains(d.stdout, "resources changed: nofile 2048 → 4096") || strings.Contains(d.stdout, "-/+ plain") || !strings.Contains(d.stdout, "-/+ limited") {
		t.Errorf("diff should recreate only limited, for nofile 2048 → 4096:\n%s", d)
	}
}

// TestHardeningOOMKilled: an agent that allocates past its memory limit is
// killed by the kernel; `jackin get` shows it as oom-killed (not merely
// stopped) and the store keeps one oom-killed event for the kill, which a
// later apply (restarting the container, which clears the engine's flag)
// does not lose.
func TestHardeningOOMKilled(t *testing.T) {
	e := newEnv(t)
	m := e.manifest(fmt.Sprintf(`instances: {
	hog: {
		role: image: %[1]q
		command: ["/agent", "alloc", "256"]
		resources: {memory: "32Mi"}
	}
	fine: {
		role: image: %[1]q
		command: ["/agent", "exit", "0"]
	}
}
`, agentImage))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := e.containers()
		if st[e.name("hog")] == "exited" && st[e.name("fine")] == "exited" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containers did not exit: %v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := docker(t, "inspect", "--format", "{{.State.OOMKilled}} {{.State.ExitCode}}", e.name("hog")); got != "true 137" {
		t.Fatalf("the engine does not report an OOM kill: %q", got)
	}

	r := e.jackin("get", "-f", m, "-o", "json")
	mustCode(t, r, 0, "get")
	var list struct {
		Items []struct {
			Instance string `json:"instance"`
			Observed string `json:"observed"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("get -o json: %v\n%s", err, r)
	}
	observed := map[string]string{}
	for _, it := range list.Items {
		observed[it.Instance] = it.Observed
	}
	if observed["hog"] != "oom-killed" || observed["fine"] != "stopped" {
		t.Fatalf("get observed %v, want hog oom-killed and fine stopped\n%s", observed, r)
	}
	table := e.jackin("get", "-f", m)
	mustCode(t, table, 0, "get (table)")
	if !strings.Contains(table.stdout, "oom-killed") {
		t.Errorf("get table does not show oom-killed:\n%s", table)
	}

	// get again and apply (which restarts hog): still one event for the kill.
	mustCode(t, e.jackin("get", "-f", m), 0, "get again")
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply restarts")
	st, err := store.Open(context.Background(), e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.Events(context.Background(), e.fleet, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ooms []store.Event
	for _, ev := range evs {
		if ev.Kind == "oom-killed" {
			ooms = append(ooms, ev)
		}
	}
	if len(ooms) < 1 || ooms[len(ooms)-1].Instance != "hog" || !strings.Contains(ooms[len(ooms)-1].Message, "OOM killer") {
		t.Fatalf("store events: want an oom-killed event for hog, got %+v", evs)
	}
	for _, ev := range ooms {
		if ev.Instance != "hog" {
			t.Errorf("oom-killed event for %s: %+v", ev.Instance, ev)
		}
	}
	// The first kill is recorded once however often it was observed (a
	// second kill after the restart may add one more).
	seen := map[string]int{}
	for _, ev := range ooms {
		seen[ev.Message]++
		if seen[ev.Message] > 1 {
			t.Errorf("the same kill recorded twice: %+v", ooms)
		}
	}
}
