// Command jackin is a declarative orchestrator for sandboxed coding agents:
// it validates a fleet manifest, plans the changes that make a backend match
// it, applies them, and reports history.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run())
}

// run executes the CLI and returns the process exit code. The first SIGINT or
// SIGTERM cancels the command's context, so work in flight finishes and is
// recorded; a second one exits at once.
func run() int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "jackin: received %s, finishing the step in flight (send again to exit now)\n", s)
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "jackin: second signal, exiting now")
		os.Exit(130)
	}()

	cmd := newRootCommand(os.Stdin, os.Stdout, os.Stderr)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && !ee.reported {
			fmt.Fprintf(os.Stderr, "Error: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(os.Stderr, "Error: %v\n", err)
	return exitInvalid
}
