package console

import (
	"os/exec"
	"strings"
	"testing"
)

// toolSource is fakeSource with operator tools and handlers, whose
// commands echo what they were asked.
type toolSource struct {
	*fakeSource
	asked []string
}

func (s *toolSource) Tools() []Tool {
	return []Tool{{Name: "status", Key: "s", Prompt: true}, {Name: "nokey"}, {Name: "busy", Key: "b", Prompt: true}}
}

func (s *toolSource) ToolCommand(name, inst string) (*exec.Cmd, error) {
	s.asked = append(s.asked, name+" "+inst)
	if name == "busy" {
		return exec.Command("sh", "-c", "echo 'tool busy: api refused the prompt: the agent is working' >&2; exit 1"), nil
	}
	return exec.Command("echo", "tool "+name+": typed its prompt into "+inst+" (the agent is working)"), nil
}

func (s *toolSource) OpenCommand(what, inst string) (*exec.Cmd, error) {
	s.asked = append(s.asked, what+" "+inst)
	return exec.Command("echo", "opened "+what+" of "+inst), nil
}

func TestToolKeys(t *testing.T) {
	src := &toolSource{fakeSource: newFake(testRows())}
	m := newTestModel(t, src.fakeSource, 120, 40, false)
	m.src = src
	m.bindTools()
	deliver(t, m, press(m, "s"))
	if len(src.asked) != 1 || src.asked[0] != "status api" || !strings.Contains(m.status, "typed its prompt into api") {
		t.Fatalf("key s: asked %v, status %q", src.asked, m.status)
	}
	deliver(t, m, press(m, "b"))
	if !strings.Contains(m.status, "refused the prompt: the agent is working") {
		t.Errorf("a refused prompt tool: status %q", m.status)
	}
	deliver(t, m, press(m, "o"))
	if src.asked[len(src.asked)-1] != "web api" || !strings.Contains(m.status, "opened web of api") {
		t.Errorf("key o: asked %v, status %q", src.asked, m.status)
	}
	deliver(t, m, press(m, "v"))
	if src.asked[len(src.asked)-1] != "review api" {
		t.Errorf("key v: asked %v", src.asked)
	}
	press(m, "?")
	if f := m.Frame(); !strings.Contains(f, "tool status (types into the agent)") || !strings.Contains(f, "handlers.web") || strings.Contains(f, "nokey") {
		t.Errorf("the help does not list the tool keys:\n%s", f)
	}
	// Without a Tooler, the same keys do nothing.
	plain := newTestModel(t, newFake(testRows()), 120, 40, false)
	if cmd := press(plain, "s"); cmd != nil || plain.status != "" {
		t.Errorf("key s without tools: %q", plain.status)
	}
}
