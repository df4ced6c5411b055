package usage

import (
	"maps"
	"path"
	"sync"
)

// Reader follows one runtime's usage records in an agent's home.
type Reader struct {
	runtime string
	files   *files
	events  *openCodeEvents
	mu      sync.Mutex
	last    Totals
}

// ForRuntime is the reader of runtime's records under home (the agent's
// home directory), with env the agent's environment (the runtimes' own
// variables that move their directories: CLAUDE_CONFIG_DIR, CODEX_HOME,
// GEMINI_CLI_HOME, XDG_DATA_HOME). boot names this run of the reader
// (OpenCode's event-counted sessions carry it). It is nil for a runtime
// whose usage jackin does not read: Amp (its interactive mode records
// usage nowhere jackin can read), shell and custom runtimes.
func ForRuntime(runtime, home string, env func(string) string, boot string) *Reader {
	if env == nil {
		env = func(string) string { return "" }
	}
	or := func(v, def string) string {
		if v != "" {
			return v
		}
		return def
	}
	r := &Reader{runtime: runtime}
	switch runtime {
	case "claude":
		r.files = newFiles([]source{claudeSource(or(env("CLAUDE_CONFIG_DIR"), path.Join(home, ".claude")))})
	case "codex":
		r.files = newFiles(codexSources(or(env("CODEX_HOME"), path.Join(home, ".codex"))))
	case "gemini":
		r.files = newFiles([]source{geminiSource(path.Join(or(env("GEMINI_CLI_HOME"), home), ".gemini"))})
	case "opencode":
		data := path.Join(or(env("XDG_DATA_HOME"), path.Join(home, ".local", "share")), "opencode")
		r.files = newFiles([]source{openCodeSource(data)})
		r.events = &openCodeEvents{boot: boot, msgs: map[string]*usageEntry{}}
	default:
		return nil
	}
	return r
}

// Runtime is the runtime read.
func (r *Reader) Runtime() string { return r.runtime }

// WantsEvents reports a runtime whose server events carry usage
// (OpenCode): feed them to Event.
func (r *Reader) WantsEvents() bool { return r.events != nil }

// Event takes one server event's data (OpenCode's {type, properties}).
// It is safe to call while Scan runs.
func (r *Reader) Event(data []byte) {
	if r.events != nil {
		r.events.event(data)
	}
}

// OnWarning receives, once each, what the reader could not read.
func (r *Reader) OnWarning(f func(string)) { r.files.warn = f }

// Scan reads what changed since the last scan and returns the totals per
// session and model, and whether they changed.
func (r *Reader) Scan() (Totals, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := r.files.scan()
	if r.events != nil && r.events.dirty() {
		changed = true
	}
	if !changed && r.last != nil {
		return r.last, false
	}
	a := newAggregate()
	r.files.total(a)
	// Stored messages when this OpenCode stores them in files; its
	// events otherwise (never both: the same messages).
	if r.events != nil && r.files.count("message/") == 0 {
		r.events.contribute(a)
	}
	same := r.last != nil && maps.Equal(a.totals, r.last)
	r.last = a.totals
	return a.totals, !same
}

// More reports that the last scan stopped at its read budget: scan again
// soon.
func (r *Reader) More() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.files.more
}
