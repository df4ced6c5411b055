// Package kubernetes is the Kubernetes backend (backend "kubernetes"): an
// instance renders into a Pod per container (the agent under jackin's
// supervisor as PID 1, the egress proxy beside it), a Secret per Pod that
// holds its environment, its files and the Pod jackin starts,
// PersistentVolumeClaims for ephemeral mounts and runtime homes, and a
// NetworkPolicy per network. Objects are applied with server-side apply
// under the field manager "jackin", carry app.kubernetes.io/managed-by:
// jackin and the dev.jackin.* labels, and are observed with one list per
// kind and namespace, by label selector.
//
// The Docker rendering's model maps onto Kubernetes objects: a network is
// a NetworkPolicy, a volume a claim, and a container its Secret (the
// created container) plus its Pod (the running one). Stop deletes the Pod
// and keeps the Secret; Start applies the Pod the Secret holds. A Pod
// deleted behind jackin's back is a stopped container (apply starts it
// again), a missing Secret makes the Pod dead (apply recreates it), and a
// NetworkPolicy edited since jackin applied it is reported missing (apply
// applies it again).
//
// Images: role images are built on the operator's Docker engine as for
// Docker, and jackin's helper image (the static jackin binary) beside
// them. A cluster pulls images from a registry; where it cannot (a local
// cluster), JACKIN_KUBE_IMAGE_LOAD names a command that gets each image as
// a `docker save` tar on stdin and loads it into the nodes.
package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/docker"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/termtext"
)

// Backend is the backend name manifests use.
const Backend = schema.BackendKubernetes

// FieldManager is jackin's server-side apply field manager.
const FieldManager = "jackin"

// ImageLoadEnv names the command that loads an image tar into the
// cluster's nodes (see the package doc).
const ImageLoadEnv = "JACKIN_KUBE_IMAGE_LOAD"

// StartTimeout bounds how long Start waits for a Pod to run.
var StartTimeout = 3 * time.Minute

func init() {
	drivers.Register(Backend, func(ctx context.Context, log logr.Logger) (drivers.Driver, error) {
		return New(ctx, log, Config{})
	})
}

// Placement is where one instance runs.
type Placement struct {
	Namespace string
	// AllowUnenforcedPolicy runs an internal-network instance where the
	// cluster does not enforce NetworkPolicy.
	AllowUnenforcedPolicy bool
	// PrivateDocker is docker "private": the instance's daemon runs in a
	// privileged Pod, which the namespace must admit (checked before the
	// instance's first object is made).
	PrivateDocker bool
}

// Config opens the backend for a fleet.
type Config struct {
	// Context is the kubeconfig context ("" is the current one).
	Context string
	// Instances places the manifest's instances, by name. Observe lists
	// the namespaces they name (the kubeconfig context's own namespace
	// when there are none).
	Instances map[string]Placement
	// Client and RESTConfig replace the kubeconfig (tests).
	Client     k8s.Interface
	RESTConfig *rest.Config
	// Host builds images; nil opens the local engine from the environment.
	Host *docker.Driver
}

// ConfigFor is the backend's configuration for a fleet's kubernetes
// instances. All of them use one kubeconfig context (validation refuses
// two).
func ConfigFor(f *schema.Fleet) Config {
	cfg := Config{Instances: map[string]Placement{}}
	for name, in := range f.Instances {
		if in.Backend != schema.BackendKubernetes || in.Kubernetes == nil {
			continue
		}
		cfg.Context = in.Kubernetes.Context
		cfg.Instances[name] = Placement{Namespace: in.Kubernetes.Namespace, AllowUnenforcedPolicy: in.Kubernetes.AllowUnenforcedPolicy,
			PrivateDocker: in.Docker == schema.DockerPrivate}
	}
	return cfg
}

// Driver is the Kubernetes backend. Object IDs are "NAMESPACE/NAME".
type Driver struct {
	cs       k8s.Interface
	rest     *rest.Config
	host     *docker.Driver
	log      logr.Logger
	endpoint string
	cfg      Config
	defNS    string

	calls    sync.Map // "METHOD /path-kind" -> *atomic.Int64
	mutating atomic.Int64

	helperMu sync.Mutex // held while the helper image is made
	mu       sync.Mutex
	helper   string          // the helper image's reference, once made
	probed   map[string]bool // namespace -> NetworkPolicy enforced
	admits   map[string]bool // namespaces that admit a privileged Pod
	loaded   map[string]bool // image IDs loaded into the cluster
	imgCache map[string]imageConfig
}

