package contract

import (
	"strings"

	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// NoAccess is the access of an instance that does not exist: nothing
// mounted, no egress, no published port, no Docker, no credential. A new
// instance is compared with it, so everything it can reach is a widening.
func NoAccess() Access {
	return Access{
		Mounts:      []AccessMount{},
		Egress:      "none",
		Ports:       []AccessPort{},
		Docker:      schema.DockerNone,
		Credentials: []string{},
	}
}

// PreviousAccess is what an instance could reach before a plan: the access
// of its last-applied spec, or NoAccess when none is recorded. An unknown
// previous access counts as none (a new instance, or a state dir that lost
// the record), so nothing widens unseen.
func PreviousAccess(last reconciler.LastApplied, instance, home string) Access {
	if spec, ok := last[instance]; ok {
		return AccessOfSpec(spec, home)
	}
	return NoAccess()
}

// MarkWidenings sets Widens on every create and recreate action of p: the
// Widenings of the desired spec's access over PreviousAccess. Other actions
// do not change a spec, so they widen nothing. home is the host home
// directory for the sensitive-path matcher. It returns how many actions
// widen access.
func MarkWidenings(p *reconciler.Plan, last reconciler.LastApplied, home string) int {
	if p == nil {
		return 0
	}
	n := 0
	for i := range p.Actions {
		a := &p.Actions[i]
		a.Widens = nil
		if a.Desired == nil || a.Err != nil || (a.Type != reconciler.ActionCreate && a.Type != reconciler.ActionRecreate) {
			continue
		}
		a.Widens = Widenings(PreviousAccess(last, a.Instance, home), AccessOfSpec(a.Desired.Spec, home))
		if prev, ok := last[a.Instance]; ok {
			// The same structured diff the recreate reasons come from:
			// a field that did not change widens nothing.
			a.Widens = changedOnly(a.Widens, reconciler.CompareSpecs(prev, a.Desired.Spec))
		}
		if len(a.Widens) > 0 {
			n++
		}
	}
	return n
}

// wideningFields maps a widening's field to the spec field it comes from.
var wideningFields = map[string]string{
	"mounts":         reconciler.FieldMounts,
	"network.egress": reconciler.FieldEgress,
	"network.ports":  reconciler.FieldPorts,
	"docker":         reconciler.FieldDocker,
	"credentials":    reconciler.FieldCredentials,
}

// changedOnly keeps the widenings of the fields the spec diff names.
func changedOnly(ws []reconciler.Widening, ch reconciler.SpecChanges) []reconciler.Widening {
	var out []reconciler.Widening
	for _, w := range ws {
		field, ok := wideningFields[w.Field]
		switch {
		case strings.HasPrefix(w.Field, "resources."):
			field, ok = reconciler.FieldResources, true
		case strings.HasPrefix(w.Field, "security."):
			field, ok = reconciler.FieldSandbox, true
		}
		if !ok || ch.Has(field) {
			out = append(out, w)
		}
	}
	return out
}
