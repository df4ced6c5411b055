package kubernetes

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/jackin-dev/jackin/drivers"
)

func eventMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "ns", UID: "uid-" + types.UID(name),
		Labels: map[string]string{drivers.LabelInstance: "a", drivers.LabelComponent: drivers.ComponentAgent}}
}

func exitedPod(code int32, deleting bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: eventMeta("jk-f-a")}
	p.Status.Phase = corev1.PodFailed
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: AgentContainer, State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: code, FinishedAt: metav1.NewTime(time.Unix(100, 0))}}}}
	if deleting {
		now := metav1.Now()
		p.DeletionTimestamp = &now
	}
	return p
}

// TestWatchEventsMapOntoEngineEvents: what the watch API reports becomes
// the engine events a heal follows, and nothing else does.
func TestWatchEventsMapOntoEngineEvents(t *testing.T) {
	now := time.Unix(200, 0)
	running := &corev1.Pod{ObjectMeta: eventMeta("jk-f-a")}
	running.Status.Phase = corev1.PodRunning
	pol := &networkingv1.NetworkPolicy{ObjectMeta: eventMeta("jk-f-a")}
	pol.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	applied := pol.DeepCopy()
	applied.Annotations = map[string]string{AnnotationPolicyHash: PolicyHash(applied.Spec)}
	edited := applied.DeepCopy()
	edited.Spec.PolicyTypes = nil

	cases := []struct {
		name string
		ev   watch.Event
		want string // "" for no event
	}{
		{"a running Pod's update", watch.Event{Type: watch.Modified, Object: running}, ""},
		{"a Pod jackin added", watch.Event{Type: watch.Added, Object: running}, ""},
		{"a deleted Pod", watch.Event{Type: watch.Deleted, Object: running}, "container destroy ns/jk-f-a a agent"},
		{"an agent that exited", watch.Event{Type: watch.Modified, Object: exitedPod(3, false)}, "container die ns/jk-f-a a agent exit 3"},
		{"the exit a deletion caused", watch.Event{Type: watch.Modified, Object: exitedPod(137, true)}, ""},
		{"a deleted Secret", watch.Event{Type: watch.Deleted, Object: &corev1.Secret{ObjectMeta: eventMeta("jk-f-a")}}, "container destroy ns/jk-f-a a agent"},
		{"a Secret jackin applied", watch.Event{Type: watch.Modified, Object: &corev1.Secret{ObjectMeta: eventMeta("jk-f-a")}}, ""},
		{"a deleted claim", watch.Event{Type: watch.Deleted, Object: &corev1.PersistentVolumeClaim{ObjectMeta: eventMeta("jk-f-a-work")}}, "volume destroy ns/jk-f-a-work a"},
		{"a deleted NetworkPolicy", watch.Event{Type: watch.Deleted, Object: applied}, "network destroy ns/jk-f-a a"},
		{"a NetworkPolicy as jackin applied it", watch.Event{Type: watch.Modified, Object: applied}, ""},
		{"a NetworkPolicy edited", watch.Event{Type: watch.Modified, Object: edited}, "network change ns/jk-f-a a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, ok := newTranslator().translate(c.ev, now)
			got := ""
			if ok {
				got = string(ev.Kind) + " " + ev.Action + " " + ev.ID + " " + ev.Instance
				if ev.Component != "" {
					got += " " + ev.Component
				}
				if ev.ExitCode != "" {
					got += " exit " + ev.ExitCode
				}
			}
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestAnExitIsReportedOnce: the updates that follow an exit (and an exit
// already there when the watch opened) report nothing more.
func TestAnExitIsReportedOnce(t *testing.T) {
	tr := newTranslator()
	if _, ok := tr.translate(watch.Event{Type: watch.Modified, Object: exitedPod(1, false)}, time.Now()); !ok {
		t.Fatal("the exit was not reported")
	}
	if _, ok := tr.translate(watch.Event{Type: watch.Modified, Object: exitedPod(1, false)}, time.Now()); ok {
		t.Fatal("the same exit was reported twice")
	}
	tr = newTranslator()
	if _, ok := tr.translate(watch.Event{Type: watch.Added, Object: exitedPod(1, false)}, time.Now()); ok {
		t.Fatal("an exit from before the watch was reported")
	}
	if _, ok := tr.translate(watch.Event{Type: watch.Modified, Object: exitedPod(1, false)}, time.Now()); ok {
		t.Fatal("an exit from before the watch was reported on the Pod's next update")
	}
}
