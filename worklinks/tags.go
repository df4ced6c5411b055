// Package worklinks turns what agents say into operator state: the tag
// protocol (<jackin:repo>, <jackin:issue>, <jackin:pr>, and multicode's
// <multicode:...> spelling) found in the assistant's own text, the links
// it yields per instance, the state of GitHub issues and pull requests
// those links name, and when each state is due to be asked again. It is
// pure: the supervisor feeds it text, the host stores what it returns, and
// package linkstate asks GitHub.
package worklinks

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Kind is what a link names.
type Kind string

// Link kinds, as the tags name them.
const (
	KindRepo  Kind = "repo"
	KindIssue Kind = "issue"
	KindPR    Kind = "pr"
)

// Kinds lists every kind, in display order.
var Kinds = []Kind{KindRepo, KindIssue, KindPR}

// Link is one thing an instance's agent said it works on.
type Link struct {
	Kind Kind   `json:"kind"`
	URL  string `json:"url"`
	// FirstSeen and LastSeen are when the agent first and last wrote it
	// (the transcript's own time where it records one).
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
}

// Tag is one complete tag found in text.
type Tag struct {
	Kind  Kind
	Value string
}

// MaxValue bounds a tag's value: a longer one is not a link.
const MaxValue = 2048

// maxCarry is how much unfinished text an Extractor keeps between writes:
// enough for one whole tag (the longest open and close tag and a value).
const maxCarry = MaxValue + 64

// tagRE matches one tag; the close tag must repeat the open one (checked
// after the match: Go's regexp has no back-references).
var tagRE = regexp.MustCompile(`<(jackin|multicode):(repo|issue|pr)>([^<]*)</(jackin|multicode):(repo|issue|pr)>`)

// Extractor finds tags in a stream of text that arrives in pieces (a
// transcript's text blocks, a terminal's output chunks): a tag split
// between two writes is found once its end arrives. Reset drops an
// unfinished tag (the stream moved on to text that is not the agent's:
// the operator's prompt, a tool's output).
type Extractor struct {
	carry []byte
}

// Write adds text and returns the tags it completed, with values cleaned
// (Normalize); a tag whose value is not a link is dropped.
func (e *Extractor) Write(p []byte) []Tag {
	buf := append(e.carry, p...)
	var out []Tag
	last := 0
	for _, m := range tagRE.FindAllSubmatchIndex(buf, -1) {
		last = m[1]
		if string(buf[m[2]:m[3]]) != string(buf[m[8]:m[9]]) || string(buf[m[4]:m[5]]) != string(buf[m[10]:m[11]]) {
			continue // <jackin:pr>...</jackin:issue>: not a tag
		}
		kind := Kind(buf[m[4]:m[5]])
		v, err := Normalize(kind, string(buf[m[6]:m[7]]))
		if err != nil {
			continue
		}
		out = append(out, Tag{Kind: kind, Value: v})
	}
	rest := buf[last:]
	// Keep only what may begin a tag: from its last '<' on, if that is
	// close enough to the end to hold one.
	if i := lastOpen(rest); i >= 0 {
		rest = rest[i:]
	} else {
		rest = nil
	}
	if len(rest) > maxCarry {
		rest = rest[len(rest)-maxCarry:]
	}
	e.carry = append(e.carry[:0:0], rest...)
	return out
}

// lastOpen is the index in b of the start of a tag that has not ended:
// its last open tag (which keeps a close tag begun after it), else a
// prefix of an open tag at b's very end ("<jack"); -1 when neither.
func lastOpen(b []byte) int {
	s := string(b)
	best := -1
	for _, open := range []string{"<jackin:", "<multicode:"} {
		if i := strings.LastIndex(s, open); i > best {
			best = i
		}
	}
	if best >= 0 {
		return best
	}
	for _, open := range []string{"<jackin:", "<multicode:"} {
		for n := len(open) - 1; n >= 1; n-- {
			if strings.HasSuffix(s, open[:n]) {
				if i := len(s) - n; best < 0 || i < best {
					best = i
				}
				break
			}
		}
	}
	return best
}

