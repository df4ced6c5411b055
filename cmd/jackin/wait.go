package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/agentstate"
	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/supervisor"
)

// agentStates are the states an agent can be in, as --for takes them.
var agentStates = []string{
	string(agentstate.StateStarting), string(agentstate.StateIdle), string(agentstate.StateWorking),
	string(agentstate.StateBlocked), string(agentstate.StateDone), string(agentstate.StateExited), string(agentstate.StateUnknown),
}

func newWaitCommand(a *app) *cobra.Command {
	var af agentFlags
	var forStates string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait [-f PATH | --fleet NAME] INSTANCE... --for STATE[,STATE] [--timeout D]",
		Short: "Wait until agents are in one of the given states",
		Long: `wait returns once every named instance's agent is in one of the states given
to --for: starting, idle, working, blocked, done, exited or unknown (see
jackin get). It exits 0 when they all are, 1 when --timeout passes first
(kubectl wait's convention), and 2 on bad input or an unknown instance.

A stopped agent container counts as exited.`,
		Example: `  jackin wait -f fleet.cue web --for idle
  jackin wait --fleet demo a b --for done,blocked --timeout 10m`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			want, err := parseStates(forStates)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			if timeout <= 0 {
				return exitWith(exitInvalid, errors.New("--timeout must be positive"))
			}
			ctx := cmd.Context()
			refs := make([]*agentRef, 0, len(args))
			for _, name := range args {
				ref, err := a.findAgent(ctx, af, name)
				if err != nil {
					return err
				}
				refs = append(refs, ref)
			}
			deadline := time.Now().Add(timeout)
			tick := 100 * time.Millisecond
			for {
				var waiting []string
				for _, ref := range refs {
					st, err := a.agentStatus(ctx, ref, true)
					if err != nil {
						return exitWith(exitInvalid, err)
					}
					if !slices.Contains(want, st.State) {
						waiting = append(waiting, ref.instance+" is "+st.State)
					}
				}
				if len(waiting) == 0 {
					return nil
				}
				if time.Now().After(deadline) {
					return exitWith(exitChanges, fmt.Errorf("timed out after %s waiting for %s: %s", timeout, strings.Join(want, " or "), strings.Join(waiting, ", ")))
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(tick):
				}
				for _, ref := range refs {
					// The container may have stopped or come back.
					if found, err := ref.drv.(drivers.AgentLocator).FindAgents(ctx, ref.fleet, ref.instance); err == nil && len(found) == 1 {
						ref.ctr = found[0]
					}
				}
			}
		},
	}
	af.register(cmd)
	cmd.Flags().StringVar(&forStates, "for", "", "the states to wait for, comma-separated ("+strings.Join(agentStates, ", ")+")")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait")
	_ = cmd.MarkFlagRequired("for")
	return cmd
}

func parseStates(s string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !slices.Contains(agentStates, p) {
			return nil, fmt.Errorf("--for: unknown state %q: use %s", p, strings.Join(agentStates, ", "))
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--for: name at least one state (%s)", strings.Join(agentStates, ", "))
	}
	return out, nil
}

var exitedStatus = regexp.MustCompile(`Exited \((\d+)\)`)

// agentStatus is the agent's state: exited when its container is not
// running; else what its supervisor published in the instance's agent
// directory (read as the agent's own writing: hostile); else, when live
// is set and there is no such file here, asked through the engine's exec.
func (a *app) agentStatus(ctx context.Context, ref *agentRef, live bool) (supervisor.Status, error) {
	if ref.ctr.State != drivers.StateRunning {
		st := supervisor.Status{State: string(agentstate.StateExited)}
		if m := exitedStatus.FindStringSubmatch(ref.ctr.Status); m != nil {
			st.ExitStatus, _ = strconv.Atoi(m[1])
		}
		return st, nil
	}
	st, err := supervisor.ReadPublished(supervisor.HostDir(a.global.stateDir, ref.fleet, ref.instance))
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, os.ErrNotExist) || !live {
		return supervisor.Status{State: string(agentstate.StateUnknown)}, nil
	}
	ex, err := ref.execer()
	if err != nil {
		return supervisor.Status{}, err
	}
	conn, err := supervisor.Connect(ctx, ex, ref.ctr.ID)
	if err != nil {
		return supervisor.Status{}, err
	}
	defer conn.Close()
	st, err = conn.Status()
	if err != nil {
		return supervisor.Status{State: string(agentstate.StateUnknown)}, nil
	}
	return supervisor.Clean(st), nil
}
