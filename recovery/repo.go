// Package recovery keeps snapshots of what an agent can write on the host
// (its rw mounts and its worktree and clone checkouts) and restores them.
//
// Snapshots are git objects in a repository jackin owns, one per fleet,
// under the state dir: <state>/recovery/<fleet>.git. A snapshot is a commit
// on a ref refs/jackin/<instance>/<unix nanoseconds>; its tree holds, per
// target (one mount), the files as git stores them and a small "meta" blob
// with what git does not keep (every entry's permission bits, directories
// including empty ones). git's store is content-addressed, so a second
// snapshot of an unchanged tree adds one commit and nothing else; and a
// per-target index under the repository keeps each file's stat data, so
// that second snapshot reads no file content at all.
//
// Everything in a target is hostile input. git runs only through
// workspace.OwnGit: the repository's own config (written here, naming no
// program), no system or global config, no hook, fsmonitor or filter, and
// every attribute that would change content (text, eol, ident, filter,
// working-tree-encoding) unset for every path in the repository's
// info/attributes, which wins over any .gitattributes in the target. jackin
// reads the files itself only to list them; a restore writes through an
// os.Root on the target, so no symlink the agent planted leads outside it.
package recovery

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/jackin-dev/jackin/workspace"
)

// DirName is the state dir's subdirectory holding the snapshot repositories.
const DirName = "recovery"

// repoConfig is the repository's whole config: nothing in it names a
// program, nothing converts content, auto gc never starts in the
// background (a prune is explicit, under the repository lock), and no
// path is refused for looking like a Windows or macOS alias of .git (an
// agent could otherwise make every snapshot fail with one file name).
const repoConfig = `[core]
	repositoryformatversion = 0
	bare = false
	filemode = true
	symlinks = true
	ignorecase = false
	precomposeunicode = false
	autocrlf = false
	safecrlf = false
	fsmonitor = false
	hooksPath = /dev/null
	untrackedCache = false
	logAllRefUpdates = false
	protectNTFS = false
	protectHFS = false
	looseCompression = 1
	quotePath = false
[gc]
	auto = 0
	autoDetach = false
[user]
	name = jackin
	email = jackin@localhost
[submodule]
	recurse = false
`

// repoAttributes unsets, for every path, each attribute that would make
// git store something other than the file's bytes.
const repoAttributes = "* -text -eol -crlf -ident -filter -working-tree-encoding -diff -merge\n"

// Repo is one fleet's snapshot repository.
type Repo struct {
	// Dir is the git dir.
	Dir   string
	fleet string
}

// RepoDir is where fleet's snapshot repository lives.
func RepoDir(stateDir, fleet string) string {
	if abs, err := filepath.Abs(stateDir); err == nil {
		stateDir = abs
	}
	return filepath.Join(stateDir, DirName, fleet+".git")
}

var safeName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Open opens fleet's snapshot repository, making it when missing. It is
// made aside and renamed into place, so a killed jackin never leaves half
// of one where the next run looks.
func Open(ctx context.Context, stateDir, fleet string) (*Repo, error) {
	if !safeName.MatchString(fleet) {
		return nil, fmt.Errorf("snapshot repository: invalid fleet name %q", fleet)
	}
	dir := RepoDir(stateDir, fleet)
	r := &Repo{Dir: dir, fleet: fleet}
	if _, err := os.Stat(filepath.Join(dir, "jackin-snapshots")); err == nil {
		return r, r.writeConfig()
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, fmt.Errorf("make the snapshot repository: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+fleet+".git-")
	if err != nil {
		return nil, fmt.Errorf("make the snapshot repository: %w", err)
	}
	defer os.RemoveAll(tmp)
	g := workspace.OwnGit{GitDir: tmp}
	if _, err := g.Run(ctx, "init", "-q", "--bare", tmp); err != nil {
		return nil, fmt.Errorf("make the snapshot repository: %w", err)
	}
	for _, d := range []string{"hooks", "description"} {
		_ = os.RemoveAll(filepath.Join(tmp, d))
	}
	tr := &Repo{Dir: tmp, fleet: fleet}
	if err := tr.writeConfig(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "jackin-snapshots"), []byte("jackin snapshot repository of fleet "+fleet+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("make the snapshot repository: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "jackin-snapshots")); serr == nil {
			return r, nil // another jackin made it meanwhile
		}
		return nil, fmt.Errorf("make the snapshot repository: %w", err)
	}
	return r, nil
}

// writeConfig (re)writes the config and attributes jackin wants, so a
// repository from an older jackin, or one tampered with, is put right.
func (r *Repo) writeConfig() error {
	want := map[string]string{"config": repoConfig, filepath.Join("info", "attributes"): repoAttributes}
	for name, content := range want {
		p := filepath.Join(r.Dir, name)
		if b, err := os.ReadFile(p); err == nil && string(b) == content {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fmt.Errorf("snapshot repository %s: %w", r.Dir, err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return fmt.Errorf("snapshot repository %s: %w", r.Dir, err)
		}
	}
	return nil
}

func (r *Repo) git(workTree, index string) workspace.OwnGit {
	return workspace.OwnGit{GitDir: r.Dir, WorkTree: workTree, IndexFile: index}
}

// lock takes the repository's writer lock (a kernel file lock the kernel
// drops when its holder dies, even by SIGKILL) and then removes the lock
// files git leaves behind when it is killed: holding the lock, nothing
// else can be writing them.
func (r *Repo) lock(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(r.Dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the snapshot repository: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock the snapshot repository: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock the snapshot repository: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	r.dropStaleLocks()
	return func() { f.Close() }, nil
}

// dropStaleLocks removes git's *.lock files left by a killed run.
func (r *Repo) dropStaleLocks() {
	for _, sub := range []string{"indexes", "refs"} {
		_ = filepath.WalkDir(filepath.Join(r.Dir, sub), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".lock") {
				_ = os.Remove(p)
			}
			return nil
		})
	}
	for _, name := range []string{"packed-refs.lock", "index.lock", "HEAD.lock", "shallow.lock"} {
		_ = os.Remove(filepath.Join(r.Dir, name))
	}
}

// Size is the bytes the repository takes on disk (its objects and
// indexes).
func (r *Repo) Size() (int64, error) {
	return DirSize(r.Dir)
}

// DirSize sums the sizes of the regular files under dir.
func DirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	return n, err
}

// OpenExisting opens fleet's snapshot repository without making or
// changing anything; a fleet that never had a snapshot is nil, nil.
func OpenExisting(stateDir, fleet string) (*Repo, error) {
	if !safeName.MatchString(fleet) {
		return nil, fmt.Errorf("snapshot repository: invalid fleet name %q", fleet)
	}
	dir := RepoDir(stateDir, fleet)
	if _, err := os.Stat(filepath.Join(dir, "jackin-snapshots")); err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("snapshot repository: %w", err)
	}
	return &Repo{Dir: dir, fleet: fleet}, nil
}
