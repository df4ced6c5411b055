package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/supervisor"
)

// Kubernetes labels and annotations jackin sets besides the dev.jackin.*
// labels. The dev.jackin.* set is kept whole in AnnotationLabels (a spec
// hash or a manifest path is not a valid label value); the labels carry
// the selectable part of it.
const (
	LabelAppManagedBy = "app.kubernetes.io/managed-by"
	// AnnotationLabels holds the object's complete jackin label set, JSON.
	AnnotationLabels = "dev.jackin/labels"
	// AnnotationPolicyHash, on a NetworkPolicy, is the hash of the spec
	// jackin applied: a policy edited since is seen as drift.
	AnnotationPolicyHash = "dev.jackin/policy-hash"
	// AnnotationAliases, on a sidecar Pod, are the names the agent Pod
	// reaches it by (its host aliases: no cluster DNS is needed).
	AnnotationAliases = "dev.jackin/aliases"
	// AnnotationNetworks, on a Pod, names the instance networks it is
	// attached to (their NetworkPolicies select it by NetLabel).
	AnnotationNetworks = "dev.jackin/networks"
	// LabelNetPrefix marks a Pod attached to one of the instance's
	// networks: "dev.jackin.net-" and 12 hex digits of the network's name.
	LabelNetPrefix = "dev.jackin.net-"
	// LabelProbe marks the NetworkPolicy probe's objects.
	LabelProbe = "dev.jackin.probe"

	// AgentContainer is the name of the Pod's main container.
	AgentContainer = "main"
	// SecretPodKey holds, in a container's Secret, the Pod jackin starts
	// (JSON): a Secret without its Pod is a created, stopped container.
	SecretPodKey = "pod.json"
	// DefaultClaimSize is the storage request of a claim.
	DefaultClaimSize = "1Gi"
	// nobody runs the init container when the agent's user is not known.
	nobody = 65534
)

// selectable are the dev.jackin.* labels that are copied to Kubernetes
// labels (their values are names: valid label values).
var selectable = []string{drivers.LabelManagedBy, drivers.LabelFleet, drivers.LabelInstance, drivers.LabelComponent}

// Meta is an object's metadata: the selectable labels, the managed-by
// label, and the whole jackin label set in an annotation.
func Meta(name, namespace string, labels map[string]string) (metav1.ObjectMeta, error) {
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 && len(name) <= 63 {
		return metav1.ObjectMeta{}, fmt.Errorf("name %q is not a valid Kubernetes object name: %s", name, strings.Join(errs, "; "))
	} else if len(name) > 63 {
		return metav1.ObjectMeta{}, fmt.Errorf("name %q is longer than 63 characters, the most a Kubernetes Pod or label takes: shorten the fleet or instance name", name)
	}
	all, err := json.Marshal(labels)
	if err != nil {
		return metav1.ObjectMeta{}, err
	}
	l := map[string]string{LabelAppManagedBy: drivers.ManagedByValue}
	for _, k := range selectable {
		if v, ok := labels[k]; ok {
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				return metav1.ObjectMeta{}, fmt.Errorf("label %s=%q is not a valid Kubernetes label value: %s", k, v, strings.Join(errs, "; "))
			}
			l[k] = v
		}
	}
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: l, Annotations: map[string]string{AnnotationLabels: string(all)}}, nil
}

// labelsOf restores an object's jackin label set (nil when it has none:
// not jackin's).
func labelsOf(m metav1.ObjectMeta) map[string]string {
	if m.Labels[LabelAppManagedBy] != drivers.ManagedByValue {
		return nil
	}
	var out map[string]string
	if err := json.Unmarshal([]byte(m.Annotations[AnnotationLabels]), &out); err != nil || out[drivers.LabelManagedBy] != drivers.ManagedByValue {
		return nil
	}
	return out
}

// NetLabel is the Pod label that attaches a Pod to one of the instance's
// networks (NetworkPolicies select by it).
func NetLabel(network string) string {
	h := sha256.Sum256([]byte(network))
	return LabelNetPrefix + hex.EncodeToString(h[:6])
}

