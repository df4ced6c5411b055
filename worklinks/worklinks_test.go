package worklinks

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestExtractTags(t *testing.T) {
	got := Extract("I opened <jackin:pr>https://github.com/acme/app/pull/12</jackin:pr> for " +
		"<multicode:issue> https://github.com/acme/app/issues/7 </multicode:issue> in <jackin:repo>/work/app</jackin:repo>.")
	want := []Tag{{KindPR, "https://github.com/acme/app/pull/12"}, {KindIssue, "https://github.com/acme/app/issues/7"}, {KindRepo, "/work/app"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestExtractRefusesPlaceholdersAndHostileValues(t *testing.T) {
	for _, s := range []string{
		"<jackin:pr>URL</jackin:pr>",
		"<jackin:repo>PATH_OR_URL</jackin:repo>",
		"<jackin:pr>https://github.com/OWNER/REPO/pull/N</jackin:pr>",
		"<jackin:pr>https://github.com/a/b/pull/1$(reboot)</jackin:pr>",
		"<jackin:pr>https://github.com/a/b/pull/1;rm -rf ~</jackin:pr>",
		"<jackin:issue>https://x.example/a b</jackin:issue>",
		"<jackin:issue>javascript:alert(1)</jackin:issue>",
		"<jackin:repo>https://user:pw@example.com/r.git</jackin:repo>",
		"<jackin:pr>https://github.com/a/b/pull/1</jackin:issue>", // mismatched close
		"<jackin:pr>https://github.com/a/b/pull/1\x1b]8;;</jackin:pr>",
	} {
		if got := Extract(s); len(got) != 0 {
			t.Errorf("%q: got %v, want nothing", s, got)
		}
	}
}

// A tag split across writes (chunks of a terminal's output, text blocks of
// one response) and across lines is found once, when its end arrives.
func TestExtractorSplitAcrossChunksAndLines(t *testing.T) {
	text := "done.\n<jackin:pr>\n  https://github.com/acme/app/pull/3\n</jackin:pr>\nand <jackin:issue>https://github.com/acme/app/issues/4</jackin:issue>"
	for size := 1; size <= len(text); size++ {
		var e Extractor
		var got []Tag
		for i := 0; i < len(text); i += size {
			got = append(got, e.Write([]byte(text[i:min(i+size, len(text))]))...)
		}
		want := []Tag{{KindPR, "https://github.com/acme/app/pull/3"}, {KindIssue, "https://github.com/acme/app/issues/4"}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("chunks of %d: got %v, want %v", size, got, want)
		}
	}
}

func TestExtractorResetDropsUnfinishedTag(t *testing.T) {
	var e Extractor
	if got := e.Write([]byte("see <jackin:pr>https://github.com/a/b/pu")); len(got) != 0 {
		t.Fatal(got)
	}
	e.Reset() // the operator's prompt came in between
	if got := e.Write([]byte("ll/1</jackin:pr>")); len(got) != 0 {
		t.Fatalf("a tag finished in other text counted: %v", got)
	}
}

func TestExtractorBoundedCarry(t *testing.T) {
	var e Extractor
	e.Write([]byte("<jackin:pr>"))
	for range 100 {
		e.Write(make([]byte, 1000))
	}
	if len(e.carry) > maxCarry {
		t.Fatalf("carry grew to %d", len(e.carry))
	}
}

func TestParseGitHub(t *testing.T) {
	r, ok := ParseGitHub("https://github.com/acme/app/pull/12/files#x", "github.com")
	if !ok || r != (GitHubRef{KindPR, "acme", "app", 12}) {
		t.Fatalf("%v %v", r, ok)
	}
	if r, ok := ParseGitHub("https://ghe.corp/acme/app/issues/3", "GHE.corp"); !ok || r.Kind != KindIssue {
		t.Fatalf("%v %v", r, ok)
	}
	for _, s := range []string{"https://gitlab.com/a/b/pull/1", "https://github.com/a/b/tree/1", "https://github.com/a/b/pull/x", "https://github.com/a"} {
		if _, ok := ParseGitHub(s, "github.com"); ok {
			t.Errorf("%s parsed", s)
		}
	}
}

func TestRefreshSchedule(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		s    State
		want time.Duration
	}{
		{State{Kind: KindPR, State: StateOpen, Checks: ChecksPending}, time.Minute},
		{State{Kind: KindPR, State: StateDraft, Checks: ChecksPending}, time.Minute},
		{State{Kind: KindPR, State: StateOpen, Checks: ChecksPassing, Review: ReviewPending}, 5 * time.Minute},
		{State{Kind: KindPR, State: StateOpen, Checks: ChecksFailing}, 5 * time.Minute},
		{State{Kind: KindIssue, State: StateOpen}, 10 * time.Minute},
		{State{Kind: KindIssue, State: StateClosed}, time.Hour},
		{State{Kind: KindPR, State: StateMerged, Checks: ChecksPending}, time.Hour},
		{State{Kind: KindPR, State: StateClosed}, time.Hour},
	}
	for _, c := range cases {
		n := c.s.Next(at)
		if got := n.NextAt.Sub(at); got != c.want {
			t.Errorf("%+v: next in %v, want %v", c.s, got, c.want)
		}
		if n.Due(at.Add(c.want - time.Second)) {
			t.Errorf("%+v: due before its interval", c.s)
		}
		if !n.Due(at.Add(c.want)) {
			t.Errorf("%+v: not due after its interval", c.s)
		}
	}
	if !(State{}).Due(at) {
		t.Error("a state never read is not due")
	}
}

func TestErrorBackoff(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s := State{Kind: KindPR, State: StateOpen, Checks: ChecksPassing}
	var got []time.Duration
	for range 6 {
		s = s.Failed(errors.New("boom"), at)
		got = append(got, s.NextAt.Sub(at))
	}
	want := []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, time.Hour, time.Hour}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("backoff %v, want %v", got, want)
	}
	if s.State != StateOpen {
		t.Fatal("the last good state was lost")
	}
}

func TestSetKeepsFirstAndLastSeen(t *testing.T) {
	var s Set
	t0 := time.Unix(100, 0)
	s.Add(Tag{KindPR, "https://g/a/b/pull/1"}, t0.Add(time.Minute))
	s.Add(Tag{KindPR, "https://g/a/b/pull/1"}, t0)
	if s.Add(Tag{KindPR, "https://g/a/b/pull/1"}, t0.Add(30*time.Second)) {
		t.Fatal("a sighting between first and last changed the set")
	}
	ls := s.Links()
	if len(ls) != 1 || !ls[0].FirstSeen.Equal(t0) || !ls[0].LastSeen.Equal(t0.Add(time.Minute)) {
		t.Fatalf("%+v", ls)
	}
	for i := range MaxLinks + 5 {
		s.Add(Tag{KindRepo, "/r/" + string(rune('a'+i%26)) + time.Duration(i).String()}, t0.Add(time.Duration(i+2)*time.Minute))
	}
	if n := len(s.Links()); n != MaxLinks {
		t.Fatalf("%d links", n)
	}
}
