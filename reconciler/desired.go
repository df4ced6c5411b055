package reconciler

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/egress"
	"github.com/jackin-dev/jackin/hostpath"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/supervisor"
	"github.com/jackin-dev/jackin/workspace"
)

// BuildImageRepo is the repository of images jackin builds from a
// role.build; the tag is derived from the build context (BuildContextHash).
const BuildImageRepo = "jackin-role"

// ResourceName is the name of an instance's agent container and of its
// network: jk-<fleet>-<instance>.
func ResourceName(fleet, instance string) string {
	return "jk-" + fleet + "-" + instance
}

// GitDirReadOnly are the parts of a worktree source's git directory that
// are mounted read-only over its read-write mount (workspace.Prepare makes
// sure they exist).
var GitDirReadOnly = []string{"config", "hooks"}

// BuildDesired renders a validated fleet into desired state: per instance
// (sorted by name) the canonical spec, its hash and the resources to create
// (network, then container), all carrying jackin's labels.
//
// Build contexts are hashed from disk, so a role.build whose context is
// unreadable is an error.
func BuildDesired(f *schema.Fleet) (*Desired, error) {
	if f == nil {
		return nil, errors.New("build desired state: no fleet")
	}
	names := make([]string, 0, len(f.Instances))
	for name := range f.Instances {
		names = append(names, name)
	}
	sort.Strings(names)

	d := &Desired{Fleet: f.Name, Instances: make([]DesiredInstance, 0, len(names))}
	tags := map[string]string{} // build key -> tag, so a shared context is hashed once
	stateDir := f.StateDir
	if stateDir == "" {
		stateDir = store.DefaultDir()
	}
	d.StateDir = stateDir
	for _, name := range names {
		in, err := desiredInstance(f.Name, name, f.Instances[name], tags, stateDir, f.Pins)
		if err != nil {
			return nil, fmt.Errorf("instance %q: %w", name, err)
		}
		d.Instances = append(d.Instances, in)
	}
	return d, nil
}

// Instance returns the desired instance with the given name, or nil.
func (d *Desired) Instance(name string) *DesiredInstance {
	for i := range d.Instances {
		if d.Instances[i].Name == name {
			return &d.Instances[i]
		}
	}
	return nil
}

// ImageRefs returns the distinct image references the desired state runs, sorted.
func (d *Desired) ImageRefs() []string {
	seen := map[string]bool{}
	var refs []string
	for _, in := range d.Instances {
		if ref := in.Image.Ref; ref != "" && !seen[ref] {
			seen[ref] = true
			refs = append(refs, ref)
		}
		for _, r := range in.Resources {
			if r.Kind == drivers.KindContainer && r.Container != nil {
				if ref := r.Container.Image.Ref; ref != "" && !seen[ref] {
					seen[ref] = true
					refs = append(refs, ref)
				}
			}
		}
	}
	sort.Strings(refs)
	return refs
}

// VolumeName is the name of an instance's ephemeral volume for the mount
// at dst: jk-<fleet>-<instance>-<slug of dst>.
func VolumeName(fleet, instance, dst string) string {
	return ResourceName(fleet, instance) + "-" + workspace.Slug(dst)
}

// CheckoutVolumeName is the volume an instance clones a checkout into: a
// name of its own, so a mount that changes between ephemeral and a
// checkout at the same path never takes over the other's volume (and its
// keep-or-remove rule).
func CheckoutVolumeName(fleet, instance, dst string) string {
	return VolumeName(fleet, instance, dst) + "-git"
}

