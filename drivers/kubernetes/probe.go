package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/linuxexe"
)

// ProbePort is where the probe's target Pod listens.
const ProbePort = 8080

// ProbeResult is what the NetworkPolicy probe found in a namespace.
type ProbeResult struct {
	Namespace string
	Enforced  bool
	// Detail says what happened ("a Pod under a deny-all egress policy
	// reached 10.0.0.5:8080").
	Detail string
}

// ErrPolicyNotEnforced refuses an instance whose egress relies on
// NetworkPolicy on a cluster that does not enforce it.
type ErrPolicyNotEnforced struct {
	Instance string
	Result   ProbeResult
}

func (e *ErrPolicyNotEnforced) Error() string {
	return "instance " + e.Instance + " refused (fail closed): its egress is limited by NetworkPolicy, and this cluster does not enforce NetworkPolicy in namespace " +
		e.Result.Namespace + " (" + e.Result.Detail + "); use a network plugin that enforces it, or set kubernetes.allowUnenforcedPolicy: true to run it with egress NOT enforced"
}

// requireEnforced runs the probe once per namespace and refuses an
// instance that needs enforcement where there is none, unless its
// placement allows that.
func (d *Driver) requireEnforced(ctx context.Context, ns string, p Placement, instance string) error {
	res, err := d.ProbePolicy(ctx, ns)
	if err != nil {
		return fmt.Errorf("instance %s: the NetworkPolicy probe failed, so egress enforcement is unknown (fail closed): %w", instance, err)
	}
	if res.Enforced {
		return nil
	}
	if p.AllowUnenforcedPolicy {
		d.log.Info("NetworkPolicy is not enforced on this cluster; running the instance anyway (allowUnenforcedPolicy: true)", "instance", instance, "namespace", ns)
		return nil
	}
	return &ErrPolicyNotEnforced{Instance: instance, Result: res}
}

// ProbePolicy checks whether the cluster enforces NetworkPolicy in a
// namespace: a target Pod listens, a client Pod under a deny-all egress
// policy tries to connect to it. Reaching it means not enforced. The
// probe's objects are removed afterwards; the result is kept for the
// driver's life.
func (d *Driver) ProbePolicy(ctx context.Context, ns string) (ProbeResult, error) {
	d.mu.Lock()
	enforced, ok := d.probed[ns]
	d.mu.Unlock()
	if ok {
		return ProbeResult{Namespace: ns, Enforced: enforced, Detail: "probed earlier"}, nil
	}
	helper, err := d.helperImage(ctx)
	if err != nil {
		return ProbeResult{}, err
	}
	res, err := d.probe(ctx, ns, helper)
	if err != nil {
		return res, err
	}
	d.mu.Lock()
	d.probed[ns] = res.Enforced
	d.mu.Unlock()
	return res, nil
}

func probeObjects(ns, id, helper, targetIP string) (target, client, control *corev1.Pod, pol *networkingv1.NetworkPolicy) {
	meta := func(name, role string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
			LabelAppManagedBy: drivers.ManagedByValue, LabelProbe: id, "dev.jackin.probe-role": role,
		}}
	}
	pod := func(name, role string, args []string) *corev1.Pod {
		return &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: meta(name, role),
			Spec: corev1.PodSpec{
				RestartPolicy:                 corev1.RestartPolicyNever,
				AutomountServiceAccountToken:  ptr(false),
				EnableServiceLinks:            ptr(false),
				TerminationGracePeriodSeconds: ptr(int64(1)),
				Containers: []corev1.Container{{
					Name: "probe", Image: helper, ImagePullPolicy: corev1.PullIfNotPresent,
					Command:         append([]string{"/jackin", "kube-init"}, args...),
					SecurityContext: helperSecurity(&corev1.SecurityContext{}),
				}},
			},
		}
	}
	target = pod("jk-probe-"+id+"-target", "target", []string{"--listen", ":" + strconv.Itoa(ProbePort)})
	client = pod("jk-probe-"+id+"-client", "client", []string{"--connect", targetIP + ":" + strconv.Itoa(ProbePort), "--timeout", "3s"})
	// The control makes the same connection under no policy: when it
	// fails too, the client's failure says nothing about enforcement.
	control = pod("jk-probe-"+id+"-control", "control", []string{"--connect", targetIP + ":" + strconv.Itoa(ProbePort), "--timeout", "3s"})
	pol = &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: meta("jk-probe-"+id, "policy"),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{LabelProbe: id, "dev.jackin.probe-role": "client"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		},
	}
	return target, client, control, pol
}

