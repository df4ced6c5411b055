// Package contract computes the session contract of fleet instances: what
// one agent can reach (sandbox, filesystem, credentials, network, ports,
// resources), what applying it does on the host, how to recover, the
// residual risk and whether a stronger backend is called for. It is computed
// from the same resolved desired state the reconciler uses and performs no
// side effects; it renders as text and as a versioned JSON document.
package contract

import (
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// APIVersion and Kind identify the JSON document.
const (
	APIVersion   = "jackin.dev/v1alpha1"
	KindContract = "SessionContract"
)

// Section names, as used in Warning.Section and in the text headings.
const (
	SectionIdentity     = "identity"
	SectionSandbox      = "sandbox"
	SectionFilesystem   = "filesystem"
	SectionCredentials  = "credentials"
	SectionNetwork      = "network"
	SectionServicePorts = "servicePorts"
	SectionResources    = "resources"
	SectionHostEffects  = "hostEffects"
	SectionRecovery     = "recovery"
	SectionResidualRisk = "residualRisk"
	SectionTier         = "tier"
)

// Document is the output of `jackin explain -o json`: one document for the
// fleet, listing the contract of every instance explained.
//
// Stability: the JSON field names of Document and of every type it contains
// are a stable API under APIVersion. Fields may be added in any release; a
// field is never renamed, removed or given a different meaning without a new
// APIVersion. Every section is always present: an empty list is [], never
// null or absent. Consumers must ignore fields they do not know. The document
// never contains a secret value: env and build args are listed by key only.
type Document struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Fleet      string `json:"fleet"`
	// Sources are the manifest files the fleet was loaded from.
	Sources []string `json:"sources"`
	// Engine says whether the engine was observed, which decides whether host
	// effects are "planned"/"present" or "unknown".
	Engine    EngineStatus `json:"engine"`
	Instances []Contract   `json:"instances"`
}

// Engine observation states.
const (
	EngineObserved    = "observed"
	EngineUnreachable = "unreachable"
	EngineNotObserved = "not observed"
)