// Reset drops an unfinished tag.
func (e *Extractor) Reset() { e.carry = e.carry[:0] }

// Extract returns the tags in one complete text.
func Extract(text string) []Tag {
	var e Extractor
	return e.Write([]byte(text))
}

// safeChar reports the characters a link may hold: those of URLs and
// paths, without any a shell or a terminal gives a meaning to ($ ` ; & |
// < > ( ) ' " \ space, control characters), so a value an agent wrote is
// inert wherever an operator's handler puts it.
func safeChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("-._~:/?#@%+=,", r)
}

// Normalize checks a tag's value and returns it cleaned: whitespace around
// it trimmed. issue and pr must be http(s) URLs with a host; repo an
// http(s) or ssh URL, git@host:path, or an absolute path (or ~/...). A
// value with a character outside the safe set, a placeholder
// (PATH_OR_URL, URL) or a GitHub link whose number is not a number is
// refused.
func Normalize(kind Kind, v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > MaxValue {
		return "", fmt.Errorf("empty or longer than %d", MaxValue)
	}
	for _, r := range v {
		if !safeChar(r) {
			return "", fmt.Errorf("character %q is not allowed in a link", r)
		}
	}
	switch kind {
	case KindIssue, KindPR:
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return "", fmt.Errorf("%s: not an http(s) URL", v)
		}
		if seg := strings.Split(strings.Trim(u.Path, "/"), "/"); len(seg) >= 4 && (seg[2] == "pull" || seg[2] == "issues" || seg[2] == "pulls") {
			if _, err := strconv.Atoi(seg[3]); err != nil {
				return "", fmt.Errorf("%s: %q is not a number", v, seg[3])
			}
		}
		return v, nil
	case KindRepo:
		switch {
		case strings.HasPrefix(v, "/"), strings.HasPrefix(v, "~/"):
			return v, nil
		case strings.HasPrefix(v, "git@"):
			if !strings.Contains(v, ":") {
				return "", fmt.Errorf("%s: not host:path", v)
			}
			return v, nil
		}
		u, err := url.Parse(v)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "ssh" && u.Scheme != "git") {
			return "", fmt.Errorf("%s: neither an absolute path nor a URL", v)
		}
		if u.User != nil && u.Scheme != "ssh" {
			return "", fmt.Errorf("%s: a URL with credentials", v)
		}
		if _, hasPass := u.User.Password(); hasPass {
			return "", fmt.Errorf("%s: a URL with a password", v)
		}
		return v, nil
	}
	return "", fmt.Errorf("unknown kind %q", kind)
}

// GitHubRef is an issue or pull request on a GitHub host.
type GitHubRef struct {
	Kind   Kind // KindIssue or KindPR
	Owner  string
	Repo   string
	Number int
}

var ghName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)

// ParseGitHub reads an issue or pull request link on host (github.com, or
// a GitHub Enterprise host): https://HOST/OWNER/REPO/issues/N or
// /pull/N (anything after N, a query or a fragment, is ignored). The kind
// comes from the path, whatever tag named it.
func ParseGitHub(link, host string) (GitHubRef, bool) {
	u, err := url.Parse(link)
	if err != nil || !strings.EqualFold(u.Host, host) {
		return GitHubRef{}, false
	}
	seg := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(seg) < 4 || !ghName.MatchString(seg[0]) || !ghName.MatchString(seg[1]) {
		return GitHubRef{}, false
	}
	n, err := strconv.Atoi(seg[3])
	if err != nil || n <= 0 {
		return GitHubRef{}, false
	}
	r := GitHubRef{Owner: seg[0], Repo: seg[1], Number: n}
	switch seg[2] {
	case "issues":
		r.Kind = KindIssue
	case "pull", "pulls":
		r.Kind = KindPR
	default:
		return GitHubRef{}, false
	}
	return r, true
}

// String is OWNER/REPO#N.
func (r GitHubRef) String() string { return fmt.Sprintf("%s/%s#%d", r.Owner, r.Repo, r.Number) }
