package usage

import (
	"encoding/json"
	"path"
	"sync"
)

// OpenCode keeps, for each assistant message, {id, sessionID, role,
// modelID, providerID, cost, tokens: {input, output, reasoning, cache:
// {read, write}}} (input excludes the cache; reasoning is billed as
// output). Releases before its SQLite database stored each message as
// <data dir>/storage/message/<session id>/<message id>.json (the data dir
// is $XDG_DATA_HOME/opencode, else ~/.local/share/opencode), rewritten
// whole when it changes; current releases keep them in a SQLite database
// (opencode.db) and publish every change on their server's event stream
// as message.updated {info: <message>}, which the supervisor already
// follows. Both are read: the files when there are any, else the events.
// Events are only seen while the supervisor listens, so the sessions they
// count are named <session id>@<supervisor boot>: a container restarted
// starts new rows rather than lowering the old ones.

type openCodeMessage struct {
	ID         string `json:"id"`
	SessionID  string `json:"sessionID"`
	Role       string `json:"role"`
	ModelID    string `json:"modelID"`
	ProviderID string `json:"providerID"`
	Tokens     *struct {
		Input     int64 `json:"input"`
		Output    int64 `json:"output"`
		Reasoning int64 `json:"reasoning"`
		Cache     struct {
			Read  int64 `json:"read"`
			Write int64 `json:"write"`
		} `json:"cache"`
	} `json:"tokens"`
}

func (m openCodeMessage) usage() (usageEntry, bool) {
	if m.Role != "assistant" || m.Tokens == nil || m.ID == "" {
		return usageEntry{}, false
	}
	t := Tokens{Input: m.Tokens.Input, Output: max(m.Tokens.Output, 0) + max(m.Tokens.Reasoning, 0),
		CacheRead: m.Tokens.Cache.Read, CacheWrite: m.Tokens.Cache.Write}.Clamp()
	return usageEntry{session: m.SessionID, model: m.ModelID, t: t}, true
}

// openCodeFile is one stored message.
type openCodeFile struct {
	id string
	e  usageEntry
	ok bool
}

func newOpenCodeFile(rel string) parser { return &openCodeFile{} }

func (o *openCodeFile) line([]byte) {}

func (o *openCodeFile) parseWhole(b []byte) {
	var m openCodeMessage
	if json.Unmarshal(b, &m) != nil {
		return
	}
	o.id = m.ID
	o.e, o.ok = m.usage()
}

func (o *openCodeFile) contribute(a *aggregate) {
	if o.ok && a.once("opencode:"+o.id) {
		a.add(Key{o.e.session, o.e.model}, o.e.t)
	}
}

// openCodeSource is where OpenCode's stored messages are under dir (its
// data dir).
func openCodeSource(dir string) source {
	return source{
		root:   path.Join(dir, "storage"),
		depth:  2,
		match:  matchGlob("message/*/*.json"),
		whole:  func(string) bool { return true },
		parser: newOpenCodeFile,
	}
}

// openCodeEvents adds up the assistant messages OpenCode's server
// reported (message.updated), each by its id with its largest figures.
type openCodeEvents struct {
	// text receives the assistant's text parts (OnText); roles are the
	// messages' roles by id, as message.updated told them.
	text    func(Text)
	roles   map[string]string
	mu      sync.Mutex
	boot    string
	msgs    map[string]*usageEntry
	changed bool
}

// maxOpenCodeMessages bounds the messages remembered from events.
const maxOpenCodeMessages = 200000

func (o *openCodeEvents) event(data []byte) {
	var ev struct {
		Type       string `json:"type"`
		Properties struct {
			Info openCodeMessage `json:"info"`
		} `json:"properties"`
		// /global/event wraps the event with its directory.
		Payload *json.RawMessage `json:"payload"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return
	}
	if ev.Payload != nil && ev.Type == "" {
		o.event(*ev.Payload)
		return
	}
	if ev.Type == "message.part.updated" && o.text != nil {
		o.partText(data)
		return
	}
	if ev.Type != "message.updated" {
		return
	}
	m := ev.Properties.Info
	if o.text != nil && m.ID != "" {
		o.mu.Lock()
		if o.roles == nil {
			o.roles = map[string]string{}
		}
		if len(o.roles) < maxOpenCodeMessages {
			o.roles[m.ID] = m.Role
		}
		o.mu.Unlock()
	}
	e, ok := m.usage()
	if !ok {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if cur := o.msgs[m.ID]; cur != nil {
		if t := cur.t.Max(e.t); t != cur.t {
			cur.t = t
			o.changed = true
		}
		return
	}
	if len(o.msgs) >= maxOpenCodeMessages {
		return
	}
	if e.session == "" {
		e.session = "unknown"
	}
	e.session += "@" + o.boot
	o.msgs[m.ID] = &e
	o.changed = true
}

func (o *openCodeEvents) contribute(a *aggregate) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.changed = false
	for id, e := range o.msgs {
		if a.once("opencode:" + id) {
			a.add(Key{e.session, e.model}, e.t)
		}
	}
}

func (o *openCodeEvents) dirty() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.changed
}

// partText reports the text of an assistant message's text part
// (message.part.updated {part: {id, messageID, type: "text", text}}), whole
// each time it is updated, as a stream of its own. A part of a message
// whose role is not known to be the assistant's is not read.
func (o *openCodeEvents) partText(data []byte) {
	var ev struct {
		Properties struct {
			Part struct {
				ID        string `json:"id"`
				MessageID string `json:"messageID"`
				Type      string `json:"type"`
				Text      string `json:"text"`
			} `json:"part"`
		} `json:"properties"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return
	}
	p := ev.Properties.Part
	if p.Type != "text" || p.ID == "" {
		return
	}
	o.mu.Lock()
	role := o.roles[p.MessageID]
	o.mu.Unlock()
	if role != "assistant" {
		return
	}
	stream := "opencode-part:" + p.ID
	o.text(Text{Stream: stream, Break: true})
	o.text(Text{Stream: stream, Text: p.Text})
	o.text(Text{Stream: stream, Break: true})
}
