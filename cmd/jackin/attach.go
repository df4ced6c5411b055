package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/jackin-dev/jackin/supervisor"
)

func newAttachCommand(a *app) *cobra.Command {
	var af agentFlags
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "attach [-f PATH | --fleet NAME] INSTANCE",
		Short: "Join the agent's terminal (detach with ctrl-p ctrl-q)",
		Long: `attach joins your terminal to the agent's: it shows the recent screen first
(the last 2,000 lines the agent printed), then everything live; what you type
goes to the agent. Several terminals can attach at once.

The detach keys (ctrl-p ctrl-q, or --detach-keys in docker's format) leave the
agent running and exit 0. If the agent exits while you are attached, attach
exits with its status.

attach goes through the engine's exec into the agent container (jackin's relay
talks to the supervisor's socket there): no socket or port of the agent is
published on the host. A stopped, missing or unsupervised instance is an error
(exit 2).`,
		Example: `  jackin attach -f fleet.cue web
  jackin attach --fleet demo worker --detach-keys ctrl-x,x`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, err := supervisor.ParseDetachKeys(detachKeys)
			if err != nil {
				return exitWith(exitInvalid, fmt.Errorf("--detach-keys: %w", err))
			}
			ctx := cmd.Context()
			ref, err := a.findAgent(ctx, af, args[0])
			if err != nil {
				return err
			}
			if err := ref.requireRunning("attach to"); err != nil {
				return err
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

			opts := supervisor.AttachOptions{In: a.stdin, Out: a.stdout, DetachKeys: keys}
			if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				fd := int(f.Fd())
				if w, h, err := term.GetSize(fd); err == nil {
					opts.Rows, opts.Cols = uint16(h), uint16(w)
				}
				old, err := term.MakeRaw(fd)
				if err != nil {
					return exitWith(exitInvalid, fmt.Errorf("put the terminal in raw mode: %w", err))
				}
				defer term.Restore(fd, old)
				resize := make(chan [2]uint16, 4)
				winch := make(chan os.Signal, 4)
				signal.Notify(winch, syscall.SIGWINCH)
				defer signal.Stop(winch)
				go func() {
					for range winch {
						if w, h, err := term.GetSize(fd); err == nil {
							select {
							case resize <- [2]uint16{uint16(h), uint16(w)}:
							default:
							}
						}
					}
				}()
				opts.Resize = resize
			}
			res, err := conn.Attach(ctx, opts)
			switch {
			case err != nil:
				return exitWith(exitInvalid, fmt.Errorf("attach to %s: %w", ref.instance, err))
			case res.Exited != nil:
				fmt.Fprintf(a.stderr, "\r\nthe agent of %s exited with status %d\r\n", ref.instance, res.Exited.ExitStatus)
				if res.Exited.ExitStatus != 0 {
					return &exitError{code: res.Exited.ExitStatus, err: fmt.Errorf("agent exited"), reported: true}
				}
				return nil
			default:
				fmt.Fprintf(a.stderr, "\r\ndetached from %s (the agent keeps running)\r\n", ref.instance)
				return nil
			}
		},
	}
	af.register(cmd)
	cmd.Flags().StringVar(&detachKeys, "detach-keys", supervisor.DefaultDetachKeys, "the keys that detach, in docker's format (comma-separated: a character or ctrl-<key>)")
	return cmd
}