type imageConfig struct {
	entry, cmd []string
	user       string
}

var (
	_ drivers.Driver       = (*Driver)(nil)
	_ drivers.Execer       = (*Driver)(nil)
	_ drivers.LogStreamer  = (*Driver)(nil)
	_ drivers.LogTailer    = (*Driver)(nil)
	_ drivers.LogReader    = (*Driver)(nil)
	_ drivers.ReadyWaiter  = (*Driver)(nil)
	_ drivers.AgentLocator = (*Driver)(nil)
)

// New opens the backend from the kubeconfig (KUBECONFIG or
// ~/.kube/config, as kubectl reads it) without contacting the cluster.
func New(ctx context.Context, log logr.Logger, cfg Config) (*Driver, error) {
	d := &Driver{log: log, cfg: cfg, probed: map[string]bool{}, admits: map[string]bool{}, loaded: map[string]bool{}, imgCache: map[string]imageConfig{}}
	rc := cfg.RESTConfig
	d.defNS = "default"
	if cfg.Client == nil {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: cfg.Context})
		var err error
		if rc, err = cc.ClientConfig(); err != nil {
			where := "the current context"
			if cfg.Context != "" {
				where = "context " + cfg.Context
			}
			return nil, fmt.Errorf("backend kubernetes: read the kubeconfig's %s (KUBECONFIG or ~/.kube/config): %w", where, err)
		}
		if ns, _, err := cc.Namespace(); err == nil && ns != "" {
			d.defNS = ns
		}
		rc = rest.CopyConfig(rc)
		rc.QPS, rc.Burst = 200, 400
		rc.UserAgent = "jackin"
		rc.Wrap(d.countCalls)
		cs, err := k8s.NewForConfig(rc)
		if err != nil {
			return nil, fmt.Errorf("backend kubernetes: make the client: %w", err)
		}
		d.cs = cs
	} else {
		d.cs = cfg.Client
	}
	d.rest = rc
	if rc != nil {
		d.endpoint = rc.Host
	} else {
		d.endpoint = "fake cluster"
	}
	if cfg.Context != "" {
		d.endpoint = cfg.Context + " (" + d.endpoint + ")"
	}
	if cfg.Host != nil {
		d.host = cfg.Host
	} else if cfg.Client == nil {
		h, err := docker.New(ctx, log.WithName("host"))
		if err != nil {
			return nil, err
		}
		d.host = h
	}
	return d, nil
}

