package contract

import (
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// Cluster is the boundary of an instance on backend kubernetes: Pods in a
// namespace of a cluster jackin does not run. It says what the cluster
// enforces and who else can see into the instance.
type Cluster struct {
	Context   string `json:"context"`
	Namespace string `json:"namespace"`
	// Objects are what the instance is rendered into.
	Objects string `json:"objects"`
	// Egress is how egress is limited and whether the cluster enforces it:
	// "not limited" (egress open), "enforced if the probe finds
	// NetworkPolicy enforced, else refused", or "NOT enforced where the
	// probe finds NetworkPolicy ignored (allowUnenforcedPolicy: true)".
	Egress string `json:"egress"`
	// PolicyProbe says how enforcement is checked.
	PolicyProbe string `json:"policyProbe"`
	// SecretsReadableBy names who can read the instance's Secrets.
	SecretsReadableBy string `json:"secretsReadableBy"`
	Kernel            string `json:"kernel"`
	// Access is how attach, exec and logs reach the agent.
	Access string `json:"access"`
	// Limits that the Pod spec cannot carry.
	NotEnforced []string `json:"notEnforced"`
	// ImageDelivery is how images reach the nodes.
	ImageDelivery string `json:"imageDelivery"`
	// PrivilegedPod (docker "private" only) says when the daemon's
	// privileged Pod is admitted.
	PrivilegedPod string `json:"privilegedPod,omitempty"`
}

// Words of the Kubernetes boundary.
const (
	kubernetesBoundary = "Pods in a namespace of a Kubernetes cluster: the cluster's container runtime, network plugin and admission decide what holds; jackin renders and checks, the cluster enforces"
	// RiskKubernetesCluster is the residual risk of the Kubernetes backend.
	RiskKubernetesCluster = "kubernetes-cluster"
)

// kubernetesCluster describes the instance's placement and what the
// cluster is relied on for.
func kubernetesCluster(fx facts) *Cluster {
	k := fx.inst.Kubernetes
	if k == nil {
		k = &schema.Kubernetes{}
	}
	c := &Cluster{
		Context:           orDefault(k.Context, "the kubeconfig's current context"),
		Namespace:         k.Namespace,
		Objects:           "a Pod per container (the agent under jackin's supervisor as PID 1; the egress proxy in a Pod of its own), a Secret per Pod (its environment and jackin's files: env values never in the Pod spec), PersistentVolumeClaims for ephemeral mounts and the runtime home, a NetworkPolicy per network; applied server-side as field manager jackin",
		PolicyProbe:       "before an instance with limited egress runs, a probe Pod under a deny-all egress NetworkPolicy tries to reach another Pod: reaching it means the cluster's network plugin does not enforce NetworkPolicy",
		SecretsReadableBy: "anyone with get on secrets in namespace " + k.Namespace + " (and the cluster's administrators, and etcd's readers unless the cluster encrypts Secrets at rest)",
		Kernel:            "the node's kernel, shared with every other Pod on that node",
		Access:            "attach, exec and logs go through the API server (pods/exec, pods/log): anyone allowed create on pods/exec in the namespace can do what jackin exec does",
		NotEnforced:       []string{"resources.pids (no per-Pod field: the kubelet's podPidsLimit applies)", "resources.nofile (the runtime's default)"},
		ImageDelivery:     "built on this machine's Docker engine; the nodes pull them by reference, or JACKIN_KUBE_IMAGE_LOAD loads them",
	}
	if fx.docker == schema.DockerPrivate {
		c.PrivilegedPod = "the private Docker daemon runs in a privileged Pod of its own: before the instance's first object is made, jackin reads namespace " + k.Namespace +
			"'s Pod Security label (pod-security.kubernetes.io/enforce: baseline or restricted refuses it) and asks the API server with a server-side dry run of a privileged Pod (its --allow-privileged, default levels and admission webhooks); a refusal refuses the instance with the reason"
	}
	switch {
	case fx.inst.Network.Egress == schema.EgressOpen:
		c.Egress = "not limited (egress open); ingress from other Pods denied by NetworkPolicy where the cluster enforces it"
	case k.AllowUnenforcedPolicy:
		c.Egress = "limited by NetworkPolicy, and NOT enforced where the probe finds the cluster ignores NetworkPolicy (allowUnenforcedPolicy: true): the agent may then reach anything its node reaches"
	default:
		c.Egress = "limited by NetworkPolicy (the agent Pod reaches only its egress proxy Pod); the instance is refused where the probe finds NetworkPolicy not enforced (fail closed)"
	}
	return c
}

// kubernetesRisk is the residual risk every Kubernetes instance carries.
func kubernetesRisk() Risk {
	return Risk{RiskKubernetesCluster, "the instance is only as contained as the cluster: its nodes' kernels, network plugin and RBAC are the cluster operator's; anyone who can exec into Pods or read Secrets in the namespace reaches the agent and its credentials"}
}

// kubernetesSandboxLines adds the cluster to the sandbox section's text.
func kubernetesSandboxLines(s *textSection, c *Cluster) {
	if c == nil {
		return
	}
	s.kv("cluster context", c.Context)
	s.kv("namespace", c.Namespace)
	s.kv("objects", c.Objects)
	s.kv("egress enforcement", c.Egress)
	s.kv("policy probe", c.PolicyProbe)
	s.kv("Secrets readable by", c.SecretsReadableBy)
	s.kv("kernel", c.Kernel)
	s.kv("attach/exec", c.Access)
	for _, n := range c.NotEnforced {
		s.kv("  not enforced", n)
	}
	s.kv("images", c.ImageDelivery)
	if c.PrivilegedPod != "" {
		s.kv("privileged Pod", c.PrivilegedPod)
	}
}

// kubernetesDaemon rewrites the private daemon's description for a Pod:
// its own privileged Pod, its files in Secrets, its data in a claim.
func kubernetesDaemon(d *DockerDaemon, fleet, instance string) {
	d.Sidecar = "the Pod " + reconciler.DockerSidecarName(fleet, instance)
	d.Network = "the instance's network only: a NetworkPolicy admits the instance's own Pods; the agent reaches it by the host alias " + reconciler.DockerAlias + " (its Pod IP)"
	d.Certificates += "; on the cluster, the server's key is in the daemon Pod's Secret and the client's in the agent's, readable by anyone with get on secrets in the namespace"
	d.Data = "the claim " + reconciler.DockerVolumeName(fleet, instance) + " at /var/lib/docker: images, containers and volumes survive recreates of the agent; removed when the instance is deleted"
	if len(d.Capabilities) == 1 && d.Capabilities[0] == "ALL" {
		d.Privilege = "privileged: a privileged Pod, every capability, every device of the node, no seccomp or AppArmor confinement; root in it is root on the node, and the node's other Pods are within its reach"
	}
}