func desiredInstance(fleet, name string, inst schema.Instance, tags map[string]string, stateDir string, pins map[string]*hostpath.Pin) (DesiredInstance, error) {
	inst.Name = name
	var running bool
	switch inst.State {
	case schema.StateRunning, "":
		running = true
	case schema.StateStopped:
		running = false
	default:
		return DesiredInstance{}, fmt.Errorf("unknown state %q (want %q or %q)", inst.State, schema.StateRunning, schema.StateStopped)
	}

	img, err := imageSpec(inst.Role, tags)
	if err != nil {
		return DesiredInstance{}, err
	}
	spec, err := canonicalSpec(inst, img.Ref)
	if err != nil {
		return DesiredInstance{}, err
	}
	spec.Credentials = specCredentials(fleet, inst)
	hash, err := HashSpec(spec)
	if err != nil {
		return DesiredInstance{}, err
	}

	rname := ResourceName(fleet, name)
	base := func(component string) map[string]string {
		return map[string]string{
			drivers.LabelManagedBy: drivers.ManagedByValue,
			drivers.LabelFleet:     fleet,
			drivers.LabelInstance:  name,
			drivers.LabelComponent: component,
			drivers.LabelSpecHash:  hash,
		}
	}
	netLabels := base(drivers.ComponentNetwork)
	ctrLabels := base(drivers.ComponentAgent)
	for k, v := range inst.Labels {
		if strings.HasPrefix(k, "dev.jackin.") {
			return DesiredInstance{}, fmt.Errorf("label %q: the dev.jackin. prefix is reserved for jackin", k)
		}
		ctrLabels[k] = v
	}

	ctr := &drivers.ContainerSpec{
		Image:     img,
		Command:   append([]string(nil), spec.Command...),
		Env:       copyMap(spec.Env),
		Networks:  []string{rname},
		Hostname:  name,
		Memory:    spec.Resources.MemoryBytes,
		MemoryRes: spec.Resources.MemoryReservationBytes,
		NanoCPUs:  spec.Resources.NanoCPUs,
		PidsLimit: spec.Resources.Pids,
		Nofile:    spec.Resources.Nofile,
		Running:   running,
	}
	if sb := spec.Sandbox; sb != nil {
		ctr.User, ctr.CapDrop, ctr.CapAdd = sb.User, sb.CapDrop, sb.CapAdd
		ctr.NoNewPrivileges, ctr.ReadOnlyRoot = sb.NoNewPrivileges, sb.ReadOnlyRoot
		mounted := map[string]bool{}
		for _, m := range spec.Mounts {
			mounted[filepath.Clean(m.Dst)] = true
		}
		for _, dst := range sb.Tmpfs {
			if !mounted[dst] {
				ctr.Mounts = append(ctr.Mounts, drivers.MountSpec{Type: "tmpfs", Target: dst})
			}
		}
		// Under a read-only root the agent's HOME is a tmpfs, for its caches.
		if sb.ReadOnlyRoot {
			// An image that writes to / fails at once under a read-only
			// root: apply watches the agent's first seconds and says why.
			ctr.Ready = &drivers.ReadyProbe{
				Timeout: ReadOnlyStartCheck,
				What:    "the agent container " + rname,
				Hint: "its root filesystem is read-only (" + readOnlySource(inst) + "): an image that writes outside its mounts, " +
					strings.Join(sb.Tmpfs, " and ") + " fails there. If its log says \"read-only file system\", mount a tmpfs or a volume at that path, or set security.readOnlyRoot: false",
				LogSignals: []string{"read-only file system"},
			}
			if _, set := ctr.Env["HOME"]; !set {
				if ctr.Env == nil {
					ctr.Env = map[string]string{}
				}
				ctr.Env["HOME"] = schema.HomeDir
			}
		}
	}
	var volumes []drivers.Resource
	var checkouts []workspace.Want
	commonDirs := map[string]bool{}
	var gitDirs []string
	for _, m := range spec.Mounts {
		ms := drivers.MountSpec{Target: m.Dst}
		switch m.Mode {
		case schema.MountRW, schema.MountRO:
			ms.Type, ms.Source, ms.ReadOnly = "bind", m.Src, m.Mode == schema.MountRO
			if pin := pins[m.Src]; pin != nil {
				// The engine gets the path that was validated, resolved,
				// and checks it again by identity before every start.
				ms.Source, ms.Pin = pin.Path, pin
			}
		case schema.MountTmpfs:
			ms.Type, ms.SizeBytes = "tmpfs", m.SizeBytes
		case schema.MountWorktree, schema.MountClone:
			if inst.Backend == schema.BackendKubernetes || !filepath.IsAbs(m.Src) {
				// A git URL (Kubernetes, remote engines): the instance
				// clones it into a volume of its own before the agent
				// starts (a Pod's init container, a short-lived container
				// on Docker); a worktree is a clone there too, as there is
				// no repository of the operator's to share.
				vname := CheckoutVolumeName(fleet, name, m.Dst)
				labels := base(drivers.ComponentCheckout)
				delete(labels, drivers.LabelSpecHash)
				volumes = append(volumes, drivers.Resource{Kind: drivers.KindVolume, Name: vname, Component: drivers.ComponentCheckout, Labels: labels, Volume: &drivers.VolumeSpec{Target: m.Dst}})
				ms.Type, ms.Source = "volume", vname
				ms.Clone = &drivers.CloneSpec{URL: m.Src, Ref: m.Ref, Branch: workspace.Branch(fleet, name)}
				break
			}
			w := workspace.Want{StateDir: stateDir, Fleet: fleet, Instance: name, Mode: m.Mode, Src: m.Src, Ref: m.Ref, Dst: m.Dst}
			checkouts = append(checkouts, w)
			ms.Type, ms.Source = "bind", workspace.Path(stateDir, fleet, name, workspace.Slug(m.Dst))
			if m.Mode == schema.MountWorktree {
				// The worktree's .git file names <common dir>/worktrees/<name>
				// by its absolute host path: git in the container finds it
				// only at that same path, and writes objects and refs there.
				if cd := CommonDir(inst, m.Dst); cd != "" && !commonDirs[cd] {
					commonDirs[cd] = true
					gitDirs = append(gitDirs, cd)
				}
			}
		case schema.MountEphemeral:
			vname := VolumeName(fleet, name, m.Dst)
			labels := base(drivers.ComponentEphemeral)
			// A volume outlives recreates: a spec hash on it would go stale.
			delete(labels, drivers.LabelSpecHash)
			vs := &drivers.VolumeSpec{Seed: m.Src, Target: m.Dst}
			if pin := pins[m.Src]; pin != nil && m.Src != "" {
				vs.Seed, vs.SeedPin = pin.Path, pin
			}
			volumes = append(volumes, drivers.Resource{Kind: drivers.KindVolume, Name: vname, Component: drivers.ComponentEphemeral, Labels: labels, Volume: vs})
			ms.Type, ms.Source = "volume", vname
		}
		ctr.Mounts = append(ctr.Mounts, ms)
	}
	for _, cd := range gitDirs {
		ms := drivers.MountSpec{Type: "bind", Source: cd, Target: cd}
		if pin := pins[cd]; pin != nil {
			// A pin of another path fails the check before create and
			// start: the directory moved between validation and render.
			ms.Pin = pin
		}
		ctr.Mounts = append(ctr.Mounts, ms)
		// Its config and hooks stay read-only: git on the host (the
		// operator's, and jackin's own) runs what they name, so an agent
		// that could write them could run code on the host.
		for _, sub := range GitDirReadOnly {
			p := filepath.Join(cd, sub)
			ctr.Mounts = append(ctr.Mounts, drivers.MountSpec{Type: "bind", Source: p, Target: p, ReadOnly: true, Under: ms.Pin})
		}
	}
	for _, p := range spec.Network.Ports {
		ctr.Ports = append(ctr.Ports, drivers.PortSpec{ContainerPort: p.Container, HostPort: p.Host, HostIP: p.Address, Protocol: p.Protocol})
	}
	homeVol, agentPrep := renderSupervisor(fleet, name, inst, spec, ctr, base, stateDir)
	volumes = append(volumes, homeVol)

	netSpec := &drivers.NetworkSpec{}
	var extraNets, sidecars []drivers.Resource
	var policy *egress.Policy
	var policyFile string
	if spec.Network.Egress == schema.EgressAllowlist || spec.Network.Egress == schema.EgressNone {
		netSpec.Internal = true
		netLabels[drivers.LabelInternal] = "true"
		eg, err := renderEgress(fleet, name, inst, spec, ctr, base, stateDir)
		if err != nil {
			return DesiredInstance{}, err
		}
		extraNets, sidecars = eg.networks, eg.containers
		policy, policyFile = eg.policy, eg.policyFile
	}
	var dockerTLS *DockerTLS
	var daemon []drivers.Resource
	if spec.Docker == schema.DockerPrivate {
		side, vol, tls := renderDocker(fleet, name, inst, ctr, base, stateDir)
		volumes = append(volumes, vol)
		daemon = append(daemon, side)
		dockerTLS = tls
	}
	creds, err := renderCredentials(fleet, name, inst, spec, ctr, sidecars, stateDir)
	if err != nil {
		return DesiredInstance{}, err
	}

	res := []drivers.Resource{{Kind: drivers.KindNetwork, Name: rname, Component: drivers.ComponentNetwork, Labels: netLabels, Network: netSpec}}
	res = append(res, extraNets...)
	res = append(res, volumes...)
	// The daemon before the agent: the agent starts once it answers.
	res = append(res, daemon...)
	res = append(res, drivers.Resource{Kind: drivers.KindContainer, Name: rname, Component: drivers.ComponentAgent, Labels: ctrLabels, Container: ctr})
	res = append(res, sidecars...)
	return DesiredInstance{
		DockerTLS:   dockerTLS,
		Policy:      policy,
		PolicyFile:  policyFile,
		Name:        name,
		Instance:    inst,
		Spec:        spec,
		Hash:        hash,
		Running:     running,
		Image:       img,
		Resources:   res,
		Checkouts:   checkouts,
		Credentials: creds,
		Agent:       agentPrep,
	}, nil
}