// countCalls counts the requests to the API server by method and path.
func (d *Driver) countCalls(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		key := req.Method + " " + req.URL.Path
		v, _ := d.calls.LoadOrStore(key, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			d.mutating.Add(1)
		}
		return rt.RoundTrip(req)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Name returns "kubernetes".
func (d *Driver) Name() string { return Backend }

// Endpoint is the API server (and the context, when named).
func (d *Driver) Endpoint() string { return d.endpoint }

// Calls counts the API server requests by method and path, and the host
// engine's.
func (d *Driver) Calls() map[string]int {
	out := map[string]int{}
	d.calls.Range(func(k, v any) bool {
		out[k.(string)] = int(v.(*atomic.Int64).Load())
		return true
	})
	if d.host != nil {
		for k, n := range d.host.Calls() {
			out["host "+k] += n
		}
	}
	return out
}

// MutatingCalls counts the API server requests that were neither GET nor
// HEAD, and the host engine's.
func (d *Driver) MutatingCalls() int {
	n := int(d.mutating.Load())
	if d.host != nil {
		n += d.host.MutatingCalls()
	}
	return n
}

// Client is the clientset (tests).
func (d *Driver) Client() k8s.Interface { return d.cs }

// Ping asks the API server its version.
func (d *Driver) Ping(ctx context.Context) error {
	v, err := d.cs.Discovery().ServerVersion()
	if err != nil {
		return &drivers.ErrUnreachable{Endpoint: d.endpoint, Err: err}
	}
	d.log.V(2).Info("kubernetes server", "version", v.GitVersion)
	_ = ctx
	return nil
}

// namespaces lists the namespaces the fleet's instances use.
func (d *Driver) namespaces() []string {
	seen := map[string]bool{}
	for _, p := range d.cfg.Instances {
		seen[p.Namespace] = true
	}
	if len(seen) == 0 {
		seen[d.defNS] = true
	}
	out := make([]string, 0, len(seen))
	for ns := range seen {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

func fleetSelector(fleet string) string {
	set := labels.Set{LabelAppManagedBy: drivers.ManagedByValue, drivers.LabelManagedBy: drivers.ManagedByValue}
	if fleet != "" {
		set[drivers.LabelFleet] = fleet
	}
	return labels.SelectorFromSet(set).String()
}

// ID is an object's ID: "NAMESPACE/NAME".
func ID(namespace, name string) string { return namespace + "/" + name }

func splitID(id string) (string, string, error) {
	ns, name, ok := strings.Cut(id, "/")
	if !ok || ns == "" || name == "" {
		return "", "", fmt.Errorf("object ID %q is not NAMESPACE/NAME (a Kubernetes backend ID)", id)
	}
	return ns, name, nil
}

// Observe lists the fleet's NetworkPolicies, claims, Secrets and Pods by
// label selector, one list per kind and namespace, concurrently.
func (d *Driver) Observe(ctx context.Context, fleet string, imageRefs []string) (*drivers.Observed, error) {
	obs := &drivers.Observed{Images: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	for _, ns := range d.namespaces() {
		wg.Go(func() {
			o, err := d.observeNamespace(ctx, ns, fleet)
			if err != nil {
				fail(err)
				return
			}
			mu.Lock()
			obs.Networks = append(obs.Networks, o.Networks...)
			obs.Volumes = append(obs.Volumes, o.Volumes...)
			obs.Containers = append(obs.Containers, o.Containers...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	_ = imageRefs // Pods report containerd's image IDs, not the engine's: the spec hash names the image tag.
	return obs, nil
}

func (d *Driver) observeNamespace(ctx context.Context, ns, fleet string) (*drivers.Observed, error) {
	opts := metav1.ListOptions{LabelSelector: fleetSelector(fleet)}
	var (
		wg                       sync.WaitGroup
		pols                     *networkingv1.NetworkPolicyList
		pvcs                     *corev1.PersistentVolumeClaimList
		secs                     *corev1.SecretList
		pods                     *corev1.PodList
		perr, verr, serr, podErr error
	)
	wg.Go(func() { pols, perr = d.cs.NetworkingV1().NetworkPolicies(ns).List(ctx, opts) })
	wg.Go(func() { pvcs, verr = d.cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, opts) })
	wg.Go(func() { secs, serr = d.cs.CoreV1().Secrets(ns).List(ctx, opts) })
	wg.Go(func() { pods, podErr = d.cs.CoreV1().Pods(ns).List(ctx, opts) })
	wg.Wait()
	for what, err := range map[string]error{"NetworkPolicies": perr, "PersistentVolumeClaims": verr, "Secrets": serr, "Pods": podErr} {
		if err != nil {
			return nil, d.wrap(err, "list the %s of fleet %q in namespace %s", what, fleet, ns)
		}
	}
	return observed(ns, pols.Items, pvcs.Items, secs.Items, pods.Items), nil
}

// observed turns listed objects into the backend-neutral observation.
func observed(ns string, pols []networkingv1.NetworkPolicy, pvcs []corev1.PersistentVolumeClaim, secs []corev1.Secret, pods []corev1.Pod) *drivers.Observed {
	obs := &drivers.Observed{}
	for _, p := range pols {
		l := labelsOf(p.ObjectMeta)
		if l == nil || p.DeletionTimestamp != nil {
			continue
		}
		if PolicyHash(p.Spec) != p.Annotations[AnnotationPolicyHash] {
			// Edited since jackin applied it: reported missing, so the
			// plan applies it again.
			continue
		}
		l = copyLabels(l)
		if p.Labels[drivers.LabelInternal] == "true" {
			l[drivers.LabelInternal] = "true"
		}
		obs.Networks = append(obs.Networks, drivers.ObservedResource{Kind: drivers.KindNetwork, ID: ID(ns, p.Name), Name: p.Name, Labels: l, Created: p.CreationTimestamp.Time})
	}
	for _, v := range pvcs {
		l := labelsOf(v.ObjectMeta)
		if l == nil {
			continue
		}
		obs.Volumes = append(obs.Volumes, drivers.ObservedResource{Kind: drivers.KindVolume, ID: ID(ns, v.Name), Name: v.Name, Labels: l, Created: v.CreationTimestamp.Time})
	}
	podsBy := map[string]*corev1.Pod{}
	for i := range pods {
		if labelsOf(pods[i].ObjectMeta) != nil {
			podsBy[pods[i].Name] = &pods[i]
		}
	}
	seen := map[string]bool{}
	for _, s := range secs {
		l := labelsOf(s.ObjectMeta)
		if l == nil || s.Data == nil && len(s.Data) == 0 && s.Annotations == nil {
			continue
		}
		seen[s.Name] = true
		r := drivers.ObservedResource{Kind: drivers.KindContainer, ID: ID(ns, s.Name), Name: s.Name, Labels: l, Created: s.CreationTimestamp.Time}
		var want corev1.Pod
		_ = json.Unmarshal(s.Data[SecretPodKey], &want)
		if len(want.Spec.Containers) > 0 {
			r.Image = want.Spec.Containers[0].Image
		}
		// The networks are the Pod's as rendered: the created container
		// is attached to them, running or not.
		if n := want.Annotations[AnnotationNetworks]; n != "" {
			r.Networks = strings.Split(n, ",")
		}
		if p := podsBy[s.Name]; p != nil {
			podState(&r, p)
		} else {
			r.State, r.Status = drivers.StateExited, "no Pod (stopped, or deleted outside jackin)"
		}
		obs.Containers = append(obs.Containers, r)
	}
	for name, p := range podsBy {
		if seen[name] {
			continue
		}
		l := labelsOf(p.ObjectMeta)
		r := drivers.ObservedResource{Kind: drivers.KindContainer, ID: ID(ns, name), Name: name, Labels: l, Created: p.CreationTimestamp.Time}
		if len(p.Spec.Containers) > 0 {
			r.Image = p.Spec.Containers[0].Image
		}
		r.State, r.Status = drivers.StateDead, "its Secret "+name+" is missing"
		obs.Containers = append(obs.Containers, r)
	}
	sort.Slice(obs.Containers, func(i, j int) bool { return obs.Containers[i].ID < obs.Containers[j].ID })
	return obs
}

// podState maps a Pod's phase and its main container's status onto the
// engine's states.
func podState(r *drivers.ObservedResource, p *corev1.Pod) {
	cs := agentStatus(p)
	switch {
	case p.DeletionTimestamp != nil:
		r.State, r.Status = drivers.StateRemoving, "Pod terminating"
	case p.Status.Phase == corev1.PodRunning:
		r.State, r.Status = drivers.StateRunning, "Pod running"
		if p.Status.StartTime != nil {
			r.Status = "Pod running since " + p.Status.StartTime.UTC().Format(time.RFC3339)
		}
	case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
		r.State = drivers.StateExited
		r.Status = "Pod " + strings.ToLower(string(p.Status.Phase))
		if cs != nil && cs.State.Terminated != nil {
			t := cs.State.Terminated
			r.Status = fmt.Sprintf("Exited (%d) %s", t.ExitCode, t.Reason)
			r.OOMKilled = t.Reason == "OOMKilled"
			r.FinishedAt = t.FinishedAt.Time
		}
	default:
		r.State, r.Status = drivers.StateCreated, "Pod "+strings.ToLower(string(p.Status.Phase))
		if w := waitingProblem(p); w != "" {
			r.State, r.Status = drivers.StateDead, w
		}
	}
	if cs != nil {
		r.ImageID = ""
	}
}

// agentStatus is the status of a Pod's agent container (nil before it has one).
func agentStatus(p *corev1.Pod) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == AgentContainer {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// waitingProblem is why a pending Pod's containers cannot start, when it
// is one that does not heal by waiting.
func waitingProblem(p *corev1.Pod) string {
	for i, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range list {
			if w := cs.State.Waiting; w != nil {
				switch w.Reason {
				case "ErrImageNeverPull", "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "CrashLoopBackOff":
					return "container " + cs.Name + ": " + w.Reason + ": " + termtext.String(w.Message)
				}
			}
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 && i == 0 {
				msg := fmt.Sprintf("init container %s exited (%d) %s", cs.Name, t.ExitCode, t.Reason)
				// The message is the container's own log tail (a checkout's
				// git, in a volume the agent writes): plain text only.
				if m := strings.TrimSpace(termtext.String(t.Message)); m != "" {
					msg += ": " + m
				}
				return msg
			}
		}
	}
	return ""
}

func copyLabels(l map[string]string) map[string]string {
	out := make(map[string]string, len(l)+1)
	for k, v := range l {
		out[k] = v
	}
	return out
}

// wrap names what failed and where; an API server that does not answer
// is *drivers.ErrUnreachable.
func (d *Driver) wrap(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	var status apierrors.APIStatus
	if errors.As(err, &status) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s on %s: %w", msg, d.endpoint, err)
	}
	return &drivers.ErrUnreachable{Endpoint: d.endpoint, Err: fmt.Errorf("%s: %w", msg, err)}
}

func (d *Driver) placement(labels map[string]string) (Placement, error) {
	inst := labels[drivers.LabelInstance]
	p, ok := d.cfg.Instances[inst]
	if !ok {
		return Placement{}, fmt.Errorf("instance %q has no Kubernetes placement (kubernetes.namespace) in this manifest", inst)
	}
	return p, nil
}

func applyOpts() metav1.PatchOptions {
	return metav1.PatchOptions{FieldManager: FieldManager, Force: ptr(true)}
}

// apply server-side applies one object (its JSON).
func (d *Driver) apply(ctx context.Context, obj any, do func(data []byte) error) error {
	data, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	return do(data)
}

// Create applies a resource: a NetworkPolicy, a claim, or a container's
// Secret (the Pod itself is applied by Start). Applying what exists is an
// update, so an interrupted apply is finished by the next.
func (d *Driver) Create(ctx context.Context, r drivers.Resource) (string, error) {
	p, err := d.placement(r.Labels)
	if err != nil {
		return "", err
	}
	ns := p.Namespace
	switch r.Kind {
	case drivers.KindNetwork:
		np, err := RenderPolicy(r, ns)
		if err != nil {
			return "", err
		}
		if np.Labels[drivers.LabelInternal] == "true" {
			if err := d.requireEnforced(ctx, ns, p, r.Labels[drivers.LabelInstance]); err != nil {
				return "", err
			}
		}
		if p.PrivateDocker {
			// The instance's first object: refused here, nothing of it
			// is made.
			if err := d.requirePrivileged(ctx, ns, r.Labels[drivers.LabelInstance]); err != nil {
				return "", err
			}
		}
		err = d.apply(ctx, np, func(b []byte) error {
			_, err := d.cs.NetworkingV1().NetworkPolicies(ns).Patch(ctx, np.Name, types.ApplyPatchType, b, applyOpts())
			return err
		})
		if err != nil {
			return "", d.wrap(err, "apply NetworkPolicy %s/%s", ns, np.Name)
		}
		return ID(ns, np.Name), nil
	case drivers.KindVolume:
		pvc, err := RenderClaim(r, ns)
		if err != nil {
			return "", err
		}
		err = d.apply(ctx, pvc, func(b []byte) error {
			_, err := d.cs.CoreV1().PersistentVolumeClaims(ns).Patch(ctx, pvc.Name, types.ApplyPatchType, b, applyOpts())
			return err
		})
		if err != nil {
			return "", d.wrap(err, "apply PersistentVolumeClaim %s/%s", ns, pvc.Name)
		}
		return ID(ns, pvc.Name), nil
	case drivers.KindContainer:
		if r.Container != nil && r.Container.Privileged {
			if err := d.requirePrivileged(ctx, ns, r.Labels[drivers.LabelInstance]); err != nil {
				return "", err
			}
		}
		in := PodInput{Namespace: ns}
		if r.Container != nil && r.Container.Supervisor != nil {
			if in.HelperImage, err = d.helperImage(ctx); err != nil {
				return "", err
			}
			ic, err := d.imageConfig(ctx, r.Container.Image.Ref)
			if err != nil {
				return "", err
			}
			in.ImageEntrypoint, in.ImageCmd, in.ImageUser = ic.entry, ic.cmd, ic.user
		}
		if r.Container != nil {
			if err := d.loadImage(ctx, r.Container.Image.Ref); err != nil {
				return "", err
			}
		}
		rd, err := RenderPod(r, in)
		if err != nil {
			return "", err
		}
		if len(r.Container.Networks) > 0 {
			rd.Pod.Annotations[AnnotationNetworks] = strings.Join(r.Container.Networks, ",")
			raw, _ := json.Marshal(rd.Pod)
			rd.Secret.Data[SecretPodKey] = raw
		}
		err = d.apply(ctx, rd.Secret, func(b []byte) error {
			_, err := d.cs.CoreV1().Secrets(ns).Patch(ctx, rd.Secret.Name, types.ApplyPatchType, b, applyOpts())
			return err
		})
		if err != nil {
			return "", d.wrap(err, "apply Secret %s/%s", ns, rd.Secret.Name)
		}
		return ID(ns, r.Name), nil
	}
	return "", fmt.Errorf("resource kind %q has no Kubernetes rendering", r.Kind)
}

// Start applies the Pod its Secret holds and waits for it to run. The
// agent Pod gets its sidecars' Pod IPs as host aliases (no cluster DNS
// is needed to reach the egress proxy).
func (d *Driver) Start(ctx context.Context, id string) error {
	ns, name, err := splitID(id)
	if err != nil {
		return err
	}
	sec, err := d.cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return d.wrap(err, "read Secret %s", id)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(sec.Data[SecretPodKey], &pod); err != nil {
		return fmt.Errorf("Secret %s holds no Pod (%v): jackin apply recreates it", id, err)
	}
	if cur, err := d.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		if cur.Status.Phase == corev1.PodSucceeded || cur.Status.Phase == corev1.PodFailed {
			// A Pod does not restart once done (restartPolicy Never):
			// a new one takes its place.
			if err := d.deletePod(ctx, ns, name, true); err != nil {
				return err
			}
		} else if cur.DeletionTimestamp != nil {
			if err := d.waitGone(ctx, ns, name); err != nil {
				return err
			}
		}
	}
	if err := d.addHostAliases(ctx, ns, &pod); err != nil {
		return err
	}
	err = d.apply(ctx, &pod, func(b []byte) error {
		_, err := d.cs.CoreV1().Pods(ns).Patch(ctx, name, types.ApplyPatchType, b, applyOpts())
		return err
	})
	if err != nil {
		return d.wrap(err, "apply Pod %s", id)
	}
	return d.waitRunning(ctx, ns, name, StartTimeout)
}

// addHostAliases gives a Pod the IPs of the instance's other Pods that
// have aliases (the egress proxy).
func (d *Driver) addHostAliases(ctx context.Context, ns string, pod *corev1.Pod) error {
	inst := pod.Labels[drivers.LabelInstance]
	sel := labels.SelectorFromSet(labels.Set{LabelAppManagedBy: drivers.ManagedByValue, drivers.LabelFleet: pod.Labels[drivers.LabelFleet], drivers.LabelInstance: inst}).String()
	pods, err := d.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return d.wrap(err, "list the Pods of instance %s", inst)
	}
	for _, p := range pods.Items {
		al := p.Annotations[AnnotationAliases]
		if p.Name == pod.Name || al == "" || p.Status.PodIP == "" {
			continue
		}
		pod.Spec.HostAliases = append(pod.Spec.HostAliases, corev1.HostAlias{IP: p.Status.PodIP, Hostnames: strings.Split(al, ",")})
	}
	return nil
}

func (d *Driver) waitRunning(ctx context.Context, ns, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		p, err := d.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("Pod %s/%s did not run within %s", ns, name, timeout)
			}
			return d.wrap(err, "read Pod %s/%s", ns, name)
		}
		switch p.Status.Phase {
		case corev1.PodRunning, corev1.PodSucceeded:
			return nil
		case corev1.PodFailed:
			why := p.Status.Message
			if w := waitingProblem(p); w != "" {
				why = w
			}
			return fmt.Errorf("Pod %s/%s failed: %s", ns, name, why)
		}
		if w := waitingProblem(p); w != "" {
			return fmt.Errorf("Pod %s/%s cannot start: %s", ns, name, w)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Pod %s/%s did not run within %s (phase %s)", ns, name, timeout, p.Status.Phase)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (d *Driver) waitGone(ctx context.Context, ns, name string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		_, err := d.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			return d.wrap(err, "read Pod %s/%s", ns, name)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Pod %s/%s was not gone within a minute", ns, name)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (d *Driver) deletePod(ctx context.Context, ns, name string, wait bool) error {
	err := d.cs.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(5))})
	if err != nil && !apierrors.IsNotFound(err) {
		return d.wrap(err, "delete Pod %s/%s", ns, name)
	}
	if wait {
		return d.waitGone(ctx, ns, name)
	}
	return nil
}

