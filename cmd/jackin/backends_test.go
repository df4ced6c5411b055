package main

import (
	"slices"
	"testing"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/schema"
)

// TestTheBinaryHasEveryBackendTheSchemaNames: a backend the schema accepts
// is one this binary can open (drivers register themselves when linked),
// and the other way round.
func TestTheBinaryHasEveryBackendTheSchemaNames(t *testing.T) {
	v := cuecontext.New().CompileBytes(schema.Source, cue.Filename(schema.SourceName)).LookupPath(cue.MakePath(cue.Def("#Instance"), cue.Str("backend").Optional()))
	if !v.Exists() {
		t.Fatal("the schema has no instance backend field")
	}
	var names []string
	op, args := v.Expr()
	if op == cue.OrOp {
		for _, a := range args {
			s, err := a.String()
			if err != nil {
				t.Fatalf("backend alternative %v is not a string: %v", a, err)
			}
			names = append(names, s)
		}
	} else {
		s, err := v.String()
		if err != nil {
			t.Fatalf("backend is neither a string nor a list of them: %v", err)
		}
		names = []string{s}
	}
	slices.Sort(names)
	if got := drivers.Backends(); !slices.Equal(got, names) {
		t.Fatalf("registered backends %v, the schema's %v", got, names)
	}
}
