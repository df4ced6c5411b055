package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/credentials"
	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/schema"
)

// writeCredentialRefresh prints pending in-place credential refreshes.
func writeCredentialRefresh(w io.Writer, res *pipeline.Result, pending []pipeline.CredentialRefresh) {
	for _, c := range pending {
		in := res.Desired.Instance(c.Instance)
		var where []string
		for _, n := range c.Credentials {
			cr := in.Instance.Credentials[n]
			switch cr.Deliver.Kind {
			case schema.DeliverFile:
				where = append(where, fmt.Sprintf("credential %s changed (the file %s is rewritten in place)", n, cr.FileTarget()))
			default:
				where = append(where, fmt.Sprintf("credential %s changed (the egress proxy's copy for %s is rewritten; it reloads it)", n, cr.Deliver.Proxy.Host))
			}
		}
		fmt.Fprintf(w, "~ %s: %s; nothing is recreated\n", c.Instance, strings.Join(where, ", "))
	}
}

// setStderrHint makes a failing credential command's error name the
// command that shows its stderr: jackin credentials check with the -f of
// the command about to run (when it has -f).
func setStderrHint(cmd *cobra.Command) {
	if cmd.Flags().Lookup("file") == nil {
		return
	}
	files, err := cmd.Flags().GetStringArray("file")
	if err != nil || len(files) == 0 {
		return
	}
	check := "jackin credentials check"
	for _, f := range files {
		check += " -f " + shellQuote(f)
	}
	credentials.StderrHint = "to see it on your terminal, run: " + check
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@%+,~", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// newCredentialsCommand is jackin credentials: check reads every source
// of a manifest's credentials, with a source command's stderr on the
// operator's terminal (the only place jackin ever lets it go).
func newCredentialsCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "credentials",
		Short: "Check the credential sources of a manifest",
		Args:  cobra.NoArgs,
	}
	var mf manifestFlags
	check := &cobra.Command{
		Use:   "check -f PATH... [INSTANCE...]",
		Short: "Read every credential source, a command's stderr on this terminal",
		Long: `check reads the credential sources of the manifest's instances (all, or
those named) as apply does (same timeout, stdin closed), and prints one line
per credential: ok, or why its source cannot be read.

A source command's stderr, which apply, diff, get and watch never show nor
keep (it may hold a secret of any shape), goes here to check's own stderr,
straight from the command and unredacted: run it on your own terminal, not
where its output is logged. Values are never printed. check changes nothing
and writes no state.

Exit codes: 0 every source can be read, 1 one cannot, 2 invalid input.`,
		Example: `  jackin credentials check -f fleet.cue
  jackin credentials check -f fleet.cue web`,
		RunE: func(cmd *cobra.Command, args []string) error {
			fleet, err := a.loadFleet(cmd.Context(), mf.files)
			if err != nil {
				return err
			}
			return a.checkCredentials(cmd.Context(), fleet, args)
		},
	}
	mf.register(check)
	cmd.AddCommand(check)
	return cmd
}

// checkCredentials reads the credentials of the named instances (all when
// none is named), a command's stderr going to a.stderr.
func (a *app) checkCredentials(ctx context.Context, fleet *schema.Fleet, names []string) error {
	for _, n := range names {
		if _, ok := fleet.Instances[n]; !ok {
			return exitWith(exitInvalid, fmt.Errorf("fleet %q has no instance %q", fleet.Name, n))
		}
	}
	if len(names) == 0 {
		for n := range fleet.Instances {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	r := &credentials.Resolver{Stderr: a.stderr}
	failed, checked := 0, 0
	for _, n := range names {
		inst := fleet.Instances[n]
		for _, c := range inst.CredentialNames() {
			src := inst.Credentials[c].From
			what := fmt.Sprintf("%s: %s (from %s)", n, c, src.SourceText())
			if src.Kind == schema.SourceCommand || src.Kind == schema.SourceOnePass {
				fmt.Fprintf(a.stderr, "jackin: reading %s; the command's stderr follows, unredacted\n", what)
			}
			checked++
			if _, err := r.Resolve(ctx, src); err != nil {
				failed++
				fmt.Fprintf(a.stdout, "%s: %v\n", what, err)
				continue
			}
			fmt.Fprintf(a.stdout, "%s: ok\n", what)
		}
	}
	if checked == 0 {
		fmt.Fprintln(a.stdout, "No credentials to check.")
	}
	if failed > 0 {
		return &exitError{code: exitChanges, reported: true}
	}
	return nil
}
