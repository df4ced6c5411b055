package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
)

// Defaults of Options.
const (
	DefaultResync = 5 * time.Second
	// detailSettle is how long a selection stays before its detail is
	// fetched: holding j down does not fetch every row's.
	detailSettle = 150 * time.Millisecond
	// logTail is how many lines the log pane starts with; logKeep how
	// many it keeps.
	logTail = 500
	logKeep = 5000
)

// Options tune a Model.
type Options struct {
	// Color false draws plain text (NO_COLOR).
	Color bool
	// Resync is the slow full refresh that backs up the Watcher's events
	// (DefaultResync when 0).
	Resync time.Duration
	// Now is the clock for ages (time.Now when nil).
	Now func() time.Time
	// Stderr receives what an attach child writes on stderr, besides the
	// console's status line (os.Stderr when nil).
	Stderr io.Writer
}

type mode int

const (
	modeTable mode = iota
	modeFilter
	modeHelp
	modeExplain
	modeLogs
)

// Model is the console's bubbletea model.
type Model struct {
	ctx  context.Context
	src  Source
	opts Options
	st   styles
	keys keyMap
	help help.Model

	width, height int

	snap     Snapshot
	haveSnap bool
	snapErr  error
	cells    [][]string // per snapshot row: the precomputed cell texts
	natural  [numCols]int
	anyDesc  bool   // a row has a description
	anySync  bool   // a row has a sync state (there is a manifest)
	anyLinks bool   // a row has work links
	anyTask  bool   // a row holds a queue task
	visible  []int  // indices into snap.Rows that pass the filter
	selected string // the selected instance
	cursor   int    // its index in visible
	offset   int    // the first visible row drawn

	refreshing, refreshAgain bool

	details     map[string]Detail
	detailErr   map[string]error
	detailBusy  bool
	detailAgain bool
	detailSeq   int

	mode   mode
	filter textinput.Model
	status string

	// The explain and log panes.
	pane      viewport.Model
	paneTitle string
	paneFor   string
	paneGen   int
	logs      []string
	logPart   string
	logRC     io.ReadCloser
	logCancel context.CancelFunc
	logEnded  bool

	// tools are the source's operator tools with a key.
	tools []Tool
}

// New returns the console's model over src. ctx bounds every call to src.
func New(ctx context.Context, src Source, opts Options) *Model {
	if opts.Resync <= 0 {
		opts.Resync = DefaultResync
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	st := newStyles(opts.Color)
	f := textinput.New()
	f.Prompt = "/"
	f.Placeholder = "instance, state, runtime, description…"
	f.SetVirtualCursor(false)
	if !opts.Color {
		f.SetStyles(textinput.Styles{})
	}
	m := &Model{
		ctx: ctx, src: src, opts: opts, st: st, keys: newKeyMap(), help: st.helpModel(),
		width: 80, height: 24,
		details: map[string]Detail{}, detailErr: map[string]error{},
		filter: f,
		pane:   viewport.New(),
	}
	m.pane.SoftWrap = true
	m.bindTools()
	return m
}

// Messages.
type (
	snapshotMsg struct {
		snap Snapshot
		err  error
	}
	// changedMsg is the Watcher's: something changed.
	changedMsg struct{}
	resyncMsg  struct{}
	settledMsg struct{ seq int }
	detailMsg  struct {
		instance string
		detail   Detail
		err      error
	}
	attachDoneMsg struct {
		instance string
		err      error
		stderr   string
	}
	explainMsg struct {
		gen  int
		text string
		err  error
	}
	logOpenMsg struct {
		gen int
		rc  io.ReadCloser
		err error
	}
	logDataMsg struct {
		gen  int
		text string
		err  error
	}
)

// Init fetches the first snapshot and starts the resync.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(m.refresh(), m.resyncTick())
}

func (m *Model) resyncTick() tea.Cmd {
	return tea.Tick(m.opts.Resync, func(time.Time) tea.Msg { return resyncMsg{} })
}

// refresh fetches a snapshot, or asks for one more after the one in
// flight.
func (m *Model) refresh() tea.Cmd {
	if m.refreshing {
		m.refreshAgain = true
		return nil
	}
	m.refreshing = true
	ctx, src := m.ctx, m.src
	return func() tea.Msg {
		s, err := src.Snapshot(ctx)
		return snapshotMsg{snap: s, err: err}
	}
}

