package console

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/jackin-dev/jackin/telemetry"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

var testNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

// testRows is a fleet with every kind of row the table draws.
func testRows() []Row {
	gib := int64(1 << 30)
	return []Row{
		{
			Instance: "api", Runtime: "claude", Observed: "running", State: "working", StateSince: testNow.Add(-3 * time.Minute),
			Resources: &telemetry.Resources{CPUPercent: 45.2, MemoryBytes: 812 << 20, MemoryLimitBytes: 2 * gib, SampledAt: testNow},
			Usage:     []telemetry.Usage{{Model: "claude-sonnet-4", InputTokens: 120_000, OutputTokens: 30_500, CostUSD: ptr(1.234)}},
			Ports:     []string{"127.0.0.1:8080->80"}, Denied: ptr(0), Sync: "in-sync",
			Description: "Implements the billing API and reviews its own pull requests",
		},
		{
			Instance: "web", Runtime: "codex", Observed: "running", State: "blocked", StateDetail: "Bash", StateSince: testNow.Add(-45 * time.Second),
			Resources: &telemetry.Resources{CPUPercent: 2.14, MemoryBytes: 1946 << 20, MemoryLimitBytes: 2 * gib, NearMemoryLimit: true, SampledAt: testNow},
			Usage:     []telemetry.Usage{{Model: "gpt-9-preview", InputTokens: 5_000, OutputTokens: 1_200}},
			Denied:    ptr(3), Sync: "drift: recreate",
			Description: "Frontend (Next.js) — waits for approvals",
		},
		{
			Instance: "docs", Runtime: "gemini", Observed: "running", State: "done", StateSince: testNow.Add(-12 * time.Minute),
			Resources: &telemetry.Resources{CPUPercent: 0, MemoryBytes: 96 << 20, SampledAt: testNow},
			Usage: []telemetry.Usage{
				{Model: "gemini-2.5-pro", InputTokens: 900, OutputTokens: 80, CostUSD: ptr(0.05)},
				{Model: "gemini-next", InputTokens: 10, OutputTokens: 5},
			},
			Denied: ptr(0), Sync: "in-sync", Description: "Keeps the docs in step",
		},
		{
			Instance: "worker-1", Runtime: "opencode", Observed: "running", State: "idle", StateSince: testNow.Add(-2 * time.Hour),
			Resources: &telemetry.Resources{CPUPercent: 0.3, MemoryBytes: 210 << 20, SampledAt: testNow},
			Usage:     []telemetry.Usage{}, Ports: []string{"9000->9000", "9001->9001/udp"}, Sync: "in-sync",
		},
		{
			Instance: "worker-2", Runtime: "amp", Observed: "running", State: "starting", StateSince: testNow.Add(-5 * time.Second),
			Sync: "in-sync",
		},
		{
			Instance: "halted", Runtime: "claude", Observed: "stopped", State: "exited", ExitStatus: ptr(0), StateSince: testNow.Add(-50 * time.Hour),
			Sync: "drift: start",
		},
		{
			Instance: "oom", Runtime: "claude", Observed: "oom-killed", State: "exited", ExitStatus: ptr(137), StateSince: testNow.Add(-30 * time.Minute),
			Sync: "drift: start", Description: "Tries to load the whole monorepo in memory",
		},
		{Instance: "new-one", Runtime: "shell", Observed: "missing", Sync: "drift: create"},
		{Instance: "leftover", Observed: "orphan", State: "idle", Sync: "drift: delete"},
	}
}

func testDetail() Detail {
	return Detail{
		Instance: "api",
		Contract: []string{
			"1. Identity     image jackin-e2e:v1, agent claude, backend docker",
			"2. Sandbox      Docker access none; host Docker socket never mounted",
			"3. Filesystem   rw /src/billing -> /work",
			"5. Network      egress allowlist",
			"6. Service ports 127.0.0.1:8080 -> 80/tcp",
		},
		States: []StateChange{
			{At: testNow.Add(-20 * time.Minute), State: "starting"},
			{At: testNow.Add(-19 * time.Minute), State: "idle"},
			{At: testNow.Add(-10 * time.Minute), State: "working"},
			{At: testNow.Add(-5 * time.Minute), State: "blocked", Detail: "Bash"},
			{At: testNow.Add(-3 * time.Minute), State: "working"},
		},
		Egress: []EgressDecision{
			{At: testNow.Add(-4 * time.Minute), Allowed: true, Method: "CONNECT", Destination: "api.anthropic.com:443", Rule: "api.anthropic.com"},
			{At: testNow.Add(-2 * time.Minute), Allowed: false, Method: "CONNECT", Destination: "evil.example:443", Rule: "no rule"},
		},
		Logs: []string{
			"standin claude args=",
			"> add the invoice endpoint",
			"reply: add the invoice endpoint",
			"running go test ./...",
			"ok  	billing	0.412s",
		},
	}
}

