package main

import (
	"fmt"

	"github.com/spf13/cobra"
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
