package schema

// BackendKubernetes runs an instance as Pods, claims, Secrets and
// NetworkPolicies in a Kubernetes namespace (drivers/kubernetes).
const BackendKubernetes = "kubernetes"

// Kubernetes configures where an instance of backend BackendKubernetes
// runs (defaults filled in by the loader).
type Kubernetes struct {
	// Context is the kubeconfig context; empty is the kubeconfig's current
	// context (KUBECONFIG or ~/.kube/config, as kubectl reads it).
	Context string `json:"context,omitempty"`
	// Namespace holds the instance's objects; it must exist.
	Namespace string `json:"namespace"`
	// AllowUnenforcedPolicy runs an egress "allowlist" instance on a
	// cluster whose network plugin does not enforce NetworkPolicy (the
	// probe says so); the contract then says egress is not enforced.
	// Without it such an instance is refused (fail closed).
	AllowUnenforcedPolicy bool `json:"allowUnenforcedPolicy,omitempty"`
}
