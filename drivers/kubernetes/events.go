package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/jackin-dev/jackin/drivers"
)

var _ drivers.EventSource = (*Driver)(nil)

// errWatchEnded reports a watch the API server closed, as it does after
// its request timeout: the caller reopens it and resyncs.
var errWatchEnded = errors.New("the API server closed the watch")

// watchOpener opens one watch of one kind in one namespace.
type watchOpener struct {
	what string // "Pods", for errors
	open func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// Events streams changes to the fleet's objects from the watch API: one
// watch per kind and namespace, by the fleet's label selector, merged
// into one stream. What is reported is what a heal may follow: a Pod, a
// Secret (the created container), a claim or a NetworkPolicy deleted; a
// Pod's agent that exited; a NetworkPolicy edited away from what jackin
// applied. Objects jackin adds, and status changes of running Pods, are
// not. When any one watch ends the stream ends with it (the watcher
// reopens it and resyncs).
func (d *Driver) Events(ctx context.Context, fleet string) (<-chan drivers.Event, <-chan error, error) {
	opts := metav1.ListOptions{LabelSelector: fleetSelector(fleet)}
	sctx, cancel := context.WithCancel(ctx)
	var opened []watch.Interface
	stopAll := func() {
		for _, w := range opened {
			w.Stop()
		}
		cancel()
	}
	for _, ns := range d.namespaces() {
		for _, o := range []watchOpener{
			{"Pods", d.cs.CoreV1().Pods(ns).Watch},
			{"Secrets", d.cs.CoreV1().Secrets(ns).Watch},
			{"PersistentVolumeClaims", d.cs.CoreV1().PersistentVolumeClaims(ns).Watch},
			{"NetworkPolicies", d.cs.NetworkingV1().NetworkPolicies(ns).Watch},
		} {
			w, err := o.open(sctx, opts)
			if err != nil {
				stopAll()
				return nil, nil, d.wrap(err, "watch the %s of fleet %q in namespace %s", o.what, fleet, ns)
			}
			opened = append(opened, w)
		}
	}

	raw := make(chan watch.Event)
	ended := make(chan error, len(opened))
	var wg sync.WaitGroup
	for _, w := range opened {
		wg.Go(func() {
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					ended <- fmt.Errorf("watch error: %w", apierrors.FromObject(ev.Object))
					return
				}
				select {
				case raw <- ev:
				case <-sctx.Done():
					return
				}
			}
			ended <- errWatchEnded
		})
	}
	out := make(chan drivers.Event, 64)
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		defer close(out)
		defer wg.Wait()
		defer stopAll()
		tr := newTranslator()
		for {
			select {
			case ev := <-raw:
				e, ok := tr.translate(ev, time.Now())
				if !ok {
					continue
				}
				select {
				case out <- e:
				case <-ctx.Done():
					errs <- ctx.Err()
					return
				}
			case err := <-ended:
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				errs <- d.wrap(err, "kubernetes watch of fleet %q", fleet)
				return
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			}
		}
	}()
	return out, errs, nil
}

// translator maps watch events onto the engine's event vocabulary. It
// remembers which Pods it has seen exit, so a Pod's later status updates
// do not report the same exit again.
type translator struct {
	exited map[types.UID]bool
}

func newTranslator() *translator { return &translator{exited: map[types.UID]bool{}} }

// translate reports the engine event a watch event stands for, or false
// when it stands for none a heal follows.
func (t *translator) translate(ev watch.Event, now time.Time) (drivers.Event, bool) {
	switch o := ev.Object.(type) {
	case *corev1.Pod:
		return t.pod(ev.Type, o, now)
	case *corev1.Secret:
		if ev.Type != watch.Deleted {
			return drivers.Event{}, false
		}
		return objectEvent(drivers.KindContainer, drivers.EventDestroy, o.ObjectMeta, now), true
	case *corev1.PersistentVolumeClaim:
		if ev.Type != watch.Deleted {
			return drivers.Event{}, false
		}
		return objectEvent(drivers.KindVolume, drivers.EventDestroy, o.ObjectMeta, now), true
	case *networkingv1.NetworkPolicy:
		switch {
		case ev.Type == watch.Deleted:
			return objectEvent(drivers.KindNetwork, drivers.EventDestroy, o.ObjectMeta, now), true
		case ev.Type == watch.Modified && o.DeletionTimestamp == nil && PolicyHash(o.Spec) != o.Annotations[AnnotationPolicyHash]:
			// Edited since jackin applied it; jackin's own re-apply
			// restores the hash and reports nothing.
			return objectEvent(drivers.KindNetwork, drivers.EventChange, o.ObjectMeta, now), true
		}
	}
	return drivers.Event{}, false
}

func (t *translator) pod(typ watch.EventType, p *corev1.Pod, now time.Time) (drivers.Event, bool) {
	switch typ {
	case watch.Deleted:
		delete(t.exited, p.UID)
		return objectEvent(drivers.KindContainer, drivers.EventDestroy, p.ObjectMeta, now), true
	case watch.Added, watch.Modified:
		code, at, done := agentExit(p)
		if !done || t.exited[p.UID] {
			return drivers.Event{}, false
		}
		t.exited[p.UID] = true
		// An exit that was already there when the watch opened (the
		// synthetic Added of an existing Pod), or one a deletion
		// caused, is no news: the first pass, or the Pod's deletion
		// event, covers it.
		if typ == watch.Added || p.DeletionTimestamp != nil {
			return drivers.Event{}, false
		}
		ev := objectEvent(drivers.KindContainer, drivers.EventDie, p.ObjectMeta, now)
		ev.ExitCode = strconv.Itoa(int(code))
		if !at.IsZero() {
			ev.Time = at
		}
		return ev, true
	}
	return drivers.Event{}, false
}

// agentExit is the exit of a Pod's agent container, when it has exited.
func agentExit(p *corev1.Pod) (code int32, at time.Time, done bool) {
	if cs := agentStatus(p); cs != nil && cs.State.Terminated != nil {
		return cs.State.Terminated.ExitCode, cs.State.Terminated.FinishedAt.Time, true
	}
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		code := int32(0)
		if p.Status.Phase == corev1.PodFailed {
			code = 1
		}
		return code, time.Time{}, true
	}
	return 0, time.Time{}, false
}

func objectEvent(kind drivers.Kind, action string, m metav1.ObjectMeta, now time.Time) drivers.Event {
	ev := drivers.Event{Kind: kind, Action: action, ID: ID(m.Namespace, m.Name), Name: m.Name, Instance: m.Labels[drivers.LabelInstance], Time: now}
	if kind == drivers.KindContainer {
		ev.Component = m.Labels[drivers.LabelComponent]
	}
	return ev
}