// fakeSource is a Source with every optional part.
type fakeSource struct {
	snap    Snapshot
	detail  map[string]Detail
	logs    string
	explain string
	calls   []string
}

func (f *fakeSource) Snapshot(context.Context) (Snapshot, error) {
	f.calls = append(f.calls, "snapshot")
	return f.snap, nil
}

func (f *fakeSource) Detail(_ context.Context, inst string) (Detail, error) {
	f.calls = append(f.calls, "detail "+inst)
	d, ok := f.detail[inst]
	if !ok {
		return Detail{}, errors.New("no detail for " + inst)
	}
	return d, nil
}

func (f *fakeSource) AttachCommand(inst string) (*exec.Cmd, error) {
	f.calls = append(f.calls, "attach "+inst)
	return exec.Command("true"), nil
}

func (f *fakeSource) FollowLogs(_ context.Context, inst string, tail int) (io.ReadCloser, error) {
	f.calls = append(f.calls, fmt.Sprintf("logs %s %d", inst, tail))
	return io.NopCloser(strings.NewReader(f.logs)), nil
}

func (f *fakeSource) Explain(_ context.Context, inst string) (string, error) {
	f.calls = append(f.calls, "explain "+inst)
	return f.explain, nil
}

func newFake(rows []Row) *fakeSource {
	return &fakeSource{
		snap:    Snapshot{Fleet: "demo", Origin: "fleet.cue", Endpoint: "unix:///var/run/docker.sock", Rows: rows, At: testNow},
		detail:  map[string]Detail{"api": testDetail()},
		logs:    "line one\nline two\n\x1b[31mred\x1b[0m three\npartial",
		explain: "Session contract of api (fleet demo)\n\n 1 Identity\n   image jackin-e2e:v1\n",
	}
}

// newTestModel is a model of size w x h that has taken src's snapshot and
// the selected instance's detail.
func newTestModel(t *testing.T, src *fakeSource, w, h int, color bool) *Model {
	t.Helper()
	m := New(context.Background(), src, Options{Color: color, Now: func() time.Time { return testNow }, Stderr: io.Discard})
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	deliver(t, m, m.refresh())
	return m
}

// deliver runs cmd (a Source call, not a timer) and hands its message, and
// those of what it returns, to the model.
func deliver(t *testing.T, m *Model, cmd tea.Cmd) {
	t.Helper()
	for i := 0; cmd != nil && i < 20; i++ {
		msg := cmd()
		switch msg := msg.(type) {
		case tea.BatchMsg:
			for _, c := range msg {
				deliver(t, m, c)
			}
			return
		}
		_, cmd = m.Update(msg)
	}
}

func press(m *Model, keys ...string) tea.Cmd {
	var cmd tea.Cmd
	for _, k := range keys {
		var msg tea.KeyPressMsg
		switch k {
		case "enter":
			msg = tea.KeyPressMsg{Code: tea.KeyEnter}
		case "esc":
			msg = tea.KeyPressMsg{Code: tea.KeyEscape}
		case "up":
			msg = tea.KeyPressMsg{Code: tea.KeyUp}
		case "down":
			msg = tea.KeyPressMsg{Code: tea.KeyDown}
		case "ctrl+c":
			msg = tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
		case "backspace":
			msg = tea.KeyPressMsg{Code: tea.KeyBackspace}
		default:
			r := []rune(k)[0]
			msg = tea.KeyPressMsg{Code: r, Text: k}
		}
		_, cmd = m.Update(msg)
	}
	return cmd
}

