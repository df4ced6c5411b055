package main

import (
	"fmt"
	"io"

	"github.com/jackin-dev/jackin/pipeline"
)

// writeReleased reports what happened to deleted instances' checkouts.
func writeReleased(w io.Writer, m *pipeline.Checkouts) {
	rs := m.Released()
	if len(rs) == 0 {
		return
	}
	fmt.Fprintln(w)
	kept := 0
	for _, r := range rs {
		c := r.Checkout
		switch {
		case r.Removed:
			fmt.Fprintf(w, "%s: removed %s %s (%s)\n", c.Instance, c.Mode, c.Path, pipeline.StateDetail(r.State))
		default:
			kept++
			why := pipeline.StateDetail(r.State)
			if r.Err != nil {
				why = "removing it failed: " + r.Err.Error()
			}
			fmt.Fprintf(w, "%s: kept %s %s: %s (%s)\n      review: %s\n", c.Instance, c.Mode, c.Path, r.Status, why, c.ReviewCommand())
		}
	}
	if kept > 0 {
		fmt.Fprintf(w, "Kept work is listed by jackin work; jackin delete --purge removes it.\n")
	}
}

func plural(n int, one, many string) string { return pipeline.Plural(n, one, many) }
