package usage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// parser is one file's parse state. A file is parsed once from its start
// and then only what is appended to it; a file replaced or truncated gets
// a new parser and is read again from its start.
type parser interface {
	// line handles one complete line of a JSON Lines file.
	line(b []byte)
	// contribute adds what the file holds to a.
	contribute(a *aggregate)
}

// wholeParser parses a file that is one document, rewritten whole.
type wholeParser interface {
	parser
	parseWhole(b []byte)
}

// source is a directory tree a runtime keeps its records in.
type source struct {
	// root is the directory (links to it are followed; nothing under it
	// is followed).
	root string
	// depth is how many directory levels below root are walked.
	depth int
	// match selects the files, by their slash-separated path under root.
	match func(rel string) bool
	// whole reports a file that is one document rewritten whole.
	whole func(rel string) bool
	// parser makes the parse state of a new file.
	parser func(rel string) parser
}

// tracked is a file being followed.
type tracked struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
	// off is how far the file was read; partial is the unfinished last
	// line read so far; skipping: the line being read is too long and is
	// dropped up to its end.
	off      int64
	partial  []byte
	skipping bool
	whole    bool
	rel      string
	src      *source
	p        parser
}

// Limits of a scan: what the agent writes under its home is read, so no
// file, line or pass is unbounded.
const (
	// maxFiles is how many record files are followed.
	maxFiles = 20000
	// maxLine is the longest line parsed (a longer one is skipped:
	// a transcript line holding a huge tool output).
	maxLine = 8 << 20
	// maxWhole is the largest whole-document file parsed.
	maxWhole = 32 << 20
	// scanBudget is how many bytes one pass reads at most; the rest is
	// read by the next passes (a long history is read over a few).
	scanBudget = 64 << 20
)

// files follows the record files of one runtime.
type files struct {
	sources []source
	tracked map[string]*tracked
	budget  int64
	// more: the last pass stopped at its budget.
	more bool
	// warnings said once each.
	warned map[string]bool
	warn   func(string)
	// text receives the assistant's text (OnText); nil: not read.
	text func(Text)
}

// newParser makes the parse state of a file, reporting its text to
// f.text under the file's path, after a break (a file read again from
// its start repeats what was said).
func (f *files) newParser(src *source, path, rel string) parser {
	p := src.parser(rel)
	if f.text != nil {
		if tp, ok := p.(textParser); ok {
			emit := f.text
			tp.setText(func(t Text) {
				t.Stream = path
				emit(t)
			})
			emit(Text{Stream: path, Break: true})
		}
	}
	return p
}

func newFiles(sources []source) *files {
	return &files{sources: sources, tracked: map[string]*tracked{}, budget: scanBudget, warned: map[string]bool{}}
}

func (f *files) warnf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if f.warned[msg] || f.warn == nil {
		return
	}
	f.warned[msg] = true
	f.warn(msg)
}

// scan reads what changed since the last pass; changed reports whether
// anything did (a file new, grown, replaced, truncated or gone).
func (f *files) scan() (changed bool) {
	f.more = false
	budget := f.budget
	present := map[string]bool{}
	count := 0
	for i := range f.sources {
		src := &f.sources[i]
		root, err := filepath.EvalSymlinks(src.root)
		if err != nil {
			continue // not written yet
		}
		var walk func(dir, rel string, depth int)
		walk = func(dir, rel string, depth int) {
			ents, err := os.ReadDir(dir)
			if err != nil {
				return
			}
			for _, e := range ents {
				name := e.Name()
				r := name
				if rel != "" {
					r = rel + "/" + name
				}
				p := filepath.Join(dir, name)
				switch {
				case e.Type()&os.ModeSymlink != 0:
					// Never followed: the tree is the agent's to write.
				case e.IsDir():
					if depth < src.depth {
						walk(p, r, depth+1)
					}
				case e.Type().IsRegular() && src.match(r):
					if count >= maxFiles {
						f.warnf("more than %d usage record files: the rest are not read", maxFiles)
						continue
					}
					count++
					present[p] = true
					if f.follow(src, p, r, e, &budget) {
						changed = true
					}
				}
			}
		}
		walk(root, "", 0)
	}
	for p := range f.tracked {
		if !present[p] {
			delete(f.tracked, p) // gone: its totals stay where they were published
			changed = true
		}
	}
	return changed
}

