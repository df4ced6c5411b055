package recovery

import (
	"bufio"
	"encoding/gob"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// A target is listed once per snapshot, by a parallel walk that keeps each
// entry's stat data (statKey). The walk's result is compared with the one
// the target's last snapshot kept (statCache): when every entry has the
// same stat data and none was "racy" (changed so close to that listing
// that a later change could leave the same stat data), the tree is the
// last snapshot's and git is not run for the target at all. Anything else
// takes git's index path, which hashes what changed.

// statKey is what says that an entry did not change since it was listed:
// a change of content or mode moves ctime (which no program can set), a
// replacement moves the inode.
type statKey struct {
	Mode  uint32
	Size  int64
	Mtime int64 // ns
	Ctime int64 // ns
	Ino   uint64
	Dev   uint64
}

// scanned is one listed entry.
type scanned struct {
	entry
	key statKey
}

// scanWorkers is how many directories are listed at once: stat is a
// syscall that waits on the kernel, not the CPU alone.
func scanWorkers() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// scanTarget lists a target without following symlinks: every file,
// symlink and directory below it (not the top), by slash-separated path,
// leaving out .git (counted as skipped) and excluded paths.
func scanTarget(t Target) (map[string]scanned, TargetInfo, error) {
	type dirJob struct{ rel string }
	var (
		mu       sync.Mutex
		out      = map[string]scanned{}
		info     = TargetInfo{Target: t}
		firstErr error
		pending  sync.WaitGroup
	)
	jobs := make(chan dirJob, 1024)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	var queue func(rel string)
	listDir := func(rel string) {
		defer pending.Done()
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			return
		}
		dir := t.Path
		if rel != "" {
			dir = filepath.Join(t.Path, filepath.FromSlash(rel))
		}
		des, err := readDirNames(dir)
		if err != nil {
			fail(err)
			return
		}
		local := make(map[string]scanned, len(des))
		var skipped, files, dirs int
		var bytes int64
		var subdirs []string
		for _, name := range des {
			p := name
			if rel != "" {
				p = rel + "/" + name
			}
			fi, err := os.Lstat(filepath.Join(dir, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed while listed: as if listed a moment later
			}
			if err != nil {
				fail(err)
				return
			}
			if isDotGit(name) {
				skipped++
				continue
			}
			if excluded(p, t.Excludes) {
				continue
			}
			k := keyOf(fi)
			switch {
			case fi.IsDir():
				local[p] = scanned{entry{dir: true, perm: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}, k}
				dirs++
				subdirs = append(subdirs, p)
			case fi.Mode().IsRegular():
				local[p] = scanned{entry{perm: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}, k}
				files++
				bytes += fi.Size()
			case fi.Mode()&fs.ModeSymlink != 0:
				local[p] = scanned{entry{link: true, perm: fi.Mode().Perm()}, k}
				files++
			default:
				skipped++
			}
		}
		mu.Lock()
		for p, s := range local {
			out[p] = s
		}
		info.Skipped += skipped
		info.Files += files
		info.Dirs += dirs
		info.Bytes += bytes
		mu.Unlock()
		for _, sd := range subdirs {
			queue(sd)
		}
	}
	queue = func(rel string) {
		pending.Add(1)
		select {
		case jobs <- dirJob{rel}:
		default:
			// The queue is full: list it here rather than block a worker
			// on its own queue.
			listDir(rel)
		}
	}
	var workers sync.WaitGroup
	for range scanWorkers() {
		workers.Go(func() {
			for j := range jobs {
				listDir(j.rel)
			}
		})
	}
	queue("")
	pending.Wait()
	close(jobs)
	workers.Wait()
	if firstErr != nil {
		return nil, info, firstErr
	}
	return out, info, nil
}

// readDirNames is a directory's entry names, unsorted.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// statCache is what a target's last snapshot listed.
type statCache struct {
	// Tree is the target's tree in that snapshot.
	Tree     string
	Excludes []string
	// At is when the listing started (ns): an entry whose stat data is
	// that recent is racy.
	At      int64
	Paths   []string
	Keys    []statKey
	Entries []cacheEntry
}

// cacheEntry is an entry's kind and mode as the meta blob holds them.
type cacheEntry struct {
	Dir, Link bool
	Perm      uint32
}

const statCacheVersion = 1

func statCachePath(idxDir, target string) string {
	return filepath.Join(idxDir, target+".stat")
}

// racyMargin is how close to a listing a change may be and still leave
// the stat data listed: a filesystem with nanosecond timestamps ticks at
// most one kernel clock tick (a few ms) behind; one whose timestamps have
// no sub-second part ticks up to 2s behind (FAT).
func racy(k statKey, at int64) bool {
	margin := int64(100 * time.Millisecond)
	if k.Mtime%int64(time.Second) == 0 && k.Ctime%int64(time.Second) == 0 {
		margin = int64(2 * time.Second)
	}
	return k.Ctime == 0 || k.Mtime >= at-margin || k.Ctime >= at-margin
}

// loadStatCache reads a target's cache; a missing or unreadable one is
// none (the git path then runs).
func loadStatCache(path string) *statCache {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	dec := gob.NewDecoder(bufio.NewReaderSize(f, 1<<16))
	var v int
	if dec.Decode(&v) != nil || v != statCacheVersion {
		return nil
	}
	var c statCache
	if dec.Decode(&c) != nil || len(c.Paths) != len(c.Keys) || len(c.Paths) != len(c.Entries) {
		return nil
	}
	return &c
}

// unchanged reports whether entries are exactly what c listed, with no
// entry racy against c's listing.
func (c *statCache) unchanged(entries map[string]scanned, excludes []string) bool {
	if c == nil || c.Tree == "" || len(c.Paths) != len(entries) || !slices.Equal(c.Excludes, excludes) {
		return false
	}
	for i, p := range c.Paths {
		s, ok := entries[p]
		if !ok || s.key != c.Keys[i] || racy(c.Keys[i], c.At) {
			return false
		}
		e := c.Entries[i]
		if e.Dir != s.dir || e.Link != s.link || e.Perm != uint32(s.perm) {
			return false
		}
	}
	return true
}

// saveStatCache writes what a listing that started at `at` found and the
// tree stored for it (aside, then renamed: a killed jackin leaves the old
// cache or none).
func saveStatCache(path, tree string, excludes []string, at time.Time, entries map[string]scanned, paths []string) error {
	c := statCache{Tree: tree, Excludes: excludes, At: at.UnixNano(), Paths: paths,
		Keys: make([]statKey, len(paths)), Entries: make([]cacheEntry, len(paths))}
	for i, p := range paths {
		s := entries[p]
		c.Keys[i] = s.key
		c.Entries[i] = cacheEntry{Dir: s.dir, Link: s.link, Perm: uint32(s.perm)}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriterSize(tmp, 1<<16)
	enc := gob.NewEncoder(w)
	if err := enc.Encode(statCacheVersion); err != nil {
		tmp.Close()
		return err
	}
	if err := enc.Encode(&c); err != nil {
		tmp.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// removeStatCaches drops an instance's caches (a prune that reclaims
// objects may drop the trees they name).
func removeStatCaches(idxDir string) {
	ents, err := os.ReadDir(idxDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".stat") {
			_ = os.Remove(filepath.Join(idxDir, e.Name()))
		}
	}
}

// sortedPaths is entries' paths in order.
func sortedPaths(entries map[string]scanned) []string {
	paths := make([]string, 0, len(entries))
	for p := range entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths
}
