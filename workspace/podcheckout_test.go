package workspace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestCloneIntoMakesTheBranchOnceAndKeepsTheWork: the first call clones
// onto the scratch branch at the remote's HEAD (into a directory that
// already holds lost+found); later calls keep what the agent did, in
// whatever state, and refuse another URL; an interrupted attempt is made
// again; a ref picks a tag or branch, and an unknown one is refused by
// name.
func TestCloneIntoMakesTheBranchOnceAndKeepsTheWork(t *testing.T) {
	ctx := context.Background()
	src, bare := newRepo(t)
	run(t, "", "--git-dir", bare, "symbolic-ref", "HEAD", "refs/heads/main")
	head := run(t, src, "rev-parse", "HEAD")
	mustWrite(t, filepath.Join(src, "CHANGES"), "v2\n")
	run(t, src, "add", "CHANGES")
	run(t, src, "commit", "-q", "-m", "second")
	run(t, src, "tag", "v2")
	run(t, src, "push", "-q", "origin", "HEAD:refs/heads/next", "v2")
	v2 := run(t, src, "rev-parse", "v2")

	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	res, err := CloneInto(ctx, dir, bare, "", "jackin/f/web")
	if err != nil {
		t.Fatal(err)
	}
	if res.Kept || res.Commit != head {
		t.Fatalf("first clone %+v, want the remote's HEAD %s", res, head)
	}
	if b := run(t, dir, "symbolic-ref", "--short", "HEAD"); b != "jackin/f/web" {
		t.Errorf("checked out %q", b)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "README")); err != nil || string(got) != "hello\n" {
		t.Errorf("README %q %v", got, err)
	}

	// The agent's work is kept, committed or not.
	mustWrite(t, filepath.Join(dir, "work.txt"), "mine\n")
	res, err = CloneInto(ctx, dir, bare, "v2", "jackin/f/web")
	if err != nil || !res.Kept {
		t.Fatalf("second call %+v %v, want the checkout kept", res, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "work.txt")); err != nil {
		t.Errorf("the agent's file is gone: %v", err)
	}

	// A .git is the agent's, whatever state it is in: an orphan branch
	// with no commit yet is kept, never cloned over.
	run(t, dir, "checkout", "-q", "--orphan", "fresh")
	if res, err = CloneInto(ctx, dir, bare, "", "jackin/f/web"); err != nil || !res.Kept {
		t.Fatalf("a checkout on an unborn branch: %+v %v, want it kept", res, err)
	}
	if _, err := git(ctx, dir, "rev-parse", "--verify", "jackin/f/web"); err != nil {
		t.Errorf("the scratch branch is gone: %v", err)
	}

	// Another URL is refused, the checkout left as it is.
	var changed *SourceChangedError
	if _, err := CloneInto(ctx, dir, src, "", "jackin/f/web"); !errors.As(err, &changed) || changed.Had != bare {
		t.Errorf("a checkout of another URL: %v", err)
	}

	// An attempt killed before its end left only jackin's own git
	// directory: it is made again, and work-tree files stay.
	half := t.TempDir()
	run(t, half, "init", "-q", "--bare", cloneDir)
	mustWrite(t, filepath.Join(half, "notes"), "kept\n")
	res, err = CloneInto(ctx, half, bare, "v2", "jackin/f/web")
	if err != nil || res.Kept || res.Commit != v2 {
		t.Fatalf("redo of a half-made clone at v2: %+v %v, want %s", res, err, v2)
	}
	if _, err := os.Stat(filepath.Join(half, "notes")); err != nil {
		t.Errorf("a work-tree file was removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(half, cloneDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the clone's own git directory is left: %v", err)
	}

	res, err = CloneInto(ctx, t.TempDir(), bare, "next", "b")
	if err != nil || res.Commit != v2 {
		t.Errorf("ref naming the remote's branch next: %+v %v", res, err)
	}
	_, err = CloneInto(ctx, t.TempDir(), bare, "nope", "b")
	var refErr *UnknownRefError
	if !errors.As(err, &refErr) || refErr.Ref != "nope" {
		t.Errorf("unknown ref: %v", err)
	}
}

// TestCloneIntoSaysTheImageLacksGit: without git on PATH the error names
// the role image, not the host.
func TestCloneIntoSaysTheImageLacksGit(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := CloneInto(context.Background(), t.TempDir(), "https://git.example/r.git", "", "b"); !errors.Is(err, ErrNoGitInImage) {
		t.Errorf("err %v", err)
	}
}
