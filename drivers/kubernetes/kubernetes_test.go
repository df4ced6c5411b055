package kubernetes_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/kubernetes"
	"github.com/jackin-dev/jackin/hostpath"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/supervisor"
)

const ns = "agents"

func kinst(name, egress string) schema.Instance {
	return schema.Instance{
		Name: name, Backend: schema.BackendKubernetes, Kubernetes: &schema.Kubernetes{Namespace: ns},
		Role: schema.Role{Image: "example.com/agent:v1"}, Agent: schema.AgentShell, State: schema.StateRunning,
		Network: schema.Network{Egress: egress}, Docker: schema.DockerNone,
		Env:    map[string]string{"GREETING": "hello"},
		Mounts: []schema.Mount{{Dst: "/work", Mode: schema.MountEphemeral}},
	}
}

func desired(t *testing.T, f *schema.Fleet) *reconciler.Desired {
	t.Helper()
	f.StateDir = t.TempDir()
	d, err := reconciler.BuildDesired(f)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func fleet(instances ...schema.Instance) *schema.Fleet {
	f := &schema.Fleet{APIVersion: schema.APIVersion, Kind: schema.KindFleet, Name: "demo", Instances: map[string]schema.Instance{}}
	for _, in := range instances {
		f.Instances[in.Name] = in
	}
	return f
}

// TestRenderAgentPod: the agent Pod carries the profile's security
// context, limits and labels; the supervisor comes from the helper image
// through an init container; env values are in the Secret, never the Pod.
func TestRenderAgentPod(t *testing.T) {
	in := kinst("web", schema.EgressOpen)
	in.Resources = schema.Resources{MemoryBytes: 512 << 20, MemoryReservationBytes: 256 << 20, CPUs: 1.5}
	d := desired(t, fleet(in))
	var agent drivers.Resource
	for _, r := range d.Instances[0].Resources {
		if r.Kind == drivers.KindContainer && r.Component == drivers.ComponentAgent {
			agent = r
		}
	}
	agent.Container.User, agent.Container.CapDrop = "1000:1000", []string{"ALL"}
	agent.Container.NoNewPrivileges, agent.Container.ReadOnlyRoot = true, true
	rd, err := kubernetes.RenderPod(agent, kubernetes.PodInput{Namespace: ns, HelperImage: "jackin-kube-helper:x", ImageCmd: []string{"sleep", "infinity"}})
	if err != nil {
		t.Fatal(err)
	}
	p := rd.Pod
	if p.Labels[kubernetes.LabelAppManagedBy] != "jackin" || p.Labels[drivers.LabelFleet] != "demo" || p.Labels[drivers.LabelInstance] != "web" {
		t.Errorf("labels %v", p.Labels)
	}
	var all map[string]string
	if err := json.Unmarshal([]byte(p.Annotations[kubernetes.AnnotationLabels]), &all); err != nil || all[drivers.LabelSpecHash] != d.Instances[0].Hash {
		t.Errorf("labels annotation %q: %v", p.Annotations[kubernetes.AnnotationLabels], err)
	}
	c := p.Spec.Containers[0]
	sc := c.SecurityContext
	switch {
	case sc == nil || *sc.RunAsUser != 1000 || *sc.RunAsGroup != 1000 || !*sc.RunAsNonRoot:
		t.Errorf("user: %+v", sc)
	case *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("escalation/readonly: %+v", sc)
	case len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL":
		t.Errorf("caps: %+v", sc.Capabilities)
	case sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || p.Spec.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("seccomp: %+v", sc.SeccompProfile)
	}
	if got := c.Resources.Limits.Memory().Value(); got != 512<<20 {
		t.Errorf("memory limit %d", got)
	}
	if got := c.Resources.Limits.Cpu().MilliValue(); got != 1500 {
		t.Errorf("cpu limit %dm", got)
	}
	if got := c.Resources.Requests.Memory().Value(); got != 256<<20 {
		t.Errorf("memory request %d", got)
	}
	if got := c.Resources.Requests.Cpu().MilliValue(); got != 10 {
		t.Errorf("cpu request %dm, want 10m: a limit is not a reservation", got)
	}
	if c.Command[0] != supervisor.Binary || c.Args[0] != "sleep" {
		t.Errorf("argv %q %q: the supervisor runs the image's command", c.Command, c.Args)
	}
	if *p.Spec.AutomountServiceAccountToken {
		t.Error("the service account token is mounted")
	}
	if len(p.Spec.InitContainers) != 1 || p.Spec.InitContainers[0].Image != "jackin-kube-helper:x" {
		t.Fatalf("init containers %+v", p.Spec.InitContainers)
	}
	if r := p.Spec.InitContainers[0].Resources.Requests; r.Cpu().MilliValue() != 10 {
		t.Errorf("init container requests %v: they count for scheduling", r)
	}
	if isc := p.Spec.InitContainers[0].SecurityContext; *isc.RunAsUser != 1000 || *isc.AllowPrivilegeEscalation || !*isc.ReadOnlyRootFilesystem {
		t.Errorf("init container security %+v", isc)
	}
	raw, _ := json.Marshal(p)
	if strings.Contains(string(raw), "hello") {
		t.Error("an env value is in the Pod spec")
	}
	found := false
	for _, e := range c.Env {
		if e.Name == "GREETING" {
			found = e.Value == "" && e.ValueFrom != nil && string(rd.Secret.Data[e.ValueFrom.SecretKeyRef.Key]) == "hello"
		}
	}
	if !found {
		t.Errorf("GREETING not delivered from the Secret: %+v", c.Env)
	}
	claims := 0
	for _, v := range p.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			claims++
		}
		if v.HostPath != nil {
			t.Errorf("hostPath volume %s", v.Name)
		}
	}
	if claims != 2 {
		t.Errorf("%d claims mounted, want the ephemeral mount's and the runtime home's", claims)
	}
	var back corev1.Pod
	if err := json.Unmarshal(rd.Secret.Data[kubernetes.SecretPodKey], &back); err != nil || back.Name != p.Name {
		t.Errorf("the Secret does not hold the Pod: %v", err)
	}
}

