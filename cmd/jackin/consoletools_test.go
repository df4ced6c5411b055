package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/jackin-dev/jackin/console"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/worklinks"
)

func TestHandlerArgv(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &app{global: globalOptions{stateDir: dir}, log: logr.Discard()}
	f := &schema.Fleet{Name: "f", Handlers: schema.Handlers{Review: []string{"code", "--wait", "{path}"}, Web: []string{"open", "--url={url}"}}}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if _, err := st.RecordLinks(ctx, "f", "api", []worklinks.Link{
		{Kind: worklinks.KindRepo, URL: "https://github.com/o/r", FirstSeen: t0, LastSeen: t0.Add(time.Hour)},
		{Kind: worklinks.KindIssue, URL: "https://github.com/o/r/issues/1", FirstSeen: t0, LastSeen: t0.Add(2 * time.Hour)},
		{Kind: worklinks.KindPR, URL: "https://github.com/o/r/pull/2", FirstSeen: t0, LastSeen: t0},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordLinks(ctx, "f", "web", []worklinks.Link{{Kind: worklinks.KindRepo, URL: "/home/agent/app", FirstSeen: t0, LastSeen: t0}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []store.CheckoutRecord{{Fleet: "f", Instance: "api", Slug: "work", Mode: "worktree", Path: "/state/worktrees/f/api/work", Status: "active"},
		{Fleet: "f", Instance: "api", Slug: "docs", Mode: "clone", Path: "/state/clones/f/api/docs", Status: "active"}} {
		if err := st.SetCheckout(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// The pull request comes first, however old; the first checkout by path.
	if got, err := a.handlerArgv(ctx, st, f, console.OpenWeb, "api"); err != nil || !slices.Equal(got, []string{"open", "--url=https://github.com/o/r/pull/2"}) {
		t.Errorf("web: %q %v", got, err)
	}
	if got, err := a.handlerArgv(ctx, st, f, console.OpenReview, "api"); err != nil || !slices.Equal(got, []string{"code", "--wait", "/state/clones/f/api/docs"}) {
		t.Errorf("review: %q %v", got, err)
	}
	// web has a path, no http(s) link; nothing to review either.
	if _, err := a.handlerArgv(ctx, st, f, console.OpenWeb, "web"); err == nil || !strings.Contains(err.Error(), "web has no http(s) link") {
		t.Errorf("web without an http link: %v", err)
	}
	if _, err := a.handlerArgv(ctx, st, f, console.OpenReview, "web"); err == nil || !strings.Contains(err.Error(), "no worktree or clone checkout") {
		t.Errorf("review without a checkout: %v", err)
	}
	f.Handlers = schema.Handlers{}
	if _, err := a.handlerArgv(ctx, st, f, console.OpenWeb, "api"); err == nil || !strings.Contains(err.Error(), "declares no handlers.web") {
		t.Errorf("no handler: %v", err)
	}
}
