// Package drivers defines the backend contract: the resources an instance is
// rendered into, what a backend reports back when observed, and the Driver
// interface the reconciler executes plans through. Backends live in
// subpackages (docker/ for a real engine, fake/ for unit tests only).
package drivers

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackin-dev/jackin/hostpath"
)

// Labels set on every object jackin creates. Observe selects by LabelFleet, and
// nothing without LabelManagedBy=ManagedByValue is ever touched.
const (
	LabelManagedBy = "dev.jackin.managed-by"
	LabelFleet     = "dev.jackin.fleet"
	LabelInstance  = "dev.jackin.instance"
	LabelComponent = "dev.jackin.component"
	LabelSpecHash  = "dev.jackin.spec-hash"
	// LabelBuiltBy marks role images jackin built (never LabelManagedBy,
	// which containers would inherit from their image).
	LabelBuiltBy = "dev.jackin.built-by"

	ManagedByValue = "jackin"

	// LabelFleetID and LabelManifest record who owns the fleet name: a
	// second manifest with the same name elsewhere on disk is refused
	// instead of taking the fleet over (see reconciler.ResolveOwner).
	LabelFleetID  = "dev.jackin.fleet-id"
	LabelManifest = "dev.jackin.manifest"
)

// Kind is a resource kind. Each kind is observed with one list call.
type Kind string

const (
	KindNetwork   Kind = "network"
	KindVolume    Kind = "volume"
	KindContainer Kind = "container"
)

// Component values for LabelComponent.
const (
	ComponentAgent   = "agent"
	ComponentNetwork = "network"
	ComponentVolume  = "volume"
	// ComponentEphemeral is an ephemeral mount's volume: kept across
	// recreates, removed with its instance (unlike ComponentVolume).
	ComponentEphemeral = "ephemeral"
	// ComponentEgress is the egress sidecar: the allowlist proxy, and the
	// forwarder of published ports when the agent is on an internal network.
	ComponentEgress = "egress"
	// ComponentDocker is the private Docker daemon's sidecar (docker
	// "private"), and ComponentDockerData the volume holding its data:
	// kept across recreates, removed with its instance.
	ComponentDocker     = "docker"
	ComponentDockerData = "docker-data"
	// ComponentHome is the runtime-home volume: the agent runtime's
	// settings, login and sessions, kept across recreates and removed with
	// the instance.
	ComponentHome = "home"
	// ComponentCheckout is the volume an instance clones a worktree or
	// clone mount's git URL into (a Pod's claim, a volume on a remote
	// engine): kept across recreates, and kept on delete (it can hold
	// unpushed work) until delete --purge.
	ComponentCheckout = "checkout"
)

// IsSidecar reports whether a container component is one of the sidecars
// jackin runs beside an agent.
func IsSidecar(component string) bool {
	return component == ComponentEgress || component == ComponentDocker
}

// OwnedByInstance reports whether a volume component lives and dies with
// its instance (removed on delete, kept across recreates).
func OwnedByInstance(component string) bool {
	return component == ComponentEphemeral || component == ComponentDockerData || component == ComponentHome
}

// LabelImage records, on a sidecar container, the image reference it was
// created from: the engine reports a container's image by ID once its tag
// moves, and a content-derived tag may be rebuilt by a concurrent jackin.
const LabelImage = "dev.jackin.image"

// LabelInternal marks a network created internal (no route out), so a
// change of egress mode is seen as a network to replace.
const LabelInternal = "dev.jackin.internal"

// Resource is one object a backend creates for an instance. Exactly one of
// the spec pointers matches Kind. An instance's resources are ordered:
// dependencies first (network before container); deletion runs in reverse.
type Resource struct {
	Kind      Kind
	Name      string
	Component string
	Labels    map[string]string // complete label set, including the dev.jackin.* labels
	Network   *NetworkSpec
	Volume    *VolumeSpec
	Container *ContainerSpec
}

// NetworkSpec is a per-instance network.
type NetworkSpec struct {
	Internal bool // no route out (egress "allowlist" and "none")
}

// VolumeSpec is a named volume owned by an instance.
type VolumeSpec struct {
	// Seed, when set, is a host directory copied into the volume when the
	// volume is created (through the container, mounted at Target).
	Seed   string
	Target string
	// SeedPin is Seed's identity as validated, checked before the copy.
	SeedPin *hostpath.Pin `json:"-"`
}

