package docker

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// contextEpoch is the modification time every build context entry gets, so
// the same files always make the same archive.
var contextEpoch = time.Unix(0, 0).UTC()

// ignoreRule is one .dockerignore line.
type ignoreRule struct {
	pattern string
	re      *regexp.Regexp
	negate  bool
}

// ignoreMatcher decides which context paths are left out of a build, with the
// .dockerignore semantics that matter in practice: one pattern per line, #
// comments, ! to re-include, * and ? within a path segment, ** across
// segments, and a pattern that matches a directory excludes everything in it.
// The last matching rule wins. .git is always excluded.
type ignoreMatcher struct {
	rules []ignoreRule
}

// parseDockerignore reads .dockerignore rules from r.
func parseDockerignore(r io.Reader) (*ignoreMatcher, error) {
	m := &ignoreMatcher{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		negate := false
		if strings.HasPrefix(line, "!") {
			negate = true
			line = strings.TrimSpace(line[1:])
		}
		p := path.Clean(filepath.ToSlash(line))
		p = strings.TrimPrefix(p, "/")
		if p == "." || p == "" {
			continue
		}
		re, err := patternRegexp(p)
		if err != nil {
			return nil, fmt.Errorf(".dockerignore pattern %q: %w", line, err)
		}
		m.rules = append(m.rules, ignoreRule{pattern: p, re: re, negate: negate})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read .dockerignore: %w", err)
	}
	return m, nil
}

// patternRegexp compiles a .dockerignore pattern into an anchored regexp over
// slash-separated relative paths.
func patternRegexp(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '*':
			if i+1 < len(p) && p[i+1] == '*' {
				i++
				// "**/" matches zero or more directories; a trailing "**" anything.
				if i+1 < len(p) && p[i+1] == '/' {
					i++
					b.WriteString("(.*/)?")
				} else {
					b.WriteString(".*")
				}
			} else {
				b.WriteString("[^/]*")
			}
		case '?':
			b.WriteString("[^/]")
		case '[':
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unterminated character class")
			}
			class := p[i+1 : i+j]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + class + "]")
			i += j
		case '\\':
			if i+1 < len(p) {
				i++
				b.WriteString(regexp.QuoteMeta(string(p[i])))
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// excluded reports whether rel (slash-separated, relative to the context)
// is left out. A path is also excluded when a parent directory matches.
func (m *ignoreMatcher) excluded(rel string) bool {
	if rel == ".git" || strings.HasPrefix(rel, ".git/") {
		return true
	}
	if m == nil {
		return false
	}
	out := false
	for _, r := range m.rules {
		if r.matches(rel) {
			out = !r.negate
		}
	}
	return out
}

func (r ignoreRule) matches(rel string) bool {
	if r.re.MatchString(rel) {
		return true
	}
	// A pattern that names a directory covers what is inside it.
	for dir := path.Dir(rel); dir != "." && dir != "/"; dir = path.Dir(dir) {
		if r.re.MatchString(dir) {
			return true
		}
	}
	return false
}

// mayReinclude reports whether a negated rule could bring back something under
// dir, in which case an excluded directory must still be walked.
func (m *ignoreMatcher) mayReinclude(dir string) bool {
	if m == nil || dir == ".git" || strings.HasPrefix(dir, ".git/") {
		return false
	}
	for _, r := range m.rules {
		if r.negate && (strings.HasPrefix(r.pattern, dir+"/") || strings.Contains(r.pattern, "*")) {
			return true
		}
	}
	return false
}

// writeBuildContext writes the build context in dir to w as a tar archive:
// entries in lexical order, modes kept, owners and times zeroed, paths in
// .dockerignore (and .git) left out. The Dockerfile and .dockerignore are
// always included, as the docker CLI does.
func writeBuildContext(w io.Writer, dir, dockerfile string) error {
	var ign *ignoreMatcher
	if f, err := os.Open(filepath.Join(dir, ".dockerignore")); err == nil {
		ign, err = parseDockerignore(f)
		f.Close()
		if err != nil {
			return err
		}
	} else if !os.IsNotExist(err) {
		return fmt.Errorf("open .dockerignore: %w", err)
	}
	keep := map[string]bool{".dockerignore": true, path.Clean(filepath.ToSlash(dockerfile)): true}

	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if !keep[rel] && ign.excluded(rel) {
			if de.IsDir() && !ign.mayReinclude(rel) {
				return filepath.SkipDir
			}
			return nil
		}
		return writeTarEntry(tw, p, rel, de, &contextEpoch)
	})
	if err != nil {
		return fmt.Errorf("archive build context %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("archive build context %s: %w", dir, err)
	}
	return nil
}

// writeTarEntry writes the walked file at path into tw as name: regular
// files, directories and symlinks (sockets, devices and pipes are skipped),
// owned by root, with modTime when given (a reproducible archive) and no
// access or change times.
func writeTarEntry(tw *tar.Writer, path, name string, de fs.DirEntry, modTime *time.Time) error {
	info, err := de.Info()
	if err != nil {
		return err
	}
	var link string
	switch {
	case info.Mode().IsRegular(), info.IsDir():
	case info.Mode()&fs.ModeSymlink != 0:
		if link, err = os.Readlink(path); err != nil {
			return err
		}
	default:
		return nil
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	if info.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	if modTime != nil {
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = *modTime, time.Time{}, time.Time{}
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
