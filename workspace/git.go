// Package workspace makes and removes the host-side isolated checkouts of
// worktree and clone mounts: git worktrees and local clones under the state
// dir, on a scratch branch per instance. It runs the host's git binary
// (no shell) and knows nothing of engines or the store.
package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// GitTimeout bounds one git call. A worktree or clone of a large repository
// can take a while; a hung git (a credential prompt, a lock) must not hang
// apply forever.
var GitTimeout = 5 * time.Minute

// ErrNoGit reports a host without a git binary.
var ErrNoGit = errors.New("worktree and clone mounts need git on the host, and no git binary is on PATH")

// gitError is a failed git call: the arguments, git's exit status and its stderr.
type gitError struct {
	args   []string
	err    error
	stderr string
}

func (e *gitError) Error() string {
	msg := "git " + strings.Join(e.args, " ") + ": " + e.err.Error()
	if s := strings.TrimSpace(e.stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

func (e *gitError) Unwrap() error { return e.err }

// git runs git with args in dir (no shell) and returns its trimmed stdout.
// Prompts are disabled and the locale fixed, so output can be parsed and a
// call never waits for a person.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return "", ErrNoGit
	}
	ctx, cancel := context.WithTimeout(ctx, GitTimeout)
	defer cancel()
	// Hooks and an fsmonitor command in a repository's config would run on
	// the host with the operator's rights: jackin's own calls never run them.
	full := append([]string{"-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null"}, args...)
	if dir != "" {
		full = append([]string{"-C", dir}, full...)
	}
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C", "GIT_OPTIONAL_LOCKS=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %s: %w", GitTimeout, err)
		}
		return "", &gitError{args: full, err: err, stderr: stderr.String()}
	}
	return strings.TrimRight(stdout.String(), "\n"), nil
}

// gitUntrusted runs git in a repository whose config someone else may have
// written (an agent's checkout): besides hooks and fsmonitor, the filter
// drivers its config names are emptied, since git status runs a clean
// filter's command. Reading the config runs nothing.
func gitUntrusted(ctx context.Context, dir string, args ...string) (string, error) {
	out, err := git(ctx, dir, "config", "--get-regexp", `^filter\..*\.(clean|smudge|process)$`)
	var gerr *gitError
	if err != nil && !(errors.As(err, &gerr) && strings.Contains(gerr.err.Error(), "exit status 1")) {
		return "", err // exit 1 only says there is no such key
	}
	var disarm []string
	seen := map[string]bool{}
	for _, l := range lines(out) {
		key, _, _ := strings.Cut(l, " ")
		name := strings.TrimPrefix(key, "filter.")
		name = name[:strings.LastIndex(name, ".")]
		if seen[name] {
			continue
		}
		seen[name] = true
		for _, k := range []string{"clean", "smudge", "process"} {
			disarm = append(disarm, "-c", "filter."+name+"."+k+"=")
		}
		disarm = append(disarm, "-c", "filter."+name+".required=false")
	}
	return git(ctx, dir, append(disarm, args...)...)
}

// lines splits git output into non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}
