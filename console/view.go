package console

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/jackin-dev/jackin/telemetry"
)

// The table's columns, in order.
const (
	colInstance = iota
	colRuntime
	colState
	colSince
	colCPU
	colMem
	colTokens
	colCost
	colPorts
	colDenied
	colSync
	colTask
	colLinks
	colDesc
	numCols
)

type column struct {
	title string
	right bool // numbers are right-aligned
	max   int  // the widest it gets (0: the rest of the line)
}

var columns = [numCols]column{
	colInstance: {"INSTANCE", false, 24},
	colRuntime:  {"RUNTIME", false, 10},
	colState:    {"STATE", false, 22},
	colSince:    {"SINCE", true, 5},
	colCPU:      {"CPU", true, 6},
	colMem:      {"MEM", true, 12},
	colTokens:   {"TOKENS", true, 7},
	colCost:     {"COST", true, 9},
	colPorts:    {"PORTS", false, 24},
	colDenied:   {"DENY", true, 5},
	colSync:     {"SYNC", false, 18},
	colTask:     {"TASK", false, 32},
	colLinks:    {"PR/CI/REVIEW", false, 48},
	colDesc:     {"DESCRIPTION", false, 0},
}

// dropOrder is the order columns give way in on a narrow terminal; the
// instance and its state always stay (truncated last). The description
// is the last column and takes what is left; the detail pane shows it
// whole for the selected instance.
var dropOrder = []int{colPorts, colLinks, colTask, colRuntime, colTokens, colDesc, colDenied, colSince, colCost, colSync, colMem, colCPU}

// minDesc is the narrowest description worth showing.
const minDesc = 12

// markerWidth is the selection/blocked marker column: ">" for the
// selected row, "!" for a blocked one, then a space.
const markerWidth = 3

// rowCells are a row's cell texts, except SINCE (which depends on the
// clock).
func rowCells(r *Row) []string {
	c := make([]string, numCols)
	c[colInstance] = r.Instance
	c[colRuntime] = orDash(r.Runtime)
	c[colState] = stateText(r)
	c[colCPU], c[colMem] = "-", "-"
	if res := r.Resources; res != nil {
		c[colCPU] = percent(res.CPUPercent)
		c[colMem] = memText(res)
	}
	c[colTokens], c[colCost] = usageText(r.Usage)
	c[colPorts] = orDash(strings.Join(r.Ports, ","))
	c[colDenied] = "-"
	if r.Denied != nil {
		c[colDenied] = strconv.Itoa(*r.Denied)
	}
	c[colSync] = orDash(r.Sync)
	c[colLinks] = linkText(r.Links)
	c[colTask] = taskText(r.Task)
	c[colDesc] = r.Description
	return c
}

// taskText is the TASK cell: the task's ID and, unless it is worked
// on (the agent's state says so), its state.
func taskText(t *Task) string {
	if t == nil {
		return "-"
	}
	if t.State == "working" {
		return t.ID
	}
	return t.ID + " (" + t.State + ")"
}

// queueText is the header's account of the queue: its tasks by state.
func queueText(q *Queue) string {
	var parts []string
	for _, s := range QueueStates {
		if n := q.Counts[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "empty")
	}
	s := "queue " + strings.Join(parts, ", ")
	if q.Paused {
		s += " (paused)"
	}
	return s
}

// stateKey is the word that picks a row's colour.
func stateKey(r *Row) string {
	switch r.Observed {
	case "oom-killed", "crashloop", "orphan", "missing":
		return r.Observed
	}
	if r.State != "" {
		return r.State
	}
	return r.Observed
}

// stateText is the STATE cell: the agent's state (with what it waits for,
// or its exit status), or the container's when no agent has run.
func stateText(r *Row) string {
	k := stateKey(r)
	if k != r.State {
		return orDash(k)
	}
	s := r.State
	if r.StateDetail != "" {
		s += ": " + r.StateDetail
	}
	if r.ExitStatus != nil {
		s += " (" + strconv.Itoa(*r.ExitStatus) + ")"
	}
	return s
}

