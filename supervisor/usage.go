package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackin-dev/jackin/runtimes"
	"github.com/jackin-dev/jackin/usage"
)

// Token usage: the supervisor reads the runtime's own usage records in
// the agent's home (where the host cannot cheaply look: the runtime-home
// volume) every usageInterval, only what grew since the last pass, and
// publishes the cumulative totals per session and model in the agent
// directory (usage.File), replaced whole and only when they changed. The
// host keeps the largest total it has seen per session and model, so a
// re-read after a restart adds nothing.

// usageInterval is how often the runtime's usage records are read.
const usageInterval = 5 * time.Second

// usageAfterState is how soon after a state change the records are read.
const usageAfterState = 300 * time.Millisecond

// maxUsageEntries bounds the published file: the sessions changed most
// recently are kept (the host already has the others).
const maxUsageEntries = 1000

// maxUsageFile bounds the usage file the host reads.
const maxUsageFile = 1 << 20

// watchUsage starts reading the runtime's usage; the returned function
// stops it after a last pass (the agent's last turn is published before
// the container ends).
func (s *supervisor) watchUsage(ctx context.Context, home string) (stop func()) {
	rd := usage.ForRuntime(s.cfg.Runtime.Name, home, os.Getenv, s.boot)
	if rd == nil || s.cfg.Runtime.Custom {
		// No transcripts read: links come from the terminal.
		s.terminalLinks = true
		return func() {}
	}
	rd.OnText(func(t usage.Text) { s.links.say(t.Stream, t.Text, t.Break, t.Time) })
	rd.OnWarning(func(msg string) { s.logf("usage: %s", msg) })
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	p := &usagePublisher{dir: s.cfg.AgentDir, runtime: rd.Runtime(), logf: s.logf, changed: map[usage.Key]time.Time{}}
	if rd.WantsEvents() && s.cfg.Runtime.State == runtimes.StateServer {
		go followServerUsage(ctx, rd)
	}
	// A state change (a turn ending, above all) is read soon after, so
	// what a turn used is published within a moment of it, not of the
	// next pass.
	states := make(chan Status, 4)
	s.mu.Lock()
	s.watchers[states] = true
	s.mu.Unlock()
	go func() {
		defer close(done)
		defer func() {
			s.mu.Lock()
			delete(s.watchers, states)
			s.mu.Unlock()
		}()
		timer := time.NewTimer(0)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				if totals, changed := rd.Scan(); changed {
					p.publish(totals)
				}
				return
			case <-states:
				// The runtime writes its record around its hook: a moment
				// later it is there.
				timer.Reset(usageAfterState)
				continue
			case <-timer.C:
			}
			if totals, changed := rd.Scan(); changed {
				p.publish(totals)
			}
			next := usageInterval
			if rd.More() {
				next = 100 * time.Millisecond // a long history, read over a few passes
			}
			timer.Reset(next)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(3 * time.Second):
			}
		})
	}
}

// followServerUsage reads the usage OpenCode's server reports on its event
// stream (message.updated) into rd, reconnecting while the server starts
// or restarts, until ctx ends.
func followServerUsage(ctx context.Context, rd *usage.Reader) {
	url := "http://127.0.0.1:" + runtimes.OpenCodePort + "/event"
	client := &http.Client{}
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return
		}
		req.Header.Set("Accept", "text/event-stream")
		if resp, err := client.Do(req); err == nil {
			if resp.StatusCode == http.StatusOK {
				sc := bufio.NewScanner(resp.Body)
				sc.Buffer(make([]byte, 64<<10), 4<<20)
				for sc.Scan() {
					if data, ok := strings.CutPrefix(sc.Text(), "data:"); ok {
						rd.Event([]byte(strings.TrimSpace(data)))
					}
				}
			}
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// usagePublisher writes the usage file.
type usagePublisher struct {
	dir     string
	runtime string
	logf    func(string, ...any)
	last    usage.Totals
	// changed is when each session and model last grew.
	changed map[usage.Key]time.Time
	failed  bool
}

func (p *usagePublisher) publish(totals usage.Totals) {
	now := time.Now()
	for k, t := range totals {
		if p.last == nil || p.last[k] != t {
			p.changed[k] = now
		}
	}
	for k := range p.changed {
		if _, ok := totals[k]; !ok {
			delete(p.changed, k)
		}
	}
	p.last = totals
	entries := totals.Entries()
	if len(entries) > maxUsageEntries {
		sort.SliceStable(entries, func(i, j int) bool {
			ki := usage.Key{Session: entries[i].Session, Model: entries[i].Model}
			kj := usage.Key{Session: entries[j].Session, Model: entries[j].Model}
			return p.changed[ki].After(p.changed[kj])
		})
		entries = entries[:maxUsageEntries]
	}
	b, err := json.Marshal(usage.Report{V: usage.ReportVersion, Runtime: p.runtime, Updated: now.UTC(), Entries: entries})
	if err != nil {
		return
	}
	if err := writeFileAtomic(p.dir, usage.File, b); err != nil && !p.failed {
		p.failed = true
		p.logf("cannot publish the agent's token usage in %s: %v", p.dir, err)
	}
}

// writeFileAtomic replaces dir/name by b (a reader sees the old file or
// the new one, never a part).
func writeFileAtomic(dir, name string, b []byte) error {
	tmp, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	if err := tmp.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		_ = os.Chmod(tmp.Name(), 0o644)
		werr = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if werr != nil {
		os.Remove(tmp.Name())
	}
	return werr
}

// ReadUsage reads the token usage an agent's supervisor published in dir
// on the host. Like ReadPublished, it reads hostile input: the file is
// opened without following links or blocking, must be a small regular
// file, and every entry is checked and cleaned (printable names of
// bounded length, counts within [0, usage.MaxCount], one entry per
// session and model, at most maxUsageEntries). A missing file is
// os.ErrNotExist.
func ReadUsage(dir string) (usage.Report, error) {
	b, err := readHostile(filepath.Join(dir, usage.File), maxUsageFile)
	if err != nil {
		return usage.Report{}, err
	}
	var r usage.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return usage.Report{}, fmt.Errorf("%s: %w", usage.File, err)
	}
	if r.V != usage.ReportVersion {
		return usage.Report{}, fmt.Errorf("%s: version %d, this jackin reads %d", usage.File, r.V, usage.ReportVersion)
	}
	return CleanUsage(r), nil
}

// CleanUsage keeps a usage report the agent could have written fit to
// store and show.
func CleanUsage(r usage.Report) usage.Report {
	r.Runtime = printable(r.Runtime, 40)
	merged := map[usage.Key]usage.Tokens{}
	var order []usage.Key
	for _, e := range r.Entries {
		if len(order) >= maxUsageEntries {
			break
		}
		k := usage.Key{Session: printable(e.Session, 128), Model: printable(e.Model, 100)}
		if k.Model == "" {
			k.Model = usage.UnknownModel
		}
		t := e.Tokens.Clamp()
		if k.Session == "" || t.IsZero() {
			continue
		}
		if cur, ok := merged[k]; ok {
			merged[k] = cur.Max(t)
			continue
		}
		merged[k] = t
		order = append(order, k)
	}
	r.Entries = make([]usage.Entry, 0, len(order))
	for _, k := range order {
		r.Entries = append(r.Entries, usage.Entry{Session: k.Session, Model: k.Model, Tokens: merged[k]})
	}
	return r
}