// ImageSpec says where a container's image comes from. Ref is the reference to
// run; when Build is set, Ref is the tag derived from the build context hash.
type ImageSpec struct {
	Ref   string
	Build *BuildSpec
}

// BuildSpec is a local image build through the engine API.
type BuildSpec struct {
	Context    string // absolute directory
	Dockerfile string // relative to Context
	Args       map[string]string
	// Prepare, when set, makes the context directory before a build (the
	// egress sidecar's context is written under the state dir on demand,
	// never while only planning).
	Prepare func() error `json:"-"`
}

// MountSpec is one container mount. Type is "bind", "tmpfs" or "volume"
// (Source is then the volume name).
type MountSpec struct {
	Type      string
	Source    string
	Target    string
	ReadOnly  bool
	SizeBytes int64
	// Pin, on a bind of a host path the manifest named, is that path's
	// identity as validated: the executor checks it right before every
	// create and start, and refuses a source that changed (a component
	// swapped for a symlink or another directory).
	Pin *hostpath.Pin `json:"-"`
	// Under, on a bind jackin makes below a validated directory (the
	// read-only parts of a worktree's git directory), is that directory:
	// it must still match and no component below it may be a symlink.
	Under *hostpath.Pin `json:"-"`
	// Clone, on a volume mount, is the git repository the volume is
	// filled from before the container starts (when it holds no checkout
	// yet).
	Clone *CloneSpec `json:",omitempty"`
}

// ProxyEnv are the variables that point a program at the egress proxy.
// A checkout's clone gets these from the agent's environment and none of
// its others (its credentials).
var ProxyEnv = []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy"}

// CheckoutCaps are the only capabilities a checkout's clone starts with
// (as root): to hand a new volume to the agent's user and to become that
// user, after which it holds none.
var CheckoutCaps = []string{"CHOWN", "SETUID", "SETGID"}

// CloneSpec is a checkout made inside the instance: the URL is cloned
// into the mount and Branch, a new scratch branch, checked out from Ref
// (the remote's HEAD when empty).
type CloneSpec struct {
	URL    string
	Ref    string `json:",omitempty"`
	Branch string
}

// VerifySource checks a bind's host source against what was validated
// (Pin or Under); other mounts pass.
func (m MountSpec) VerifySource() error {
	switch {
	case m.Type != "bind":
		return nil
	case m.Pin != nil:
		if m.Pin.Path != m.Source {
			return fmt.Errorf("mount %s: source %s is not the validated path %s", m.Target, m.Source, m.Pin.Path)
		}
		return m.Pin.Verify()
	case m.Under != nil:
		return hostpath.VerifyBelow(m.Under, m.Source)
	}
	return nil
}

// PortSpec publishes a container port.
type PortSpec struct {
	ContainerPort int
	HostPort      int // 0: the engine picks one
	HostIP        string
	Protocol      string // tcp or udp
}

// ContainerSpec is everything a backend needs to create a container.
type ContainerSpec struct {
	Image    ImageSpec
	Command  []string
	Env      map[string]string
	Mounts   []MountSpec
	Ports    []PortSpec
	Networks []string // names of networks to attach, first is primary
	// Aliases are extra names the container answers to, per network.
	Aliases map[string][]string
	// NoNetwork gives the container no network but loopback (Networks
	// must then be empty).
	NoNetwork bool
	Hostname  string
	Memory    int64 // bytes, 0 = unlimited
	MemoryRes int64 // bytes, 0 = none
	NanoCPUs  int64 // 0 = unlimited
	PidsLimit int64 // 0 = unlimited
	// Nofile is the open-files ulimit, soft and hard; 0 = the engine's default.
	Nofile     int64
	StopSignal string
	// Hardening, for jackin's own sidecars: the user to run as ("uid:gid"),
	// capabilities to drop ("ALL"), no-new-privileges, a read-only root
	// filesystem. Zero values leave the engine's defaults.
	User            string
	CapDrop         []string
	CapAdd          []string
	NoNewPrivileges bool
	ReadOnlyRoot    bool
	// Privilege beyond the engine's defaults, for the private Docker
	// daemon only: Privileged is --privileged; SecurityOpt are raw
	// security options ("seccomp=unconfined"); DeviceCgroupRules allow
	// device access ("a *:* rwm"); Sysctls are namespaced kernel
	// settings set at create ("net.ipv4.ip_forward": "1"), so /proc/sys
	// can stay read-only.
	Privileged        bool
	SecurityOpt       []string
	DeviceCgroupRules []string
	Sysctls           map[string]string
	// Ready, when set, is how to tell the container serves: the executor
	// starts it before the agent and waits for the probe.
	Ready *ReadyProbe
	// Running is the desired state: false creates the container without starting it.
	Running bool
	// Supervisor, for an agent container, runs the command under jackin's
	// supervisor (PID 1), which the container gets mounted read-only.
	Supervisor *SupervisorSpec
}

