// Package usage reads the token use that coding-agent runtimes record
// themselves, in the places and formats their documentation and source
// give: Claude Code's transcripts, Codex's rollout files, Gemini CLI's
// chats and OpenCode's stored messages and server events. Its parsers are
// pure: they turn file contents (or events) into per-session, per-model
// cumulative totals. The agent's supervisor runs them in the container,
// where the runtime's home is, and publishes the totals; the host keeps
// the largest total it has seen per session and model, so a file read
// again after a restart, truncated or rotated is never counted twice.
//
// prices.go is the price table that turns tokens into an estimated cost.
package usage

import (
	"sort"
	"time"
)

// Tokens are token counts of one kind of use. The four kinds are disjoint
// (input excludes the cached part), the way the providers bill them.
type Tokens struct {
	// Input is input tokens billed at the full input price.
	Input int64 `json:"input"`
	// Output is output tokens, reasoning ("thinking") included.
	Output int64 `json:"output"`
	// CacheRead is input served from the provider's prompt cache.
	CacheRead int64 `json:"cacheRead"`
	// CacheWrite is input written to the prompt cache (Anthropic bills
	// it above the input price; others do not report it).
	CacheWrite int64 `json:"cacheWrite"`
}

// MaxCount bounds every count: what a record claims beyond it is taken
// as MaxCount (records are the agent's to write), and sums saturate there.
const MaxCount = int64(1e15)

// Add returns t plus o, each kind saturating at MaxCount.
func (t Tokens) Add(o Tokens) Tokens {
	return Tokens{satAdd(t.Input, o.Input), satAdd(t.Output, o.Output), satAdd(t.CacheRead, o.CacheRead), satAdd(t.CacheWrite, o.CacheWrite)}
}

func satAdd(a, b int64) int64 { return min(a+b, MaxCount) }

// Clamp keeps each count within [0, MaxCount].
func (t Tokens) Clamp() Tokens {
	c := func(n int64) int64 { return min(max(n, 0), MaxCount) }
	return Tokens{c(t.Input), c(t.Output), c(t.CacheRead), c(t.CacheWrite)}
}

// Max returns, per kind, the larger of t and o.
func (t Tokens) Max(o Tokens) Tokens {
	return Tokens{max(t.Input, o.Input), max(t.Output, o.Output), max(t.CacheRead, o.CacheRead), max(t.CacheWrite, o.CacheWrite)}
}

// Sub returns t minus o, each kind at least 0.
func (t Tokens) Sub(o Tokens) Tokens {
	return Tokens{max(t.Input-o.Input, 0), max(t.Output-o.Output, 0), max(t.CacheRead-o.CacheRead, 0), max(t.CacheWrite-o.CacheWrite, 0)}
}

// IsZero reports no tokens at all.
func (t Tokens) IsZero() bool { return t == Tokens{} }

// Total is every token, of every kind.
func (t Tokens) Total() int64 { return t.Input + t.Output + t.CacheRead + t.CacheWrite }

// Key is a session and a model.
type Key struct {
	Session string
	Model   string
}

// Totals are cumulative tokens per session and model.
type Totals map[Key]Tokens

// UnknownModel names the model of usage the runtime recorded no model for.
const UnknownModel = "unknown"

// File is the file the supervisor publishes in the agent directory.
const File = "usage.json"

// ReportVersion is the version of Report this build writes.
const ReportVersion = 1

// Report is what the supervisor publishes: the runtime's cumulative
// totals per session and model, as it last read them.
type Report struct {
	V       int       `json:"v"`
	Runtime string    `json:"runtime"`
	Updated time.Time `json:"updated"`
	Entries []Entry   `json:"entries"`
}

// Entry is one session's cumulative use of one model.
type Entry struct {
	Session string `json:"session"`
	Model   string `json:"model"`
	Tokens
}

// Entries lists totals sorted by session and model, without empty ones.
func (t Totals) Entries() []Entry {
	out := make([]Entry, 0, len(t))
	for k, v := range t {
		if v.IsZero() {
			continue
		}
		out = append(out, Entry{Session: k.Session, Model: k.Model, Tokens: v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Session != out[j].Session {
			return out[i].Session < out[j].Session
		}
		return out[i].Model < out[j].Model
	})
	return out
}

// aggregate adds up the files' parsers.
type aggregate struct {
	totals Totals
	// seen are the de-duplication keys already counted (a response
	// written to two files is counted once).
	seen map[string]bool
}

func newAggregate() *aggregate { return &aggregate{totals: Totals{}, seen: map[string]bool{}} }

func (a *aggregate) add(k Key, t Tokens) {
	if t.IsZero() {
		return
	}
	if k.Model == "" {
		k.Model = UnknownModel
	}
	a.totals[k] = a.totals[k].Add(t.Clamp())
}

// maxOf keeps, for k, the larger of what it has and t: for runtimes whose
// records are themselves cumulative (a session continued in a second
// file repeats the first one's totals).
func (a *aggregate) maxOf(k Key, t Tokens) {
	if t.IsZero() {
		return
	}
	if k.Model == "" {
		k.Model = UnknownModel
	}
	a.totals[k] = a.totals[k].Max(t.Clamp())
}

// once reports whether key is new, marking it seen; "" is always new.
func (a *aggregate) once(key string) bool {
	if key == "" {
		return true
	}
	if a.seen[key] {
		return false
	}
	a.seen[key] = true
	return true
}
