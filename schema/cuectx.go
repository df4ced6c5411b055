package schema

import (
	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
)

func cueContext() *cue.Context { return cuecontext.New() }
