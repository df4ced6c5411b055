package contract

import (
	"bytes"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/schema"
)

// TestEngineInTheContract: an instance on a remote engine names the engine
// and its transport, says its host's root sees everything the agent has,
// and carries that residual risk; an instance on the local engine has no
// engine section and no such risk.
func TestEngineInTheContract(t *testing.T) {
	e := schema.Engine{Name: "build1", Host: "ssh://jackin@build1.example"}
	f := fleetOf("edge", map[string]schema.Instance{
		"r": instance(func(in *schema.Instance) { in.Engine, in.EngineSpec = e.Name, &e }),
		"l": instance(func(in *schema.Instance) {}),
	})
	doc, err := Build(f, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]Contract{}
	for _, c := range doc.Instances {
		by[c.Instance] = c
	}
	r, l := by["r"], by["l"]
	if l.Sandbox.Engine != nil {
		t.Errorf("local instance has an engine: %+v", l.Sandbox.Engine)
	}
	for _, risk := range l.ResidualRisk {
		if risk.ID == RiskRemoteHostRoot {
			t.Errorf("local instance carries %s", risk.ID)
		}
	}
	got := r.Sandbox.Engine
	if got == nil || got.Name != "build1" || !got.Remote || !strings.Contains(got.Transport, "docker system dial-stdio") ||
		!strings.Contains(got.HostRoot, "root on ssh://jackin@build1.example") || !strings.Contains(got.HostRoot, "everything the agent has") {
		t.Fatalf("engine %+v", got)
	}
	found := false
	for _, risk := range r.ResidualRisk {
		found = found || (risk.ID == RiskRemoteHostRoot && strings.Contains(risk.Statement, "engine build1"))
	}
	if !found {
		t.Errorf("no %s risk naming the engine: %+v", RiskRemoteHostRoot, r.ResidualRisk)
	}
	var buf bytes.Buffer
	if err := WriteText(&buf, doc); err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := WriteCompact(&compact, &r, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(compact.String(), "on engine build1 (ssh://jackin@build1.example): root on that host sees everything the agent has") {
		t.Errorf("the compact contract does not name the engine:\n%s", compact.String())
	}
	text := strings.Join(strings.Fields(buf.String()), " ")
	for _, want := range []string{"engine build1 (ssh://jackin@build1.example)", "engine host's root root on ssh://jackin@build1.example"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, buf.String())
		}
	}
}
