package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/workspace"
)

// newGitCheckoutCommand runs before an agent starts, in the role image
// with jackin's binary in it (a Kubernetes Pod's init container, a
// short-lived container on a remote engine): it clones a worktree or
// clone mount's git URL into the mount's volume, or keeps the checkout
// the volume already holds. Started as root with --owner, it gives a new
// volume's root to the agent's user and becomes that user before git
// runs, so the checkout is the agent's. Operators never run it.
func newGitCheckoutCommand(a *app) *cobra.Command {
	var dir, url, ref, branch, owner string
	cmd := &cobra.Command{
		Use:    "git-checkout --dir DIR --url URL --branch BRANCH [--ref REF] [--owner USER[:GROUP]]",
		Short:  "Before an agent starts: clone a checkout's git URL into its volume",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if owner != "" {
				if err := becomeOwner(dir, owner); err != nil {
					return err
				}
			}
			res, err := workspace.CloneInto(cmd.Context(), dir, url, ref, branch)
			if err != nil {
				return err
			}
			if res.Kept {
				fmt.Fprintf(a.stdout, "git-checkout: %s already holds a checkout: kept\n", dir)
				return nil
			}
			fmt.Fprintf(a.stdout, "git-checkout: cloned %s into %s, branch %s at %s\n", url, dir, branch, res.Commit)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "the mount to fill")
	f.StringVar(&url, "url", "", "the git URL to clone")
	f.StringVar(&ref, "ref", "", "where the branch starts (default: the remote's HEAD)")
	f.StringVar(&branch, "branch", "", "the scratch branch to create")
	f.StringVar(&owner, "owner", "", "the agent's user (a name or uid, and a group): a new volume becomes theirs, and git runs as them")
	for _, name := range []string{"dir", "url", "branch"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// becomeOwner, run as root, hands dir to the agent's user when it holds
// no checkout yet (a new volume's root is root's, and git refuses a
// repository another user owns), then drops to that user for good.
func becomeOwner(dir, owner string) error {
	uid, gid, err := lookupOwner(owner)
	if err != nil {
		return err
	}
	if uid == 0 || os.Geteuid() != 0 {
		return nil
	}
	if _, err := os.Lstat(filepath.Join(dir, ".git")); errors.Is(err, os.ErrNotExist) {
		if err := os.Lchown(dir, uid, gid); err != nil {
			return fmt.Errorf("give %s to the agent's user %d:%d: %w", dir, uid, gid, err)
		}
	}
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return fmt.Errorf("drop to the agent's groups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("drop to the agent's group %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("drop to the agent's user %d: %w", uid, err)
	}
	return nil
}

// lookupOwner resolves USER[:GROUP] as the engine does: names through the
// image's /etc/passwd and /etc/group, numbers as they are; a user without
// a group gets its passwd group (0 when it has no entry).
func lookupOwner(owner string) (uid, gid int, err error) {
	name, group, hasGroup := strings.Cut(owner, ":")
	var u *user.User
	if n, nerr := strconv.Atoi(name); nerr == nil {
		uid = n
		u, _ = user.LookupId(name)
	} else {
		if u, err = user.Lookup(name); err != nil {
			return 0, 0, fmt.Errorf("the agent's user %q: %w", name, err)
		}
		if uid, err = strconv.Atoi(u.Uid); err != nil {
			return 0, 0, fmt.Errorf("the agent's user %q has uid %q", name, u.Uid)
		}
	}
	switch {
	case hasGroup:
		if n, nerr := strconv.Atoi(group); nerr == nil {
			return uid, n, nil
		}
		g, err := user.LookupGroup(group)
		if err != nil {
			return 0, 0, fmt.Errorf("the agent's group %q: %w", group, err)
		}
		gid, err = strconv.Atoi(g.Gid)
		return uid, gid, err
	case u != nil:
		gid, err = strconv.Atoi(u.Gid)
		return uid, gid, err
	}
	return uid, 0, nil
}
