package store

import (
	"context"
	"testing"
	"time"
)

func TestEgressDecisionsPullTwiceStoresOnce(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	ds := []EgressDecision{
		{Instance: "web", Time: t0, Host: "ok.example", Port: 443, Method: "CONNECT", Allowed: true, Rule: "ok.example (ok.example)", BytesUp: 10, BytesDown: 20, DurationMs: 3},
		{Instance: "web", Time: t0.Add(time.Millisecond), Host: "bad.example", Port: 80, Method: "GET", Rule: "no rule allows bad.example:80"},
		{Instance: "api", Time: t0.Add(2 * time.Millisecond), Host: "bad.example", Port: 443, Method: "CONNECT", Rule: "no rule allows bad.example:443"},
	}
	if since, err := s.EgressPulledUntil(ctx, "demo", "c1"); err != nil || !since.IsZero() {
		t.Fatalf("never pulled: %v %v", since, err)
	}
	n, err := s.AddEgressDecisions(ctx, "demo", "c1", t0.Add(time.Second), ds)
	if err != nil || n != 3 {
		t.Fatalf("first add: %d %v", n, err)
	}
	n, err = s.AddEgressDecisions(ctx, "demo", "c1", t0.Add(2*time.Second), ds[1:])
	if err != nil || n != 0 {
		t.Fatalf("second add of the same decisions stored %d (%v)", n, err)
	}
	if since, _ := s.EgressPulledUntil(ctx, "demo", "c1"); !since.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("pulled until %v", since)
	}
	all, err := s.EgressDecisions(ctx, EgressQuery{Fleet: "demo"})
	if err != nil || len(all) != 3 || all[0].Host != "ok.example" || !all[0].Allowed || all[0].BytesDown != 20 || !all[0].Time.Equal(t0) {
		t.Fatalf("all: %+v %v", all, err)
	}
	denied, _ := s.EgressDecisions(ctx, EgressQuery{Fleet: "demo", Instance: "web", Denied: true})
	if len(denied) != 1 || denied[0].Host != "bad.example" || denied[0].Allowed {
		t.Errorf("denied for web: %+v", denied)
	}
	after, _ := s.EgressDecisions(ctx, EgressQuery{Fleet: "demo", AfterID: all[1].ID})
	if len(after) != 1 || after[0].Instance != "api" {
		t.Errorf("after id %d: %+v", all[1].ID, after)
	}
	newest, _ := s.EgressDecisions(ctx, EgressQuery{Fleet: "demo", Limit: 2})
	if len(newest) != 2 || newest[0].Host != "bad.example" || newest[1].Instance != "api" {
		t.Errorf("newest 2, oldest first: %+v", newest)
	}
	if other, _ := s.EgressDecisions(ctx, EgressQuery{Fleet: "other"}); len(other) != 0 {
		t.Errorf("another fleet sees %+v", other)
	}
}
