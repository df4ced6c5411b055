package worklinks

import (
	"sort"
	"time"
)

// Set accumulates the links found in a stream, each with when it was
// first and last seen, at most MaxLinks (the least recently seen go).
type Set struct {
	m map[Key]*Link
}

// Key identifies a link.
type Key struct {
	Kind Kind
	URL  string
}

// MaxLinks bounds an instance's links.
const MaxLinks = 100

// Add records a tag seen at t; it reports whether the set changed (a new
// link, or one seen later than before).
func (s *Set) Add(t Tag, at time.Time) bool {
	if s.m == nil {
		s.m = map[Key]*Link{}
	}
	k := Key{t.Kind, t.Value}
	if l := s.m[k]; l != nil {
		changed := false
		if at.After(l.LastSeen) {
			l.LastSeen, changed = at, true
		}
		if at.Before(l.FirstSeen) {
			l.FirstSeen, changed = at, true
		}
		return changed
	}
	s.m[k] = &Link{Kind: t.Kind, URL: t.Value, FirstSeen: at, LastSeen: at}
	if len(s.m) > MaxLinks {
		var oldest *Link
		for _, l := range s.m {
			if oldest == nil || l.LastSeen.Before(oldest.LastSeen) {
				oldest = l
			}
		}
		delete(s.m, Key{oldest.Kind, oldest.URL})
	}
	return true
}

// Links lists the set, sorted (Sort).
func (s *Set) Links() []Link {
	out := make([]Link, 0, len(s.m))
	for _, l := range s.m {
		out = append(out, *l)
	}
	Sort(out)
	return out
}

// Sort orders links by kind (repo, issue, pr), then newest first.
func Sort(ls []Link) {
	rank := map[Kind]int{KindRepo: 0, KindIssue: 1, KindPR: 2}
	sort.SliceStable(ls, func(i, j int) bool {
		if ls[i].Kind != ls[j].Kind {
			return rank[ls[i].Kind] < rank[ls[j].Kind]
		}
		if !ls[i].LastSeen.Equal(ls[j].LastSeen) {
			return ls[i].LastSeen.After(ls[j].LastSeen)
		}
		return ls[i].URL < ls[j].URL
	})
}

// States of an issue or pull request, and of its checks and review.
const (
	StateOpen   = "open"
	StateClosed = "closed"
	StateDraft  = "draft"
	StateMerged = "merged"

	ChecksNone    = "none"
	ChecksPending = "pending"
	ChecksPassing = "passing"
	ChecksFailing = "failing"

	ReviewNone             = "none"
	ReviewPending          = "pending"
	ReviewChangesRequested = "changes_requested"
	ReviewApproved         = "approved"
)

// State is what GitHub said of a link, and when to ask again.
type State struct {
	// Kind is the link's kind as GitHub knows it (issue or pr).
	Kind Kind `json:"kind"`
	// State: open or closed for an issue; draft, open, merged or closed
	// for a pull request. Empty when never read (Error says why).
	State string `json:"state,omitempty"`
	// Checks and Review are a pull request's (check runs and commit
	// statuses of its head; its reviews).
	Checks string `json:"checks,omitempty"`
	Review string `json:"review,omitempty"`
	// Error is the last refresh's failure ("" when it worked), kept with
	// the last good state.
	Error string `json:"error,omitempty"`
	// Failures counts refreshes that failed in a row.
	Failures int `json:"-"`
	// CheckedAt is the last refresh; NextAt when the next is due.
	CheckedAt time.Time `json:"checkedAt"`
	NextAt    time.Time `json:"-"`
}

// Refresh intervals (in the spirit of multicode's): a pull request whose
// checks run is asked every minute, one waiting for review every five, an
// open issue every ten, anything closed or merged hourly; a failure is
// tried again after five minutes, doubling up to an hour.
const (
	EveryBuilding = time.Minute
	EveryOpenPR   = 5 * time.Minute
	EveryIssue    = 10 * time.Minute
	EveryClosed   = time.Hour
	ErrorFirst    = 5 * time.Minute
	ErrorMax      = time.Hour
)

// Interval is how long a state stays fresh.
func Interval(s State) time.Duration {
	if s.Error != "" {
		d := ErrorFirst
		for i := 1; i < s.Failures && d < ErrorMax; i++ {
			d *= 2
		}
		return min(d, ErrorMax)
	}
	switch s.State {
	case StateClosed, StateMerged:
		return EveryClosed
	}
	if s.Kind == KindPR {
		if s.Checks == ChecksPending {
			return EveryBuilding
		}
		return EveryOpenPR
	}
	return EveryIssue
}

// Next sets s.CheckedAt to at and s.NextAt to when it is due again.
func (s State) Next(at time.Time) State {
	s.CheckedAt = at
	s.NextAt = at.Add(Interval(s))
	return s
}

// Failed is s after a refresh at at failed with err: the last good state
// kept, the failure counted, the next try backed off.
func (s State) Failed(err error, at time.Time) State {
	s.Error = err.Error()
	s.Failures++
	return s.Next(at)
}

// Due reports whether s must be asked again at now (never asked: due).
func (s State) Due(now time.Time) bool { return s.CheckedAt.IsZero() || !now.Before(s.NextAt) }

// Short is a compact cell for tables: "open", "draft", "merged",
// "open ci:pending rv:approved", "error".
func (s State) Short() string {
	st := s.State
	if st == "" {
		if s.Error != "" {
			return "error"
		}
		return "?"
	}
	if s.Kind == KindPR && (st == StateOpen || st == StateDraft) {
		if s.Checks != "" && s.Checks != ChecksNone {
			st += " ci:" + s.Checks
		}
		if s.Review != "" && s.Review != ReviewNone {
			st += " rv:" + s.Review
		}
	}
	return st
}
