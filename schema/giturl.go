package schema

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// GitRemote is a checkout's git URL, as ParseGitURL reads it.
type GitRemote struct {
	// Scheme is https, http, ssh or git ("ssh" for user@host:path).
	Scheme string
	Host   string
	// Port is the port the clone connects to (the scheme's default when
	// the URL names none).
	Port int
}

// ParseGitURL checks that src names a remote git repository a Pod can
// clone: https://, http://, ssh:// or git://, or the scp-like
// user@host:path. Credentials in the URL are refused: the URL goes into
// the Pod spec, the plan and the contract.
func ParseGitURL(src string) (GitRemote, error) {
	if host, ok := scpLike(src); ok {
		return GitRemote{Scheme: "ssh", Host: host, Port: 22}, nil
	}
	scheme, _, ok := strings.Cut(src, "://")
	if !ok {
		return GitRemote{}, fmt.Errorf("%q is not a git URL (https://, http://, ssh://, git:// or user@host:path)", redactGitURL(src))
	}
	defaults := map[string]int{"https": 443, "http": 80, "ssh": 22, "git": 9418}
	if _, known := defaults[scheme]; !known {
		return GitRemote{}, fmt.Errorf("%q: a checkout clones over https, http, ssh or git, not %s", redactGitURL(src), scheme)
	}
	u, err := url.Parse(src)
	if err != nil || u.Hostname() == "" {
		return GitRemote{}, fmt.Errorf("%q is not a git URL: it names no host", redactGitURL(src))
	}
	if _, hasPassword := u.User.Password(); hasPassword || (u.User != nil && scheme != "ssh") {
		u.User = nil
		return GitRemote{}, fmt.Errorf("a %s URL with credentials in it: a checkout's URL is stored in the Pod spec, the plan and the contract; write it without them (%s)", scheme, u.Redacted())
	}
	r := GitRemote{Scheme: scheme, Host: u.Hostname(), Port: defaults[scheme]}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return GitRemote{}, fmt.Errorf("%q: port %q is not a port number", redactGitURL(src), p)
		}
		r.Port = n
	}
	return r, nil
}

// redactGitURL hides what stands before an '@' in src's host part (a
// user, a token) for an error message: an src that is refused may still
// hold a secret.
func redactGitURL(src string) string {
	prefix, rest := "", src
	if i := strings.Index(src, "://"); i >= 0 {
		prefix, rest = src[:i+3], src[i+3:]
	}
	authority := rest
	if i := strings.Index(rest, "/"); i >= 0 {
		authority = rest[:i]
	}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		return prefix + "...@" + rest[at+1:]
	}
	return src
}

// scpLike recognises git's user@host:path form (no scheme, a colon before
// any slash) and returns its host.
func scpLike(src string) (string, bool) {
	if strings.Contains(src, "://") {
		return "", false
	}
	before, after, ok := strings.Cut(src, ":")
	if !ok || after == "" || strings.Contains(before, "/") {
		return "", false
	}
	_, host, hasUser := strings.Cut(before, "@")
	if !hasUser || host == "" {
		return "", false
	}
	return host, true
}
