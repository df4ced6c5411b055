package workspace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ErrNoGitInImage reports a role image without git: a checkout made
// inside the instance (a Kubernetes Pod, a remote engine) uses the image's
// own git.
var ErrNoGitInImage = errors.New("the checkout is cloned with the role image's git, and no git binary is on the image's PATH: add git to the role image")

// sourceKey is the git config key, in a checkout CloneInto made, that
// records the URL it was cloned from.
const sourceKey = "jackin.source"

// cloneDir is where CloneInto builds the git directory before it becomes
// dir/.git: only a finished clone ever has that name.
const cloneDir = ".jackin-clone.git"

// CloneResult says what CloneInto did.
type CloneResult struct {
	// Kept is true when dir already held a checkout (the agent's work,
	// left as it was).
	Kept bool
	// Commit is the commit the scratch branch starts at (empty when Kept).
	Commit string
}

// SourceChangedError refuses a checkout whose volume holds a clone of
// another URL: the agent's work there is kept, never replaced.
type SourceChangedError struct {
	Dir, Had, Want string
}

func (e *SourceChangedError) Error() string {
	return fmt.Sprintf("%s holds a checkout of %s, and the mount now names %s: jackin never replaces a checkout (it may hold the agent's work); push what is worth keeping, then jackin delete --purge the instance and apply again, or put the old URL back", e.Dir, e.Had, e.Want)
}

// CloneInto makes a checkout inside the instance: dir (a volume the agent
// mounts, possibly holding a file system's lost+found) becomes a clone of
// url with the new branch checked out from ref (the remote's HEAD when
// ref is empty).
//
// A dir that has a .git is the agent's work and is never changed: it is
// kept when it was cloned from url (or does not say), and refused when
// it was cloned from another URL. The clone is built in a git directory
// of its own name and renamed to .git only once checked out, so an
// interrupted attempt leaves nothing that passes for a checkout; the next
// attempt removes that directory (jackin's, which no agent ever ran with)
// and starts again. Files of the work tree are overwritten, never removed.
//
// It runs inside the instance, as the agent's user, so git's hardening
// here guards the agent's own files only; the URL was checked by
// validation.
func CloneInto(ctx context.Context, dir, url, ref, branch string) (CloneResult, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return CloneResult{}, ErrNoGitInImage
	}
	gitDir := filepath.Join(dir, ".git")
	if _, err := os.Lstat(gitDir); err == nil {
		had, _ := git(ctx, dir, "--git-dir="+gitDir, "config", "--get", sourceKey)
		if had != "" && had != url {
			return CloneResult{}, &SourceChangedError{Dir: dir, Had: had, Want: url}
		}
		return CloneResult{Kept: true}, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return CloneResult{}, fmt.Errorf("inspect %s: %w", gitDir, err)
	}
	tmp := filepath.Join(dir, cloneDir)
	if err := os.RemoveAll(tmp); err != nil {
		return CloneResult{}, fmt.Errorf("remove the unfinished clone %s: %w", tmp, err)
	}
	in := func(args ...string) (string, error) {
		return git(ctx, dir, append([]string{"--git-dir=" + tmp, "--work-tree=" + dir}, args...)...)
	}
	if _, err := git(ctx, dir, "init", "-q", "--bare", tmp); err != nil {
		return CloneResult{}, fmt.Errorf("clone %s into %s: %w", url, dir, err)
	}
	steps := [][]string{
		{"config", "core.bare", "false"},
		{"config", sourceKey, url},
		{"remote", "add", "origin", url},
		{"fetch", "-q", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*"},
	}
	for _, args := range steps {
		if _, err := in(args...); err != nil {
			return CloneResult{}, fmt.Errorf("clone %s into %s: %w", url, dir, err)
		}
	}
	commit, err := startCommit(in, url, ref)
	if err != nil {
		return CloneResult{}, err
	}
	if _, err := in("checkout", "-q", "-f", "-b", branch, commit); err != nil {
		return CloneResult{}, fmt.Errorf("check out %s at %s in %s: %w", branch, commit, dir, err)
	}
	if err := os.Rename(tmp, gitDir); err != nil {
		return CloneResult{}, fmt.Errorf("finish the clone in %s: %w", dir, err)
	}
	return CloneResult{Commit: commit}, nil
}

// startCommit resolves where the scratch branch starts: ref as a branch
// of the remote, else as a tag or a commit; with no ref, the remote's
// HEAD.
func startCommit(in func(...string) (string, error), url, ref string) (string, error) {
	if ref == "" {
		if _, err := in("fetch", "-q", "origin", "HEAD"); err != nil {
			return "", fmt.Errorf("fetch the HEAD of %s: %w", url, err)
		}
		return in("rev-parse", "--verify", "FETCH_HEAD^{commit}")
	}
	for _, candidate := range []string{"refs/remotes/origin/" + ref, "refs/tags/" + ref, ref} {
		if c, err := in("rev-parse", "--verify", "-q", candidate+"^{commit}"); err == nil {
			return c, nil
		}
	}
	return "", &UnknownRefError{Src: url, Ref: ref, Err: errors.New("no branch, tag or commit of that name was fetched")}
}
