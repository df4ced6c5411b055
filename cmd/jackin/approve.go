package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/integrations"
)

func newApproveCommand(a *app) *cobra.Command {
	var mf manifestFlags
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "approve -f PATH... [INSTANCE...]",
		Short: "Approve the stack integrations that repositories mounted by instances recommend",
		Long: `A repository may recommend built-in stack integrations by name in
.jackin/integrations.cue (or .yaml, .yml), at most 8 KB, names only. A
recommendation is inactive until approved: approve prints each recommendation
file of the named instances (every instance when none is named), its SHA-256
and what each integration adds, and records the approval by the file's path
and SHA-256 in the state dir. A file that changes afterwards is inactive again
until approved again.

A recommendation file with anything but integration names (a mount, env, a
credential, an egress rule, a port, Docker access, a command) is refused at
file:line: exit 2, and nothing is approved. jackin diff then marks the newly
approved integrations; jackin apply activates them.`,
		Example: `  jackin approve -f fleet.cue
  jackin approve -f fleet.cue web -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			return a.approve(cmd.Context(), mf.files, args, out.format)
		},
	}
	mf.register(cmd)
	out.register(cmd, "text", "text", "json")
	return cmd
}

type approvalDoc struct {
	Path      string   `json:"path"`
	SHA256    string   `json:"sha256"`
	Names     []string `json:"names"`
	Instances []string `json:"instances"`
	// Already says the file, as it is, was approved before.
	Already bool     `json:"already"`
	Adds    []string `json:"adds"`
}

func (a *app) approve(ctx context.Context, files, names []string, format string) error {
	fleet, err := a.loadFleet(ctx, files)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		for n := range fleet.Instances {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	approvals, err := integrations.LoadApprovals(a.global.stateDir)
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	byPath := map[string]*approvalDoc{}
	var refused []string
	for _, n := range names {
		in, ok := fleet.Instances[n]
		if !ok {
			return exitWith(exitInvalid, fmt.Errorf("no instance %q in fleet %s", n, fleet.Name))
		}
		for _, u := range in.IntegrationUses {
			if u.Source == "manifest" {
				continue
			}
			if u.Name == "" {
				refused = append(refused, strings.TrimPrefix(u.Inactive, "refused: "))
				continue
			}
			d := byPath[u.Source]
			if d == nil {
				d = &approvalDoc{Path: u.Source, SHA256: u.SHA256}
				byPath[u.Source] = d
			}
			d.Names = appendNew(d.Names, u.Name)
			d.Instances = appendNew(d.Instances, n)
			if def := integrations.Builtin(u.Name); def != nil {
				for _, l := range def.Adds() {
					d.Adds = appendNew(d.Adds, u.Name+": "+l)
				}
			}
		}
	}
	if len(refused) > 0 {
		sort.Strings(refused)
		refused = compactStrings(refused)
		for _, r := range refused {
			fmt.Fprintln(a.stderr, r)
		}
		return &exitError{code: exitInvalid, err: fmt.Errorf("approve refused: %d recommendation file(s) hold more than integration names; nothing was approved", len(refused)), reported: false}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	docs := []approvalDoc{}
	for _, p := range paths {
		d := byPath[p]
		// Read again: what is recorded is exactly the content checked now.
		rec, err := integrations.FindRecommendation(filepath.Dir(filepath.Dir(p)))
		if err != nil {
			return exitWith(exitInvalid, err)
		}
		if rec == nil || rec.Path != p || rec.SHA256 != d.SHA256 {
			return exitWith(exitInvalid, errors.New(p+" changed while it was being approved: run approve again"))
		}
		d.Already = approvals.Approved(rec)
		if !d.Already {
			if err := integrations.Approve(a.global.stateDir, rec, time.Now()); err != nil {
				return exitWith(exitInvalid, err)
			}
		}
		docs = append(docs, *d)
	}
	if format == "json" {
		return writeStructured(a.stdout, "json", map[string]any{"apiVersion": "jackin.dev/v1alpha1", "kind": "IntegrationApprovals", "fleet": fleet.Name, "approved": docs})
	}
	if len(docs) == 0 {
		fmt.Fprintln(a.stdout, "No integration recommendations found in the instances' repositories.")
		return nil
	}
	for _, d := range docs {
		verb := "Approved"
		if d.Already {
			verb = "Already approved"
		}
		fmt.Fprintf(a.stdout, "%s %s (sha256 %s): %s, for %s\n", verb, d.Path, d.SHA256[:16], strings.Join(d.Names, ", "), strings.Join(d.Instances, ", "))
		for _, l := range d.Adds {
			fmt.Fprintf(a.stdout, "    %s\n", l)
		}
	}
	fmt.Fprintln(a.stdout, "jackin diff shows what the approval changes; jackin apply activates it.")
	return nil
}

func appendNew(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

func compactStrings(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
