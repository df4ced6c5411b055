package schema

import "strconv"

// Hardening profiles. An instance's profile ("standard" unless the manifest
// says otherwise) gives the sandbox settings and default limits; a field the
// manifest sets (resources.*, security.*) overrides the profile's value.
// "standard" is the engine's defaults, which is what every instance ran
// before profiles existed: choosing it changes nothing.
const (
	ProfileStandard = "standard"
	ProfileHardened = "hardened"
	ProfileLocked   = "locked"
)

// Profile is one hardening profile's settings.
type Profile struct {
	Name string
	// CapDrop and CapAdd are the capability changes ("ALL" then a minimal
	// list); empty leaves the engine's default set.
	CapDrop []string
	CapAdd  []string
	// NoNewPrivileges forbids setuid and file-capability privilege gains.
	NoNewPrivileges bool
	// ReadOnlyRoot makes the root filesystem read-only, with a tmpfs at
	// each of ReadOnlyTmpfs (the agent's HOME is HomeDir, for its caches).
	ReadOnlyRoot bool
	// HostUser runs the agent as the operator's UID:GID, so files written
	// to read-write mounts are owned by the operator.
	HostUser bool
	// Default limits; zero leaves the limit unset.
	Memory            string
	MemoryReservation string
	CPUs              float64
	Pids              int64
	Nofile            int64
}

// HomeDir is the agent's HOME under a read-only root filesystem: a tmpfs,
// so caches written there work and are lost on recreate.
const HomeDir = "/home/agent"

// ReadOnlyTmpfs are the tmpfs mounts a read-only root filesystem gets
// (unless the manifest mounts something at the same place).
var ReadOnlyTmpfs = []string{"/tmp", HomeDir}

// Profiles are the hardening profiles by name.
var Profiles = map[string]Profile{
	ProfileStandard: {Name: ProfileStandard},
	ProfileHardened: {
		Name:    ProfileHardened,
		CapDrop: []string{"ALL"},
		// What a development workload needs: file ownership, setuid
		// tools that drop privileges, signals, low ports.
		CapAdd:            []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "SETGID", "SETUID"},
		NoNewPrivileges:   true,
		ReadOnlyRoot:      false,
		HostUser:          true,
		Memory:            "4Gi",
		MemoryReservation: "1Gi",
		CPUs:              2,
		Pids:              1024,
		Nofile:            8192,
	},
	ProfileLocked: {
		Name:              ProfileLocked,
		CapDrop:           []string{"ALL"},
		CapAdd:            []string{},
		NoNewPrivileges:   true,
		ReadOnlyRoot:      true,
		HostUser:          true,
		Memory:            "2Gi",
		MemoryReservation: "512Mi",
		CPUs:              1,
		Pids:              256,
		Nofile:            4096,
	},
}

// Sandbox is the agent container's effective sandbox settings, from the
// profile and the manifest's security fields. The zero value is the
// engine's defaults.
type Sandbox struct {
	User            string   `json:"user,omitempty"` // "uid:gid"; empty: the image's USER
	CapDrop         []string `json:"capDrop,omitempty"`
	CapAdd          []string `json:"capAdd,omitempty"`
	NoNewPrivileges bool     `json:"noNewPrivileges,omitempty"`
	ReadOnlyRoot    bool     `json:"readOnlyRoot,omitempty"`
	// Tmpfs are the tmpfs mounts the read-only root adds.
	Tmpfs []string `json:"tmpfs,omitempty"`
}

// NobodyUser is the user hardened and locked profiles run agents as when
// the operator is root: the agent must not run as root, and nobody owns
// nothing on the host.
const NobodyUser = "65534:65534"

// HostUser is the "uid:gid" the hardened and locked profiles (and
// security.user "host") run the agent as: the operator's, so files the
// agent writes to read-write mounts are theirs, or NobodyUser when the
// operator is root.
func HostUser(uid, gid int) string {
	if uid == 0 {
		return NobodyUser
	}
	return strconv.Itoa(uid) + ":" + strconv.Itoa(gid)
}

// Capabilities are the Linux capability names (without CAP_) the
// manifest may drop or add, plus "ALL".
var Capabilities = []string{
	"ALL", "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE", "CHOWN",
	"DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE",
	"LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE", "NET_BROADCAST",
	"NET_RAW", "PERFMON", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT",
	"SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME",
	"SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM",
}

// KnownCapability reports whether name is in Capabilities.
func KnownCapability(name string) bool {
	for _, c := range Capabilities {
		if c == name {
			return true
		}
	}
	return false
}

// Source values of Instance.Sources.
const SourceManifest = "manifest"

// SourceProfile is the Sources value of a field set by profile p.
func SourceProfile(p string) string { return "profile " + p }
