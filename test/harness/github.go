package harness

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// GitHub is a stand-in of the GitHub REST API endpoints jackin's link
// state polling calls, on loopback, under /api/v3/ as GitHub Enterprise
// serves them (the API base URL is then Server.URL+"/api/v3/" and links
// name http://HOST:PORT/OWNER/REPO/pull/N). It answers in the documented
// response shapes (docs.github.com/rest: issues, pulls, pull reviews,
// check runs for a ref, the combined status of a ref), with an ETag on
// every 200 and 304 Not Modified when If-None-Match matches it; it refuses
// a request without "Authorization: Bearer TOKEN" (401, as GitHub does),
// keeps X-RateLimit-* headers (a 304 spends nothing) and answers 403 with
// X-RateLimit-Remaining: 0 once the limit is spent. Every request is
// logged so tests can count them.
type GitHub struct {
	*httptest.Server
	Token string

	mu        sync.Mutex
	issues    map[string]GitHubIssue // "o/r#n"
	pulls     map[string]GitHubPull
	log       []GitHubRequest
	remaining int
	reset     time.Time
	// retryAfter, when set, answers every request with a secondary rate
	// limit (403, Retry-After).
	retryAfter time.Duration
}

// GitHubPull is a pull request as the stand-in serves it.
type GitHubPull struct {
	State  string // open or closed
	Draft  bool
	Merged bool
	SHA    string
	// CheckRuns are (status, conclusion) pairs: ("completed", "success").
	CheckRuns [][2]string
	// Statuses are commit status states: success, pending, failure, error.
	Statuses []string
	// Reviews are (login, state) pairs: ("ann", "APPROVED").
	Reviews [][2]string
	// Requested are the logins whose review is requested.
	Requested []string
}

// GitHubRequest is one request the stand-in answered.
type GitHubRequest struct {
	Method, Path string
	Query        string // the raw query
	Status       int
	// Authorized is whether it carried the token.
	Authorized  bool
	IfNoneMatch string
}

// StartGitHub starts the stand-in; Close stops it.
func StartGitHub(token string) *GitHub {
	g := &GitHub{Token: token, issues: map[string]GitHubIssue{}, pulls: map[string]GitHubPull{}, remaining: 5000, reset: time.Now().Add(time.Hour)}
	g.Server = httptest.NewServer(http.HandlerFunc(g.serve))
	return g
}

// APIURL is the base URL jackin's github.apiURL names.
func (g *GitHub) APIURL() string { return g.URL + "/api/v3/" }

// Link is the web URL of an issue ("issues") or pull request ("pull").
func (g *GitHub) Link(owner, repo, kind string, n int) string {
	return fmt.Sprintf("%s/%s/%s/%s/%d", g.URL, owner, repo, kind, n)
}

// GitHubIssue is an issue as the stand-in serves it.
type GitHubIssue struct {
	State  string // open or closed
	Title  string // default "issue N"
	Body   string
	Labels []string
	// PullRequest makes it a pull request's issue (the issues list
	// includes those, with a pull_request member, as GitHub does).
	PullRequest bool
	// Created is its creation time (default: 2026-12-01 plus N minutes).
	Created time.Time
}

// SetIssue sets an issue's state.
func (g *GitHub) SetIssue(owner, repo string, n int, state string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := fmt.Sprintf("%s/%s#%d", owner, repo, n)
	is := g.issues[key]
	is.State = state
	g.issues[key] = is
}

// PutIssue sets an issue in full.
func (g *GitHub) PutIssue(owner, repo string, n int, is GitHubIssue) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.issues[fmt.Sprintf("%s/%s#%d", owner, repo, n)] = is
}

// SetPull sets a pull request.
func (g *GitHub) SetPull(owner, repo string, n int, p GitHubPull) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pulls[fmt.Sprintf("%s/%s#%d", owner, repo, n)] = p
}

// SetRateLimit sets the requests left and when the limit resets.
func (g *GitHub) SetRateLimit(remaining int, reset time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.remaining, g.reset = remaining, reset
}

// SetSecondaryLimit makes every request meet a secondary rate limit
// (403 with Retry-After and the documented documentation_url) until it is
// set to 0.
func (g *GitHub) SetSecondaryLimit(retryAfter time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.retryAfter = retryAfter
}

// Requests returns the requests answered so far.
func (g *GitHub) Requests() []GitHubRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]GitHubRequest(nil), g.log...)
}