// RenderPolicy renders a network into a NetworkPolicy over the Pods
// attached to it. Every policy denies ingress from outside the network
// (Pods of the same network may talk: the agent to its egress proxy).
// An internal network (egress allowlist or none) allows egress only to
// Pods of the same network; any other network allows all egress. Policies
// add up: the egress proxy, on the instance's internal network and on its
// outbound one, may go out; the agent, on the internal one only, reaches
// the proxy and nothing else (not even DNS: it reaches the proxy by a
// host alias).
func RenderPolicy(r drivers.Resource, namespace string) (*networkingv1.NetworkPolicy, error) {
	meta, err := Meta(r.Name, namespace, r.Labels)
	if err != nil {
		return nil, err
	}
	internal := r.Network != nil && r.Network.Internal
	if internal {
		meta.Labels[drivers.LabelInternal] = "true"
	}
	member := metav1.LabelSelector{MatchLabels: map[string]string{NetLabel(r.Name): "1"}}
	spec := networkingv1.NetworkPolicySpec{
		PodSelector: member,
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &member}}}},
	}
	if internal {
		spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{PodSelector: &member}}}}
	} else {
		spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}}
	}
	meta.Annotations[AnnotationPolicyHash] = PolicyHash(spec)
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: meta,
		Spec:       spec,
	}, nil
}

// PolicyHash is the hash of a NetworkPolicy's spec as jackin renders it.
func PolicyHash(spec networkingv1.NetworkPolicySpec) string {
	b, _ := json.Marshal(spec)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

// RenderClaim renders a volume into a PersistentVolumeClaim of the
// namespace's default storage class.
func RenderClaim(r drivers.Resource, namespace string) (*corev1.PersistentVolumeClaim, error) {
	if r.Volume != nil && r.Volume.Seed != "" {
		return nil, fmt.Errorf("volume %s: a volume seeded from a host directory cannot be made on a cluster node", r.Name)
	}
	meta, err := Meta(r.Name, namespace, r.Labels)
	if err != nil {
		return nil, err
	}
	return &corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: meta,
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: resource.MustParse(DefaultClaimSize),
			}},
		},
	}, nil
}

// PodInput is what a container's Pod is rendered from besides its
// resource: where jackin's helper image is, and the image's own
// entrypoint and command (the supervisor runs them, as on Docker).
type PodInput struct {
	Namespace string
	// HelperImage holds the jackin binary at /jackin: an init container
	// copies it into the Pod for the supervisor (the operator's files are
	// not on the node, so it cannot be mounted as on Docker).
	HelperImage string
	// ImageEntrypoint and ImageCmd are the image's, for a supervised
	// container, and ImageUser its USER (the agent's user when the profile
	// sets none).
	ImageEntrypoint, ImageCmd []string
	ImageUser                 string
	// ReadFile reads a file of a bind jackin makes from its own state (a
	// credential, a CA bundle, the proxy's policy): its content goes into
	// the container's Secret. Tests substitute it.
	ReadFile func(string) ([]byte, error)
	ReadDir  func(string) ([]os.DirEntry, error)
}

// Rendered is a container's Secret (environment, files, and the Pod to
// start) and its Pod.
type Rendered struct {
	Secret *corev1.Secret
	Pod    *corev1.Pod
}

