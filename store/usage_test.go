package store

import (
	"context"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/usage"
)

func TestRecordUsageKeepsTheLargest(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	t0 := time.Unix(1000, 0)
	e := func(sess, model string, in, out int64) usage.Entry {
		return usage.Entry{Session: sess, Model: model, Tokens: usage.Tokens{Input: in, Output: out, CacheRead: 1}}
	}
	if n, err := s.RecordUsage(ctx, "demo", "web", []usage.Entry{e("s1", "m", 10, 5), e("s2", "m", 1, 1)}, t0); err != nil || n != 2 {
		t.Fatalf("%d %v", n, err)
	}
	// Read again (a restart): nothing grows, nothing is written.
	if n, err := s.RecordUsage(ctx, "demo", "web", []usage.Entry{e("s1", "m", 10, 5), e("s2", "m", 1, 1)}, t0.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("again: %d %v", n, err)
	}
	// Lower (a file rotated away) keeps the higher; one column higher
	// grows only that one.
	if n, err := s.RecordUsage(ctx, "demo", "web", []usage.Entry{e("s1", "m", 3, 9)}, t0.Add(2*time.Hour)); err != nil || n != 1 {
		t.Fatalf("mixed: %d %v", n, err)
	}
	s.RecordUsage(ctx, "demo", "api", []usage.Entry{e("s1", "m", 7, 7)}, t0)
	s.RecordUsage(ctx, "other", "web", []usage.Entry{e("s1", "m", 7, 7)}, t0)

	rows, err := s.Usage(ctx, UsageQuery{Fleet: "demo", Instance: "web"})
	if err != nil || len(rows) != 2 {
		t.Fatalf("%+v %v", rows, err)
	}
	if rows[0].Session != "s1" || rows[0].Tokens != (usage.Tokens{Input: 10, Output: 9, CacheRead: 1}) || !rows[0].UpdatedAt.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("%+v", rows[0])
	}
	if !rows[1].UpdatedAt.Equal(t0) {
		t.Errorf("unchanged row's time moved: %+v", rows[1])
	}
	if rows, _ := s.Usage(ctx, UsageQuery{Fleet: "demo"}); len(rows) != 3 {
		t.Errorf("fleet: %d rows", len(rows))
	}
	if rows, _ := s.Usage(ctx, UsageQuery{}); len(rows) != 4 {
		t.Errorf("all: %d rows", len(rows))
	}
	if rows, _ := s.Usage(ctx, UsageQuery{Since: t0.Add(time.Hour)}); len(rows) != 1 || rows[0].Session != "s1" || rows[0].Instance != "web" {
		t.Errorf("since: %+v", rows)
	}
}
