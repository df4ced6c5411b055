package workspace

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Modes of an isolated checkout (the mount modes that make one).
const (
	ModeWorktree = "worktree"
	ModeClone    = "clone"
)

// Statuses of a checkout, as recorded in the store.
const (
	StatusActive            = "active"
	StatusPreservedDirty    = "preserved-dirty"
	StatusPreservedUnpushed = "preserved-unpushed"
)

// DirName is the state dir's subdirectory holding every checkout.
const DirName = "worktrees"

// Checkout is one isolated checkout: a git worktree or a local clone at
// Path, on Branch, started from the commit Base.
type Checkout struct {
	Fleet    string `json:"fleet"`
	Instance string `json:"instance"`
	Slug     string `json:"slug"`
	Mode     string `json:"mode"`
	// Src is the source repository's top directory on the host.
	Src string `json:"src"`
	// Dst is where the checkout is mounted in the container.
	Dst string `json:"dst"`
	// Ref is the manifest's ref ("" for the source's HEAD).
	Ref string `json:"ref,omitempty"`
	// Path is the checkout on the host, under the state dir.
	Path   string `json:"path"`
	Branch string `json:"branch"`
	// Base is the commit the scratch branch started from.
	Base string `json:"base"`
	// GitCommonDir is the source's git directory a worktree's .git file
	// points into (worktrees only).
	GitCommonDir string `json:"gitCommonDir,omitempty"`
	// GitDir is the worktree's own git dir, <GitCommonDir>/worktrees/<name>,
	// as git made it (worktrees only; records from older versions lack it).
	GitDir    string    `json:"gitDir,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// ReviewCommand is how to review the checkout's work on the host: a diff
// against the base through the review git dir jackin keeps for it
// (ReviewGitDir), not through the checkout's own: a plain git -C PATH diff
// would read the agent's config and run the filters, diff drivers and pager
// it names. --no-optional-locks keeps git from writing the index it reads.
func (c Checkout) ReviewCommand() string {
	return c.reviewGit() + " diff " + c.Base
}

// UntrackedCommand lists the checkout's untracked files, which a diff
// against the base leaves out, the same safe way as ReviewCommand.
func (c Checkout) UntrackedCommand() string {
	return c.reviewGit() + " ls-files --others --exclude-standard"
}

func (c Checkout) reviewGit() string {
	return "git --no-optional-locks --git-dir=" + shellQuote(ReviewGitDir(c)) + " --work-tree=" + shellQuote(c.Path)
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:@%+=,-]+$`)

func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Root is the directory holding every fleet's checkouts. It is absolute
// (a relative state dir is taken from the working directory): checkouts
// are bind-mounted, and the engine needs absolute sources.
func Root(stateDir string) string {
	if abs, err := filepath.Abs(stateDir); err == nil {
		stateDir = abs
	}
	return filepath.Join(stateDir, DirName)
}

// InstanceDir holds one instance's checkouts.
func InstanceDir(stateDir, fleet, instance string) string {
	return filepath.Join(Root(stateDir), fleet, instance)
}

// Path is where an instance's checkout for one mount lives:
// <state dir>/worktrees/<fleet>/<instance>/<slug>.
func Path(stateDir, fleet, instance, slug string) string {
	return filepath.Join(InstanceDir(stateDir, fleet, instance), slug)
}

// Branch is an instance's scratch branch: jackin/<fleet>/<instance>.
func Branch(fleet, instance string) string { return "jackin/" + fleet + "/" + instance }

var slugUnsafe = regexp.MustCompile(`[^a-z0-9._-]+`)

// Slug names a mount's checkout after its container path: "/work" is
// "work", "/home/agent/src" is "home-agent-src", "/" is "root".
func Slug(dst string) string {
	s := slugUnsafe.ReplaceAllString(strings.ToLower(strings.Trim(dst, "/")), "-")
	s = strings.Trim(s, "-.")
	if s == "" {
		return "root"
	}
	return s
}

