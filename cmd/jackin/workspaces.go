package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/go-logr/logr"

	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/workspace"
)

// checkoutManager is the CLI's reconciler.Workspaces: it makes and
// releases checkouts through the workspace package and records their
// status in the store. Released checkouts are collected for the report.
type checkoutManager struct {
	st       *store.Store
	stateDir string
	// purge removes checkouts whatever their state (delete --purge).
	purge bool
	// refuseDirty fails a new checkout whose source has uncommitted changes
	// and no ref (watch without --force; apply checks before it starts).
	refuseDirty bool
	log         logr.Logger

	mu       sync.Mutex
	released []releasedCheckout
}

var _ reconciler.Workspaces = (*checkoutManager)(nil)

// releasedCheckout is what happened to one checkout of a deleted instance.
type releasedCheckout struct {
	Checkout workspace.Checkout
	State    workspace.State
	// Removed is true when the checkout is gone; else Status says why it was kept.
	Removed bool
	Status  string
	Err     error
}

func (m *checkoutManager) Prepare(ctx context.Context, fleet string, in *reconciler.DesiredInstance) error {
	for _, w := range in.Checkouts {
		if m.refuseDirty && w.Ref == "" && !workspace.Exists(w) {
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

func (m *checkoutManager) Release(ctx context.Context, fleet, instance string) error {
	// The instance's containers are gone: so go its host files (delete
	// removed them already; a purge of an instance with nothing on the
	// engine has only this).
	if err := reconciler.RemoveInstanceFiles(m.stateDir, fleet, instance); err != nil {
		m.log.Error(err, "remove the instance's host files", "instance", instance)
	}
	list, err := workspace.List(m.stateDir, fleet, instance)
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
func (m *checkoutManager) release(ctx context.Context, c workspace.Checkout) releasedCheckout {
	st := workspace.Inspect(ctx, c)
	r := releasedCheckout{Checkout: c, State: st}
	if m.purge || st.Safe() {
		if err := workspace.Remove(ctx, c, m.purge); err != nil {
			r.Err, r.Status = err, workspace.StatusPreservedDirty
			m.record(ctx, c, r.Status, err.Error())
			return r
		}
		r.Removed = true
		if m.st != nil {
			if err := m.st.DeleteCheckout(ctx, c.Fleet, c.Instance, c.Slug); err != nil {
				m.log.Error(err, "forget checkout", "path", c.Path)
			}
		}
		return r
	}
	r.Status = st.Status()
	m.record(ctx, c, r.Status, stateDetail(st))
	return r
}

func (m *checkoutManager) record(ctx context.Context, c workspace.Checkout, status, detail string) {
	if m.st == nil {
		return
	}
	err := m.st.SetCheckout(context.WithoutCancel(ctx), store.CheckoutRecord{
		Fleet: c.Fleet, Instance: c.Instance, Slug: c.Slug, Mode: c.Mode, Path: c.Path,
		Branch: c.Branch, Base: c.Base, Status: status, Detail: detail,
	})
	if err != nil {
		m.log.Error(err, "record checkout status", "path", c.Path)
	}
}

// stateDetail says what a checkout holds that is not safe elsewhere.
func stateDetail(st workspace.State) string {
	if st.Error != "" {
		return "state unknown: " + st.Error
	}
	var parts []string
	if st.Uncommitted > 0 {
		parts = append(parts, plural(st.Uncommitted, "uncommitted file", "uncommitted files"))
	}
	if st.Unpushed > 0 {
		parts = append(parts, plural(st.Unpushed, "unpushed commit", "unpushed commits"))
	}
	if len(parts) == 0 {
		return "clean and pushed"
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// writeReleased reports what happened to deleted instances' checkouts.
func (m *checkoutManager) writeReleased(w io.Writer) {
	m.mu.Lock()
	rs := append([]releasedCheckout(nil), m.released...)
	m.mu.Unlock()
	if len(rs) == 0 {
		return
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Checkout.Path < rs[j].Checkout.Path })
	fmt.Fprintln(w)
	kept := 0
	for _, r := range rs {
		c := r.Checkout
		switch {
		case r.Removed:
			fmt.Fprintf(w, "%s: removed %s %s (%s)\n", c.Instance, c.Mode, c.Path, stateDetail(r.State))
		default:
			kept++
			why := stateDetail(r.State)
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