// RenderPod renders a container into its Pod and the Secret that holds
// its environment and its files. Binds are jackin's own: the supervisor's
// binary (copied in by an init container), the agent's state directory
// (an emptyDir) and directories or files jackin wrote (their content goes
// into the Secret). A bind of a host path the manifest names is refused:
// validation refuses them, this is the last line.
func RenderPod(r drivers.Resource, in PodInput) (*Rendered, error) {
	c := r.Container
	if c == nil {
		return nil, fmt.Errorf("container %s has no spec", r.Name)
	}
	if len(c.Ports) > 0 {
		return nil, fmt.Errorf("container %s publishes ports, and a Pod publishes none on the operator's machine", r.Name)
	}
	if len(c.SecurityOpt) > 0 || len(c.DeviceCgroupRules) > 0 || len(c.Sysctls) > 0 {
		return nil, fmt.Errorf("container %s asks for security options, device rules or sysctls, which a Pod does not carry", r.Name)
	}
	if c.Privileged && r.Component != drivers.ComponentDocker {
		// Only the private Docker daemon is privileged, and only where
		// the namespace admits it (the driver checks before creating).
		return nil, fmt.Errorf("container %s asks for privilege, which jackin asks of a cluster only for the private Docker daemon", r.Name)
	}
	if in.ReadFile == nil {
		in.ReadFile = os.ReadFile
	}
	if in.ReadDir == nil {
		in.ReadDir = os.ReadDir
	}
	meta, err := Meta(r.Name, in.Namespace, r.Labels)
	if err != nil {
		return nil, err
	}
	secret := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: *meta.DeepCopy(),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{},
	}
	ctr := corev1.Container{
		Name:            AgentContainer,
		Image:           c.Image.Ref,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Stdin:           true,
		TTY:             false,
	}
	if c.Supervisor != nil {
		ctr.Command, ctr.Args = supervisorArgv(c.Supervisor, in.ImageEntrypoint, in.ImageCmd)
	} else if len(c.Command) > 0 {
		ctr.Args = append([]string(nil), c.Command...)
	}
	// The environment's values go into the Secret, never the Pod spec
	// (credentials are delivered by env too): one key per variable.
	envNames := make([]string, 0, len(c.Env))
	for k := range c.Env {
		envNames = append(envNames, k)
	}
	sort.Strings(envNames)
	for i, k := range envNames {
		key := "env." + strconv.Itoa(i)
		secret.Data[key] = []byte(c.Env[k])
		ctr.Env = append(ctr.Env, corev1.EnvVar{Name: k, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: r.Name}, Key: key,
		}}})
	}

	sc, podSC, err := securityContexts(c)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", r.Name, err)
	}
	if c.Privileged {
		// Privileged implies escalation: the API server refuses the two
		// together.
		sc.Privileged, sc.AllowPrivilegeEscalation = ptr(true), nil
	}
	ctr.SecurityContext = sc
	ctr.Resources = resources(c)

	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: meta,
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  ptr(false),
			EnableServiceLinks:            ptr(false),
			SecurityContext:               podSC,
			TerminationGracePeriodSeconds: ptr(int64(10)),
		},
	}
	if c.Hostname != "" && len(validation.IsDNS1123Label(c.Hostname)) == 0 {
		pod.Spec.Hostname = c.Hostname
	}
	for _, n := range c.Networks {
		pod.Labels[NetLabel(n)] = "1"
	}
	var aliases []string
	for _, n := range c.Networks {
		aliases = append(aliases, c.Aliases[n]...)
	}
	if len(aliases) > 0 {
		pod.Annotations[AnnotationAliases] = strings.Join(aliases, ",")
	}

	secretItems := []corev1.KeyToPath{}
	var initMounts []corev1.VolumeMount
	var clones []cloneInit
	vols := map[string]bool{}
	addVolume := func(v corev1.Volume) {
		if !vols[v.Name] {
			vols[v.Name] = true
			pod.Spec.Volumes = append(pod.Spec.Volumes, v)
		}
	}
	fileN := 0
	addSecretFile := func(src, target string) error {
		data, err := in.ReadFile(src)
		if err != nil {
			return fmt.Errorf("read %s for the container's Secret: %w", src, err)
		}
		key := "file." + strconv.Itoa(fileN)
		fileN++
		secret.Data[key] = data
		secretItems = append(secretItems, corev1.KeyToPath{Key: key, Path: key, Mode: ptr(int32(0o444))})
		ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: "files", MountPath: target, SubPath: key, ReadOnly: true})
		return nil
	}
	for i, m := range c.Mounts {
		switch m.Type {
		case "volume":
			name := "claim-" + strconv.Itoa(i)
			addVolume(corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: m.Source}}})
			ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: m.Target, ReadOnly: m.ReadOnly})
			if c.Supervisor != nil && m.Target == c.Supervisor.HomeTarget {
				initMounts = append(initMounts, corev1.VolumeMount{Name: name, MountPath: "/home-store"})
			}
			if m.Clone != nil {
				clones = append(clones, cloneInit{volume: name, target: m.Target, spec: *m.Clone})
			}
		case "tmpfs":
			name := "tmpfs-" + strconv.Itoa(i)
			ed := &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}
			if m.SizeBytes > 0 {
				ed.SizeLimit = resource.NewQuantity(m.SizeBytes, resource.BinarySI)
			}
			addVolume(corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: ed}})
			ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: m.Target})
		case "bind":
			switch {
			case m.Pin != nil || m.Under != nil:
				return nil, fmt.Errorf("container %s: mount %s binds the host path %s, and a Pod runs on a cluster node where the operator's files are not", r.Name, m.Target, m.Source)
			case m.Target == supervisor.BinDir:
				if c.Supervisor == nil || in.HelperImage == "" {
					return nil, fmt.Errorf("container %s: the supervisor's binary needs jackin's helper image", r.Name)
				}
				addVolume(corev1.Volume{Name: "jackin-bin", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
				ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: "jackin-bin", MountPath: supervisor.BinDir, ReadOnly: true})
				initMounts = append(initMounts, corev1.VolumeMount{Name: "jackin-bin", MountPath: "/out"})
			case m.Target == supervisor.AgentDir:
				// The supervisor's state, read through exec (the host
				// directory of the Docker rendering does not exist here).
				addVolume(corev1.Volume{Name: "jackin-agent", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
				ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: "jackin-agent", MountPath: supervisor.AgentDir})
			case !m.ReadOnly:
				return nil, fmt.Errorf("container %s: mount %s is a writable bind of %s, which a Pod cannot have", r.Name, m.Target, m.Source)
			default:
				st, err := os.Stat(m.Source)
				isDir := err == nil && st.IsDir()
				if in.ReadDir != nil && err != nil {
					// Tests give files through ReadDir/ReadFile only.
					if _, derr := in.ReadDir(m.Source); derr == nil {
						isDir = true
					}
				}
				if !isDir {
					if err := addSecretFile(m.Source, m.Target); err != nil {
						return nil, fmt.Errorf("container %s: %w", r.Name, err)
					}
					break
				}
				entries, err := in.ReadDir(m.Source)
				if err != nil {
					return nil, fmt.Errorf("container %s: read %s for the container's Secret: %w", r.Name, m.Source, err)
				}
				for _, e := range entries {
					if e.IsDir() || !e.Type().IsRegular() {
						continue
					}
					if err := addSecretFile(filepath.Join(m.Source, e.Name()), path.Join(m.Target, e.Name())); err != nil {
						return nil, fmt.Errorf("container %s: %w", r.Name, err)
					}
				}
			}
		default:
			return nil, fmt.Errorf("container %s: mount type %q has no Kubernetes rendering", r.Name, m.Type)
		}
	}
	if len(secretItems) > 0 {
		addVolume(corev1.Volume{Name: "files", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: r.Name, Items: secretItems, DefaultMode: ptr(int32(0o444)),
		}}})
	}
	if c.Supervisor != nil {
		// The init container copies jackin's static binary into the Pod
		// and opens the runtime home's kept directory to the agent's user
		// (a new claim's root is not theirs), hardened like every jackin
		// helper.
		args := []string{"/jackin", "kube-init", "--copy-self", "/out/jackin"}
		if c.Supervisor.HomeSubdir != "" && len(initMounts) > 1 {
			args = append(args, "--open", path.Join("/home-store", c.Supervisor.HomeSubdir))
		}
		init := corev1.Container{
			Name:            "jackin-init",
			Image:           in.HelperImage,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Command:         args,
			VolumeMounts:    initMounts,
			SecurityContext: helperSecurity(sc),
			// Requests small: an init container's request counts for
			// scheduling like the Pod's own.
			Resources: corev1.ResourceRequirements{
				Limits: corev1.ResourceList{
					corev1.ResourceMemory: resource.MustParse("64Mi"), corev1.ResourceCPU: resource.MustParse("500m"),
				},
				Requests: corev1.ResourceList{corev1.ResourceMemory: minMemoryRequest, corev1.ResourceCPU: minCPURequest},
			},
		}
		pod.Spec.InitContainers = []corev1.Container{init}
	}
	for i, cl := range clones {
		if c.Supervisor == nil {
			return nil, fmt.Errorf("container %s: the checkout at %s is cloned by jackin's binary, which only a supervised container has", r.Name, cl.target)
		}
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, checkoutContainer(i, cl, ctr, in.ImageUser))
	}
	pod.Spec.Containers = []corev1.Container{ctr}
	raw, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	secret.Data[SecretPodKey] = raw
	return &Rendered{Secret: secret, Pod: pod}, nil
}