// Stop deletes the container's Pod and keeps its Secret: a stopped
// container.
func (d *Driver) Stop(ctx context.Context, id string) error {
	ns, name, err := splitID(id)
	if err != nil {
		return err
	}
	return d.deletePod(ctx, ns, name, true)
}

// Remove deletes a resource; a container is its Pod and its Secret.
func (d *Driver) Remove(ctx context.Context, kind drivers.Kind, id string) error {
	ns, name, err := splitID(id)
	if err != nil {
		return err
	}
	var derr error
	switch kind {
	case drivers.KindNetwork:
		derr = d.cs.NetworkingV1().NetworkPolicies(ns).Delete(ctx, name, metav1.DeleteOptions{})
	case drivers.KindVolume:
		derr = d.cs.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, name, metav1.DeleteOptions{})
	case drivers.KindContainer:
		if err := d.deletePod(ctx, ns, name, true); err != nil {
			return err
		}
		derr = d.cs.CoreV1().Secrets(ns).Delete(ctx, name, metav1.DeleteOptions{})
	default:
		return fmt.Errorf("resource kind %q has no Kubernetes rendering", kind)
	}
	if derr != nil && !apierrors.IsNotFound(derr) {
		return d.wrap(derr, "delete %s %s", kind, id)
	}
	return nil
}