// ReadOnlyStartCheck is how long apply watches a freshly started agent with
// a read-only root filesystem for an early exit.
const ReadOnlyStartCheck = 2 * time.Second

// readOnlySource names what made the root filesystem read-only.
func readOnlySource(inst schema.Instance) string {
	if src := inst.Sources["security.readOnlyRoot"]; src != "" && src != schema.SourceManifest {
		return src
	}
	return "security.readOnlyRoot"
}

// CommonDir is the git common dir resolved at load for the worktree mount at dst.
func CommonDir(inst schema.Instance, dst string) string {
	for _, m := range inst.Mounts {
		if m.Dst == dst && m.Mode == schema.MountWorktree {
			return m.GitCommonDir
		}
	}
	return ""
}

// imageSpec resolves a role to the image to run: the reference, or for a
// build the content-derived tag.
func imageSpec(role schema.Role, tags map[string]string) (drivers.ImageSpec, error) {
	switch {
	case role.Build != nil && role.Image != "":
		return drivers.ImageSpec{}, errors.New("role: give either image or build, not both")
	case role.Image != "":
		return drivers.ImageSpec{Ref: role.Image}, nil
	case role.Build != nil:
		b := role.Build
		key, err := json.Marshal(b)
		if err != nil {
			return drivers.ImageSpec{}, fmt.Errorf("role.build: %w", err)
		}
		tag, ok := tags[string(key)]
		if !ok {
			if tag, err = BuildContextHash(b); err != nil {
				return drivers.ImageSpec{}, err
			}
			tags[string(key)] = tag
		}
		return drivers.ImageSpec{Ref: tag, Build: &drivers.BuildSpec{
			Context:    b.Context,
			Dockerfile: dockerfileName(b),
			Args:       copyMap(b.Args),
		}}, nil
	default:
		return drivers.ImageSpec{}, errors.New("role: neither image nor build is set")
	}
}

