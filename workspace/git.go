// Package workspace makes and removes the host-side isolated checkouts of
// worktree and clone mounts: git worktrees and local clones under the state
// dir, on a scratch branch per instance. It runs the host's git binary
// (no shell) and knows nothing of engines or the store.
//
// Everything an agent can write is hostile input here: a checkout's files
// and, for a clone, its whole .git; for a worktree, the source repository's
// git dir but for its config and hooks (mounted read-only). git runs
// programs its config names (filters, fsmonitor, hooks, diff drivers, a
// promisor remote's upload-pack...) and recurses into submodules, whose
// config is theirs. So jackin never lets git read a config an agent can
// write: a checkout is read through a git dir jackin makes (shadowGitDir),
// and the source repository with its git dirs named explicitly, never
// found through files in it.
package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
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

// hardening is given to every git call jackin makes. Command-line config
// wins over every config file and reaches the git processes git starts
// itself: whatever a repository's config says, no fsmonitor command and no
// hook runs, nothing recurses into a submodule (git would read the
// submodule's own config there), and no ext:: URL runs a command.
var hardening = []string{
	"-c", "core.fsmonitor=false",
	"-c", "core.hooksPath=/dev/null",
	"-c", "submodule.recurse=false",
	"-c", "protocol.ext.allow=never",
}

// keptEnv are the GIT_ variables of jackin's own environment that reach the
// git calls on the operator's repositories: where the operator's own config
// lives and where git's helpers are. Every other GIT_ variable is dropped:
// GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE... set around jackin (in a hook, an
// alias) would point its calls at another repository, and GIT_EXTERNAL_DIFF,
// GIT_PAGER... name programs.
func keptEnv(name string, operatorConfig bool) bool {
	switch {
	case name == "GIT_EXEC_PATH":
		return true
	case !operatorConfig:
		return false
	case name == "GIT_CONFIG_GLOBAL", name == "GIT_CONFIG_SYSTEM", name == "GIT_CONFIG_NOSYSTEM", name == "GIT_CONFIG_COUNT",
		strings.HasPrefix(name, "GIT_CONFIG_KEY_"), strings.HasPrefix(name, "GIT_CONFIG_VALUE_"):
		return true
	}
	return false
}

// gitEnv is the environment of a git call: jackin's, without the GIT_
// variables keptEnv drops, plus extra. Prompts are disabled and the locale
// fixed, so output can be parsed and a call never waits for a person;
// optional locks are off, so reading never writes an index.
func gitEnv(operatorConfig bool, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "GIT_") && !keptEnv(name, operatorConfig) {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "GIT_TERMINAL_PROMPT=0", "LC_ALL=C", "GIT_OPTIONAL_LOCKS=0")
	return append(env, extra...)
}

// runGit runs git (no shell) in dir with env and returns its trimmed stdout.
func runGit(ctx context.Context, dir string, env, args []string) (string, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return "", ErrNoGit
	}
	ctx, cancel := context.WithTimeout(ctx, GitTimeout)
	defer cancel()
	full := append(append([]string(nil), hardening...), args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir, cmd.Env = dir, env
	// A process git started that outlives it (and holds its output open)
	// must not hang the call once git is gone.
	cmd.WaitDelay = 10 * time.Second
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

// git runs git in dir ("" for the working directory), finding the
// repository there as git does. Only for repositories no agent can write:
// a source before jackin knows where its git dirs are (InspectSource's
// first call, which runs nothing those dirs name), and a clone jackin is
// making, before any container mounts it.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	return runGit(ctx, dir, gitEnv(true), args)
}

// repo is a source repository with its git dirs named explicitly.
type repo struct {
	// gitDir is the git dir of the checkout at workTree: the common dir for
	// a main worktree, <common dir>/worktrees/<name> for a linked one.
	gitDir    string
	commonDir string
	workTree  string
}

// sourceRepo is the repository a checkout's worktree was added to. Its own
// worktree entries and branches are all jackin changes there, so the main
// git dir serves (whether the source itself is a main or linked worktree).
func sourceRepo(c Checkout) repo {
	return repo{gitDir: c.GitCommonDir, commonDir: c.GitCommonDir, workTree: c.Src}
}

// git runs git on the source repository r with its git dirs given to git
// rather than found: a worktree's agent can write a commondir file into
// the source's git dir, which would make git read another config (of the
// agent's making) in place of the read-only one. The operator's own config
// (global, system) applies: these calls act on the operator's repository,
// as the operator's git would.
func (r repo) git(ctx context.Context, args ...string) (string, error) {
	env := gitEnv(true, "GIT_DIR="+r.gitDir, "GIT_COMMON_DIR="+r.commonDir)
	if r.workTree != "" {
		env = append(env, "GIT_WORK_TREE="+r.workTree)
	}
	return runGit(ctx, r.commonDir, env, args)
}

