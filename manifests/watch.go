package manifests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
)

// FileChange is a debounced burst of changes to manifest files.
type FileChange struct {
	// Paths are the changed files, sorted.
	Paths []string
	// First is when the first change of the burst was seen.
	First time.Time
}

// WatchOptions tune WatchFiles.
type WatchOptions struct {
	// Quiet is how long no further change must be seen before a burst is
	// reported; 0 means 100ms.
	Quiet time.Duration
	// MaxDelay bounds how long a burst that keeps going is held; 0 means 1s.
	MaxDelay time.Duration
	Log      logr.Logger
}

// WatchFiles reports changes to the manifests at paths (files or
// directories, as Load takes them) until ctx ends. It watches the directories
// that hold them rather than the files, so an editor that saves by writing a
// new file and renaming it over the old one is seen, and so is a file
// deleted and created again. Changes are debounced: a burst is one
// FileChange. The channel is closed when ctx ends.
func WatchFiles(ctx context.Context, paths []string, opts WatchOptions) (<-chan FileChange, error) {
	if opts.Quiet <= 0 {
		opts.Quiet = 100 * time.Millisecond
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = time.Second
	}
	files := map[string]bool{} // manifest files named directly
	dirs := map[string]bool{}  // directories whose manifest files count
	watch := map[string]bool{} // directories to watch
	for _, p := range paths {
		if p == "-" {
			return nil, errors.New("standard input (-f -) cannot be watched: name manifest files or directories")
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", p, err)
		}
		st, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", p, err)
		}
		if st.IsDir() {
			dirs[abs] = true
			watch[abs] = true
		} else {
			files[abs] = true
			watch[filepath.Dir(abs)] = true
		}
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("start watching files: %w", err)
	}
	for d := range watch {
		if err := w.Add(d); err != nil {
			w.Close()
			return nil, fmt.Errorf("watch directory %s: %w", d, err)
		}
	}
	relevant := func(name string) bool {
		name = filepath.Clean(name)
		if files[name] {
			return true
		}
		base := filepath.Base(name)
		return dirs[filepath.Dir(name)] && kindOf(base) != "" && !strings.HasPrefix(base, ".")
	}

	out := make(chan FileChange)
	go func() {
		defer close(out)
		defer w.Close()
		var (
			changed  = map[string]bool{}
			first    time.Time
			quiet    *time.Timer
			deadline <-chan time.Time
			quietC   <-chan time.Time
		)
		flush := func() {
			if len(changed) == 0 {
				return
			}
			fc := FileChange{First: first}
			for p := range changed {
				fc.Paths = append(fc.Paths, p)
			}
			sort.Strings(fc.Paths)
			changed = map[string]bool{}
			deadline, quietC = nil, nil
			select {
			case out <- fc:
			case <-ctx.Done():
			}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Op == fsnotify.Chmod || !relevant(ev.Name) {
					continue
				}
				opts.Log.V(2).Info("manifest file event", "path", ev.Name, "op", ev.Op.String())
				if len(changed) == 0 {
					first = time.Now()
					deadline = time.After(opts.MaxDelay)
				}
				changed[filepath.Clean(ev.Name)] = true
				if quiet == nil {
					quiet = time.NewTimer(opts.Quiet)
				} else {
					quiet.Reset(opts.Quiet)
				}
				quietC = quiet.C
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				opts.Log.Error(err, "watching manifest files")
			case <-quietC:
				flush()
			case <-deadline:
				flush()
			}
		}
	}()
	return out, nil
}