func dockerfileName(b *schema.Build) string {
	if b.Dockerfile == "" {
		return "Dockerfile"
	}
	return b.Dockerfile
}

// BuildContextHash returns the image tag for a role.build:
// "jackin-role:<first 16 hex digits of a sha256>" over the build context
// (walked in sorted order, skipping .git: each entry's relative path, mode and
// content or link target), the Dockerfile name (and its content when it lies
// outside the context) and the build args sorted by name. Identical contexts
// share one tag, so one image; any change to the context changes the tag.
func BuildContextHash(b *schema.Build) (string, error) {
	if b == nil {
		return "", errors.New("role.build: no build given")
	}
	if b.Context == "" {
		return "", errors.New("role.build: no context directory given")
	}
	root, err := filepath.EvalSymlinks(b.Context)
	if err != nil {
		return "", fmt.Errorf("role.build context %s: %w", b.Context, err)
	}
	if fi, err := os.Stat(root); err != nil {
		return "", fmt.Errorf("role.build context %s: %w", b.Context, err)
	} else if !fi.IsDir() {
		return "", fmt.Errorf("role.build context %s: not a directory", b.Context)
	}

	h := sha256.New()
	field := func(s string) { _, _ = io.WriteString(h, s); _, _ = h.Write([]byte{0}) }
	field("jackin build context v1")
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		if d.Name() == ".git" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode()
		field("entry")
		field(filepath.ToSlash(rel))
		field(mode.String())
		switch {
		case mode.Type() == fs.ModeSymlink:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			field(target)
		case mode.IsRegular():
			if err := hashFile(h, p, info.Size()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("role.build context %s: %w", b.Context, err)
	}

	df := dockerfileName(b)
	field("dockerfile")
	field(df)
	dfPath := filepath.Join(root, df)
	if rel, err := filepath.Rel(root, dfPath); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		fi, err := os.Stat(dfPath)
		if err != nil {
			return "", fmt.Errorf("role.build dockerfile %s: %w", df, err)
		}
		if err := hashFile(h, dfPath, fi.Size()); err != nil {
			return "", fmt.Errorf("role.build dockerfile %s: %w", df, err)
		}
	}

	keys := sortedKeys(b.Args)
	field("args")
	field(strconv.Itoa(len(keys)))
	for _, k := range keys {
		field(k)
		field(b.Args[k])
	}
	return BuildImageRepo + ":" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// hashFile writes a file's size and content to h.
func hashFile(h io.Writer, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, _ = io.WriteString(h, strconv.FormatInt(size, 10)+"\x00")
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%s changed while it was read", path)
	}
	return nil
}

