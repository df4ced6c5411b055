// Package reconciler turns a validated fleet into desired state, diffs it
// against what a driver observes, plans the actions that converge the two (a
// pure function), and executes plans through a driver.
package reconciler

import (
	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/egress"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/workspace"
)

// SpecFormatVersion is part of every spec hash. Bump it only when the
// canonical spec's meaning changes; a bump recreates every instance.
const SpecFormatVersion = 2

// SupervisorCopyMachine is Spec.SupervisorCopy of an instance whose
// machine has a copy of the supervisor's executable of its own.
const SupervisorCopyMachine = "machine"

// Spec is jackin's own canonical description of an instance, the input of
// the spec hash. It never embeds a third-party type, so a library upgrade
// cannot change hashes. Fields that do not require a recreate (state,
// description) are not in it. Env values are in it but never printed: diffs
// name keys only.
type Spec struct {
	FormatVersion int    `json:"formatVersion"`
	Backend       string `json:"backend"`
	// Engine is the declared engine the instance runs on; omitempty keeps
	// the hash of every instance on the local engine as it was.
	Engine string `json:"engine,omitempty"`
	// OrbStack is the machine's settings (backend orbstack-isolated
	// only; absent otherwise, so other instances' hashes are unchanged).
	OrbStack *schema.OrbStack `json:"orbstack,omitempty"`
	// SupervisorCopy is "machine" where the supervisor's executable is a
	// copy of the instance's machine alone (orbstack-isolated; absent
	// otherwise): machines made before shared the common one.
	SupervisorCopy string            `json:"supervisorCopy,omitempty"`
	Image          string            `json:"image"`
	Agent          string            `json:"agent"`
	Command        []string          `json:"command"`
	Env            map[string]string `json:"env"`
	Labels         map[string]string `json:"labels"`
	Mounts         []SpecMount       `json:"mounts"`
	Resources      SpecResources     `json:"resources"`
	Network        SpecNetwork       `json:"network"`
	Docker         string            `json:"docker"`
	// Sandbox is the hardening a profile or the manifest's security fields
	// set; nil is the engine's defaults (profile "standard"), which keeps
	// the hash of every instance without hardening as it was.
	Sandbox *SpecSandbox `json:"sandbox,omitempty"`
	// DockerDaemon (docker "private" only) is the daemon sidecar's image
	// and privilege; omitempty keeps every other hash as it was.
	DockerDaemon *SpecDockerDaemon `json:"dockerDaemon,omitempty"`
	// Credentials are the instance's credential deliveries, sorted by
	// name, with a keyed digest (never the value) for env delivery;
	// omitempty keeps the hash of every instance without them as it was.
	Credentials []SpecCredential `json:"credentials,omitempty"`
	// Run is what the agent's supervisor runs.
	Run SpecRun `json:"run"`
	// Integrations are the active stack integrations, sorted: a name, or
	// "name (approved PATH)" for a repository's approved recommendation.
	// omitempty keeps the hash of every instance without them as it was.
	Integrations []string `json:"integrations,omitempty"`
}

// SpecRun is what the supervisor runs, in canonical form.
type SpecRun struct {
	// Argv is the runtime's command with the instance's args (for shell,
	// the instance's command).
	Argv []string `json:"argv"`
	// ImageCommand: shell with no command runs the image's entrypoint and
	// CMD with Argv (the args) appended; with neither in the image, the
	// user's login shell.
	ImageCommand bool `json:"imageCommand,omitempty"`
	// Homes are the runtime's home paths kept in the runtime-home volume.
	Homes       []string `json:"homes"`
	StateSource string   `json:"stateSource"`
}

// SpecDockerDaemon is the private daemon's configuration in canonical form.
type SpecDockerDaemon struct {
	Image     string `json:"image"`
	Privilege string `json:"privilege"`
}

// SpecSandbox is the agent container's hardening in canonical form.
type SpecSandbox struct {
	User            string   `json:"user,omitempty"`
	CapDrop         []string `json:"capDrop,omitempty"`
	CapAdd          []string `json:"capAdd,omitempty"`
	NoNewPrivileges bool     `json:"noNewPrivileges,omitempty"`
	ReadOnlyRoot    bool     `json:"readOnlyRoot,omitempty"`
	Tmpfs           []string `json:"tmpfs,omitempty"`
}

// SpecMount is a mount in canonical form.
type SpecMount struct {
	Src       string `json:"src"`
	Dst       string `json:"dst"`
	Mode      string `json:"mode"`
	SizeBytes int64  `json:"sizeBytes"`
	// Ref is a worktree or clone mount's start ref. omitempty keeps the
	// encoding, so the hash, of every other mount as it was.
	Ref string `json:"ref,omitempty"`
}

// SpecResources are limits in canonical units.
type SpecResources struct {
	MemoryBytes            int64 `json:"memoryBytes"`
	MemoryReservationBytes int64 `json:"memoryReservationBytes"`
	NanoCPUs               int64 `json:"nanoCPUs"`
	Pids                   int64 `json:"pids"`
	// Nofile is the open-files limit (soft = hard); omitempty keeps the
	// hash of every instance without one as it was.
	Nofile int64 `json:"nofile,omitempty"`
}

