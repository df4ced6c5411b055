// Package schema defines the fleet manifest: the CUE schema embedded in the
// binary (fleet.cue), the Go types a validated manifest decodes into, and the
// semantic and policy checks that CUE alone cannot express.
package schema

import (
	"time"

	"github.com/jackin-dev/jackin/hostpath"
	"github.com/jackin-dev/jackin/runtimes"
)

// APIVersion and Kind identify a fleet manifest document.
const (
	APIVersion = "jackin.dev/v1alpha1"
	KindFleet  = "Fleet"
)

// Agent runtimes an instance can run: the names of the runtimes table
// (package runtimes), which says what jackin knows about each.
const (
	AgentClaude   = runtimes.Claude
	AgentCodex    = runtimes.Codex
	AgentAmp      = runtimes.Amp
	AgentOpenCode = runtimes.OpenCode
	AgentGemini   = runtimes.Gemini
	AgentShell    = runtimes.Shell
)

// Desired lifecycle states of an instance.
const (
	StateRunning = "running"
	StateStopped = "stopped"
)

// Mount modes.
const (
	MountRW        = "rw"
	MountRO        = "ro"
	MountTmpfs     = "tmpfs"
	MountWorktree  = "worktree"  // a git worktree of src under the state dir
	MountClone     = "clone"     // a local clone of src under the state dir
	MountEphemeral = "ephemeral" // a named volume owned by the instance
)

// IsCheckout reports whether a mount mode makes an isolated checkout
// (worktree or clone).
func IsCheckout(mode string) bool { return mode == MountWorktree || mode == MountClone }

// Egress modes.
const (
	// EgressOpen is the engine's bridge network: unrestricted.
	EgressOpen = "open"
	// EgressNone is no network but loopback.
	EgressNone = "none"
	// EgressAllowlist is an internal network whose only way out is a proxy
	// container enforcing the instance's allowlist.
	EgressAllowlist = "allowlist"
)

// Docker access modes.
const (
	// DockerNone: no Docker daemon is reachable from the agent.
	DockerNone = "none"
	// DockerPrivate: a Docker daemon of the instance's own in a sidecar,
	// reached over TLS with a client certificate jackin issues.
	DockerPrivate = "private"
)

// Privilege modes of the private Docker daemon's sidecar.
const (
	// DaemonPrivileged runs the sidecar --privileged (ordinary hosts).
	DaemonPrivileged = "privileged"
	// DaemonCapabilities grants DaemonCapabilitySet with seccomp and
	// AppArmor unconfined, the device cgroup rule "a *:* rwm" and the
	// host's /sys/fs/cgroup read-write, keeping /proc/sys read-only and the
	// engine's masked paths: for hosts whose engine refuses --privileged.
	// It is narrower than --privileged, not safe: SYS_ADMIN with the
	// host's cgroup v1 hierarchy writable still reaches host root.
	DaemonCapabilities = "capabilities"
)

// DefaultDaemonImage is the private daemon's image unless dockerDaemon.image says otherwise.
const DefaultDaemonImage = "docker:dind"

// DaemonCapabilitySet is what dockerDaemon.privilege "capabilities"
// grants: what dockerd needs to run containers (mounts, networks and
// iptables, device nodes, the default set it hands its own containers),
// without SYS_MODULE, SYS_RAWIO, SYS_TIME, SYS_BOOT, SYS_RESOURCE,
// MAC_ADMIN and the other capabilities --privileged adds.
var DaemonCapabilitySet = []string{
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER",
	"KILL", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "SETFCAP", "SETGID",
	"SETPCAP", "SETUID", "SYS_ADMIN", "SYS_CHROOT", "SYS_NICE", "SYS_PTRACE",
}

// DockerDaemon configures the private Docker daemon (docker "private").
type DockerDaemon struct {
	Image     string `json:"image"`
	Privilege string `json:"privilege"`
}

// Backends.
const (
	BackendDocker = "docker"
	// BackendOrbStack is an OrbStack isolated machine per instance.
	BackendOrbStack = "orbstack-isolated"
)

// OrbStack configures an instance's OrbStack isolated machine (backend
// BackendOrbStack only; defaults filled in).
type OrbStack struct {
	// Distro is DISTRO or DISTRO:VERSION (DefaultOrbDistro).
	Distro string `json:"distro"`
	// BlockHostNetwork blocks the Mac and other machines (default true).
	BlockHostNetwork bool `json:"blockHostNetwork"`
	// SSHAgent is "off" (default) or "on".
	SSHAgent string `json:"sshAgent"`
}

// DefaultOrbDistro is the machine image when orbstack.distro is not given.
const DefaultOrbDistro = "debian:bookworm"