// SupervisorSpec is how an agent container runs under jackin's
// supervisor: the entrypoint becomes Entrypoint, and the command it runs is
// the image's entrypoint followed by Command, as an engine would run them.
type SupervisorSpec struct {
	// Entrypoint is the supervisor and its flags, up to (not including)
	// the "--" before the command.
	Entrypoint []string
	// Command is what the supervisor runs, after the image's entrypoint.
	Command []string
	// ImageCommand runs the image's entrypoint and CMD with Args appended;
	// an image with neither runs the login shell (LoginShellFlag) with
	// Args.
	ImageCommand   bool
	Args           []string
	LoginShellFlag string
	// HomeTarget is where the runtime-home volume is mounted, and
	// HomeSubdir the directory in it made writable by any user (the
	// agent's user is the image's, and a new volume's root is root's).
	HomeTarget, HomeSubdir string
}

// ReadyProbe is a command run inside a started container until it exits 0.
// Without Exec it is a check that the container stays up for Timeout: one
// that exits with a non-zero status meanwhile fails it.
type ReadyProbe struct {
	Exec    []string
	Timeout time.Duration
	// What names the service in errors ("the private Docker daemon").
	What string
	// Hint is added to a timeout error: what to check or change.
	Hint string
	// QuoteLog puts the end of the container's log in errors: for
	// jackin's own sidecars only, as an agent's log may hold secrets. For
	// other containers an error names only which of LogSignals the log
	// contains.
	QuoteLog   bool
	LogSignals []string
}

// ReadyWaiter is a backend that can wait for a container's ReadyProbe.
type ReadyWaiter interface {
	WaitReady(ctx context.Context, id string, probe ReadyProbe) error
}

// ContainerStater is a backend that can report some containers' states by
// ID, as Observe reports them, without listing the whole fleet: apply's
// check that the agents it started stayed up asks only for those. A
// container that is gone is left out.
type ContainerStater interface {
	ContainerStates(ctx context.Context, ids []string) ([]ObservedResource, error)
}

// Container states as reported by Observe.
const (
	StateCreated    = "created"
	StateRunning    = "running"
	StatePaused     = "paused"
	StateRestarting = "restarting"
	StateExited     = "exited"
	StateDead       = "dead"
	StateRemoving   = "removing"
)

// ObservedResource is one labelled object found on the backend.
type ObservedResource struct {
	Kind    Kind
	ID      string
	Name    string
	Labels  map[string]string
	Created time.Time

	// Containers only.
	State    string   // one of the State* constants
	Status   string   // the engine's human status ("Exited (1) 3 seconds ago")
	Image    string   // the reference the container was created with
	ImageID  string   // the image ID it runs
	Networks []string // names of attached networks
	// OOMKilled (containers only) says the kernel's OOM killer ended the
	// container's last run; FinishedAt is when. Only an exited container
	// that died of SIGKILL (exit status 137) is inspected to learn it, so
	// the list stays the only call on every other path.
	OOMKilled  bool
	FinishedAt time.Time
}

// Instance returns the instance label, or "" when absent.
func (r ObservedResource) Instance() string { return r.Labels[LabelInstance] }

// Observed is the labelled state of one fleet on a backend, one list per kind.
type Observed struct {
	Networks   []ObservedResource
	Volumes    []ObservedResource
	Containers []ObservedResource
	// Images maps image references present locally to their image IDs, for the
	// references the desired state names (used to detect a re-tagged image).
	Images map[string]string
}