// fetchDetail fetches the selected instance's detail, or asks for one more
// after the one in flight.
func (m *Model) fetchDetail() tea.Cmd {
	if m.selected == "" {
		return nil
	}
	if m.detailBusy {
		m.detailAgain = true
		return nil
	}
	m.detailBusy = true
	ctx, src, inst := m.ctx, m.src, m.selected
	return func() tea.Msg {
		d, err := src.Detail(ctx, inst)
		return detailMsg{instance: inst, detail: d, err: err}
	}
}

// settle fetches the detail once the selection has stayed put.
func (m *Model) settle() tea.Cmd {
	m.detailSeq++
	seq := m.detailSeq
	return tea.Tick(detailSettle, func(time.Time) tea.Msg { return settledMsg{seq: seq} })
}

// Update handles a message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = max(msg.Width, 20), max(msg.Height, 6)
		m.help.SetWidth(m.width)
		m.sizePane()
		m.scrollIntoView()
		return m, nil
	case snapshotMsg:
		m.refreshing = false
		var cmds []tea.Cmd
		if msg.err != nil {
			m.snapErr = msg.err
		} else {
			m.snapErr = nil
			m.setSnapshot(msg.snap)
			cmds = append(cmds, m.fetchDetail())
		}
		if m.refreshAgain {
			m.refreshAgain = false
			cmds = append(cmds, m.refresh())
		}
		return m, tea.Batch(cmds...)
	case changedMsg:
		return m, m.refresh()
	case resyncMsg:
		return m, tea.Batch(m.refresh(), m.resyncTick())
	case settledMsg:
		if msg.seq != m.detailSeq {
			return m, nil
		}
		return m, m.fetchDetail()
	case detailMsg:
		m.detailBusy = false
		if msg.err != nil {
			m.detailErr[msg.instance] = msg.err
		} else {
			delete(m.detailErr, msg.instance)
			m.details[msg.instance] = cleanDetail(msg.detail)
		}
		if m.detailAgain || msg.instance != m.selected {
			m.detailAgain = false
			return m, m.fetchDetail()
		}
		return m, nil
	case toolDoneMsg:
		m.status = toolStatus(msg)
		m.detailSeq++
		return m, tea.Batch(m.refresh(), m.fetchDetail())
	case attachDoneMsg:
		m.status = attachStatus(msg)
		m.detailSeq++
		return m, tea.Batch(m.refresh(), m.fetchDetail())
	case explainMsg:
		if msg.gen != m.paneGen || m.mode != modeExplain {
			return m, nil
		}
		if msg.err != nil {
			m.pane.SetContent("cannot explain " + m.paneFor + ": " + clean(msg.err.Error()))
		} else {
			m.pane.SetContent(cleanBlock(msg.text))
		}
		return m, nil
	case logOpenMsg:
		if msg.gen != m.paneGen || m.mode != modeLogs {
			if msg.rc != nil {
				msg.rc.Close()
			}
			return m, nil
		}
		if msg.err != nil {
			m.logEnded = true
			m.logs = append(m.logs, "cannot read the log: "+clean(msg.err.Error()))
			m.setLogContent()
			return m, nil
		}
		m.logRC = msg.rc
		return m, m.readLog()
	case logDataMsg:
		if msg.gen != m.paneGen || m.mode != modeLogs {
			return m, nil
		}
		m.addLog(msg.text)
		if msg.err != nil {
			m.logEnded = true
			if m.logPart != "" {
				m.logs = append(m.logs, m.logPart)
				m.logPart = ""
			}
			end := "— the log ended (the agent stopped)"
			if !errors.Is(msg.err, io.EOF) {
				end = "— the log ended: " + clean(msg.err.Error())
			}
			m.logs = append(m.logs, end)
			m.setLogContent()
			return m, nil
		}
		m.setLogContent()
		return m, m.readLog()
	case tea.KeyPressMsg:
		return m.key(msg)
	}
	if m.mode == modeFilter {
		var cmd tea.Cmd
		m.filter, cmd = m.filter.Update(msg)
		return m, cmd
	}
	return m, nil
}

