package recovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Restored is what a restore did.
type Restored struct {
	// Snapshot is the snapshot restored.
	Snapshot Snapshot `json:"snapshot"`
	// Before is the snapshot of the state the restore replaced: restoring
	// it undoes the restore.
	Before  Snapshot `json:"before"`
	Written int      `json:"written"`
	Deleted int      `json:"deleted"`
	Modes   int      `json:"modes"`
	// Left are entries a restore would have removed but left in place: a
	// directory still holding what snapshots never cover (.git, excluded
	// paths).
	Left []string `json:"left,omitempty"`
}

// Restore brings instance's targets back to snapshot id. Every target the
// snapshot holds must be one of targets, at the same host path: a restore
// writes only inside the instance's current mounts. It first snapshots the
// targets as they are (trigger pre-restore), so the restore can be undone.
// Inside each target, only what differs is written or removed; .git
// entries and excluded paths are never touched. The caller makes sure the
// agent is not running.
func (r *Repo) Restore(ctx context.Context, instance, id string, targets []Target) (Restored, error) {
	unlock, err := r.lock(ctx)
	if err != nil {
		return Restored{}, err
	}
	defer unlock()
	snap, err := r.Find(ctx, instance, id)
	if err != nil {
		return Restored{}, err
	}
	current := map[string]Target{}
	for _, t := range targets {
		current[t.Name] = t
	}
	var restore []Target
	for _, ti := range snap.Targets {
		t, ok := current[ti.Name]
		if !ok || t.Path != ti.Path {
			return Restored{}, fmt.Errorf("snapshot %s holds %s (%s at %s), which is not a writable mount of instance %s now: nothing restored", snap.ID, ti.Name, ti.Path, ti.Dst, instance)
		}
		restore = append(restore, t)
	}
	before, err := r.create(ctx, instance, TriggerPreRestore, targets)
	if err != nil {
		return Restored{}, fmt.Errorf("snapshot the state before the restore: %w", err)
	}
	res := Restored{Snapshot: snap, Before: before}
	cf, err := r.catFile(ctx)
	if err != nil {
		return res, err
	}
	defer cf.close()
	for _, t := range restore {
		if err := r.restoreTarget(ctx, cf, t, before.Commit, snap.Commit, &res); err != nil {
			return res, fmt.Errorf("restore %s (%s): %w (the state before the restore is snapshot %s)", t.Name, t.Path, err, before.ID)
		}
	}
	return res, nil
}

// change is one line of git diff-tree --raw -z.
type change struct {
	newMode string
	newBlob string
	status  byte
	path    string
}

func parseRaw(out string) ([]change, error) {
	f := strings.Split(out, "\x00")
	var cs []change
	for i := 0; i+1 < len(f); i += 2 {
		head := strings.Fields(strings.TrimPrefix(f[i], ":"))
		if len(head) != 5 {
			return nil, fmt.Errorf("unexpected diff-tree output %q", f[i])
		}
		cs = append(cs, change{newMode: head[1], newBlob: head[3], status: head[4][0], path: f[i+1]})
	}
	return cs, nil
}

