package usage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// Claude Code writes one transcript per session,
// <config dir>/projects/<project dir>/<session id>.jsonl (the config dir
// is $CLAUDE_CONFIG_DIR, else ~/.claude), and its subagents' transcripts
// beside it (<session id>/subagents/agent-<id>.jsonl). Each assistant line
// carries the API response's message (its id, model and usage:
// input_tokens, output_tokens, cache_creation_input_tokens,
// cache_read_input_tokens) and the request's requestId. One response is
// written as several lines, one per content block, repeating the same
// message id, requestId and usage (a streamed line may come first with a
// lower output count): a response is counted once, by message id and
// requestId, with the largest figures any of its lines gives. A response
// repeated in another transcript (a resumed session copies its history)
// is counted once too, in the first transcript by path.

// claudeLine is the part of a transcript line read.
type claudeLine struct {
	Type      string `json:"type"`
	SessionID string `json:"sessionId"`
	RequestID string `json:"requestId"`
	Message   struct {
		ID    string `json:"id"`
		Model string `json:"model"`
		Usage *struct {
			InputTokens              int64 `json:"input_tokens"`
			OutputTokens             int64 `json:"output_tokens"`
			CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
			CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
		} `json:"usage"`
	} `json:"message"`
}

type usageEntry struct {
	session, model string
	t              Tokens
}

// claudeFile is one transcript's responses.
type claudeFile struct {
	textSink
	session string // the file's own, when a line names none
	entries map[string]*usageEntry
	order   []string
	lines   int
}

func newClaudeFile(rel string) parser {
	return &claudeFile{session: strings.TrimSuffix(path.Base(rel), ".jsonl"), entries: map[string]*usageEntry{}}
}

var usageField = []byte(`"usage"`)

func (c *claudeFile) line(b []byte) {
	c.lines++
	if c.emit != nil {
		c.lineText(b)
	}
	if !bytes.Contains(b, usageField) {
		return // most lines: prompts, tool results, snapshots
	}
	var l claudeLine
	if json.Unmarshal(b, &l) != nil || l.Message.Usage == nil {
		return
	}
	if l.Type != "" && l.Type != "assistant" {
		return
	}
	if l.Message.Model == "<synthetic>" {
		return // an error or interruption Claude Code wrote itself: no API call
	}
	u := l.Message.Usage
	t := Tokens{Input: u.InputTokens, Output: u.OutputTokens, CacheRead: u.CacheReadInputTokens, CacheWrite: u.CacheCreationInputTokens}.Clamp()
	key := ""
	if l.Message.ID != "" || l.RequestID != "" {
		key = "claude:" + l.Message.ID + "/" + l.RequestID
	} else {
		key = fmt.Sprintf("#%d", c.lines) // nothing to tell repeats by: counted as is
	}
	session := l.SessionID
	if session == "" {
		session = c.session
	}
	if e := c.entries[key]; e != nil {
		e.t = e.t.Max(t)
		if e.model == "" {
			e.model = l.Message.Model
		}
		return
	}
	c.entries[key] = &usageEntry{session: session, model: l.Message.Model, t: t}
	c.order = append(c.order, key)
}

func (c *claudeFile) contribute(a *aggregate) {
	for _, k := range c.order {
		e := c.entries[k]
		if strings.HasPrefix(k, "#") || a.once(k) {
			a.add(Key{e.session, e.model}, e.t)
		}
	}
}

// claudeSource is where Claude Code's transcripts are under dir (its
// config dir).
func claudeSource(dir string) source {
	return source{
		root:   path.Join(dir, "projects"),
		depth:  3,
		match:  func(rel string) bool { return strings.HasSuffix(rel, ".jsonl") },
		parser: newClaudeFile,
	}
}

// lineText reports an assistant line's text blocks; a user line (the
// operator's prompt, or a tool's result) and a tool call are breaks; the
// assistant's thinking is neither said nor a break.
func (c *claudeFile) lineText(b []byte) {
	var l struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Message   struct {
			Content json.RawMessage `json:"content"`
		} `json:"message"`
	}
	if json.Unmarshal(b, &l) != nil {
		return
	}
	switch l.Type {
	case "assistant":
		at := recordTime(l.Timestamp)
		for _, bl := range blocks(l.Message.Content) {
			switch bl.Type {
			case "text":
				c.say(bl.Text, at)
			case "thinking", "redacted_thinking":
			default:
				c.brk()
			}
		}
	case "user":
		c.brk()
	}
}