// Source is what a worktree or clone is made from, as git sees it.
type Source struct {
	// TopLevel is the repository's top directory (symlinks resolved).
	TopLevel string
	// CommonDir is its git directory (for a linked worktree, the main one's).
	CommonDir string
	// GitDir is the git directory of src's own checkout: CommonDir, or
	// for a linked worktree its entry under CommonDir/worktrees.
	GitDir string
	// Head is the commit HEAD points to.
	Head string
	// Commit is the commit ref names (Head when ref is empty).
	Commit string
	// Dirty lists up to 10 paths with uncommitted changes ("" when clean).
	Dirty []string
	// WorktreeConfig says the repository sets extensions.worktreeConfig:
	// git then reads config.worktree from its git dir, which a worktree
	// mount leaves writable to the agent. Its status is then not read
	// (Dirty is empty), and a worktree mount of it is refused.
	WorktreeConfig bool
}

// repo is the source with its git dirs named explicitly.
func (s Source) repo() repo {
	return repo{gitDir: s.GitDir, commonDir: s.CommonDir, workTree: s.TopLevel}
}

// NotRepoError reports a src that is not a git checkout.
type NotRepoError struct {
	Src string
	Err error
}

func (e *NotRepoError) Error() string {
	return fmt.Sprintf("src %s is not a git repository (%v): worktree and clone mounts need a git checkout; use mode \"rw\" to mount a plain directory", e.Src, e.Err)
}

func (e *NotRepoError) Unwrap() error { return e.Err }

// UnknownRefError reports a ref that names no commit in the source.
type UnknownRefError struct {
	Src, Ref string
	Err      error
}

func (e *UnknownRefError) Error() string {
	return fmt.Sprintf("ref %q is not a commit in %s (%v): give a branch, tag or commit that exists there", e.Ref, e.Src, e.Err)
}

func (e *UnknownRefError) Unwrap() error { return e.Err }

// InspectSource checks that src is the top of a git work tree and resolves
// ref (HEAD when empty). It writes nothing: git runs with optional locks
// off, so not even the index is refreshed.
func InspectSource(ctx context.Context, src, ref string) (Source, error) {
	if _, err := os.Stat(src); err != nil {
		return Source{}, fmt.Errorf("src %s: %w", src, err)
	}
	// Finding the repository reads its config and runs nothing; what it
	// finds is checked before any git call that could run something.
	out, err := git(ctx, src, "rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir", "--absolute-git-dir", "--is-bare-repository")
	if err != nil {
		if errors.Is(err, ErrNoGit) {
			return Source{}, err
		}
		return Source{}, &NotRepoError{Src: src, Err: err}
	}
	f := lines(out)
	if len(f) != 4 || f[3] == "true" {
		return Source{}, &NotRepoError{Src: src, Err: errors.New("a bare repository has no work tree")}
	}
	top, common, gitDir := f[0], f[1], f[2]
	realSrc, err := filepath.EvalSymlinks(src)
	if err != nil {
		return Source{}, fmt.Errorf("src %s: %w", src, err)
	}
	if realTop, err := filepath.EvalSymlinks(top); err == nil && realTop != realSrc {
		return Source{}, fmt.Errorf("src %s lies inside the git repository %s: give the repository's top directory", src, top)
	}
	if real, err := filepath.EvalSymlinks(common); err == nil {
		common = real
	}
	if real, err := filepath.EvalSymlinks(gitDir); err == nil {
		gitDir = real
	}
	s := Source{TopLevel: realSrc, CommonDir: filepath.Clean(common), GitDir: filepath.Clean(gitDir)}
	if err := checkGitDirs(src, s.GitDir, s.CommonDir); err != nil {
		return Source{}, err
	}
	r := s.repo()
	if s.Head, err = r.git(ctx, "rev-parse", "--verify", "-q", "HEAD^{commit}"); err != nil {
		return Source{}, fmt.Errorf("src %s has no commit yet (an empty repository): commit something first: %w", src, err)
	}
	s.Commit = s.Head
	if ref != "" {
		c, err := r.git(ctx, "rev-parse", "--verify", "-q", "--end-of-options", ref+"^{commit}")
		if err != nil {
			return Source{}, &UnknownRefError{Src: src, Ref: ref, Err: err}
		}
		s.Commit = c
	}
	// Reading config runs nothing. With per-worktree config on, git status
	// would read config.worktree from the git dir, which an agent with a
	// worktree mount can write: no status is taken at all.
	if wc, err := r.git(ctx, "config", "--bool", "--get", "extensions.worktreeConfig"); err == nil && strings.TrimSpace(wc) == "true" {
		s.WorktreeConfig = true
		return s, nil
	}
	// Not into submodules: their config is theirs (and, for the source's
	// own, in its git dir, which a worktree's agent can write). A
	// submodule checked out at another commit still shows, read in-process.
	status, err := r.git(ctx, "status", "--porcelain=v1", "--untracked-files=normal", "--ignore-submodules=dirty")
	if err != nil {
		return Source{}, fmt.Errorf("read the status of %s: %w", src, err)
	}
	for i, l := range lines(status) {
		if i == 10 {
			s.Dirty = append(s.Dirty, "...")
			break
		}
		s.Dirty = append(s.Dirty, strings.TrimSpace(l))
	}
	return s, nil
}

