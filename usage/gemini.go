package usage

import (
	"encoding/json"
	"path"
	"strings"
)

// Gemini CLI records each session under
// <home>/.gemini/tmp/<project hash>/chats/ (<home> is $GEMINI_CLI_HOME,
// else the home directory). Current releases (since April 2026,
// google-gemini/gemini-cli packages/core/src/services/chatRecordingService.ts)
// append JSON Lines to session-<time>-<id>.jsonl: a first record with the
// session's metadata {sessionId, projectHash, startTime, ...}, then
// message records {id, timestamp, type, content, ...}, a message written
// again whole when it changes (its tokens come after its text), {"$set":
// {...}} metadata updates and {"$rewindTo": id}; a subagent's session is
// chats/<parent session>/<session>.jsonl. Earlier releases wrote one JSON
// document, session-<time>-<id>.json, {sessionId, projectHash, startTime,
// lastUpdated, messages: [...]}, rewritten whole on every change (and a
// resumed one is converted to .jsonl beside it).
//
// A "gemini" message carries model and tokens {input, output, cached,
// thoughts, tool, total}: the API's promptTokenCount (cached content
// included), candidatesTokenCount, cachedContentTokenCount,
// thoughtsTokenCount and toolUsePromptTokenCount. Input is input less
// cached plus tool-use prompt tokens; output is output plus thoughts
// (billed as output); cache reads are the cached part; Gemini reports no
// cache writes. A message is counted once by its id, wherever and however
// often it is written, with its largest figures; a rewind does not take
// back tokens already spent.

type geminiTokens struct {
	Input    int64 `json:"input"`
	Output   int64 `json:"output"`
	Cached   int64 `json:"cached"`
	Thoughts int64 `json:"thoughts"`
	Tool     int64 `json:"tool"`
}

func (g geminiTokens) tokens() Tokens {
	cached := min(max(g.Cached, 0), max(g.Input, 0))
	return Tokens{Input: g.Input - cached + max(g.Tool, 0), Output: max(g.Output, 0) + max(g.Thoughts, 0), CacheRead: cached}.Clamp()
}

type geminiRecord struct {
	Timestamp string          `json:"timestamp"`
	Content   json.RawMessage `json:"content"`
	SessionID string          `json:"sessionId"`
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Model     string          `json:"model"`
	Tokens    *geminiTokens   `json:"tokens"`
}

type geminiFile struct {
	textSink
	session string
	msgs    map[string]*usageEntry
	order   []string
}

func newGeminiFile(rel string) parser {
	name := strings.TrimSuffix(strings.TrimSuffix(path.Base(rel), ".jsonl"), ".json")
	return &geminiFile{session: name, msgs: map[string]*usageEntry{}}
}

func (g *geminiFile) record(r geminiRecord) {
	if g.emit != nil && r.ID != "" {
		// Each message whole, on its own: one written again when it
		// changes repeats its text, never continues it.
		g.brk()
		if r.Type == "gemini" {
			at := recordTime(r.Timestamp)
			for _, bl := range blocks(r.Content) {
				if bl.Type == "" || bl.Type == "text" {
					g.say(bl.Text, at)
				}
			}
			g.brk()
		}
	}
	if r.ID == "" {
		if r.SessionID != "" {
			g.session = r.SessionID // the metadata record
		}
		return
	}
	if r.Type != "gemini" || r.Tokens == nil {
		return
	}
	t := r.Tokens.tokens()
	if e := g.msgs[r.ID]; e != nil {
		e.t = e.t.Max(t)
		if r.Model != "" {
			e.model = r.Model
		}
		return
	}
	g.msgs[r.ID] = &usageEntry{model: r.Model, t: t}
	g.order = append(g.order, r.ID)
}

func (g *geminiFile) line(b []byte) {
	var r geminiRecord
	if json.Unmarshal(b, &r) == nil {
		g.record(r)
	}
}

func (g *geminiFile) parseWhole(b []byte) {
	var doc struct {
		SessionID string         `json:"sessionId"`
		Messages  []geminiRecord `json:"messages"`
	}
	if json.Unmarshal(b, &doc) != nil {
		return
	}
	if doc.SessionID != "" {
		g.session = doc.SessionID
	}
	for _, m := range doc.Messages {
		g.record(m)
	}
}

func (g *geminiFile) contribute(a *aggregate) {
	for _, id := range g.order {
		e := g.msgs[id]
		if a.once("gemini:" + id) {
			a.add(Key{g.session, e.model}, e.t)
		}
	}
}

// geminiSource is where Gemini CLI's chats are under dir (its .gemini).
func geminiSource(dir string) source {
	return source{
		root:   path.Join(dir, "tmp"),
		depth:  3,
		match:  matchGlob("*/chats/*.json", "*/chats/*.jsonl", "*/chats/*/*.jsonl"),
		whole:  func(rel string) bool { return strings.HasSuffix(rel, ".json") },
		parser: newGeminiFile,
	}
}