func attachStatus(msg attachDoneMsg) string {
	last := lastLine(msg.stderr)
	var ee *exec.ExitError
	switch {
	case msg.err == nil && last != "":
		return last
	case msg.err == nil:
		return "detached from " + msg.instance
	case errors.As(msg.err, &ee) && last != "":
		return last
	default:
		return "attach " + msg.instance + ": " + clean(msg.err.Error())
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := clean(strings.TrimSpace(lines[i])); l != "" {
			return l
		}
	}
	return ""
}

// key handles a key press in the current mode.
func (m *Model) key(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	if msg.String() == "ctrl+c" {
		return m, m.quit()
	}
	switch m.mode {
	case modeFilter:
		switch msg.String() {
		case "enter":
			m.mode = modeTable
			m.filter.Blur()
			return m, nil
		case "esc":
			m.mode = modeTable
			m.filter.Blur()
			m.filter.SetValue("")
			return m, m.applyFilter()
		case "up", "down":
			return m.move(msg)
		}
		var cmd tea.Cmd
		m.filter, cmd = m.filter.Update(msg)
		return m, tea.Batch(cmd, m.applyFilter())
	case modeHelp:
		m.mode = modeTable // any key closes the help
		return m, nil
	case modeExplain, modeLogs:
		switch {
		case msg.String() == "esc", msg.String() == "q",
			m.mode == modeExplain && msg.String() == "e", m.mode == modeLogs && msg.String() == "l":
			m.closePane()
			return m, nil
		case key.Matches(msg, m.keys.Bottom):
			m.pane.GotoBottom()
			return m, nil
		case key.Matches(msg, m.keys.Top):
			m.pane.GotoTop()
			return m, nil
		}
		var cmd tea.Cmd
		m.pane, cmd = m.pane.Update(msg)
		return m, cmd
	}
	m.status = ""
	switch {
	case key.Matches(msg, m.keys.Quit):
		return m, m.quit()
	case key.Matches(msg, m.keys.Up, m.keys.Down, m.keys.PageUp, m.keys.PageDown, m.keys.Top, m.keys.Bottom):
		return m.move(msg)
	case key.Matches(msg, m.keys.Attach):
		return m, m.attach()
	case key.Matches(msg, m.keys.Logs):
		return m, m.openLogs()
	case key.Matches(msg, m.keys.Explain):
		return m, m.openExplain()
	case key.Matches(msg, m.keys.Filter):
		m.mode = modeFilter
		return m, m.filter.Focus()
	case key.Matches(msg, m.keys.Help):
		m.mode = modeHelp
		return m, nil
	case key.Matches(msg, m.keys.Refresh):
		return m, tea.Batch(m.refresh(), m.fetchDetail())
	case key.Matches(msg, m.keys.Back):
		if m.filter.Value() != "" {
			m.filter.SetValue("")
			return m, m.applyFilter()
		}
	case key.Matches(msg, m.keys.Open):
		return m, m.open(OpenWeb)
	case key.Matches(msg, m.keys.Review):
		return m, m.open(OpenReview)
	}
	if cmd, ok := m.toolKey(msg.String()); ok {
		return m, cmd
	}
	return m, nil
}

func (m *Model) quit() tea.Cmd {
	m.closePane()
	return tea.Quit
}

// move moves the selection.
func (m *Model) move(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	if len(m.visible) == 0 {
		return m, nil
	}
	page := max(m.tableHeight()-1, 1)
	c := m.cursor
	switch {
	case key.Matches(msg, m.keys.Up):
		c--
	case key.Matches(msg, m.keys.Down):
		c++
	case key.Matches(msg, m.keys.PageUp):
		c -= page
	case key.Matches(msg, m.keys.PageDown):
		c += page
	case key.Matches(msg, m.keys.Top):
		c = 0
	case key.Matches(msg, m.keys.Bottom):
		c = len(m.visible) - 1
	}
	c = min(max(c, 0), len(m.visible)-1)
	if c == m.cursor {
		return m, nil
	}
	m.cursor = c
	m.selected = m.snap.Rows[m.visible[c]].Instance
	m.scrollIntoView()
	return m, m.settle()
}

