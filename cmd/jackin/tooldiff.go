package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
)

// Operator tools are part of the reviewed manifest: apply records the
// fleet's tools (an event of kind eventTools, their definitions as its
// data), and diff compares the manifest's with the last recorded, so a
// new or changed tool, above all one that types into agents, is seen
// before it is used by a console.

// eventTools is the kind of the event apply records the tools in.
const eventTools = "tools"

// toolChange is one tool added, changed or removed since the last apply.
type toolChange struct {
	Tool   string `json:"tool"`
	Change string `json:"change"` // added, changed, removed
	// Kind is exec (runs on the host) or prompt (types into an agent);
	// queue for the fleet's task queue (Tool "queue").
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// toolDetail is what a tool does, in one line.
func toolDetail(t schema.Tool) (kind, detail string) {
	key := ""
	if t.Key != "" {
		key = " (key " + t.Key + ")"
	}
	if t.Prompt != "" {
		return "prompt", fmt.Sprintf("types %q into the agent%s", t.Prompt, key)
	}
	return "exec", "runs " + quoteArgv(t.Exec) + " on this machine" + key
}

func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = fmt.Sprintf("%q", a)
	}
	return "[" + strings.Join(q, " ") + "]"
}

// appliedTools are the tools the last apply recorded (none: nil).
func appliedTools(ctx context.Context, st *store.Store, fleet string) (map[string]schema.Tool, error) {
	if st == nil {
		return nil, nil
	}
	ev, ok, err := st.LastEventOfKind(ctx, fleet, eventTools)
	if err != nil || !ok {
		return nil, err
	}
	var tools map[string]schema.Tool
	if err := json.Unmarshal(ev.Data, &tools); err != nil {
		return nil, fmt.Errorf("the recorded tools: %w", err)
	}
	return tools, nil
}

// toolChanges compares the manifest's tools with the last applied.
func toolChanges(ctx context.Context, st *store.Store, fleet *schema.Fleet) ([]toolChange, error) {
	old, err := appliedTools(ctx, st, fleet.Name)
	if err != nil {
		return nil, err
	}
	var out []toolChange
	names := slices.Sorted(maps.Keys(fleet.Tools))
	for _, n := range names {
		t := fleet.Tools[n]
		kind, detail := toolDetail(t)
		prev, had := old[n]
		switch {
		case !had:
			out = append(out, toolChange{Tool: n, Change: "added", Kind: kind, Detail: detail})
		case !sameTool(prev, t):
			_, was := toolDetail(prev)
			out = append(out, toolChange{Tool: n, Change: "changed", Kind: kind, Detail: detail + "; was: " + was})
		}
	}
	for _, n := range slices.Sorted(maps.Keys(old)) {
		if _, ok := fleet.Tools[n]; !ok {
			kind, detail := toolDetail(old[n])
			out = append(out, toolChange{Tool: n, Change: "removed", Kind: kind, Detail: detail})
		}
	}
	q, err := queueChanges(ctx, st, fleet)
	return append(out, q...), err
}

func sameTool(a, b schema.Tool) bool {
	return a.Key == b.Key && a.Prompt == b.Prompt && slices.Equal(a.Exec, b.Exec)
}

// writeToolChanges prints the tool changes after a plan.
func writeToolChanges(w io.Writer, changes []toolChange) {
	if len(changes) == 0 {
		return
	}
	header := false
	for _, c := range changes {
		mark := map[string]string{"added": "+", "changed": "~", "removed": "-"}[c.Change]
		if c.Kind == "queue" {
			fmt.Fprintf(w, "Task queue:\n  %s %s\n", mark, c.Detail)
			continue
		}
		if !header {
			fmt.Fprintln(w, "Operator tools:")
			header = true
		}
		fmt.Fprintf(w, "  %s tool %s: %s\n", mark, c.Tool, c.Detail)
	}
}

// withToolChanges adds toolChanges to a JSON plan document.
func withToolChanges(doc any, changes []toolChange) any {
	if len(changes) == 0 {
		return doc
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return doc
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return doc
	}
	m["toolChanges"] = changes
	return m
}

// recordTools records the fleet's tools when they differ from the last
// recorded (apply).
func recordTools(ctx context.Context, st *store.Store, fleet *schema.Fleet, changes []toolChange) error {
	if st == nil || len(changes) == 0 {
		return nil
	}
	if err := recordQueue(ctx, st, fleet, changes); err != nil {
		return err
	}
	var toolOnly []toolChange
	for _, c := range changes {
		if c.Kind != "queue" {
			toolOnly = append(toolOnly, c)
		}
	}
	if len(toolOnly) == 0 {
		return nil
	}
	changes = toolOnly
	tools := fleet.Tools
	if tools == nil {
		tools = map[string]schema.Tool{}
	}
	data, err := json.Marshal(tools)
	if err != nil {
		return err
	}
	parts := make([]string, 0, len(changes))
	for _, c := range changes {
		parts = append(parts, c.Change+" "+c.Tool)
	}
	return st.RecordEvent(ctx, store.Event{Fleet: fleet.Name, Kind: eventTools, Message: "operator tools: " + strings.Join(parts, ", "), Data: data})
}
