package supervisor

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

func TestParseDetachKeys(t *testing.T) {
	for spec, want := range map[string][]byte{
		"ctrl-p,ctrl-q": {0x10, 0x11},
		"ctrl-a, x":     {0x01, 'x'},
		"ctrl-@":        {0x00},
		"ctrl-_":        {0x1f},
		"q":             {'q'},
	} {
		got, err := ParseDetachKeys(spec)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ParseDetachKeys(%q) = %v, %v; want %v", spec, got, err, want)
		}
	}
	for _, bad := range []string{"", "ctrl-", "ctrl-1", "ab", "ctrl-pq", "ctrl-p,,ctrl-q"} {
		if _, err := ParseDetachKeys(bad); err == nil {
			t.Errorf("ParseDetachKeys(%q) accepted", bad)
		}
	}
}

func TestScreenKeepsTheLastLines(t *testing.T) {
	s := NewScreen(3)
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(s, "line %d\n", i)
	}
	fmt.Fprint(s, "partial")
	if got, want := s.Lines(), []string{"line 3", "line 4", "line 5", "partial"}; !slices.Equal(got, want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
	short := NewScreen(10)
	fmt.Fprint(short, "a\nb\n")
	if got := short.Lines(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("lines %q", got)
	}
}
