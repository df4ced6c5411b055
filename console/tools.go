package console

import (
	"fmt"
	"os/exec"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// Tooler is a Source with operator tools (the manifest's tools): the
// console binds each tool's key and runs it for the selected instance.
// A prompt tool runs in the background (its outcome in the status line:
// typed, or refused with the agent's state); an exec tool runs in the
// foreground on the console's terminal while the console steps aside.
type Tooler interface {
	Tools() []Tool
	ToolCommand(name, instance string) (*exec.Cmd, error)
}

// Tool is an operator tool with a key.
type Tool struct {
	Name, Key string
	// Prompt is true for a tool that types into the agent.
	Prompt bool
}

// Opener is a Source that opens things with the fleet's handlers: the
// selected instance's newest link (handlers.web, key o) or its checkout
// for review (handlers.review, key v).
type Opener interface {
	OpenCommand(what, instance string) (*exec.Cmd, error)
}

// What an Opener opens.
const (
	OpenWeb    = "web"
	OpenReview = "review"
)

type toolDoneMsg struct {
	what, instance string
	out            string
	err            error
}

// bindTools adds the source's tool and handler keys to the key map.
func (m *Model) bindTools() {
	if t, ok := m.src.(Tooler); ok {
		for _, tool := range t.Tools() {
			if tool.Key == "" {
				continue
			}
			desc := "tool " + tool.Name
			if tool.Prompt {
				desc += " (types into the agent)"
			}
			m.keys.Tools = append(m.keys.Tools, key.NewBinding(key.WithKeys(tool.Key), key.WithHelp(tool.Key, desc)))
			m.tools = append(m.tools, tool)
		}
	}
	if _, ok := m.src.(Opener); ok {
		m.keys.Open = key.NewBinding(key.WithKeys("o"), key.WithHelp("o", "open the newest link (handlers.web)"))
		m.keys.Review = key.NewBinding(key.WithKeys("v"), key.WithHelp("v", "open the checkout for review (handlers.review)"))
	}
}

// toolKey runs the tool bound to k, if any.
func (m *Model) toolKey(k string) (tea.Cmd, bool) {
	for _, t := range m.tools {
		if t.Key == k {
			return m.runTool(t), true
		}
	}
	return nil, false
}

func (m *Model) runTool(t Tool) tea.Cmd {
	r := m.selectedRow()
	if r == nil {
		m.status = "no instance selected"
		return nil
	}
	cmd, err := m.src.(Tooler).ToolCommand(t.Name, r.Instance)
	if err != nil {
		m.status = "tool " + t.Name + ": " + clean(err.Error())
		return nil
	}
	what, inst := "tool "+t.Name, r.Instance
	if t.Prompt {
		m.status = what + ": typing into " + inst + "…"
		return func() tea.Msg {
			out, err := cmd.CombinedOutput()
			return toolDoneMsg{what: what, instance: inst, out: string(out), err: err}
		}
	}
	return tea.ExecProcess(cmd, func(err error) tea.Msg {
		return toolDoneMsg{what: what, instance: inst, err: err}
	})
}

// open runs a handler for the selected instance, in the background.
func (m *Model) open(what string) tea.Cmd {
	r := m.selectedRow()
	if r == nil {
		m.status = "no instance selected"
		return nil
	}
	cmd, err := m.src.(Opener).OpenCommand(what, r.Instance)
	if err != nil {
		m.status = clean(err.Error())
		return nil
	}
	inst := r.Instance
	return func() tea.Msg {
		out, err := cmd.CombinedOutput()
		return toolDoneMsg{what: "handlers." + what, instance: inst, out: string(out), err: err}
	}
}

// toolStatus is the status line after a tool or handler ran: its last
// line of output, or its failure.
func toolStatus(msg toolDoneMsg) string {
	last := ""
	lines := strings.Split(strings.TrimSpace(msg.out), "\n")
	if len(lines) > 0 {
		last = strings.TrimSpace(lines[len(lines)-1])
	}
	if msg.err != nil {
		if last != "" {
			return clean(fmt.Sprintf("%s on %s failed: %s", msg.what, msg.instance, last))
		}
		return clean(fmt.Sprintf("%s on %s failed: %v", msg.what, msg.instance, msg.err))
	}
	if last == "" {
		return clean(msg.what + " on " + msg.instance + ": done")
	}
	return clean(last)
}