func (g *GitHub) serve(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	rec := GitHubRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, IfNoneMatch: r.Header.Get("If-None-Match")}
	rec.Authorized = r.Header.Get("Authorization") == "Bearer "+g.Token
	status := g.answer(w, r, rec.Authorized)
	rec.Status = status
	g.log = append(g.log, rec)
}

func (g *GitHub) rateHeaders(w http.ResponseWriter) {
	w.Header().Set("X-RateLimit-Limit", "5000")
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(max(g.remaining, 0)))
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(g.reset.Unix(), 10))
	w.Header().Set("X-RateLimit-Resource", "core")
}

func ghError(w http.ResponseWriter, status int, msg string) int {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"})
	return status
}

// answer serves one request with g.mu held; it returns the status.
func (g *GitHub) answer(w http.ResponseWriter, r *http.Request, authorized bool) int {
	if !authorized {
		return ghError(w, http.StatusUnauthorized, "Bad credentials")
	}
	g.rateHeaders(w)
	if g.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(g.retryAfter/time.Second)))
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": "You have exceeded a secondary rate limit.",
			"documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"})
		return http.StatusForbidden
	}
	if g.remaining <= 0 && time.Now().Before(g.reset) {
		return ghError(w, http.StatusForbidden, "API rate limit exceeded for user.")
	}
	if r.Method != http.MethodGet {
		return ghError(w, http.StatusNotFound, "Not Found")
	}
	body, ok := g.document(strings.TrimPrefix(r.URL.Path, "/api/v3"))
	if !ok {
		body, ok = g.issueList(w, r)
	}
	if !ok {
		g.remaining--
		g.rateHeaders(w)
		return ghError(w, http.StatusNotFound, "Not Found")
	}
	b, _ := json.Marshal(body)
	sum := sha256.Sum256(b)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == etag || inm == "W/"+etag) {
		w.WriteHeader(http.StatusNotModified) // no rate limit spent
		return http.StatusNotModified
	}
	g.remaining--
	g.rateHeaders(w)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return http.StatusOK
}

// document is the JSON document at an API path, as GitHub shapes it.
func (g *GitHub) document(path string) (any, bool) {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	if len(seg) < 5 || seg[0] != "repos" {
		return nil, false
	}
	owner, repo := seg[1], seg[2]
	switch {
	case len(seg) == 5 && seg[3] == "issues":
		n, _ := strconv.Atoi(seg[4])
		is, ok := g.issues[fmt.Sprintf("%s/%s#%d", owner, repo, n)]
		if !ok {
			return nil, false
		}
		return g.issueDoc(owner, repo, n, is), true
	case seg[3] == "pulls" && (len(seg) == 5 || (len(seg) == 6 && seg[5] == "reviews")):
		n, _ := strconv.Atoi(seg[4])
		p, ok := g.pulls[fmt.Sprintf("%s/%s#%d", owner, repo, n)]
		if !ok {
			return nil, false
		}
		if len(seg) == 6 {
			reviews := []any{}
			for i, rv := range p.Reviews {
				reviews = append(reviews, map[string]any{"id": i + 1, "user": map[string]any{"login": rv[0]}, "state": rv[1], "commit_id": p.SHA})
			}
			return reviews, true
		}
		var mergedAt any
		if p.Merged {
			mergedAt = "2026-12-01T10:00:00Z"
		}
		requested := []any{}
		for _, l := range p.Requested {
			requested = append(requested, map[string]any{"login": l})
		}
		return map[string]any{"number": n, "state": p.State, "draft": p.Draft, "merged": p.Merged, "merged_at": mergedAt,
			"html_url": g.Link(owner, repo, "pull", n), "head": map[string]any{"sha": p.SHA, "ref": "feature"},
			"requested_reviewers": requested, "requested_teams": []any{}}, true
	case len(seg) == 6 && seg[3] == "commits" && (seg[5] == "check-runs" || seg[5] == "status"):
		var p *GitHubPull
		for _, q := range g.pulls {
			if q.SHA == seg[4] {
				p = &q
				break
			}
		}
		if p == nil {
			return nil, false
		}
		if seg[5] == "check-runs" {
			runs := []any{}
			for i, c := range p.CheckRuns {
				var concl any
				if c[1] != "" {
					concl = c[1]
				}
				runs = append(runs, map[string]any{"id": i + 1, "name": fmt.Sprintf("check-%d", i+1), "head_sha": p.SHA, "status": c[0], "conclusion": concl})
			}
			return map[string]any{"total_count": len(runs), "check_runs": runs}, true
		}
		statuses := []any{}
		state := "pending" // GitHub's combined state of no statuses
		worst := 0
		rank := map[string]int{"success": 1, "pending": 2, "failure": 3, "error": 3}
		for i, s := range p.Statuses {
			statuses = append(statuses, map[string]any{"id": i + 1, "state": s, "context": fmt.Sprintf("ci/%d", i+1)})
			if rank[s] > worst {
				worst, state = rank[s], s
			}
		}
		return map[string]any{"state": state, "sha": p.SHA, "total_count": len(statuses), "statuses": statuses}, true
	}
	return nil, false
}