func (r *Repo) restoreTarget(ctx context.Context, cf *catFile, t Target, fromCommit, toCommit string, res *Restored) error {
	if fi, err := os.Lstat(t.Path); err != nil || !fi.IsDir() {
		if err == nil {
			err = fmt.Errorf("not a directory (%s)", fi.Mode().Type())
		}
		return err
	}
	root, err := os.OpenRoot(t.Path)
	if err != nil {
		return err
	}
	defer root.Close()
	from, to := fromCommit+":"+t.Name, toCommit+":"+t.Name
	out, err := r.git("", "").Run(ctx, "diff-tree", "-r", "-z", "--raw", "--no-renames", "--full-index", from+"/files", to+"/files")
	if err != nil {
		return err
	}
	changes, err := parseRaw(out)
	if err != nil {
		return err
	}
	// Removals first, deepest first: a path that becomes a directory
	// (or stops being one) must be gone before its replacement is written.
	sort.SliceStable(changes, func(i, j int) bool { return len(changes[i].path) > len(changes[j].path) })
	for _, c := range changes {
		if c.status == 'D' || c.status == 'T' {
			if err := root.Remove(c.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			if c.status == 'D' {
				res.Deleted++
			}
		}
	}
	// Metadata: the directories (with empty ones) and modes wanted, and
	// the directories there were.
	toMeta, err := cf.read(to + "/meta")
	if err != nil {
		return err
	}
	fromMeta, err := cf.read(from + "/meta")
	if err != nil {
		return err
	}
	want, have := parseMeta(toMeta), parseMeta(fromMeta)
	// Directories that should not exist, deepest first; one still holding
	// what snapshots do not cover stays.
	var gone []string
	for p, e := range have {
		if w, ok := want[p]; e.dir && (!ok || !w.dir) {
			gone = append(gone, p)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return len(gone[i]) > len(gone[j]) })
	for _, p := range gone {
		if err := root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			res.Left = append(res.Left, path.Join(t.Path, p))
		} else {
			res.Deleted++
		}
	}
	var dirs []string
	for p, e := range want {
		if e.dir {
			dirs = append(dirs, p)
		}
	}
	sort.Strings(dirs)
	for _, p := range dirs {
		if err := root.MkdirAll(p, 0o700); err != nil {
			return err
		}
	}
	sort.SliceStable(changes, func(i, j int) bool { return changes[i].path < changes[j].path })
	for _, c := range changes {
		if c.status == 'D' || c.newMode == "160000" {
			continue
		}
		if err := writeEntry(root, cf, c); err != nil {
			return fmt.Errorf("%s: %w", c.path, err)
		}
		res.Written++
	}
	for p, e := range want {
		if e.link {
			continue
		}
		fi, err := root.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink != 0 {
			continue
		}
		if fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != e.perm {
			if err := root.Chmod(p, e.perm); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			res.Modes++
		}
	}
	return nil
}

// writeEntry writes one changed file or symlink: aside, then renamed over
// whatever is there, so an interrupted restore never leaves half a file.
func writeEntry(root *os.Root, cf *catFile, c change) error {
	rd, _, err := cf.object(c.newBlob)
	if err != nil {
		return err
	}
	dir := path.Dir(c.path)
	if err := root.MkdirAll(dir, 0o700); err != nil {
		_, _ = io.Copy(io.Discard, rd)
		return err
	}
	// A directory where the file goes (now empty: its entries were
	// removed) makes way.
	if fi, err := root.Lstat(c.path); err == nil && fi.IsDir() {
		if err := root.Remove(c.path); err != nil {
			_, _ = io.Copy(io.Discard, rd)
			return err
		}
	}
	tmp := path.Join(dir, ".jackin-restore-"+strconv.Itoa(os.Getpid())+"-"+path.Base(c.path))
	if len(path.Base(tmp)) > 250 {
		tmp = path.Join(dir, ".jackin-restore-"+strconv.Itoa(os.Getpid()))
	}
	_ = root.Remove(tmp)
	if c.newMode == "120000" {
		target, err := io.ReadAll(rd)
		if err != nil {
			return err
		}
		if err := root.Symlink(string(target), tmp); err != nil {
			return err
		}
	} else {
		perm := fs.FileMode(0o644)
		if c.newMode == "100755" {
			perm = 0o755
		}
		f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
		if err != nil {
			_, _ = io.Copy(io.Discard, rd)
			return err
		}
		_, err = io.Copy(f, rd)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = root.Remove(tmp)
			return err
		}
	}
	if err := root.Rename(tmp, c.path); err != nil {
		_ = root.Remove(tmp)
		return err
	}
	return nil
}

// parseMeta reads a meta blob.
func parseMeta(b []byte) map[string]entry {
	out := map[string]entry{}
	for _, rec := range bytes.Split(b, []byte{0}) {
		if len(rec) < 7 {
			continue
		}
		kind, rest, _ := strings.Cut(string(rec), " ")
		mode, p, ok := strings.Cut(rest, " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(mode, 8, 32)
		if err != nil {
			continue
		}
		out[p] = entry{dir: kind == "d", link: kind == "l", perm: goPerm(uint32(n))}
	}
	return out
}
