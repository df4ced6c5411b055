package main

import (
	"testing"
	"time"

	"github.com/jackin-dev/jackin/worklinks"
)

func TestLinkCell(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	st := worklinks.State{Kind: worklinks.KindPR, State: worklinks.StateOpen, Checks: worklinks.ChecksFailing, Review: worklinks.ReviewApproved}
	ls := []linkItem{
		{Kind: worklinks.KindRepo, URL: "https://github.com/o/r.git", LastSeen: t0.Add(time.Hour)},
		{Kind: worklinks.KindPR, URL: "https://github.com/o/r/pull/7", LastSeen: t0, State: &st},
		{Kind: worklinks.KindPR, URL: "https://github.com/o/r/pull/6", LastSeen: t0.Add(-time.Hour)},
		{Kind: worklinks.KindIssue, URL: "https://github.com/o/r/issues/3", LastSeen: t0.Add(2 * time.Hour)},
	}
	if got, want := linkCell(ls), "pr o/r#7 open,ci:failing,rv:approved (+3)"; got != want {
		t.Errorf("linkCell = %q, want %q", got, want)
	}
	if got := linkCell(nil); got != "-" {
		t.Errorf("no links: %q", got)
	}
	for in, want := range map[linkItem]string{
		{Kind: worklinks.KindRepo, URL: "/home/me/src/app"}:                "app",
		{Kind: worklinks.KindRepo, URL: "git@github.com:o/r.git"}:          "o/r",
		{Kind: worklinks.KindIssue, URL: "https://jira.example.com/b/X-1"}: "jira.example.com/b/X-1",
	} {
		if got := shortLink(in); got != want {
			t.Errorf("shortLink(%s) = %q, want %q", in.URL, got, want)
		}
	}
}