// SpecNetwork is the network posture in canonical form.
//
// The allowlist is not in it: a change of allow reloads the proxy's policy
// file, and recreates nothing. egressNetwork and upstreamProxy are (the
// proxy container is made with them); omitempty keeps the hash of every
// instance without them as it was.
type SpecNetwork struct {
	Egress        string     `json:"egress"`
	EgressNetwork string     `json:"egressNetwork,omitempty"`
	UpstreamProxy string     `json:"upstreamProxy,omitempty"`
	Ports         []SpecPort `json:"ports"`
}

// SpecPort is a published port in canonical form.
type SpecPort struct {
	Container int    `json:"container"`
	Host      int    `json:"host"`
	Address   string `json:"address"`
	Protocol  string `json:"protocol"`
}

// DesiredInstance is one instance as the manifest wants it.
type DesiredInstance struct {
	Name     string
	Instance schema.Instance
	Spec     Spec
	Hash     string // hex sha256 of the canonical Spec encoding
	// Running is the desired lifecycle state.
	Running bool
	// Image says where the agent image comes from.
	Image drivers.ImageSpec
	// Resources in creation order (network, volumes, container).
	Resources []drivers.Resource
	// Checkouts are the worktrees and clones the instance's mounts need,
	// made on the host before its container is created.
	Checkouts []workspace.Want
	// Policy (egress "allowlist" only) is the expanded allowlist the
	// instance's proxy enforces, written to PolicyFile by apply and watch.
	Policy     *egress.Policy
	PolicyFile string
	// DockerTLS (docker "private" only) is the daemon's certificates,
	// written on the host before the instance's containers are created.
	DockerTLS *DockerTLS
	// Credentials (nil without any) says where the instance's credentials
	// go on the host, and once resolved (ResolveCredentials) holds their
	// values, in memory only.
	Credentials *CredentialPlan
	// CredentialErr is why a credential could not be read: the instance's
	// action fails with it and changes nothing (fail closed).
	CredentialErr error
	// Agent is what the agent container needs on the host before it is
	// created or started (the supervisor's binary, the agent directory).
	Agent *AgentPrep
}

// Desired is a fleet's desired state.
type Desired struct {
	Fleet string
	// StateDir is the state directory the desired state was rendered for.
	StateDir  string
	Instances []DesiredInstance // sorted by name
}

// ActionType is what the planner decided for one instance.
type ActionType string

const (
	ActionCreate   ActionType = "create"
	ActionRecreate ActionType = "recreate"
	ActionStart    ActionType = "start"
	ActionStop     ActionType = "stop"
	ActionDelete   ActionType = "delete"
	ActionNoop     ActionType = "noop"
	// ActionUnreachable is an instance whose engine did not answer: it is
	// reported (with Err set) and left alone.
	ActionUnreachable ActionType = "unreachable"
)

// Action is the plan for one instance.
type Action struct {
	Instance string
	Type     ActionType
	// Backend is the backend the action runs on (BuildPlanAll sets it;
	// empty means the driver Execute is given).
	Backend string
	// Engine is the declared engine the action runs on ("" the local one).
	Engine  string
	Reasons []string
	// Desired is nil for delete.
	Desired *DesiredInstance
	// Observed lists the instance's objects found on the backend.
	Observed []drivers.ObservedResource
	// Missing lists the desired resources the action creates, in creation
	// order: for create those not observed; for recreate the container
	// (always replaced) plus the network when it is missing or duplicated.
	Missing []drivers.Resource
	// Pruned is false for a delete kept back by --prune=false: reported, not executed.
	Pruned bool
	// Purge, on a delete (jackin delete --purge), removes the volumes the
	// instance cloned its checkouts into as well (a Pod's claims, volumes
	// on a remote engine): without it they are kept, as they can hold
	// unpushed work.
	Purge bool
	// Widens lists how a create or recreate widens the instance's access
	// compared with what was last applied. The planner leaves it empty: the
	// contract package fills it (contract.MarkWidenings), as the reconciler
	// cannot depend on the contract.
	Widens []Widening
	// IdleStopped marks the noop of an instance idle cleanup stopped: its
	// containers are stopped on purpose (PlanOptions.IdleStopped).
	IdleStopped bool
	// Err, when set, fails the action before it changes anything (a
	// credential that cannot be read): the planner sets it, Execute
	// reports it.
	Err error
}

// Mutates reports whether executing the action changes the backend.
func (a Action) Mutates() bool {
	if a.Err != nil {
		return true
	}
	if a.Type == ActionNoop {
		return false
	}
	if a.Type == ActionDelete && !a.Pruned {
		return false
	}
	return true
}

// Plan is the ordered list of actions for a fleet (sorted by instance name).
type Plan struct {
	Fleet   string
	Actions []Action
}

// LastApplied is the spec last applied to each instance, from the store.
type LastApplied map[string]Spec
