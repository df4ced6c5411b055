package usage

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Price is a model's list price in USD per million tokens.
type Price struct {
	Input      float64 `json:"input"`
	Output     float64 `json:"output"`
	CacheRead  float64 `json:"cacheRead"`
	CacheWrite float64 `json:"cacheWrite"`
}

// Prices is a price table by model.
type Prices struct {
	// Date is when the table's prices were checked.
	Date   string
	Models map[string]Price
}

// PricesDate is when the built-in table was checked against its sources.
const PricesDate = "2026-12-04"

// builtin is the price table, per million tokens, checked on PricesDate.
// Sources:
//   - Anthropic: platform.claude.com/docs/en/about-claude/pricing ("Model
//     pricing": base input, 5-minute cache writes, cache hits, output) and
//     the model pages platform.claude.com/docs/en/models/<model>/overview.
//     Cache writes are priced at the 5-minute rate (1.25x input); Claude
//     Code's 1-hour writes cost 2x input, so they are underestimated.
//   - OpenAI: developers.openai.com/api/docs/models/<model> (input, cached
//     input, output), and for the newer models the per-token table GitHub
//     publishes for Copilot (github/docs data/tables/copilot/models-and-pricing.yml),
//     which quotes OpenAI's rates.
//   - Google: ai.google.dev/gemini-api/docs/pricing (input, output, context
//     caching), and the same GitHub table for Gemini 3.x.
//
// Long-context tiers (GPT-5.4/5.5 above 272K input tokens, Gemini Pro
// above 200K) are priced at the standard rate, an underestimate for those
// requests; batch and priority tiers are not modelled. A model not in the
// table has an unknown cost, never a zero one: add it in prices.json.
var builtin = map[string]Price{
	// Anthropic
	"claude-fable-5-1":  {Input: 10, Output: 50, CacheRead: 0.25, CacheWrite: 12.50},
	"claude-mythos-5-1": {Input: 10, Output: 50, CacheRead: 0.25, CacheWrite: 12.50},
	"claude-fable-5":    {Input: 10, Output: 50, CacheRead: 1, CacheWrite: 12.50},
	"claude-mythos-5":   {Input: 10, Output: 50, CacheRead: 1, CacheWrite: 12.50},
	"claude-opus-5-5":   {Input: 4, Output: 20, CacheRead: 0.20, CacheWrite: 5},
	"claude-opus-5":     {Input: 5, Output: 25, CacheRead: 0.50, CacheWrite: 6.25},
	"claude-opus-4-8":   {Input: 5, Output: 25, CacheRead: 0.50, CacheWrite: 6.25},
	"claude-opus-4-7":   {Input: 5, Output: 25, CacheRead: 0.50, CacheWrite: 6.25},
	"claude-opus-4-6":   {Input: 5, Output: 25, CacheRead: 0.50, CacheWrite: 6.25},
	"claude-opus-4-5":   {Input: 5, Output: 25, CacheRead: 0.50, CacheWrite: 6.25},
	"claude-opus-4-1":   {Input: 15, Output: 75, CacheRead: 1.50, CacheWrite: 18.75},
	"claude-opus-4":     {Input: 15, Output: 75, CacheRead: 1.50, CacheWrite: 18.75},
	"claude-3-opus":     {Input: 15, Output: 75, CacheRead: 1.50, CacheWrite: 18.75},
	"claude-sonnet-5-5": {Input: 2, Output: 10, CacheRead: 0.20, CacheWrite: 2.50},
	"claude-sonnet-5":   {Input: 2, Output: 10, CacheRead: 0.20, CacheWrite: 2.50},
	"claude-sonnet-4-6": {Input: 3, Output: 15, CacheRead: 0.30, CacheWrite: 3.75},
	"claude-sonnet-4-5": {Input: 3, Output: 15, CacheRead: 0.30, CacheWrite: 3.75},
	"claude-sonnet-4":   {Input: 3, Output: 15, CacheRead: 0.30, CacheWrite: 3.75},
	"claude-3-7-sonnet": {Input: 3, Output: 15, CacheRead: 0.30, CacheWrite: 3.75},
	"claude-haiku-4-5":  {Input: 1, Output: 5, CacheRead: 0.10, CacheWrite: 1.25},
	"claude-3-5-haiku":  {Input: 0.80, Output: 4, CacheRead: 0.08, CacheWrite: 1},
	"claude-3-haiku":    {Input: 0.25, Output: 1.25, CacheRead: 0.03, CacheWrite: 0.30},

	// OpenAI (no cache-write charge before GPT-5.6)
	"gpt-5":         {Input: 1.25, Output: 10, CacheRead: 0.125},
	"gpt-5-codex":   {Input: 1.25, Output: 10, CacheRead: 0.125},
	"gpt-5-mini":    {Input: 0.25, Output: 2, CacheRead: 0.025},
	"gpt-5-nano":    {Input: 0.05, Output: 0.40, CacheRead: 0.005},
	"gpt-5.1":       {Input: 1.25, Output: 10, CacheRead: 0.125},
	"gpt-5.1-codex": {Input: 1.25, Output: 10, CacheRead: 0.125},
	"gpt-5.2":       {Input: 1.75, Output: 14, CacheRead: 0.175},
	"gpt-5.2-codex": {Input: 1.75, Output: 14, CacheRead: 0.175},
	"gpt-5.3-codex": {Input: 1.75, Output: 14, CacheRead: 0.175},
	"gpt-5.4":       {Input: 2.50, Output: 15, CacheRead: 0.25},
	"gpt-5.4-mini":  {Input: 0.75, Output: 4.50, CacheRead: 0.075},
	"gpt-5.4-nano":  {Input: 0.20, Output: 1.25, CacheRead: 0.02},
	"gpt-5.5":       {Input: 5, Output: 30, CacheRead: 0.50},
	"gpt-5.6-sol":   {Input: 5, Output: 30, CacheRead: 0.50, CacheWrite: 6.25},
	"gpt-5.6-terra": {Input: 2, Output: 12, CacheRead: 0.20, CacheWrite: 2.50},
	"gpt-5.6-luna":  {Input: 0.20, Output: 1.20, CacheRead: 0.02, CacheWrite: 0.25},

	// Google (Gemini bills no cache writes; storage time is not modelled)
	"gemini-2.5-pro":        {Input: 1.25, Output: 10, CacheRead: 0.125},
	"gemini-2.5-flash":      {Input: 0.30, Output: 2.50, CacheRead: 0.03},
	"gemini-2.5-flash-lite": {Input: 0.10, Output: 0.40, CacheRead: 0.01},
	"gemini-3.1-pro":        {Input: 2, Output: 12, CacheRead: 0.20},
	"gemini-3.5-flash":      {Input: 1.50, Output: 9, CacheRead: 0.15},
}