func percent(p float64) string {
	if p < 10 {
		return strconv.FormatFloat(p, 'f', 1, 64) + "%"
	}
	return strconv.FormatFloat(p, 'f', 0, 64) + "%"
}

func memText(r *telemetry.Resources) string {
	s := bytesText(r.MemoryBytes)
	if r.MemoryLimitBytes > 0 {
		s += "/" + bytesText(r.MemoryLimitBytes)
	}
	if r.NearMemoryLimit {
		s += "!"
	}
	return s
}

// bytesText is n in binary units, two or three significant digits.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + "B"
	}
	v, u := float64(n), -1
	for v >= unit && u < 4 {
		v /= unit
		u++
	}
	suffix := string("KMGTP"[u])
	if v < 10 {
		return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0") + suffix
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + suffix
}

// countText is n with k and M.
func countText(n int64) string {
	switch {
	case n < 1000:
		return strconv.FormatInt(n, 10)
	case n < 1_000_000:
		return strings.TrimSuffix(strconv.FormatFloat(float64(n)/1e3, 'f', 1, 64), ".0") + "k"
	case n < 1_000_000_000:
		return strings.TrimSuffix(strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64), ".0") + "M"
	}
	return strings.TrimSuffix(strconv.FormatFloat(float64(n)/1e9, 'f', 1, 64), ".0") + "G"
}

// usageText is the TOKENS (input and output, every model) and COST cells.
// A model priced as unknown makes the cost "?" or "$X+?", never a silent
// zero.
func usageText(us []telemetry.Usage) (tokens, cost string) {
	if us == nil {
		return "-", "-"
	}
	var n int64
	var usd float64
	unknown, known := false, false
	for _, u := range us {
		n += u.InputTokens + u.OutputTokens
		if u.CostUSD == nil {
			unknown = true
		} else {
			usd += *u.CostUSD
			known = true
		}
	}
	tokens = countText(n)
	switch {
	case known && unknown:
		cost = dollars(usd) + "+?"
	case known:
		cost = dollars(usd)
	case unknown:
		cost = "?"
	default:
		cost = "$0.00"
	}
	return tokens, cost
}

func dollars(v float64) string {
	if v >= 100 {
		return "$" + strconv.FormatFloat(v, 'f', 0, 64)
	}
	return "$" + strconv.FormatFloat(v, 'f', 2, 64)
}

func sinceText(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h"
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// layout picks the columns that fit width, and their widths.
func (m *Model) layout(width int) (cols []int, widths [numCols]int, gap int) {
	natural := m.natural
	gap = 2
	if width < 120 {
		gap = 1
	}
	shown := [numCols]bool{}
	for c := range numCols {
		shown[c] = true
	}
	// The description is only worth showing when someone wrote one, the
	// sync when there is a manifest to be in sync with.
	shown[colDesc] = m.anyDesc
	shown[colSync] = m.anySync
	shown[colLinks] = m.anyLinks
	shown[colTask] = m.anyTask
	need := func() int {
		n, total := 0, markerWidth
		for c := range numCols {
			if !shown[c] {
				continue
			}
			w := natural[c]
			if c == colDesc {
				w = min(w, minDesc)
			}
			total += w
			n++
		}
		return total + gap*max(n-1, 0)
	}
	for _, c := range dropOrder {
		if need() <= width {
			break
		}
		shown[c] = false
	}
	for c := range numCols {
		if shown[c] {
			cols = append(cols, c)
			widths[c] = natural[c]
		}
	}
	// What is left goes to the description; too little still truncates
	// the instance and state.
	used := need()
	if shown[colDesc] {
		widths[colDesc] = min(natural[colDesc], minDesc) + max(width-used, 0)
		widths[colDesc] = min(widths[colDesc], natural[colDesc])
	}
	for over := used - width; over > 0; over = need() - width {
		// Only the instance and the state are left: shrink the wider.
		c := colState
		if natural[colInstance] > natural[colState] {
			c = colInstance
		}
		if natural[c] <= 3 {
			break
		}
		natural[c] -= min(over, natural[c]-3)
		widths[c] = natural[c]
	}
	return cols, widths, gap
}

// naturalWidths are the columns' widths for every row, capped.
func naturalWidths(cells [][]string) (natural [numCols]int) {
	for c := range numCols {
		natural[c] = textWidth(columns[c].title)
	}
	natural[colSince] = 5
	for i := range cells {
		for c, text := range cells[i] {
			if w := textWidth(text); w > natural[c] {
				natural[c] = w
			}
		}
	}
	natural[colSince] = 5
	for c := range numCols {
		if columns[c].max > 0 {
			natural[c] = min(natural[c], columns[c].max)
		}
	}
	return natural
}

// textWidth is the cell width of s: its length when it is ASCII.
func textWidth(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return ansi.StringWidth(s)
		}
	}
	return len(s)
}

