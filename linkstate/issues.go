package linkstate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v93/github"

	"github.com/jackin-dev/jackin/taskqueue"
)

// DefaultIssueScanEvery is how often an issue source asks GitHub when
// IssueQuery.Every is 0: an unchanged list is answered 304 (no rate limit
// spent), but the fleet's link polling shares the limit.
const DefaultIssueScanEvery = time.Minute

// maxIssuePages bounds one scan (100 issues a page).
const maxIssuePages = 10

// IssueQuery selects a repository's issues as a task source.
type IssueQuery struct {
	// Name is the source's name; a task's ID is NAME:OWNER/REPO#N.
	Name        string
	Owner, Repo string
	// Labels: an issue must carry all of them (GitHub's labels filter).
	Labels []string
	// Priorities by label: an issue's priority is the highest of its
	// labels' (0 when none is listed).
	Priorities map[string]int
	// Every is the least time between two asks of GitHub; a Scan sooner
	// answers the last scan's tasks (0: DefaultIssueScanEvery).
	Every time.Duration
}

// IssueSource is a task source of the open issues (not pull requests) of
// a repository that carry q.Labels, through the poller's client: the
// fleet's token, conditional requests and its rate limit (a spent limit
// answers the last tasks and says until when). The task's prompt is the
// issue's title, body and URL; its labels the issue's.
func (p *Poller) IssueSource(q IssueQuery) (taskqueue.Source, error) {
	if q.Name == "" || q.Owner == "" || q.Repo == "" || strings.ContainsAny(q.Owner+q.Repo, "/?#% ") {
		return nil, fmt.Errorf("github source %q: needs a name and a repository OWNER/REPO (got %q/%q)", q.Name, q.Owner, q.Repo)
	}
	for _, l := range q.Labels {
		if l == "" || strings.Contains(l, ",") {
			return nil, fmt.Errorf("github source %s: label %q: empty or with a comma", q.Name, l)
		}
	}
	if q.Every <= 0 {
		q.Every = DefaultIssueScanEvery
	}
	return &issueSource{p: p, q: q}, nil
}

type issueSource struct {
	p *Poller
	q IssueQuery

	mu      sync.Mutex
	last    time.Time
	scanned bool
	tasks   []taskqueue.Task
}

func (s *issueSource) Name() string { return s.q.Name }

func (s *issueSource) Scan(ctx context.Context) ([]taskqueue.Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.p.cfg.Now()
	if s.scanned && now.Before(s.last.Add(s.q.Every)) {
		return append([]taskqueue.Task(nil), s.tasks...), nil
	}
	what := fmt.Sprintf("github source %s (%s/%s)", s.q.Name, s.q.Owner, s.q.Repo)
	rate, blocked, err := s.p.blockedUntil(ctx, now)
	if err != nil {
		return nil, err
	}
	if !blocked.IsZero() {
		return append([]taskqueue.Task(nil), s.tasks...), fmt.Errorf("%s: GitHub's rate limit is spent until %s", what, blocked.Format(time.RFC3339))
	}
	if err := s.p.ready(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	s.p.tr.reset()
	var all []*github.Issue
	opts := &github.IssueListByRepoOptions{State: "open", Labels: s.q.Labels, Sort: "created", Direction: "asc", ListOptions: github.ListOptions{PerPage: 100}}
	var listErr error
	for page := 0; page < maxIssuePages; page++ {
		issues, resp, err := s.p.client.Issues.ListByRepo(ctx, s.q.Owner, s.q.Repo, opts)
		if err != nil {
			if until, limited := rateLimited(err, s.p.cfg.Now()); limited {
				blocked = until
				listErr = fmt.Errorf("%s: GitHub's rate limit is spent until %s", what, until.Format(time.RFC3339))
			} else {
				listErr = fmt.Errorf("%s: list issues: %s", what, errorText(err))
			}
			break
		}
		all = append(all, issues...)
		if resp == nil || resp.NextPage == 0 {
			break
		}
		opts.ListOptions.Page = resp.NextPage
	}
	if err := s.p.saveRate(ctx, rate, blocked); err != nil {
		listErr = errors.Join(listErr, err)
	}
	if listErr != nil {
		return append([]taskqueue.Task(nil), s.tasks...), listErr
	}
	var out []taskqueue.Task
	var errs []error
	for _, is := range all {
		if is.IsPullRequest() || is.GetNumber() <= 0 {
			continue
		}
		t, err := s.task(is)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: issue #%d: %w", what, is.GetNumber(), err))
			continue
		}
		out = append(out, t)
	}
	s.tasks, s.last, s.scanned = out, now, true
	return append([]taskqueue.Task(nil), out...), errors.Join(errs...)
}

// task makes an issue a task. An issue is written by anyone who may open
// one: its text is bounded and checked like any source's.
func (s *issueSource) task(is *github.Issue) (taskqueue.Task, error) {
	key := fmt.Sprintf("%s/%s#%d", s.q.Owner, s.q.Repo, is.GetNumber())
	t := taskqueue.Task{ID: s.q.Name + ":" + key, Source: s.q.Name, Title: taskqueue.CutTitle(is.GetTitle())}
	if t.Title == "" {
		t.Title = key
	}
	prio, found := 0, false
	for _, l := range is.Labels {
		name := l.GetName()
		if p, ok := s.q.Priorities[name]; ok && (!found || p > prio) {
			prio, found = p, true
		}
		if len(t.Labels) < taskqueue.MaxLabels && taskqueue.CheckTask("x", "x", []string{name}) == nil {
			t.Labels = append(t.Labels, name)
		}
	}
	t.Priority = prio
	if c := is.GetCreatedAt(); !c.IsZero() {
		t.CreatedAt = c.UTC()
	}
	head := fmt.Sprintf("GitHub issue %s: %s\n%s\n\n", key, t.Title, is.GetHTMLURL())
	body := strings.ToValidUTF8(strings.TrimSpace(is.GetBody()), "?")
	if room := taskqueue.MaxPrompt - len(head) - 64; len(body) > room {
		body = strings.ToValidUTF8(body[:max(room, 0)], "") + "\n\n[the issue's text is cut here]"
	}
	t.Prompt = strings.TrimSpace(head + body)
	if err := taskqueue.CheckTask(strconv.Itoa(is.GetNumber()), t.Prompt, t.Labels); err != nil {
		return t, err
	}
	return t, nil
}
