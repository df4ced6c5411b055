package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/supervisor"
	"github.com/jackin-dev/jackin/worklinks"
)

func newToolCommand(a *app) *cobra.Command {
	var mf manifestFlags
	cmd := &cobra.Command{
		Use:   "tool -f PATH... NAME INSTANCE",
		Short: "Run one of the fleet's operator tools on an instance",
		Long: `tool runs an operator tool the manifest declares (tools: NAME: {key?,
exec: [...]} or {key?, prompt: "..."}) for one instance.

An exec tool runs on this machine, without a shell, in the current
directory, with jackin's own environment plus JACKIN_FLEET, JACKIN_INSTANCE,
JACKIN_TOOL, JACKIN_STATE_DIR, JACKIN_CHECKOUTS (the instance's worktree
and clone paths, ':'-separated; JACKIN_CHECKOUT the first), JACKIN_LINKS
(its work links, space-separated) and JACKIN_REPO, JACKIN_ISSUE, JACKIN_PR
(the newest link of each kind). jackin adds no secret to it. The links
are what the agent wrote (checked to a shell-inert charset): a tool takes
them as data. Its exit status is jackin's.

A prompt tool types its text into the agent's terminal through the
instance's supervisor, then Enter, when the agent is idle or done (a
finished turn); otherwise it is refused, naming the agent's state (exit 1),
and nothing is typed.`,
		Example: `  jackin tool -f fleet.cue summarize api
  jackin tool -f fleet.cue open-pr web`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			fleet, err := a.loadFleet(ctx, mf.files)
			if err != nil {
				return err
			}
			name, instance := args[0], args[1]
			tool, ok := fleet.Tools[name]
			if !ok {
				return exitWith(exitInvalid, fmt.Errorf("the fleet %s declares no tool %q (%s)", fleet.Name, name, toolNames(fleet)))
			}
			if _, ok := fleet.Instances[instance]; !ok {
				return exitWith(exitInvalid, fmt.Errorf("the fleet %s has no instance %q", fleet.Name, instance))
			}
			if tool.Prompt != "" {
				return a.promptTool(ctx, mf, fleet.Name, tool, instance)
			}
			return a.execTool(ctx, fleet, tool, instance)
		},
	}
	mf.register(cmd)
	return cmd
}

// toolNames lists the fleet's tools for an error.
func toolNames(f *schema.Fleet) string {
	if len(f.Tools) == 0 {
		return "it declares none"
	}
	names := make([]string, 0, len(f.Tools))
	for n := range f.Tools {
		names = append(names, n)
	}
	sort.Strings(names)
	return "it declares " + strings.Join(names, ", ")
}

// promptTool types the tool's prompt into the instance's agent.
func (a *app) promptTool(ctx context.Context, mf manifestFlags, fleet string, tool schema.Tool, instance string) error {
	ref, err := a.findAgent(ctx, agentFlags{mf: mf}, instance)
	if err != nil {
		return err
	}
	if !ref.running() {
		return exitWith(exitChanges, fmt.Errorf("tool %s: the agent of %s is not running (its container is %s): nothing typed", tool.Name, instance, ref.ctr.State))
	}
	ex, err := ref.execer()
	if err != nil {
		return err
	}
	conn, err := supervisor.Connect(ctx, ex, ref.ctr.ID)
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	defer conn.Close()
	st, err := conn.Prompt(tool.Prompt)
	if err != nil {
		return exitWith(exitChanges, fmt.Errorf("tool %s: %s refused the prompt: %w", tool.Name, instance, err))
	}
	st = supervisor.Clean(st)
	fmt.Fprintf(a.stdout, "tool %s: typed its prompt into %s (the agent is %s)\n", tool.Name, instance, st.State)
	a.log.V(1).Info("prompt tool", "fleet", fleet, "instance", instance, "tool", tool.Name)
	return nil
}

// execTool runs the tool's command on this machine.
func (a *app) execTool(ctx context.Context, fleet *schema.Fleet, tool schema.Tool, instance string) error {
	env, err := a.toolEnv(ctx, fleet, tool, instance)
	if err != nil {
		return err
	}
	c := exec.CommandContext(ctx, tool.Exec[0], tool.Exec[1:]...)
	c.Env = env
	c.Stdin, c.Stdout, c.Stderr = a.stdin, a.stdout, a.stderr
	if err := c.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			return exitWith(ee.ExitCode(), fmt.Errorf("tool %s exited with status %d", tool.Name, ee.ExitCode()))
		}
		return exitWith(exitInvalid, fmt.Errorf("tool %s: %w", tool.Name, err))
	}
	return nil
}

// toolEnv is an exec tool's environment: jackin's own, without any
// JACKIN_ variable of its own, and the instance's identity, checkouts and
// links. No credential value is read for it.
func (a *app) toolEnv(ctx context.Context, fleet *schema.Fleet, tool schema.Tool, instance string) ([]string, error) {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JACKIN_") || strings.HasPrefix(kv, "JACKIN_HOME=") {
			env = append(env, kv)
		}
	}
	stateDir, _ := filepath.Abs(a.global.stateDir)
	env = append(env, "JACKIN_FLEET="+fleet.Name, "JACKIN_INSTANCE="+instance, "JACKIN_TOOL="+tool.Name, "JACKIN_STATE_DIR="+stateDir)
	st, err := a.openStoreReadOnly(ctx)
	if err != nil {
		return nil, err
	}
	var checkouts []string
	var links map[string][]worklinks.Link
	if st != nil {
		defer st.Close()
		recs, err := st.Checkouts(ctx, fleet.Name)
		if err != nil {
			return nil, exitWith(exitInvalid, err)
		}
		for _, c := range recs {
			if c.Instance == instance {
				checkouts = append(checkouts, c.Path)
			}
		}
		sort.Strings(checkouts)
	}
	links, err = pipeline.Env{StateDir: a.global.stateDir, Store: st, Log: a.log}.FleetLinks(ctx, fleet.Name)
	if err != nil {
		return nil, exitWith(exitInvalid, err)
	}
	env = append(env, "JACKIN_CHECKOUTS="+strings.Join(checkouts, string(os.PathListSeparator)))
	if len(checkouts) > 0 {
		env = append(env, "JACKIN_CHECKOUT="+checkouts[0])
	}
	var urls []string
	newest := map[worklinks.Kind]string{}
	for _, l := range links[instance] { // sorted: by kind, newest first
		urls = append(urls, l.URL)
		if _, ok := newest[l.Kind]; !ok {
			newest[l.Kind] = l.URL
		}
	}
	env = append(env, "JACKIN_LINKS="+strings.Join(urls, " "),
		"JACKIN_REPO="+newest[worklinks.KindRepo], "JACKIN_ISSUE="+newest[worklinks.KindIssue], "JACKIN_PR="+newest[worklinks.KindPR])
	return env, nil
}