// checkGitDirs refuses a source whose git dir points git elsewhere than its
// own repository: a main worktree's git dir is its common dir, a linked
// worktree's is an entry of its common dir's worktrees/. Anything else
// means a commondir file no git wrote (an agent with a worktree mount of the
// repository can write one): git would take config and hooks from there.
func checkGitDirs(src, gitDir, commonDir string) error {
	if gitDir == commonDir || filepath.Dir(gitDir) == filepath.Join(commonDir, "worktrees") {
		return nil
	}
	return fmt.Errorf("src %s: its git dir %s names %s as its common dir, and only a linked worktree's entry (under %s) may: a commondir file in %s that git never wrote (an agent with a worktree mount of this repository can write one) makes git read config and hooks from elsewhere; check and remove it",
		src, gitDir, commonDir, filepath.Join(commonDir, "worktrees"), gitDir)
}

// gitLayout is where a checkout's git data lives on the host, as jackin
// recorded it, never as files in the checkout say.
type gitLayout struct {
	// root bounds every path below: the clone's directory, or the source's
	// common dir for a worktree. Files are read through an os.Root on it,
	// so no symlink an agent planted leads out of it.
	root string
	// private holds HEAD and the index, relative to root: ".git" for a
	// clone, "worktrees/<name>" for a worktree.
	private string
	// common holds objects, refs, packed-refs, logs, shallow and info,
	// relative to root: ".git" for a clone, "." for a worktree.
	common string
}

func (l gitLayout) commonPath(name string) string { return filepath.Join(l.root, l.common, name) }
func (l gitLayout) privatePath(name string) string {
	return filepath.Join(l.root, l.private, name)
}

// layoutOf finds a checkout's git data.
func layoutOf(c Checkout) (gitLayout, error) {
	switch c.Mode {
	case ModeClone:
		dotgit := filepath.Join(c.Path, ".git")
		fi, err := os.Lstat(dotgit)
		if err != nil {
			return gitLayout{}, fmt.Errorf("clone %s: %w", c.Path, err)
		}
		if !fi.IsDir() {
			return gitLayout{}, fmt.Errorf("clone %s: its .git is not a directory (%s): jackin reads only the clone's own git dir", c.Path, fi.Mode().Type())
		}
		return gitLayout{root: c.Path, private: ".git", common: ".git"}, nil
	case ModeWorktree:
		private, err := worktreeGitDir(c)
		if err != nil {
			return gitLayout{}, err
		}
		return gitLayout{root: c.GitCommonDir, private: filepath.Join("worktrees", filepath.Base(private)), common: "."}, nil
	}
	return gitLayout{}, fmt.Errorf("checkout %s: %q is not a checkout mode", c.Path, c.Mode)
}

// worktreeGitDir is a worktree's own git dir, <common dir>/worktrees/<name>:
// as recorded when jackin made the worktree or, for a record from before
// jackin kept it, as the checkout's .git file names it. Either way only an
// entry of the recorded common dir's worktrees/ is accepted.
func worktreeGitDir(c Checkout) (string, error) {
	if c.GitCommonDir == "" || !filepath.IsAbs(c.GitCommonDir) {
		return "", fmt.Errorf("worktree %s: no source git dir recorded (%q)", c.Path, c.GitCommonDir)
	}
	p := c.GitDir
	if p == "" {
		var err error
		if p, err = readGitFile(c.Path); err != nil {
			return "", err
		}
	}
	return checkWorktreeEntry(c.GitCommonDir, p)
}

// checkWorktreeEntry resolves p and checks it is an entry of commonDir's
// worktrees/.
func checkWorktreeEntry(commonDir, p string) (string, error) {
	admin := filepath.Join(commonDir, "worktrees")
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("the worktree's git dir: %w", err)
	}
	if filepath.Dir(real) != admin {
		return "", fmt.Errorf("the worktree's git dir %s is not an entry of %s", p, admin)
	}
	return real, nil
}

// readGitFile reads the git dir a worktree's .git file names (agent-written
// data: the caller checks where it points).
func readGitFile(checkout string) (string, error) {
	root, err := os.OpenRoot(checkout)
	if err != nil {
		return "", fmt.Errorf("worktree %s: %w", checkout, err)
	}
	defer root.Close()
	b, err := readSmall(root, ".git", 4096)
	if err != nil {
		return "", fmt.Errorf("worktree %s: read its .git file: %w", checkout, err)
	}
	p, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir:")
	p = strings.TrimSpace(p)
	if !ok || p == "" || strings.ContainsAny(p, "\n\x00") {
		return "", fmt.Errorf("worktree %s: its .git file names no git dir", checkout)
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(checkout, p)
	}
	return p, nil
}