func typeText(m *Model, s string) tea.Cmd {
	var keys []string
	for _, r := range s {
		keys = append(keys, string(r))
	}
	return press(m, keys...)
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./console -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("frame %s differs from %s (go test ./console -update rewrites it)\n--- got:\n%s\n--- want:\n%s", name, path, got, want)
	}
}

// checkFrame checks a frame has exactly h lines of at most w cells.
func checkFrame(t *testing.T, frame string, w, h int) {
	t.Helper()
	lines := strings.Split(frame, "\n")
	if len(lines) != h {
		t.Errorf("frame has %d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if n := textWidthANSI(l); n > w {
			t.Errorf("line %d is %d cells wide, more than %d: %q", i+1, n, w, l)
		}
	}
}

func TestGoldenFrames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		w, h  int
		color bool
		rows  int
	}{
		{"table-80x24", 80, 24, false, 0},
		{"table-200x50", 200, 50, false, 40},
		{"table-80x24-color", 80, 24, true, 0},
		{"table-200x50-color", 200, 50, true, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows := testRows()
			for i := range tc.rows {
				rows = append(rows, Row{Instance: fmt.Sprintf("batch-%02d", i), Runtime: "claude", Observed: "running",
					State: []string{"idle", "working", "done"}[i%3], StateSince: testNow.Add(-time.Duration(i) * time.Minute),
					Resources: &telemetry.Resources{CPUPercent: float64(i), MemoryBytes: int64(i+1) << 24},
					Sync:      "in-sync", Description: fmt.Sprintf("batch job %d of the nightly refactor", i)})
			}
			m := newTestModel(t, newFake(rows), tc.w, tc.h, tc.color)
			frame := m.Frame()
			checkFrame(t, frame, tc.w, tc.h)
			if !tc.color && strings.Contains(frame, "\x1b[") {
				t.Errorf("a plain frame holds escape sequences:\n%q", frame)
			}
			if tc.color && !strings.Contains(frame, "\x1b[") {
				t.Errorf("a colour frame holds no escape sequence")
			}
			golden(t, tc.name, frame)
		})
	}
}

func TestFrameContents(t *testing.T) {
	m := newTestModel(t, newFake(testRows()), 80, 24, false)
	frame := m.Frame()
	for _, want := range []string{
		"jackin · fleet demo · 9 instances · 1 blocked · 1 working · 1 done · 1 idle",
		"INSTANCE", "STATE", "CPU", "MEM", "COST", "SYNC",
		">  api", // selected
		" ! web", // blocked stands out without colour too
		"blocked: Bash", "1.9G/2G!", "$1.23", "?", "$0.05+?",
		"exited (0)", "oom-killed", "missing", "orphan",
		"drift: recreate",
		"── api ", "Implements the billing API", // the detail pane and the full description
		"State changes", "Egress", "DENIED", "Log",
	} {
		if !strings.Contains(frame, want) {
			t.Errorf("the 80x24 frame lacks %q:\n%s", want, frame)
		}
	}
	// At 80 columns the columns that give way first are gone.
	if strings.Contains(frame, "PORTS") || strings.Contains(frame, "RUNTIME") {
		t.Errorf("the 80x24 frame keeps PORTS or RUNTIME:\n%s", frame)
	}
	wide := newTestModel(t, newFake(testRows()), 200, 50, false).Frame()
	for _, want := range []string{"RUNTIME", "TOKENS", "PORTS", "DENY", "DESCRIPTION", "150.5k", "127.0.0.1:8080->80", "Frontend (Next.js)"} {
		if !strings.Contains(wide, want) {
			t.Errorf("the 200x50 frame lacks %q:\n%s", want, wide)
		}
	}
}

func TestUnknownColumnsShowDash(t *testing.T) {
	rows := []Row{{Instance: "bare", Runtime: "claude", Observed: "running", State: "idle"}}
	m := newTestModel(t, newFake(rows), 200, 30, false)
	var line string
	for _, l := range strings.Split(m.Frame(), "\n") {
		if strings.HasPrefix(l, ">  bare") {
			line = l
		}
	}
	// SINCE, CPU, MEM, TOKENS, COST, PORTS, DENY; no SYNC column without
	// a manifest, no DESCRIPTION without one written.
	if got := strings.Fields(line[markerWidth:]); len(got) != 10 || strings.Join(got[3:], " ") != "- - - - - - -" {
		t.Errorf("a row without resources, usage, ports or denials: want dashes, got %q", line)
	}
	if f := m.Frame(); strings.Contains(f, "SYNC") || strings.Contains(f, "DESCRIPTION") {
		t.Errorf("SYNC or DESCRIPTION drawn with nothing in it:\n%s", f)
	}
}

