// Package linkstate asks GitHub (github.com or a GitHub Enterprise server,
// by its API base URL) the state of the issues and pull requests an
// instance's work links name: an issue open or closed; a pull request
// draft, open, merged or closed, its checks (check runs and commit
// statuses of its head) and its review. It asks only for links that are
// due (worklinks' refresh schedule), with conditional requests (a kept
// ETag: an unchanged item is answered 304, which costs no rate limit) and
// stops at GitHub's rate limit until it resets. The token is given by the
// caller (read on the host) and only ever sent to the API's origin.
package linkstate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v93/github"

	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/worklinks"
)

// Store keeps link states, the responses conditional requests need and
// the rate limit, per fleet (package store implements it).
type Store interface {
	LinkStates(ctx context.Context, fleet string) (map[string]worklinks.State, error)
	PutLinkState(ctx context.Context, fleet, url string, st worklinks.State) error
	GitHubCached(ctx context.Context, fleet, key string) (etag string, body []byte, ok bool, err error)
	PutGitHubCached(ctx context.Context, fleet, key, etag string, body []byte) error
	TouchGitHubCached(ctx context.Context, fleet, key string) error
	PruneGitHub(ctx context.Context, fleet string, before time.Time) error
	GitHubRateOf(ctx context.Context, fleet string) (store.GitHubRate, bool, error)
	PutGitHubRate(ctx context.Context, fleet string, r store.GitHubRate) error
}

// DefaultAPIURL is github.com's REST API.
const DefaultAPIURL = "https://api.github.com/"

// Config configures a Poller.
type Config struct {
	// Fleet names whose cache and rate limit are used.
	Fleet string
	// APIURL is the REST API's base URL: "" for github.com, or a GitHub
	// Enterprise server's (https://HOST/api/v3/).
	APIURL string
	// Token authenticates the requests ("" asks anonymously).
	Token string
	// TokenFunc, when set, reads the token instead, once, when a link is
	// first due (a command such as gh auth token runs only then).
	TokenFunc func(ctx context.Context) (string, error)
	Store     Store
	// Transport is the HTTP transport (nil: http.DefaultTransport).
	Transport http.RoundTripper
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Poller refreshes link states. Safe for use by one goroutine at a time.
type Poller struct {
	cfg      Config
	host     string
	client   *github.Client
	tr       *etagTransport
	tokenErr error
}

// WebHost is the host whose issue and pull request links the API at
// apiURL answers for: github.com for api.github.com, otherwise the API's
// own host (GitHub Enterprise serves both on one host).
func WebHost(apiURL string) (string, error) {
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("apiURL %q: not an http(s) URL with a host", apiURL)
	}
	if strings.EqualFold(u.Hostname(), "api.github.com") {
		return "github.com", nil
	}
	return strings.TrimPrefix(u.Host, "api."), nil
}

// requestTimeout bounds one request.
const requestTimeout = 20 * time.Second