// canonicalSpec converts an instance to the canonical Spec: nil slices and
// maps become empty, mounts are sorted by destination and ports by their
// published address, limits are in canonical units.
func canonicalSpec(inst schema.Instance, image string) (Spec, error) {
	var supCopy string
	if inst.Backend == schema.BackendOrbStack {
		supCopy = SupervisorCopyMachine
	}
	s := Spec{
		SupervisorCopy: supCopy,
		FormatVersion:  SpecFormatVersion,
		Backend:        inst.Backend,
		Engine:         inst.Engine,
		OrbStack:       inst.OrbStack,
		Image:          image,
		Agent:          inst.Agent,
		Command:        append([]string{}, inst.Command...),
		Env:            copyMap(inst.Env),
		Labels:         copyMap(inst.Labels),
		Mounts:         []SpecMount{},
		Resources: SpecResources{
			MemoryBytes:            inst.Resources.MemoryBytes,
			MemoryReservationBytes: inst.Resources.MemoryReservationBytes,
			NanoCPUs:               int64(math.Round(inst.Resources.CPUs * 1e9)),
			Pids:                   inst.Resources.Pids,
			Nofile:                 inst.Resources.Nofile,
		},
		Network: SpecNetwork{Egress: inst.Network.Egress, EgressNetwork: inst.Network.EgressNetwork, UpstreamProxy: inst.Network.UpstreamProxy, Ports: []SpecPort{}},
		Docker:  inst.Docker,
		Run:     specRun(inst),
	}
	if inst.Docker == schema.DockerPrivate && inst.DockerDaemon != nil {
		s.DockerDaemon = &SpecDockerDaemon{Image: inst.DockerDaemon.Image, Privilege: inst.DockerDaemon.Privilege}
	}
	if sb := inst.Sandbox; sb.User != "" || len(sb.CapDrop) > 0 || len(sb.CapAdd) > 0 || sb.NoNewPrivileges || sb.ReadOnlyRoot || len(sb.Tmpfs) > 0 {
		s.Sandbox = &SpecSandbox{
			User:            sb.User,
			CapDrop:         append([]string(nil), sb.CapDrop...),
			CapAdd:          append([]string(nil), sb.CapAdd...),
			NoNewPrivileges: sb.NoNewPrivileges,
			ReadOnlyRoot:    sb.ReadOnlyRoot,
			Tmpfs:           append([]string(nil), sb.Tmpfs...),
		}
	}
	for _, m := range inst.Mounts {
		sm := SpecMount{Dst: m.Dst, Mode: m.Mode}
		switch m.Mode {
		case schema.MountRW, schema.MountRO, schema.MountEphemeral:
			sm.Src = m.Src
		case schema.MountWorktree, schema.MountClone:
			sm.Src, sm.Ref = m.Src, m.Ref
		case schema.MountTmpfs:
			sm.SizeBytes = m.SizeBytes
		default:
			return Spec{}, fmt.Errorf("mount %s: unknown mode %q", m.Dst, m.Mode)
		}
		s.Mounts = append(s.Mounts, sm)
	}
	sort.SliceStable(s.Mounts, func(i, j int) bool { return s.Mounts[i].Dst < s.Mounts[j].Dst })
	for _, p := range inst.Network.Ports {
		s.Network.Ports = append(s.Network.Ports, SpecPort{Container: p.Container, Host: p.Host, Address: p.Address, Protocol: p.Protocol})
	}
	sort.SliceStable(s.Network.Ports, func(i, j int) bool { return portString(s.Network.Ports[i]) < portString(s.Network.Ports[j]) })
	for _, u := range inst.IntegrationUses {
		if !u.Active {
			continue
		}
		if u.Source == "manifest" {
			s.Integrations = append(s.Integrations, u.Name)
		} else {
			s.Integrations = append(s.Integrations, u.Name+" (approved "+u.Source+")")
		}
	}
	sort.Strings(s.Integrations)
	return s, nil
}