// Want is a checkout the manifest asks for.
type Want struct {
	StateDir string
	Fleet    string
	Instance string
	Mode     string // ModeWorktree or ModeClone
	Src      string
	Ref      string
	Dst      string
}

func (w Want) slug() string   { return Slug(w.Dst) }
func (w Want) path() string   { return Path(w.StateDir, w.Fleet, w.Instance, w.slug()) }
func (w Want) branch() string { return Branch(w.Fleet, w.Instance) }
func (w Want) dir() string    { return InstanceDir(w.StateDir, w.Fleet, w.Instance) }
func (w Want) meta() string   { return filepath.Join(w.dir(), w.slug()+".json") }
func (w Want) marker() string { return filepath.Join(w.dir(), w.slug()+".creating") }

// CollisionError reports a checkout that cannot be made because something
// else holds its path or its scratch branch.
type CollisionError struct{ Msg string }

func (e *CollisionError) Error() string { return e.Msg }

// Exists reports whether the checkout w asks for is already made (a
// half-made one, being repaired by Prepare, does not count).
func Exists(w Want) bool {
	if _, err := os.Stat(w.marker()); err == nil {
		return false
	}
	_, err := os.Stat(w.path())
	return err == nil
}

// Prepare makes the checkout w asks for, or returns the existing one. It is
// idempotent and crash-safe: a marker file is written before git starts and
// removed once the checkout and its metadata are complete, so a checkout
// found with its marker was half-made by a killed run; it is removed (with
// its worktree entry in the source repository) and made again. The scratch
// branch is kept across that repair: it may already hold the start commit.
func Prepare(ctx context.Context, w Want) (Checkout, error) {
	src, err := InspectSource(ctx, w.Src, w.Ref)
	if err != nil {
		return Checkout{}, err
	}
	if err := os.MkdirAll(w.dir(), 0o700); err != nil {
		return Checkout{}, fmt.Errorf("create %s: %w", w.dir(), err)
	}
	// One git worktree operation per source repository at a time: a repair
	// must never take another instance's worktree being added for the
	// leftovers of a killed one.
	unlock, err := lockSource(w.StateDir, src.CommonDir)
	if err != nil {
		return Checkout{}, err
	}
	defer unlock()
	if w.Mode == ModeWorktree {
		// The container gets the source's hooks dir read-only over its
		// read-write git dir, so it must exist: an agent must not create it.
		if err := os.MkdirAll(filepath.Join(src.CommonDir, "hooks"), 0o755); err != nil {
			return Checkout{}, fmt.Errorf("prepare %s: %w", filepath.Join(src.CommonDir, "hooks"), err)
		}
	}
	if err := repair(ctx, w, src); err != nil {
		return Checkout{}, err
	}
	if _, err := os.Stat(w.path()); err == nil {
		return reuse(ctx, w, src)
	}
	if err := writeFileSync(w.marker(), []byte(strconv.Itoa(os.Getpid())+"\n")); err != nil {
		return Checkout{}, fmt.Errorf("mark %s as being made: %w", w.path(), err)
	}
	c := Checkout{
		Fleet: w.Fleet, Instance: w.Instance, Slug: w.slug(), Mode: w.Mode, Src: src.TopLevel, Dst: w.Dst,
		Ref: w.Ref, Path: w.path(), Branch: w.branch(), Base: src.Commit, CreatedAt: time.Now().UTC(),
	}
	switch w.Mode {
	case ModeWorktree:
		c.GitCommonDir = src.CommonDir
		if c.Base, err = addWorktree(ctx, w, src); err != nil {
			return Checkout{}, err
		}
		// Recorded now, as git just wrote it: later the .git file is the
		// agent's.
		gitDir, err := readGitFile(c.Path)
		if err == nil {
			c.GitDir, err = checkWorktreeEntry(c.GitCommonDir, gitDir)
		}
		if err != nil {
			return Checkout{}, fmt.Errorf("worktree %s: %w", c.Path, err)
		}
	case ModeClone:
		if err := addClone(ctx, w, src); err != nil {
			return Checkout{}, err
		}
	default:
		return Checkout{}, fmt.Errorf("mount %s: %q is not a checkout mode", w.Dst, w.Mode)
	}
	if err := ensureReviewGitDir(c); err != nil {
		return Checkout{}, err
	}
	if err := writeMeta(w.meta(), c); err != nil {
		return Checkout{}, err
	}
	if err := os.Remove(w.marker()); err != nil {
		return Checkout{}, fmt.Errorf("finish %s: %w", w.path(), err)
	}
	return c, nil
}

