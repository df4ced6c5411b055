package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/runtimes"
	"github.com/jackin-dev/jackin/supervisor"
)

// newSuperviseCommand is PID 1 of an agent container: jackin's
// supervisor. The agent container's entrypoint runs it; operators never do.
func newSuperviseCommand(a *app) *cobra.Command {
	var (
		name, source string
		homes        []string
		loginShell   bool
	)
	cmd := &cobra.Command{
		Use:    "supervise --runtime NAME [--home REL]... [--login-shell] -- COMMAND...",
		Short:  "Run an agent under jackin's supervisor (PID 1 of the agent container)",
		Hidden: true,
		Args:   cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, ok := runtimes.Get(name)
			if !ok {
				rt = runtimes.NewCustom(name, args, homes, nil, nil)
			}
			if source != "" {
				rt.State = runtimes.StateSource(source)
			}
			code := supervisor.Run(cmd.Context(), supervisor.Config{
				Runtime:    rt,
				Command:    args,
				LoginShell: loginShell,
				Homes:      homes,
			})
			if code != 0 {
				return &exitError{code: code, err: errors.New("agent exited"), reported: true}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "runtime", runtimes.Shell, "the agent runtime")
	cmd.Flags().StringVar(&source, "state-source", "", "how state is learned (hooks, notify, server, terminal); default the runtime's")
	cmd.Flags().StringArrayVar(&homes, "home", nil, "a path under HOME kept in the runtime-home volume (repeatable)")
	cmd.Flags().BoolVar(&loginShell, "login-shell", false, "run the user's login shell, with COMMAND as its arguments")
	return cmd
}

// newHookCommand is what a runtime's hooks run: it hands the hook's JSON
// (stdin, or the last argument for Codex's notify) to the supervisor. It
// prints nothing and always exits 0: a hook never blocks the agent, never
// fails its turn and never adds to the model's context.
func newHookCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:    "hook RUNTIME [JSON]",
		Short:  "Report a runtime's hook event to the agent's supervisor",
		Hidden: true,
		Args:   cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			var payload []byte
			if len(args) > 1 {
				payload = []byte(args[len(args)-1])
			} else {
				payload = readHookInput(a.stdin)
			}
			if !json.Valid(payload) {
				return nil
			}
			sendHook(args[0], payload)
			return nil
		},
	}
}

// readHookInput reads the hook's stdin, at most 1 MiB and 2 seconds.
func readHookInput(in io.Reader) []byte {
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(in, 1<<20))
		got <- b
	}()
	select {
	case b := <-got:
		return b
	case <-time.After(2 * time.Second):
		return nil
	}
}

func sendHook(runtime string, payload []byte) {
	d := net.Dialer{Timeout: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "unix", supervisor.SocketName)
	if err != nil {
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := json.Marshal(supervisor.Request{V: supervisor.ProtocolVersion, Op: "hook", Runtime: runtime, Payload: payload})
	if err != nil {
		return
	}
	_, _ = conn.Write(append(b, '\n'))
}

// newAgentRelayCommand runs inside the agent container, started by the
// host through the backend's exec: it joins its stdin and stdout to the
// supervisor's socket, which nothing outside the container can reach.
func newAgentRelayCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:    "agent-relay",
		Short:  "Relay stdin and stdout to the agent's supervisor (run inside the agent container)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			conn, err := net.DialTimeout("unix", supervisor.SocketName, 2*time.Second)
			if err != nil {
				msg := "no supervisor in this container: " + err.Error()
				if strings.Contains(err.Error(), "connection refused") {
					msg = "the agent's supervisor is not running (the agent exited?)"
				}
				return exitWith(exitInvalid, errors.New(msg))
			}
			uc := conn.(*net.UnixConn)
			// Hand the supervisor this exec's stdin and stdout: it then
			// serves the session on them itself, and this process only
			// waits for it to finish (the exec lasts as long as we do).
			rights := syscall.UnixRights(int(os.Stdin.Fd()), int(os.Stdout.Fd()))
			if _, _, err := uc.WriteMsgUnix([]byte{supervisor.FDPassMarker}, rights, nil); err == nil {
				_, _ = io.Copy(io.Discard, uc)
				return nil
			}
			go func() {
				_, _ = io.Copy(uc, os.Stdin)
				_ = uc.CloseWrite() // the host is done sending; answers may still come
			}()
			// Until the supervisor closes its side.
			_, _ = io.Copy(os.Stdout, uc)
			return nil
		},
	}
}
