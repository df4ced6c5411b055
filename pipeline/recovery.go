package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/recovery"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
)

// Event kinds of snapshots and restores in the store (history shows them).
const (
	EventSnapshot = "snapshot"
	EventRestore  = "restore"
)

// SnapshotEvent is the data of a snapshot or restore event.
type SnapshotEvent struct {
	ID      string   `json:"id"`
	Trigger string   `json:"trigger,omitempty"`
	Targets []string `json:"targets,omitempty"`
	Files   int      `json:"files,omitempty"`
	Bytes   int64    `json:"bytes,omitempty"`
	// Before (restore) is the snapshot that undoes the restore.
	Before string `json:"before,omitempty"`
	// Pruned are the snapshots retention dropped after this one.
	Pruned []string `json:"pruned,omitempty"`
}

// Snapshot takes a snapshot of instance in (trigger says why), drops the
// instance's snapshots beyond its recovery.keep, and records it in the
// store. An instance with no writable host directory yet is not
// snapshotted (ok false).
func (e Env) Snapshot(ctx context.Context, fleet string, in *schema.Instance, trigger string) (snap recovery.Snapshot, ok bool, err error) {
	targets := existingTargets(recovery.TargetsOf(e.StateDir, fleet, in))
	if len(targets) == 0 {
		return recovery.Snapshot{}, false, nil
	}
	repo, err := recovery.Open(ctx, e.StateDir, fleet)
	if err != nil {
		return recovery.Snapshot{}, false, err
	}
	snap, err = repo.Create(ctx, in.Name, trigger, targets)
	if err != nil {
		return recovery.Snapshot{}, false, err
	}
	pruned, err := repo.Prune(ctx, in.Name, in.Recovery.KeepCount(), false)
	if err != nil {
		e.Log.Error(err, "drop snapshots beyond recovery.keep", "instance", in.Name)
	}
	ev := SnapshotEvent{ID: snap.ID, Trigger: trigger}
	for _, t := range snap.Targets {
		ev.Targets = append(ev.Targets, t.Name)
		ev.Files += t.Files
		ev.Bytes += t.Bytes
	}
	for _, p := range pruned {
		ev.Pruned = append(ev.Pruned, p.ID)
	}
	msg := fmt.Sprintf("snapshot %s (%s): %d files, %d bytes in %s", snap.ID, trigger, ev.Files, ev.Bytes, strings.Join(ev.Targets, ", "))
	if len(pruned) > 0 {
		msg += fmt.Sprintf("; %d older dropped (keep %d)", len(pruned), in.Recovery.KeepCount())
	}
	e.recordEvent(ctx, fleet, in.Name, EventSnapshot, msg, ev)
	e.Log.V(1).Info("snapshot taken", "instance", in.Name, "id", snap.ID, "trigger", trigger, "elapsed", snap.Duration.String())
	return snap, true, nil
}

// RecordRestore records a restore in the store.
func (e Env) RecordRestore(ctx context.Context, fleet, instance string, r recovery.Restored) {
	ev := SnapshotEvent{ID: r.Snapshot.ID, Before: r.Before.ID}
	for _, t := range r.Snapshot.Targets {
		ev.Targets = append(ev.Targets, t.Name)
	}
	msg := fmt.Sprintf("restored snapshot %s: %d written, %d deleted, %d modes set; undo with jackin snapshot restore %s %s", r.Snapshot.ID, r.Written, r.Deleted, r.Modes, instance, r.Before.ID)
	e.recordEvent(ctx, fleet, instance, EventRestore, msg, ev)
}

func (e Env) recordEvent(ctx context.Context, fleet, instance, kind, msg string, data any) {
	if e.Store == nil {
		return
	}
	b, _ := json.Marshal(data)
	if err := e.Store.RecordEvent(context.WithoutCancel(ctx), store.Event{Fleet: fleet, Instance: instance, Kind: kind, Message: msg, Data: b}); err != nil {
		e.Log.Error(err, "record "+kind, "instance", instance)
	}
}

// existingTargets leaves out the targets whose directory does not exist
// yet (a checkout before its first apply).
func existingTargets(ts []recovery.Target) []recovery.Target {
	var out []recovery.Target
	for _, t := range ts {
		if dirExists(t.Path) {
			out = append(out, t)
		}
	}
	return out
}

// SnapshotTrigger is the snapshot an action needs under its instance's
// recovery policy ("" none): before-start before a create, recreate or
// start; before-apply before any action that changes the instance.
func SnapshotTrigger(act reconciler.Action) string {
	if act.Desired == nil || !act.Mutates() {
		return ""
	}
	switch act.Desired.Instance.Recovery.Policy() {
	case schema.SnapshotBeforeStart:
		switch act.Type {
		case reconciler.ActionCreate, reconciler.ActionRecreate, reconciler.ActionStart:
			return recovery.TriggerBeforeStart
		}
	case schema.SnapshotBeforeApply:
		if act.Type != reconciler.ActionDelete {
			return recovery.TriggerBeforeApply
		}
	}
	return ""
}

// BeforeAction is the executor's hook (reconciler.ExecOptions.BeforeAction):
// the snapshot the instance's recovery policy asks for, before any of the
// action's steps. A snapshot that fails fails the action: an agent the
// operator wants a recovery point for does not start without one.
func (e Env) BeforeAction(ctx context.Context, fleet string, act reconciler.Action) error {
	trigger := SnapshotTrigger(act)
	if trigger == "" {
		return nil
	}
	if _, _, err := e.Snapshot(ctx, fleet, &act.Desired.Instance, trigger); err != nil {
		return fmt.Errorf("snapshot %s (recovery.snapshot %s): %w", act.Instance, act.Desired.Instance.Recovery.Policy(), err)
	}
	return nil
}

func dirExists(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}
