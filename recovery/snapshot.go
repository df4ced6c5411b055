package recovery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Target kinds: what a snapshot target is on the instance.
const (
	KindRW       = "rw"
	KindWorktree = "worktree"
	KindClone    = "clone"
)

// Triggers: why a snapshot was taken.
const (
	TriggerManual      = "manual"
	TriggerBeforeStart = "before-start"
	TriggerBeforeApply = "before-apply"
	TriggerPreRestore  = "pre-restore"
)

// Target is one host directory an agent can write: a rw mount's source or
// a checkout.
type Target struct {
	// Name is the target's name in a snapshot, unique per instance:
	// "<kind>-<slug of the container path>".
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Dst is where the container sees it.
	Dst string `json:"dst"`
	// Path is the host directory.
	Path string `json:"path"`
	// Excludes are path patterns left out of snapshots and left alone by
	// restores: a name ("node_modules") matches at any depth, a pattern
	// with a slash matches from the target's top.
	Excludes []string `json:"excludes,omitempty"`
}

// TargetInfo is a target as a snapshot recorded it.
type TargetInfo struct {
	Target
	Files int   `json:"files"`
	Dirs  int   `json:"dirs"`
	Bytes int64 `json:"bytes"`
	// Skipped counts entries a snapshot cannot hold: .git directories and
	// files (the checkout's repository data), sockets, FIFOs and devices.
	Skipped int `json:"skipped,omitempty"`
}

// Snapshot is one snapshot of an instance.
type Snapshot struct {
	// ID is the first 12 hex digits of the snapshot's commit.
	ID       string       `json:"id"`
	Commit   string       `json:"commit"`
	Ref      string       `json:"ref"`
	Instance string       `json:"instance"`
	Trigger  string       `json:"trigger"`
	Created  time.Time    `json:"created"`
	Targets  []TargetInfo `json:"targets"`
	// Duration is how long taking it took (set by Create only).
	Duration time.Duration `json:"-"`
}

// message is what a snapshot's commit message holds (one JSON line).
type message struct {
	Instance string       `json:"instance"`
	Trigger  string       `json:"trigger"`
	Created  time.Time    `json:"created"`
	Targets  []TargetInfo `json:"targets"`
}

func refPrefix(instance string) string { return "refs/jackin/" + instance + "/" }

