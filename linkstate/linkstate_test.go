package linkstate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v93/github"

	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/test/harness"
	"github.com/jackin-dev/jackin/worklinks"
)

func newPoller(t *testing.T, gh *harness.GitHub, st *store.Store, token string, now func() time.Time) *Poller {
	t.Helper()
	p, err := New(Config{Fleet: "f", APIURL: gh.APIURL(), Token: token, Store: st, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestRefreshStatesETagAndSchedule(t *testing.T) {
	ctx := context.Background()
	gh := harness.StartGitHub("tok")
	defer gh.Close()
	gh.SetIssue("o", "r", 1, "open")
	gh.SetIssue("o", "r", 2, "closed")
	gh.SetPull("o", "r", 3, harness.GitHubPull{State: "open", SHA: "abc", CheckRuns: [][2]string{{"completed", "success"}}, Statuses: []string{"success"},
		Reviews: [][2]string{{"ann", "CHANGES_REQUESTED"}, {"ann", "APPROVED"}, {"bob", "COMMENTED"}}})
	gh.SetPull("o", "r", 4, harness.GitHubPull{State: "open", Draft: true, SHA: "def", CheckRuns: [][2]string{{"in_progress", ""}}, Requested: []string{"bob"}})
	gh.SetPull("o", "r", 5, harness.GitHubPull{State: "closed", Merged: true, SHA: "fed"})
	st := openStore(t)
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	p := newPoller(t, gh, st, "tok", clock)
	links := []string{
		gh.Link("o", "r", "issues", 1), gh.Link("o", "r", "issues", 2), gh.Link("o", "r", "pull", 3),
		gh.Link("o", "r", "pull", 4), gh.Link("o", "r", "pull", 5),
		"https://github.com/o/r/pull/9", // another host: not this API's
	}
	got, stats, err := p.Refresh(ctx, links, false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{links[0]: "open", links[1]: "closed", links[2]: "open ci:passing rv:approved", links[3]: "draft ci:pending rv:pending", links[4]: "merged"}
	if len(got) != len(want) {
		t.Errorf("states of %d links, want %d: %v", len(got), len(want), got)
	}
	for l, w := range want {
		if got[l].Short() != w || got[l].Error != "" {
			t.Errorf("%s: %q (error %q), want %q", l, got[l].Short(), got[l].Error, w)
		}
	}
	// Issues 2, a PR of 4 requests each for 3 and 4, one for the merged 5.
	if stats.Asked != 5 || stats.Requests != 11 || stats.NotModified != 0 {
		t.Errorf("first refresh: %+v", stats)
	}
	for _, r := range gh.Requests() {
		if !r.Authorized {
			t.Errorf("a request without the token: %+v", r)
		}
	}
	// The schedule: a building PR in a minute, a waiting one in five, an
	// open issue in ten, closed and merged in an hour.
	for l, d := range map[string]time.Duration{links[0]: worklinks.EveryIssue, links[1]: worklinks.EveryClosed, links[2]: worklinks.EveryOpenPR, links[3]: worklinks.EveryBuilding, links[4]: worklinks.EveryClosed} {
		if got[l].NextAt.Sub(now) != d {
			t.Errorf("%s: next in %v, want %v", l, got[l].NextAt.Sub(now), d)
		}
	}
	// Nothing due: nothing asked.
	n := len(gh.Requests())
	if _, stats, _ = p.Refresh(ctx, links, false); stats.Requests != 0 || len(gh.Requests()) != n {
		t.Errorf("a refresh with nothing due asked: %+v", stats)
	}
	// Two minutes on: only the building PR is due.
	now = now.Add(2 * time.Minute)
	if _, stats, _ = p.Refresh(ctx, links, false); stats.Asked != 1 {
		t.Errorf("after 2m: %+v, want the building PR alone", stats)
	}
	// Forced, with nothing changed: every request is answered 304, which
	// spends no rate limit, and the states stand.
	rate, _, _ := st.GitHubRateOf(ctx, "f")
	got2, stats, err := newPoller(t, gh, st, "tok", clock).Refresh(ctx, links, true)
	if err != nil || stats.Requests != 11 || stats.NotModified != 11 {
		t.Fatalf("forced refresh: %+v %v", stats, err)
	}
	for l, w := range want {
		if got2[l].Short() != w {
			t.Errorf("%s after 304: %q, want %q", l, got2[l].Short(), w)
		}
	}
	if rate2, _, _ := st.GitHubRateOf(ctx, "f"); rate2.Remaining != rate.Remaining {
		t.Errorf("304s spent rate limit: %d -> %d", rate.Remaining, rate2.Remaining)
	}
	for _, r := range gh.Requests()[len(gh.Requests())-11:] {
		if r.Status != 304 || r.IfNoneMatch == "" {
			t.Errorf("forced request not conditional: %+v", r)
		}
	}
	// A change is seen through the conditional request.
	gh.SetIssue("o", "r", 1, "closed")
	got3, _, _ := p.Refresh(ctx, links[:1], true)
	if got3[links[0]].State != worklinks.StateClosed {
		t.Errorf("closed issue read as %+v", got3[links[0]])
	}
}

func TestRefreshErrorBacksOff(t *testing.T) {
	ctx := context.Background()
	gh := harness.StartGitHub("tok")
	defer gh.Close()
	gh.SetIssue("o", "r", 1, "open")
	st := openStore(t)
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	p := newPoller(t, gh, st, "wrong-token", func() time.Time { return now })
	link := gh.Link("o", "r", "issues", 1)
	for i, want := range []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute} {
		got, _, err := p.Refresh(ctx, []string{link}, false)
		if err != nil {
			t.Fatal(err)
		}
		s := got[link]
		if s.Error == "" || !strings.Contains(s.Error, "401") || s.Failures != i+1 || s.NextAt.Sub(now) != want {
			t.Fatalf("failure %d: %+v, want next in %v", i+1, s, want)
		}
		if strings.Contains(s.Error, "wrong-token") {
			t.Fatalf("the token is in the error: %q", s.Error)
		}
		now = s.NextAt
	}
	// The right token: the error goes, the schedule is the state's.
	got, _, _ := newPoller(t, gh, st, "tok", func() time.Time { return now }).Refresh(ctx, []string{link}, false)
	if s := got[link]; s.Error != "" || s.State != "open" || s.Failures != 0 || s.NextAt.Sub(now) != worklinks.EveryIssue {
		t.Fatalf("after the fix: %+v", s)
	}
}

func TestRefreshObeysRateLimit(t *testing.T) {
	ctx := context.Background()
	gh := harness.StartGitHub("tok")
	defer gh.Close()
	gh.SetIssue("o", "r", 1, "open")
	gh.SetIssue("o", "r", 2, "open")
	st := openStore(t)
	now := time.Now().UTC()
	reset := now.Add(30 * time.Minute).Truncate(time.Second)
	gh.SetRateLimit(0, reset)
	links := []string{gh.Link("o", "r", "issues", 1), gh.Link("o", "r", "issues", 2)}
	p := newPoller(t, gh, st, "tok", func() time.Time { return now })
	got, stats, err := p.Refresh(ctx, links, false)
	if err != nil {
		t.Fatal(err)
	}
	if !stats.RateLimited.Equal(reset) || stats.Requests != 1 {
		t.Fatalf("rate limited refresh: %+v, want stopped at the first request until %v", stats, reset)
	}
	if len(got) != 0 {
		t.Errorf("links never asked have a state: %+v", got)
	}
	if st, _ := st.LinkStates(ctx, "f"); len(st) != 0 {
		t.Errorf("the rate limit was stored as the links' state: %+v", st)
	}
	// Another process (a new poller on the same store) asks nothing until
	// the reset, even forced.
	n := len(gh.Requests())
	if _, stats, _ := newPoller(t, gh, st, "tok", func() time.Time { return now.Add(time.Minute) }).Refresh(ctx, links, true); stats.Requests != 0 || len(gh.Requests()) != n {
		t.Fatalf("asked during the rate limit: %+v", stats)
	}
	// After the reset it asks again.
	gh.SetRateLimit(100, now.Add(2*time.Hour))
	got, stats, _ = newPoller(t, gh, st, "tok", func() time.Time { return reset.Add(time.Second) }).Refresh(ctx, links, false)
	if stats.Asked != 2 || got[links[0]].State != "open" || !stats.RateLimited.IsZero() {
		t.Fatalf("after the reset: %+v %+v", stats, got)
	}
	// Spent again: the known states stand, unharmed.
	gh.SetRateLimit(0, reset.Add(time.Hour))
	got, stats, _ = newPoller(t, gh, st, "tok", func() time.Time { return reset.Add(2 * time.Second) }).Refresh(ctx, links, true)
	if stats.RateLimited.IsZero() || got[links[0]].State != "open" || got[links[0]].Failures != 0 || got[links[1]].State != "open" {
		t.Fatalf("known states under the rate limit: %+v %+v", stats, got)
	}
}

func TestChecksAndReviewStates(t *testing.T) {
	run := func(status, concl string) *github.CheckRun {
		return &github.CheckRun{Status: github.Ptr(status), Conclusion: github.Ptr(concl)}
	}
	combined := func(state string, n int) *github.CombinedStatus {
		return &github.CombinedStatus{State: github.Ptr(state), TotalCount: github.Ptr(n)}
	}
	for _, c := range []struct {
		runs []*github.CheckRun
		cs   *github.CombinedStatus
		want string
	}{
		{nil, combined("pending", 0), worklinks.ChecksNone},
		{[]*github.CheckRun{run("completed", "success"), run("completed", "skipped")}, nil, worklinks.ChecksPassing},
		{[]*github.CheckRun{run("completed", "success"), run("queued", "")}, nil, worklinks.ChecksPending},
		{[]*github.CheckRun{run("completed", "timed_out"), run("queued", "")}, nil, worklinks.ChecksFailing},
		{[]*github.CheckRun{run("completed", "success")}, combined("pending", 1), worklinks.ChecksPending},
		{nil, combined("error", 1), worklinks.ChecksFailing},
		{nil, combined("success", 2), worklinks.ChecksPassing},
	} {
		if got := ChecksState(c.runs, c.cs); got != c.want {
			t.Errorf("ChecksState(%d runs, %v) = %s, want %s", len(c.runs), c.cs, got, c.want)
		}
	}
	rv := func(login, state string) *github.PullRequestReview {
		return &github.PullRequestReview{User: &github.User{Login: github.Ptr(login)}, State: github.Ptr(state)}
	}
	for _, c := range []struct {
		reviews   []*github.PullRequestReview
		requested int
		want      string
	}{
		{nil, 0, worklinks.ReviewNone},
		{nil, 1, worklinks.ReviewPending},
		{[]*github.PullRequestReview{rv("a", "COMMENTED")}, 1, worklinks.ReviewPending},
		{[]*github.PullRequestReview{rv("a", "APPROVED"), rv("b", "CHANGES_REQUESTED")}, 0, worklinks.ReviewChangesRequested},
		{[]*github.PullRequestReview{rv("a", "CHANGES_REQUESTED"), rv("a", "APPROVED")}, 0, worklinks.ReviewApproved},
		{[]*github.PullRequestReview{rv("a", "APPROVED"), rv("a", "DISMISSED")}, 0, worklinks.ReviewNone},
	} {
		if got := ReviewState(c.reviews, c.requested); got != c.want {
			t.Errorf("ReviewState(%d reviews, %d requested) = %s, want %s", len(c.reviews), c.requested, got, c.want)
		}
	}
}

func TestWebHost(t *testing.T) {
	for in, want := range map[string]string{
		"":                                "github.com",
		"https://api.github.com/":         "github.com",
		"https://ghe.example.com/api/v3/": "ghe.example.com",
		"http://127.0.0.1:8080/api/v3":    "127.0.0.1:8080",
	} {
		if got, err := WebHost(in); err != nil || got != want {
			t.Errorf("WebHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://x/", "https://user:pw@ghe/api/v3", "not a url"} {
		if _, err := WebHost(bad); err == nil {
			t.Errorf("WebHost(%q) accepted", bad)
		}
	}
}

func TestTokenReadOnlyWhenDue(t *testing.T) {
	ctx := context.Background()
	gh := harness.StartGitHub("tok")
	defer gh.Close()
	gh.SetIssue("o", "r", 1, "open")
	st := openStore(t)
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	reads := 0
	mk := func(tok string, err error) *Poller {
		p, perr := New(Config{Fleet: "f", APIURL: gh.APIURL(), Store: st, Now: func() time.Time { return now },
			TokenFunc: func(context.Context) (string, error) { reads++; return tok, err }})
		if perr != nil {
			t.Fatal(perr)
		}
		return p
	}
	link := gh.Link("o", "r", "issues", 1)
	got, _, _ := mk("", errors.New("host environment variable GH_TOKEN is not set")).Refresh(ctx, []string{link, gh.Link("o", "r", "issues", 2)}, false)
	if reads != 1 || !strings.Contains(got[link].Error, "GH_TOKEN is not set") || len(gh.Requests()) != 0 {
		t.Fatalf("token failure: %d reads, %+v, %d requests", reads, got[link], len(gh.Requests()))
	}
	now = now.Add(time.Hour)
	reads = 0
	p := mk("tok", nil)
	if got, _, _ := p.Refresh(ctx, []string{link}, false); reads != 1 || got[link].State != "open" {
		t.Fatalf("token read %d times, state %+v", reads, got[link])
	}
	if _, _, _ = p.Refresh(ctx, []string{link}, false); reads != 1 {
		t.Fatalf("token read again with nothing due: %d", reads)
	}
	if _, _, _ = mk("tok", nil).Refresh(ctx, []string{link}, false); reads != 1 {
		t.Fatalf("a new poller read the token with nothing due: %d", reads)
	}
}

func TestRefreshObeysSecondaryLimit(t *testing.T) {
	ctx := context.Background()
	gh := harness.StartGitHub("tok")
	defer gh.Close()
	gh.SetIssue("o", "r", 1, "open")
	gh.SetIssue("o", "r", 2, "open")
	st := openStore(t)
	now := time.Now().UTC()
	gh.SetSecondaryLimit(90 * time.Second)
	links := []string{gh.Link("o", "r", "issues", 1), gh.Link("o", "r", "issues", 2)}
	got, stats, err := newPoller(t, gh, st, "tok", func() time.Time { return now }).Refresh(ctx, links, false)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Requests != 1 || !stats.RateLimited.Equal(now.Add(90*time.Second)) || got[links[0]].Failures != 0 {
		t.Fatalf("secondary limit: %+v %+v", stats, got)
	}
	// Every process waits the Retry-After out; then it asks again.
	gh.SetSecondaryLimit(0)
	if _, stats, _ := newPoller(t, gh, st, "tok", func() time.Time { return now.Add(time.Minute) }).Refresh(ctx, links, true); stats.Requests != 0 {
		t.Fatalf("asked within the Retry-After: %+v", stats)
	}
	got, stats, _ = newPoller(t, gh, st, "tok", func() time.Time { return now.Add(2 * time.Minute) }).Refresh(ctx, links, false)
	if stats.Asked != 2 || got[links[1]].State != "open" {
		t.Fatalf("after the Retry-After: %+v %+v", stats, got)
	}
}
