package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackin-dev/jackin/credentials"
	"github.com/jackin-dev/jackin/linkstate"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/supervisor"
	"github.com/jackin-dev/jackin/worklinks"
)

// RecordLinks records in the store the work links the fleet's supervisors
// published (links.json in each agent directory, read as hostile input by
// supervisor.ReadLinks), so an instance's links outlive its container and
// agent directory. It returns how many rows changed.
func (e Env) RecordLinks(ctx context.Context, fleet string) (int, error) {
	if e.Store == nil {
		return 0, nil
	}
	root := filepath.Dir(supervisor.HostDir(e.StateDir, fleet, "x"))
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	total := 0
	var errs []error
	for _, ent := range ents {
		if !ent.IsDir() || strings.HasPrefix(ent.Name(), ".") {
			continue // .removed-*: a deleted instance's leftovers
		}
		links, err := supervisor.ReadLinks(filepath.Join(root, ent.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n, err := e.Store.RecordLinks(ctx, fleet, ent.Name(), links)
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// RecordLinksLogged is RecordLinks for the callers that go on whatever
// happens: its error is logged.
func (e Env) RecordLinksLogged(ctx context.Context, fleet string) {
	if _, err := e.RecordLinks(ctx, fleet); err != nil {
		e.Log.Error(err, "record the agents' work links")
	}
}

// FleetLinks returns the fleet's work links by instance: what the agents
// published recorded first (RecordLinks), then the store's rows; without a
// store, what the agents publish now.
func (e Env) FleetLinks(ctx context.Context, fleet string) (map[string][]worklinks.Link, error) {
	if e.Store != nil {
		e.RecordLinksLogged(ctx, fleet)
		return e.Store.Links(ctx, fleet)
	}
	root := filepath.Dir(supervisor.HostDir(e.StateDir, fleet, "x"))
	ents, _ := os.ReadDir(root)
	out := map[string][]worklinks.Link{}
	for _, ent := range ents {
		if !ent.IsDir() || strings.HasPrefix(ent.Name(), ".") {
			continue
		}
		if links, err := supervisor.ReadLinks(filepath.Join(root, ent.Name())); err == nil && len(links) > 0 {
			out[ent.Name()] = links
		}
	}
	return out, nil
}

// linkRefreshTimeout bounds one refresh of a fleet's link states.
const linkRefreshTimeout = 30 * time.Second

// LinkStates returns the GitHub state of the fleet's issue and pull
// request links (by URL), asking GitHub for those due (all with force)
// when the fleet declares github; the rest come from the store. The token
// is read on the host only when a link is due, used for this refresh and
// dropped. Without github or a store there are none.
func (e Env) LinkStates(ctx context.Context, fleet *schema.Fleet, links map[string][]worklinks.Link, force bool) (map[string]worklinks.State, error) {
	if fleet.GitHub == nil || e.Store == nil {
		return nil, nil
	}
	var urls []string
	seen := map[string]bool{}
	for _, ls := range links {
		for _, l := range ls {
			if (l.Kind == worklinks.KindIssue || l.Kind == worklinks.KindPR) && !seen[l.URL] {
				seen[l.URL] = true
				urls = append(urls, l.URL)
			}
		}
	}
	if len(urls) == 0 {
		return nil, nil
	}
	src := fleet.GitHub.Token
	p, err := linkstate.New(linkstate.Config{
		Fleet: fleet.Name, APIURL: fleet.GitHub.APIURL, Store: e.Store,
		TokenFunc: func(ctx context.Context) (string, error) {
			v, err := (&credentials.Resolver{}).Resolve(ctx, src)
			return string(v), err
		},
	})
	if err != nil {
		return nil, fmt.Errorf("github: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, linkRefreshTimeout)
	defer cancel()
	states, stats, err := p.Refresh(ctx, urls, force)
	if stats.Asked > 0 {
		e.Log.V(1).Info("refreshed the links' GitHub state", "fleet", fleet.Name, "asked", stats.Asked, "requests", stats.Requests, "notModified", stats.NotModified)
	}
	if !stats.RateLimited.IsZero() {
		e.Log.Info("GitHub's rate limit is spent: link states are not refreshed until it resets", "fleet", fleet.Name, "until", stats.RateLimited.Local().Format(time.RFC3339))
	}
	return states, err
}

// LinkPollEvery is how often PollLinks looks for due link states (each
// link is asked only when its own schedule says so).
const LinkPollEvery = 30 * time.Second

// PollLinks records the agents' links and refreshes their due GitHub
// states every interval until ctx ends: jackin watch's poller. fleet
// returns the fleet as last loaded (a manifest edit can change github).
func (e Env) PollLinks(ctx context.Context, fleet func() *schema.Fleet, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		f := fleet()
		if links, err := e.FleetLinks(ctx, f.Name); err != nil {
			e.Log.Error(err, "read the work links")
		} else if _, err := e.LinkStates(ctx, f, links, false); err != nil && ctx.Err() == nil {
			e.Log.Error(err, "refresh the links' GitHub state")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
