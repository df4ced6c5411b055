package usage

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestNormalizeModel(t *testing.T) {
	for in, want := range map[string]string{
		"claude-sonnet-4-5-20250929":                   "claude-sonnet-4-5",
		"claude-sonnet-4-5@20250929":                   "claude-sonnet-4-5",
		"us.anthropic.claude-sonnet-4-5-20250929-v1:0": "claude-sonnet-4-5",
		"anthropic/claude-sonnet-4.5":                  "claude-sonnet-4-5",
		"claude-opus-4-6[1m]":                          "claude-opus-4-6",
		"Claude-Haiku-4-5-20251001":                    "claude-haiku-4-5",
		"gpt-5-2025-08-07":                             "gpt-5",
		"openai/gpt-5.4-mini":                          "gpt-5.4-mini",
		"models/gemini-2.5-pro":                        "gemini-2.5-pro",
		"gemini-2.5-flash-latest":                      "gemini-2.5-flash",
	} {
		if got := NormalizeModel(in); got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
}

func TestCost(t *testing.T) {
	p := BuiltinPrices()
	c, ok := p.Cost("claude-sonnet-4-5-20250929", Tokens{Input: 1e6, Output: 1e6, CacheRead: 1e6, CacheWrite: 1e6})
	if !ok || math.Abs(c-(3+15+0.30+3.75)) > 1e-9 {
		t.Errorf("sonnet: %v %v", c, ok)
	}
	c, ok = p.Cost("gpt-5-codex", Tokens{Input: 600, CacheRead: 400, Output: 100})
	if !ok || math.Abs(c-(600*1.25+400*0.125+100*10)/1e6) > 1e-12 {
		t.Errorf("codex: %v %v", c, ok)
	}
	// Unknown: no cost, not a zero one; neither does a near name match.
	for _, m := range []string{"claude-future-9", "claude-opus-4-9", "gpt-5.1-codex-max", "unknown", "", "claude-standin"} {
		if _, ok := p.Cost(m, Tokens{Input: 1}); ok {
			t.Errorf("%q priced", m)
		}
	}
	if PricesDate == "" || len(p.Models) < 20 {
		t.Error("the built-in table has no date or few models")
	}
}

func TestPricesOverride(t *testing.T) {
	dir := t.TempDir()
	if p, err := LoadPrices(dir); err != nil || p.Date != PricesDate {
		t.Fatalf("no file: %v %v", p.Date, err)
	}
	os.WriteFile(filepath.Join(dir, PricesFile), []byte(`{"date":"2027-01-15","models":{
		"claude-standin":{"input":1,"output":2},
		"Claude-Sonnet-4-5-20250929":{"input":30,"output":150,"cacheRead":3,"cacheWrite":37.5},
		"gpt-5":null}}`), 0o644)
	p, err := LoadPrices(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.Date != "2027-01-15" {
		t.Error(p.Date)
	}
	if c, ok := p.Cost("claude-standin", Tokens{Input: 1e6, Output: 1e6}); !ok || c != 3 {
		t.Errorf("added: %v %v", c, ok)
	}
	if pr, _ := p.Lookup("claude-sonnet-4-5"); pr.Input != 30 {
		t.Errorf("replaced: %+v", pr)
	}
	if _, ok := p.Lookup("gpt-5"); ok {
		t.Error("null did not remove gpt-5")
	}
	if _, ok := p.Lookup("gpt-5-codex"); !ok {
		t.Error("the rest of the table is gone")
	}
	for _, bad := range []string{`{"models":{"x":{"input":-1}}}`, `{"model":{}}`, `{"models":{"x":{"inputs":1}}}`, `[`} {
		os.WriteFile(filepath.Join(dir, PricesFile), []byte(bad), 0o644)
		if _, err := LoadPrices(dir); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestSummarize(t *testing.T) {
	p := BuiltinPrices()
	s := Summarize(map[string]Tokens{
		"claude-sonnet-4-5": {Input: 1e6, Output: 100},
		"claude-haiku-4-5":  {Input: 10, Output: 500},
	}, p)
	if s.Model != "claude-haiku-4-5" || s.InputTokens != 1e6+10 || s.OutputTokens != 600 || s.CostUSD == nil {
		t.Fatalf("%+v", s)
	}
	if want := 3 + 100*15/1e6 + 10*1/1e6 + 500*5/1e6; math.Abs(*s.CostUSD-want) > 1e-6 {
		t.Errorf("cost %v, want %v", *s.CostUSD, want)
	}
	// One unknown model with tokens: the total cost is unknown.
	s = Summarize(map[string]Tokens{"claude-sonnet-4-5": {Input: 1}, "claude-standin": {Output: 1}}, p)
	if s.CostUSD != nil || s.Model != "claude-standin" {
		t.Errorf("%+v", s)
	}
	if s := Summarize(nil, p); s.CostUSD == nil || *s.CostUSD != 0 || s.Model != "" {
		t.Errorf("empty: %+v", s)
	}
}
