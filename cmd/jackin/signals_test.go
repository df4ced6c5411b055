package main

import (
	"context"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a strings.Builder safe for the guard's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// guardRun is a signal guard handling signals, with its exits recorded.
type guardRun struct {
	g      *signalGuard
	sigs   chan os.Signal
	ctx    context.Context
	exits  chan int
	stderr *syncBuffer
}

func newGuardRun(grace time.Duration) *guardRun {
	r := &guardRun{sigs: make(chan os.Signal, 2), exits: make(chan int, 2), stderr: &syncBuffer{}}
	r.g = &signalGuard{grace: grace, stderr: r.stderr, exit: func(code int) { r.exits <- code }}
	ctx, cancel := context.WithCancel(context.Background())
	r.ctx = ctx
	go r.g.handle(r.sigs, cancel)
	return r
}

func (r *guardRun) exitWithin(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case code := <-r.exits:
		return code
	case <-time.After(d):
		t.Fatalf("no exit within %s; stderr: %q", d, r.stderr.String())
		return 0
	}
}

func (r *guardRun) noExit(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case code := <-r.exits:
		t.Fatalf("exited %d; stderr: %q", code, r.stderr.String())
	case <-time.After(d):
	}
}

// With nothing held (loading, reading sources, planning), the first signal
// cancels and exits after the grace, with 128 + the signal's number.
func TestFirstSignalWithNothingInFlightExits(t *testing.T) {
	for sig, code := range map[syscall.Signal]int{syscall.SIGTERM: 143, syscall.SIGINT: 130} {
		r := newGuardRun(50 * time.Millisecond)
		start := time.Now()
		r.sigs <- sig
		if got := r.exitWithin(t, 2*time.Second); got != code {
			t.Errorf("%s: exit %d, want %d", sig, got, code)
		}
		if r.ctx.Err() == nil {
			t.Errorf("%s: the context was not cancelled", sig)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: exited after %s", sig, d)
		}
		if s := r.stderr.String(); !strings.Contains(s, "exiting now (no engine step in flight)") || strings.Contains(s, "finishing") {
			t.Errorf("%s: stderr %q", sig, s)
		}
	}
}

// With an engine step in flight the first signal cancels and lets it
// finish; only a second signal exits.
func TestFirstSignalLetsTheStepInFlightFinish(t *testing.T) {
	r := newGuardRun(20 * time.Millisecond)
	release := r.g.hold(stepInFlight)
	defer release()
	r.sigs <- syscall.SIGINT
	r.noExit(t, 200*time.Millisecond)
	if r.ctx.Err() == nil {
		t.Fatal("the context was not cancelled")
	}
	if s := r.stderr.String(); !strings.Contains(s, "received interrupt, finishing the step in flight (send again to exit now)") {
		t.Fatalf("stderr %q", s)
	}
	release()
	r.noExit(t, 100*time.Millisecond) // the command returns by itself
	r.sigs <- syscall.SIGTERM
	if got := r.exitWithin(t, time.Second); got != 143 {
		t.Fatalf("second signal: exit %d", got)
	}
}

// A step that begins in the grace (it started just as the signal came) is
// let finish too.
func TestStepStartedDuringTheGraceFinishes(t *testing.T) {
	r := newGuardRun(100 * time.Millisecond)
	r.sigs <- syscall.SIGTERM
	time.Sleep(20 * time.Millisecond)
	release := r.g.hold(stepInFlight)
	defer release()
	r.noExit(t, 300*time.Millisecond)
	if s := r.stderr.String(); !strings.Contains(s, "finishing the step in flight") {
		t.Fatalf("stderr %q", s)
	}
}

// A second signal within the grace exits at once.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	r := newGuardRun(time.Hour)
	r.sigs <- syscall.SIGTERM
	r.sigs <- syscall.SIGINT
	if got := r.exitWithin(t, time.Second); got != 130 {
		t.Fatalf("exit %d", got)
	}
}