func TestNarrowTerminals(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {60, 15}, {40, 10}, {20, 6}, {120, 30}, {160, 40}} {
		m := newTestModel(t, newFake(testRows()), size[0], size[1], true)
		checkFrame(t, m.Frame(), size[0], size[1])
		for _, md := range []string{"?", "e", "l"} {
			cmd := press(m, md)
			if md != "?" {
				deliver(t, m, cmd)
			}
			checkFrame(t, m.Frame(), size[0], size[1])
			press(m, "esc")
		}
	}
}

func TestNoColor(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	if !NoColor() {
		t.Fatal("NO_COLOR=1: NoColor() is false")
	}
	t.Setenv("NO_COLOR", "")
	if NoColor() {
		t.Fatal("NO_COLOR empty: NoColor() is true (no-color.org: set and not empty)")
	}
	m := newTestModel(t, newFake(testRows()), 120, 40, false)
	for _, k := range []string{"", "?", "/"} {
		if k != "" {
			press(m, k)
		}
		if f := m.Frame(); strings.Contains(f, "\x1b") {
			t.Errorf("plain frame after %q holds an escape sequence:\n%q", k, f)
		}
		press(m, "esc")
	}
}

func TestMoveKeepsSelectionAcrossRefresh(t *testing.T) {
	src := newFake(testRows())
	m := newTestModel(t, src, 80, 24, false)
	if m.selected != "api" {
		t.Fatalf("first selection %q, want api", m.selected)
	}
	press(m, "j")
	press(m, "down")
	if m.selected != "docs" {
		t.Fatalf("after j, down: %q, want docs", m.selected)
	}
	press(m, "k")
	if m.selected != "web" {
		t.Fatalf("after k: %q, want web", m.selected)
	}
	press(m, "G")
	if m.selected != "leftover" {
		t.Fatalf("after G: %q, want leftover", m.selected)
	}
	press(m, "j") // at the bottom: stays
	if m.selected != "leftover" {
		t.Fatalf("j at the bottom: %q", m.selected)
	}
	press(m, "g")
	press(m, "up")
	if m.selected != "api" {
		t.Fatalf("after g, up: %q, want api", m.selected)
	}
	press(m, "j", "j")
	// A refresh reorders the rows: the selection follows the instance.
	rows := testRows()
	rows[0], rows[2] = rows[2], rows[0]
	src.snap.Rows = rows
	m.Update(changedMsg{})
	deliver(t, m, func() tea.Msg { s, _ := src.Snapshot(context.Background()); return snapshotMsg{snap: s} })
	if m.selected != "docs" || m.cursor != 0 {
		t.Fatalf("after a reordering refresh: %q at %d, want docs at 0", m.selected, m.cursor)
	}
	// The instance goes away: the selection moves to a row that is there.
	src.snap.Rows = rows[1:]
	deliver(t, m, func() tea.Msg { s, _ := src.Snapshot(context.Background()); return snapshotMsg{snap: s} })
	if m.selected != "web" {
		t.Fatalf("after the selected instance went: %q, want web", m.selected)
	}
}

func TestScrollsLongTable(t *testing.T) {
	var rows []Row
	for i := range 200 {
		rows = append(rows, Row{Instance: fmt.Sprintf("agent-%03d", i), Observed: "running", State: "idle"})
	}
	m := newTestModel(t, newFake(rows), 80, 24, false)
	for range 150 {
		press(m, "j")
	}
	f := m.Frame()
	if !strings.Contains(f, ">  agent-150") {
		t.Fatalf("after 150 moves down the selected row is not drawn:\n%s", f)
	}
	checkFrame(t, f, 80, 24)
	press(m, "pgdown")
	if m.cursor <= 150 {
		t.Errorf("pgdown did not move: %d", m.cursor)
	}
}