// cloneInit is a volume mount the Pod fills with a git checkout.
type cloneInit struct {
	volume, target string
	spec           drivers.CloneSpec
}

// checkoutContainer is the init container that clones a checkout's git
// URL into its claim: the role image's own git, driven by jackin's binary
// (copied into the Pod by jackin-init before it). It starts as root with
// the three capabilities that hand a new claim's root to the agent's user
// and become that user, and runs git as them, so the checkout is the
// agent's (git refuses a repository another user owns). A claim that
// already holds a checkout is left as it is: it is the agent's work, kept
// across Pod recreates.
func checkoutContainer(i int, cl cloneInit, agent corev1.Container, imageUser string) corev1.Container {
	args := []string{path.Join(supervisor.BinDir, "jackin"), "git-checkout", "--dir", cl.target, "--url", cl.spec.URL, "--branch", cl.spec.Branch}
	if cl.spec.Ref != "" {
		args = append(args, "--ref", cl.spec.Ref)
	}
	owner := imageUser
	if sc := agent.SecurityContext; sc != nil && sc.RunAsUser != nil {
		owner = strconv.FormatInt(*sc.RunAsUser, 10)
		if sc.RunAsGroup != nil {
			owner += ":" + strconv.FormatInt(*sc.RunAsGroup, 10)
		}
	}
	if owner != "" {
		args = append(args, "--owner", owner)
	}
	ctr := corev1.Container{
		Name:            "checkout-" + strconv.Itoa(i),
		Image:           agent.Image,
		ImagePullPolicy: agent.ImagePullPolicy,
		Command:         args,
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr(int64(0)),
			RunAsNonRoot:             ptr(false),
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: capabilities(drivers.CheckoutCaps)},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "jackin-bin", MountPath: supervisor.BinDir, ReadOnly: true},
			{Name: cl.volume, MountPath: cl.target},
		},
		Resources: agent.Resources,
		// git's own words reach apply's error when the clone fails.
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	for _, e := range agent.Env {
		if slices.Contains(drivers.ProxyEnv, e.Name) {
			ctr.Env = append(ctr.Env, e)
		}
	}
	return ctr
}