// fit pads or truncates s to exactly w cells.
func fit(s string, w int, right bool) string {
	sw := textWidth(s)
	if sw > w {
		if w <= 1 {
			return ansi.Truncate(s, w, "")
		}
		s = ansi.Truncate(s, w, "…")
		sw = textWidth(s)
	}
	pad := strings.Repeat(" ", w-sw)
	if right {
		return pad + s
	}
	return s + pad
}

// tableHeight is how many rows the table shows.
func (m *Model) tableHeight() int {
	// header, column titles, detail title, footer.
	avail := m.height - 4
	rows := len(m.visible)
	if rows == 0 {
		rows = 1
	}
	// The detail pane gets at least 40% of the space when there are many
	// rows.
	h := min(rows, max(avail*3/5, 3))
	return max(min(h, avail-2), 1)
}

// View draws the console.
func (m *Model) View() tea.View {
	var v tea.View
	v.AltScreen = true
	v.WindowTitle = "jackin console"
	if m.snap.Fleet != "" {
		v.WindowTitle += ": " + m.snap.Fleet
	}
	lines := make([]string, 0, m.height)
	lines = append(lines, m.headerLine())
	switch m.mode {
	case modeHelp:
		lines = append(lines, m.helpLines()...)
	case modeExplain, modeLogs:
		lines = append(lines, m.paneLines()...)
	default:
		lines = append(lines, m.tableLines()...)
	}
	for len(lines) < m.height-1 {
		lines = append(lines, "")
	}
	lines = lines[:m.height-1]
	footer := m.footerLine()
	if m.mode == modeFilter {
		if c := m.filter.Cursor(); c != nil {
			c.Position.Y = m.height - 1
			v.Cursor = c
		}
	}
	lines = append(lines, footer)
	v.SetContent(strings.Join(lines, "\n"))
	return v
}

// Frame is the console's screen as text (tests and benchmarks).
func (m *Model) Frame() string { return m.View().Content }

func (m *Model) headerLine() string {
	// The parts in the order they give way on a narrow terminal: last
	// first.
	var parts []string
	name := "jackin console"
	if m.width < 100 {
		name = "jackin"
	}
	title := m.st.paint(m.st.title, name)
	if m.snap.Fleet != "" {
		title += " · fleet " + m.st.paint(m.st.header, m.snap.Fleet)
	}
	parts = append(parts, title)
	if m.haveSnap {
		counts := map[string]int{}
		for i := range m.snap.Rows {
			counts[stateKey(&m.snap.Rows[i])]++
		}
		parts = append(parts, fmt.Sprintf("%d instances", len(m.snap.Rows)))
		for _, s := range []string{"blocked", "working", "done", "idle"} {
			if n := counts[s]; n > 0 {
				parts = append(parts, m.st.paint(m.st.stateStyle(s), fmt.Sprintf("%d %s", n, s)))
			}
		}
		if m.snap.Queue != nil {
			parts = append(parts, queueText(m.snap.Queue))
		}
		if q := m.filter.Value(); q != "" {
			parts = append(parts, fmt.Sprintf("filter %q: %d shown", q, len(m.visible)))
		}
	}
	for _, n := range m.snap.Notes {
		parts = append(parts, m.st.paint(m.st.warn, clean(n)))
	}
	right := ""
	switch {
	case m.snapErr != nil && m.haveSnap:
		right = m.st.paint(m.st.bad, "refresh failed: "+clean(m.snapErr.Error()))
	case m.haveSnap && !m.snap.At.IsZero():
		right = m.snap.At.Format("15:04:05")
		if m.snap.Origin != "" {
			right = m.snap.Origin + " · " + right
		}
	}
	left := strings.Join(parts, " · ")
	if ansi.StringWidth(left)+ansi.StringWidth(right)+2 > m.width && m.snapErr == nil {
		right = "" // the time and origin give way first
	}
	return joinEnds(left, right, m.width)
}