// selectedRow is the selected instance's row, or nil.
func (m *Model) selectedRow() *Row {
	if len(m.visible) == 0 || m.cursor >= len(m.visible) {
		return nil
	}
	return &m.snap.Rows[m.visible[m.cursor]]
}

// attach steps aside for the Attacher's command.
func (m *Model) attach() tea.Cmd {
	r := m.selectedRow()
	if r == nil {
		m.status = "no instance to attach to"
		return nil
	}
	att, ok := m.src.(Attacher)
	if !ok {
		m.status = "attach is not available here"
		return nil
	}
	if !r.Running() {
		m.status = fmt.Sprintf("cannot attach to %s: its agent container is %s (jackin apply starts it)", r.Instance, orWord(r.Observed, "not running"))
		return nil
	}
	cmd, err := att.AttachCommand(r.Instance)
	if err != nil {
		m.status = "attach " + r.Instance + ": " + clean(err.Error())
		return nil
	}
	tail := &tailBuffer{max: 4 << 10}
	if cmd.Stderr == nil {
		cmd.Stderr = io.MultiWriter(m.opts.Stderr, tail)
	}
	inst := r.Instance
	return tea.ExecProcess(cmd, func(err error) tea.Msg {
		return attachDoneMsg{instance: inst, err: err, stderr: tail.String()}
	})
}

// openExplain opens the explain pane.
func (m *Model) openExplain() tea.Cmd {
	r := m.selectedRow()
	if r == nil {
		return nil
	}
	ex, ok := m.src.(Explainer)
	if !ok {
		m.status = "explain is not available here"
		return nil
	}
	m.openPane(modeExplain, "explain "+r.Instance, r.Instance)
	m.pane.SetContent("reading the session contract of " + r.Instance + "…")
	ctx, gen, inst := m.ctx, m.paneGen, r.Instance
	return func() tea.Msg {
		text, err := ex.Explain(ctx, inst)
		return explainMsg{gen: gen, text: text, err: err}
	}
}

// openLogs opens the log pane, following the selected instance's log.
func (m *Model) openLogs() tea.Cmd {
	r := m.selectedRow()
	if r == nil {
		return nil
	}
	lf, ok := m.src.(LogFollower)
	if !ok {
		m.status = "logs are not available here"
		return nil
	}
	m.openPane(modeLogs, "logs "+r.Instance, r.Instance)
	m.setLogContent()
	ctx, cancel := context.WithCancel(m.ctx)
	m.logCancel = cancel
	gen, inst := m.paneGen, r.Instance
	return func() tea.Msg {
		rc, err := lf.FollowLogs(ctx, inst, logTail)
		return logOpenMsg{gen: gen, rc: rc, err: err}
	}
}

func (m *Model) openPane(md mode, title, inst string) {
	m.closePane()
	m.mode, m.paneTitle, m.paneFor = md, title, inst
	m.paneGen++
	m.pane = viewport.New()
	m.pane.SoftWrap = true
	m.sizePane()
	m.logs, m.logPart, m.logEnded = nil, "", false
}

// closePane closes the explain or log pane (and stops following the log).
func (m *Model) closePane() {
	if m.logCancel != nil {
		m.logCancel()
		m.logCancel = nil
	}
	if m.logRC != nil {
		m.logRC.Close()
		m.logRC = nil
	}
	m.paneGen++
	m.logs, m.logPart = nil, ""
	if m.mode == modeExplain || m.mode == modeLogs {
		m.mode = modeTable
	}
}

func (m *Model) sizePane() {
	m.pane.SetWidth(m.width)
	m.pane.SetHeight(max(m.height-3, 1)) // the header, the pane's title, the footer
}

// readLog reads the next piece of the followed log.
func (m *Model) readLog() tea.Cmd {
	rc, gen := m.logRC, m.paneGen
	return func() tea.Msg {
		buf := make([]byte, 32<<10)
		n, err := rc.Read(buf)
		return logDataMsg{gen: gen, text: string(buf[:n]), err: err}
	}
}

func (m *Model) addLog(text string) {
	if text == "" {
		return
	}
	text = m.logPart + text
	lines := strings.Split(text, "\n")
	m.logPart = lines[len(lines)-1]
	for _, l := range lines[:len(lines)-1] {
		m.logs = append(m.logs, clean(strings.TrimSuffix(l, "\r")))
	}
	if over := len(m.logs) - logKeep; over > 0 {
		m.logs = append(m.logs[:0:0], m.logs[over:]...)
	}
}

