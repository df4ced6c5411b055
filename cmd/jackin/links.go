package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackin-dev/jackin/console"
	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/worklinks"
)

// linkItem is one of an instance's work links in `jackin get -o json`:
// what its agent said it works on (the tag protocol), and for a GitHub
// issue or pull request the state GitHub last gave.
type linkItem struct {
	Kind      worklinks.Kind   `json:"kind"`
	URL       string           `json:"url"`
	FirstSeen time.Time        `json:"firstSeen"`
	LastSeen  time.Time        `json:"lastSeen"`
	State     *worklinks.State `json:"state,omitempty"`
}

// linksOf is each instance's links with their states.
func linksOf(links map[string][]worklinks.Link, states map[string]worklinks.State) map[string][]linkItem {
	out := map[string][]linkItem{}
	for inst, ls := range links {
		items := make([]linkItem, 0, len(ls))
		for _, l := range ls {
			it := linkItem{Kind: l.Kind, URL: l.URL, FirstSeen: l.FirstSeen, LastSeen: l.LastSeen}
			if st, ok := states[l.URL]; ok && (l.Kind == worklinks.KindIssue || l.Kind == worklinks.KindPR) {
				it.State = &st
			}
			items = append(items, it)
		}
		out[inst] = items
	}
	return out
}

// addLinks sets each item's links: recorded from what the agents
// published, with the GitHub state of issues and pull requests when the
// fleet declares github (those due asked again; all with force).
func (a *app) addLinks(ctx context.Context, sess *session, items []instanceStatus, force bool) error {
	env := a.env(sess)
	links, err := env.FleetLinks(ctx, sess.fleet.Name)
	if err != nil {
		return fmt.Errorf("read the work links: %w", err)
	}
	states, err := env.LinkStates(ctx, sess.fleet, links, force)
	if err != nil {
		return fmt.Errorf("refresh the links' GitHub state: %w", err)
	}
	byInst := linksOf(links, states)
	for i := range items {
		items[i].Links = byInst[items[i].Instance]
	}
	return nil
}

// shortLink is a link in a table cell: OWNER/REPO#N for a GitHub-shaped
// issue or pull request URL, a repository's last path element, else the
// URL without its scheme.
func shortLink(l linkItem) string {
	u, err := url.Parse(l.URL)
	if err == nil && u.Host != "" {
		seg := strings.Split(strings.Trim(u.Path, "/"), "/")
		if len(seg) >= 4 && (seg[2] == "pull" || seg[2] == "pulls" || seg[2] == "issues") {
			return seg[0] + "/" + seg[1] + "#" + seg[3]
		}
		if l.Kind == worklinks.KindRepo && len(seg) >= 2 {
			return strings.TrimSuffix(seg[0]+"/"+seg[1], ".git")
		}
		return u.Host + u.Path
	}
	if rest, ok := strings.CutPrefix(l.URL, "git@"); ok {
		if _, path, ok := strings.Cut(rest, ":"); ok {
			return strings.TrimSuffix(path, ".git")
		}
	}
	if l.Kind == worklinks.KindRepo {
		if i := strings.LastIndexByte(strings.TrimRight(l.URL, "/"), '/'); i >= 0 {
			return strings.TrimRight(l.URL, "/")[i+1:]
		}
	}
	return l.URL
}

// linkCell is get -o wide's LINKS cell: the most recently seen pull
// request, else issue, else repository, with its state, and how many
// more there are; "-" for none.
func linkCell(ls []linkItem) string {
	if len(ls) == 0 {
		return "-"
	}
	best := bestFirst(ls)[0]
	s := string(best.Kind) + " " + shortLink(best)
	if best.State != nil {
		s += " " + strings.ReplaceAll(best.State.Short(), " ", ",")
	}
	if len(ls) > 1 {
		s += fmt.Sprintf(" (+%d)", len(ls)-1)
	}
	return s
}

// bestFirst orders links as get and the console show them: pull
// requests, then issues, then repositories, the most recently seen first.
func bestFirst(ls []linkItem) []linkItem {
	out := slices.Clone(ls)
	rank := map[worklinks.Kind]int{worklinks.KindPR: 0, worklinks.KindIssue: 1, worklinks.KindRepo: 2}
	slices.SortStableFunc(out, func(a, b linkItem) int {
		if a.Kind != b.Kind {
			return rank[a.Kind] - rank[b.Kind]
		}
		return b.LastSeen.Compare(a.LastSeen)
	})
	return out
}

// consoleLinks are an instance's links as the console shows them.
func consoleLinks(ls []linkItem) []console.Link {
	var out []console.Link
	for _, l := range bestFirst(ls) {
		cl := console.Link{Kind: string(l.Kind), Label: shortLink(l), URL: l.URL}
		if l.State != nil {
			cl.State = l.State.Short()
		}
		out = append(out, cl)
	}
	return out
}

// consoleLinkStates are the fleet's links and their stored states, for
// a console snapshot; when the fleet declares github, the states that are
// due are refreshed in the background (one refresh at a time), and the
// next snapshot shows them.
func (s *consoleSource) consoleLinkStates(ctx context.Context, st *store.Store) map[string][]linkItem {
	env := pipeline.Env{StateDir: s.a.global.stateDir, Store: st, Log: s.a.log}
	links, err := env.FleetLinks(ctx, s.fleet)
	if err != nil || len(links) == 0 {
		return nil
	}
	var states map[string]worklinks.State
	if st != nil {
		states, _ = st.LinkStates(ctx, s.fleet)
	}
	if st != nil && s.manifest != nil && s.manifest.GitHub != nil && s.linkPoll.CompareAndSwap(false, true) {
		fleet := s.manifest
		go func() {
			defer s.linkPoll.Store(false)
			if _, err := env.LinkStates(context.Background(), fleet, links, false); err != nil {
				s.a.log.V(1).Info("refresh the links' GitHub state", "error", err.Error())
			}
		}()
	}
	return linksOf(links, states)
}

// addLinkColumn appends get -o wide's LINKS column to a table whose rows
// after the header are items, in order.
func addLinkColumn(t *table, items []instanceStatus) {
	if len(t.rows) != len(items)+1 {
		return
	}
	t.rows[0] = append(t.rows[0], "LINKS")
	for i, it := range items {
		t.rows[i+1] = append(t.rows[i+1], linkCell(it.Links))
	}
}