// joinEnds puts left and right on one line of width (left truncated
// first).
func joinEnds(left, right string, width int) string {
	rw := ansi.StringWidth(right)
	if rw > 0 && rw+2 < width {
		lw := width - rw - 1
		left = ansi.Truncate(left, lw, "…")
		return left + strings.Repeat(" ", lw-ansi.StringWidth(left)+1) + right
	}
	return ansi.Truncate(left, width, "…")
}

func (m *Model) tableLines() []string {
	if !m.haveSnap {
		msg := "reading the fleet…"
		if m.snapErr != nil {
			msg = "cannot read the fleet: " + clean(m.snapErr.Error()) + " (retrying)"
		}
		return []string{"", ansi.Truncate(msg, m.width, "…")}
	}
	if len(m.snap.Rows) == 0 {
		return []string{"", fmt.Sprintf("Fleet %q has no instances.", m.snap.Fleet)}
	}
	cols, widths, gap := m.layout(m.width)
	sep := strings.Repeat(" ", gap)
	out := make([]string, 0, m.height)

	var b strings.Builder
	b.WriteString(strings.Repeat(" ", markerWidth))
	for i, c := range cols {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(fit(columns[c].title, widths[c], columns[c].right))
	}
	out = append(out, m.st.paint(m.st.header, strings.TrimRight(b.String(), " ")))

	h := m.tableHeight()
	now := m.opts.Now()
	if len(m.visible) == 0 {
		out = append(out, "  no instance matches the filter (esc clears it)")
	}
	for vi := m.offset; vi < len(m.visible) && vi < m.offset+h; vi++ {
		ri := m.visible[vi]
		out = append(out, m.rowLine(&m.snap.Rows[ri], m.cells[ri], cols, widths, sep, vi == m.cursor, now))
	}
	for len(out) < h+1 {
		out = append(out, "")
	}
	out = append(out, m.detailLines(m.height-2-len(out))...)
	return out
}

// rowLine draws one row.
func (m *Model) rowLine(r *Row, cells []string, cols []int, widths [numCols]int, sep string, selected bool, now time.Time) string {
	state := stateKey(r)
	marker := []byte("   ")
	if selected {
		marker[0] = '>'
	}
	if state == "blocked" {
		marker[1] = '!'
	}
	if !m.st.color {
		var b strings.Builder
		b.Write(marker)
		for i, c := range cols {
			if i > 0 {
				b.WriteString(sep)
			}
			text := cells[c]
			if c == colSince {
				text = sinceText(r.StateSince, now)
			}
			b.WriteString(fit(text, widths[c], columns[c].right))
		}
		return strings.TrimRight(b.String(), " ")
	}
	base := lipgloss.NewStyle()
	if selected {
		base = m.st.selected
	}
	paint := func(st lipgloss.Style, s string) string {
		if selected {
			st = st.Background(m.st.selected.GetBackground())
		}
		return st.Render(s)
	}
	var b strings.Builder
	b.WriteString(paint(m.st.bad, string(marker)))
	for i, c := range cols {
		if i > 0 {
			b.WriteString(paint(base, sep))
		}
		text := cells[c]
		if c == colSince {
			text = sinceText(r.StateSince, now)
		}
		text = fit(text, widths[c], columns[c].right)
		st := base
		switch c {
		case colInstance:
			st = base.Bold(true)
		case colState:
			st = m.st.stateStyle(state)
		case colMem:
			if r.Resources != nil && r.Resources.NearMemoryLimit {
				st = m.st.bad
			}
		case colDenied:
			if r.Denied != nil && *r.Denied > 0 {
				st = m.st.warn
			}
		case colSync:
			if r.Drift() {
				st = m.st.warn
			}
		case colDesc, colRuntime, colPorts:
			st = m.st.dim
		}
		b.WriteString(paint(st, text))
	}
	return b.String()
}

