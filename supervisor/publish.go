package supervisor

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
)

// The files the supervisor publishes in the agent directory. The host
// reads them as hostile input (agentdir): the agent can write there too.
const (
	StateFile  = "state.json"
	EventsFile = "events.jsonl"
	// maxEvents is the size past which the events file is rotated to
	// EventsFile+".1" (the one before is dropped).
	maxEvents = 256 << 10
)

// publisher writes the state file (replaced whole, by rename) and appends
// each change to the events file.
type publisher struct {
	dir    string
	logf   func(string, ...any)
	mu     sync.Mutex
	failed bool
}

func newPublisher(dir string, logf func(string, ...any)) *publisher {
	return &publisher{dir: dir, logf: logf}
}

func (p *publisher) publish(st Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := json.Marshal(st)
	if err != nil {
		return
	}
	if err := p.write(b); err != nil && !p.failed {
		p.failed = true // said once: an agent without its directory still runs
		p.logf("cannot publish the agent's state in %s: %v (jackin get shows it as unknown)", p.dir, err)
	}
}

func (p *publisher) write(b []byte) error {
	tmp, err := os.CreateTemp(p.dir, ".state-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	if err := tmp.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		_ = os.Chmod(tmp.Name(), 0o644)
		werr = os.Rename(tmp.Name(), filepath.Join(p.dir, StateFile))
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return werr
	}
	ev := filepath.Join(p.dir, EventsFile)
	if fi, err := os.Stat(ev); err == nil && fi.Size() > maxEvents {
		_ = os.Rename(ev, ev+".1")
	}
	f, err := os.OpenFile(ev, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, werr = f.Write(append(b, '\n'))
	if err := f.Close(); werr == nil {
		werr = err
	}
	return werr
}
