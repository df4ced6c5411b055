package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/schema"
)

// writeCredentialRefresh prints pending in-place credential refreshes.
func writeCredentialRefresh(w io.Writer, res *pipeline.Result, pending []pipeline.CredentialRefresh) {
	for _, c := range pending {
		in := res.Desired.Instance(c.Instance)
		var where []string
		for _, n := range c.Credentials {
			cr := in.Instance.Credentials[n]
			switch cr.Deliver.Kind {
			case schema.DeliverFile:
				where = append(where, fmt.Sprintf("credential %s changed (the file %s is rewritten in place)", n, cr.FileTarget()))
			default:
				where = append(where, fmt.Sprintf("credential %s changed (the egress proxy's copy for %s is rewritten; it reloads it)", n, cr.Deliver.Proxy.Host))
			}
		}
		fmt.Fprintf(w, "~ %s: %s; nothing is recreated\n", c.Instance, strings.Join(where, ", "))
	}
}