// detailLines draws the selected instance's detail pane in h lines.
func (m *Model) detailLines(h int) []string {
	r := m.selectedRow()
	if r == nil || h <= 0 {
		return nil
	}
	now := m.opts.Now()
	title := "── " + r.Instance + " "
	var facts []string
	if r.Runtime != "" {
		facts = append(facts, r.Runtime)
	}
	st := stateText(r)
	if !r.StateSince.IsZero() {
		st += " " + sinceText(r.StateSince, now)
	}
	facts = append(facts, st)
	if r.Observed != "" && r.Observed != "running" && r.Observed != stateKey(r) {
		facts = append(facts, "container "+r.Observed)
	}
	if r.Sync != "" {
		facts = append(facts, r.Sync)
	}
	if r.Task != nil {
		t := "task " + r.Task.ID + " " + r.Task.State
		if r.Task.Title != "" {
			t += " \"" + r.Task.Title + "\""
		}
		facts = append(facts, t)
	}
	if res := r.Resources; res != nil {
		facts = append(facts, "CPU "+percent(res.CPUPercent), "MEM "+memText(res))
	}
	if r.Usage != nil {
		tok, cost := usageText(r.Usage)
		facts = append(facts, tok+" tokens "+cost)
	}
	if len(r.Ports) > 0 {
		facts = append(facts, "ports "+strings.Join(r.Ports, ", "))
	}
	title += strings.Join(facts, " · ") + " "
	title = ansi.Truncate(title, m.width, "…")
	if w := ansi.StringWidth(title); w < m.width {
		title += strings.Repeat("─", m.width-w)
	}
	out := []string{m.st.paint(m.st.dim, title)}
	body := h - 1
	if r.Description != "" && body > 0 {
		out = append(out, ansi.Truncate("  "+r.Description, m.width, "…"))
		body--
	}
	d, ok := m.details[r.Instance]
	if !ok {
		msg := "  reading…"
		if err := m.detailErr[r.Instance]; err != nil {
			msg = "  cannot read the detail: " + clean(err.Error())
		}
		if body > 0 {
			out = append(out, msg)
		}
		return out
	}
	secs := m.sections(d)
	if m.width >= 120 {
		half := (m.width - 3) / 2
		left := layoutSections(m.st, secs[:2], body, half)
		right := layoutSections(m.st, secs[2:], body, m.width-3-half)
		for i := 0; i < body; i++ {
			l, rt := "", ""
			if i < len(left) {
				l = left[i]
			}
			if i < len(right) {
				rt = right[i]
			}
			if l == "" && rt == "" {
				break
			}
			line := l + strings.Repeat(" ", half-ansi.StringWidth(l)) + m.st.paint(m.st.dim, " │ ") + rt
			if rt == "" {
				line = strings.TrimRight(l+strings.Repeat(" ", half-ansi.StringWidth(l))+m.st.paint(m.st.dim, " │"), " ")
			}
			out = append(out, line)
		}
	} else {
		out = append(out, layoutSections(m.st, secs, body, m.width)...)
	}
	if err := m.detailErr[r.Instance]; err != nil && len(out) < h {
		out = append(out, m.st.paint(m.st.warn, ansi.Truncate("  refresh failed: "+clean(err.Error()), m.width, "…")))
	}
	return out
}

// section is one part of the detail pane; tail keeps its last lines when
// it must be cut, instead of its first.
type section struct {
	title string
	empty string
	lines []string
	tail  bool
}

