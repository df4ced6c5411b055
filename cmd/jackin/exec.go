package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/jackin-dev/jackin/drivers"
)

func newExecCommand(a *app) *cobra.Command {
	var af agentFlags
	var interactive, tty bool
	cmd := &cobra.Command{
		Use:   "exec [-f PATH... | --fleet NAME] INSTANCE [-i] [-t] -- CMD [ARG...]",
		Short: "Run a command in an instance's running agent container",
		Long: `exec runs CMD in the instance's agent container, as the agent's user (the
container's), and exits with CMD's exit status. It goes through the backend's
own exec (docker exec on Docker), the one way in from the host.

-i passes jackin's stdin to CMD (its end closes CMD's stdin). -t gives CMD a
terminal, when stdin is one: with -i the local terminal is put in raw mode
(restored on exit), keystrokes such as ctrl-c go to CMD, and resizing the
window resizes CMD's terminal. -t when stdin is not a terminal prints a warning
and runs CMD without one. Without -t, CMD's stdout and stderr stay separate.

A command that cannot start exits 127 when it does not exist, else 126, as a
shell does, with the engine's reason. A signal to jackin exec (SIGINT, SIGTERM)
ends the session, exit 130 or 143, but not CMD, which may go on running in the
container (as with docker exec).
The instance must be running: a stopped one is an error (exit 2), as are an
unknown instance and a missing CMD. With neither -f nor --fleet, the instance
name must be unique among the engine's fleets.`,
		Example: `  jackin exec -f fleet.cue web -- ls -la /work
  jackin exec --fleet demo web -it -- sh
  tar -c src | jackin exec web -i -- tar -x -C /tmp
  jackin exec web -- sh -c 'exit 7'; echo $?   # 7`,
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			instance, argv, err := execArgs(args, cmd.ArgsLenAtDash())
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			ctx := cmd.Context()
			ref, err := a.findAgent(ctx, af, instance)
			if err != nil {
				return err
			}
			if err := ref.requireRunning("exec in"); err != nil {
				return err
			}
			ex, err := ref.execer()
			if err != nil {
				return err
			}
			return a.execIn(ctx, ex, ref, argv, interactive, tty)
		},
	}
	af.register(cmd)
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "pass stdin to the command")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "give the command a terminal (when stdin is one)")
	return cmd
}

// execArgs splits exec's arguments into the instance and the command:
// INSTANCE -- CMD..., or INSTANCE CMD... when the command has no flags.
func execArgs(args []string, dash int) (string, []string, error) {
	const usage = "usage: jackin exec [-f PATH... | --fleet NAME] INSTANCE [-i] [-t] -- CMD [ARG...]"
	switch {
	case len(args) == 0 || dash == 0:
		return "", nil, errors.New("name the instance before --: " + usage)
	case dash > 1:
		return "", nil, fmt.Errorf("one instance, then --, then the command (got %s before --): %s", strings.Join(args[:dash], " "), usage)
	case len(args) == 1:
		return "", nil, errors.New("no command to run: " + usage)
	}
	return args[0], args[1:], nil
}

// execIn runs argv in ref's container with jackin's streams and returns
// its exit status as the command's (exitWith).
func (a *app) execIn(ctx context.Context, ex drivers.Execer, ref *agentRef, argv []string, interactive, tty bool) error {
	stdinFd, stdinTerm := terminalFd(a.stdin)
	if tty && !stdinTerm {
		fmt.Fprintln(a.stderr, "warning: -t ignored: stdin is not a terminal; running without one")
		tty = false
	}
	opts := drivers.ExecOptions{Cmd: argv, Stdin: interactive, Tty: tty}
	if tty {
		opts.Rows, opts.Cols = termSize(a.stdout, stdinFd)
	}

	// Learn which signal ended the session (the exit code is 128 + it);
	// the signal guard cancels ctx.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	// Raw mode for an interactive terminal, restored however jackin
	// ends: return, error, or a signal (the guard exits shortly after
	// cancelling ctx, so restore at once then).
	restore := func() {}
	if tty && interactive {
		old, err := term.MakeRaw(stdinFd)
		if err != nil {
			return exitWith(exitInvalid, fmt.Errorf("put the terminal in raw mode: %w", err))
		}
		var once sync.Once
		restore = func() { once.Do(func() { _ = term.Restore(stdinFd, old) }) }
		defer restore()
	}

	sess, err := ex.Exec(ctx, ref.ctr.ID, opts)
	if err != nil {
		restore()
		return exitWith(exitInvalid, fmt.Errorf("exec in instance %s of fleet %s: %w", ref.instance, ref.fleet, err))
	}
	defer sess.Close()
	stopOnCancel := context.AfterFunc(ctx, func() {
		restore()
		_ = sess.Close()
	})
	defer stopOnCancel()

	if tty {
		stopResize := forwardResize(ctx, sess, a.stdout, stdinFd)
		defer stopResize()
	}
	if interactive {
		go func() {
			_, _ = io.Copy(sess.Stdin(), a.stdin)
			_ = sess.Stdin().Close()
		}()
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(a.stdout, sess.Stdout()) }()
	go func() { defer wg.Done(); _, _ = io.Copy(a.stderr, sess.Stderr()) }()
	wg.Wait()

	if ctx.Err() != nil {
		restore()
		code := 130
		select {
		case s := <-sigs:
			code = signalExitCode(s)
		default:
		}
		return exitWith(code, fmt.Errorf("interrupted: the session with instance %s ended; %s may still run in its container", ref.instance, argv[0]))
	}
	code, err := sess.Wait(ctx)
	restore()
	if err != nil {
		if code > 0 {
			// The command could not start; the engine said why.
			return exitWith(code, fmt.Errorf("instance %s of fleet %s: %w", ref.instance, ref.fleet, err))
		}
		return exitWith(exitInvalid, fmt.Errorf("exec in instance %s of fleet %s: %w", ref.instance, ref.fleet, err))
	}
	if code != 0 {
		return exitWith(code, nil)
	}
	return nil
}

// terminalFd is r's file descriptor and whether it is a terminal.
func terminalFd(r any) (int, bool) {
	f, ok := r.(interface{ Fd() uintptr })
	if !ok {
		return -1, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// termSize is the local terminal's size: stdout's when it is a terminal,
// else stdin's (0, 0 when neither says).
func termSize(stdout any, stdinFd int) (rows, cols uint) {
	for _, fd := range []int{fdOf(stdout), stdinFd} {
		if fd < 0 {
			continue
		}
		if w, h, err := term.GetSize(fd); err == nil && w > 0 && h > 0 {
			return uint(h), uint(w)
		}
	}
	return 0, 0
}

func fdOf(w any) int {
	if f, ok := w.(interface{ Fd() uintptr }); ok {
		return int(f.Fd())
	}
	return -1
}

// forwardResize resizes the session's terminal whenever the local one is
// resized (SIGWINCH), until the returned stop is called.
func forwardResize(ctx context.Context, sess drivers.ExecSession, stdout any, stdinFd int) (stop func()) {
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-winch:
				if rows, cols := termSize(stdout, stdinFd); rows > 0 {
					_ = sess.Resize(ctx, rows, cols)
				}
			}
		}
	}()
	return func() {
		signal.Stop(winch)
		close(done)
	}
}