func capabilities(names []string) []corev1.Capability {
	out := make([]corev1.Capability, len(names))
	for i, n := range names {
		out[i] = corev1.Capability(n)
	}
	return out
}

// supervisorArgv is the supervisor and what it runs, as the Docker driver
// builds it: the image's entrypoint and command (or the login shell).
func supervisorArgv(sup *drivers.SupervisorSpec, imgEntry, imgCmd []string) (command, args []string) {
	entry := append([]string{}, sup.Entrypoint...)
	var argv []string
	if sup.ImageCommand {
		argv = append(append(append([]string{}, imgEntry...), imgCmd...), sup.Args...)
		if len(imgEntry) == 0 && len(imgCmd) == 0 {
			entry = append(entry, sup.LoginShellFlag)
			argv = append([]string{}, sup.Args...)
		}
	} else {
		argv = append(append([]string{}, imgEntry...), sup.Command...)
	}
	return append(entry, "--"), argv
}

// securityContexts maps the profile's hardening onto the container and
// the Pod: user and group, no privilege escalation, a read-only root,
// capabilities, and seccomp RuntimeDefault always.
func securityContexts(c *drivers.ContainerSpec) (*corev1.SecurityContext, *corev1.PodSecurityContext, error) {
	sc := &corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	pod := &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	if c.User != "" {
		u, g, hasG := strings.Cut(c.User, ":")
		uid, err := strconv.ParseInt(u, 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("user %q: a Pod's user is numeric (uid or uid:gid)", c.User)
		}
		sc.RunAsUser = &uid
		if uid != 0 {
			sc.RunAsNonRoot = ptr(true)
		}
		if hasG {
			gid, err := strconv.ParseInt(g, 10, 64)
			if err != nil {
				return nil, nil, fmt.Errorf("user %q: a Pod's group is numeric", c.User)
			}
			sc.RunAsGroup = &gid
			pod.FSGroup = &gid
		}
	}
	if c.NoNewPrivileges {
		sc.AllowPrivilegeEscalation = ptr(false)
	}
	if c.ReadOnlyRoot {
		sc.ReadOnlyRootFilesystem = ptr(true)
	}
	if len(c.CapDrop) > 0 || len(c.CapAdd) > 0 {
		sc.Capabilities = &corev1.Capabilities{}
		for _, cp := range c.CapDrop {
			sc.Capabilities.Drop = append(sc.Capabilities.Drop, corev1.Capability(strings.TrimPrefix(strings.ToUpper(cp), "CAP_")))
		}
		for _, cp := range c.CapAdd {
			sc.Capabilities.Add = append(sc.Capabilities.Add, corev1.Capability(strings.TrimPrefix(strings.ToUpper(cp), "CAP_")))
		}
	}
	return sc, pod, nil
}

