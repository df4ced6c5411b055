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
// inside the instance (a Kubernetes Pod) uses the image's own git.
var ErrNoGitInImage = errors.New("the checkout is cloned with the role image's git, and no git binary is on the image's PATH: add git to the role image")

// CloneResult says what CloneInto did.
type CloneResult struct {
	// Kept is true when dir already held a checkout (the agent's work,
	// left as it was).
	Kept bool
	// Commit is the commit the scratch branch starts at (empty when Kept).
	Commit string
}

// CloneInto makes a checkout inside the instance: dir (a volume the agent
// mounts, possibly holding a file system's lost+found) becomes a clone of
// url with the new branch checked out from ref (the remote's HEAD when
// ref is empty). A dir whose .git already has a commit checked out is the
// agent's work and is kept untouched; a .git without one is what an
// interrupted earlier attempt left, and is made again (the files of the
// work tree are never removed).
//
// It runs inside the Pod, as the agent's user, so git's hardening here
// guards the agent's own files only; the URL was checked by validation.
func CloneInto(ctx context.Context, dir, url, ref, branch string) (CloneResult, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return CloneResult{}, ErrNoGitInImage
	}
	gitDir := filepath.Join(dir, ".git")
	if _, err := os.Lstat(gitDir); err == nil {
		if _, err := git(ctx, dir, "rev-parse", "--verify", "-q", "HEAD^{commit}"); err == nil {
			return CloneResult{Kept: true}, nil
		}
		if err := os.RemoveAll(gitDir); err != nil {
			return CloneResult{}, fmt.Errorf("remove the unfinished clone's %s: %w", gitDir, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return CloneResult{}, fmt.Errorf("inspect %s: %w", gitDir, err)
	}
	steps := [][]string{
		{"init", "-q"},
		{"remote", "add", "origin", url},
		{"fetch", "-q", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*"},
	}
	for _, args := range steps {
		if _, err := git(ctx, dir, args...); err != nil {
			return CloneResult{}, fmt.Errorf("clone %s into %s: %w", url, dir, err)
		}
	}
	commit, err := startCommit(ctx, dir, url, ref)
	if err != nil {
		return CloneResult{}, err
	}
	if _, err := git(ctx, dir, "checkout", "-q", "-f", "-b", branch, commit); err != nil {
		return CloneResult{}, fmt.Errorf("check out %s at %s in %s: %w", branch, commit, dir, err)
	}
	return CloneResult{Commit: commit}, nil
}

// startCommit resolves where the scratch branch starts: ref as a branch
// of the remote, else as a tag or a commit; with no ref, the remote's
// HEAD.
func startCommit(ctx context.Context, dir, url, ref string) (string, error) {
	if ref == "" {
		if _, err := git(ctx, dir, "fetch", "-q", "origin", "HEAD"); err != nil {
			return "", fmt.Errorf("fetch the HEAD of %s: %w", url, err)
		}
		return git(ctx, dir, "rev-parse", "--verify", "FETCH_HEAD^{commit}")
	}
	for _, candidate := range []string{"refs/remotes/origin/" + ref, "refs/tags/" + ref, ref} {
		if c, err := git(ctx, dir, "rev-parse", "--verify", "-q", candidate+"^{commit}"); err == nil {
			return c, nil
		}
	}
	return "", &UnknownRefError{Src: url, Ref: ref, Err: errors.New("no branch, tag or commit of that name was fetched")}
}
