package console

import (
	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/lipgloss/v2"
)

// styles are the console's colours; with color false (NO_COLOR) nothing
// is styled at all: the text is plain, and the marker column says what
// colour would (">" selected, "!" blocked).
type styles struct {
	color bool

	header, dim, title lipgloss.Style
	working, blocked   lipgloss.Style
	done, idle         lipgloss.Style
	starting, exited   lipgloss.Style
	warn, bad          lipgloss.Style
	selected           lipgloss.Style
	key                lipgloss.Style
}

func newStyles(color bool) styles {
	s := styles{color: color}
	if !color {
		return s
	}
	c := lipgloss.Color
	s.header = lipgloss.NewStyle().Bold(true)
	s.dim = lipgloss.NewStyle().Foreground(c("8"))
	s.title = lipgloss.NewStyle().Bold(true).Foreground(c("12"))
	s.working = lipgloss.NewStyle().Foreground(c("10"))
	// blocked waits for the operator: it has to stand out.
	s.blocked = lipgloss.NewStyle().Bold(true).Foreground(c("15")).Background(c("1"))
	s.done = lipgloss.NewStyle().Foreground(c("14"))
	s.idle = lipgloss.NewStyle().Foreground(c("8"))
	s.starting = lipgloss.NewStyle().Foreground(c("11"))
	s.exited = lipgloss.NewStyle().Foreground(c("9"))
	s.warn = lipgloss.NewStyle().Foreground(c("11"))
	s.bad = lipgloss.NewStyle().Bold(true).Foreground(c("9"))
	s.selected = lipgloss.NewStyle().Background(c("237"))
	s.key = lipgloss.NewStyle().Bold(true)
	return s
}

// paint renders text in style st, or leaves it plain without colour.
func (s styles) paint(st lipgloss.Style, text string) string {
	if !s.color || text == "" {
		return text
	}
	return st.Render(text)
}

// stateStyle is the colour of an agent (or container) state.
func (s styles) stateStyle(state string) lipgloss.Style {
	switch state {
	case "working":
		return s.working
	case "blocked":
		return s.blocked
	case "done":
		return s.done
	case "idle":
		return s.idle
	case "starting":
		return s.starting
	case "exited", "oom-killed", "crashloop":
		return s.exited
	case "stopped", "idle-stopped", "missing", "orphan", "unknown":
		return s.dim
	}
	return lipgloss.NewStyle()
}

// helpModel is the bubbles help, styled or plain.
func (s styles) helpModel() help.Model {
	h := help.New()
	if s.color {
		h.Styles = help.DefaultDarkStyles()
	} else {
		h.Styles = help.Styles{}
	}
	return h
}

// keyMap is every key the console answers.
type keyMap struct {
	Up, Down, PageUp, PageDown, Top, Bottom key.Binding
	Attach, Logs, Explain, Filter, Help     key.Binding
	Refresh, Back, Quit                     key.Binding
	// Open and Review are bound when the source opens things (Opener);
	// Tools are the source's tool keys (Tooler).
	Open, Review key.Binding
	Tools        []key.Binding
}

func newKeyMap() keyMap {
	b := func(keys []string, k, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(k, desc))
	}
	return keyMap{
		Up:       b([]string{"up", "k"}, "↑/k", "move up"),
		Down:     b([]string{"down", "j"}, "↓/j", "move down"),
		PageUp:   b([]string{"pgup", "ctrl+b"}, "pgup", "page up"),
		PageDown: b([]string{"pgdown", "ctrl+f", "space"}, "pgdn", "page down"),
		Top:      b([]string{"home", "g"}, "g", "first"),
		Bottom:   b([]string{"end", "G"}, "G", "last"),
		Attach:   b([]string{"enter", "a"}, "enter/a", "attach (detach: ctrl-p ctrl-q)"),
		Logs:     b([]string{"l"}, "l", "logs (follow)"),
		Explain:  b([]string{"e"}, "e", "explain (session contract)"),
		Filter:   b([]string{"/"}, "/", "filter"),
		Help:     b([]string{"?"}, "?", "help"),
		Refresh:  b([]string{"r"}, "r", "refresh now"),
		Back:     b([]string{"esc"}, "esc", "close pane / clear filter"),
		Quit:     b([]string{"q", "ctrl+c"}, "q", "quit"),
	}
}

// ShortHelp is the footer's list: the same keys, shorter words.
func (k keyMap) ShortHelp() []key.Binding {
	short := func(b key.Binding, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(b.Keys()...), key.WithHelp(b.Help().Key, desc))
	}
	return []key.Binding{short(k.Attach, "attach"), short(k.Logs, "logs"), short(k.Explain, "explain"),
		short(k.Filter, "filter"), short(k.Help, "help"), short(k.Quit, "quit")}
}

// FullHelp is the help pane's.
func (k keyMap) FullHelp() [][]key.Binding {
	groups := [][]key.Binding{
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom},
		{k.Attach, k.Logs, k.Explain, k.Filter, k.Refresh},
		{k.Back, k.Help, k.Quit},
	}
	if extra := append([]key.Binding{k.Open, k.Review}, k.Tools...); len(k.Open.Keys())+len(k.Tools) > 0 {
		groups = append(groups, extra)
	}
	return groups
}