func TestFilter(t *testing.T) {
	m := newTestModel(t, newFake(testRows()), 120, 30, false)
	press(m, "/")
	if m.mode != modeFilter {
		t.Fatal("/ does not open the filter")
	}
	typeText(m, "work")
	// worker-1, worker-2 by name; api by its state (working).
	var got []string
	for _, i := range m.visible {
		got = append(got, m.snap.Rows[i].Instance)
	}
	if strings.Join(got, ",") != "api,worker-1,worker-2" {
		t.Fatalf("filter work: %v", got)
	}
	if f := m.Frame(); !strings.Contains(f, `filter "work": 3 shown`) || !strings.Contains(f, "/work") {
		t.Errorf("the filter is not shown:\n%s", f)
	}
	typeText(m, " idle")
	if len(m.visible) != 1 || m.selected != "worker-1" {
		t.Fatalf("filter \"work idle\": %v selected %q", m.visible, m.selected)
	}
	press(m, "enter")
	if m.mode != modeTable || m.filter.Value() != "work idle" {
		t.Fatalf("enter: mode %d filter %q; want the table with the filter kept", m.mode, m.filter.Value())
	}
	// q is a key again once the filter is closed; in the filter it is text.
	press(m, "/")
	if cmd := press(m, "q"); cmd != nil && isQuit(cmd) {
		t.Fatal("q in the filter quits")
	}
	press(m, "backspace", "enter")
	press(m, "/")
	typeText(m, "nothing-matches")
	if f := m.Frame(); !strings.Contains(f, "no instance matches the filter") {
		t.Errorf("an empty filter result is not said:\n%s", f)
	}
	press(m, "esc")
	if m.mode != modeTable || m.filter.Value() != "" || len(m.visible) != len(m.snap.Rows) {
		t.Fatalf("esc: mode %d filter %q visible %d; want everything back", m.mode, m.filter.Value(), len(m.visible))
	}
	// esc in the table clears a kept filter too.
	press(m, "/")
	typeText(m, "docs")
	press(m, "enter", "esc")
	if m.filter.Value() != "" || len(m.visible) != len(m.snap.Rows) {
		t.Fatalf("esc in the table: filter %q visible %d", m.filter.Value(), len(m.visible))
	}
}

func isQuit(cmd tea.Cmd) bool {
	if cmd == nil {
		return false
	}
	_, ok := cmd().(tea.QuitMsg)
	return ok
}

func TestQuit(t *testing.T) {
	for _, k := range []string{"q", "ctrl+c"} {
		m := newTestModel(t, newFake(testRows()), 80, 24, false)
		if !isQuit(press(m, k)) {
			t.Errorf("%s does not quit", k)
		}
	}
	// In a pane q closes the pane, not the console.
	m := newTestModel(t, newFake(testRows()), 80, 24, false)
	deliver(t, m, press(m, "e"))
	if cmd := press(m, "q"); isQuit(cmd) || m.mode != modeTable {
		t.Errorf("q in the explain pane: mode %d, quit %v", m.mode, isQuit(cmd))
	}
	m.Update(tea.KeyPressMsg{Code: '?', Text: "?"})
	if cmd := press(m, "q"); isQuit(cmd) || m.mode != modeTable {
		t.Errorf("q in the help: mode %d", m.mode)
	}
	if !isQuit(press(m, "q")) {
		t.Error("q after closing the help does not quit")
	}
}

