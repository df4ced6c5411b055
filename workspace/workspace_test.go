package workspace

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// run runs git in dir and fails the test on error.
func run(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := git(context.Background(), dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// newRepo makes a repository with one commit, and a bare "remote" it
// pushes to as origin.
func newRepo(t *testing.T) (src, bare string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git on PATH")
	}
	root := t.TempDir()
	src, bare = filepath.Join(root, "src"), filepath.Join(root, "remote.git")
	run(t, "", "init", "-q", "--bare", bare)
	run(t, "", "init", "-q", "-b", "main", src)
	for _, kv := range [][2]string{{"user.name", "T"}, {"user.email", "t@example.com"}} {
		run(t, src, "config", kv[0], kv[1])
	}
	if err := os.WriteFile(filepath.Join(src, "README"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, src, "add", "README")
	run(t, src, "commit", "-q", "-m", "first")
	run(t, src, "remote", "add", "origin", bare)
	run(t, src, "push", "-q", "origin", "main")
	return src, bare
}

func want(t *testing.T, src, mode string) Want {
	return Want{StateDir: t.TempDir(), Fleet: "f", Instance: "web", Mode: mode, Src: src, Dst: "/work"}
}

func TestSlug(t *testing.T) {
	for dst, slug := range map[string]string{"/work": "work", "/home/agent/Src": "home-agent-src", "/": "root", "/a b": "a-b"} {
		if got := Slug(dst); got != slug {
			t.Errorf("Slug(%q) = %q, want %q", dst, got, slug)
		}
	}
}

func TestInspectSourceErrors(t *testing.T) {
	ctx := context.Background()
	src, _ := newRepo(t)
	plain := t.TempDir()
	var notRepo *NotRepoError
	if _, err := InspectSource(ctx, plain, ""); !errors.As(err, &notRepo) || !strings.Contains(err.Error(), "is not a git repository") {
		t.Fatalf("plain dir: %v", err)
	}
	var unknown *UnknownRefError
	if _, err := InspectSource(ctx, src, "no-such-branch"); !errors.As(err, &unknown) || !strings.Contains(err.Error(), `ref "no-such-branch" is not a commit`) {
		t.Fatalf("unknown ref: %v", err)
	}
	sub := filepath.Join(src, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := InspectSource(ctx, sub, ""); err == nil || !strings.Contains(err.Error(), "lies inside the git repository") {
		t.Fatalf("subdirectory: %v", err)
	}
	s, err := InspectSource(ctx, src, "")
	if err != nil || len(s.Dirty) != 0 || s.Commit != s.Head {
		t.Fatalf("clean source: %+v %v", s, err)
	}
	if err := os.WriteFile(filepath.Join(src, "README"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := InspectSource(ctx, src, ""); err != nil || len(s.Dirty) != 1 || !strings.Contains(s.Dirty[0], "README") {
		t.Fatalf("dirty source: %+v %v", s, err)
	}
}

func TestPrepareWorktreeIsIdempotentAndLeavesTheMainCheckout(t *testing.T) {
	ctx := context.Background()
	src, _ := newRepo(t)
	head := run(t, src, "rev-parse", "HEAD")
	w := want(t, src, ModeWorktree)
	c, err := Prepare(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != Path(w.StateDir, "f", "web", "work") || c.Branch != "jackin/f/web" || c.Base != head {
		t.Fatalf("checkout %+v", c)
	}
	if got := run(t, c.Path, "symbolic-ref", "HEAD"); got != "refs/heads/jackin/f/web" {
		t.Fatalf("worktree HEAD %s", got)
	}
	dotgit, err := os.ReadFile(filepath.Join(c.Path, ".git"))
	if err != nil || !strings.HasPrefix(string(dotgit), "gitdir: "+filepath.Join(c.GitCommonDir, "worktrees")) {
		t.Fatalf(".git file %q (%v), common dir %s", dotgit, err, c.GitCommonDir)
	}
	if got := run(t, src, "symbolic-ref", "HEAD"); got != "refs/heads/main" || run(t, src, "status", "--porcelain") != "" {
		t.Fatalf("main checkout changed: HEAD %s", got)
	}
	again, err := Prepare(ctx, w)
	if err != nil || again.Path != c.Path || again.Base != c.Base {
		t.Fatalf("second prepare: %+v %v", again, err)
	}
	if n := len(lines(run(t, src, "worktree", "list"))); n != 2 {
		t.Fatalf("%d worktrees, want 2", n)
	}
	list, err := List(w.StateDir, "f", "")
	if err != nil || len(list) != 1 || list[0].Path != c.Path {
		t.Fatalf("List: %+v %v", list, err)
	}
}

func TestPrepareRefusesABranchCheckedOutElsewhere(t *testing.T) {
	ctx := context.Background()
	src, _ := newRepo(t)
	other := filepath.Join(t.TempDir(), "other")
	run(t, src, "worktree", "add", "-q", "-b", "jackin/f/web", other)
	_, err := Prepare(ctx, want(t, src, ModeWorktree))
	var coll *CollisionError
	if !errors.As(err, &coll) || !strings.Contains(err.Error(), "already checked out in the worktree "+other) {
		t.Fatalf("want a collision naming %s, got %v", other, err)
	}
}

func TestPrepareRefusesAPathItDidNotMake(t *testing.T) {
	src, _ := newRepo(t)
	w := want(t, src, ModeWorktree)
	if err := os.MkdirAll(w.path(), 0o755); err != nil {
		t.Fatal(err)
	}
	var coll *CollisionError
	if _, err := Prepare(context.Background(), w); !errors.As(err, &coll) {
		t.Fatalf("want a collision, got %v", err)
	}
}

// A run killed while git was adding the worktree leaves the marker, a
// partial directory and a worktree entry git locked ("initializing"),
// which git worktree prune alone keeps.
func TestPrepareRepairsAHalfMadeWorktree(t *testing.T) {
	ctx := context.Background()
	src, _ := newRepo(t)
	w := want(t, src, ModeWorktree)
	if err := os.MkdirAll(w.dir(), 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, src, "worktree", "add", "-q", "-b", w.branch(), w.path())
	admin := filepath.Join(src, ".git", "worktrees", "work")
	if err := os.WriteFile(filepath.Join(admin, "locked"), []byte("initializing"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.marker(), []byte("1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(w.path(), "README")); err != nil {
		t.Fatal(err)
	}
	c, err := Prepare(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(c.Path, "README")); err != nil {
		t.Fatalf("repaired worktree is incomplete: %v", err)
	}
	if _, err := os.Stat(w.marker()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker left: %v", err)
	}
	if n := len(lines(run(t, src, "worktree", "list"))); n != 2 {
		t.Fatalf("%d worktrees after repair, want 2:\n%s", n, run(t, src, "worktree", "list"))
	}
	if out := run(t, src, "worktree", "prune", "-n", "-v"); out != "" {
		t.Fatalf("dangling worktree entries: %s", out)
	}

	// The directory removed by hand (a crash after git, before the
	// metadata): the locked entry pointing at nothing is dropped too.
	if err := os.WriteFile(filepath.Join(src, ".git", "worktrees", "work", "locked"), []byte("initializing"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(c.Path); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(w.meta()); err != nil {
		t.Fatal(err)
	}
	if _, err := Prepare(ctx, w); err != nil {
		t.Fatal(err)
	}
	if n := len(lines(run(t, src, "worktree", "list"))); n != 2 {
		t.Fatalf("%d worktrees after the second repair, want 2:\n%s", n, run(t, src, "worktree", "list"))
	}
}

func TestStateAndRemove(t *testing.T) {
	ctx := context.Background()
	src, _ := newRepo(t)
	c, err := Prepare(ctx, want(t, src, ModeWorktree))
	if err != nil {
		t.Fatal(err)
	}
	if st := Inspect(ctx, c); !st.Safe() || st.Status() != "" {
		t.Fatalf("fresh worktree: %+v", st)
	}
	if err := os.WriteFile(filepath.Join(c.Path, "new.txt"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := Inspect(ctx, c)
	if st.Safe() || st.Status() != StatusPreservedDirty || st.Uncommitted != 1 || st.ChangedFiles != 1 {
		t.Fatalf("dirty: %+v", st)
	}
	if err := Remove(ctx, c, false); err == nil {
		t.Fatal("git removed a dirty worktree without force")
	}
	run(t, c.Path, "add", "new.txt")
	run(t, c.Path, "-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "-q", "-m", "agent work")
	if st := Inspect(ctx, c); st.Status() != StatusPreservedUnpushed || st.Unpushed != 1 || st.ChangedFiles != 1 {
		t.Fatalf("committed: %+v", st)
	}
	run(t, c.Path, "push", "-q", "origin", c.Branch)
	if st := Inspect(ctx, c); !st.Safe() {
		t.Fatalf("pushed: %+v", st)
	}
	if err := Remove(ctx, c, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("worktree left: %v", err)
	}
	if _, err := git(ctx, src, "rev-parse", "--verify", "-q", "refs/heads/"+c.Branch); err == nil {
		t.Fatal("scratch branch left")
	}
	if n := len(lines(run(t, src, "worktree", "list"))); n != 1 {
		t.Fatalf("%d worktrees after remove, want 1", n)
	}
}

func TestCloneSetsRemotesAndWritesNothingInTheSource(t *testing.T) {
	ctx := context.Background()
	src, bare := newRepo(t)
	before := treeDigest(t, src)
	w := want(t, src, ModeClone)
	c, err := Prepare(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, c.Path, "remote", "get-url", "origin"); got != bare {
		t.Fatalf("clone's origin %s, want %s", got, bare)
	}
	if got := run(t, c.Path, "remote", "get-url", "source"); got != c.Src {
		t.Fatalf("clone's source remote %s, want %s", got, c.Src)
	}
	if got := run(t, c.Path, "symbolic-ref", "HEAD"); got != "refs/heads/jackin/f/web" {
		t.Fatalf("clone HEAD %s", got)
	}
	if _, err := Prepare(ctx, w); err != nil {
		t.Fatal(err)
	}
	if after := treeDigest(t, src); after != before {
		t.Fatal("the source repository changed")
	}
	if st := Inspect(ctx, c); !st.Safe() {
		t.Fatalf("fresh clone: %+v", st)
	}
	if err := Remove(ctx, c, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("clone left")
	}
}

// treeDigest lists every path under dir with its mode, size, mtime and content.
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + info.Mode().String() + " " + info.ModTime().String() + "\n")
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestPrepareDropsEntriesAKilledGitLeftHalfWritten(t *testing.T) {
	ctx := context.Background()
	src, _ := newRepo(t)
	w := want(t, src, ModeWorktree)
	admin := filepath.Join(src, ".git", "worktrees")
	// A `git worktree add` killed after it locked its entry and named its
	// checkout (under jackin's worktrees), before it wrote commondir.
	ours := filepath.Join(admin, "work")
	if err := os.MkdirAll(ours, 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(ours, "locked"), "initializing\n")
	mustWrite(t, filepath.Join(ours, "gitdir"), filepath.Join(Root(w.StateDir), "f", "other", "work", ".git")+"\n")
	// Someone else's worktree being added: not jackin's to touch.
	theirs := filepath.Join(admin, "theirs")
	if err := os.MkdirAll(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(theirs, "locked"), "initializing\n")
	mustWrite(t, filepath.Join(theirs, "gitdir"), filepath.Join(t.TempDir(), "theirs", ".git")+"\n")

	c, err := Prepare(ctx, w)
	if err != nil {
		t.Fatalf("prepare with a half-written entry left by a killed git: %v", err)
	}
	// git names the new entry after the checkout's base name too: "work"
	// is now the new, complete entry, pointing at the new checkout.
	gitdir, _ := os.ReadFile(filepath.Join(ours, "gitdir"))
	if _, err := os.Stat(filepath.Join(ours, "commondir")); err != nil || strings.TrimSpace(string(gitdir)) != filepath.Join(c.Path, ".git") {
		t.Fatalf("the half-written entry is still there: gitdir %q, commondir %v", gitdir, err)
	}
	if n := len(lines(run(t, src, "worktree", "list"))); n != 3 {
		t.Fatalf("%d worktrees listed, want the main one, the new one and the other's: %s", n, run(t, src, "worktree", "list"))
	}
	if _, err := os.Stat(theirs); err != nil {
		t.Fatalf("someone else's entry was removed: %v", err)
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestInspectRunsNothingAnAgentConfigured(t *testing.T) {
	ctx := context.Background()
	src, _ := newRepo(t)
	c, err := Prepare(ctx, want(t, src, ModeClone))
	if err != nil {
		t.Fatal(err)
	}
	// The agent owns the clone's .git: it names commands git would run on
	// the host when jackin inspects the clone (jackin work, delete).
	pwned := filepath.Join(t.TempDir(), "pwned")
	cmd := "touch " + pwned
	run(t, c.Path, "config", "core.fsmonitor", cmd)
	run(t, c.Path, "config", "filter.evil.clean", cmd)
	run(t, c.Path, "config", "filter.evil.process", cmd)
	run(t, c.Path, "config", "diff.external", cmd)
	mustWrite(t, filepath.Join(c.Path, ".gitattributes"), "* filter=evil\n")
	mustWrite(t, filepath.Join(c.Path, "README"), "changed\n")
	hooks := filepath.Join(c.Path, ".git", "hooks")
	mustWrite(t, filepath.Join(hooks, "post-checkout"), "#!/bin/sh\n"+cmd+"\n")
	if err := os.Chmod(filepath.Join(hooks, "post-checkout"), 0o755); err != nil {
		t.Fatal(err)
	}
	st := Inspect(ctx, c)
	if st.Error != "" {
		t.Fatalf("inspect: %s", st.Error)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("inspecting an agent's clone ran a command its config names")
	}
	if !st.Dirty {
		t.Fatalf("state %+v: the changed README is not seen", st)
	}
}

func TestStashedWorkIsNotSafeToRemove(t *testing.T) {
	ctx := context.Background()
	src, _ := newRepo(t)
	c, err := Prepare(ctx, want(t, src, ModeClone))
	if err != nil {
		t.Fatal(err)
	}
	run(t, c.Path, "config", "user.name", "T")
	run(t, c.Path, "config", "user.email", "t@example.com")
	mustWrite(t, filepath.Join(c.Path, "README"), "work in progress\n")
	run(t, c.Path, "stash", "-q")
	st := Inspect(ctx, c)
	if st.Safe() || !st.Dirty {
		t.Fatalf("a clone holding a stash counts as safe to remove: %+v", st)
	}
}