// PricesFile is the price override file in jackin's state dir.
const PricesFile = "prices.json"

// BuiltinPrices is the table in the code.
func BuiltinPrices() Prices {
	m := make(map[string]Price, len(builtin))
	for k, v := range builtin {
		m[k] = v
	}
	return Prices{Date: PricesDate, Models: m}
}

// pricesFile is prices.json:
//
//	{
//	  "date": "2027-01-15",
//	  "models": {
//	    "claude-sonnet-4-5": {"input": 3, "output": 15, "cacheRead": 0.3, "cacheWrite": 3.75},
//	    "my-local-model":    {"input": 0, "output": 0},
//	    "gpt-5":             null
//	  }
//	}
//
// Prices are USD per million tokens; a kind left out costs 0. Each model
// named replaces (or adds to) the built-in table's entry; null removes
// it (its cost becomes unknown). Model names are matched as Lookup
// normalises them. date, when given, replaces the table's date.
type pricesFile struct {
	Date   string            `json:"date"`
	Models map[string]*Price `json:"models"`
}

// LoadPrices is the built-in table with stateDir's prices.json applied
// over it, when there is one.
func LoadPrices(stateDir string) (Prices, error) {
	p := BuiltinPrices()
	path := filepath.Join(stateDir, PricesFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, err
	}
	var f pricesFile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return p, fmt.Errorf("%s: %w (want {\"models\": {\"MODEL\": {\"input\": N, \"output\": N, \"cacheRead\": N, \"cacheWrite\": N}}}, USD per million tokens)", path, err)
	}
	for name, pr := range f.Models {
		key := NormalizeModel(name)
		if pr == nil {
			delete(p.Models, key)
			continue
		}
		for _, v := range []float64{pr.Input, pr.Output, pr.CacheRead, pr.CacheWrite} {
			if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				return BuiltinPrices(), fmt.Errorf("%s: model %q: a price must be a number of USD per million tokens, 0 or more", path, name)
			}
		}
		p.Models[key] = *pr
	}
	if f.Date != "" {
		p.Date = f.Date
	}
	return p, nil
}

var (
	dateSuffix   = regexp.MustCompile(`([-@](20\d\d-?\d\d-?\d\d|latest))$`)
	bedrockTail  = regexp.MustCompile(`-v\d+(:\d+)?$`)
	contextLabel = regexp.MustCompile(`\[[^\]]*\]$`)
)

// NormalizeModel maps the ways runtimes and providers name a model to the
// table's key: lower case, without a provider prefix ("anthropic/",
// "models/", Bedrock's "anthropic." or "us.anthropic."), a date or
// "-latest" suffix, Bedrock's "-v1:0", or Claude Code's "[1m]", and with
// dots in Claude version numbers as dashes ("claude-sonnet-4.5").
func NormalizeModel(m string) string {
	m = strings.ToLower(strings.TrimSpace(m))
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	if i := strings.Index(m, "anthropic."); i >= 0 {
		m = m[i+len("anthropic."):]
	}
	m = contextLabel.ReplaceAllString(m, "")
	m = bedrockTail.ReplaceAllString(m, "")
	m = dateSuffix.ReplaceAllString(m, "")
	if strings.HasPrefix(m, "claude-") {
		m = strings.ReplaceAll(m, ".", "-")
	}
	return m
}

// Lookup is model's price, and whether the table has one.
func (p Prices) Lookup(model string) (Price, bool) {
	pr, ok := p.Models[NormalizeModel(model)]
	return pr, ok
}

// Cost is the estimated cost in USD of t on model; false when the model's
// price is unknown.
func (p Prices) Cost(model string, t Tokens) (float64, bool) {
	pr, ok := p.Lookup(model)
	if !ok {
		return 0, false
	}
	c := (float64(t.Input)*pr.Input + float64(t.Output)*pr.Output +
		float64(t.CacheRead)*pr.CacheRead + float64(t.CacheWrite)*pr.CacheWrite) / 1e6
	return c, true
}