// Create snapshots targets of instance. A target whose directory does not
// exist yet (a checkout before its first apply) is left out.
func (r *Repo) Create(ctx context.Context, instance, trigger string, targets []Target) (Snapshot, error) {
	if !safeName.MatchString(instance) {
		return Snapshot{}, fmt.Errorf("snapshot: invalid instance name %q", instance)
	}
	unlock, err := r.lock(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	defer unlock()
	return r.create(ctx, instance, trigger, targets)
}

func (r *Repo) create(ctx context.Context, instance, trigger string, targets []Target) (Snapshot, error) {
	start := time.Now()
	var top bytes.Buffer
	msg := message{Instance: instance, Trigger: trigger, Created: start.UTC()}
	sorted := append([]Target(nil), targets...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, t := range sorted {
		fi, err := os.Lstat(t.Path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return Snapshot{}, fmt.Errorf("snapshot %s: %w", t.Path, err)
		}
		if !fi.IsDir() {
			return Snapshot{}, fmt.Errorf("snapshot %s: not a directory (%s)", t.Path, fi.Mode().Type())
		}
		info, tree, err := r.snapTarget(ctx, instance, t)
		if err != nil {
			return Snapshot{}, fmt.Errorf("snapshot %s (%s at %s): %w", t.Name, t.Path, t.Dst, err)
		}
		fmt.Fprintf(&top, "040000 tree %s\t%s\n", tree, t.Name)
		msg.Targets = append(msg.Targets, info)
	}
	g := r.git("", "")
	treeID, err := runIn(ctx, g, top.Bytes(), "mktree")
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	body, _ := json.Marshal(msg)
	commit, err := g.Run(ctx, "commit-tree", treeID, "-m", string(body))
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	ref := refPrefix(instance) + strconv.FormatInt(start.UnixNano(), 10)
	if _, err := g.Run(ctx, "update-ref", ref, commit, ""); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	return Snapshot{ID: commit[:12], Commit: commit, Ref: ref, Instance: instance, Trigger: trigger, Created: msg.Created, Targets: msg.Targets, Duration: time.Since(start)}, nil
}

// entry is one file or directory of a target, as listed.
type entry struct {
	dir  bool
	link bool
	perm fs.FileMode // permission and special bits
}

// metaLine is one line of a target's meta blob: kind, octal mode, path,
// NUL-terminated (paths may hold newlines).
func metaLine(b *bytes.Buffer, rel string, e entry) {
	kind := "f"
	switch {
	case e.dir:
		kind = "d"
	case e.link:
		kind = "l"
	}
	fmt.Fprintf(b, "%s %04o %s\x00", kind, unixPerm(e.perm), rel)
}

// unixPerm is the permission bits with setuid, setgid and sticky in their
// Unix places.
func unixPerm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

// goPerm is the inverse of unixPerm.
func goPerm(p uint32) fs.FileMode {
	m := fs.FileMode(p & 0o777)
	if p&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if p&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if p&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// excluded reports whether rel matches one of the patterns.
func excluded(rel string, patterns []string) bool {
	base := path.Base(rel)
	for _, p := range patterns {
		p = strings.TrimSuffix(p, "/")
		if strings.Contains(p, "/") {
			if ok, _ := path.Match(strings.TrimPrefix(p, "/"), rel); ok {
				return true
			}
		} else if ok, _ := path.Match(p, base); ok {
			return true
		}
	}
	return false
}

// isDotGit reports a name git will never store (.git in any case).
func isDotGit(name string) bool { return strings.EqualFold(name, ".git") }

// snapTarget stores one target: its files through the target's own index
// (stat data from the last snapshot: unchanged files are not read), and a
// meta blob with every entry's mode. It returns the target's tree. When
// the listing matches the last snapshot's exactly (statCache), that
// snapshot's tree is the answer and git does not run.
func (r *Repo) snapTarget(ctx context.Context, instance string, t Target) (TargetInfo, string, error) {
	if !safeName.MatchString(t.Name) {
		return TargetInfo{}, "", fmt.Errorf("invalid target name %q", t.Name)
	}
	idxDir := filepath.Join(r.Dir, "indexes", instance)
	if err := os.MkdirAll(idxDir, 0o700); err != nil {
		return TargetInfo{Target: t}, "", err
	}
	listedAt := time.Now()
	scan, info, err := scanTarget(t)
	if err != nil {
		return info, "", err
	}
	cachePath := statCachePath(idxDir, t.Name)
	if c := loadStatCache(cachePath); c.unchanged(scan, t.Excludes) {
		return info, c.Tree, nil
	}
	entries := make(map[string]entry, len(scan))
	for p, s := range scan {
		entries[p] = s.entry
	}
	g := r.git(t.Path, filepath.Join(idxDir, t.Name+".index"))
	indexed, err := g.Run(ctx, "ls-files", "-z")
	if err != nil {
		return info, "", err
	}
	var changed string
	if indexed != "" {
		// Unchanged stat data: the entry is current, nothing is read. A
		// file whose stat data changed is listed (even with the same
		// content) and hashed again below.
		if changed, err = g.Run(ctx, "diff-files", "--name-only", "-z"); err != nil {
			return info, "", err
		}
	}
	inIndex := map[string]bool{}
	var update, remove bytes.Buffer
	for _, p := range splitZ(indexed) {
		inIndex[p] = true
		if e, ok := entries[p]; !ok || e.dir {
			remove.WriteString(p + "\x00") // gone (or now a directory)
		}
	}
	for p, e := range entries {
		if !e.dir && !inIndex[p] {
			update.WriteString(p + "\x00") // new
		}
	}
	for _, p := range splitZ(changed) {
		if e, ok := entries[p]; ok && !e.dir {
			update.WriteString(p + "\x00")
		}
	}
	if remove.Len() > 0 {
		// Removed by name: a path now beyond a symlink is still dropped.
		if _, err := runIn(ctx, g, remove.Bytes(), "update-index", "--force-remove", "-z", "--stdin"); err != nil {
			return info, "", err
		}
	}
	if update.Len() > 0 {
		if _, err := runIn(ctx, g, update.Bytes(), "update-index", "--add", "--remove", "--replace", "-z", "--stdin"); err != nil {
			return info, "", err
		}
	}
	files, err := g.Run(ctx, "write-tree")
	if err != nil {
		return info, "", err
	}
	paths := sortedPaths(scan)
	var meta bytes.Buffer
	for _, p := range paths {
		metaLine(&meta, p, entries[p])
	}
	metaID, err := runIn(ctx, g, meta.Bytes(), "hash-object", "-w", "--stdin")
	if err != nil {
		return info, "", err
	}
	tree, err := runIn(ctx, g, []byte(fmt.Sprintf("040000 tree %s\tfiles\n100644 blob %s\tmeta\n", files, metaID)), "mktree")
	if err != nil {
		return info, "", err
	}
	// A cache that cannot be written costs the next snapshot git's pass,
	// not this one.
	_ = saveStatCache(cachePath, tree, t.Excludes, listedAt, scan, paths)
	return info, tree, nil
}

func splitZ(s string) []string {
	var out []string
	for _, p := range strings.Split(s, "\x00") {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}
