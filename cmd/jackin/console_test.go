package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/fake"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/supervisor"
	"github.com/jackin-dev/jackin/telemetry"
)

func TestConsoleNeedsATerminal(t *testing.T) {
	stdout, stderr, code := runInProcess(t, "", "console", "--fleet", "demo")
	if code != exitInvalid || stdout != "" {
		t.Fatalf("console without a terminal: exit %d, stdout %q; want 2 and nothing", code, stdout)
	}
	if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "needs a terminal") {
		t.Errorf("console without a terminal: want one line on stderr, got %q", stderr)
	}
	if _, _, code := runInProcess(t, "", "console", "--fleet", "demo", "-f", "x.cue"); code != exitInvalid {
		t.Errorf("-f and --fleet together: exit %d, want 2", code)
	}
	if _, _, code := runInProcess(t, "", "console", "--fleet", "demo", "--resync", "10ms"); code != exitInvalid {
		t.Errorf("--resync 10ms: exit %d, want 2", code)
	}
}

func TestBareJackinPrintsHelpWithoutATerminal(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fleet.cue"), []byte("name: \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	stdout, _, code := runInProcess(t, "")
	if code != 0 || !strings.Contains(stdout, "Usage:") || !strings.Contains(stdout, "console") {
		t.Fatalf("bare jackin (not on a terminal, a manifest here): exit %d\n%s", code, stdout)
	}
	if _, _, code := runInProcess(t, "", "nosuchverb"); code == 0 {
		t.Error("an unknown verb exits 0")
	}
}