// orbstack.sshAgent values: forwarding the Mac's SSH agent is opt-in.
const (
	OrbSSHAgentOff = "off"
	OrbSSHAgentOn  = "on"
)

// Fleet is a validated, resolved manifest: defaults merged into every
// instance, paths absolute, sizes still as written (see Resources).
type Fleet struct {
	APIVersion string              `json:"apiVersion"`
	Kind       string              `json:"kind"`
	Name       string              `json:"name"`
	Instances  map[string]Instance `json:"instances"`
	// GitHub is asked for the state of the agents' issue and pull
	// request links; nil when the fleet declares none.
	GitHub *GitHub `json:"github,omitempty"`
	// Tools are the operator's tools, by name; Handlers open a checkout
	// or a link.
	Tools    map[string]Tool `json:"tools,omitempty"`
	Handlers Handlers        `json:"handlers,omitzero"`
	// Sources lists the files the fleet was loaded from ("-" for stdin).
	Sources []string `json:"sources,omitempty"`
	// StateDir is jackin's state directory, where worktree and clone
	// checkouts live. Commands set it; empty means the default
	// ($JACKIN_HOME or ~/.local/state/jackin).
	StateDir string `json:"-"`
	// Pins are the identities of the host paths the fleet names (mount
	// sources, worktree git directories), by path, as validated: every
	// component's device and inode. A container is never started with a
	// source that no longer matches its pin.
	Pins map[string]*hostpath.Pin `json:"-"`
	// Runtimes are the agent runtimes the fleet declares, by name.
	Runtimes map[string]runtimes.Runtime `json:"runtimes,omitempty"`
	// Engines are the Docker engines the fleet declares besides the
	// local one, by name (see Instance.Engine).
	Engines map[string]Engine `json:"engines,omitempty"`
	// Queue is the fleet's task queue; nil when it declares none.
	Queue *Queue `json:"queue,omitempty"`
}

// Engine is a Docker engine other than the local one.
type Engine struct {
	// Name is the key under engines.
	Name string `json:"name"`
	// Host is ssh://[user@]host[:port], tcp://host:port or unix:///path.
	Host string `json:"host"`
	// TLS (tcp:// only, required there) are the client's certificate
	// files on the operator's machine, absolute paths.
	TLS *EngineTLS `json:"tls,omitempty"`
}

