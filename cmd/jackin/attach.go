package main

import (
	"context"
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
published on the host. An instance stopped by idle cleanup is started first
(with -f: starting needs the manifest), its supervisor waited for and its
idle-stopped mark cleared. Another stopped, missing or unsupervised instance
is an error (exit 2).`,
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
			if !ref.running() {
				woke, err := a.wakeForAttach(ctx, af, ref)
				if err != nil {
					return err
				}
				if woke {
					if ref, err = a.findAgent(ctx, af, args[0]); err != nil {
						return err
					}
				}
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

// wakeForAttach starts an instance idle cleanup stopped, as a task would
// (pipeline.Env.WakeIdle), and reports whether it did. An instance stopped
// otherwise is left to requireRunning's error.
func (a *app) wakeForAttach(ctx context.Context, af agentFlags, ref *agentRef) (bool, error) {
	st, err := a.openStoreReadOnly(ctx)
	if err != nil || st == nil {
		return false, err
	}
	marks, err := st.IdleStopped(ctx, ref.fleet)
	st.Close()
	if err != nil {
		return false, exitWith(exitInvalid, err)
	}
	if _, ok := marks[ref.instance]; !ok {
		return false, nil
	}
	if len(af.mf.files) == 0 {
		return false, exitWith(exitInvalid, fmt.Errorf("instance %s of fleet %s was stopped by idle cleanup: run jackin attach -f MANIFEST %s to start it (a start needs the manifest)", ref.instance, ref.fleet, ref.instance))
	}
	sess, err := a.openSession(ctx, af.mf.files, true)
	if err != nil {
		return false, err
	}
	defer a.closeSession(sess)
	fmt.Fprintf(a.stderr, "starting %s (stopped by idle cleanup)...\n", ref.instance)
	if err := a.env(sess).WakeIdle(ctx, sess.fleet, ref.instance); err != nil {
		return false, exitWith(exitInvalid, err)
	}
	return true, nil
}
