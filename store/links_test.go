package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/worklinks"
)

func TestLinksKeepFirstAndLastSeen(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	pr := worklinks.Link{Kind: worklinks.KindPR, URL: "https://github.com/o/r/pull/1", FirstSeen: t0, LastSeen: t0.Add(time.Minute)}
	if n, err := s.RecordLinks(ctx, "f", "a", []worklinks.Link{pr}); err != nil || n != 1 {
		t.Fatalf("record: %d %v", n, err)
	}
	// Seen again later, by a restarted agent that saw it first later too.
	again := pr
	again.FirstSeen, again.LastSeen = t0.Add(time.Hour), t0.Add(2*time.Hour)
	if n, err := s.RecordLinks(ctx, "f", "a", []worklinks.Link{again}); err != nil || n != 1 {
		t.Fatalf("record again: %d %v", n, err)
	}
	// The same figures once more change nothing.
	if n, err := s.RecordLinks(ctx, "f", "a", []worklinks.Link{again}); err != nil || n != 0 {
		t.Fatalf("record unchanged: %d %v", n, err)
	}
	got, err := s.Links(ctx, "f")
	if err != nil || len(got["a"]) != 1 {
		t.Fatalf("links: %v %v", got, err)
	}
	if l := got["a"][0]; !l.FirstSeen.Equal(t0) || !l.LastSeen.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("first %v last %v", l.FirstSeen, l.LastSeen)
	}
	if other, _ := s.Links(ctx, "g"); len(other) != 0 {
		t.Errorf("another fleet sees %v", other)
	}
	if err := s.DropLinks(ctx, "f", "a"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Links(ctx, "f"); len(got) != 0 {
		t.Errorf("dropped, yet %v", got)
	}
}

func TestLinksBounded(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var ls []worklinks.Link
	for i := range worklinks.MaxLinks + 5 {
		at := t0.Add(time.Duration(i) * time.Second)
		ls = append(ls, worklinks.Link{Kind: worklinks.KindIssue, URL: fmt.Sprintf("https://github.com/o/r/issues/%d", i+1), FirstSeen: at, LastSeen: at})
	}
	if _, err := s.RecordLinks(ctx, "f", "a", ls); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Links(ctx, "f")
	if len(got["a"]) != worklinks.MaxLinks || got["a"][0].URL != ls[len(ls)-1].URL {
		t.Fatalf("%d links kept, newest %v", len(got["a"]), got["a"][0])
	}
}

func TestLinkStatesAndGitHubCache(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	st := worklinks.State{Kind: worklinks.KindPR, State: worklinks.StateOpen, Checks: worklinks.ChecksPending, Review: worklinks.ReviewNone}.Next(at)
	if err := s.PutLinkState(ctx, "f", "u", st); err != nil {
		t.Fatal(err)
	}
	got, err := s.LinkStates(ctx, "f")
	if err != nil || got["u"] != st {
		t.Fatalf("states %+v %v, want %+v", got, err, st)
	}
	if _, _, ok, err := s.GitHubCached(ctx, "f", "/k"); ok || err != nil {
		t.Fatalf("cached before put: %v %v", ok, err)
	}
	if err := s.PutGitHubCached(ctx, "f", "/k", `"e1"`, []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	etag, body, ok, err := s.GitHubCached(ctx, "f", "/k")
	if !ok || err != nil || etag != `"e1"` || string(body) != `{"a":1}` {
		t.Fatalf("cached %q %q %v %v", etag, body, ok, err)
	}
	if _, _, ok, _ := s.GitHubCached(ctx, "g", "/k"); ok {
		t.Error("another fleet's token sees the cache")
	}
	// Pruned: what was not used since; a touch keeps a response.
	if err := s.PutGitHubCached(ctx, "f", "/old", `"e0"`, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	cut := time.Now()
	time.Sleep(2 * time.Millisecond)
	if err := s.TouchGitHubCached(ctx, "f", "/k"); err != nil {
		t.Fatal(err)
	}
	if err := s.PruneGitHub(ctx, "f", cut); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := s.GitHubCached(ctx, "f", "/old"); ok {
		t.Error("an unused response outlived the prune")
	}
	if _, _, ok, _ := s.GitHubCached(ctx, "f", "/k"); !ok {
		t.Error("a touched response was pruned")
	}
	if got, _ := s.LinkStates(ctx, "f"); len(got) != 0 {
		t.Errorf("a link state checked before the cut outlived the prune: %+v", got)
	}
	r := GitHubRate{Remaining: 0, Reset: at.Add(time.Hour), BlockedUntil: at.Add(time.Hour), At: at}
	if err := s.PutGitHubRate(ctx, "f", r); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.GitHubRateOf(ctx, "f"); !ok || err != nil || got != r {
		t.Fatalf("rate %+v %v %v, want %+v", got, ok, err, r)
	}
}