func (m *Model) setLogContent() {
	follow := m.pane.AtBottom() || m.pane.TotalLineCount() == 0
	lines := m.logs
	if m.logPart != "" {
		lines = append(lines[:len(lines):len(lines)], clean(m.logPart))
	}
	if len(lines) == 0 && !m.logEnded {
		lines = []string{"waiting for " + m.paneFor + "'s log…"}
	}
	m.pane.SetContentLines(lines)
	if follow {
		m.pane.GotoBottom()
	}
}

// SetSnapshot shows s, as a refresh does (for callers that drive the
// model themselves: tests, benchmarks).
func (m *Model) SetSnapshot(s Snapshot) { m.setSnapshot(s) }

// SetDetail shows d as its instance's detail, as a fetch does.
func (m *Model) SetDetail(d Detail) { m.details[d.Instance] = cleanDetail(d) }

// setSnapshot takes a new snapshot, keeping the selection on the same
// instance when it is still there.
func (m *Model) setSnapshot(s Snapshot) {
	for i := range s.Rows {
		r := &s.Rows[i]
		r.Description = clean(r.Description)
		r.StateDetail = clean(r.StateDetail)
		if r.Task != nil {
			// A task's ID and title are a source's text (an issue's
			// author's): the copy shown is cleaned.
			r.Task = &Task{ID: clean(r.Task.ID), Title: clean(r.Task.Title), State: clean(r.Task.State)}
		}
	}
	m.snap, m.haveSnap = s, true
	m.cells = make([][]string, len(s.Rows))
	for i := range s.Rows {
		m.cells[i] = rowCells(&s.Rows[i])
	}
	m.natural = naturalWidths(m.cells)
	m.anyDesc, m.anySync, m.anyLinks, m.anyTask = false, false, false, false
	present := make(map[string]bool, len(s.Rows))
	for _, r := range s.Rows {
		present[r.Instance] = true
		m.anyDesc = m.anyDesc || r.Description != ""
		m.anySync = m.anySync || r.Sync != ""
		m.anyLinks = m.anyLinks || len(r.Links) > 0
		m.anyTask = m.anyTask || r.Task != nil
	}
	for k := range m.details {
		if !present[k] {
			delete(m.details, k)
		}
	}
	m.refilter()
}

// applyFilter re-filters after the filter text changed.
func (m *Model) applyFilter() tea.Cmd {
	before := m.selected
	m.refilter()
	if m.selected != before {
		return m.settle()
	}
	return nil
}

// refilter recomputes the visible rows and keeps the selection.
func (m *Model) refilter() {
	q := strings.ToLower(strings.TrimSpace(m.filter.Value()))
	m.visible = m.visible[:0]
	for i := range m.snap.Rows {
		if q == "" || matches(&m.snap.Rows[i], m.cells[i], q) {
			m.visible = append(m.visible, i)
		}
	}
	m.cursor = 0
	found := false
	for vi, ri := range m.visible {
		if m.snap.Rows[ri].Instance == m.selected {
			m.cursor, found = vi, true
			break
		}
	}
	switch {
	case found:
	case len(m.visible) > 0:
		m.selected = m.snap.Rows[m.visible[0]].Instance
	default:
		m.selected = ""
	}
	m.scrollIntoView()
}

// matches reports whether every word of q is in the row's text.
func matches(r *Row, cells []string, q string) bool {
	text := strings.ToLower(r.Instance + " " + r.Runtime + " " + r.State + " " + r.Observed + " " + r.Sync + " " + r.Description + " " + r.StateDetail + " " + strings.Join(cells, " "))
	for _, w := range strings.Fields(q) {
		if !strings.Contains(text, w) {
			return false
		}
	}
	return true
}

// scrollIntoView keeps the selected row on screen.
func (m *Model) scrollIntoView() {
	h := m.tableHeight()
	if m.cursor < m.offset {
		m.offset = m.cursor
	}
	if m.cursor >= m.offset+h {
		m.offset = m.cursor - h + 1
	}
	m.offset = max(0, min(m.offset, len(m.visible)-h))
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

func orWord(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