// helperSecurity is the init container's: the agent's user when known
// (else nobody), and everything else locked down.
func helperSecurity(agent *corev1.SecurityContext) *corev1.SecurityContext {
	uid := int64(nobody)
	if agent.RunAsUser != nil && *agent.RunAsUser != 0 {
		uid = *agent.RunAsUser
	}
	return &corev1.SecurityContext{
		RunAsUser:                &uid,
		RunAsNonRoot:             ptr(true),
		AllowPrivilegeEscalation: ptr(false),
		ReadOnlyRootFilesystem:   ptr(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// Requests when the manifest reserves nothing: a limit alone would
// become the request (Kubernetes' default), and jackin's limits are caps,
// not reservations: a node would fit a few agents only.
var (
	minCPURequest    = resource.MustParse("10m")
	minMemoryRequest = resource.MustParse("32Mi")
)

// resources maps the limits: memory and CPU as limits, the memory
// reservation as the request (else a small one). The pids and open-files
// limits have no per-Pod field (the contract says so).
func resources(c *drivers.ContainerSpec) corev1.ResourceRequirements {
	rr := corev1.ResourceRequirements{Limits: corev1.ResourceList{}, Requests: corev1.ResourceList{}}
	if c.Memory > 0 {
		rr.Limits[corev1.ResourceMemory] = *resource.NewQuantity(c.Memory, resource.BinarySI)
		rr.Requests[corev1.ResourceMemory] = minMemoryRequest
		if c.Memory < minMemoryRequest.Value() {
			rr.Requests[corev1.ResourceMemory] = *resource.NewQuantity(c.Memory, resource.BinarySI)
		}
	}
	if c.NanoCPUs > 0 {
		rr.Limits[corev1.ResourceCPU] = *resource.NewMilliQuantity(c.NanoCPUs/1_000_000, resource.DecimalSI)
		rr.Requests[corev1.ResourceCPU] = minCPURequest
		if c.NanoCPUs/1_000_000 < minCPURequest.MilliValue() {
			rr.Requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(c.NanoCPUs/1_000_000, resource.DecimalSI)
		}
	}
	if c.MemoryRes > 0 {
		rr.Requests[corev1.ResourceMemory] = *resource.NewQuantity(c.MemoryRes, resource.BinarySI)
	}
	if len(rr.Limits) == 0 {
		rr.Limits = nil
	}
	if len(rr.Requests) == 0 {
		rr.Requests = nil
	}
	return rr
}

func ptr[T any](v T) *T { return &v }
