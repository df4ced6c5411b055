package runtimes

import (
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	want := []string{Claude, Codex, Amp, OpenCode, Gemini, Shell}
	if got := Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
	envName := regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	homes := map[string]string{}
	for _, rt := range All() {
		if got, ok := Get(rt.Name); !ok || got.Name != rt.Name {
			t.Errorf("Get(%q) = %v, %v", rt.Name, got, ok)
		}
		for _, c := range rt.Credentials {
			if !envName.MatchString(c) {
				t.Errorf("%s: credential %q is not an environment variable name", rt.Name, c)
			}
		}
		for _, h := range rt.Home {
			if h.Rel == "" || h.What == "" || path.IsAbs(h.Rel) || path.Clean(h.Rel) != h.Rel || h.Rel == "." || h.Rel == ".." || strings.HasPrefix(h.Rel, "../") {
				t.Errorf("%s: home path %+v must be a clean relative path below the home directory, with what it holds", rt.Name, h)
			}
			if other, dup := homes[h.Rel]; dup {
				t.Errorf("%s and %s both keep ~/%s", other, rt.Name, h.Rel)
			}
			homes[h.Rel] = rt.Name
		}
	}
	if _, ok := Get("gpt"); ok {
		t.Error(`Get("gpt") found a runtime`)
	}
}

// All and Get hand out copies: a caller cannot change the table.
func TestCopies(t *testing.T) {
	all := All()
	all[0].Name = "x"
	all[0].APIHosts[0] = "evil.example"
	all[0].Home[0].Rel = "x"
	c, _ := Get(Claude)
	c.Credentials[0] = "X"
	if got, _ := Get(Claude); got.Name != Claude || got.APIHosts[0] != "api.anthropic.com" || got.Home[0].Rel != ".claude" || got.Credentials[0] != "ANTHROPIC_API_KEY" {
		t.Errorf("the table changed through a copy: %+v", got)
	}
}
