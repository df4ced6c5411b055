package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/schema"
)

func newValidateCommand(a *app) *cobra.Command {
	var mf manifestFlags
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "validate -f PATH...",
		Short: "Check a fleet manifest against the schema and policy",
		Long: `validate loads the manifest files (CUE, YAML or JSON), checks them against the
embedded CUE schema and jackin's policy (paths exist, sizes parse, the host
Docker socket is never mounted), and reports every problem as
file:line:col: field: message on stderr.

Exit codes: 0 valid, 2 invalid. With -o json or -o yaml it prints the
resolved desired state: defaults applied and paths made absolute.`,
		Example: `  jackin validate -f fleet.cue
  jackin validate -f fleets/ -o json
  cat fleet.yaml | jackin validate -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			fleet, err := a.loadFleet(cmd.Context(), mf.files)
			if err != nil {
				return err
			}
			warnRuntimeCredentials(a.stderr, fleet)
			if out.format == "text" {
				fmt.Fprintf(a.stdout, "Fleet %q is valid: %d instance(s).\n", fleet.Name, len(fleet.Instances))
				return nil
			}
			return writeStructured(a.stdout, out.format, fleet)
		},
	}
	mf.register(cmd)
	out.register(cmd, "text", "text", "json", "yaml")
	return cmd
}

// warnRuntimeCredentials warns (on stderr; it is not an error) about each
// instance whose agent runtime has none of the credentials it usually needs.
func warnRuntimeCredentials(w io.Writer, fleet *schema.Fleet) {
	names := make([]string, 0, len(fleet.Instances))
	for n := range fleet.Instances {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		inst := fleet.Instances[n]
		if want := schema.MissingRuntimeCredentials(inst); len(want) > 0 {
			fmt.Fprintf(w, "warning: instance %s runs agent %s, which needs one of %s, and has none of them: add credentials: %s: {from: {env: \"%s\"}} (or file, command, op://), delivered as a file, env or by the egress proxy\n",
				n, inst.Agent, strings.Join(want, " or "), want[0], want[0])
		}
	}
}