// EngineStatus is how the read-only observation of the engine went.
type EngineStatus struct {
	Status   string `json:"status"` // observed | unreachable | not observed
	Endpoint string `json:"endpoint,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Contract is the session contract of one instance. Its sections appear in
// this order in the text form.
type Contract struct {
	Instance     string       `json:"instance"`
	Identity     Identity     `json:"identity"`
	Sandbox      Sandbox      `json:"sandbox"`
	Filesystem   Filesystem   `json:"filesystem"`
	Credentials  Credentials  `json:"credentials"`
	Network      Network      `json:"network"`
	ServicePorts ServicePorts `json:"servicePorts"`
	Resources    Resources    `json:"resources"`
	HostEffects  HostEffects  `json:"hostEffects"`
	Recovery     Recovery     `json:"recovery"`
	ResidualRisk []Risk       `json:"residualRisk"`
	Tier         Tier         `json:"tier"`
	// Warnings collects every warning of every section, in section order.
	Warnings []Warning `json:"warnings"`

	access Access
	spec   reconciler.Spec // the canonical spec it was built from, for WriteCompact
}

// Access returns the access summary that Widenings compares.
func (c *Contract) Access() Access { return c.access }

// Warning is something the operator should look at before applying.
type Warning struct {
	Section string `json:"section"`
	Message string `json:"message"`
}

// Identity names the instance and what it runs.
type Identity struct {
	Fleet       string `json:"fleet"`
	Instance    string `json:"instance"`
	Description string `json:"description"`
	Role        Role   `json:"role"`
	Agent       string `json:"agent"`
	// Unattended is true for every agent runtime but the interactive shell.
	Unattended bool   `json:"unattended"`
	Backend    string `json:"backend"`
	// Command overrides the image's command; empty runs the image default.
	Command []string `json:"command"`
	State   string   `json:"state"`
	// Container is the agent container's name, jk-<fleet>-<instance>.
	Container string `json:"container"`
	SpecHash  string `json:"specHash"`
	// Supervisor is how the agent runs: under jackin's supervisor, PID 1
	// of the agent container.
	Supervisor Supervisor `json:"supervisor"`
}

// Supervisor is what jackin's supervisor changes in the agent container.
type Supervisor struct {
	// Binary is jackin's own executable, the container's PID 1, mounted
	// read-only from HostBinary.
	Binary     string `json:"binary"`
	HostBinary string `json:"hostBinary"`
	// Runs is what it starts on a terminal.
	Runs string `json:"runs"`
	// State is how the agent's state is learned.
	State string `json:"state"`
	// Hooks are the settings files it merges jackin's status hooks into
	// (inside the container; the user's own entries are kept).
	Hooks []string `json:"hooks"`
	// RuntimeHomes are the paths under HOME kept in HomeVolume across
	// recreates.
	RuntimeHomes []string `json:"runtimeHomes"`
	HomeVolume   string   `json:"homeVolume"`
	// StateDir is the host directory the supervisor publishes state in,
	// mounted read-write: the agent can write it too.
	StateDir string `json:"stateDir"`
	// Attach is how a terminal reaches the agent.
	Attach string `json:"attach"`
	// PromptTools are the fleet's operator tools that type into the
	// agent's terminal (jackin tool NAME INSTANCE, or their console key),
	// when the agent is idle or done.
	PromptTools []PromptTool `json:"promptTools,omitempty"`
	// Queue says, for an instance of the fleet's task queue, where its
	// prompts come from (the queue's sources).
	Queue string `json:"queue,omitempty"`
	// GitHub says, when the fleet declares github, what the agent's
	// issue and pull request tags make jackin ask GitHub, with which
	// token (its source, never its value).
	GitHub string `json:"github,omitempty"`
}

// PromptTool is an operator tool that types a prompt into the agent.
type PromptTool struct {
	Name   string `json:"name"`
	Key    string `json:"key,omitempty"`
	Prompt string `json:"prompt"`
}

// Role sources.
const (
	RoleImage = "image"
	RoleBuild = "build"
)

// Role is the image the agent runs.
type Role struct {
	Source string `json:"source"` // image | build
	// Image is the reference that runs: the manifest's reference, or for a
	// build the tag derived from the build context.
	Image string      `json:"image"`
	Build *ImageBuild `json:"build,omitempty"`
}

// ImageBuild is a local image build. Build arg values are not listed.
type ImageBuild struct {
	Context    string   `json:"context"`
	Dockerfile string   `json:"dockerfile"`
	ArgKeys    []string `json:"argKeys"`
	Tag        string   `json:"tag"`
}

// Sandbox is the backend's real boundary and the privileges inside it.
type Sandbox struct {
	Backend  string `json:"backend"`
	Boundary string `json:"boundary"`
	// SharedKernel is true when the agent runs on the host's kernel.
	SharedKernel         bool         `json:"sharedKernel"`
	User                 string       `json:"user"`
	UserNamespace        string       `json:"userNamespace"`
	Privileged           bool         `json:"privileged"`
	Capabilities         Capabilities `json:"capabilities"`
	NoNewPrivileges      bool         `json:"noNewPrivileges"`
	Seccomp              string       `json:"seccomp"`
	AppArmor             string       `json:"apparmor"`
	HostNamespaces       string       `json:"hostNamespaces"`
	HostDockerSocket     string       `json:"hostDockerSocket"`
	HostDockerSocketRule string       `json:"hostDockerSocketRule"`
	// DockerAccess is the manifest's docker field ("none").
	DockerAccess       string `json:"dockerAccess"`
	DockerAccessDetail string `json:"dockerAccessDetail"`
	// DockerDaemon (docker "private" only) is the private daemon: what its
	// sidecar holds, how the agent reaches it, where its certificates and
	// data live, and whether its containers are under the egress policy.
	DockerDaemon *DockerDaemon `json:"dockerDaemon,omitempty"`
	// Machine (backend orbstack-isolated only) is the instance's OrbStack
	// isolated machine: shares, inner Docker, host network, SSH agent.
	Machine *Machine `json:"machine,omitempty"`
	// Engine (an instance placed on a declared Docker engine only) is the
	// engine it runs on and who on that engine's host sees the agent.
	Engine *Engine `json:"engine,omitempty"`
	// Cluster (backend kubernetes only) is the instance's namespace and
	// what the cluster enforces.
	Cluster *Cluster `json:"cluster,omitempty"`
	// Profile is the hardening profile ("standard": the engine's defaults).
	Profile string `json:"profile"`
	// Sources says where each hardening value and limit comes from
	// ("manifest" or "profile NAME"), by manifest path (security.user,
	// resources.memory, ...); a value neither sets is the engine's default.
	Sources map[string]string `json:"sources,omitempty"`
}

// DockerDaemon describes an instance's private Docker daemon.
type DockerDaemon struct {
	Sidecar string `json:"sidecar"`
	Image   string `json:"image"`
	// Endpoint is what the agent's DOCKER_HOST names, and how it is secured.
	Endpoint string `json:"endpoint"`
	// AgentEnv are the variables jackin sets in the agent for it.
	AgentEnv []string `json:"agentEnv"`
	// Privilege says exactly what the sidecar holds.
	Privilege    string   `json:"privilege"`
	Capabilities []string `json:"capabilities"`
	// Network is where the sidecar sits.
	Network string `json:"network"`
	// Certificates says where the CA, keys and certificates live.
	Certificates string `json:"certificates"`
	// ClientKey says who can read the agent's client key.
	ClientKey string `json:"clientKey"`
	// Data is the volume holding images, containers and volumes of the
	// daemon, and its lifecycle.
	Data string `json:"data"`
	// InnerEgress says what the daemon's containers can reach.
	InnerEgress        string `json:"innerEgress"`
	InnerEgressCovered bool   `json:"innerEgressCovered"`
	// Limits says whether the instance's limits cover the daemon's containers.
	Limits string `json:"limits"`
}

// Capabilities are the Linux capabilities the agent's processes hold.
type Capabilities struct {
	Set     string   `json:"set"` // "engine default"
	Added   []string `json:"added"`
	Dropped []string `json:"dropped"`
	// Effective lists the resulting set (without the CAP_ prefix).
	Effective []string `json:"effective"`
}

// Filesystem is everything the agent can read and write.
type Filesystem struct {
	RootFS RootFS  `json:"rootfs"`
	Mounts []Mount `json:"mounts"`
	// SensitivePaths lists bind mounts that expose the home directory or a
	// well-known credential location (see SensitivePathFindings).
	SensitivePaths []SensitivePath `json:"sensitivePaths"`
	// Integrations are the stack integrations the manifest names or a
	// mounted repository recommends, active or not, with their source and
	// what each adds (their mounts are in Mounts when active).
	Integrations []schema.IntegrationUse `json:"integrations,omitempty"`
}

// RootFS is the container's own root filesystem.
type RootFS struct {
	Writable    bool   `json:"writable"`
	Description string `json:"description"`
}

// Mount types.
const (
	MountBind   = "bind"
	MountTmpfs  = "tmpfs"
	MountVolume = "volume"
)

// Mount is one mount as the engine creates it.
type Mount struct {
	Type        string `json:"type"`   // bind | tmpfs
	Source      string `json:"source"` // host path; empty for tmpfs
	Destination string `json:"destination"`
	Mode        string `json:"mode"`   // rw | ro | tmpfs
	Access      string `json:"access"` // read-write | read-only
	// EnforcedBy says what keeps the access as stated.
	EnforcedBy string `json:"enforcedBy"`
	// Size and SizeBytes apply to tmpfs; 0 is the engine default.
	Size        string `json:"size,omitempty"`
	SizeBytes   int64  `json:"sizeBytes"`
	Persistence string `json:"persistence"`
	// Isolation describes a worktree, clone or ephemeral mount: what jackin
	// makes for it on the host, and when that is removed.
	Isolation *Isolation `json:"isolation,omitempty"`
}

// Isolation is the host side of a worktree, clone or ephemeral mount.
type Isolation struct {
	Mode string `json:"mode"` // worktree | clone | ephemeral
	// HostPath is the checkout on the host (worktree, clone), or the
	// volume name (ephemeral).
	HostPath string `json:"hostPath"`
	// Source is the repository checked out, or the directory an ephemeral
	// volume is seeded from ("" for an empty volume).
	Source string `json:"source,omitempty"`
	// ScratchBranch is the branch the agent works on (worktree, clone).
	ScratchBranch string `json:"scratchBranch,omitempty"`
	// StartsFrom is the ref the branch is made from.
	StartsFrom string `json:"startsFrom,omitempty"`
	// GitMetadata lists what a worktree writes in the source repository.
	GitMetadata []string `json:"gitMetadata,omitempty"`
	Persists    string   `json:"persists"`
	RemovedWhen string   `json:"removedWhen"`
}

// Severities of a sensitive-path finding.
const (
	SeverityWarning = "warning"
	SeverityError   = "error"
)

// SensitivePath is a bind mount that exposes sensitive host paths.
type SensitivePath struct {
	Source      string   `json:"source"`
	Destination string   `json:"destination"`
	Mode        string   `json:"mode"`
	Findings    []string `json:"findings"`
	Severity    string   `json:"severity"`
	// Allowed is true when the mount sets allowSensitive: validation
	// refuses such a mount otherwise, so a loaded manifest always has it.
	Allowed bool `json:"allowed"`
}

// Credentials are the secrets delivered to the agent.
type Credentials struct {
	// Delivered lists each credential of the manifest, by name.
	Delivered []Credential `json:"delivered"`
	Summary   string       `json:"summary"`
	// EnvKeys are the environment variable names set; values are never listed.
	EnvKeys []string `json:"envKeys"`
}

// Credential is one delivered secret: its name, where it comes from, how
// it is delivered and exactly where its value is visible; never its value
// (nor a command's output, nor a digest).
type Credential struct {
	Name string `json:"name"`
	// Delivery is "file", "env" or "proxy".
	Delivery string `json:"delivery"`
	// Source is the source kind: "env", "file", "command", "op" or
	// "literal"; SourceDetail names it (the host variable, the file, the
	// command's argv, the 1Password reference), never a value.
	Source       string `json:"source"`
	SourceDetail string `json:"sourceDetail"`
	// Target is the container path (file), the variable (env), or the
	// host whose requests get the header (proxy).
	Target string `json:"target"`
	// InContainer is where the agent can read the value: "file", "env" or
	// "nowhere".
	InContainer string `json:"inContainer"`
	// VisibleIn lists every place the value is, inside and outside the
	// container.
	VisibleIn []string `json:"visibleIn"`
	// Rotation says what a changed source value does.
	Rotation string `json:"rotation"`
	// Header (proxy) is the header set on every request to Target, and
	// Placeholder the env var the agent gets instead of the value.
	Header      string `json:"header,omitempty"`
	Placeholder string `json:"placeholder,omitempty"`
}

// Network is what the agent can reach over the network.
type Network struct {
	Egress           string `json:"egress"`
	EgressMeaning    string `json:"egressMeaning"`
	EgressRestricted bool   `json:"egressRestricted"`
	EnforcementPoint string `json:"enforcementPoint"`
	InstanceNetwork  string `json:"instanceNetwork"`
	HostReachable    bool   `json:"hostReachable"`
	HostReachableVia string `json:"hostReachableVia"`
	OtherInstances   string `json:"otherInstances"`
	DNS              string `json:"dns"`
	// Allowlist (egress "allowlist") is each entry and what it expands to.
	Allowlist []AllowEntry `json:"allowlist,omitempty"`
	// EgressNetwork and UpstreamProxy (egress "allowlist") are the proxy's
	// outbound side.
	EgressNetwork string `json:"egressNetwork,omitempty"`
	UpstreamProxy string `json:"upstreamProxy,omitempty"`
}

// AllowEntry is one allowlist entry as written and the rules it expands to
// (host or host:port; a rule without a port allows 80 and 443).
type AllowEntry struct {
	Entry   string   `json:"entry"`
	Expands []string `json:"expands"`
}

// ServicePorts are the container ports published on the host.
type ServicePorts struct {
	Ports []Port `json:"ports"`
}

// Port is one published port.
type Port struct {
	HostAddress string `json:"hostAddress"`
	// HostPort is 0 when the engine assigns one (EngineAssigned).
	HostPort       int    `json:"hostPort"`
	EngineAssigned bool   `json:"engineAssigned"`
	ContainerPort  int    `json:"containerPort"`
	Protocol       string `json:"protocol"`
	// AllInterfaces is true for 0.0.0.0 and ::: reachable from other machines.
	AllInterfaces bool   `json:"allInterfaces"`
	Exposure      string `json:"exposure"`
	// PublishedBy says who listens on the host side: empty for the
	// engine publishing the agent's port (egress "open"); in "allowlist"
	// and "none" the egress sidecar, relaying to the agent.
	PublishedBy string `json:"publishedBy,omitempty"`
}

// Resources are the instance's limits.
type Resources struct {
	Memory            Quantity `json:"memory"`
	MemoryReservation Quantity `json:"memoryReservation"`
	CPUs              Quantity `json:"cpus"`
	Pids              Quantity `json:"pids"`
	// Nofile is the open-files limit (soft = hard); Unlimited means the
	// engine's default, inherited from the Docker daemon.
	Nofile Quantity `json:"nofile"`
}

// Quantity is one limit. Value is in Unit; Unlimited means no limit is set
// (Value is then 0).
type Quantity struct {
	Text      string `json:"text"`
	Value     int64  `json:"value"`
	Unit      string `json:"unit"` // bytes | nanoCPUs | processes | files
	Unlimited bool   `json:"unlimited"`
	// Source is where the limit comes from: "manifest" or "profile NAME";
	// empty when it is not set.
	Source string `json:"source,omitempty"`
}

// HostEffects are what `jackin apply` would create on the host.
type HostEffects struct {
	// Presence says how Status was decided: from an observation of the
	// engine and the state dir, or "unknown (engine unreachable: ...)".
	Presence string       `json:"presence"`
	Effects  []HostEffect `json:"effects"`
}

// Host effect kinds.
const (
	EffectImage     = "image"
	EffectNetwork   = "network"
	EffectContainer = "container"
	EffectPort      = "port"
	EffectStateDir  = "state"
	EffectWorktree  = "worktree"
	EffectClone     = "clone"
	EffectGitMeta   = "git-metadata"
	EffectVolume    = "volume"
)

// Host effect statuses.
const (
	StatusPlanned = "planned"
	StatusPresent = "present"
	StatusUnknown = "unknown"
)

// What is left of a host effect after `jackin delete`.
const (
	AfterDeletePersists = "persists"
	AfterDeleteRemoved  = "removed"
	AfterDeleteReleased = "released"
	// AfterDeleteKeptIfWork: removed when its work is clean and pushed (or
	// merged), else kept as preserved-dirty or preserved-unpushed until
	// jackin delete --purge.
	AfterDeleteKeptIfWork = "removed-unless-unpushed-work"
)

// HostEffect is one thing apply creates on the host.
type HostEffect struct {
	Kind   string `json:"kind"` // image | network | container | port | state
	Name   string `json:"name"`
	Effect string `json:"effect"`
	Status string `json:"status"` // planned | present | unknown
	// Detail qualifies Status (such as "spec changed: apply recreates it").
	Detail      string `json:"detail,omitempty"`
	AfterDelete string `json:"afterDelete"` // persists | removed | released
}

// Recovery is what survives a recreate and a delete, and how to restore.
type Recovery struct {
	SurvivesRecreate []string `json:"survivesRecreate"`
	LostOnRecreate   []string `json:"lostOnRecreate"`
	SurvivesDelete   []string `json:"survivesDelete"`
	LostOnDelete     []string `json:"lostOnDelete"`
	Restore          string   `json:"restore"`
	PreservedWork    string   `json:"preservedWork"`
	// Snapshots is the snapshot policy and what it covers.
	Snapshots Snapshots `json:"snapshots"`
}

// Snapshots says what jackin snapshots of the instance, when, where the
// repository is and its size, and what snapshots do not cover.
type Snapshots struct {
	// Policy is recovery.snapshot: off, before-start or before-apply.
	Policy string `json:"policy"`
	When   string `json:"when"`
	Keep   int    `json:"keep"`
	// Covered are the host directories a snapshot holds; Excludes the
	// paths left out of them.
	Covered  []string `json:"covered"`
	Excludes []string `json:"excludes"`
	// Repository is the fleet's snapshot repository; RepositoryBytes its
	// size on disk (0 when it does not exist yet).
	Repository      string   `json:"repository"`
	RepositoryBytes int64    `json:"repositoryBytes"`
	NotCovered      []string `json:"notCovered"`
	Commands        []string `json:"commands"`
}

// Risk is one residual risk, in plain words. ID is stable (see the Risk*
// constants); Statement is for people.
type Risk struct {
	ID        string `json:"id"`
	Statement string `json:"statement"`
}

// Residual risk IDs.
const (
	RiskSharedKernel    = "shared-kernel"
	RiskRootInContainer = "root-in-container"
	RiskOpenEgress      = "open-egress"
	RiskWritableMounts  = "writable-mounts"
	RiskSensitiveMounts = "sensitive-mounts"
	RiskNoLimits        = "no-resource-limits"
	RiskPublicPorts     = "public-ports"
	RiskEnvValues       = "env-values"
	RiskDNSChannel      = "dns-channel"
	RiskAllowedHosts    = "data-to-allowed-hosts"
	RiskGitDirWritable  = "source-git-dir-writable"
	RiskPrivateDaemon   = "private-docker-daemon"
)

// Tier recommendations.
const (
	TierAdequate = "adequate"
	TierStronger = "stronger"
)

// Tier says whether the instance's needs call for a stronger backend.
type Tier struct {
	Current        string   `json:"current"`
	Recommendation string   `json:"recommendation"` // adequate | stronger
	Recommended    string   `json:"recommended"`
	Reasons        []string `json:"reasons"`
	Summary        string   `json:"summary"`
}
