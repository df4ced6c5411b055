package docker

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// TestSpareDialerHandsOutAPingedSpareOnce: a filled spare is a started,
// answering engine command; the first dial takes it without starting
// another, the second starts a new one.
func TestSpareDialerHandsOutAPingedSpareOnce(t *testing.T) {
	argv, starts := stdioEngine(t)
	sp := NewSpareDialer(logr.Discard(), CommandDialer(argv, nil))
	t.Cleanup(sp.Close)
	if err := sp.Fill(t.Context(), 50*time.Millisecond); err != nil {
		t.Fatalf("fill: %v", err)
	}
	if err := sp.Fill(t.Context(), 50*time.Millisecond); err != nil {
		t.Fatalf("second fill: %v", err)
	}
	if n := starts(); n != 1 {
		t.Fatalf("%d engine commands started by two fills, want 1 (one spare is parked at most)", n)
	}
	// Each dial's connection answers; the engine commands started by then.
	dialAndPing := func(what string, wantStarts int, why string) {
		t.Helper()
		c, err := sp.Dial(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if got := pingOver(t, c); !strings.HasPrefix(got, "OK from") {
			t.Fatalf("ping over %s: %q", what, got)
		}
		if n := starts(); n != wantStarts {
			t.Errorf("%d engine commands after %s was used, want %d (%s)", n, what, wantStarts, why)
		}
	}
	dialAndPing("the spare", 1, "the spare is the one started")
	dialAndPing("a second dial's connection", 2, "the spare is handed out once")
}

// TestSpareDialerFillWaitsForTheEngine: while the engine's command fails
// (the engine is still coming up), Fill tries again; it parks a spare once
// one answers, and gives up when its context ends.
func TestSpareDialerFillWaitsForTheEngine(t *testing.T) {
	argv, starts := stdioEngine(t)
	var tries atomic.Int32
	down := CommandDialer([]string{"false"}, nil)
	up := CommandDialer(argv, nil)
	dial := func(ctx context.Context) (net.Conn, error) {
		if tries.Add(1) <= 2 {
			return down(ctx)
		}
		return up(ctx)
	}
	sp := NewSpareDialer(logr.Discard(), dial)
	t.Cleanup(sp.Close)
	if err := sp.Fill(t.Context(), 20*time.Millisecond); err != nil {
		t.Fatalf("fill: %v", err)
	}
	if n := tries.Load(); n != 3 {
		t.Errorf("%d dials, want 3 (two refused, then the engine)", n)
	}
	if n := starts(); n != 1 {
		t.Errorf("%d engine commands, want 1", n)
	}

	never := NewSpareDialer(logr.Discard(), down)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := never.Fill(ctx, 20*time.Millisecond); err == nil {
		t.Fatal("fill against an engine that never answers: no error")
	}
}

// TestSpareDialerClosed: Close ends the spare's command, and a dialer
// closed parks no spare.
func TestSpareDialerClosed(t *testing.T) {
	argv, _ := stdioEngine(t)
	sp := NewSpareDialer(logr.Discard(), CommandDialer(argv, nil))
	if err := sp.Fill(t.Context(), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	sp.mu.Lock()
	spare := sp.spares[0].c
	sp.mu.Unlock()
	sp.Close()
	if _, err := spare.Write([]byte("GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")); err == nil {
		if _, err := spare.Read(make([]byte, 1)); err == nil {
			t.Error("the spare's command still answers after Close")
		}
	}
	if err := sp.Fill(t.Context(), 50*time.Millisecond); err == nil {
		t.Error("a closed dialer parked a spare")
	}
}
