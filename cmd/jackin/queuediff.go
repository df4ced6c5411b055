package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
)

// The task queue is part of the reviewed manifest too: which sources type
// prompts into which agents. apply records it (an event of kind
// eventQueueSettings, its one-line description as data) and diff lists a
// change of it after the plan, with the tools (kind "queue").

// eventQueueSettings is the kind of the event apply records the queue in.
const eventQueueSettings = "queue-settings"

// queueDetail describes a queue in one line ("" for none).
func queueDetail(q *schema.Queue) string {
	if q == nil {
		return ""
	}
	var srcs []string
	for _, s := range q.Sources {
		switch s.Kind {
		case schema.TaskSourceDir:
			srcs = append(srcs, fmt.Sprintf("%s (dir %s, every %s)", s.Name, s.Dir, s.Every))
		case schema.TaskSourceGitHub:
			srcs = append(srcs, fmt.Sprintf("%s (github %s labels [%s], every %s)", s.Name, s.GitHub.Repo, strings.Join(s.GitHub.Labels, " "), s.Every))
		case schema.TaskSourceCommand:
			srcs = append(srcs, fmt.Sprintf("%s (command %s, every %s)", s.Name, quoteArgv(s.Command), s.Every))
		}
	}
	d := fmt.Sprintf("sources %s into instances %s", strings.Join(srcs, ", "), strings.Join(q.Instances, ", "))
	if q.MaxParallel > 0 {
		d += fmt.Sprintf(", at most %d at once", q.MaxParallel)
	}
	d += fmt.Sprintf(", %d attempts", q.MaxAttempts)
	if q.ReviewBeforeDone {
		d += ", review before done"
	}
	return d
}

// queueChanges compares the manifest's queue with the last applied: one
// change or none.
func queueChanges(ctx context.Context, st *store.Store, fleet *schema.Fleet) ([]toolChange, error) {
	now := queueDetail(fleet.Queue)
	was := ""
	if st != nil {
		ev, ok, err := st.LastEventOfKind(ctx, fleet.Name, eventQueueSettings)
		if err != nil {
			return nil, err
		}
		if ok {
			if err := json.Unmarshal(ev.Data, &was); err != nil {
				return nil, fmt.Errorf("the recorded queue: %w", err)
			}
		}
	}
	switch {
	case now == was:
		return nil, nil
	case was == "":
		return []toolChange{{Tool: "queue", Change: "added", Kind: "queue", Detail: now}}, nil
	case now == "":
		return []toolChange{{Tool: "queue", Change: "removed", Kind: "queue", Detail: was}}, nil
	}
	return []toolChange{{Tool: "queue", Change: "changed", Kind: "queue", Detail: now + "; was: " + was}}, nil
}

// recordQueue records the fleet's queue when it changed (apply).
func recordQueue(ctx context.Context, st *store.Store, fleet *schema.Fleet, changes []toolChange) error {
	for _, c := range changes {
		if st == nil || c.Kind != "queue" {
			continue
		}
		data, err := json.Marshal(queueDetail(fleet.Queue))
		if err != nil {
			return err
		}
		return st.RecordEvent(ctx, store.Event{Fleet: fleet.Name, Kind: eventQueueSettings, Message: "task queue " + c.Change, Data: data})
	}
	return nil
}
