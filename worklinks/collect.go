package worklinks

import (
	"sync"
	"time"
)

// Collector turns streams of the assistant's text (per transcript file,
// or the terminal) into an instance's links. Safe for concurrent use.
type Collector struct {
	mu      sync.Mutex
	streams map[string]*Extractor
	set     Set
	// Now is the time of a sighting whose text has none (time.Now).
	Now func() time.Time
}

// maxStreams bounds the streams followed at once (a stream beyond it
// starts over: at worst a tag split across its pieces is missed).
const maxStreams = 4096

// Text adds text said in stream at at (zero: now); brk drops any
// unfinished tag of the stream first (something else came in between).
// It reports whether the links changed.
func (c *Collector) Text(stream, text string, brk bool, at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.streams == nil {
		c.streams = map[string]*Extractor{}
	}
	e := c.streams[stream]
	if brk {
		if e != nil {
			e.Reset()
		}
	}
	if text == "" {
		return false
	}
	if e == nil {
		if len(c.streams) >= maxStreams {
			clear(c.streams)
		}
		e = &Extractor{}
		c.streams[stream] = e
	}
	if at.IsZero() {
		if c.Now != nil {
			at = c.Now()
		} else {
			at = time.Now()
		}
	}
	changed := false
	for _, t := range e.Write([]byte(text)) {
		if c.set.Add(t, at.UTC()) {
			changed = true
		}
	}
	return changed
}

// Links are the links found so far.
func (c *Collector) Links() []Link {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set.Links()
}
