package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/jackin-dev/jackin/drivers"
)

// LabelPodSecurityEnforce is the namespace label whose level Pod Security
// admission enforces (privileged, baseline or restricted).
const LabelPodSecurityEnforce = "pod-security.kubernetes.io/enforce"

// ErrPrivilegedRefused refuses a docker "private" instance in a namespace
// that does not admit its daemon's privileged Pod.
type ErrPrivilegedRefused struct {
	Instance, Namespace string
	// Reason says which policy refuses it.
	Reason string
}

func (e *ErrPrivilegedRefused) Error() string {
	return "instance " + e.Instance + " refused: docker: \"private\" runs its Docker daemon in a privileged Pod, and " + e.Reason +
		"; run it in a namespace at Pod Security level privileged, or set docker: \"none\""
}

// requirePrivileged refuses an instance whose namespace does not admit a
// privileged Pod. An admission is kept per namespace for the driver's
// life; a refusal is asked again next time (under watch, the operator may
// relabel the namespace meanwhile).
func (d *Driver) requirePrivileged(ctx context.Context, ns, instance string) error {
	d.mu.Lock()
	admitted := d.admits[ns]
	d.mu.Unlock()
	if admitted {
		return nil
	}
	reason, err := d.privilegedRefusal(ctx, ns)
	if err != nil {
		return fmt.Errorf("instance %s: whether namespace %s admits the private Docker daemon's privileged Pod is unknown, so it is not made: %w", instance, ns, err)
	}
	if reason != "" {
		return &ErrPrivilegedRefused{Instance: instance, Namespace: ns, Reason: reason}
	}
	d.mu.Lock()
	d.admits[ns] = true
	d.mu.Unlock()
	return nil
}

// privilegedRefusal says why namespace ns refuses a privileged Pod ("" if
// it admits one). The Pod Security label gives the plainest reason; it is
// one policy among others (the API server's --allow-privileged, a default
// level, admission webhooks), so the cluster is then asked itself: a
// server-side dry run of a privileged Pod, which makes nothing.
func (d *Driver) privilegedRefusal(ctx context.Context, ns string) (string, error) {
	nsObj, err := d.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	switch {
	case err == nil:
		if lvl := nsObj.Labels[LabelPodSecurityEnforce]; lvl != "" && lvl != "privileged" {
			return fmt.Sprintf("namespace %s enforces Pod Security level %q (its label %s), which admits no privileged Pod", ns, lvl, LabelPodSecurityEnforce), nil
		}
	case apierrors.IsForbidden(err):
		// Reading namespaces is not granted: the dry run answers.
	default:
		return "", d.wrap(err, "read namespace %s", ns)
	}
	helper, err := d.helperImage(ctx)
	if err != nil {
		return "", err
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "jk-probe-privileged-" + hex.EncodeToString(b), Namespace: ns,
			Labels: map[string]string{LabelAppManagedBy: drivers.ManagedByValue, LabelProbe: "privileged"}},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: ptr(false),
			Containers: []corev1.Container{{
				Name: "probe", Image: helper, ImagePullPolicy: corev1.PullIfNotPresent,
				SecurityContext: &corev1.SecurityContext{Privileged: ptr(true)},
			}},
		},
	}
	_, err = d.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: FieldManager})
	switch {
	case err == nil:
		return "", nil
	case (apierrors.IsForbidden(err) || apierrors.IsInvalid(err)) && refusesPrivilege(err):
		return fmt.Sprintf("the cluster does not admit a privileged Pod in namespace %s (%v)", ns, err), nil
	}
	// Another refusal (a quota, a webhook about something else) says
	// nothing about privilege: reported as it is.
	return "", d.wrap(err, "dry-run a privileged Pod in namespace %s", ns)
}

// refusesPrivilege reports whether an admission error is about privilege
// (Pod Security, the API server's --allow-privileged, a policy naming
// it), not about the probe Pod's other fields.
func refusesPrivilege(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "privileged") || strings.Contains(msg, "podsecurity") || strings.Contains(msg, "pod security")
}
