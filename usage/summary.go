package usage

import (
	"math"
	"sort"
)

// Summary is a total over models with its estimated cost: a row of
// `jackin usage`, or an instance's totals in `jackin get`. It has the
// fields of telemetry.Usage, so telemetry.Usage(s) converts it.
type Summary struct {
	// Model is the model (for an instance's totals over several models:
	// its main model, the one that wrote the most output).
	Model            string `json:"model"`
	InputTokens      int64  `json:"inputTokens"`
	OutputTokens     int64  `json:"outputTokens"`
	CacheReadTokens  int64  `json:"cacheReadTokens"`
	CacheWriteTokens int64  `json:"cacheWriteTokens"`
	// CostUSD is the estimate from the price table; nil when the price of
	// a model with tokens is unknown (never a silent zero, nor a sum that
	// leaves part of the use out).
	CostUSD *float64 `json:"costUSD"`
}

// CostOf is the estimated cost of t on model, rounded to a millionth of
// a dollar; nil when the model's price is unknown.
func (p Prices) CostOf(model string, t Tokens) *float64 {
	c, ok := p.Cost(model, t)
	if !ok {
		if t.IsZero() {
			z := 0.0
			return &z
		}
		return nil
	}
	c = math.Round(c*1e6) / 1e6
	return &c
}

// Summarize adds up an instance's use of each model: the tokens of all,
// the cost of all (nil if one is unknown), and the main model: the one
// with the most output tokens (then the most tokens, then by name).
func Summarize(byModel map[string]Tokens, p Prices) Summary {
	models := make([]string, 0, len(byModel))
	for m := range byModel {
		models = append(models, m)
	}
	sort.Strings(models)
	var s Summary
	var sum Tokens
	cost := 0.0
	known := true
	var main string
	for _, m := range models {
		t := byModel[m]
		sum = sum.Add(t)
		if c := p.CostOf(m, t); c != nil {
			cost += *c
		} else {
			known = false
		}
		if main == "" || t.Output > byModel[main].Output || (t.Output == byModel[main].Output && t.Total() > byModel[main].Total()) {
			main = m
		}
	}
	s.Model = main
	s.InputTokens, s.OutputTokens, s.CacheReadTokens, s.CacheWriteTokens = sum.Input, sum.Output, sum.CacheRead, sum.CacheWrite
	if known {
		cost = math.Round(cost*1e6) / 1e6
		s.CostUSD = &cost
	}
	return s
}
