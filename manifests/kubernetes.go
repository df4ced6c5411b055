package manifests

import (
	"fmt"

	"github.com/jackin-dev/jackin/schema"
)

type rawKubernetes struct {
	Context               *string `json:"context"`
	Namespace             *string `json:"namespace"`
	AllowUnenforcedPolicy *bool   `json:"allowUnenforcedPolicy"`
}

// mergeKubernetes merges defaults' kubernetes under an instance's, field
// by field.
func mergeKubernetes(d, in *rawKubernetes) *rawKubernetes {
	if d == nil {
		return in
	}
	k := rawKubernetes{}
	if in != nil {
		k = *in
	}
	k.Context = pick(k.Context, d.Context)
	k.Namespace = pick(k.Namespace, d.Namespace)
	k.AllowUnenforcedPolicy = pick(k.AllowUnenforcedPolicy, d.AllowUnenforcedPolicy)
	return &k
}

// kubernetes fills in a Kubernetes instance's placement, and refuses
// kubernetes settings on an instance of another backend (set in defaults
// they configure only the instances that use the backend).
func (c *instanceChecker) kubernetes(r rawInstance, inst *schema.Instance) {
	if inst.Backend != schema.BackendKubernetes {
		if r.ownKubernetes {
			c.errorf([]any{"kubernetes"}, "kubernetes configures where a Kubernetes instance runs, and this instance has backend: %q: set backend: %q or remove kubernetes", inst.Backend, schema.BackendKubernetes)
		}
		return
	}
	k := rawKubernetes{}
	if r.Kubernetes != nil {
		k = *r.Kubernetes
	}
	if k.Namespace == nil {
		c.errorf([]any{"backend"}, "backend %q needs kubernetes.namespace, the namespace the instance's objects go in (it must exist)", schema.BackendKubernetes)
	}
	inst.Kubernetes = &schema.Kubernetes{
		Context:               str(k.Context, ""),
		Namespace:             str(k.Namespace, ""),
		AllowUnenforcedPolicy: k.AllowUnenforcedPolicy != nil && *k.AllowUnenforcedPolicy,
	}
}

// kubernetesSource checks a mount's src on a Kubernetes instance. A
// worktree or clone names a git URL, cloned into a claim by an init
// container in the Pod. Any other src is the operator's files, which are
// not on a cluster node (and a hostPath volume would mount the node's
// files instead): refused.
func (c *instanceChecker) kubernetesSource(i int, m rawMount, mount *schema.Mount) {
	switch m.Mode {
	case schema.MountWorktree, schema.MountClone:
		c.gitURLSource(i, m, mount, fmt.Sprintf("on backend %q a %s mount clones a git URL into a claim inside the Pod (this machine's repositories are not on the cluster's nodes)", schema.BackendKubernetes, m.Mode))
	case schema.MountEphemeral:
		c.errorf([]any{"mounts", i, "src"}, "an ephemeral mount's src is copied from this machine, and backend %q runs the instance on a cluster node: remove src (the claim starts empty)", schema.BackendKubernetes)
	default:
		c.errorf([]any{"mounts", i, "src"}, "a %s mount of a host path cannot run on backend %q: the operator's files are not on the cluster's nodes (and jackin never mounts a node's own files); use an ephemeral or tmpfs mount, a clone of a git URL, or run the instance on the docker backend", m.Mode, schema.BackendKubernetes)
	}
}

// kubernetesLimits refuses what the Kubernetes rendering does not carry:
// features that read or rewrite this machine's files while the instance
// runs, published host ports, the private Docker daemon's capabilities
// mode and engines.
func (c *instanceChecker) kubernetesLimits(inst *schema.Instance) {
	const where = `backend "kubernetes"`
	c.clonedCheckouts(inst)
	if len(inst.Integrations) > 0 {
		c.errorf([]any{"integrations"}, "integrations mount this machine's toolchains and caches, and %s runs the instance on a cluster node: remove integrations", where)
	}
	if inst.Recovery.Snapshot != "" && inst.Recovery.Snapshot != schema.SnapshotOff {
		c.errorf([]any{"recovery", "snapshot"}, "recovery snapshots are taken of this machine's paths, and %s mounts none: set snapshot: \"off\"", where)
	}
	if inst.Docker == schema.DockerPrivate && inst.DockerDaemon != nil && inst.DockerDaemon.Privilege == schema.DaemonCapabilities {
		c.errorf([]any{"dockerDaemon", "privilege"}, "privilege \"capabilities\" binds the host's /sys/fs/cgroup and sets a device cgroup rule, which %s cannot render: use privilege \"privileged\" (the daemon's Pod is privileged, in a namespace whose Pod Security level admits it)", where)
	}
	if len(inst.Network.Ports) > 0 {
		c.errorf([]any{"network", "ports"}, "%s publishes no host ports (a Pod is on a cluster node): remove ports, and reach the agent with jackin exec or kubectl port-forward", where)
	}
	if inst.Network.EgressNetwork != "" || inst.Network.UpstreamProxy != "" {
		c.errorf([]any{"network"}, "egressNetwork and upstreamProxy name Docker networks and hosts, and %s has neither: remove them", where)
	}
	if inst.Idle != nil {
		c.errorf([]any{"idle"}, "idle cleanup is not available with %s yet: it reads the state the agent publishes in its agent directory, which is on a cluster node; remove idle", where)
	}
}
