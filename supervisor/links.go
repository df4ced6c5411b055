package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/jackin-dev/jackin/termtext"
	"github.com/jackin-dev/jackin/worklinks"
)

// Work links: the supervisor finds the tag protocol's tags (worklinks) in
// the assistant's own text, read from the runtime's transcripts on the
// usage pass (usage.Reader.OnText), or, for a runtime whose transcripts
// jackin does not read (Amp, shell, custom runtimes), in the terminal's
// output less the echo of what was typed. It publishes the links, with
// when each was first and last seen, in LinksFile, replaced whole when
// they change.

// LinksFile is the file the supervisor publishes the links in.
const LinksFile = "links.json"

// LinksVersion is the version of LinksReport this build writes.
const LinksVersion = 1

// LinksReport is what LinksFile holds.
type LinksReport struct {
	V       int              `json:"v"`
	Updated time.Time        `json:"updated"`
	Links   []worklinks.Link `json:"links"`
}

// maxLinksFile bounds the links file the host reads.
const maxLinksFile = 512 << 10

// linkWatch collects and publishes the links.
type linkWatch struct {
	dir    string
	logf   func(string, ...any)
	c      worklinks.Collector
	dirty  atomic.Bool
	term   *termtext.Writer
	failed bool
}

func newLinkWatch(dir string, logf func(string, ...any)) *linkWatch {
	w := &linkWatch{dir: dir, logf: logf}
	w.term = termtext.Strip(writerFunc(func(p []byte) (int, error) {
		w.say("terminal", string(p), false, time.Time{})
		return len(p), nil
	}))
	return w
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (w *linkWatch) say(stream, text string, brk bool, at time.Time) {
	if w.c.Text(stream, text, brk, at) {
		w.dirty.Store(true)
	}
}

// terminal takes the agent's terminal output (not the echo of typing).
func (w *linkWatch) terminal(p []byte) { _, _ = w.term.Write(p) }

// typed is a break in the terminal stream: what follows is the echo of
// the operator's typing, then the agent's answer.
func (w *linkWatch) typed() { w.say("terminal", "", true, time.Time{}) }

// publish writes the links if they changed.
func (w *linkWatch) publish() {
	if !w.dirty.Swap(false) {
		return
	}
	b, err := json.Marshal(LinksReport{V: LinksVersion, Updated: time.Now().UTC(), Links: w.c.Links()})
	if err != nil {
		return
	}
	if err := writeFileAtomic(w.dir, LinksFile, b); err != nil && !w.failed {
		w.failed = true
		w.logf("cannot publish the agent's links in %s: %v", w.dir, err)
	}
}

// run publishes what changed every second until ctx ends, then once more.
func (w *linkWatch) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = w.term.Flush()
			w.publish()
			return
		case <-t.C:
			w.publish()
		}
	}
}

// ReadLinks reads the links an agent's supervisor published in dir on the
// host, as hostile input: no links followed, a small regular file, every
// link checked again (worklinks.Normalize), at most worklinks.MaxLinks, no
// duplicates, times not after now. A missing file is os.ErrNotExist.
func ReadLinks(dir string) ([]worklinks.Link, error) {
	b, err := readHostile(filepath.Join(dir, LinksFile), maxLinksFile)
	if err != nil {
		return nil, err
	}
	var r LinksReport
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", LinksFile, err)
	}
	if r.V != LinksVersion {
		return nil, fmt.Errorf("%s: version %d, this jackin reads %d", LinksFile, r.V, LinksVersion)
	}
	now := time.Now().UTC()
	seen := map[worklinks.Key]bool{}
	var out []worklinks.Link
	for _, l := range r.Links {
		if len(out) >= worklinks.MaxLinks {
			break
		}
		switch l.Kind {
		case worklinks.KindRepo, worklinks.KindIssue, worklinks.KindPR:
		default:
			continue
		}
		v, err := worklinks.Normalize(l.Kind, l.URL)
		if err != nil {
			continue
		}
		k := worklinks.Key{Kind: l.Kind, URL: v}
		if seen[k] {
			continue
		}
		seen[k] = true
		clamp := func(t time.Time) time.Time {
			if t.IsZero() || t.After(now) {
				return now
			}
			return t.UTC()
		}
		first, last := clamp(l.FirstSeen), clamp(l.LastSeen)
		if first.After(last) {
			first = last
		}
		out = append(out, worklinks.Link{Kind: l.Kind, URL: v, FirstSeen: first, LastSeen: last})
	}
	return out, nil
}
