package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/supervisor"
	"github.com/jackin-dev/jackin/usage"
)

func publishUsage(t *testing.T, stateDir, fleet, instance, body string) {
	t.Helper()
	dir := supervisor.HostDir(stateDir, fleet, instance)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, usage.File), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func usageJSON(t *testing.T, stateDir string, args ...string) usageList {
	t.Helper()
	out, errOut, code := runInProcess(t, "", append([]string{"--state-dir", stateDir, "usage", "-o", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var l usageList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return l
}

func TestUsageCommand(t *testing.T) {
	state := t.TempDir()
	publishUsage(t, state, "demo", "web", `{"v":1,"runtime":"claude","entries":[
		{"session":"s1","model":"claude-sonnet-4-5-20250929","input":1000000,"output":1000},
		{"session":"s2","model":"claude-sonnet-4-5-20250929","input":1000000,"output":1000},
		{"session":"s2","model":"claude-standin","input":5}]}`)
	publishUsage(t, state, "other", "api", `{"v":1,"runtime":"codex","entries":[{"session":"t","model":"gpt-5-codex","input":10,"cacheRead":20,"output":30}]}`)

	l := usageJSON(t, state)
	if l.Kind != "Usage" || l.APIVersion != "jackin.dev/v1alpha1" || len(l.Items) != 3 {
		t.Fatalf("%+v", l)
	}
	web := l.Items[0]
	if web.Fleet != "demo" || web.Instance != "web" || web.Model != "claude-sonnet-4-5-20250929" || web.InputTokens != 2000000 || web.OutputTokens != 2000 || web.CostUSD == nil || *web.CostUSD != 6.03 {
		t.Errorf("%+v", web)
	}
	if l.Items[1].Model != "claude-standin" || l.Items[1].CostUSD != nil {
		t.Errorf("an unknown model priced: %+v", l.Items[1])
	}
	// Read again: not counted twice.
	if again := usageJSON(t, state); again.Items[0].InputTokens != 2000000 {
		t.Errorf("counted twice: %+v", again.Items[0])
	}
	// The agent directory gone (deleted): the totals stay.
	os.RemoveAll(supervisor.HostDir(state, "demo", "web"))
	if l := usageJSON(t, state, "--fleet", "demo"); len(l.Items) != 2 || l.Items[0].InputTokens != 2000000 {
		t.Errorf("after delete: %+v", l.Items)
	}
	if l := usageJSON(t, state, "--fleet", "demo", "api"); len(l.Items) != 0 {
		t.Errorf("instance filter: %+v", l.Items)
	}
	if l := usageJSON(t, state, "api"); len(l.Items) != 1 || l.Items[0].Fleet != "other" {
		t.Errorf("instance in every fleet: %+v", l.Items)
	}
	if l := usageJSON(t, state, "--since", "2999-01-01T00:00:00Z"); len(l.Items) != 0 {
		t.Errorf("since the future: %+v", l.Items)
	}
	if l := usageJSON(t, state, "--since", "1h"); len(l.Items) != 3 {
		t.Errorf("since an hour: %+v", l.Items)
	}

	out, _, code := runInProcess(t, "", "--state-dir", state, "usage")
	if code != 0 || !strings.Contains(out, "TOTAL") || !strings.Contains(out, "$6.03") || !strings.Contains(out, usage.PricesDate) {
		t.Errorf("table (%d):\n%s", code, out)
	}

	// prices.json overrides: the stand-in's model gets a price.
	os.WriteFile(filepath.Join(state, usage.PricesFile), []byte(`{"models":{"claude-standin":{"input":1000000}}}`), 0o644)
	if l := usageJSON(t, state, "--fleet", "demo"); l.Items[1].CostUSD == nil || *l.Items[1].CostUSD != 5 {
		t.Errorf("override: %+v", l.Items[1])
	}
}

func TestUsageBadInput(t *testing.T) {
	state := t.TempDir()
	for _, args := range [][]string{
		{"usage", "--since", "yesterday"},
		{"usage", "--since", "-1h"},
		{"usage", "-o", "xml"},
		{"usage", "a", "b"},
		{"usage", "Not_An_Instance"},
		{"usage", "--fleet", "Bad Name"},
		{"usage", "--fleet", "demo", "-f", "fleet.cue"},
	} {
		_, errOut, code := runInProcess(t, "", append([]string{"--state-dir", state}, args...)...)
		if code != exitInvalid || errOut == "" {
			t.Errorf("%v: exit %d, %q", args, code, errOut)
		}
	}
	os.WriteFile(filepath.Join(state, usage.PricesFile), []byte(`{"models":{"x":{"input":-1}}}`), 0o644)
	if _, errOut, code := runInProcess(t, "", "--state-dir", state, "usage"); code != exitInvalid || !strings.Contains(errOut, "prices.json") {
		t.Errorf("bad prices.json: exit %d, %q", code, errOut)
	}
	// No state dir at all: nothing recorded, nothing created.
	empty := filepath.Join(t.TempDir(), "none")
	if out, _, code := runInProcess(t, "", "--state-dir", empty, "usage"); code != 0 || !strings.Contains(out, "No token usage") {
		t.Errorf("empty: %d %q", code, out)
	}
	if _, err := os.Stat(empty); err == nil {
		t.Error("usage created the state dir")
	}
}

func TestUsageByInstance(t *testing.T) {
	state := t.TempDir()
	a := &app{log: logr.Discard()}
	a.global.stateDir = state
	ctx := context.Background()
	st, err := store.Open(ctx, state)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	publishUsage(t, state, "demo", "web", `{"v":1,"runtime":"claude","entries":[
		{"session":"s1","model":"claude-sonnet-4-5","input":10,"output":100},
		{"session":"s1","model":"claude-haiku-4-5","input":1000,"output":10}]}`)
	publishUsage(t, state, "demo", "api", `{"v":1,"runtime":"codex","entries":[{"session":"t","model":"gpt-standin","output":3}]}`)
	// Before anything is recorded: what is published.
	check := func(got map[string]usage.Summary, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		web := got["web"]
		if web.Model != "claude-sonnet-4-5" || web.InputTokens != 1010 || web.OutputTokens != 110 || web.CostUSD == nil {
			t.Errorf("web: %+v", web)
		}
		if api := got["api"]; api.Model != "gpt-standin" || api.CostUSD != nil {
			t.Errorf("api: %+v", api)
		}
	}
	check(a.usageByInstance(ctx, st, "demo"))
	check(a.usageByInstance(ctx, nil, "demo"))
	if rows, _ := st.Usage(ctx, store.UsageQuery{}); len(rows) != 0 {
		t.Errorf("usageByInstance wrote: %+v", rows)
	}
	// Recorded, then the agent directory gone (deleted): the same, from
	// the store; a published figure lower than the stored one (a restart
	// mid-read) does not lower it.
	a.recordUsage(ctx, st, "demo")
	os.RemoveAll(supervisor.HostDir(state, "demo", "web"))
	publishUsage(t, state, "demo", "api", `{"v":1,"runtime":"codex","entries":[{"session":"t","model":"gpt-standin","output":1}]}`)
	got, err := a.usageByInstance(ctx, st, "demo")
	check(got, err)
	if got["api"].OutputTokens != 3 {
		t.Errorf("api lowered: %+v", got["api"])
	}
}

func TestCostCell(t *testing.T) {
	c, z, small := 1.234, 0.0, 0.00123
	for _, tc := range []struct {
		recorded bool
		cost     *float64
		want     string
	}{{false, nil, "-"}, {true, nil, "?"}, {true, &c, "$1.23"}, {true, &z, "$0.00"}, {true, &small, "$0.0012"}} {
		if got := costCell(tc.recorded, tc.cost); got != tc.want {
			t.Errorf("%v %v: %q, want %q", tc.recorded, tc.cost, got, tc.want)
		}
	}
}
