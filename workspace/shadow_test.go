package workspace

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// commit commits everything staged in dir as an agent would.
func commit(t *testing.T, dir, msg string) {
	t.Helper()
	run(t, dir, "-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "-q", "-m", msg)
}

// The state read through a shadow git dir is the state git sees in the
// checkout itself: uncommitted and untracked files, renames, stashes,
// unpushed commits, files changed since the base; with a split index too,
// and for a worktree record written before jackin kept its git dir.
func TestInspectReadsWhatGitSees(t *testing.T) {
	for _, mode := range both {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			src, _ := newRepo(t)
			c, err := Prepare(ctx, want(t, src, mode))
			if err != nil {
				t.Fatal(err)
			}
			legacy := c
			legacy.GitDir = ""
			check := func(what string, want State) {
				t.Helper()
				for _, cc := range []Checkout{c, legacy} {
					got := Inspect(ctx, cc)
					want.Head = run(t, c.Path, "rev-parse", "HEAD")
					if got != want {
						t.Fatalf("%s (record with git dir %q): %+v, want %+v", what, cc.GitDir, got, want)
					}
				}
			}
			check("fresh", State{})
			mustWrite(t, filepath.Join(c.Path, "new file.txt"), "x\n")
			mustWrite(t, filepath.Join(c.Path, "README"), "HELLO\n")
			check("untracked and modified", State{Dirty: true, Uncommitted: 2, Untracked: 1, ChangedFiles: 2})
			run(t, c.Path, "add", "-A")
			commit(t, c.Path, "agent work")
			check("committed", State{Unpushed: 1, ChangedFiles: 2})
			run(t, c.Path, "mv", "new file.txt", "renamed.txt")
			check("staged rename", State{Dirty: true, Uncommitted: 1, Unpushed: 1, ChangedFiles: 2})
			run(t, c.Path, "update-index", "--split-index")
			if m, _ := filepath.Glob(filepath.Join(gitDirOf(t, c), "sharedindex.*")); len(m) == 0 {
				t.Fatal("no split index made")
			}
			check("split index", State{Dirty: true, Uncommitted: 1, Unpushed: 1, ChangedFiles: 2})
			run(t, c.Path, "update-index", "--no-split-index")
			commit(t, c.Path, "rename")
			mustWrite(t, filepath.Join(c.Path, "README"), "STASHED WORK\n")
			run(t, c.Path, "-c", "user.name=A", "-c", "user.email=a@example.com", "stash", "-q")
			check("stashed", State{Dirty: true, Uncommitted: 1, Unpushed: 2, ChangedFiles: 2})
			run(t, c.Path, "stash", "drop", "-q")
			if mode == ModeClone {
				mustWrite(t, filepath.Join(c.Path, ".git", "info", "exclude"), "ignored.txt\n")
			} else {
				mustWrite(t, filepath.Join(c.GitCommonDir, "info", "exclude"), "ignored.txt\n")
			}
			mustWrite(t, filepath.Join(c.Path, "ignored.txt"), "x\n")
			check("excluded by info/exclude", State{Unpushed: 2, ChangedFiles: 2})
		})
	}
}

// gitDirOf is the checkout's own git dir (HEAD, index).
func gitDirOf(t *testing.T, c Checkout) string {
	t.Helper()
	if c.Mode == ModeClone {
		return filepath.Join(c.Path, ".git")
	}
	return c.GitDir
}

func TestInspectSHA256Repository(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git on PATH")
	}
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	if _, err := git(ctx, "", "init", "-q", "-b", "main", "--object-format=sha256", src); err != nil {
		t.Skipf("this git makes no sha256 repository: %v", err)
	}
	mustWrite(t, filepath.Join(src, "README"), "hello\n")
	run(t, src, "add", "README")
	commit(t, src, "first")
	for _, mode := range both {
		c, err := Prepare(ctx, want(t, src, mode))
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Base) != 64 {
			t.Fatalf("base %s", c.Base)
		}
		mustWrite(t, filepath.Join(c.Path, "README"), "HELLO\n")
		if st := Inspect(ctx, c); st.Error != "" || !st.Dirty || st.ChangedFiles != 1 || st.Unpushed != 0 || len(st.Head) != 64 {
			t.Fatalf("%s of a sha256 repository: %+v", mode, st)
		}
		if err := Remove(ctx, c, true); err != nil {
			t.Fatal(err)
		}
	}
}

