package credentials

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

// BaseEnv names the variable that moves the host directory credentials
// are written under; it must be on a tmpfs.
const BaseEnv = "JACKIN_SECRETS_DIR"

// Base is the host directory file and proxy deliveries are written under:
// $JACKIN_SECRETS_DIR, or /dev/shm/jackin-<uid>. It is a tmpfs (memory),
// never the state dir, so a value never reaches a disk through jackin.
func Base() string {
	if d := os.Getenv(BaseEnv); d != "" {
		return filepath.Clean(d)
	}
	return "/dev/shm/jackin-" + strconv.Itoa(os.Getuid())
}

// InstanceDir is an instance's directory under base.
func InstanceDir(base, fleet, instance string) string {
	return filepath.Join(base, fleet, instance)
}

// Owner is who a written file belongs to; nil keeps jackin's own user.
type Owner struct{ UID, GID int }

// ensureBase makes base (0700, jackin's user) and checks it is a tmpfs.
// The default base has a predictable name in a world-writable directory:
// one that someone else made first (or a symlink there) is refused, as
// jackin would otherwise write values, and remove files, wherever its
// owner points the paths below it. Inside a 0700 directory of jackin's
// own, nobody else can plant anything.
func ensureBase(base string) error {
	if !memoryChecked && os.Getenv(BaseEnv) == "" {
		return fmt.Errorf("credential values are written only to memory, and on %s jackin cannot tell a memory-backed directory from a disk: set %s to a directory on a RAM disk of yours (on macOS: diskutil erasevolume HFS+ jackin-secrets $(hdiutil attach -nomount ram://131072); diskutil enableOwnership /Volumes/jackin-secrets; then %s=/Volumes/jackin-secrets/jackin)", runtime.GOOS, BaseEnv, BaseEnv)
	}
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		return fmt.Errorf("make %s: %w", filepath.Dir(base), err)
	}
	if err := os.Mkdir(base, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("make %s: %w", base, err)
	}
	fi, err := os.Lstat(base)
	if err != nil {
		return fmt.Errorf("check %s: %w", base, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory (a symlink or a file): jackin writes credential values only into a directory of its own; remove it or set %s", base, BaseEnv)
	}
	if uid, ok := ownerUID(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("%s belongs to uid %d, not to jackin's user (uid %d): jackin writes credential values only into a directory of its own; remove it or set %s", base, uid, os.Geteuid(), BaseEnv)
	}
	if err := os.Chmod(base, 0o700); err != nil {
		return err
	}
	ok, err := isTmpfs(base)
	if err != nil {
		return fmt.Errorf("check %s: %w", base, err)
	}
	if !ok {
		return fmt.Errorf("%s is not on a tmpfs: jackin writes credential values only to memory; set %s to a directory on a tmpfs (such as /dev/shm/jackin)", base, BaseEnv)
	}
	return nil
}

// WriteDir makes dir (under base) hold exactly files, name to content: each
// written to a temporary file and renamed into place (a reader sees the old
// value or the new, and a directory bind mount sees the new file at once),
// mode mode, owned by owner when jackin runs as root. Other files in dir are
// removed. It returns the names whose content changed.
func WriteDir(base, dir string, files map[string][]byte, mode, dirMode os.FileMode, owner *Owner) ([]string, error) {
	if err := ensureBase(base); err != nil {
		return nil, err
	}
	if rel, err := filepath.Rel(base, dir); err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, fmt.Errorf("%s is not below %s", dir, base)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	chown := owner != nil && os.Geteuid() == 0
	var changed []string
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(dir, n)
		if same(p, files[n]) {
			if err := setOwner(p, mode, owner, chown); err != nil {
				return changed, err
			}
			continue
		}
		f, err := os.CreateTemp(dir, ".new-")
		if err != nil {
			return changed, err
		}
		err = f.Chmod(0o600)
		if err == nil {
			_, err = f.Write(files[n])
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = setOwner(f.Name(), mode, owner, chown)
		}
		if err == nil {
			err = os.Rename(f.Name(), p)
		}
		if err != nil {
			os.Remove(f.Name())
			return changed, fmt.Errorf("write %s: %w", p, err)
		}
		changed = append(changed, n)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return changed, err
	}
	for _, e := range entries {
		if _, want := files[e.Name()]; !want {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return changed, err
			}
		}
	}
	return changed, setOwner(dir, dirMode, owner, chown)
}

func setOwner(p string, mode os.FileMode, owner *Owner, chown bool) error {
	if chown {
		if err := os.Lchown(p, owner.UID, owner.GID); err != nil {
			return err
		}
	}
	return os.Chmod(p, mode)
}

// same reports whether the file at p holds exactly b (compared in constant
// time: the file holds a secret).
func same(p string, b []byte) bool {
	old, err := os.ReadFile(p)
	return err == nil && len(old) == len(b) && subtle.ConstantTimeCompare(old, b) == 1
}

// Holds reports whether the file at p holds exactly b.
func Holds(p string, b []byte) bool { return same(p, b) }

// RemoveInstance removes an instance's directory under base (after the
// instance is deleted); a missing one is no error.
func RemoveInstance(base, fleet, instance string) error {
	dir := InstanceDir(base, fleet, instance)
	// A directory handed to the agent's user read-only (0500) cannot be
	// emptied by a non-root jackin until it is writable again.
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// Drop the fleet's directory once it is empty.
	_ = os.Remove(filepath.Join(base, fleet))
	return nil
}

// mntIgnoreOwnership is MNT_IGNORE_OWNERSHIP from macOS's <sys/mount.h>:
// every file on such a volume reads as the viewer's own, which /Volumes
// mounts of a RAM disk get by default.
const mntIgnoreOwnership = 0x00200000

// ownershipHonoured refuses a macOS volume mounted with flags that ignore
// file ownership.
func ownershipHonoured(flags uint32, dir string) error {
	if flags&mntIgnoreOwnership != 0 {
		return fmt.Errorf("the volume of %s ignores file ownership, so every local user could read the credential values there: run diskutil enableOwnership on it (for the RAM disk of the hint: diskutil enableOwnership /Volumes/jackin-secrets)", dir)
	}
	return nil
}
