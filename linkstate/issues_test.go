package linkstate

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/taskqueue"
	"github.com/jackin-dev/jackin/test/harness"
)

// TestIssueSource: the open issues carrying the labels become tasks,
// prioritised by label, across pages; closed issues, pull requests and
// issues without the labels do not; a rescan within Every asks nothing and
// a later one is a conditional request.
func TestIssueSource(t *testing.T) {
	ctx := context.Background()
	gh := harness.StartGitHub("tok-secret")
	defer gh.Close()
	created := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	gh.PutIssue("o", "r", 1, harness.GitHubIssue{State: "open", Title: "Fix login", Body: "The login page\nbreaks.", Labels: []string{"agent", "p1", "bug"}, Created: created})
	gh.PutIssue("o", "r", 2, harness.GitHubIssue{State: "open", Title: "Docs", Labels: []string{"agent", "p2", "p1"}})
	gh.PutIssue("o", "r", 3, harness.GitHubIssue{State: "open", Title: "Not for agents", Labels: []string{"bug"}})
	gh.PutIssue("o", "r", 4, harness.GitHubIssue{State: "closed", Title: "Closed", Labels: []string{"agent"}})
	gh.PutIssue("o", "r", 5, harness.GitHubIssue{State: "open", Title: "A pull request", Labels: []string{"agent"}, PullRequest: true})
	gh.PutIssue("x", "y", 6, harness.GitHubIssue{State: "open", Title: "Another repository", Labels: []string{"agent"}})
	gh.PutIssue("o", "r", 7, harness.GitHubIssue{State: "open", Title: "Huge", Body: strings.Repeat("x", 2*taskqueue.MaxPrompt), Labels: []string{"agent"}})
	gh.PutIssue("o", "r", 9, harness.GitHubIssue{State: "open", Title: "\x1b]0;x\x07Sneaky\u009b", Labels: []string{"agent", "bad\x1b[2J"}})
	for n := 100; n < 250; n++ {
		gh.PutIssue("o", "r", n, harness.GitHubIssue{State: "open", Labels: []string{"agent", "bulk"}})
	}
	st := openStore(t)
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	p := newPoller(t, gh, st, "tok-secret", func() time.Time { return now })
	src, err := p.IssueSource(IssueQuery{Name: "gh", Owner: "o", Repo: "r", Labels: []string{"agent"}, Priorities: map[string]int{"p1": 10, "p2": 20, "bulk": -1}})
	if err != nil {
		t.Fatal(err)
	}
	if src.Name() != "gh" {
		t.Errorf("name %q", src.Name())
	}
	got, err := src.Scan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4+150 {
		t.Fatalf("%d tasks, want 154 (issues 1, 2, 7, 9 and the 150 bulk ones)", len(got))
	}
	m := map[string]taskqueue.Task{}
	for _, tk := range got {
		m[tk.ID] = tk
	}
	one := m["gh:o/r#1"]
	if one.Title != "Fix login" || one.Priority != 10 || strings.Join(one.Labels, ",") != "agent,p1,bug" || !one.CreatedAt.Equal(created) || one.Source != "gh" ||
		!strings.Contains(one.Prompt, "The login page\nbreaks.") || !strings.Contains(one.Prompt, gh.Link("o", "r", "issues", 1)) {
		t.Errorf("issue 1: %+v", one)
	}
	if two := m["gh:o/r#2"]; two.Priority != 20 {
		t.Errorf("issue 2 priority %d, want the highest of its labels' (20)", two.Priority)
	}
	if sneaky := m["gh:o/r#9"]; sneaky.Title != "]0;xSneaky" || strings.Join(sneaky.Labels, ",") != "agent" {
		t.Errorf("issue 9 keeps control characters: title %q labels %q", sneaky.Title, sneaky.Labels)
	}
	if bulk := m["gh:o/r#150"]; bulk.Priority != -1 || bulk.Title != "issue 150" {
		t.Errorf("bulk issue: %+v", bulk)
	}
	if huge := m["gh:o/r#7"]; len(huge.Prompt) > taskqueue.MaxPrompt || !strings.HasSuffix(huge.Prompt, "[the issue's text is cut here]") {
		t.Errorf("huge issue: prompt of %d bytes", len(huge.Prompt))
	}
	reqs := gh.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2 pages: %+v", len(reqs), reqs)
	}
	for _, r := range reqs {
		if r.Path != "/api/v3/repos/o/r/issues" || !strings.Contains(r.Query, "labels=agent") || !strings.Contains(r.Query, "state=open") || !r.Authorized || r.Status != 200 {
			t.Errorf("request %+v", r)
		}
	}
	// Within Every: the same tasks, no request.
	if again, err := src.Scan(ctx); err != nil || len(again) != len(got) || len(gh.Requests()) != 2 {
		t.Errorf("rescan within the interval: %d tasks, %v, %d requests", len(again), err, len(gh.Requests()))
	}
	// Later: conditional requests, answered 304.
	now = now.Add(2 * DefaultIssueScanEvery)
	if again, err := src.Scan(ctx); err != nil || len(again) != len(got) {
		t.Fatalf("rescan: %d tasks, %v", len(again), err)
	}
	reqs = gh.Requests()
	if len(reqs) != 4 || reqs[2].Status != 304 || reqs[2].IfNoneMatch == "" {
		t.Errorf("rescan requests %+v", reqs[2:])
	}
	// A new issue appears on the next scan.
	gh.PutIssue("o", "r", 8, harness.GitHubIssue{State: "open", Title: "New", Labels: []string{"agent"}})
	now = now.Add(2 * DefaultIssueScanEvery)
	if again, err := src.Scan(ctx); err != nil || len(again) != len(got)+1 {
		t.Errorf("after a new issue: %d tasks, %v", len(again), err)
	}
}