// New makes a Poller.
func New(cfg Config) (*Poller, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	host, err := WebHost(cfg.APIURL)
	if err != nil {
		return nil, err
	}
	base := cfg.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	p := &Poller{cfg: cfg, host: host, tr: &etagTransport{base: base, st: cfg.Store, fleet: cfg.Fleet}}
	if cfg.TokenFunc == nil {
		if err := p.connect(cfg.Token); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// connect makes the GitHub client with token.
func (p *Poller) connect(token string) error {
	opts := []github.ClientOptionsFunc{
		github.WithTransport(p.tr),
		github.WithTimeout(requestTimeout),
		github.WithUserAgent("jackin"),
	}
	if api := p.cfg.APIURL; api != "" {
		if !strings.HasSuffix(api, "/") {
			api += "/"
		}
		opts = append(opts, github.WithURLs(&api, &api))
	}
	if token != "" {
		// go-github sends it to the API's origin only.
		opts = append(opts, github.WithAuthToken(token))
	}
	c, err := github.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("GitHub client: %w", err)
	}
	p.client = c
	return nil
}

// ready makes the client when the token is read lazily.
func (p *Poller) ready(ctx context.Context) error {
	if p.client != nil || p.tokenErr != nil {
		return p.tokenErr
	}
	tok, err := p.cfg.TokenFunc(ctx)
	if err != nil {
		p.tokenErr = fmt.Errorf("read the GitHub token: %w", err)
		return p.tokenErr
	}
	if err := p.connect(tok); err != nil {
		p.tokenErr = err
	}
	return p.tokenErr
}

// Host is the web host whose links the poller answers for.
func (p *Poller) Host() string { return p.host }

// KeepUnused is how long a kept response or a link state no refresh used
// stays in the store.
const KeepUnused = 30 * 24 * time.Hour

// Stats says what a Refresh cost.
type Stats struct {
	// Asked counts the links refreshed; Requests the HTTP requests sent,
	// NotModified those answered 304 (no rate limit spent).
	Asked, Requests, NotModified int
	// RateLimited is when GitHub's rate limit stopped the refresh (zero:
	// it did not); the links left keep their last state until then.
	RateLimited time.Time
}

// Refresh returns the states of links (issue and pull request URLs; any
// other link, or one on another host, is left out), asking GitHub for
// those that are due, or for all of them with force, and keeping what it
// learns in the store. A failure to reach GitHub is a link's state (its
// Error, retried with backoff); only the store's failures are returned.
func (p *Poller) Refresh(ctx context.Context, links []string, force bool) (map[string]worklinks.State, Stats, error) {
	var stats Stats
	if err := p.cfg.Store.PruneGitHub(ctx, p.cfg.Fleet, p.cfg.Now().Add(-KeepUnused)); err != nil {
		return nil, stats, err
	}
	states, err := p.cfg.Store.LinkStates(ctx, p.cfg.Fleet)
	if err != nil {
		return nil, stats, err
	}
	out := map[string]worklinks.State{}
	now := p.cfg.Now()
	rate, blocked, err := p.blockedUntil(ctx, now)
	if err != nil {
		return nil, stats, err
	}
	p.tr.reset()
	var storeErr error
	for _, l := range links {
		ref, ok := worklinks.ParseGitHub(l, p.host)
		if !ok {
			continue
		}
		prev, known := states[l]
		if !known {
			prev = worklinks.State{Kind: ref.Kind}
		}
		if !blocked.IsZero() || (!force && known && !prev.Due(now)) {
			if known { // a link never asked has no state to show yet
				out[l] = prev
			}
			continue
		}
		stats.Asked++
		err := p.ready(ctx)
		var st worklinks.State
		if err == nil {
			st, err = p.ask(ctx, ref)
		}
		at := p.cfg.Now()
		if until, limited := rateLimited(err, at); limited {
			blocked = until
			if known {
				out[l] = prev
			}
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			st = prev.Failed(errors.New(errorText(err)), at)
		} else {
			st = st.Next(at)
		}
		out[l] = st
		if err := p.cfg.Store.PutLinkState(ctx, p.cfg.Fleet, l, st); err != nil {
			storeErr = errors.Join(storeErr, err)
		}
	}
	stats.Requests, stats.NotModified = p.tr.counts()
	stats.RateLimited = blocked
	if err := p.saveRate(ctx, rate, blocked); err != nil {
		storeErr = errors.Join(storeErr, err)
	}
	return out, stats, storeErr
}

// blockedUntil reads the fleet's rate limit as last recorded and until
// when requests must wait (zero: they may go now).
func (p *Poller) blockedUntil(ctx context.Context, now time.Time) (store.GitHubRate, time.Time, error) {
	rate, _, err := p.cfg.Store.GitHubRateOf(ctx, p.cfg.Fleet)
	if err != nil {
		return rate, time.Time{}, err
	}
	blocked := rate.BlockedUntil
	if blocked.IsZero() && rate.Remaining <= 0 && !rate.At.IsZero() && rate.Reset.After(now) {
		blocked = rate.Reset
	}
	if !blocked.After(now) {
		blocked = time.Time{}
	}
	return rate, blocked, nil
}

// saveRate records the rate limit the last requests reported (since
// tr.reset) and blocked, when either changed what rate, the recorded one,
// says.
func (p *Poller) saveRate(ctx context.Context, rate store.GitHubRate, blocked time.Time) error {
	r, seen := p.tr.lastRate()
	if !seen && blocked.Equal(rate.BlockedUntil) {
		return nil
	}
	if !seen {
		r = rate
	}
	r.BlockedUntil = blocked
	r.At = p.cfg.Now()
	return p.cfg.Store.PutGitHubRate(ctx, p.cfg.Fleet, r)
}

// rateLimited reports whether err is GitHub's rate limit (primary, or a
// secondary one) and until when requests must wait.
func rateLimited(err error, now time.Time) (time.Time, bool) {
	var rl *github.RateLimitError
	if errors.As(err, &rl) {
		if t := rl.Rate.Reset.Time; t.After(now) {
			return t, true
		}
		return now.Add(time.Minute), true
	}
	var ab *github.AbuseRateLimitError
	if errors.As(err, &ab) {
		if ab.RetryAfter != nil && *ab.RetryAfter > 0 {
			return now.Add(*ab.RetryAfter), true
		}
		return now.Add(time.Minute), true
	}
	return time.Time{}, false
}

// maxErrorText bounds an error kept with a link's state.
const maxErrorText = 200

// errorText is a short, one-line account of a failed request (never a
// header: the token is not in it).
func errorText(err error) string {
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		s := er.Response.Status
		if er.Message != "" {
			s += ": " + er.Message
		}
		err = errors.New(s)
	}
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > maxErrorText {
		s = s[:maxErrorText] + "..."
	}
	return s
}