// TestRenderRefusesHostPaths: a bind of a manifest's host path (pinned)
// is refused even if validation let one through.
func TestRenderRefusesHostPaths(t *testing.T) {
	d := desired(t, fleet(kinst("web", schema.EgressOpen)))
	for _, r := range d.Instances[0].Resources {
		if r.Kind != drivers.KindContainer {
			continue
		}
		r.Container.Mounts = append(r.Container.Mounts, drivers.MountSpec{Type: "bind", Source: "/etc", Target: "/x", ReadOnly: true, Pin: &hostpath.Pin{Path: "/etc"}})
		_, err := kubernetes.RenderPod(r, kubernetes.PodInput{Namespace: ns, HelperImage: "h"})
		if err == nil || !strings.Contains(err.Error(), "binds the host path /etc") {
			t.Fatalf("err %v", err)
		}
	}
}

// TestRenderPolicies: every policy admits ingress only from the same
// network; an internal one allows egress only there (the proxy), an open
// one everywhere.
func TestRenderPolicies(t *testing.T) {
	internal, err := kubernetes.RenderPolicy(drivers.Resource{Kind: drivers.KindNetwork, Name: "jk-demo-web", Labels: map[string]string{drivers.LabelManagedBy: "jackin", drivers.LabelFleet: "demo", drivers.LabelInstance: "web"}, Network: &drivers.NetworkSpec{Internal: true}}, ns)
	if err != nil {
		t.Fatal(err)
	}
	sel := map[string]string{kubernetes.NetLabel("jk-demo-web"): "1"}
	s := internal.Spec
	if len(s.PolicyTypes) != 2 || len(s.Egress) != 1 || len(s.Egress[0].To) != 1 || !equal(s.Egress[0].To[0].PodSelector.MatchLabels, sel) {
		t.Errorf("internal egress %+v", s.Egress)
	}
	if len(s.Ingress) != 1 || !equal(s.Ingress[0].From[0].PodSelector.MatchLabels, sel) || !equal(s.PodSelector.MatchLabels, sel) {
		t.Errorf("ingress %+v selector %+v", s.Ingress, s.PodSelector)
	}
	open, _ := kubernetes.RenderPolicy(drivers.Resource{Kind: drivers.KindNetwork, Name: "jk-demo-web", Labels: internal.Labels, Network: &drivers.NetworkSpec{}}, ns)
	if len(open.Spec.Egress) != 1 || len(open.Spec.Egress[0].To) != 0 {
		t.Errorf("open egress %+v", open.Spec.Egress)
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// converge applies a plan's missing resources through the driver on a
// fake clientset (server-side apply), then plays the kubelet: every Pod
// jackin's Secrets hold is made, Running.
func converge(t *testing.T, ctx context.Context, drv *kubernetes.Driver, cs *fake.Clientset, p *reconciler.Plan) {
	t.Helper()
	for _, a := range p.Actions {
		for _, o := range a.Observed {
			if a.Type == reconciler.ActionRecreate && o.Kind == drivers.KindContainer {
				if err := drv.Remove(ctx, o.Kind, o.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, r := range a.Missing {
			if _, err := drv.Create(ctx, r); err != nil {
				t.Fatalf("create %s: %v", r.Name, err)
			}
		}
	}
	secs, _ := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	for _, s := range secs.Items {
		var pod corev1.Pod
		if err := json.Unmarshal(s.Data[kubernetes.SecretPodKey], &pod); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{}); err == nil {
			continue
		}
		pod.Status.Phase = corev1.PodRunning
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, &pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func plan(t *testing.T, ctx context.Context, drv *kubernetes.Driver, d *reconciler.Desired) *reconciler.Plan {
	t.Helper()
	obs, err := drv.Observe(ctx, d.Fleet, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := reconciler.BuildPlan(d, obs, nil, reconciler.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func only(t *testing.T, p *reconciler.Plan, want reconciler.ActionType, reason string) {
	t.Helper()
	for _, a := range p.Actions {
		if a.Type == reconciler.ActionNoop {
			continue
		}
		if a.Type != want || !strings.Contains(strings.Join(a.Reasons, "; "), reason) {
			t.Fatalf("%s: %s %q, want %s with %q", a.Instance, a.Type, a.Reasons, want, reason)
		}
		return
	}
	t.Fatalf("no change planned, want %s with %q", want, reason)
}

// TestPlanDrift: through a fake clientset, a fleet converges (one list per
// kind, no mutating call when converged), and a deleted Pod, a changed
// NetworkPolicy and a missing Secret are planned as Docker drift is.
func TestPlanDrift(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	f := fleet(kinst("web", schema.EgressNone))
	drv, err := kubernetes.New(ctx, logr.Discard(), kubernetes.Config{Client: cs, Instances: map[string]kubernetes.Placement{"web": {Namespace: ns}}})
	if err != nil {
		t.Fatal(err)
	}
	drv.SetProbed(ns, true)
	d := desired(t, f)
	p := plan(t, ctx, drv, d)
	only(t, p, reconciler.ActionCreate, reconciler.ReasonNewInstance)
	converge(t, ctx, drv, cs, p)

	cs.ClearActions()
	if p := plan(t, ctx, drv, d); p.HasChanges() {
		t.Fatalf("not converged: %+v", p.Actions)
	}
	lists := map[string]int{}
	for _, a := range cs.Actions() {
		if a.GetVerb() != "list" {
			t.Errorf("converged diff made a %s call", a.GetVerb())
		}
		lists[a.GetResource().Resource]++
	}
	for _, k := range []string{"pods", "secrets", "persistentvolumeclaims", "networkpolicies"} {
		if lists[k] != 1 {
			t.Errorf("%d lists of %s, want 1", lists[k], k)
		}
	}

	// A deleted Pod: the container is stopped; apply starts it again.
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "jk-demo-web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	only(t, plan(t, ctx, drv, d), reconciler.ActionStart, "no Pod")
	converge(t, ctx, drv, cs, &reconciler.Plan{})

	// A NetworkPolicy edited behind jackin's back is applied again.
	np, err := cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, "jk-demo-web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}}
	if _, err := cs.NetworkingV1().NetworkPolicies(ns).Update(ctx, np, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p = plan(t, ctx, drv, d)
	only(t, p, reconciler.ActionRecreate, "network jk-demo-web is missing")
	converge(t, ctx, drv, cs, p)
	np, _ = cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, "jk-demo-web", metav1.GetOptions{})
	if len(np.Spec.Egress) != 1 || len(np.Spec.Egress[0].To) == 0 {
		t.Fatalf("policy not repaired: %+v", np.Spec.Egress)
	}
	if p := plan(t, ctx, drv, d); p.HasChanges() {
		t.Fatalf("not converged after the policy repair: %+v", p.Actions)
	}

	// A missing Secret makes the Pod dead: recreated.
	if err := cs.CoreV1().Secrets(ns).Delete(ctx, "jk-demo-web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	only(t, plan(t, ctx, drv, d), reconciler.ActionRecreate, "its Secret jk-demo-web is missing")

	// An orphan: an instance gone from the manifest is deleted.
	p = plan(t, ctx, drv, desired(t, fleet(kinst("other", schema.EgressOpen))))
	var deleted bool
	for _, a := range p.Actions {
		deleted = deleted || (a.Instance == "web" && a.Type == reconciler.ActionDelete)
	}
	if !deleted {
		t.Errorf("orphan not planned for deletion: %+v", p.Actions)
	}
}

// TestFailClosed: an internal-network instance is refused where the
// probe found NetworkPolicy not enforced, unless its placement allows it.
func TestFailClosed(t *testing.T) {
	ctx := context.Background()
	d := desired(t, fleet(kinst("web", schema.EgressNone)))
	var netRes drivers.Resource
	for _, r := range d.Instances[0].Resources {
		if r.Kind == drivers.KindNetwork {
			netRes = r
		}
	}
	for _, allow := range []bool{false, true} {
		cs := fake.NewClientset()
		drv, err := kubernetes.New(ctx, logr.Discard(), kubernetes.Config{Client: cs, Instances: map[string]kubernetes.Placement{"web": {Namespace: ns, AllowUnenforcedPolicy: allow}}})
		if err != nil {
			t.Fatal(err)
		}
		drv.SetProbed(ns, false)
		_, err = drv.Create(ctx, netRes)
		var refused *kubernetes.ErrPolicyNotEnforced
		if allow != (err == nil) || (!allow && !errors.As(err, &refused)) {
			t.Fatalf("allowUnenforcedPolicy %v: %v", allow, err)
		}
		pols, _ := cs.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
		if len(pols.Items) != map[bool]int{false: 0, true: 1}[allow] {
			t.Errorf("allowUnenforcedPolicy %v: %d policies", allow, len(pols.Items))
		}
	}
}

// TestRenderCheckoutClone: a clone mount on Kubernetes is a claim of its
// own (component checkout: kept on delete) filled by an init container
// that runs after jackin-init, from the role image, for the agent's user,
// with the proxy's variables and none of the agent's others.
func TestRenderCheckoutClone(t *testing.T) {
	in := kinst("web", schema.EgressAllowlist)
	in.Network.Allow = []string{"git.example"}
	in.Mounts = []schema.Mount{{Src: "https://git.example/app.git", Dst: "/src", Mode: schema.MountClone, Ref: "v2"}}
	d := desired(t, fleet(in))
	var agent, claim drivers.Resource
	for _, r := range d.Instances[0].Resources {
		switch {
		case r.Kind == drivers.KindContainer && r.Component == drivers.ComponentAgent:
			agent = r
		case r.Kind == drivers.KindVolume && r.Component == drivers.ComponentCheckout:
			claim = r
		}
	}
	if claim.Name == "" || drivers.OwnedByInstance(claim.Component) {
		t.Fatalf("no checkout claim kept on delete: %+v", claim)
	}
	if len(d.Instances[0].Checkouts) != 0 {
		t.Errorf("a checkout on this machine was planned too: %+v", d.Instances[0].Checkouts)
	}
	agent.Container.User = "1000:1000"
	rd, err := kubernetes.RenderPod(agent, kubernetes.PodInput{Namespace: ns, HelperImage: "jackin-kube-helper:x"})
	if err != nil {
		t.Fatal(err)
	}
	inits := rd.Pod.Spec.InitContainers
	if len(inits) != 2 || inits[0].Name != "jackin-init" || inits[1].Name != "checkout-0" {
		t.Fatalf("init containers %+v", inits)
	}
	co := inits[1]
	want := []string{supervisor.BinDir + "/jackin", "git-checkout", "--dir", "/src", "--url", "https://git.example/app.git", "--branch", "jackin/demo/web", "--ref", "v2", "--owner", "1000:1000"}
	if strings.Join(co.Command, " ") != strings.Join(want, " ") {
		t.Errorf("checkout command %q, want %q", co.Command, want)
	}
	// Root with three capabilities only, to hand the claim to the agent's
	// user and become them.
	sc := co.SecurityContext
	if co.Image != "example.com/agent:v1" || sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 0 || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 3 {
		t.Errorf("checkout image %q security %+v", co.Image, sc)
	}
	var mountsClaim bool
	for _, vm := range co.VolumeMounts {
		for _, v := range rd.Pod.Spec.Volumes {
			if v.Name == vm.Name && v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim.Name && vm.MountPath == "/src" {
				mountsClaim = true
			}
		}
	}
	if !mountsClaim {
		t.Errorf("the checkout container does not mount the claim %s at /src: %+v", claim.Name, co.VolumeMounts)
	}
	names := map[string]bool{}
	for _, e := range co.Env {
		names[e.Name] = true
	}
	if !names["HTTPS_PROXY"] || names["GREETING"] {
		t.Errorf("checkout env %v: want the proxy's variables only", names)
	}
	if co.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("git's error would not reach apply: %q", co.TerminationMessagePolicy)
	}
}

// TestPrivateDockerNeedsAPrivilegedNamespace: docker "private" is checked
// before the instance's first object: a namespace at Pod Security level
// baseline refuses it without asking further; an unlabelled one is asked
// with a server-side dry run (nothing made), whose refusal refuses it.
func TestPrivateDockerNeedsAPrivilegedNamespace(t *testing.T) {
	ctx := context.Background()
	in := kinst("web", schema.EgressOpen)
	in.Docker = schema.DockerPrivate
	d := desired(t, fleet(in))
	var netRes drivers.Resource
	for _, r := range d.Instances[0].Resources {
		if r.Kind == drivers.KindNetwork {
			netRes = r
		}
	}
	open := func(labels map[string]string) (*fake.Clientset, *kubernetes.Driver) {
		cs := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}})
		drv, err := kubernetes.New(ctx, logr.Discard(), kubernetes.Config{Client: cs, Instances: map[string]kubernetes.Placement{"web": {Namespace: ns, PrivateDocker: true}}})
		if err != nil {
			t.Fatal(err)
		}
		return cs, drv
	}
	cs, drv := open(map[string]string{kubernetes.LabelPodSecurityEnforce: "baseline"})
	_, err := drv.Create(ctx, netRes)
	var refused *kubernetes.ErrPrivilegedRefused
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), `enforces Pod Security level "baseline"`) {
		t.Fatalf("baseline namespace: %v", err)
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() == "create" || a.GetVerb() == "patch" {
			t.Errorf("a refused instance made %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}

	// The API server's answer decides; a refusal about something else (a
	// quota) is an error, not a verdict on privilege.
	for answer, isRefusal := range map[string]bool{
		"spec.containers[0].securityContext.privileged: Forbidden: disallowed by cluster policy": true,
		"exceeded quota: pods, requested: pods=1, used: pods=10, limited: pods=10":               false,
	} {
		cs, drv = open(nil)
		var dryRun bool
		cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			c := a.(k8stesting.CreateActionImpl)
			dryRun = len(c.CreateOptions.DryRun) == 1 && c.CreateOptions.DryRun[0] == metav1.DryRunAll
			return true, nil, apierrors.NewForbidden(k8sschema.GroupResource{Resource: "pods"}, "x", errors.New(answer))
		})
		_, err = drv.Create(ctx, netRes)
		if !dryRun || err == nil || errors.As(err, &refused) != isRefusal || !strings.Contains(err.Error(), answer) {
			t.Errorf("%s: dry run %v, err %v", answer, dryRun, err)
		}
	}

	// Only the daemon may be privileged.
	var daemon drivers.Resource
	for _, r := range d.Instances[0].Resources {
		if r.Component == drivers.ComponentDocker {
			daemon = r
		}
	}
	rd, err := kubernetes.RenderPod(daemon, kubernetes.PodInput{Namespace: ns, ReadFile: func(string) ([]byte, error) { return []byte("pem"), nil },
		ReadDir: func(string) ([]os.DirEntry, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if sc := rd.Pod.Spec.Containers[0].SecurityContext; sc.Privileged == nil || !*sc.Privileged || sc.AllowPrivilegeEscalation != nil {
		t.Errorf("daemon security context %+v", sc)
	}
	daemon.Component = drivers.ComponentEgress
	if _, err := kubernetes.RenderPod(daemon, kubernetes.PodInput{Namespace: ns}); err == nil || !strings.Contains(err.Error(), "only for the private Docker daemon") {
		t.Errorf("a privileged non-daemon container rendered: %v", err)
	}
}
