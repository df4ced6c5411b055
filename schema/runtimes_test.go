package schema

import (
	"slices"
	"strconv"
	"testing"

	"cuelang.org/go/cue"

	"github.com/jackin-dev/jackin/runtimes"
)

// The schema's agent enum (fleet.cue, the source of the schema) lists
// exactly the runtimes table's names, in its order; so do the Agent
// constants.
func TestAgentEnumIsTheRuntimesTable(t *testing.T) {
	v := cueContext().CompileBytes(Source, cue.Filename(SourceName))
	if err := v.Err(); err != nil {
		t.Fatal(err)
	}
	agent := v.LookupPath(cue.MakePath(cue.Def("#Instance"), cue.Str("agent").Optional()))
	if !agent.Exists() {
		t.Fatal("#Instance has no agent field")
	}
	op, args := agent.Expr()
	if op != cue.OrOp {
		t.Fatalf("#Instance.agent is not a disjunction of names (%v)", op)
	}
	var enum []string
	for _, a := range args {
		s, err := a.String()
		if err != nil {
			continue // #Name: a runtime the fleet declares, checked in Go
		}
		enum = append(enum, s)
	}
	want := runtimes.Names()
	if !slices.Equal(enum, want) {
		t.Errorf("fleet.cue's agent enum is %q, the runtimes table's names are %q: make them one list", enum, want)
	}
	if len(args) != len(want)+1 {
		t.Errorf("#Instance.agent has %d alternatives: the table's names and #Name (a declared runtime)", len(args))
	}
	consts := []string{AgentClaude, AgentCodex, AgentAmp, AgentOpenCode, AgentGemini, AgentShell}
	if !slices.Equal(consts, want) {
		t.Errorf("the Agent constants are %q, the runtimes table's names are %q", consts, want)
	}
	// The schema accepts each name and a custom runtime's name (declared
	// or not is checked once the fleet is read), nothing else.
	for n, ok := range map[string]bool{"claude": true, "shell": true, "my-agent": true, "": false, "Bad_Name": false} {
		got := agent.Unify(v.Context().CompileString(strconv.Quote(n))).Validate(cue.Concrete(true)) == nil
		if got != ok {
			t.Errorf("agent %q accepted by the schema: %v, want %v", n, got, ok)
		}
	}
}

// The runtimes' logins are in SensitiveHomePaths, from the table, after
// the other credential locations, with the names messages show.
func TestSensitiveHomePathsHoldTheRuntimesLogins(t *testing.T) {
	var want []SensitiveHomePath
	for _, rt := range runtimes.All() {
		for _, h := range rt.Home {
			want = append(want, SensitiveHomePath{Rel: h.Rel, What: h.What})
		}
	}
	if len(want) == 0 || len(SensitiveHomePaths) < len(want) {
		t.Fatalf("no runtime logins (%d) in SensitiveHomePaths (%d)", len(want), len(SensitiveHomePaths))
	}
	if got := SensitiveHomePaths[len(SensitiveHomePaths)-len(want):]; !slices.Equal(got, want) {
		t.Errorf("SensitiveHomePaths ends with %v, want the runtimes' %v", got, want)
	}
	for _, w := range []SensitiveHomePath{
		{".claude", "Claude Code login"}, {".claude.json", "Claude Code account"}, {".codex", "Codex login"},
		{".local/share/amp", "Amp login"}, {".local/share/opencode", "OpenCode login"}, {".gemini", "Gemini CLI login"},
	} {
		if !slices.Contains(SensitiveHomePaths, w) {
			t.Errorf("SensitiveHomePaths lacks %v", w)
		}
	}
}

// MissingRuntimeCredentials names the table's credentials for each runtime
// that has any, and nothing for those that have none.
func TestMissingRuntimeCredentialsReadsTheTable(t *testing.T) {
	for _, rt := range runtimes.All() {
		got := MissingRuntimeCredentials(Instance{Agent: rt.Name})
		if !slices.Equal(got, rt.Credentials) {
			t.Errorf("%s without credentials: missing %q, want %q", rt.Name, got, rt.Credentials)
		}
		if len(rt.Credentials) == 0 {
			continue
		}
		for _, n := range rt.Credentials {
			inst := Instance{Agent: rt.Name, Credentials: map[string]Credential{n: {Name: n}}}
			if got := MissingRuntimeCredentials(inst); got != nil {
				t.Errorf("%s with %s: missing %q", rt.Name, n, got)
			}
		}
	}
	if got := MissingRuntimeCredentials(Instance{Agent: "gpt"}); got != nil {
		t.Errorf("an unknown runtime: missing %q", got)
	}
}
