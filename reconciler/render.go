package reconciler

import (
	"fmt"
	"io"
	"strings"
)

// PlanAPIVersion and PlanKind identify the JSON plan document.
const (
	PlanAPIVersion = "jackin.dev/v1alpha1"
	PlanKind       = "Plan"
)

// ANSI colours for the text plan.
const (
	ansiReset  = "\x1b[0m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiRed    = "\x1b[31m"
	ansiCyan   = "\x1b[36m"
	ansiBold   = "\x1b[1m"
)

// WritePlanText prints a plan the way a reviewer reads it: one line per
// instance with a marker, its reasons indented below. Markers are "+" create,
// "-/+" recreate, "~" start or stop (named: "~ web (start)"), "-" delete and
// "!" an orphan kept by --prune=false. Noops are omitted. A summary line
// follows ("Plan: 1 to create, ..."); a converged plan prints only
// `No changes. Fleet "NAME" matches the manifest.`. An action that widens
// access (Action.Widens) lists each widening below its reasons as
// "! widens access: ...", and a line after the summary counts them, so a
// reviewer cannot miss a new grant among routine changes. With color,
// markers are coloured with ANSI escapes.
func WritePlanText(w io.Writer, p *Plan, color bool) {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return code + s + ansiReset
	}
	listed := 0
	var idle []string
	for _, a := range p.Actions {
		if a.IdleStopped && a.Type == ActionNoop {
			idle = append(idle, a.Instance)
		}
		var line string
		switch {
		case a.Type == ActionUnreachable:
			line = paint(ansiRed, "  ?") + " " + a.Instance + " (unreachable: engine " + a.Engine + ")"
		case a.Err != nil:
			line = paint(ansiRed, "  !") + " " + a.Instance + " (fails: " + string(a.Type) + " blocked)"
		case a.Type == ActionCreate:
			line = paint(ansiGreen, "  +") + " " + a.Instance
		case a.Type == ActionRecreate:
			line = paint(ansiYellow, "-/+") + " " + a.Instance
		case a.Type == ActionStart || a.Type == ActionStop:
			line = paint(ansiYellow, "  ~") + " " + a.Instance + " (" + string(a.Type) + ")"
		case a.Type == ActionDelete:
			if a.Pruned {
				line = paint(ansiRed, "  -") + " " + a.Instance
			} else {
				line = paint(ansiCyan, "  !") + " " + a.Instance + " (orphan, kept: --prune=false)"
			}
		default:
			continue
		}
		listed++
		fmt.Fprintln(w, line)
		for _, r := range a.Reasons {
			fmt.Fprintln(w, "      "+r)
		}
		for _, wd := range a.Widens {
			fmt.Fprintln(w, "      "+paint(ansiRed, "! widens access:")+" "+wd.Message)
		}
	}
	// Idle-stopped instances are no change; a line says they stay
	// stopped, so a reader does not take them for drift left unhealed.
	idleNote := func() {
		if len(idle) > 0 {
			fmt.Fprintf(w, "Idle-stopped, left stopped (a task or jackin attach starts them): %s.\n", strings.Join(idle, ", "))
		}
	}
	if listed == 0 {
		fmt.Fprintf(w, "No changes. Fleet %q matches the manifest.\n", p.Fleet)
		idleNote()
		return
	}
	c := p.Counts()
	fmt.Fprintln(w)
	fmt.Fprintln(w, paint(ansiBold, fmt.Sprintf("Plan: %d to create, %d to recreate, %d to start, %d to stop, %d to delete.",
		c[ActionCreate], c[ActionRecreate], c[ActionStart], c[ActionStop], c[ActionDelete])))
	if n := c[ActionUnreachable]; n > 0 {
		fmt.Fprintf(w, "%d instance(s) unreachable, left as they are (their engine did not answer).\n", n)
	}
	if n := p.KeptOrphans(); n > 0 {
		noun := "instances"
		if n == 1 {
			noun = "instance"
		}
		fmt.Fprintf(w, "%d orphan %s kept (--prune=false).\n", n, noun)
	}
	idleNote()
	if n := p.WideningActions(); n > 0 {
		noun := "instances widen"
		if n == 1 {
			noun = "instance widens"
		}
		fmt.Fprintln(w, paint(ansiRed, fmt.Sprintf("%d %s access (marked \"! widens access\").", n, noun)))
	}
}

// WideningActions counts the actions that widen access (see Action.Widens).
func (p *Plan) WideningActions() int {
	n := 0
	for _, a := range p.Actions {
		if len(a.Widens) > 0 {
			n++
		}
	}
	return n
}

// PlanDoc is the versioned JSON form of a plan.
type PlanDoc struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Fleet      string      `json:"fleet"`
	Summary    PlanSummary `json:"summary"`
	Actions    []ActionDoc `json:"actions"`
}

// PlanSummary counts a plan's actions (a delete kept by --prune=false is not counted).
type PlanSummary struct {
	Create   int `json:"create"`
	Recreate int `json:"recreate"`
	Start    int `json:"start"`
	Stop     int `json:"stop"`
	Delete   int `json:"delete"`
}

// ActionDoc is one action of a PlanDoc. Kept is true for a delete that
// --prune=false reports without executing. Widens lists how a create or
// recreate widens the instance's access; it is absent when it widens
// nothing.
type ActionDoc struct {
	Instance string     `json:"instance"`
	Action   string     `json:"action"`
	Reasons  []string   `json:"reasons"`
	Kept     bool       `json:"kept,omitempty"`
	Widens   []Widening `json:"widens,omitempty"`
	// Error says why the action fails before changing anything (a
	// credential that cannot be read, an unreachable engine).
	Error string `json:"error,omitempty"`
	// Engine is the declared engine the instance runs on (absent: the
	// local engine).
	Engine string `json:"engine,omitempty"`
	// IdleStopped is set on the noop of an instance idle cleanup
	// stopped: left stopped, not drift.
	IdleStopped bool `json:"idleStopped,omitempty"`
}

// PlanDocument returns the versioned JSON document of a plan (a PlanDoc):
// every action including noops, reasons never null.
func PlanDocument(p *Plan) any {
	c := p.Counts()
	doc := PlanDoc{
		APIVersion: PlanAPIVersion,
		Kind:       PlanKind,
		Fleet:      p.Fleet,
		Summary: PlanSummary{
			Create: c[ActionCreate], Recreate: c[ActionRecreate], Start: c[ActionStart],
			Stop: c[ActionStop], Delete: c[ActionDelete],
		},
		Actions: make([]ActionDoc, 0, len(p.Actions)),
	}
	for _, a := range p.Actions {
		reasons := append([]string{}, a.Reasons...)
		doc.Actions = append(doc.Actions, ActionDoc{
			Instance:    a.Instance,
			Action:      string(a.Type),
			Reasons:     reasons,
			Kept:        a.Type == ActionDelete && !a.Pruned,
			Widens:      append([]Widening(nil), a.Widens...),
			Error:       errString(a.Err),
			Engine:      a.Engine,
			IdleStopped: a.IdleStopped,
		})
	}
	return doc
}