// Limits on what a shadow git dir copies from a checkout.
const (
	maxHead    = 64 << 10
	maxIndex   = 2 << 30
	maxExclude = 4 << 20
	maxShallow = 64 << 20
	maxShared  = 8 // split-index shared index files
)

// openRegular opens name under root for reading if it is a regular file of
// at most limit bytes. It opens without blocking, so a FIFO planted in its
// place is refused rather than waited on.
func openRegular(root *os.Root, name string, limit int64) (*os.File, fs.FileInfo, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is not a regular file (%s)", name, fi.Mode().Type())
	}
	if fi.Size() > limit {
		f.Close()
		return nil, nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return f, fi, nil
}

// readSmall reads a regular file of at most limit bytes under root.
func readSmall(root *os.Root, name string, limit int64) ([]byte, error) {
	f, _, err := openRegular(root, name, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// copyIn copies the regular file name under root to dst (a new file),
// with its modification time: git compares the index's to its entries'.
func copyIn(root *os.Root, name, dst string, limit int64) error {
	f, fi, err := openRegular(root, name, limit)
	if err != nil {
		return err
	}
	defer f.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(out, io.LimitReader(f, limit+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > limit {
		err = fmt.Errorf("%s grew past %d bytes", name, limit)
	}
	if err != nil {
		return err
	}
	return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
}

// gitDirConfig is the config of the git dirs jackin makes for a checkout:
// it names no program, turns off what git would otherwise start, and
// keeps submodules out (git would read their own config). objectFormat is
// the checkout's hash ("sha1" or "sha256").
func gitDirConfig(objectFormat string) string {
	version := "0"
	if objectFormat != "sha1" {
		version = "1"
	}
	s := "[core]\n\trepositoryformatversion = " + version + "\n\tbare = false\n\tfsmonitor = false\n\thooksPath = /dev/null\n\tuntrackedCache = false\n\tlogAllRefUpdates = false\n" +
		"[diff]\n\tignoreSubmodules = all\n\tsubmodule = short\n[status]\n\tsubmoduleSummary = false\n[submodule]\n\trecurse = false\n"
	if version == "1" {
		s += "[extensions]\n\tobjectFormat = " + objectFormat + "\n"
	}
	return s
}

// objectFormat is the hash of a checkout's repository, told by the length
// of the base commit jackin recorded (not by the checkout's config).
func objectFormat(c Checkout) string {
	if len(c.Base) == 64 {
		return "sha256"
	}
	return "sha1"
}

var sharedIndexName = regexp.MustCompile(`^sharedindex\.[0-9a-f]{40,64}$`)

// shadowGitDir is a git dir jackin makes for one look at a checkout: its
// config is jackin's, HEAD and the index are copies of the checkout's, and
// refs, packed-refs and logs are symlinks to the checkout's (git reads them
// as data). git runs on it with --git-dir and --work-tree, no system or
// global config, and the checkout's object store by environment: no file an
// agent wrote is read as config, so nothing it names runs.
type shadowGitDir struct {
	dir, work, objects string
}

// newShadow makes a shadow git dir for c; Close removes it.
func newShadow(c Checkout) (*shadowGitDir, error) {
	lay, err := layoutOf(c)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(lay.commonPath("reftable")); err == nil {
		return nil, fmt.Errorf("checkout %s: its repository keeps refs in a reftable, which jackin cannot read without the checkout's config", c.Path)
	}
	root, err := os.OpenRoot(lay.root)
	if err != nil {
		return nil, fmt.Errorf("checkout %s: %w", c.Path, err)
	}
	defer root.Close()
	dir, err := os.MkdirTemp("", "jackin-git-")
	if err != nil {
		return nil, fmt.Errorf("make a git dir to read %s: %w", c.Path, err)
	}
	s := &shadowGitDir{dir: dir, work: c.Path, objects: lay.commonPath("objects")}
	if err := s.fill(c, lay, root); err != nil {
		s.Close()
		return nil, fmt.Errorf("read checkout %s: %w", c.Path, err)
	}
	return s, nil
}

func (s *shadowGitDir) fill(c Checkout, lay gitLayout, root *os.Root) error {
	if err := os.WriteFile(filepath.Join(s.dir, "config"), []byte(gitDirConfig(objectFormat(c))), 0o600); err != nil {
		return err
	}
	if err := copyIn(root, filepath.Join(lay.private, "HEAD"), filepath.Join(s.dir, "HEAD"), maxHead); err != nil {
		return fmt.Errorf("HEAD: %w", err)
	}
	optional := []struct {
		name, dst string
		limit     int64
	}{
		{filepath.Join(lay.private, "index"), "index", maxIndex},
		{filepath.Join(lay.common, "shallow"), "shallow", maxShallow},
		{filepath.Join(lay.common, "info", "exclude"), filepath.Join("info", "exclude"), maxExclude},
	}
	if err := os.Mkdir(filepath.Join(s.dir, "info"), 0o700); err != nil {
		return err
	}
	// A split index names its shared part, a file beside it.
	if d, err := root.Open(lay.private); err == nil {
		names, _ := d.Readdirnames(-1)
		d.Close()
		n := 0
		for _, name := range names {
			if sharedIndexName.MatchString(name) && n < maxShared {
				optional = append(optional, struct {
					name, dst string
					limit     int64
				}{filepath.Join(lay.private, name), name, maxIndex})
				n++
			}
		}
	}
	for _, f := range optional {
		if err := copyIn(root, f.name, filepath.Join(s.dir, f.dst), f.limit); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	for _, name := range []string{"objects", "refs", "packed-refs", "logs"} {
		if err := os.Symlink(lay.commonPath(name), filepath.Join(s.dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// Close removes the shadow git dir.
func (s *shadowGitDir) Close() error { return os.RemoveAll(s.dir) }

// git runs git on the checkout through the shadow git dir.
func (s *shadowGitDir) git(ctx context.Context, args ...string) (string, error) {
	env := gitEnv(false, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_OBJECT_DIRECTORY="+s.objects,
		// A missing object is an error, never a fetch from a remote (git
		// before 2.45 ignores this; the shadow config names no remote).
		"GIT_NO_LAZY_FETCH=1")
	return runGit(ctx, s.dir, env, append([]string{"--git-dir=" + s.dir, "--work-tree=" + s.work}, args...))
}

// ReviewGitDir is the git dir jackin keeps under the state dir for the
// operator to review a checkout on the host with (ReviewCommand): like a
// shadow git dir, its config is jackin's, but it follows the checkout: its
// index, objects and refs are symlinks to the checkout's.
func ReviewGitDir(c Checkout) string {
	return filepath.Join(stateDirOf(c), "review", c.Fleet, c.Instance, c.Slug+".git")
}

// stateDirOf is the state dir a checkout lives in:
// <state dir>/worktrees/<fleet>/<instance>/<slug>.
func stateDirOf(c Checkout) string {
	return filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(c.Path))))
}

// ensureReviewGitDir makes (or repairs) c's review git dir. It is made
// aside and renamed into place, so a review never sees half of one.
func ensureReviewGitDir(c Checkout) error {
	dir := ReviewGitDir(c)
	lay, err := layoutOf(c)
	if err != nil {
		return err
	}
	want := map[string]string{"index": lay.privatePath("index")}
	for _, name := range []string{"objects", "refs", "packed-refs", "logs", "shallow"} {
		want[name] = lay.commonPath(name)
	}
	head := "ref: refs/heads/" + c.Branch + "\n"
	config := gitDirConfig(objectFormat(c))
	if reviewGitDirIs(dir, head, config, want) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("make the review git dir of %s: %w", c.Path, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+c.Slug+".git-")
	if err != nil {
		return fmt.Errorf("make the review git dir of %s: %w", c.Path, err)
	}
	defer os.RemoveAll(tmp)
	err = os.WriteFile(filepath.Join(tmp, "config"), []byte(config), 0o600)
	if err == nil {
		// HEAD only has to be valid: the review names the base commit, and
		// the scratch branch is what the agent works on.
		err = os.WriteFile(filepath.Join(tmp, "HEAD"), []byte(head), 0o600)
	}
	for name, target := range want {
		if err == nil {
			err = os.Symlink(target, filepath.Join(tmp, name))
		}
	}
	if err == nil {
		if err = os.RemoveAll(dir); err == nil {
			err = os.Rename(tmp, dir)
		}
	}
	if err != nil {
		return fmt.Errorf("make the review git dir of %s: %w", c.Path, err)
	}
	return nil
}

// reviewGitDirIs reports whether dir is already the review git dir wanted.
func reviewGitDirIs(dir, head, config string, links map[string]string) bool {
	for name, content := range map[string]string{"HEAD": head, "config": config} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != content {
			return false
		}
	}
	for name, target := range links {
		if got, err := os.Readlink(filepath.Join(dir, name)); err != nil || got != target {
			return false
		}
	}
	return true
}

// removeReviewGitDir removes c's review git dir, and its parents once empty.
func removeReviewGitDir(c Checkout) error {
	dir := ReviewGitDir(c)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove the review git dir %s: %w", dir, err)
	}
	_ = os.Remove(filepath.Dir(dir))
	_ = os.Remove(filepath.Dir(filepath.Dir(dir)))
	_ = os.Remove(filepath.Dir(filepath.Dir(filepath.Dir(dir))))
	return nil
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
