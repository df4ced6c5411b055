package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/go-logr/logr"

	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/workspace"
)

// Checkouts is the pipeline's reconciler.Workspaces: it makes and
// releases checkouts through the workspace package and records their
// status in the store. Released checkouts are collected for the report.
type Checkouts struct {
	Store    *store.Store
	StateDir string
	// Purge removes checkouts whatever their state (delete --purge).
	Purge bool
	// RefuseDirty fails a new checkout whose source has uncommitted changes
	// and no ref (watch without --force; apply checks before it starts).
	RefuseDirty bool
	Log         logr.Logger

	mu       sync.Mutex
	released []ReleasedCheckout
}

var _ reconciler.Workspaces = (*Checkouts)(nil)

// ReleasedCheckout is what happened to one checkout of a deleted instance.
type ReleasedCheckout struct {
	Checkout workspace.Checkout
	State    workspace.State
	// Removed is true when the checkout is gone; else Status says why it was kept.
	Removed bool
	Status  string
	Err     error
}

func (m *Checkouts) Prepare(ctx context.Context, fleet string, in *reconciler.DesiredInstance) error {
	for _, w := range in.Checkouts {
		if m.RefuseDirty && w.Ref == "" && !workspace.Exists(w) {
			src, err := workspace.InspectSource(ctx, w.Src, w.Ref)
			if err != nil {
				return fmt.Errorf("%s mount %s: %w", w.Mode, w.Dst, err)
			}
			if len(src.Dirty) > 0 {
				return fmt.Errorf("%s mount %s: src %s has uncommitted changes (%s); the %s would start from HEAD without them: commit or stash them, set ref on the mount, or run watch with --force",
					w.Mode, w.Dst, w.Src, strings.Join(src.Dirty, ", "), w.Mode)
			}
		}
		c, err := workspace.Prepare(ctx, w)
		if err != nil {
			return fmt.Errorf("%s mount %s: %w", w.Mode, w.Dst, err)
		}
		m.record(ctx, c, workspace.StatusActive, "")
	}
	return nil
}

func (m *Checkouts) Release(ctx context.Context, fleet, instance string) error {
	// The instance's containers are gone: so go its host files (delete
	// removed them already; a purge of an instance with nothing on the
	// engine has only this).
	if err := reconciler.RemoveInstanceFiles(m.StateDir, fleet, instance); err != nil {
		m.Log.Error(err, "remove the instance's host files", "instance", instance)
	}
	list, err := workspace.List(m.StateDir, fleet, instance)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range list {
		r := m.release(ctx, c)
		m.mu.Lock()
		m.released = append(m.released, r)
		m.mu.Unlock()
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return errors.Join(errs...)
}

// release removes a checkout whose work is safe elsewhere (clean, and
// pushed or merged), or any with purge; it keeps the others, recorded as
// preserved-dirty or preserved-unpushed.
func (m *Checkouts) release(ctx context.Context, c workspace.Checkout) ReleasedCheckout {
	st := workspace.Inspect(ctx, c)
	r := ReleasedCheckout{Checkout: c, State: st}
	if m.Purge || st.Safe() {
		if err := workspace.Remove(ctx, c, m.Purge); err != nil {
			r.Err, r.Status = err, workspace.StatusPreservedDirty
			m.record(ctx, c, r.Status, err.Error())
			return r
		}
		r.Removed = true
		if m.Store != nil {
			if err := m.Store.DeleteCheckout(ctx, c.Fleet, c.Instance, c.Slug); err != nil {
				m.Log.Error(err, "forget checkout", "path", c.Path)
			}
		}
		return r
	}
	r.Status = st.Status()
	m.record(ctx, c, r.Status, StateDetail(st))
	return r
}

func (m *Checkouts) record(ctx context.Context, c workspace.Checkout, status, detail string) {
	if m.Store == nil {
		return
	}
	err := m.Store.SetCheckout(context.WithoutCancel(ctx), store.CheckoutRecord{
		Fleet: c.Fleet, Instance: c.Instance, Slug: c.Slug, Mode: c.Mode, Path: c.Path,
		Branch: c.Branch, Base: c.Base, Status: status, Detail: detail,
	})
	if err != nil {
		m.Log.Error(err, "record checkout status", "path", c.Path)
	}
}

// StateDetail says what a checkout holds that is not safe elsewhere.
func StateDetail(st workspace.State) string {
	if st.Error != "" {
		return "state unknown: " + st.Error
	}
	var parts []string
	if st.Uncommitted > 0 {
		parts = append(parts, Plural(st.Uncommitted, "uncommitted file", "uncommitted files"))
	}
	if st.Unpushed > 0 {
		parts = append(parts, Plural(st.Unpushed, "unpushed commit", "unpushed commits"))
	}
	if len(parts) == 0 {
		return "clean and pushed"
	}
	return strings.Join(parts, ", ")
}

// Plural is n with the noun in the right number ("1 file", "2 files").
func Plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Released lists what happened to deleted instances' checkouts, by path.
func (m *Checkouts) Released() []ReleasedCheckout {
	m.mu.Lock()
	rs := append([]ReleasedCheckout(nil), m.released...)
	m.mu.Unlock()
	sort.Slice(rs, func(i, j int) bool { return rs[i].Checkout.Path < rs[j].Checkout.Path })
	return rs
}

// DirtySource is a worktree or clone about to be made from a source with
// uncommitted changes and no ref: the checkout starts from HEAD without
// them, which the operator may not expect.
type DirtySource struct {
	Instance string
	Want     workspace.Want
	Dirty    []string
	Head     string
}

// DirtySources lists the checkouts the plan would make from a dirty source.
func (r *Result) DirtySources(ctx context.Context) ([]DirtySource, error) {
	var out []DirtySource
	for _, act := range r.Plan.Actions {
		if act.Desired == nil || (act.Type != reconciler.ActionCreate && act.Type != reconciler.ActionRecreate) {
			continue
		}
		for _, w := range act.Desired.Checkouts {
			if w.Ref != "" || workspace.Exists(w) {
				continue
			}
			src, err := workspace.InspectSource(ctx, w.Src, w.Ref)
			if err != nil {
				return nil, fmt.Errorf("instance %s, %s mount %s: %w", act.Instance, w.Mode, w.Dst, err)
			}
			if len(src.Dirty) > 0 {
				out = append(out, DirtySource{Instance: act.Instance, Want: w, Dirty: src.Dirty, Head: src.Head})
			}
		}
	}
	return out, nil
}