// ask reads one issue or pull request.
func (p *Poller) ask(ctx context.Context, ref worklinks.GitHubRef) (worklinks.State, error) {
	st := worklinks.State{Kind: ref.Kind}
	if ref.Kind == worklinks.KindIssue {
		is, _, err := p.client.Issues.Get(ctx, ref.Owner, ref.Repo, ref.Number)
		if err != nil {
			return st, err
		}
		st.State = worklinks.StateOpen
		if is.GetState() == "closed" {
			st.State = worklinks.StateClosed
		}
		return st, nil
	}
	pr, _, err := p.client.PullRequests.Get(ctx, ref.Owner, ref.Repo, ref.Number)
	if err != nil {
		return st, err
	}
	switch {
	case pr.GetMerged() || pr.MergedAt != nil:
		st.State = worklinks.StateMerged
	case pr.GetState() == "closed":
		st.State = worklinks.StateClosed
	case pr.GetDraft():
		st.State = worklinks.StateDraft
	default:
		st.State = worklinks.StateOpen
	}
	if st.State == worklinks.StateMerged || st.State == worklinks.StateClosed {
		return st, nil // nothing more is asked of a finished pull request
	}
	if sha := pr.GetHead().GetSHA(); sha != "" {
		if st.Checks, err = p.checks(ctx, ref, sha); err != nil {
			return st, err
		}
	} else {
		st.Checks = worklinks.ChecksNone
	}
	reviews, _, err := p.client.PullRequests.ListReviews(ctx, ref.Owner, ref.Repo, ref.Number, &github.ListOptions{PerPage: 100})
	if err != nil {
		return st, err
	}
	st.Review = ReviewState(reviews, len(pr.RequestedReviewers)+len(pr.RequestedTeams))
	return st, nil
}

// checks combines the head's check runs and commit statuses.
func (p *Poller) checks(ctx context.Context, ref worklinks.GitHubRef, sha string) (string, error) {
	runs, _, err := p.client.Checks.ListCheckRunsForRef(ctx, ref.Owner, ref.Repo, sha, &github.ListCheckRunsOptions{ListOptions: github.ListOptions{PerPage: 100}})
	if err != nil {
		return "", err
	}
	combined, _, err := p.client.Repositories.GetCombinedStatus(ctx, ref.Owner, ref.Repo, sha, &github.ListOptions{PerPage: 100})
	if err != nil {
		return "", err
	}
	var rs []*github.CheckRun
	if runs != nil {
		rs = runs.CheckRuns
	}
	return ChecksState(rs, combined), nil
}