// EngineTLS are the files of a tcp:// engine's mutual TLS.
type EngineTLS struct {
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// Runtime is the instance's agent runtime: the built-in one Agent names,
// or the fleet's own declaration of it.
func (inst Instance) Runtime() runtimes.Runtime {
	if inst.CustomRuntime != nil {
		return *inst.CustomRuntime
	}
	if rt, ok := runtimes.Get(inst.Agent); ok {
		return rt
	}
	return runtimes.Runtime{Name: inst.Agent, State: runtimes.StateTerminal}
}

// AgentCommand is what the supervisor runs: the runtime's command (or,
// for shell, the instance's command) with Args appended. imageCommand
// says shell has no command: the image's own entrypoint and CMD run, with
// Args appended (an image with neither runs the user's login shell).
func (inst Instance) AgentCommand() (argv []string, imageCommand bool) {
	rt := inst.Runtime()
	base := rt.Command
	if inst.Agent == AgentShell || inst.Agent == "" {
		base = inst.Command
	}
	if len(base) == 0 {
		return append([]string{}, inst.Args...), true
	}
	return append(append([]string{}, base...), inst.Args...), false
}

// Instance is one agent instance after defaults are applied.
type Instance struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Backend     string `json:"backend"`
	// OrbStack is set (defaults filled in) when Backend is BackendOrbStack.
	OrbStack *OrbStack `json:"orbstack,omitempty"`
	// Kubernetes is set when Backend is BackendKubernetes.
	Kubernetes *Kubernetes `json:"kubernetes,omitempty"`
	// Engine names the fleet engine the instance runs on ("" is the local
	// engine); EngineSpec is that engine (set by the loader).
	Engine     string   `json:"engine,omitempty"`
	EngineSpec *Engine  `json:"-"`
	Role       Role     `json:"role"`
	Agent      string   `json:"agent"`
	Command    []string `json:"command,omitempty"`
	// Args are appended to the runtime's command.
	Args []string `json:"args,omitempty"`
	// CustomRuntime is the fleet's declaration of Agent when Agent is not
	// a built-in runtime.
	CustomRuntime *runtimes.Runtime `json:"customRuntime,omitempty"`
	State         string            `json:"state"`
	Env           map[string]string `json:"env,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Mounts        []Mount           `json:"mounts,omitempty"`
	Resources     Resources         `json:"resources"`
	Network       Network           `json:"network"`
	Docker        string            `json:"docker"`
	// DockerDaemon is set (defaults filled in) when Docker is DockerPrivate.
	DockerDaemon *DockerDaemon `json:"dockerDaemon,omitempty"`
	// Profile is the hardening profile (ProfileStandard by default).
	Profile string `json:"profile"`
	// Sandbox is the effective sandbox: the profile's, with the
	// manifest's security fields over it.
	Sandbox Sandbox `json:"sandbox"`
	// Sources says where each effective hardening value and limit comes
	// from: SourceManifest or SourceProfile(name). Keys are manifest
	// paths (resources.memory, security.user, ...); a value neither sets
	// is absent (the engine's default).
	Sources map[string]string `json:"sources,omitempty"`
	// Credentials are the secrets delivered to the agent, by name. Only
	// where each comes from and how it is delivered: values are read at
	// apply time, never kept here.
	Credentials map[string]Credential `json:"credentials,omitempty"`
	// Recovery is the snapshot policy as written (zero: the defaults;
	// see Recovery.Policy and Recovery.KeepCount).
	Recovery Recovery `json:"recovery,omitzero"`
	// Integrations are the built-in stack integrations the manifest names.
	Integrations []string `json:"integrations,omitempty"`
	// IntegrationUses (set by the loader) are the integrations named by
	// the manifest or recommended by a repository the instance mounts,
	// active or not, with what each adds; the active ones' mounts and env
	// are already in Mounts and Env.
	IntegrationUses []IntegrationUse `json:"integrationUses,omitempty"`
	// SnapshotExcludes (set by the loader from active integrations) are
	// paths snapshots leave out and restores leave alone.
	SnapshotExcludes []string `json:"snapshotExcludes,omitempty"`
	// Idle is the idle cleanup policy (nil: none). It is not part of the
	// spec hash: changing it recreates nothing.
	Idle *Idle `json:"idle,omitempty"`
}

// Idle cleanup actions (idle.action).
const (
	// IdleStop stops the instance's containers; it starts again when a
	// task is dispatched to it or the operator attaches.
	IdleStop = "stop"
	// IdleExec runs Idle.Exec in the agent container, once per idle period.
	IdleExec = "exec"
)

// Idle is what jackin watch does with an agent that has been idle or done
// for After, with no task in flight and no attached client.
type Idle struct {
	// After is idle.after, parsed; always positive.
	After  time.Duration `json:"after"`
	Action string        `json:"action"`
	// Exec (IdleExec only) is the command run in the agent container,
	// without a shell.
	Exec []string `json:"exec,omitempty"`
}

// IntegrationUse is one stack integration of an instance, as found.
type IntegrationUse struct {
	Name string `json:"name"`
	// Source is "manifest", or the recommendation file's path.
	Source string `json:"source"`
	// SHA256 is the recommendation file's digest (a recommendation only).
	SHA256 string `json:"sha256,omitempty"`
	// Active says it applies; Inactive says why not (not approved, the
	// file changed since it was approved).
	Active   bool   `json:"active"`
	Inactive string `json:"inactive,omitempty"`
	// Adds are what it adds, one line each (read-only mounts, cache
	// volumes, env names, snapshot excludes); Warnings its warnings.
	Adds     []string `json:"adds,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Snapshot policies (recovery.snapshot).
const (
	SnapshotOff         = "off"
	SnapshotBeforeStart = "before-start"
	SnapshotBeforeApply = "before-apply"
)

// DefaultSnapshotKeep is how many snapshots an instance keeps unless
// recovery.keep says otherwise.
const DefaultSnapshotKeep = 10

// Recovery is an instance's snapshot policy.
type Recovery struct {
	Snapshot string `json:"snapshot,omitempty"`
	Keep     int    `json:"keep,omitempty"`
}

// Policy is recovery.snapshot, SnapshotOff when unset.
func (r Recovery) Policy() string {
	if r.Snapshot == "" {
		return SnapshotOff
	}
	return r.Snapshot
}

// KeepCount is recovery.keep, DefaultSnapshotKeep when unset.
func (r Recovery) KeepCount() int {
	if r.Keep < 1 {
		return DefaultSnapshotKeep
	}
	return r.Keep
}

// Credential source kinds.
const (
	SourceEnv     = "env"     // a host environment variable
	SourceFile    = "file"    // a host file
	SourceCommand = "command" // a host command's stdout
	SourceOnePass = "op"      // an op:// reference, read with the 1Password CLI
	SourceLiteral = "literal" // the manifest's own text (non-secret-shaped names only)
)

// Credential delivery kinds.
const (
	DeliverFile  = "file"  // a file on a read-only tmpfs-backed mount (the default)
	DeliverEnv   = "env"   // an environment variable of the agent container
	DeliverProxy = "proxy" // a header the egress proxy sets; the agent never sees it
)

// Credential is one named secret of an instance.
type Credential struct {
	Name    string             `json:"name"`
	From    CredentialSource   `json:"from"`
	Deliver CredentialDelivery `json:"deliver"`
}

// CredentialSource says where a value is read on the host.
type CredentialSource struct {
	Kind string `json:"kind"`
	// Env is the host variable (SourceEnv).
	Env string `json:"env,omitempty"`
	// File is the absolute host path, ~ expanded (SourceFile).
	File string `json:"file,omitempty"`
	// Command is the argv run without a shell (SourceCommand, and
	// SourceOnePass as ["op", "read", REF]).
	Command []string `json:"command,omitempty"`
	// Literal is the manifest's value (SourceLiteral). Never encoded.
	Literal string `json:"-"`
}

// CredentialDelivery says how the agent gets a value.
type CredentialDelivery struct {
	Kind string `json:"kind"`
	// Env is the variable name (DeliverEnv).
	Env string `json:"env,omitempty"`
	// File is the absolute path in the container (DeliverFile).
	File string `json:"file,omitempty"`
	// Proxy is the header injection (DeliverProxy).
	Proxy *ProxyDelivery `json:"proxy,omitempty"`
}

// ProxyDelivery is a header the egress proxy sets on every request to Host.
type ProxyDelivery struct {
	Host   string `json:"host"`
	Header string `json:"header"`
	// Format holds {{value}} where the value goes.
	Format string `json:"format"`
	// Placeholder, when set, is an env var the agent gets with
	// PlaceholderValue instead of the secret.
	Placeholder string `json:"placeholder,omitempty"`
}

// PlaceholderValue is what a proxy-delivered credential's placeholder env
// var holds.
const PlaceholderValue = "jackin-placeholder"

// DefaultSecretsDir is the directory file-delivered credentials appear in
// when deliver names no file.
const DefaultSecretsDir = "/run/secrets"

// Role is the image the agent runs: a reference, or a build.
type Role struct {
	Image string `json:"image,omitempty"`
	Build *Build `json:"build,omitempty"`
}

// Build describes a local image build. Context is an absolute directory;
// Dockerfile is relative to it (default "Dockerfile").
type Build struct {
	Context    string            `json:"context"`
	Dockerfile string            `json:"dockerfile,omitempty"`
	Args       map[string]string `json:"args,omitempty"`
}

// Mount is one filesystem mount. Src is absolute after resolution (empty for tmpfs).
type Mount struct {
	Src  string `json:"src,omitempty"`
	Dst  string `json:"dst"`
	Mode string `json:"mode"`
	// Size applies to tmpfs, as written ("64Mi"); SizeBytes is its parsed value.
	Size      string `json:"size,omitempty"`
	SizeBytes int64  `json:"sizeBytes,omitempty"`
	// AllowSensitive lets a bind mount expose the home directory or a
	// credential location (see SensitivePathFindings); validation refuses
	// such a mount without it. It is not part of the spec hash: it changes
	// what validation accepts, not the container.
	AllowSensitive bool `json:"allowSensitive,omitempty"`
	// Ref (worktree and clone) is where the scratch branch starts; empty
	// is src's HEAD at the time the checkout is made.
	Ref string `json:"ref,omitempty"`
	// GitCommonDir (worktree only, resolved at load) is src's git
	// directory, which a worktree's .git file points into.
	GitCommonDir string `json:"gitCommonDir,omitempty"`
}

// Resources are the container limits, as written and parsed. Zero means unlimited.
type Resources struct {
	Memory                 string  `json:"memory,omitempty"`
	MemoryBytes            int64   `json:"memoryBytes,omitempty"`
	MemoryReservation      string  `json:"memoryReservation,omitempty"`
	MemoryReservationBytes int64   `json:"memoryReservationBytes,omitempty"`
	CPUs                   float64 `json:"cpus,omitempty"`
	Pids                   int64   `json:"pids,omitempty"`
	Nofile                 int64   `json:"nofile,omitempty"`
}

// Network is the instance's network posture.
type Network struct {
	Egress string `json:"egress"`
	// Allow (allowlist only) is the allowlist as written: hosts,
	// wildcards, host:port and presets.
	Allow []string `json:"allow,omitempty"`
	// EgressNetwork (allowlist only) is an existing engine network the
	// proxy's outbound side joins instead of one jackin creates.
	EgressNetwork string `json:"egressNetwork,omitempty"`
	// UpstreamProxy (allowlist only) is http://host:port of a proxy every
	// allowed connection goes through.
	UpstreamProxy string `json:"upstreamProxy,omitempty"`
	Ports         []Port `json:"ports,omitempty"`
}

// Port publishes a container port on the host.
type Port struct {
	Container int    `json:"container"`
	Host      int    `json:"host,omitempty"`
	Address   string `json:"address"`
	Protocol  string `json:"protocol"`
}
