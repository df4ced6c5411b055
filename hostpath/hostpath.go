// Package hostpath identifies host paths by device and inode rather than by
// spelling. A Pin records the identity of every component of a resolved
// path when a manifest is validated; Verify checks it again right before the
// path is handed to an engine, so a component swapped for a symlink or for
// another file in between (by an agent that can write a parent directory, or
// by anyone else) is refused instead of followed. It also reads the peer of
// a Unix socket, to tell a socket the Docker engine serves whatever its name.
package hostpath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ID is a file's identity on the host: its device and inode. Two paths with
// the same ID are the same file (a hard link, or a bind mount of it).
type ID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

// Of returns fi's identity; false when the platform does not report one.
func Of(fi fs.FileInfo) (ID, bool) { return idOf(fi) }

// Stat returns the identity of the file p names, following symlinks.
func Stat(p string) (ID, fs.FileInfo, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return ID{}, nil, err
	}
	id, ok := idOf(fi)
	if !ok {
		return ID{}, fi, fmt.Errorf("%s: this platform reports no device and inode", p)
	}
	return id, fi, nil
}

// Pin is a resolved absolute path and the identity of each of its
// components, from "/" down to the path itself.
type Pin struct {
	Path string `json:"path"`
	IDs  []ID   `json:"ids"`
}

// Components lists the paths a Pin records, from "/" down to p (clean and
// absolute).
func Components(p string) []string {
	out := []string{string(filepath.Separator)}
	if p == string(filepath.Separator) {
		return out
	}
	cur := ""
	for _, part := range strings.Split(strings.TrimPrefix(p, string(filepath.Separator)), string(filepath.Separator)) {
		cur += string(filepath.Separator) + part
		out = append(out, cur)
	}
	return out
}

// PinPath resolves p's symlinks and records the identity of every component
// of the result. A component that changes while it is read (a symlink
// appears) is an error: the path is not stable enough to hand on.
func PinPath(p string) (*Pin, error) {
	if !filepath.IsAbs(p) {
		return nil, fmt.Errorf("%s is not an absolute path", p)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, err
	}
	pin := &Pin{Path: filepath.Clean(real)}
	for _, c := range Components(pin.Path) {
		fi, err := os.Lstat(c)
		if err != nil {
			return nil, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s changed into a symbolic link while it was being checked", c)
		}
		id, ok := idOf(fi)
		if !ok {
			return nil, fmt.Errorf("%s: this platform reports no device and inode", c)
		}
		pin.IDs = append(pin.IDs, id)
	}
	return pin, nil
}

// ID is the identity of the pinned path itself.
func (p *Pin) ID() ID { return p.IDs[len(p.IDs)-1] }

// ErrChanged reports a pinned path that is no longer what was validated.
var ErrChanged = errors.New("changed since it was validated")

// Verify checks that every component of the pinned path is still the file
// it was (same device and inode) and none has become a symlink. It follows
// no link, so what it checks is what an engine resolving the path would
// reach.
func (p *Pin) Verify() error {
	comps := Components(p.Path)
	if len(comps) != len(p.IDs) {
		return fmt.Errorf("%s: %w (malformed pin)", p.Path, ErrChanged)
	}
	for i, c := range comps {
		fi, err := os.Lstat(c)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s: %w: %s no longer exists", p.Path, ErrChanged, c)
			}
			return fmt.Errorf("%s: check %s: %w", p.Path, c, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s: %w: %s is now a symbolic link", p.Path, ErrChanged, c)
		}
		if id, ok := idOf(fi); !ok || id != p.IDs[i] {
			return fmt.Errorf("%s: %w: %s is no longer the file that was validated (it was replaced)", p.Path, ErrChanged, c)
		}
	}
	return nil
}

// Within reports whether the pinned path is other or lies below it, by
// identity: other's identity is one of the pin's components.
func (p *Pin) Within(other ID) bool {
	for _, id := range p.IDs {
		if id == other {
			return true
		}
	}
	return false
}

// StrictlyWithin reports whether the pinned path lies below other (and is
// not other itself), by identity.
func (p *Pin) StrictlyWithin(other ID) bool {
	for _, id := range p.IDs[:len(p.IDs)-1] {
		if id == other {
			return true
		}
	}
	return false
}

// VerifyBelow checks that p lies below the pinned directory dir, that dir
// is still what was validated, and that no component of p below dir is a
// symlink: a path made under a validated directory (the read-only parts of
// a git directory) can be handed on without pinning it first.
func VerifyBelow(dir *Pin, p string) error {
	if err := dir.Verify(); err != nil {
		return err
	}
	rel, err := filepath.Rel(dir.Path, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("%s does not lie below %s", p, dir.Path)
	}
	cur := dir.Path
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if part == "." {
			continue
		}
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if err != nil {
			return fmt.Errorf("%s: check %s: %w", p, cur, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s: %w: %s is a symbolic link", p, ErrChanged, cur)
		}
	}
	return nil
}

// KindOf names the kind of a file for a message: "a FIFO", "a socket", "a
// device", "a directory", "a regular file" or "a special file".
func KindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a regular file"
	}
	return "a special file"
}
