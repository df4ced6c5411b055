package usage

import (
	"encoding/json"
	"time"
)

// Text is what the runtime's records say the assistant wrote, read on the
// same pass as the usage (the same files, offsets and limits): the
// assistant's own text, in order, per record file, and breaks where
// something else came in between (the operator's prompt, a tool's call or
// its output), so a consumer never joins the assistant's words with
// anyone else's. Nothing but the assistant's text blocks is ever given:
// not the prompts, not tool input or output, not its thinking.
type Text struct {
	// Stream names the record file (or the event stream's message part)
	// the text is from: text continues only within one stream.
	Stream string
	// Text is the assistant's text; empty with Break.
	Text string
	// Break: what follows does not continue what came before (a prompt,
	// a tool, or a file read again from its start).
	Break bool
	// Time is the record's own time, zero when it has none.
	Time time.Time
}

// OnText receives the assistant's text as the reader's scans (and
// OpenCode's events) find it. Set it before the first Scan.
func (r *Reader) OnText(f func(Text)) {
	r.files.text = f
	if r.events != nil {
		r.events.text = f
	}
}

// textParser is a parser that can report the assistant's text.
type textParser interface {
	setText(emit func(Text))
}

// textSink is embedded by parsers that report text.
type textSink struct{ emit func(Text) }

func (s *textSink) setText(emit func(Text)) { s.emit = emit }

func (s *textSink) say(text string, at time.Time) {
	if s.emit != nil && text != "" {
		s.emit(Text{Text: text, Time: at})
	}
}

func (s *textSink) brk() {
	if s.emit != nil {
		s.emit(Text{Break: true})
	}
}

// recordTime reads a record's ISO 8601 time ("" or unreadable: zero).
func recordTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// contentBlock is one block of a message's content (Claude's
// {type: text|tool_use|thinking, text}, Codex's {type: output_text, text},
// Gemini's parts {text}).
type contentBlock struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// blocks reads content that is a string or a list of blocks.
func blocks(raw json.RawMessage) []contentBlock {
	if len(raw) == 0 {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []contentBlock{{Type: "text", Text: s}}
	}
	var bs []contentBlock
	if json.Unmarshal(raw, &bs) == nil {
		return bs
	}
	return nil
}