// TestIssueSourceRateLimitAndErrors: a spent rate limit answers the last
// tasks and says until when, without asking; a refused token is an error
// that never shows the token; bad queries are refused.
func TestIssueSourceRateLimitAndErrors(t *testing.T) {
	ctx := context.Background()
	gh := harness.StartGitHub("tok-secret")
	defer gh.Close()
	gh.PutIssue("o", "r", 1, harness.GitHubIssue{State: "open", Labels: []string{"agent"}})
	st := openStore(t)
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	p := newPoller(t, gh, st, "tok-secret", func() time.Time { return now })
	src, _ := p.IssueSource(IssueQuery{Name: "gh", Owner: "o", Repo: "r", Labels: []string{"agent"}, Every: time.Second})
	if got, err := src.Scan(ctx); err != nil || len(got) != 1 {
		t.Fatalf("first scan: %v %v", got, err)
	}
	reset := time.Now().Add(time.Hour).Truncate(time.Second)
	gh.SetRateLimit(0, reset)
	gh.PutIssue("o", "r", 2, harness.GitHubIssue{State: "open", Labels: []string{"agent"}})
	now = now.Add(time.Minute)
	got, err := src.Scan(ctx)
	if err == nil || !strings.Contains(err.Error(), "rate limit") || len(got) != 1 {
		t.Fatalf("rate limited scan: %v %v", got, err)
	}
	n := len(gh.Requests())
	now = now.Add(time.Minute)
	if _, err := src.Scan(ctx); err == nil || !strings.Contains(err.Error(), "rate limit is spent until") || len(gh.Requests()) != n {
		t.Errorf("scan while blocked: %v; %d requests, want %d", err, len(gh.Requests()), n)
	}

	bad := newPoller(t, gh, openStore(t), "tok-wrong", func() time.Time { return now })
	bsrc, _ := bad.IssueSource(IssueQuery{Name: "gh", Owner: "o", Repo: "r"})
	if _, err := bsrc.Scan(ctx); err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "tok-") {
		t.Errorf("refused token: %v", err)
	}
	for _, q := range []IssueQuery{{Owner: "o", Repo: "r"}, {Name: "gh", Owner: "o"}, {Name: "gh", Owner: "o/x", Repo: "r"}, {Name: "gh", Owner: "o", Repo: "r", Labels: []string{"a,b"}}} {
		if _, err := p.IssueSource(q); err == nil {
			t.Errorf("query %+v accepted", q)
		}
	}
}