// follow reads what is new in one file.
func (f *files) follow(src *source, path, rel string, e os.DirEntry, budget *int64) bool {
	info, err := e.Info()
	if err != nil {
		return false
	}
	var dev, ino uint64
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		dev, ino = uint64(st.Dev), st.Ino
	}
	t := f.tracked[path]
	fresh := t == nil
	if fresh {
		t = &tracked{rel: rel, src: src}
		if src.whole != nil {
			t.whole = src.whole(rel)
		}
		f.tracked[path] = t
	}
	replaced := !fresh && (t.dev != dev || t.ino != ino)
	if !t.whole && info.Size() < t.off {
		replaced = true // truncated
	}
	if fresh || replaced {
		// New, replaced or truncated: read again from the start. Its
		// totals are cumulative per session, so nothing counts twice.
		t.p, t.off, t.partial, t.skipping = f.newParser(src, path, rel), 0, nil, false
		t.size, t.mtime = -1, time.Time{}
	}
	t.dev, t.ino = dev, ino
	if t.whole {
		if info.Size() == t.size && info.ModTime().Equal(t.mtime) {
			return false
		}
		t.size, t.mtime = info.Size(), info.ModTime()
		t.p = f.newParser(src, path, rel)
		if info.Size() > maxWhole {
			f.warnf("%s is larger than %d bytes: its usage is not read", rel, maxWhole)
			return true
		}
		b, err := readFile(path, 0, info.Size())
		if err != nil {
			return true
		}
		*budget -= int64(len(b))
		if wp, ok := t.p.(wholeParser); ok {
			wp.parseWhole(b)
		}
		return true
	}
	t.size, t.mtime = info.Size(), info.ModTime()
	if info.Size() <= t.off {
		return fresh || replaced
	}
	if *budget <= 0 {
		f.more = true
		return fresh || replaced
	}
	n := min(info.Size()-t.off, *budget)
	fh, err := openRegular(path)
	if err != nil {
		return fresh || replaced
	}
	defer fh.Close()
	buf := make([]byte, min(n, readChunk))
	for n > 0 {
		k, err := fh.ReadAt(buf[:min(n, int64(len(buf)))], t.off)
		if k > 0 {
			*budget -= int64(k)
			n -= int64(k)
			t.off += int64(k)
			t.feed(buf[:k])
		}
		if err != nil || k == 0 {
			break
		}
	}
	if t.off < info.Size() {
		f.more = true
	}
	return true
}

// readChunk is how much of a file is read at a time.
const readChunk = 1 << 20

// feed splits b, appended to what was read before, into lines.
func (t *tracked) feed(b []byte) {
	if len(t.partial) > 0 {
		b = append(t.partial, b...)
		t.partial = nil
	}
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimRight(b[:i], "\r")
		b = b[i+1:]
		if t.skipping {
			t.skipping = false
			continue
		}
		if len(line) <= maxLine && len(bytes.TrimSpace(line)) > 0 {
			t.p.line(line)
		}
	}
	switch {
	case t.skipping:
	case len(b) > maxLine:
		t.skipping = true
	case len(b) > 0:
		// A line not finished yet (or a last line cut short): kept until
		// its end is written.
		t.partial = append([]byte(nil), b...)
	}
}

// openRegular opens path for reading without following a link or
// blocking on a FIFO, and only when it is a regular file.
func openRegular(path string) (*os.File, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	fh := os.NewFile(uintptr(fd), path)
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		fh.Close()
		return nil, errors.New("not a regular file")
	}
	return fh, nil
}

// readFile reads n bytes of path from off (fewer at its end).
func readFile(path string, off, n int64) ([]byte, error) {
	fh, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b := make([]byte, n)
	k, err := fh.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:k], nil
}

// total adds up every followed file, in path order (so which of two
// files a repeated record is counted in does not change between passes).
func (f *files) total(a *aggregate) {
	paths := make([]string, 0, len(f.tracked))
	for p := range f.tracked {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if t := f.tracked[p]; t.p != nil {
			t.p.contribute(a)
		}
	}
}

// count is how many followed files match prefix (by their path under
// their source's root).
func (f *files) count(prefix string) int {
	n := 0
	for _, t := range f.tracked {
		if strings.HasPrefix(t.rel, prefix) {
			n++
		}
	}
	return n
}

// matchGlob reports whether rel matches any of the slash-separated glob
// patterns.
func matchGlob(patterns ...string) func(string) bool {
	return func(rel string) bool {
		for _, p := range patterns {
			if ok, _ := filepath.Match(p, rel); ok {
				return true
			}
		}
		return false
	}
}
