// Command jackin is a declarative orchestrator for sandboxed coding agents:
// it validates a fleet manifest, plans the changes that make a backend match
// it, applies them, and reports history.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	// The backends this binary can run instances on register themselves.
	_ "github.com/jackin-dev/jackin/drivers/docker"
	_ "github.com/jackin-dev/jackin/drivers/kubernetes"
	_ "github.com/jackin-dev/jackin/drivers/orbstack"
)

func main() {
	// Only the jackin binary starts dial keepers (a test binary is not
	// one).
	keepDials = true
	os.Exit(run())
}

// run executes the CLI and returns the process exit code. SIGINT and
// SIGTERM cancel the command's context; see signalGuard for when the first
// one exits at once and when it lets the step in flight finish.
func run() int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go signals.handle(sigs, cancel)

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

// stepInFlight is what the first signal lets finish in an engine-changing
// span (apply's and delete's execution, a watch heal).
const stepInFlight = "the step in flight"

// exitGrace is how long the first signal, with nothing held, waits for the
// command to return by itself before jackin exits without it. A command
// waiting on its context (watch between passes, egress log --follow)
// returns well within it, with its own exit code; one blocked in a read
// (a manifest or a credential file on a network filesystem that stopped
// answering, a stdin that never ends) is not waited for.
const exitGrace = 500 * time.Millisecond

// signals is the process's signal guard.
var signals = &signalGuard{exit: os.Exit, stderr: os.Stderr, grace: exitGrace}

// signalGuard decides what SIGINT and SIGTERM do. The first one always
// cancels the command's context. Then:
//   - inside a span a command holds (an engine step in flight: apply's or
//     delete's execution, a watch heal; the egress proxy's shutdown), the
//     step finishes and is recorded, and the command returns; a second
//     signal exits at once;
//   - outside any (loading manifests, reading credential sources,
//     planning, a watch between passes), jackin exits at once: the command
//     gets the grace to return by itself, no more, and otherwise jackin
//     exits with 128 + the signal's number (130 for SIGINT, 143 for
//     SIGTERM), as it does on a second signal.
type signalGuard struct {
	mu    sync.Mutex
	held  int    // spans held now
	what  string // what the last span held is
	exit  func(code int)
	grace time.Duration
	// stderr is where the guard says what it does.
	stderr io.Writer
}

// hold marks a span the first signal must let finish (what names it in
// the message, such as stepInFlight); release ends it (more than once is
// harmless). It waits while the guard is exiting the process, so no step
// starts then.
func (g *signalGuard) hold(what string) (release func()) {
	g.mu.Lock()
	g.held++
	g.what = what
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.held--
			g.mu.Unlock()
		})
	}
}

// handle acts on the signals received on sigs (see signalGuard); cancel
// cancels the command's context. It returns only when the process exits
// (or, in tests, when exit returns).
func (g *signalGuard) handle(sigs <-chan os.Signal, cancel context.CancelFunc) {
	first := <-sigs
	cancel()
	grace := time.NewTimer(g.grace)
	defer grace.Stop()
	for {
		g.mu.Lock()
		if g.held > 0 {
			what := g.what
			g.mu.Unlock()
			fmt.Fprintf(g.stderr, "jackin: received %s, finishing %s (send again to exit now)\n", first, what)
			s := <-sigs
			fmt.Fprintln(g.stderr, "jackin: second signal, exiting now")
			g.exit(signalExitCode(s))
			return
		}
		g.mu.Unlock()
		select {
		case s := <-sigs:
			fmt.Fprintln(g.stderr, "jackin: second signal, exiting now")
			g.exit(signalExitCode(s))
			return
		case <-grace.C:
		}
		g.mu.Lock()
		if g.held == 0 {
			// Under the lock: no span starts while the process ends.
			fmt.Fprintf(g.stderr, "jackin: received %s, exiting now (no engine step in flight)\n", first)
			g.exit(signalExitCode(first))
			g.mu.Unlock()
			return
		}
		g.mu.Unlock() // a span began meanwhile: it finishes
	}
}

// signalExitCode is the conventional exit code after a signal: 128 + its
// number.
func signalExitCode(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 130
}