// issueDoc is an issue as GitHub's REST API shapes it.
func (g *GitHub) issueDoc(owner, repo string, n int, is GitHubIssue) map[string]any {
	title := is.Title
	if title == "" {
		title = "issue " + strconv.Itoa(n)
	}
	created := is.Created
	if created.IsZero() {
		created = time.Date(2026, 12, 1, 0, n, 0, 0, time.UTC)
	}
	labels := []any{}
	for i, l := range is.Labels {
		labels = append(labels, map[string]any{"id": i + 1, "name": l, "color": "ededed"})
	}
	doc := map[string]any{"number": n, "state": is.State, "title": title, "body": is.Body, "labels": labels,
		"html_url": g.Link(owner, repo, "issues", n), "user": map[string]any{"login": "ann"},
		"created_at": created.UTC().Format(time.RFC3339), "updated_at": created.UTC().Format(time.RFC3339)}
	if is.PullRequest {
		doc["html_url"] = g.Link(owner, repo, "pull", n)
		doc["pull_request"] = map[string]any{"html_url": g.Link(owner, repo, "pull", n)}
	}
	return doc
}

// issueList answers GET /repos/{owner}/{repo}/issues as GitHub documents
// it (docs.github.com/rest/issues/issues#list-repository-issues): state
// (open, the default; closed; all), labels (comma-separated, all must be
// on the issue), sort=created with direction (desc, the default, or asc),
// per_page (default 30, at most 100) and page, with a Link header naming
// the next and last pages. Pull requests are included, as on GitHub.
func (g *GitHub) issueList(w http.ResponseWriter, r *http.Request) (any, bool) {
	seg := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/api/v3"), "/"), "/")
	if len(seg) != 4 || seg[0] != "repos" || seg[3] != "issues" {
		return nil, false
	}
	owner, repo := seg[1], seg[2]
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	var want []string
	if l := q.Get("labels"); l != "" {
		want = strings.Split(l, ",")
	}
	type numbered struct {
		n  int
		is GitHubIssue
	}
	var list []numbered
	prefix := owner + "/" + repo + "#"
	for key, is := range g.issues {
		num, ok := strings.CutPrefix(key, prefix)
		if !ok || (state != "all" && is.State != state) {
			continue
		}
		has := map[string]bool{}
		for _, l := range is.Labels {
			has[l] = true
		}
		all := true
		for _, l := range want {
			all = all && has[strings.TrimSpace(l)]
		}
		if !all {
			continue
		}
		n, _ := strconv.Atoi(num)
		list = append(list, numbered{n, is})
	}
	// Creation order (the default sort), by number for equal times.
	sort.Slice(list, func(i, j int) bool { return list[i].n < list[j].n })
	if q.Get("direction") != "asc" {
		sort.SliceStable(list, func(i, j int) bool { return list[i].n > list[j].n })
	}
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 30
	}
	per = min(per, 100)
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	last := max((len(list)+per-1)/per, 1)
	docs := []any{}
	for i := (page - 1) * per; i < min(page*per, len(list)); i++ {
		docs = append(docs, g.issueDoc(owner, repo, list[i].n, list[i].is))
	}
	link := func(p int) string {
		u := *r.URL
		v := u.Query()
		v.Set("page", strconv.Itoa(p))
		u.RawQuery = v.Encode()
		return fmt.Sprintf("<%s%s>", g.URL, u.RequestURI())
	}
	if page < last {
		w.Header().Set("Link", link(page+1)+`; rel="next", `+link(last)+`; rel="last"`)
	}
	return docs, true
}
