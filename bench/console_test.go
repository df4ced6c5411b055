package bench

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/jackin-dev/jackin/console"
	"github.com/jackin-dev/jackin/telemetry"
)

// consoleFleet is a synthetic fleet of n instances with every column
// filled: states of every kind, resources with limits, usage with and
// without prices, ports, denials, drift and descriptions.
func consoleFleet(n int, now time.Time) (console.Snapshot, console.Detail) {
	states := []string{"working", "idle", "done", "blocked", "starting", "idle", "working", "exited"}
	rows := make([]console.Row, n)
	for i := range rows {
		cost := float64(i) * 0.137
		usage := []telemetry.Usage{{Model: "claude-sonnet-4", InputTokens: int64(i) * 12_345, OutputTokens: int64(i) * 2_345, CacheReadTokens: int64(i) * 99_000, CostUSD: &cost}}
		if i%9 == 0 {
			usage = append(usage, telemetry.Usage{Model: "unpriced-model", InputTokens: 1_000, OutputTokens: 100})
		}
		denied := i % 4
		r := console.Row{
			Instance: fmt.Sprintf("agent-%03d", i), Runtime: []string{"claude", "codex", "opencode", "gemini", "amp"}[i%5],
			Observed: "running", State: states[i%len(states)], StateSince: now.Add(-time.Duration(i*37) * time.Second),
			Resources: &telemetry.Resources{CPUPercent: float64(i%150) + 0.5, MemoryBytes: int64(i%32+1) << 26, MemoryLimitBytes: 2 << 30,
				NearMemoryLimit: i%31 == 0, SampledAt: now},
			Usage: usage, Ports: []string{fmt.Sprintf("127.0.0.1:%d->8080", 20000+i)}, Denied: &denied,
			Sync: "in-sync", Description: fmt.Sprintf("works on service %d of the monorepo: tests, refactors, reviews", i),
		}
		if r.State == "blocked" {
			r.StateDetail = "Bash"
		}
		if r.State == "exited" {
			code := 1
			r.ExitStatus, r.Observed = &code, "stopped"
		}
		if i%13 == 0 {
			r.Sync = "drift: recreate"
		}
		rows[i] = r
	}
	d := console.Detail{Instance: rows[0].Instance}
	for i := range 8 {
		d.Contract = append(d.Contract, fmt.Sprintf("%d. Section %d   a contract summary line that is fairly long, as they are", i+1, i+1))
	}
	for i := range 12 {
		d.States = append(d.States, console.StateChange{At: now.Add(-time.Duration(12-i) * time.Minute), State: states[i%len(states)]})
		d.Egress = append(d.Egress, console.EgressDecision{At: now.Add(-time.Duration(12-i) * time.Minute), Allowed: i%3 != 0, Method: "CONNECT", Destination: "api.example.com:443", Rule: "api.example.com"})
		d.Logs = append(d.Logs, fmt.Sprintf("log line %d: running the tests of package %d, all green so far", i, i))
	}
	return console.Snapshot{Fleet: "bench", Origin: "fleet.cue", Rows: rows, At: now}, d
}

// BenchmarkConsoleFrame renders the console's frame for 200 instances
// (no engine: a synthetic snapshot), at 200x50 and 80x24, with colour and
// without (NO_COLOR), and a refresh (the new snapshot taken, then drawn).
// Target: under 50 ms a frame. ms/frame is the mean of the frames drawn,
// max-ms the slowest.
func BenchmarkConsoleFrame(b *testing.B) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	snap, detail := consoleFleet(200, now)
	for _, tc := range []struct {
		name    string
		w, h    int
		color   bool
		refresh bool
	}{
		{"200x50", 200, 50, true, false},
		{"200x50-nocolor", 200, 50, false, false},
		{"80x24", 80, 24, true, false},
		{"200x50-refresh", 200, 50, true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m := console.New(context.Background(), nil, console.Options{Color: tc.color, Now: func() time.Time { return now }})
			m.Update(tea.WindowSizeMsg{Width: tc.w, Height: tc.h})
			m.SetSnapshot(snap)
			m.SetDetail(detail)
			// Scroll to the middle: the frame draws a window of the rows.
			for range 100 {
				m.Update(tea.KeyPressMsg{Code: 'j', Text: "j"})
			}
			var times []time.Duration
			frames := 0
			for b.Loop() {
				// Several frames per iteration so -benchtime 1x measures
				// more than one cold frame.
				for range 20 {
					start := time.Now()
					if tc.refresh {
						m.SetSnapshot(snap)
					}
					if len(m.Frame()) == 0 {
						b.Fatal("empty frame")
					}
					times = append(times, time.Since(start))
					frames++
				}
			}
			sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
			var total time.Duration
			for _, t := range times {
				total += t
			}
			mean := total / time.Duration(len(times))
			b.ReportMetric(float64(mean.Microseconds())/1000, "ms/frame")
			b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "max-ms")
			b.ReportMetric(0, "ns/op")
			b.Logf("%s: %d frames of 200 instances, mean %s, max %s (target < 50ms)", tc.name, frames, mean, times[len(times)-1])
			if mean > 50*time.Millisecond {
				b.Errorf("a frame takes %s on average, more than the 50 ms target", mean)
			}
		})
	}
}