func (m *Model) sections(d Detail) []section {
	states := make([]string, 0, len(d.States))
	for _, s := range d.States {
		line := s.At.Format("15:04:05") + " " + m.st.paint(m.st.stateStyle(s.State), s.State)
		if s.Detail != "" {
			line += " " + s.Detail
		}
		states = append(states, line)
	}
	egress := make([]string, 0, len(d.Egress))
	for _, e := range d.Egress {
		verdict := "allowed"
		if !e.Allowed {
			verdict = m.st.paint(m.st.bad, "DENIED ")
		}
		line := e.At.Format("15:04:05") + " " + verdict + " " + e.Method + " " + e.Destination
		if e.Rule != "" {
			line += " (" + e.Rule + ")"
		}
		egress = append(egress, line)
	}
	contract := d.Contract
	for _, p := range d.Problems {
		contract = append(contract[:len(contract):len(contract)], m.st.paint(m.st.warn, "! "+p))
	}
	var secs []section
	if r := m.selectedRow(); r != nil && r.Instance == d.Instance && len(r.Links) > 0 {
		links := make([]string, 0, len(r.Links))
		for _, l := range r.Links {
			line := l.Kind + " " + l.Label
			if l.State != "" {
				line += " " + m.st.paint(m.st.dim, l.State)
			}
			if l.URL != l.Label {
				line += " " + l.URL
			}
			links = append(links, clean(line))
		}
		secs = append(secs, section{title: "Links", lines: links})
	}
	return append(secs, []section{
		{title: "Contract", empty: "not known", lines: contract},
		{title: "State changes", empty: "none recorded", lines: states, tail: true},
		{title: "Egress", empty: "no decisions recorded", lines: egress, tail: true},
		{title: "Log", empty: "nothing printed yet", lines: d.Logs, tail: true},
	}...)
}

// linkText is a row's PR/CI/REVIEW cell: its first link and state, and
// how many more it has.
func linkText(ls []Link) string {
	if len(ls) == 0 {
		return "-"
	}
	s := ls[0].Kind + " " + ls[0].Label
	if ls[0].State != "" {
		s += " " + ls[0].State
	}
	if len(ls) > 1 {
		s += " +" + strconv.Itoa(len(ls)-1)
	}
	return clean(s)
}

// layoutSections fits the sections in h lines of width w: each gets its
// title and a fair share of the lines; a section that does not need its
// share leaves it to the others.
func layoutSections(st styles, secs []section, h, w int) []string {
	if h <= 0 {
		return nil
	}
	// Titles first; a section that gets no line at all is left out.
	n := len(secs)
	for n > 0 && n > h {
		n--
	}
	secs = secs[:n]
	share := make([]int, n)
	left := h - n
	for left > 0 {
		gave := false
		for i := range secs {
			if left == 0 {
				break
			}
			if share[i] < len(secs[i].lines) {
				share[i]++
				left--
				gave = true
			}
		}
		if !gave {
			break
		}
	}
	var out []string
	for i, s := range secs {
		title := st.paint(st.header, s.title)
		if len(s.lines) == 0 {
			out = append(out, ansi.Truncate(title+"  "+st.paint(st.dim, s.empty), w, "…"))
			continue
		}
		lines := s.lines
		if len(lines) > share[i] {
			if s.tail {
				lines = lines[len(lines)-share[i]:]
			} else {
				lines = lines[:share[i]]
			}
		}
		out = append(out, title)
		for _, l := range lines {
			out = append(out, ansi.Truncate("  "+l, w, "…"))
		}
	}
	return out
}