func TestAttach(t *testing.T) {
	src := newFake(testRows())
	m := newTestModel(t, src, 80, 24, false)
	cmd := press(m, "enter")
	if cmd == nil {
		t.Fatalf("enter on a running instance: no command; status %q", m.status)
	}
	if last := src.calls[len(src.calls)-1]; last != "attach api" {
		t.Fatalf("enter asked the source for %q", last)
	}
	// The attach command comes back: the console says so and refreshes.
	_, cmd = m.Update(attachDoneMsg{instance: "api", stderr: "\r\ndetached from api (the agent keeps running)\r\n"})
	if m.status != "detached from api (the agent keeps running)" {
		t.Errorf("after detach the status is %q", m.status)
	}
	if cmd == nil {
		t.Error("after detach the console does not refresh")
	}
	if f := m.Frame(); !strings.Contains(f, "detached from api") {
		t.Errorf("the frame does not say the detach:\n%s", f)
	}
	// The agent exited while attached.
	m.Update(attachDoneMsg{instance: "api", err: &exec.ExitError{}, stderr: "the agent of api exited with status 3\r\n"})
	if m.status != "the agent of api exited with status 3" {
		t.Errorf("after the agent's exit the status is %q", m.status)
	}
	// a attaches too; a stopped instance is refused without a child.
	press(m, "G", "k", "k", "k") // halted
	if m.selected != "halted" {
		t.Fatalf("selected %q, want halted", m.selected)
	}
	n := len(src.calls)
	if cmd := press(m, "a"); cmd != nil {
		t.Fatal("a on a stopped instance runs something")
	}
	if len(src.calls) != n || !strings.Contains(m.status, "halted") || !strings.Contains(m.status, "stopped") {
		t.Errorf("attach to a stopped instance: calls %v status %q", src.calls[n:], m.status)
	}
	// Any key clears the status.
	press(m, "j")
	if m.status != "" {
		t.Errorf("status kept after a key: %q", m.status)
	}
}

func TestLogPane(t *testing.T) {
	src := newFake(testRows())
	m := newTestModel(t, src, 80, 24, false)
	deliver(t, m, press(m, "l"))
	if m.mode != modeLogs {
		t.Fatal("l does not open the log pane")
	}
	if last := src.calls[len(src.calls)-1]; last != fmt.Sprintf("logs api %d", logTail) {
		t.Fatalf("l asked the source for %q", last)
	}
	f := m.Frame()
	for _, want := range []string{"logs api", "line one", "line two", "red three", "partial", "the log ended"} {
		if !strings.Contains(f, want) {
			t.Errorf("the log pane lacks %q:\n%s", want, f)
		}
	}
	if strings.Contains(f, "\x1b") {
		t.Errorf("the log pane passes the agent's escape sequences:\n%q", f)
	}
	golden(t, "logs-80x24", f)
	press(m, "esc")
	if m.mode != modeTable {
		t.Fatal("esc does not close the log pane")
	}
	// A late message of the closed pane changes nothing.
	m.Update(logDataMsg{gen: m.paneGen - 1, text: "late\n"})
	if strings.Contains(m.Frame(), "late") {
		t.Error("a closed log pane took more lines")
	}
}

func TestLogPaneFollowsALiveLog(t *testing.T) {
	src := newFake(testRows())
	m := newTestModel(t, src, 80, 12, false)
	pr, pw := io.Pipe()
	cmd := press(m, "l")
	if cmd == nil {
		t.Fatal("no command")
	}
	m.Update(logOpenMsg{gen: m.paneGen, rc: pr})
	go func() {
		for i := range 30 {
			fmt.Fprintf(pw, "line %02d\n", i)
		}
	}()
	for range 30 {
		_, cmd = m.Update(m.readLog()())
	}
	if f := m.Frame(); !strings.Contains(f, "line 29") || !strings.Contains(f, "(following)") {
		t.Errorf("the log pane does not follow the end:\n%s", f)
	}
	press(m, "q")
	if _, err := pw.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("closing the pane does not close the log stream: %v", err)
	}
}

func TestExplainPane(t *testing.T) {
	src := newFake(testRows())
	m := newTestModel(t, src, 80, 24, false)
	deliver(t, m, press(m, "e"))
	f := m.Frame()
	if m.mode != modeExplain || !strings.Contains(f, "Session contract of api") || !strings.Contains(f, "explain api") {
		t.Fatalf("e: mode %d\n%s", m.mode, f)
	}
	press(m, "e")
	if m.mode != modeTable {
		t.Fatal("e does not close the explain pane")
	}
}

func TestHelp(t *testing.T) {
	m := newTestModel(t, newFake(testRows()), 80, 24, false)
	press(m, "?")
	f := m.Frame()
	for _, want := range []string{"attach", "logs", "explain", "filter", "quit", "ctrl-p ctrl-q", "every 5s"} {
		if !strings.Contains(f, want) {
			t.Errorf("the help lacks %q:\n%s", want, f)
		}
	}
	golden(t, "help-80x24", f)
	press(m, "x")
	if m.mode != modeTable {
		t.Error("a key does not close the help")
	}
}