// EnsureImage makes the image on the host engine (built or pulled there,
// as the docker backend does); Create loads it into the cluster when
// JACKIN_KUBE_IMAGE_LOAD is set.
func (d *Driver) EnsureImage(ctx context.Context, img drivers.ImageSpec, progress io.Writer) (string, error) {
	if d.host == nil {
		return img.Ref, nil
	}
	return d.host.EnsureImage(ctx, img, progress)
}

// imageConfig is an image's entrypoint and command, from the host engine.
func (d *Driver) imageConfig(ctx context.Context, ref string) (imageConfig, error) {
	d.mu.Lock()
	ic, ok := d.imgCache[ref]
	d.mu.Unlock()
	if ok || d.host == nil {
		return ic, nil
	}
	res, err := d.host.Client().ImageInspect(ctx, ref)
	if err != nil {
		return ic, fmt.Errorf("inspect image %q for the agent's command (it is built or pulled on this machine's engine): %w", ref, err)
	}
	if c := res.Config; c != nil {
		ic = imageConfig{entry: c.Entrypoint, cmd: c.Cmd, user: c.User}
	}
	d.mu.Lock()
	d.imgCache[ref] = ic
	d.mu.Unlock()
	return ic, nil
}

// loadImage hands an image to JACKIN_KUBE_IMAGE_LOAD (once per image ID
// and process) when it is set.
func (d *Driver) loadImage(ctx context.Context, ref string) error {
	loader := os.Getenv(ImageLoadEnv)
	if loader == "" || d.host == nil {
		return nil
	}
	res, err := d.host.Client().ImageInspect(ctx, ref)
	if err != nil {
		return fmt.Errorf("inspect image %q to load it into the cluster: %w", ref, err)
	}
	d.mu.Lock()
	done := d.loaded[res.ID]
	d.mu.Unlock()
	if done {
		return nil
	}
	save := exec.CommandContext(ctx, "docker", "save", ref)
	load := exec.CommandContext(ctx, "sh", "-c", loader)
	pipe, err := save.StdoutPipe()
	if err != nil {
		return err
	}
	load.Stdin = pipe
	var out strings.Builder
	load.Stdout, load.Stderr = &out, &out
	if err := save.Start(); err != nil {
		return fmt.Errorf("docker save %s: %w", ref, err)
	}
	lerr := load.Run()
	serr := save.Wait()
	if serr != nil || lerr != nil {
		return fmt.Errorf("load image %s into the cluster with %s=%q: save: %v, load: %v: %s", ref, ImageLoadEnv, loader, serr, lerr, strings.TrimSpace(out.String()))
	}
	d.mu.Lock()
	d.loaded[res.ID] = true
	d.mu.Unlock()
	return nil
}