func (d *Driver) probe(ctx context.Context, ns, helper string) (ProbeResult, error) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	res := ProbeResult{Namespace: ns}
	target, _, _, pol := probeObjects(ns, id, helper, "")
	cleanup := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		sel := metav1.ListOptions{LabelSelector: LabelProbe + "=" + id}
		_ = d.cs.CoreV1().Pods(ns).DeleteCollection(cctx, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}, sel)
		_ = d.cs.NetworkingV1().NetworkPolicies(ns).DeleteCollection(cctx, metav1.DeleteOptions{}, sel)
	}
	defer cleanup()
	if _, err := d.cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, pol, metav1.CreateOptions{FieldManager: FieldManager}); err != nil {
		return res, d.wrap(err, "create the probe's NetworkPolicy in %s", ns)
	}
	if _, err := d.cs.CoreV1().Pods(ns).Create(ctx, target, metav1.CreateOptions{FieldManager: FieldManager}); err != nil {
		return res, d.wrap(err, "create the probe's target Pod in %s", ns)
	}
	if err := d.waitRunning(ctx, ns, target.Name, time.Minute); err != nil {
		return res, err
	}
	t, err := d.cs.CoreV1().Pods(ns).Get(ctx, target.Name, metav1.GetOptions{})
	if err != nil {
		return res, d.wrap(err, "read the probe's target Pod")
	}
	if t.Status.PodIP == "" {
		return res, fmt.Errorf("the probe's target Pod %s/%s runs without an IP", ns, target.Name)
	}
	_, client, control, _ := probeObjects(ns, id, helper, t.Status.PodIP)
	for _, p := range []*corev1.Pod{client, control} {
		if _, err := d.cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{FieldManager: FieldManager}); err != nil {
			return res, d.wrap(err, "create the probe's Pod %s in %s", p.Name, ns)
		}
	}
	target2 := t.Status.PodIP + ":" + strconv.Itoa(ProbePort)
	clientCode, err := d.probeExit(ctx, ns, client.Name)
	if err != nil {
		return res, err
	}
	controlCode, err := d.probeExit(ctx, ns, control.Name)
	if err != nil {
		return res, err
	}
	switch {
	case controlCode != 0:
		return res, fmt.Errorf("the probe's control Pod, under no policy, could not reach %s either (exit %d): the cluster's Pods cannot reach each other, so enforcement cannot be told", target2, controlCode)
	case clientCode == 0:
		res.Detail = "a Pod under a deny-all egress NetworkPolicy reached " + target2
	case clientCode == 3:
		res.Enforced = true
		res.Detail = "a Pod under a deny-all egress NetworkPolicy could not reach " + target2 + ", a Pod under none could"
	default:
		return res, fmt.Errorf("the probe's client exited %d", clientCode)
	}
	return res, nil
}

// probeExit waits for a probe Pod's container to end and returns its exit
// status.
func (d *Driver) probeExit(ctx context.Context, ns, name string) (int32, error) {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		c, err := d.cs.CoreV1().Pods(ns).Get(wctx, name, metav1.GetOptions{})
		if err != nil {
			return 0, d.wrap(err, "read the probe's Pod %s", name)
		}
		for _, cs := range c.Status.ContainerStatuses {
			if tm := cs.State.Terminated; tm != nil {
				return tm.ExitCode, nil
			}
		}
		if w := waitingProblem(c); w != "" {
			return 0, fmt.Errorf("the probe's Pod %s cannot start: %s", name, w)
		}
		select {
		case <-wctx.Done():
			return 0, fmt.Errorf("the probe's Pod %s did not finish within a minute", name)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// HelperRepo is the repository of jackin's helper image: the static
// jackin binary at /jackin, nothing else.
const HelperRepo = "jackin-kube-helper"

// helperImage makes jackin's helper image on the host engine (tagged by
// the binary's hash) and loads it into the cluster when a loader is set.
func (d *Driver) helperImage(ctx context.Context) (string, error) {
	// One build at a time: parallel creates all ask for it.
	d.helperMu.Lock()
	defer d.helperMu.Unlock()
	d.mu.Lock()
	ref := d.helper
	d.mu.Unlock()
	if ref != "" {
		return ref, nil
	}
	if d.host == nil {
		return HelperRepo + ":test", nil
	}
	exe, err := linuxexe.Path()
	if err != nil {
		return "", fmt.Errorf("the helper image: %w", err)
	}
	sum, err := fileHash(exe)
	if err != nil {
		return "", err
	}
	ref = HelperRepo + ":" + sum[:16]
	// A build context of this call's own (another jackin may build too).
	dir, err := os.MkdirTemp("", "jackin-kube-helper-")
	if err != nil {
		return "", fmt.Errorf("make the helper image's build context: %w", err)
	}
	defer os.RemoveAll(dir)
	spec := drivers.ImageSpec{Ref: ref, Build: &drivers.BuildSpec{Context: dir, Dockerfile: "Dockerfile", Prepare: func() error {
		if err := copyFile(exe, filepath.Join(dir, "jackin"), 0o555); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY jackin /jackin\nUSER 65534:65534\nENTRYPOINT [\"/jackin\"]\n"), 0o600)
	}}}
	if err := spec.Build.Prepare(); err != nil {
		return "", fmt.Errorf("write the helper image's build context: %w", err)
	}
	if _, err := d.host.EnsureImage(ctx, spec, nil); err != nil {
		return "", fmt.Errorf("make jackin's helper image %s: %w", ref, err)
	}
	if err := d.loadImage(ctx, ref); err != nil {
		return "", err
	}
	d.mu.Lock()
	d.helper = ref
	d.mu.Unlock()
	return ref, nil
}