// HashSpec is the spec hash: the hex sha256 of the spec's JSON encoding (maps
// are encoded with sorted keys). Nil and empty slices and maps hash alike.
func HashSpec(s Spec) (string, error) {
	s = normalizeSpec(s)
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("encode spec: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// normalizeSpec turns nil slices and maps into empty ones.
func normalizeSpec(s Spec) Spec {
	if s.Command == nil {
		s.Command = []string{}
	}
	if s.Env == nil {
		s.Env = map[string]string{}
	}
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	if s.Mounts == nil {
		s.Mounts = []SpecMount{}
	}
	if s.Network.Ports == nil {
		s.Network.Ports = []SpecPort{}
	}
	if s.Run.Argv == nil {
		s.Run.Argv = []string{}
	}
	if s.Run.Homes == nil {
		s.Run.Homes = []string{}
	}
	return s
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// What made an agent container mount (MountOrigin).
const (
	MountFromManifest     = "manifest"          // a mount the manifest lists (rw, ro, tmpfs, worktree, clone, ephemeral)
	MountFromGitDir       = "git-dir"           // a worktree's source git directory, read-write
	MountFromGitDirRO     = "git-dir-read-only" // a part of it mounted read-only over it (config, hooks)
	MountFromSandboxTmpfs = "sandbox-tmpfs"     // a tmpfs a read-only root needs (/tmp, HOME)
	MountFromJackin       = "jackin"            // jackin's own files: credentials, the egress CA, the private daemon's client
	MountFromSupervisor   = "supervisor"        // the supervisor's binary, the agent directory, the runtime-home volume
)

// MountOrigin says what made a mount of the instance's rendered agent
// container, so the session contract describes each mount from what is
// rendered. The rules mirror desiredInstance's rendering.
func (in *DesiredInstance) MountOrigin(m drivers.MountSpec) string {
	for _, sm := range in.Spec.Mounts {
		if sm.Dst == m.Target {
			return MountFromManifest
		}
	}
	for _, im := range in.Instance.Mounts {
		if im.Mode != schema.MountWorktree || im.GitCommonDir == "" {
			continue
		}
		if m.Source == im.GitCommonDir && m.Target == im.GitCommonDir {
			return MountFromGitDir
		}
		for _, sub := range GitDirReadOnly {
			if p := filepath.Join(im.GitCommonDir, sub); m.Source == p && m.Target == p {
				return MountFromGitDirRO
			}
		}
	}
	if sb := in.Spec.Sandbox; sb != nil && m.Type == "tmpfs" && slices.Contains(sb.Tmpfs, m.Target) {
		return MountFromSandboxTmpfs
	}
	if m.Target == supervisor.BinDir || m.Target == supervisor.AgentDir || m.Target == supervisor.HomeStore {
		return MountFromSupervisor
	}
	return MountFromJackin
}