func TestRefreshCoalesces(t *testing.T) {
	src := newFake(testRows())
	m := newTestModel(t, src, 80, 24, false)
	n := len(src.calls)
	_, c1 := m.Update(changedMsg{})
	_, c2 := m.Update(changedMsg{})
	_, c3 := m.Update(resyncMsg{})
	if c1 == nil || c2 != nil {
		t.Fatalf("a change during a refresh starts another one at once (c1 %v, c2 %v)", c1 != nil, c2 != nil)
	}
	_ = c3 // the resync's next tick
	if !m.refreshAgain {
		t.Fatal("a change during a refresh is lost")
	}
	// The refresh in flight ends: exactly one more follows.
	_, cmd := m.Update(c1())
	if cmd == nil {
		t.Fatal("no refresh after the one in flight")
	}
	if got := len(src.calls) - n; got != 1 {
		t.Errorf("%d snapshot calls, want 1 so far", got)
	}
}

func TestDetailIsFetchedForTheSelectionOnly(t *testing.T) {
	src := newFake(testRows())
	m := newTestModel(t, src, 80, 24, false)
	var details []string
	for _, c := range src.calls {
		if strings.HasPrefix(c, "detail ") {
			details = append(details, c)
		}
	}
	if strings.Join(details, ",") != "detail api" {
		t.Fatalf("detail calls %v, want the selected instance's only", details)
	}
	// Moving fast fetches nothing until the selection settles.
	n := len(src.calls)
	press(m, "j")
	press(m, "j")
	seq := m.detailSeq
	if len(src.calls) != n {
		t.Fatalf("moving fetched %v", src.calls[n:])
	}
	m.Update(settledMsg{seq: seq - 1}) // an older settle: ignored
	_, cmd := m.Update(settledMsg{seq: seq})
	deliver(t, m, cmd)
	if got := src.calls[len(src.calls)-1]; got != "detail docs" {
		t.Errorf("after settling: %q, want detail docs", got)
	}
	if f := m.Frame(); !strings.Contains(f, "cannot read the detail: no detail for docs") {
		t.Errorf("a detail error is not shown:\n%s", f)
	}
}

func TestHostileText(t *testing.T) {
	rows := testRows()
	rows[0].Description = "evil \x1b]0;pwned\x07title\x1b[2J and\ttab"
	src := newFake(rows)
	d := testDetail()
	d.Logs = append(d.Logs, "\x1b[?1049lescape\x1b[H")
	src.detail["api"] = d
	m := newTestModel(t, src, 200, 50, false)
	f := m.Frame()
	if strings.Contains(f, "\x1b") || strings.Contains(f, "\x07") || strings.Contains(f, "\t") {
		t.Errorf("the frame passes control characters:\n%q", f)
	}
	if !strings.Contains(f, "evil title and    tab") || !strings.Contains(f, "escape") {
		t.Errorf("the cleaned text is missing:\n%s", f)
	}
}

func TestEmptyAndFailing(t *testing.T) {
	m := newTestModel(t, newFake(nil), 80, 24, false)
	if f := m.Frame(); !strings.Contains(f, `Fleet "demo" has no instances.`) {
		t.Errorf("empty fleet:\n%s", f)
	}
	checkFrame(t, m.Frame(), 80, 24)
	m = New(context.Background(), newFake(nil), Options{Now: func() time.Time { return testNow }})
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	m.Update(snapshotMsg{err: errors.New("cannot reach the Docker engine")})
	if f := m.Frame(); !strings.Contains(f, "cannot read the fleet: cannot reach the Docker engine (retrying)") {
		t.Errorf("a failing first snapshot:\n%s", f)
	}
	m = newTestModel(t, newFake(testRows()), 80, 24, false)
	m.Update(snapshotMsg{err: errors.New("engine gone")})
	if f := m.Frame(); !strings.Contains(f, "refresh failed: engine gone") || !strings.Contains(f, "api") {
		t.Errorf("a failing refresh keeps the rows and says so:\n%s", f)
	}
}