// Driver is a backend that can observe and change a fleet's objects. Every
// method is safe for concurrent use.
type Driver interface {
	// Name is the backend name ("docker").
	Name() string
	// Endpoint is where the backend is reached, for error messages.
	Endpoint() string
	// Ping checks the backend answers.
	Ping(ctx context.Context) error
	// Observe lists the fleet's labelled objects, one list call per kind, plus
	// the local image IDs of the given references.
	Observe(ctx context.Context, fleet string, imageRefs []string) (*Observed, error)
	// EnsureImage makes the image available: a build when Build is set and the
	// tag is missing, else a single pull attempt when the ref is missing.
	// Progress is written to progress. It returns the image ID.
	EnsureImage(ctx context.Context, img ImageSpec, progress io.Writer) (string, error)
	// Create creates a resource and returns its ID. A container is not started.
	// A name already taken by an object without jackin's labels is an
	// *ErrNameConflict and the object is left alone.
	Create(ctx context.Context, r Resource) (string, error)
	// Start starts a container.
	Start(ctx context.Context, id string) error
	// Stop stops a container.
	Stop(ctx context.Context, id string) error
	// Remove removes a resource by kind and ID (containers forcibly).
	// Removing something already gone is not an error.
	Remove(ctx context.Context, kind Kind, id string) error
}

// Seeder is a backend that can copy a host directory into a created, not
// yet started container, filling the volume mounted at target.
type Seeder interface {
	Seed(ctx context.Context, containerID, target, srcDir string) error
}

// LogLine is one line a container wrote to stdout, with the engine's time.
type LogLine struct {
	Time time.Time
	Text string
}

// LogReader is a backend that can read what a container wrote to stdout
// (the egress proxy's decision lines are pulled this way: no host socket is
// handed to the proxy).
type LogReader interface {
	// ContainerLogs returns the stdout lines written after since (all
	// of them when since is zero), oldest first.
	ContainerLogs(ctx context.Context, id string, since time.Time) ([]LogLine, error)
}

// LogTailer is a backend that can read the last lines a container wrote,
// stdout and stderr together, oldest first.
type LogTailer interface {
	ContainerLogTail(ctx context.Context, id string, lines int) ([]string, error)
}

// ErrNameConflict reports a name taken by an object jackin does not own.
type ErrNameConflict struct {
	Kind     Kind
	Name     string
	ID       string
	Owner    string // "unlabelled" or "fleet <name>"
	Instance string
}

func (e *ErrNameConflict) Error() string {
	return "the " + string(e.Kind) + " name " + e.Name + " is already taken by " + e.Owner +
		" object " + shortID(e.ID) + "; jackin never removes objects it does not own: rename or remove it yourself"
}

// ErrUnreachable reports a backend that does not answer.
type ErrUnreachable struct {
	Endpoint string
	Err      error
}

func (e *ErrUnreachable) Error() string {
	return "cannot reach the Docker engine at " + e.Endpoint + ": " + e.Err.Error()
}

func (e *ErrUnreachable) Unwrap() error { return e.Err }

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Event is a change a backend reports about one of a fleet's objects.
type Event struct {
	Kind     Kind   // KindContainer, KindNetwork or KindVolume
	Action   string // kill, die, destroy, stop, oom, disconnect, change
	ID       string
	Name     string
	Instance string // the instance label, or the instance a network name belongs to
	// Component is the container's component label ("agent"); empty for networks.
	Component string
	ExitCode  string // die events only
	Time      time.Time
}

// Event actions a backend reports.
const (
	EventKill       = "kill"
	EventDie        = "die"
	EventDestroy    = "destroy"
	EventStop       = "stop"
	EventOOM        = "oom"
	EventDisconnect = "disconnect"
	// EventChange: an object edited outside jackin away from what jackin
	// applied (a Kubernetes NetworkPolicy).
	EventChange = "change"
)

// EventSource is a backend that can stream changes to a fleet's objects.
type EventSource interface {
	// Events streams the fleet's container kill, die, destroy, stop and oom events
	// and its networks' destroy and disconnect events (a backend reports
	// those of them it has, and its volumes' destroy and its networks'
	// change events where it sees them), from the moment it returns. The stream ends when ctx ends or the connection breaks; then
	// one error is sent on the error channel and both channels are closed.
	// A nil error return means the backend accepted the subscription.
	Events(ctx context.Context, fleet string) (<-chan Event, <-chan error, error)
}