// ChecksState is a head's checks in one word: failing when a check run or
// status failed, else pending when one has not finished, else passing
// when there is any, else none.
func ChecksState(runs []*github.CheckRun, combined *github.CombinedStatus) string {
	failing, pending, any := false, false, false
	for _, r := range runs {
		any = true
		if r.GetStatus() != "completed" {
			pending = true
			continue
		}
		switch r.GetConclusion() {
		case "failure", "timed_out", "cancelled", "action_required", "startup_failure":
			failing = true
		}
	}
	if combined != nil && (combined.GetTotalCount() > 0 || len(combined.Statuses) > 0) {
		any = true
		switch combined.GetState() {
		case "failure", "error":
			failing = true
		case "pending":
			pending = true
		}
	}
	switch {
	case failing:
		return worklinks.ChecksFailing
	case pending:
		return worklinks.ChecksPending
	case any:
		return worklinks.ChecksPassing
	}
	return worklinks.ChecksNone
}

// ReviewState is a pull request's review: each reviewer's latest
// deciding review counts (a comment decides nothing); any change request
// wins, then any approval; with none, pending while a review is requested,
// else none.
func ReviewState(reviews []*github.PullRequestReview, requested int) string {
	latest := map[string]string{}
	for _, r := range reviews {
		switch s := r.GetState(); s {
		case "APPROVED", "CHANGES_REQUESTED", "DISMISSED":
			latest[r.GetUser().GetLogin()] = s
		}
	}
	approved := false
	for _, s := range latest {
		switch s {
		case "CHANGES_REQUESTED":
			return worklinks.ReviewChangesRequested
		case "APPROVED":
			approved = true
		}
	}
	switch {
	case approved:
		return worklinks.ReviewApproved
	case requested > 0:
		return worklinks.ReviewPending
	}
	return worklinks.ReviewNone
}

// maxBody bounds a response read for the cache.
const maxBody = 4 << 20

// etagTransport makes GET requests conditional on the ETag of the
// response kept in the store and answers a 304 with that response, so
// go-github decodes it as if fresh; it notes the rate limit headers.
type etagTransport struct {
	base  http.RoundTripper
	st    Store
	fleet string

	mu          sync.Mutex
	requests    int
	notModified int
	rate        store.GitHubRate
	rateSeen    bool
}

func (t *etagTransport) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.requests, t.notModified, t.rateSeen = 0, 0, false
}

func (t *etagTransport) counts() (int, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.requests, t.notModified
}

func (t *etagTransport) lastRate() (store.GitHubRate, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rate, t.rateSeen
}

func (t *etagTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	key := req.URL.RequestURI()
	var cached []byte
	if req.Method == http.MethodGet {
		etag, body, ok, err := t.st.GitHubCached(ctx, t.fleet, key)
		if err != nil {
			return nil, err
		}
		if ok {
			req = req.Clone(ctx)
			req.Header.Set("If-None-Match", etag)
			cached = body
		}
	}
	resp, err := t.base.RoundTrip(req)
	t.mu.Lock()
	t.requests++
	t.mu.Unlock()
	if err != nil {
		return nil, err
	}
	t.noteRate(resp.Header)
	if req.Method != http.MethodGet {
		return resp, nil
	}
	if resp.StatusCode == http.StatusNotModified && cached != nil {
		t.mu.Lock()
		t.notModified++
		t.mu.Unlock()
		if err := t.st.TouchGitHubCached(ctx, t.fleet, key); err != nil {
			resp.Body.Close()
			return nil, err
		}
		resp.Body.Close()
		resp.StatusCode, resp.Status = http.StatusOK, "200 OK (not modified)"
		resp.Header.Set("Content-Type", "application/json")
		resp.Body = io.NopCloser(bytes.NewReader(cached))
		resp.ContentLength = int64(len(cached))
		return resp, nil
	}
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || etag == "" {
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if len(body) <= maxBody {
		if err := t.st.PutGitHubCached(ctx, t.fleet, key, etag, body); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// noteRate keeps the rate limit headers of a response.
func (t *etagTransport) noteRate(h http.Header) {
	rem, err1 := strconv.Atoi(h.Get("X-RateLimit-Remaining"))
	reset, err2 := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if err1 != nil || err2 != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rate = store.GitHubRate{Remaining: rem, Reset: time.Unix(reset, 0).UTC()}
	t.rateSeen = true
}