func (m *Model) helpLines() []string {
	k := m.keys
	rows := [][2]string{
		{"↑ ↓  k j", "move"},
		{"pgup pgdn", "move a page"},
		{"g G", "first, last"},
		{k.Attach.Help().Key, "attach: join the agent's terminal; detach with ctrl-p ctrl-q"},
		{k.Logs.Help().Key, "logs: follow what the agent prints"},
		{k.Explain.Help().Key, "explain: the session contract (what the agent can reach)"},
		{k.Filter.Help().Key, "filter by instance, state, runtime, sync or description"},
		{k.Refresh.Help().Key, "refresh now"},
		{k.Back.Help().Key, "close a pane, clear the filter"},
		{k.Help.Help().Key, "this help"},
		{"q ctrl+c", "quit"},
	}
	for _, b := range append([]key.Binding{k.Open, k.Review}, k.Tools...) {
		if len(b.Keys()) > 0 {
			rows = append(rows, [2]string{b.Help().Key, b.Help().Desc})
		}
	}
	out := []string{"", m.st.paint(m.st.header, "Keys")}
	for _, r := range rows {
		out = append(out, "  "+m.st.paint(m.st.key, fmt.Sprintf("%-10s", r[0]))+" "+r[1])
	}
	out = append(out, "",
		"Refreshes on engine events and the agents' published state, and every "+m.opts.Resync.String()+".",
		m.changesLine(),
		"", "Any key closes this help.")
	for i := range out {
		out[i] = ansi.Truncate(out[i], m.width, "…")
	}
	return out
}

func (m *Model) paneLines() []string {
	title := m.paneTitle
	switch {
	case m.mode == modeLogs && !m.logEnded:
		title += " (following)"
	}
	pct := fmt.Sprintf(" %3.0f%% ", m.pane.ScrollPercent()*100)
	line := "── " + title + " "
	if w := m.width - ansi.StringWidth(line) - len(pct) - 2; w > 0 {
		line += strings.Repeat("─", w) + pct + "──"
	}
	out := []string{m.st.paint(m.st.dim, ansi.Truncate(line, m.width, "…"))}
	body := m.pane.View()
	out = append(out, strings.Split(body, "\n")...)
	return out
}

func (m *Model) footerLine() string {
	switch m.mode {
	case modeFilter:
		return ansi.Truncate(m.filter.View(), m.width, "…")
	case modeExplain, modeLogs:
		hint := "↑↓ pgup pgdn scroll · g/G top/bottom · esc close"
		return m.st.paint(m.st.dim, ansi.Truncate(hint, m.width, "…"))
	case modeHelp:
		return ""
	}
	if m.status != "" {
		return m.st.paint(m.st.warn, ansi.Truncate(m.status, m.width, "…"))
	}
	return ansi.Truncate(m.help.ShortHelpView(m.keys.ShortHelp()), m.width, "…")
}

// clean keeps text from a source (an agent wrote some of it) fit to
// draw: no escape sequences or control characters, tabs as spaces.
func clean(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	s = ansi.Strip(s)
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t':
			b.WriteString("    ")
		case r == unicode.ReplacementChar, !unicode.IsPrint(r) && r != ' ':
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// cleanBlock cleans each line of a multi-line text.
func cleanBlock(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = clean(strings.TrimSuffix(l, "\r"))
	}
	return strings.Join(lines, "\n")
}

func cleanDetail(d Detail) Detail {
	c := func(ss []string) []string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = clean(s)
		}
		return out
	}
	d.Contract, d.Logs, d.Problems = c(d.Contract), c(d.Logs), c(d.Problems)
	for i := range d.States {
		d.States[i].State, d.States[i].Detail = clean(d.States[i].State), clean(d.States[i].Detail)
	}
	for i := range d.Egress {
		e := &d.Egress[i]
		e.Method, e.Destination, e.Rule = clean(e.Method), clean(e.Destination), clean(e.Rule)
	}
	return d
}

// ansiStrip removes escape sequences (tests measure frames with it).
func ansiStrip(s string) string { return ansi.Strip(s) }

// changesLine says what the console changes: nothing, or, with the
// manifest's operator tools, what they do.
func (m *Model) changesLine() string {
	for _, t := range m.tools {
		if t.Prompt {
			return "The console changes no instance; the manifest's prompt tools type into agents (only idle or done ones)."
		}
	}
	return "The console changes nothing: apply and delete stay reviewed manifest changes."
}
