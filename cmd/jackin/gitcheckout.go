package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/workspace"
)

// newGitCheckoutCommand runs in a Kubernetes Pod's init container (the
// role image, with jackin's binary copied in): it clones a worktree or
// clone mount's git URL into the mount's claim, or keeps the checkout the
// claim already holds. Operators never run it.
func newGitCheckoutCommand(a *app) *cobra.Command {
	var dir, url, ref, branch string
	cmd := &cobra.Command{
		Use:    "git-checkout --dir DIR --url URL --branch BRANCH [--ref REF]",
		Short:  "Inside a Pod's init container: clone a checkout's git URL into its claim",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
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
	for _, name := range []string{"dir", "url", "branch"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}