func TestManifestsHere(t *testing.T) {
	dir := t.TempDir()
	write := func(name string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := manifestsHere(dir); got != nil {
		t.Fatalf("empty dir: %v", got)
	}
	write("fleets/README.md")
	if got := manifestsHere(dir); got != nil {
		t.Fatalf("fleets/ without manifests: %v", got)
	}
	write("fleets/a.yaml")
	if got := manifestsHere(dir); len(got) != 1 || got[0] != "fleets"+string(filepath.Separator) {
		t.Fatalf("fleets/a.yaml: %v", got)
	}
	write("fleet.yaml")
	write("fleet.cue")
	if got := strings.Join(manifestsHere(dir), ","); got != "fleet.cue,fleet.yaml" {
		t.Fatalf("fleet.cue and fleet.yaml: %v", got)
	}
}

func TestConsolePort(t *testing.T) {
	for _, tc := range []struct {
		p    reconciler.SpecPort
		want string
	}{
		{reconciler.SpecPort{Container: 80, Host: 8080, Address: "127.0.0.1", Protocol: "tcp"}, "127.0.0.1:8080->80"},
		{reconciler.SpecPort{Container: 53, Host: 5353, Address: "0.0.0.0", Protocol: "udp"}, "5353->53/udp"},
		{reconciler.SpecPort{Container: 80}, "*->80"},
		{reconciler.SpecPort{Container: 80, Host: 80, Address: "::1"}, "[::1]:80->80"},
	} {
		if got := consolePort(tc.p); got != tc.want {
			t.Errorf("consolePort(%+v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}

// consoleFixture is a console source over the fake backend: a manifest of
// two instances, one of them with a running agent container that
// published its state.
func consoleFixture(t *testing.T, withManifest bool) (*consoleSource, *fake.Driver, string) {
	t.Helper()
	ctx := context.Background()
	stateDir, dir := t.TempDir(), t.TempDir()
	m := filepath.Join(dir, "fleet.cue")
	body := `apiVersion: "jackin.dev/v1alpha1"
kind: "Fleet"
name: "demo"
instances: {
	web: {role: image: "example.com/agent:1", agent: "claude", description: "the web agent", network: ports: [{container: 80, host: 8080, address: "127.0.0.1"}]}
	api: {role: image: "example.com/agent:1", agent: "codex"}
}
`
	if err := os.WriteFile(m, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	a := &app{global: globalOptions{stateDir: stateDir}, stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, log: logr.Discard()}
	drv := fake.New()
	drv.Seed(drivers.ObservedResource{Kind: drivers.KindContainer, Name: "jk-demo-web", State: drivers.StateRunning, Status: "Up 3 minutes",
		Labels: map[string]string{drivers.LabelManagedBy: drivers.ManagedByValue, drivers.LabelFleet: "demo", drivers.LabelInstance: "web", drivers.LabelComponent: drivers.ComponentAgent}})
	hostDir := supervisor.HostDir(stateDir, "demo", "web")
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-2 * time.Minute).UTC()
	st := supervisor.Status{V: 1, Runtime: "claude", State: "blocked", Detail: "Bash", Since: since, Source: "hooks", Seq: 3, Boot: "b1"}
	b, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(hostDir, supervisor.StateFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	var events []byte
	for i, s := range []string{"idle", "working", "blocked"} {
		e := st
		e.State, e.Seq, e.Since = s, int64(i+1), since.Add(time.Duration(i-2)*time.Minute)
		if s != "blocked" {
			e.Detail = ""
		}
		line, _ := json.Marshal(e)
		events = append(append(events, line...), '\n')
	}
	if err := os.WriteFile(filepath.Join(hostDir, supervisor.EventsFile), events, 0o644); err != nil {
		t.Fatal(err)
	}
	sess := &session{drv: drv, set: drivers.Set{drivers.DefaultBackend: drv}}
	src := &consoleSource{a: a, sess: sess, fleet: "demo", exe: "/bin/jackin", contracts: map[string][]string{}, specs: map[string]reconciler.Spec{}, origin: "engine, no manifest"}
	if withManifest {
		fleet, err := a.loadFleet(ctx, []string{m})
		if err != nil {
			t.Fatal(err)
		}
		sess.fleet = fleet
		res, err := a.plan(ctx, sess, reconciler.PlanOptions{Prune: true, AllowEmpty: true}, false)
		if err != nil {
			t.Fatal(err)
		}
		src.manifest, src.desired, src.files, src.origin = fleet, res.Desired, []string{m}, "fleet.cue"
		for _, d := range res.Desired.Instances {
			src.specs[d.Name] = d.Spec
		}
	}
	return src, drv, stateDir
}

func TestConsoleSnapshotWithManifest(t *testing.T) {
	src, _, _ := consoleFixture(t, true)
	ctx := context.Background()
	snap, err := src.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Fleet != "demo" || snap.Origin != "fleet.cue" || len(snap.Rows) != 2 {
		t.Fatalf("snapshot %+v", snap)
	}
	byName := map[string]int{}
	for i, r := range snap.Rows {
		byName[r.Instance] = i
	}
	api, web := snap.Rows[byName["api"]], snap.Rows[byName["web"]]
	if api.Observed != "missing" || api.Sync != "drift: create" || api.Runtime != "codex" || api.State != "" {
		t.Errorf("api (no container): %+v", api)
	}
	if web.Observed != "running" || web.State != "blocked" || web.StateDetail != "Bash" || web.Runtime != "claude" || web.Description != "the web agent" {
		t.Errorf("web: %+v", web)
	}
	if len(web.Ports) != 1 || web.Ports[0] != "127.0.0.1:8080->80" {
		t.Errorf("web's ports %v", web.Ports)
	}
	// Neither a sampler nor usage wired: nil, drawn as "-"; no egress
	// proxy: no denial count.
	if web.Resources != nil || web.Usage != nil || web.Denied != nil {
		t.Errorf("web without telemetry: %+v", web)
	}
	// The optional inputs, when set, fill the columns.
	src.resources = func(_ context.Context, fleet string, obs reconciler.Observations) (map[string]telemetry.Resources, error) {
		if fleet != "demo" || obs[drivers.DefaultBackend] == nil {
			t.Errorf("resources called with %q %v", fleet, obs)
		}
		return map[string]telemetry.Resources{"web": {CPUPercent: 12, MemoryBytes: 1 << 20}}, nil
	}
	cost := 0.5
	src.usage = func(context.Context, string) (map[string][]telemetry.Usage, error) {
		return map[string][]telemetry.Usage{"web": {{Model: "m", InputTokens: 10, CostUSD: &cost}}}, nil
	}
	snap, err = src.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range snap.Rows {
		switch r.Instance {
		case "web":
			if r.Resources == nil || r.Resources.CPUPercent != 12 || len(r.Usage) != 1 {
				t.Errorf("web with telemetry: %+v", r)
			}
		case "api":
			if r.Resources != nil || r.Usage == nil || len(r.Usage) != 0 {
				t.Errorf("api with usage wired but none recorded: want resources nil and usage empty (zero), got %+v", r)
			}
		}
	}

	d, err := src.Detail(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Contract) == 0 || !strings.Contains(strings.Join(d.Contract, "\n"), "Identity") {
		t.Errorf("web's contract summary: %q", d.Contract)
	}
	if len(d.States) != 3 || d.States[2].State != "blocked" || d.States[2].Detail != "Bash" {
		t.Errorf("web's state changes: %+v", d.States)
	}
	// The fake backend has no logs: said, not fatal.
	if !strings.Contains(strings.Join(d.Problems, "\n"), "log") {
		t.Errorf("a backend without logs is not said: %q", d.Problems)
	}
	text, err := src.Explain(ctx, "web")
	if err != nil || !strings.Contains(text, "web") || !strings.Contains(text, "the web agent") {
		t.Errorf("explain web: %v\n%s", err, text)
	}
	cmd, err := src.AttachCommand("web")
	if err != nil || strings.Join(cmd.Args[1:], " ") != "--state-dir "+src.a.global.stateDir+" attach --fleet demo web" {
		t.Errorf("attach command %v %v", cmd.Args, err)
	}
}

func TestConsoleSnapshotWithoutManifest(t *testing.T) {
	src, _, _ := consoleFixture(t, false)
	ctx := context.Background()
	snap, err := src.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Rows) != 1 || snap.Rows[0].Instance != "web" || snap.Rows[0].State != "blocked" || snap.Rows[0].Sync != "" {
		t.Fatalf("--fleet snapshot: %+v", snap.Rows)
	}
	if _, err := src.Explain(ctx, "web"); err == nil || !strings.Contains(err.Error(), "-f PATH") {
		t.Errorf("explain without a manifest: %v", err)
	}
	d, err := src.Detail(ctx, "web")
	if err != nil || len(d.Contract) == 0 {
		t.Fatalf("detail without a manifest: %v %+v", err, d)
	}
}

func TestConsoleWatch(t *testing.T) {
	src, drv, stateDir := consoleFixture(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := src.Watch(ctx)
	wait := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case <-time.After(5 * time.Second):
			t.Fatalf("no change reported after %s", what)
		}
	}
	drain := func() {
		time.Sleep(3 * consoleDebounce)
		for {
			select {
			case <-changes:
			default:
				return
			}
		}
	}
	// The watches are set up in goroutines: let them start.
	time.Sleep(300 * time.Millisecond)
	drain()

	// A supervisor publishes a new state (replaced by rename).
	hostDir := supervisor.HostDir(stateDir, "demo", "web")
	tmp := filepath.Join(hostDir, ".state-x")
	if err := os.WriteFile(tmp, []byte(`{"v":1,"state":"idle"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(hostDir, supervisor.StateFile)); err != nil {
		t.Fatal(err)
	}
	wait("a published state")
	drain()

	// A new instance's directory, then its state file.
	newDir := supervisor.HostDir(stateDir, "demo", "new")
	if err := os.MkdirAll(newDir, 0o755); err != nil {
		t.Fatal(err)
	}
	wait("a new agent directory")
	drain()
	if err := os.WriteFile(filepath.Join(newDir, supervisor.StateFile), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	wait("a new instance's state")
	drain()

	// An engine event about the fleet.
	if err := drv.Kill("jk-demo-web"); err != nil {
		t.Fatal(err)
	}
	wait("an engine event")

	cancel()
	select {
	case _, ok := <-changes:
		for ok {
			_, ok = <-changes
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the change channel is not closed when the context ends")
	}
}