// repair removes what a killed run left: a checkout still marked as being
// made, and worktree entries in the source repository whose directory
// under this instance's dir is gone (git worktree prune keeps entries that
// git itself locked while it was creating them).
func repair(ctx context.Context, w Want, src Source) error {
	if _, err := os.Stat(w.marker()); err == nil {
		if w.Mode == ModeWorktree {
			// Ignore the error: the entry may not exist, or be half-written.
			_, _ = src.repo().git(ctx, "worktree", "remove", "--force", "--force", w.path())
		}
		if err := os.RemoveAll(w.path()); err != nil {
			return fmt.Errorf("remove the half-made checkout %s: %w", w.path(), err)
		}
		_ = os.Remove(w.meta())
	}
	if w.Mode == ModeWorktree {
		if err := dropDanglingEntries(src.CommonDir, w.dir()); err != nil {
			return err
		}
		if err := dropHalfMadeEntries(src.CommonDir, Root(w.StateDir)); err != nil {
			return err
		}
		if _, err := src.repo().git(ctx, "worktree", "prune"); err != nil {
			return fmt.Errorf("prune stale worktrees of %s: %w", src.TopLevel, err)
		}
	}
	if err := os.Remove(w.marker()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("clear marker %s: %w", w.marker(), err)
	}
	return nil
}

// dropDanglingEntries removes the source repository's worktree entries
// (<common dir>/worktrees/<name>) that point into dir at a checkout that no
// longer exists. Only entries under jackin's own instance dir are touched.
func dropDanglingEntries(commonDir, dir string) error {
	return dropEntries(commonDir, "dangling", func(entry string) bool {
		b, err := os.ReadFile(filepath.Join(entry, "gitdir"))
		if err != nil {
			return false
		}
		target := filepath.Dir(strings.TrimSpace(string(b))) // the gitdir file names <checkout>/.git
		if !within(target, dir) {
			return false
		}
		_, err = os.Stat(target)
		return errors.Is(err, fs.ErrNotExist)
	})
}

// dropHalfMadeEntries removes the source repository's worktree entries that
// a killed `git worktree add` left half-written: still locked as
// "initializing", or without their commondir file, and not pointing outside
// jackin's worktrees (a missing gitdir file counts as jackin's: the caller
// holds the source lock, so no jackin process is adding one now). git
// itself fails on such an entry ("failed to read .../commondir").
func dropHalfMadeEntries(commonDir, root string) error {
	return dropEntries(commonDir, "half-made", func(entry string) bool {
		locked, _ := os.ReadFile(filepath.Join(entry, "locked"))
		_, commonErr := os.Stat(filepath.Join(entry, "commondir"))
		if strings.TrimSpace(string(locked)) != "initializing" && commonErr == nil {
			return false
		}
		b, err := os.ReadFile(filepath.Join(entry, "gitdir"))
		return err != nil || within(strings.TrimSpace(string(b)), root) // else someone else's worktree
	})
}

// dropEntries removes the worktree entries of the repository at commonDir
// that drop selects; what names them in errors.
func dropEntries(commonDir, what string, drop func(entry string) bool) error {
	admin := filepath.Join(commonDir, "worktrees")
	entries, err := os.ReadDir(admin)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", admin, err)
	}
	for _, e := range entries {
		entry := filepath.Join(admin, e.Name())
		if !drop(entry) {
			continue
		}
		if err := os.RemoveAll(entry); err != nil {
			return fmt.Errorf("remove the %s worktree entry %s: %w", what, entry, err)
		}
	}
	return nil
}