func TestFormats(t *testing.T) {
	for in, want := range map[int64]string{0: "0B", 1023: "1023B", 1024: "1K", 1536: "1.5K", 812 << 20: "812M", 2 << 30: "2G", 1946 << 20: "1.9G"} {
		if got := bytesText(in); got != want {
			t.Errorf("bytesText(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[int64]string{999: "999", 1000: "1k", 150_500: "150.5k", 2_000_000: "2M", 3_400_000_000: "3.4G"} {
		if got := countText(in); got != want {
			t.Errorf("countText(%d) = %q, want %q", in, got, want)
		}
	}
	if tok, cost := usageText(nil); tok != "-" || cost != "-" {
		t.Errorf("no usage: %q %q", tok, cost)
	}
	if tok, cost := usageText([]telemetry.Usage{}); tok != "0" || cost != "$0.00" {
		t.Errorf("empty usage: %q %q", tok, cost)
	}
	if _, cost := usageText([]telemetry.Usage{{CostUSD: ptr(250.0)}}); cost != "$250" {
		t.Errorf("cost 250: %q", cost)
	}
	if got := percent(150); got != "150%" {
		t.Errorf("percent(150) = %q", got)
	}
}

// textWidthANSI is the cell width of a line without its escape sequences.
func textWidthANSI(s string) int { return textWidth(stripANSI(s)) }

func stripANSI(s string) string { return ansiStrip(s) }

func TestLinksColumnAndPane(t *testing.T) {
	rows := testRows()
	// The PR/CI/REVIEW column is drawn only when a row has links.
	if f := newTestModel(t, newFake(rows), 200, 50, false).Frame(); strings.Contains(f, "PR/CI/REVIEW") {
		t.Fatalf("PR/CI/REVIEW drawn without links:\n%s", f)
	}
	for i := range rows {
		if rows[i].Instance == "api" {
			rows[i].Links = []Link{
				{Kind: "pr", Label: "acme/app#7", URL: "https://github.com/acme/app/pull/7", State: "open ci:failing rv:approved"},
				{Kind: "issue", Label: "acme/app#3", URL: "https://github.com/acme/app/issues/3", State: "open"},
				{Kind: "repo", Label: "/w/app\x1b[31m", URL: "/w/app\x1b[31m"},
			}
		}
	}
	f := newTestModel(t, newFake(rows), 200, 50, false).Frame()
	for _, want := range []string{"PR/CI/REVIEW", "pr acme/app#7 open ci:failing rv:approved +2", "Links",
		"issue acme/app#3 open https://github.com/acme/app/issues/3"} {
		if !strings.Contains(f, want) {
			t.Errorf("the frame lacks %q:\n%s", want, f)
		}
	}
	if strings.Contains(f, "\x1b[31m") {
		t.Error("an escape sequence from a link reached the terminal")
	}
}

func TestQueueInHeaderAndTaskColumn(t *testing.T) {
	rows := testRows()
	// Without a queue nothing of it is drawn.
	if f := newTestModel(t, newFake(rows), 200, 50, false).Frame(); strings.Contains(f, "TASK") || strings.Contains(f, "queue ") {
		t.Fatalf("queue parts drawn without a queue:\n%s", f)
	}
	for i := range rows {
		switch rows[i].Instance {
		case "api":
			rows[i].Task = &Task{ID: "files:fix-login", Title: "Fix the \x1b[31mlogin", State: "working"}
		case "web":
			rows[i].Task = &Task{ID: "gh:acme/app#12", Title: "Docs", State: "needs-review"}
		}
	}
	src := newFake(rows)
	src.snap.Queue = &Queue{Counts: map[string]int{"queued": 3, "working": 1, "needs-review": 1, "done": 4}, Paused: true}
	f := newTestModel(t, src, 200, 50, false).Frame()
	for _, want := range []string{"queue 3 queued, 1 working, 1 needs-review, 4 done (paused)", "TASK", "files:fix-login", "gh:acme/app#12 (needs-review)",
		`task files:fix-login working "Fix the login"`} {
		if !strings.Contains(f, want) {
			t.Errorf("the frame lacks %q:\n%s", want, f)
		}
	}
	if strings.Contains(f, "\x1b[31m") {
		t.Error("an escape sequence from a task title reached the terminal")
	}
}
