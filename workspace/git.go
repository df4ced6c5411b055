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
	full := args
	if dir != "" {
		full = append([]string{"-C", dir}, args...)
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