var (
	sourceLocksMu sync.Mutex
	sourceLocks   = map[string]*sync.Mutex{}
)

// lockSource serialises worktree changes to one source repository: within
// this process by a mutex, across jackin processes sharing the state dir by
// a file lock in it.
func lockSource(stateDir, commonDir string) (func(), error) {
	mu := sourceMutex(commonDir)
	mu.Lock()
	sum := sha256.Sum256([]byte(commonDir))
	dir := filepath.Join(stateDir, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		mu.Unlock()
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "git-"+hex.EncodeToString(sum[:8])+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		mu.Unlock()
		return nil, fmt.Errorf("lock the source repository %s: %w", commonDir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		mu.Unlock()
		return nil, fmt.Errorf("lock the source repository %s: %w", commonDir, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		mu.Unlock()
	}, nil
}

// sourceMutex is this process's lock of one source repository.
func sourceMutex(commonDir string) *sync.Mutex {
	sourceLocksMu.Lock()
	defer sourceLocksMu.Unlock()
	mu := sourceLocks[commonDir]
	if mu == nil {
		mu = &sync.Mutex{}
		sourceLocks[commonDir] = mu
	}
	return mu
}

func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// reuse checks that an existing checkout at w's path is w's, and returns it.
func reuse(ctx context.Context, w Want, src Source) (Checkout, error) {
	c, err := readMeta(w.meta())
	if err != nil {
		return Checkout{}, &CollisionError{Msg: fmt.Sprintf("%s exists but jackin has no record of making it (%v): move it away, or remove it if it holds nothing you need", w.path(), err)}
	}
	if c.Mode != w.Mode || c.Src != src.TopLevel {
		return Checkout{}, &CollisionError{Msg: fmt.Sprintf("%s is a %s of %s, not a %s of %s: the mount changed; review and remove it (jackin delete --purge, or by hand) before using another source or mode", w.path(), c.Mode, c.Src, w.Mode, src.TopLevel)}
	}
	if w.Mode == ModeWorktree {
		// The checkout's .git file is the agent's to write: it is read as
		// data (no git runs in the checkout) and must name an entry of the
		// source's worktrees/.
		gitDir, err := readGitFile(w.path())
		if err != nil {
			return Checkout{}, &CollisionError{Msg: fmt.Sprintf("%s is recorded as a worktree of %s but is not one: %v", w.path(), src.TopLevel, err)}
		}
		if _, err := checkWorktreeEntry(src.CommonDir, gitDir); err != nil {
			return Checkout{}, &CollisionError{Msg: fmt.Sprintf("%s is not a worktree of %s: %v", w.path(), src.CommonDir, err)}
		}
	}
	if err := ensureReviewGitDir(c); err != nil {
		return Checkout{}, err
	}
	return c, nil
}

// addWorktree adds the worktree on the scratch branch, creating the branch
// at the source's commit unless it exists. It returns the base commit.
func addWorktree(ctx context.Context, w Want, src Source) (string, error) {
	branch := w.branch()
	git := src.repo().git
	list, err := git(ctx, "worktree", "list", "--porcelain")
	if err != nil {
		return "", fmt.Errorf("list worktrees of %s: %w", src.TopLevel, err)
	}
	var at string
	for _, l := range lines(list) {
		if p, ok := strings.CutPrefix(l, "worktree "); ok {
			at = p
		}
		if l == "branch refs/heads/"+branch && at != w.path() {
			return "", &CollisionError{Msg: fmt.Sprintf("the scratch branch %s of instance %q is already checked out in the worktree %s: another instance (a second state dir for the same fleet?) or a person uses it; remove that worktree (git -C %s worktree remove %s) or rename the fleet or instance", branch, w.Instance, at, src.TopLevel, at)}
		}
	}
	base := src.Commit
	if tip, err := git(ctx, "rev-parse", "--verify", "-q", "refs/heads/"+branch); err == nil && tip != "" {
		// Kept from an earlier checkout (or a repaired half-made one): its
		// work is the agent's, so reuse it; the base is where it forked.
		if mb, err := git(ctx, "merge-base", tip, src.Commit); err == nil {
			base = mb
		} else {
			base = tip
		}
		if _, err := git(ctx, "worktree", "add", "--quiet", w.path(), branch); err != nil {
			return "", fmt.Errorf("add worktree %s on the existing branch %s: %w", w.path(), branch, err)
		}
		return base, nil
	}
	if _, err := git(ctx, "worktree", "add", "--quiet", "-b", branch, w.path(), src.Commit); err != nil {
		return "", fmt.Errorf("add worktree %s on a new branch %s: %w", w.path(), branch, err)
	}
	return base, nil
}

// addClone makes a full local clone that shares no file with the source
// (no hard links: the agent cannot change the source's objects through
// them) and checks out the scratch branch. The source's remotes are set on
// the clone, so the agent pushes where the operator's repository does;
// the source itself is the remote "source".
func addClone(ctx context.Context, w Want, src Source) error {
	if _, err := git(ctx, "", "clone", "--quiet", "--no-hardlinks", "--origin", "source", src.TopLevel, w.path()); err != nil {
		return fmt.Errorf("clone %s into %s: %w", src.TopLevel, w.path(), err)
	}
	if _, err := git(ctx, w.path(), "checkout", "--quiet", "-b", w.branch(), src.Commit); err != nil {
		return fmt.Errorf("check out the scratch branch %s in %s: %w", w.branch(), w.path(), err)
	}
	srcGit := src.repo().git
	remotes, err := srcGit(ctx, "remote")
	if err != nil {
		return fmt.Errorf("list the remotes of %s: %w", src.TopLevel, err)
	}
	for _, r := range lines(remotes) {
		if r == "source" {
			continue
		}
		url, err := srcGit(ctx, "remote", "get-url", r)
		if err != nil {
			return fmt.Errorf("read remote %s of %s: %w", r, src.TopLevel, err)
		}
		if _, err := git(ctx, w.path(), "remote", "add", r, url); err != nil {
			return fmt.Errorf("set remote %s on %s: %w", r, w.path(), err)
		}
		if push, err := srcGit(ctx, "remote", "get-url", "--push", r); err == nil && push != url {
			if _, err := git(ctx, w.path(), "remote", "set-url", "--push", r, push); err != nil {
				return fmt.Errorf("set the push URL of remote %s on %s: %w", r, w.path(), err)
			}
		}
	}
	return nil
}

// State is a checkout's work as git sees it now.
type State struct {
	// Dirty is true when the checkout has uncommitted changes or untracked files.
	Dirty bool `json:"dirty"`
	// Uncommitted counts files with uncommitted changes, untracked included,
	// and stashes. A populated submodule counts as one unless its commit
	// changed (then it is listed anyway): jackin does not look inside it,
	// since that would read its config, the agent's.
	Uncommitted int `json:"uncommitted"`
	// Untracked counts the untracked files among Uncommitted.
	Untracked int `json:"untracked"`
	// Unpushed counts commits not on any remote-tracking branch (for a
	// worktree, nor on any other branch of the source repository).
	Unpushed int `json:"unpushed"`
	// ChangedFiles counts files that differ from Base, committed or not,
	// untracked included.
	ChangedFiles int `json:"changedFiles"`
	// Head is the checkout's current commit.
	Head string `json:"head"`
	// Error says why the state could not be read (the other fields are then zero).
	Error string `json:"error,omitempty"`
}

// Safe reports whether removing the checkout loses nothing.
func (s State) Safe() bool { return s.Error == "" && !s.Dirty && s.Unpushed == 0 }

// Status is the lifecycle status a checkout whose instance is deleted
// gets: preserved-dirty, preserved-unpushed, or "" when it is safe to remove.
func (s State) Status() string {
	switch {
	case s.Error != "" || s.Dirty:
		return StatusPreservedDirty
	case s.Unpushed > 0:
		return StatusPreservedUnpushed
	}
	return ""
}

// Inspect reads a checkout's state. It also makes the checkout's review
// git dir if it is missing (a checkout made by an older jackin has none),
// so the review commands printed with the state work; failing that, they
// fail with git's "not a git repository", and the state is still right.
func Inspect(ctx context.Context, c Checkout) State {
	if _, err := os.Stat(c.Path); err == nil {
		_ = ensureReviewGitDir(c)
	}
	st, err := inspect(ctx, c)
	if err != nil {
		return State{Error: err.Error()}
	}
	return st
}

func inspect(ctx context.Context, c Checkout) (State, error) {
	var st State
	if _, err := os.Stat(c.Path); err != nil {
		return st, fmt.Errorf("checkout %s: %w", c.Path, err)
	}
	// Everything in the checkout is the agent's to write (a clone's whole
	// .git, a worktree's .git file and entry): git reads it through a git
	// dir of jackin's, with no config of the agent's.
	sh, err := newShadow(c)
	if err != nil {
		return st, err
	}
	defer sh.Close()
	git := sh.git
	status, err := git(ctx, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignore-submodules=dirty")
	if err != nil {
		return st, err
	}
	listed := map[string]bool{}
	for _, e := range statusEntries(status) {
		st.Uncommitted++
		listed[e[3:]] = true
		if strings.HasPrefix(e, "??") {
			st.Untracked++
		}
	}
	n, err := unlistedSubmodules(ctx, sh, listed)
	if err != nil {
		return st, err
	}
	st.Uncommitted += n
	// Stashed changes are work too, and a clone's stash goes with it.
	if stashes, err := git(ctx, "rev-list", "--walk-reflogs", "--count", "refs/stash", "--"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(stashes)); err == nil {
			st.Uncommitted += n
		}
	}
	st.Dirty = st.Uncommitted > 0
	if st.Head, err = git(ctx, "rev-parse", "--verify", "-q", "HEAD"); err != nil {
		return st, err
	}
	args := []string{"rev-list", "--count", "HEAD"}
	if c.Mode == ModeWorktree {
		// The source repository's other branches outlive the worktree:
		// work merged into one of them is not lost. Other instances'
		// scratch branches do not count.
		args = append(args, "refs/heads/"+c.Branch, "--not", "--exclude=jackin/*", "--branches", "--remotes")
	} else {
		args = append(args, "--branches", "--not", "--remotes")
	}
	count, err := git(ctx, args...)
	if err != nil {
		return st, err
	}
	if st.Unpushed, err = strconv.Atoi(strings.TrimSpace(count)); err != nil {
		return st, fmt.Errorf("count unpushed commits in %s: %w", c.Path, err)
	}
	if c.Base != "" {
		diff, err := git(ctx, "diff", "--no-ext-diff", "--no-textconv", "--ignore-submodules=dirty", "--name-only", "-z", c.Base, "--")
		if err != nil {
			return st, err
		}
		st.ChangedFiles = len(splitZ(diff)) + st.Untracked
	}
	return st, nil
}

// statusEntries splits git status --porcelain=v1 -z output into entries
// ("XY path"); a rename's second path, its own NUL-terminated field, is
// folded into its entry.
func statusEntries(out string) []string {
	var entries []string
	fields := splitZ(out)
	for i := 0; i < len(fields); i++ {
		e := fields[i]
		if len(e) < 4 {
			continue
		}
		if (e[0] == 'R' || e[0] == 'C') && i+1 < len(fields) {
			i++ // the rename's source
		}
		entries = append(entries, e)
	}
	return entries
}

// splitZ splits NUL-terminated git output.
func splitZ(s string) []string {
	var out []string
	for _, f := range strings.Split(s, "\x00") {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// unlistedSubmodules counts the checkout's populated submodules (gitlinks
// in its index with a repository checked out at their path) that status
// did not list. Their uncommitted work is unknown to jackin, which does not
// look inside them, so each counts as uncommitted: removing the checkout
// would remove them.
func unlistedSubmodules(ctx context.Context, sh *shadowGitDir, listed map[string]bool) (int, error) {
	out, err := sh.git(ctx, "ls-files", "--stage", "-z")
	if err != nil {
		return 0, err
	}
	root, err := os.OpenRoot(sh.work)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	n := 0
	for _, e := range splitZ(out) {
		// "<mode> <object> <stage>\t<path>"
		meta, path, ok := strings.Cut(e, "\t")
		if !ok || !strings.HasPrefix(meta, "160000 ") || listed[path] {
			continue
		}
		if _, err := root.Lstat(filepath.Join(path, ".git")); err == nil {
			n++
		}
	}
	return n, nil
}

// Remove deletes a checkout: a worktree through git (its entry in the
// source repository goes too) and its scratch branch; a clone's
// directory; and the review git dir jackin kept for it. Without force a
// dirty worktree is refused, a second guard behind the caller's check.
func Remove(ctx context.Context, c Checkout, force bool) error {
	switch c.Mode {
	case ModeWorktree:
		if !force {
			// jackin's own check, not git worktree remove's: git would run
			// git status in the worktree itself, reading the config the
			// worktree's metadata names (the agent's to point elsewhere)
			// and recursing into submodules.
			st, err := inspect(ctx, c)
			if err != nil {
				return fmt.Errorf("remove worktree %s: cannot tell whether it holds uncommitted work: %w", c.Path, err)
			}
			if st.Dirty {
				return fmt.Errorf("remove worktree %s: it holds uncommitted work (%d uncommitted files or stashes); not removed without force", c.Path, st.Uncommitted)
			}
		}
		// Not while another instance's worktree of the same source is
		// being added or repaired (by this process or another jackin
		// sharing the state dir: <state dir>/worktrees/<fleet>/<instance>/<slug>).
		unlock, err := lockSource(stateDirOf(c), c.GitCommonDir)
		if err != nil {
			return err
		}
		defer unlock()
		// --force always, so git never checks the worktree itself (see
		// above); twice with force, for a worktree locked too.
		args := []string{"worktree", "remove", "--force"}
		if force {
			args = append(args, "--force")
		}
		git := sourceRepo(c).git
		_, err = git(ctx, append(args, c.Path)...)
		if err != nil {
			if !force {
				return fmt.Errorf("remove worktree %s: %w", c.Path, err)
			}
			// The source may be gone or the entry broken: purge the files.
			if rerr := os.RemoveAll(c.Path); rerr != nil {
				return fmt.Errorf("remove worktree %s: %w (and removing its files failed: %v)", c.Path, err, rerr)
			}
			_ = dropDanglingEntries(c.GitCommonDir, filepath.Dir(c.Path))
		}
		if _, err := git(ctx, "rev-parse", "--verify", "-q", "refs/heads/"+c.Branch); err == nil {
			if _, err := git(ctx, "branch", "--quiet", "-D", c.Branch); err != nil {
				return fmt.Errorf("delete the scratch branch %s in %s: %w", c.Branch, c.Src, err)
			}
		}
	default:
		if err := os.RemoveAll(c.Path); err != nil {
			return fmt.Errorf("remove clone %s: %w", c.Path, err)
		}
	}
	if err := removeReviewGitDir(c); err != nil {
		return err
	}
	meta := c.Path + ".json"
	if err := os.Remove(meta); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", meta, err)
	}
	// Leave no empty directories behind; a non-empty one stays.
	dir := filepath.Dir(c.Path)
	_ = os.Remove(dir)
	_ = os.Remove(filepath.Dir(dir))
	return nil
}

// List returns the checkouts made for a fleet (every fleet when fleet is
// ""), or for one instance, sorted by fleet, instance and slug. It reads
// the metadata jackin writes next to each checkout, so it works without the
// engine and after the instance is gone.
func List(stateDir, fleet, instance string) ([]Checkout, error) {
	pattern := filepath.Join(Root(stateDir), orStar(fleet), orStar(instance), "*.json")
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, fmt.Errorf("list checkouts: %w", err)
	}
	var out []Checkout
	for _, f := range files {
		if _, err := os.Stat(strings.TrimSuffix(f, ".json") + ".creating"); err == nil {
			continue // half-made: the next apply repairs it
		}
		c, err := readMeta(f)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Fleet != b.Fleet {
			return a.Fleet < b.Fleet
		}
		if a.Instance != b.Instance {
			return a.Instance < b.Instance
		}
		return a.Slug < b.Slug
	})
	return out, nil
}

func orStar(s string) string {
	if s == "" {
		return "*"
	}
	return s
}

func readMeta(path string) (Checkout, error) {
	var c Checkout
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read checkout record %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("read checkout record %s: %w", path, err)
	}
	return c, nil
}

// writeMeta writes the record atomically: a temp file, fsynced, renamed.
func writeMeta(path string, c Checkout) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode checkout record: %w", err)
	}
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, append(b, '\n')); err != nil {
		return fmt.Errorf("write checkout record %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write checkout record %s: %w", path, err)
	}
	return nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
