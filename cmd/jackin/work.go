package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/workspace"
)

func newWorkCommand(a *app) *cobra.Command {
	var mf manifestFlags
	var fleetName string
	var out outputFlag
	var review, web bool
	cmd := &cobra.Command{
		Use:   "work [-f PATH... | --fleet NAME] [INSTANCE] [--review | --web]",
		Short: "List the worktree and clone checkouts of instances, with their unreviewed work",
		Long: `work lists each instance's isolated checkouts (worktree and clone mounts):
the host path, the scratch branch and the commit it started from, whether it
has uncommitted changes or unpushed commits, how many files changed, its
status (active, or preserved-dirty / preserved-unpushed once the instance is
deleted and its work kept), and the command to review it on the host:
git --no-optional-locks --git-dir=REVIEW_GIT_DIR --work-tree=PATH diff BASE,
and when there are untracked files (which a diff leaves out) the command that
lists them.

The review commands read the checkout through a git dir jackin keeps for it
under the state dir (review/FLEET/INSTANCE/SLUG.git), never through the
checkout's own: everything in a checkout is the agent's to write, and a plain
git -C PATH diff would run the filters, diff drivers and pager its config names.
Do the same for any other git command you run on an agent's checkout.

Without -f or --fleet it lists every fleet's checkouts in the state dir. It
reads the state dir and runs git; it needs no engine and changes no checkout
(it makes a checkout's review git dir when it is missing).

With -f, an INSTANCE and --review, it runs the manifest's handlers.review
on the instance's checkout ({path}) instead of listing; with --web,
handlers.web on its newest http(s) work link ({url}). Either runs on this
machine without a shell; the path and the link are the agent's (the link
checked to a shell-inert charset), so the handler takes them as data, and
opening an agent's checkout in a tool that runs what a directory
configures (an editor's workspace tasks, git hooks) runs the agent's code.

Exit codes: 0 listed (also when there is nothing to list), 2 invalid input.`,
		Example: `  jackin work
  jackin work -f fleet.cue web
  jackin work --fleet demo -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			name, err := a.fleetFromFlags(ctx, mf.files, fleetName, false)
			if err != nil {
				return err
			}
			instance := ""
			if len(args) == 1 {
				instance = args[0]
			}
			if review || web {
				return a.workHandler(ctx, mf.files, instance, review)
			}
			return a.work(ctx, name, instance, out.format)
		},
	}
	mf.register(cmd)
	cmd.Flags().StringVar(&fleetName, "fleet", "", "fleet name, instead of -f")
	cmd.Flags().BoolVar(&review, "review", false, "open the instance's checkout with the manifest's handlers.review")
	cmd.Flags().BoolVar(&web, "web", false, "open the instance's newest work link with the manifest's handlers.web")
	cmd.MarkFlagsMutuallyExclusive("review", "web")
	out.register(cmd, "text", "text", "json")
	return cmd
}

// workDoc is the JSON form of jackin work.
type workDoc struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Checkouts  []workCheckout `json:"checkouts"`
}

type workCheckout struct {
	Fleet    string `json:"fleet"`
	Instance string `json:"instance"`
	Dst      string `json:"dst"`
	Mode     string `json:"mode"`
	Src      string `json:"src"`
	Path     string `json:"path"`
	Branch   string `json:"branch"`
	Base     string `json:"base"`
	// Status is active, preserved-dirty or preserved-unpushed.
	Status string `json:"status"`
	workspace.State
	Review string `json:"review"`
	// ReviewUntracked lists the untracked files (when there are), which
	// Review leaves out.
	ReviewUntracked string `json:"reviewUntracked,omitempty"`
}

func (a *app) work(ctx context.Context, fleet, instance, format string) error {
	list, err := workspace.List(a.global.stateDir, fleet, instance)
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	statuses := map[string]string{}
	if st, err := a.openStoreReadOnly(ctx); err != nil {
		return err
	} else if st != nil {
		defer st.Close()
		recs, err := st.Checkouts(ctx, fleet)
		if err != nil {
			return exitWith(exitInvalid, err)
		}
		for k, r := range recs {
			statuses[k] = r.Status
		}
	}
	doc := workDoc{APIVersion: "jackin.dev/v1alpha1", Kind: "WorkList", Checkouts: []workCheckout{}}
	for _, c := range list {
		status := statuses[c.Fleet+"/"+c.Instance+"/"+c.Slug]
		if status == "" {
			status = workspace.StatusActive
		}
		wc := workCheckout{
			Fleet: c.Fleet, Instance: c.Instance, Dst: c.Dst, Mode: c.Mode, Src: c.Src, Path: c.Path,
			Branch: c.Branch, Base: c.Base, Status: status, State: workspace.Inspect(ctx, c), Review: c.ReviewCommand(),
		}
		if wc.Untracked > 0 {
			wc.ReviewUntracked = c.UntrackedCommand()
		}
		doc.Checkouts = append(doc.Checkouts, wc)
	}
	if format == "json" {
		return writeStructured(a.stdout, "json", doc)
	}
	if len(doc.Checkouts) == 0 {
		switch {
		case instance != "":
			fmt.Fprintf(a.stdout, "No worktree or clone checkouts for instance %q.\n", instance)
		case fleet != "":
			fmt.Fprintf(a.stdout, "No worktree or clone checkouts in fleet %q.\n", fleet)
		default:
			fmt.Fprintln(a.stdout, "No worktree or clone checkouts.")
		}
		return nil
	}
	for i, c := range doc.Checkouts {
		if i > 0 {
			fmt.Fprintln(a.stdout)
		}
		who := c.Instance
		if fleet == "" {
			who = c.Fleet + "/" + c.Instance
		}
		fmt.Fprintf(a.stdout, "%s %s (%s of %s): %s\n", who, c.Dst, c.Mode, c.Src, c.Status)
		fmt.Fprintf(a.stdout, "  path:    %s\n", c.Path)
		fmt.Fprintf(a.stdout, "  branch:  %s, from %s\n", c.Branch, shortCommit(c.Base))
		fmt.Fprintf(a.stdout, "  state:   %s\n", workStateText(c.State))
		fmt.Fprintf(a.stdout, "  review:  %s\n", c.Review)
		if c.ReviewUntracked != "" {
			fmt.Fprintf(a.stdout, "  new:     %s\n", c.ReviewUntracked)
		}
	}
	return nil
}

// workStateText is "dirty (2 uncommitted files), 1 unpushed commit, 3
// files changed since base", or "clean, pushed, ...".
func workStateText(st workspace.State) string {
	if st.Error != "" {
		return "unknown: " + st.Error
	}
	dirty := "clean"
	if st.Dirty {
		dirty = "dirty (" + plural(st.Uncommitted, "uncommitted file", "uncommitted files") + ")"
	}
	pushed := "nothing unpushed"
	if st.Unpushed > 0 {
		pushed = plural(st.Unpushed, "unpushed commit", "unpushed commits")
	}
	return dirty + ", " + pushed + ", " + plural(st.ChangedFiles, "file", "files") + " changed since base"
}