// A submodule checked out in the checkout is work jackin cannot see into
// (its config is the agent's): it counts as uncommitted, once.
func TestPopulatedSubmoduleCountsAsUncommitted(t *testing.T) {
	for _, mode := range both {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			src, _ := newRepo(t)
			c, err := Prepare(ctx, want(t, src, mode))
			if err != nil {
				t.Fatal(err)
			}
			h := &hostile{t: t, c: c}
			h.nestedRepo()
			run(t, c.Path, "add", "sub")
			commit(t, c.Path, "a submodule")
			if st := Inspect(ctx, c); st.Error != "" || !st.Dirty || st.Uncommitted != 1 || st.Untracked != 0 {
				t.Fatalf("with a populated submodule: %+v", st)
			}
			if mode == ModeWorktree {
				if err := Remove(ctx, c, false); err == nil {
					t.Fatal("Remove without force removed a worktree holding a submodule")
				}
			}
			// Its commit moved: status lists it; still one.
			mustWrite(t, filepath.Join(c.Path, "sub", "more"), "x\n")
			run(t, filepath.Join(c.Path, "sub"), "add", "more")
			commit(t, filepath.Join(c.Path, "sub"), "more")
			if st := Inspect(ctx, c); st.Error != "" || st.Uncommitted != 1 {
				t.Fatalf("with a submodule at a new commit: %+v", st)
			}
			// Not checked out: nothing to lose there.
			if err := os.RemoveAll(filepath.Join(c.Path, "sub")); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(c.Path, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			if st := Inspect(ctx, c); st.Error != "" || st.Dirty {
				t.Fatalf("with an empty submodule dir: %+v", st)
			}
		})
	}
}

// armedCopy makes a bare copy of src whose config names the script, with
// attributes that apply its filter to every file.
func armedCopy(t *testing.T, src, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "evil.git")
	run(t, "", "clone", "-q", "--bare", "--no-hardlinks", src, p)
	appendConfig(t, filepath.Join(p, "config"), "[filter \"evil\"]\n\tclean = "+script+" clean\n\tprocess = "+script+" process\n[core]\n\tfsmonitor = "+script+"\n[diff]\n\texternal = "+script+"\n")
	if err := os.MkdirAll(filepath.Join(p, "info"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(p, "info", "attributes"), "* filter=evil\n")
	return p
}

