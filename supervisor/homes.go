package supervisor

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// openStore makes the home store in the runtime-home volume mounted at its
// parent, writable by any user, when the volume does not have it yet. The
// driver leaves that to a supervisor that runs as root: for any other
// user it uploads the directory when it creates the container, as a user
// who is not root cannot make it in a volume root owns.
func openStore(store string) error {
	if _, err := os.Lstat(store); err == nil {
		return nil
	}
	vol := filepath.Dir(store)
	if !mountedAt(vol) && !mountedFile(vol) {
		return nil // no volume there: linkHomes says so
	}
	if err := OpenToAll(store); err != nil {
		return fmt.Errorf("the runtime-home store: %w", err)
	}
	return nil
}

// OpenToAll makes dir (and its missing parents) and makes it writable by
// every user, sticky, as /tmp is: the runtime-home store, which the agent
// uses as whatever user it runs as. The mode is set on the directory
// opened, never on what a link in its place names.
func OpenToAll(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("make %s: %w", dir, err)
	}
	f, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Chmod(0o777 | os.ModeSticky); err != nil {
		return fmt.Errorf("open %s to every user: %w", dir, err)
	}
	return nil
}

// linkHomes makes each of the runtime's home paths under home a link into
// store (the runtime-home volume), so what the runtime keeps there (its
// settings, login and sessions) survives a recreate. What the image had
// at a path the volume does not hold yet is moved into the volume first.
// A path that is a mount point (the operator mounted it) is left alone.
// Problems are returned as warnings: the agent still runs, without
// persistence for that path.
func linkHomes(home, store string, rels []string) []string {
	if len(rels) == 0 {
		return nil
	}
	if home == "" || home == "/" {
		return []string{"HOME is not set: the runtime's homes are not kept across recreates"}
	}
	if fi, err := os.Stat(store); err != nil || !fi.IsDir() {
		return []string{fmt.Sprintf("the runtime-home volume is not mounted at %s: the runtime's homes are not kept across recreates", store)}
	}
	var warns []string
	for _, rel := range rels {
		if err := linkHome(home, store, rel); err != nil {
			warns = append(warns, fmt.Sprintf("~/%s is not kept across recreates: %v", rel, err))
		}
	}
	return warns
}

func linkHome(home, store, rel string) error {
	if rel == "" || filepath.IsAbs(rel) || strings.HasPrefix(filepath.Clean(rel), "..") {
		return fmt.Errorf("not a path under the home directory")
	}
	at := filepath.Join(home, rel)
	kept := filepath.Join(store, rel)
	if cur, err := os.Readlink(at); err == nil && cur == kept {
		return nil // linked on an earlier start of this container
	}
	if mountedAt(at) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(kept), 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(at)
	switch {
	case err == nil && fi.Mode()&fs.ModeSymlink == 0:
		if _, err := os.Lstat(kept); os.IsNotExist(err) {
			// The image's copy seeds the volume, once.
			if err := moveInto(at, kept); err != nil {
				return err
			}
		}
		if err := os.RemoveAll(at); err != nil {
			return err
		}
	case err == nil: // a link elsewhere: the image's choice, replaced
		if err := os.Remove(at); err != nil {
			return err
		}
	case !os.IsNotExist(err):
		return err
	}
	if err := os.MkdirAll(filepath.Dir(at), 0o700); err != nil {
		return err
	}
	if _, err := os.Lstat(kept); os.IsNotExist(err) && !looksLikeFile(rel) {
		if err := os.MkdirAll(kept, 0o700); err != nil {
			return err
		}
	}
	return os.Symlink(kept, at)
}

// relinkHomes, when the agent has exited, moves back into the volume a
// home path the runtime replaced with a file of its own (a program that
// saves by writing a new file and renaming it over the link).
func relinkHomes(home, store string, rels []string) []string {
	var warns []string
	for _, rel := range rels {
		at := filepath.Join(home, rel)
		fi, err := os.Lstat(at)
		if err != nil || fi.Mode()&fs.ModeSymlink != 0 || mountedAt(at) {
			continue
		}
		kept := filepath.Join(store, rel)
		if err := os.RemoveAll(kept); err != nil {
			warns = append(warns, fmt.Sprintf("keep ~/%s: %v", rel, err))
			continue
		}
		if err := moveInto(at, kept); err != nil {
			warns = append(warns, fmt.Sprintf("keep ~/%s: %v", rel, err))
			continue
		}
		_ = os.RemoveAll(at)
		_ = os.Symlink(kept, at)
	}
	return warns
}

// looksLikeFile tells a home path that names a file (.claude.json).
func looksLikeFile(rel string) bool {
	ext := filepath.Ext(rel)
	return ext == ".json" || ext == ".toml" || ext == ".yaml"
}

// mountedAt reports whether path is a mount point (another device than
// its parent's).
func mountedAt(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil || !fi.IsDir() {
		return mountedFile(path)
	}
	pi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return false
	}
	return devOf(fi) != devOf(pi)
}

// mountedFile reports whether a file is bind-mounted, from
// /proc/self/mountinfo.
func mountedFile(path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

// moveInto moves src to dst, copying when they are on different
// filesystems (the image's layer and the volume).
func moveInto(src, dst string) error {
	if err := os.Rename(src, dst); err == nil {
		return nil
	}
	if err := copyTree(src, dst); err != nil {
		_ = os.RemoveAll(dst)
		return err
	}
	return nil
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, info.Mode().Perm()|0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(t, to)
		case info.Mode().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
			if err != nil {
				return err
			}
			_, cerr := io.Copy(out, in)
			if err := out.Close(); cerr == nil {
				cerr = err
			}
			return cerr
		}
		return nil // sockets, fifos: not kept
	})
}
