package main

import (
	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/drivers/docker"
)

// dialKeeperCommand is the hidden command a jackin command starts in the
// background for an ssh:// engine (docker.RunDialKeeper).
const dialKeeperCommand = "dial-keeper"

// keepDials says whether this process may start dial keepers: the jackin
// binary's main sets it.
var keepDials bool

// newDialKeeperCommand keeps one connection to an ssh:// engine ready
// between commands, for DialKeepIdle after the last one. Operators never
// run it; JACKIN_DIAL_KEEP=off stops jackin from starting it.
func newDialKeeperCommand(a *app) *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:    dialKeeperCommand + " --socket PATH -- COMMAND...",
		Short:  "Between commands: keep a connection to an ssh:// engine ready",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return docker.RunDialKeeper(cmd.Context(), a.log.WithName("dial-keeper"), socket, args, docker.DialKeepIdle)
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "the socket to serve")
	_ = cmd.MarkFlagRequired("socket")
	return cmd
}
