package main

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/console"
	"github.com/jackin-dev/jackin/store"
)

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitChanges = 1 // diff: changes pending; apply: an action failed
	exitInvalid = 2 // invalid input, unreachable engine, lock timeout
)

// exitError carries an exit code through cobra. reported means the message
// was already written to stderr.
type exitError struct {
	code     int
	err      error
	reported bool
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func exitWith(code int, err error) error { return &exitError{code: code, err: err} }

// globalOptions are the flags every command takes.
type globalOptions struct {
	verbosity int
	logFormat string
	stateDir  string
}

// app is what a command needs: streams, options and the logger.
type app struct {
	global globalOptions
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    logr.Logger
}

func newRootCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, log: logr.Discard()}
	root := &cobra.Command{
		Use:   "jackin",
		Short: "Declarative orchestrator for sandboxed coding agents",
		Long: `jackin makes a backend match a fleet manifest: agent instances with their
images, mounts, network, resources and state. Review the manifest like code,
then validate, diff and apply it.

Exit codes: 0 success (diff: converged), 1 changes pending (diff) or an action
failed (apply), 2 invalid input, unreachable engine or lock timeout.

The first SIGINT or SIGTERM lets an engine step in flight (apply's, delete's,
a watch heal) finish and be recorded; with none in flight (loading manifests,
reading credential sources, planning) it exits at once, 130 or 143 (128 + the
signal), unless the command returns first (watch between passes: 0). A second
signal exits at once.

Bare jackin on a terminal, with a manifest (fleet.cue, fleet.yaml, fleet.yml,
fleet.json or fleets/) in the current directory, opens jackin console.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Bare jackin on a terminal, with a manifest in the current
		// directory, opens the console; otherwise it prints this help.
		RunE: func(cmd *cobra.Command, _ []string) error {
			if files := manifestsHere("."); len(files) > 0 && onTerminal(a.stdin) && onTerminal(a.stdout) {
				return a.console(cmd.Context(), files, "", console.DefaultResync)
			}
			return cmd.Help()
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(a.global.logFormat, a.global.verbosity, stderr)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			a.log = log
			setStderrHint(cmd)
			// Paths under the state dir are handed to the engine as bind
			// sources, which must be absolute.
			if abs, err := filepath.Abs(a.global.stateDir); err == nil {
				a.global.stateDir = abs
			}
			return nil
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitWith(exitInvalid, err) })

	pf := root.PersistentFlags()
	pf.IntVarP(&a.global.verbosity, "v", "v", 0, "log verbosity level (0-9); higher is more detailed")
	pf.StringVar(&a.global.logFormat, "log-format", "auto", "log format on stderr: auto|console|json (auto: console on a terminal, else json)")
	pf.StringVar(&a.global.stateDir, "state-dir", store.DefaultDir(), "directory for jackin's state (history database, locks); $JACKIN_HOME sets the default")

	root.AddCommand(
		newValidateCommand(a),
		newDiffCommand(a),
		newApplyCommand(a),
		newGetCommand(a),
		newDeleteCommand(a),
		newHistoryCommand(a),
		newUsageCommand(a),
		newExplainCommand(a),
		newWatchCommand(a),
		newWorkCommand(a),
		newEgressCommand(a),
		newEgressProxyCommand(a),
		newVersionCommand(a),
		newCredentialsCommand(a),
		newExecCommand(a),
		newLogsCommand(a),
		newAttachCommand(a),
		newWaitCommand(a),
		newConsoleCommand(a),
		newSuperviseCommand(a),
		newHookCommand(a),
		newAgentRelayCommand(a),
		newKubeInitCommand(a),
		newGitCheckoutCommand(a),
		newDialKeeperCommand(a),
		newSnapshotCommand(a),
		newApproveCommand(a),
		newToolCommand(a),
		newQueueCommand(a),
	)
	return root
}

// manifestFlags are the -f flags shared by commands that read a manifest.
type manifestFlags struct {
	files []string
}

func (m *manifestFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVarP(&m.files, "file", "f", nil, "manifest file or directory (.cue, .yaml, .yml, .json); repeatable; - reads stdin")
}

// outputFlag is the -o flag; allowed lists the accepted formats.
type outputFlag struct {
	format  string
	allowed []string
}

func (o *outputFlag) register(cmd *cobra.Command, def string, allowed ...string) {
	o.allowed = allowed
	cmd.Flags().StringVarP(&o.format, "output", "o", def, "output format: "+joinOr(allowed))
}

func (o *outputFlag) validate() error {
	for _, f := range o.allowed {
		if o.format == f {
			return nil
		}
	}
	return exitWith(exitInvalid, fmt.Errorf("unknown output format %q: use %s", o.format, joinOr(o.allowed)))
}

func joinOr(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += "|"
		}
		out += v
	}
	return out
}

// durationFlagDefault keeps defaults in one place.
const (
	defaultLockTimeout = 30 * time.Second
	defaultParallel    = 8
)
