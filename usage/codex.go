package usage

import (
	"encoding/json"
	"path"
	"strings"
)

// Codex writes one rollout file per session,
// $CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<thread id>.jsonl
// (CODEX_HOME defaults to ~/.codex; archived sessions move to
// archived_sessions/). Each line is {timestamp, type, payload}: the first,
// session_meta, names the session (payload.id); turn_context lines name
// the model of the turns that follow (payload.model); event_msg lines with
// payload.type token_count carry payload.info.total_token_usage, the
// session's cumulative {input_tokens, cached_input_tokens, output_tokens,
// reasoning_output_tokens, total_tokens}, and last_token_usage, the last
// request's (info may be null: a rate-limit update).
//
// The cumulative totals are what is read: each token_count's increase
// over the one before is the model's of the moment, so the same event
// repeated adds nothing. input_tokens includes cached_input_tokens, and
// output_tokens includes reasoning_output_tokens (the OpenAI Responses
// API's usage): input is input less cached, cache reads are the cached
// part, and Codex reports no cache writes. A session continued in a second
// file repeats its totals there: per session and model the larger of the
// files' totals counts, never their sum.

type codexUsage struct {
	Input     int64 `json:"input_tokens"`
	Cached    int64 `json:"cached_input_tokens"`
	Output    int64 `json:"output_tokens"`
	Reasoning int64 `json:"reasoning_output_tokens"`
	Total     int64 `json:"total_tokens"`
}

func (u codexUsage) tokens() Tokens {
	cached := min(max(u.Cached, 0), max(u.Input, 0))
	return Tokens{Input: u.Input - cached, CacheRead: cached, Output: u.Output}.Clamp()
}

type codexLine struct {
	Type    string `json:"type"`
	Payload struct {
		Type  string `json:"type"`
		ID    string `json:"id"`
		Model string `json:"model"`
		Info  *struct {
			Total *codexUsage `json:"total_token_usage"`
			Last  *codexUsage `json:"last_token_usage"`
		} `json:"info"`
	} `json:"payload"`
}

// codexFile is one rollout's totals per model.
type codexFile struct {
	textSink
	session string
	model   string
	prev    *codexUsage
	totals  map[string]Tokens
}

func newCodexFile(rel string) parser {
	return &codexFile{session: codexSessionOf(rel), totals: map[string]Tokens{}}
}

// codexSessionOf is the thread id at the end of a rollout file's name.
func codexSessionOf(rel string) string {
	name := strings.TrimSuffix(strings.TrimPrefix(path.Base(rel), "rollout-"), ".jsonl")
	if len(name) > 36 {
		return name[len(name)-36:]
	}
	return name
}

func (c *codexFile) line(b []byte) {
	var l codexLine
	if json.Unmarshal(b, &l) != nil {
		return
	}
	if c.emit != nil && l.Type == "response_item" {
		c.itemText(b)
	}
	switch l.Type {
	case "session_meta":
		if l.Payload.ID != "" {
			c.session = l.Payload.ID
		}
	case "turn_context":
		if l.Payload.Model != "" {
			c.model = l.Payload.Model
		}
	case "event_msg":
		if l.Payload.Type != "token_count" || l.Payload.Info == nil {
			return
		}
		info := l.Payload.Info
		var delta Tokens
		switch {
		case info.Total != nil:
			cur := *info.Total
			p := c.prev
			if p != nil && cur.Input >= p.Input && cur.Output >= p.Output && cur.Cached >= p.Cached {
				delta = codexUsage{Input: cur.Input - p.Input, Cached: cur.Cached - p.Cached, Output: cur.Output - p.Output}.tokens()
			} else {
				// The first count, or one lower than before (a count
				// started again): all of it is new.
				delta = cur.tokens()
			}
			c.prev = &cur
		case info.Last != nil:
			delta = info.Last.tokens()
		}
		c.totals[c.model] = c.totals[c.model].Add(delta)
	}
}

func (c *codexFile) contribute(a *aggregate) {
	for m, t := range c.totals {
		a.maxOf(Key{c.session, m}, t)
	}
}

// codexSources are where Codex's rollouts are under home ($CODEX_HOME).
func codexSources(home string) []source {
	match := func(rel string) bool {
		b := path.Base(rel)
		return strings.HasPrefix(b, "rollout-") && strings.HasSuffix(b, ".jsonl")
	}
	return []source{
		{root: path.Join(home, "sessions"), depth: 3, match: match, parser: newCodexFile},
		{root: path.Join(home, "archived_sessions"), depth: 3, match: match, parser: newCodexFile},
	}
}

// itemText reports an assistant message's output text (response_item
// {type: message, role: assistant, content: [{type: output_text}]});
// every other item (the user's or developer's message, a tool call or its
// output) is a break, reasoning neither. Codex repeats the same text as
// event_msg agent_message, which is not read.
func (c *codexFile) itemText(b []byte) {
	var l struct {
		Timestamp string `json:"timestamp"`
		Payload   struct {
			Type    string          `json:"type"`
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"payload"`
	}
	if json.Unmarshal(b, &l) != nil {
		return
	}
	switch {
	case l.Payload.Type == "reasoning":
	case l.Payload.Type == "message" && l.Payload.Role == "assistant":
		at := recordTime(l.Timestamp)
		for _, bl := range blocks(l.Payload.Content) {
			if bl.Type == "output_text" || bl.Type == "text" {
				c.say(bl.Text, at)
			}
		}
	default:
		c.brk()
	}
}