// A worktree's agent can write the source's git dir (all but its config
// and hooks): a commondir file there would make git in the source read
// another config. jackin refuses such a source and never reads that config.
func TestSourceGitDirWithACommondirIsRefused(t *testing.T) {
	ctx := context.Background()
	src, _ := newRepo(t)
	w := want(t, src, ModeWorktree)
	c, err := Prepare(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	script := evilScript(t, dir, marker)
	mustWrite(t, filepath.Join(src, ".git", "commondir"), armedCopy(t, src, script)+"\n")
	mustWrite(t, filepath.Join(src, "README"), "HELLO\n") // the operator's own edit
	ran := func(step string) {
		t.Helper()
		if b, err := os.ReadFile(marker); err == nil {
			t.Fatalf("%s ran the agent's program:\n%s", step, b)
		}
	}
	_, err = InspectSource(ctx, src, "")
	ran("InspectSource")
	if err == nil || !strings.Contains(err.Error(), "commondir") {
		t.Fatalf("InspectSource of a source with a planted commondir: %v", err)
	}
	if _, err := Prepare(ctx, w); err == nil {
		t.Fatal("Prepare accepted the source")
	}
	ran("Prepare")
	if err := Remove(ctx, c, true); err != nil {
		t.Logf("Remove: %v", err)
	}
	ran("Remove")
	if _, err := os.Stat(c.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the worktree is still there: %v", err)
	}
}

// The source's own submodules keep their git dirs in its git dir, which a
// worktree's agent can write: InspectSource does not recurse into them.
func TestSourceSubmoduleConfigRunsNothing(t *testing.T) {
	ctx := context.Background()
	src, _ := newRepo(t)
	sub, _ := newRepo(t)
	run(t, src, "-c", "protocol.file.allow=always", "submodule", "add", "-q", sub, "sub")
	commit(t, src, "a submodule")
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	script := evilScript(t, dir, marker)
	appendConfig(t, filepath.Join(src, ".git", "modules", "sub", "config"), "[filter \"evil\"]\n\tclean = "+script+" clean\n[core]\n\tfsmonitor = "+script+"\n")
	mustWrite(t, filepath.Join(src, "sub", ".gitattributes"), "* filter=evil\n")
	mustWrite(t, filepath.Join(src, "sub", "README"), "HELLO\n")
	s, err := InspectSource(ctx, src, "")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(marker); err == nil {
		t.Fatalf("InspectSource ran the program a submodule's config names:\n%s", b)
	}
	if len(s.Dirty) != 0 {
		t.Fatalf("dirty: %v (changes inside a submodule are not the source's)", s.Dirty)
	}
	// A submodule at another commit is a change of the source's, seen
	// without looking inside it.
	run(t, filepath.Join(src, "sub"), "-c", "filter.evil.clean=cat", "checkout", "-q", "--detach")
	mustWrite(t, filepath.Join(src, "sub", "extra"), "x\n")
	run(t, filepath.Join(src, "sub"), "-c", "filter.evil.clean=cat", "add", "extra")
	run(t, filepath.Join(src, "sub"), "-c", "filter.evil.clean=cat", "-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "-q", "-m", "x")
	if s, err := InspectSource(ctx, src, ""); err != nil || len(s.Dirty) != 1 || !strings.Contains(s.Dirty[0], "sub") {
		t.Fatalf("a submodule at a new commit: %+v %v", s, err)
	}
	if b, err := os.ReadFile(marker); err == nil {
		t.Fatalf("InspectSource ran the program a submodule's config names:\n%s", b)
	}
}

// A FIFO in place of HEAD is refused at once, not waited on until the git
// timeout.
func TestInspectRefusesAFIFOWithoutWaiting(t *testing.T) {
	ctx := context.Background()
	src, _ := newRepo(t)
	c, err := Prepare(ctx, want(t, src, ModeClone))
	if err != nil {
		t.Fatal(err)
	}
	head := filepath.Join(c.Path, ".git", "HEAD")
	if err := os.Remove(head); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(head, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st := Inspect(ctx, c)
	if st.Error == "" || !strings.Contains(st.Error, "not a regular file") || time.Since(start) > 10*time.Second {
		t.Fatalf("after %s: %+v", time.Since(start), st)
	}
}

// A worktree record without the worktree's git dir (made by an older
// jackin) takes it from the checkout's .git file, but only an entry of the
// source's worktrees/.
func TestLegacyWorktreeRecordTrustsOnlyAnEntryOfTheSource(t *testing.T) {
	ctx := context.Background()
	src, _ := newRepo(t)
	c, err := Prepare(ctx, want(t, src, ModeWorktree))
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(t.TempDir(), "gitdir")
	if err := os.MkdirAll(elsewhere, 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(c.Path, ".git"), "gitdir: "+elsewhere+"\n")
	legacy := c
	legacy.GitDir = ""
	if st := Inspect(ctx, legacy); !strings.Contains(st.Error, "is not an entry of") {
		t.Fatalf("legacy record, .git file pointing elsewhere: %+v", st)
	}
	if st := Inspect(ctx, c); st.Error != "" || st.Dirty {
		t.Fatalf("recorded git dir, .git file pointing elsewhere: %+v", st)
	}
	// Prepare again sees that the checkout no longer is a worktree of the source.
	var coll *CollisionError
	if _, err := Prepare(ctx, want(t, src, ModeWorktree)); err != nil && !errors.As(err, &coll) {
		t.Fatalf("Prepare: %v", err)
	}
}

// The review git dir is made with the checkout, repaired when it was
// changed, and removed with the checkout; the review commands show the
// agent's changes and untracked files.
func TestReviewGitDir(t *testing.T) {
	for _, mode := range both {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			src, _ := newRepo(t)
			w := want(t, src, mode)
			c, err := Prepare(ctx, w)
			if err != nil {
				t.Fatal(err)
			}
			dir := ReviewGitDir(c)
			if dir != filepath.Join(w.StateDir, "review", "f", "web", "work.git") {
				t.Fatalf("review git dir %s", dir)
			}
			mustWrite(t, filepath.Join(c.Path, "README"), "HELLO\n")
			mustWrite(t, filepath.Join(c.Path, "new.txt"), "x\n")
			sh := func(cmd string) string {
				t.Helper()
				out, err := exec.Command("sh", "-c", cmd).CombinedOutput()
				if err != nil {
					t.Fatalf("%s: %v\n%s", cmd, err, out)
				}
				return string(out)
			}
			if out := sh(c.ReviewCommand()); !strings.Contains(out, "-hello") || !strings.Contains(out, "+HELLO") {
				t.Fatalf("%s:\n%s", c.ReviewCommand(), out)
			}
			if out := sh(c.UntrackedCommand()); strings.TrimSpace(out) != "new.txt" {
				t.Fatalf("%s:\n%s", c.UntrackedCommand(), out)
			}
			// A git that wrote the index there replaced the link: repaired.
			if err := os.Remove(filepath.Join(dir, "index")); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(dir, "index"), "stale")
			if _, err := Prepare(ctx, w); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Readlink(filepath.Join(dir, "index")); err != nil {
				t.Fatalf("the review git dir was not repaired: %v", err)
			}
			if err := Remove(ctx, c, true); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(w.StateDir, "review")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the review git dir (or its parents) left: %v", err)
			}
		})
	}
}
