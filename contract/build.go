package contract

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/jackin-dev/jackin/drivers"
	egresspolicy "github.com/jackin-dev/jackin/egress"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/recovery"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/supervisor"
)

// DockerDefaultCapabilities is the capability set the Docker engine gives a
// container that neither adds nor drops any (moby's default set).
var DockerDefaultCapabilities = []string{
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

// HostDockerSocketRule states the validation rule that keeps the host Docker
// socket out of every instance.
const HostDockerSocketRule = "validation refuses any mount whose source is a host Docker socket (" +
	"/var/run/docker.sock, /run/docker.sock, DOCKER_HOST's, and those in the user's directories: " +
	"Docker Desktop's, OrbStack's, Colima's, Rancher Desktop's, rootless Docker's), a parent directory of one, " +
	"or a symlink or .. spelling that resolves to either, and any DOCKER_HOST in env"

// Options are the inputs of Build besides the fleet.
type Options struct {
	// Instances limits the contracts to these instances, in this order; empty
	// means every instance, sorted by name. An unknown name is an
	// *UnknownInstancesError.
	Instances []string
	// Home is the host user's home directory, for SensitivePathFindings.
	Home string
	// StateDir is jackin's state directory (history database, locks).
	StateDir string
	// ManifestPaths are the paths the manifest was given as, for the restore
	// command; empty uses the fleet's Sources.
	ManifestPaths []string
	// Observation is a read-only observation of the engine and the state
	// dir; nil marks every host effect's presence unknown.
	Observation *Observation
}

// Observation is what explain saw without changing anything.
type Observation struct {
	// Endpoint is the engine address.
	Endpoint string
	// Engine is the fleet's observed objects; nil when the engine could not
	// be observed (EngineError says why).
	Engine      *drivers.Observed
	EngineError string
	// StateFiles says, for each path of StatePaths, whether it exists; nil
	// when the state dir was not looked at.
	StateFiles map[string]bool
}

// StatePaths are the files apply writes in the state dir for fleet: the
// history database and the fleet's lock file.
func StatePaths(stateDir, fleet string) (db, lock string) {
	return filepath.Join(stateDir, "jackin.db"), filepath.Join(stateDir, "locks", fleet+".lock")
}

// ObserveStateDir reports which of StatePaths exist. It only stats: nothing
// is created or opened.
func ObserveStateDir(stateDir, fleet string) map[string]bool {
	db, lock := StatePaths(stateDir, fleet)
	out := map[string]bool{}
	for _, p := range []string{db, lock} {
		_, err := os.Lstat(p)
		out[p] = err == nil
	}
	return out
}

// UnknownInstancesError names instances that are not in the fleet.
type UnknownInstancesError struct {
	Fleet string
	Names []string
}

func (e *UnknownInstancesError) Error() string {
	return fmt.Sprintf("no instance named %s in fleet %q", strings.Join(e.Names, ", "), e.Fleet)
}

// Build computes the session contracts of a fleet's instances. desired is
// reconciler.BuildDesired(f); nil computes it. Build reads nothing but the
// build contexts (through BuildDesired, when desired is nil) and symlinks of
// mount sources, and writes nothing.
func Build(f *schema.Fleet, desired *reconciler.Desired, opts Options) (*Document, error) {
	if f == nil {
		return nil, errors.New("session contract: no fleet")
	}
	if desired == nil {
		var err error
		if desired, err = reconciler.BuildDesired(f); err != nil {
			return nil, err
		}
	}
	var selected []*reconciler.DesiredInstance
	if len(opts.Instances) == 0 {
		for i := range desired.Instances {
			selected = append(selected, &desired.Instances[i])
		}
	} else {
		seen := map[string]bool{}
		var unknown []string
		for _, n := range opts.Instances {
			if seen[n] {
				continue
			}
			seen[n] = true
			if di := desired.Instance(n); di != nil {
				selected = append(selected, di)
			} else {
				unknown = append(unknown, n)
			}
		}
		if len(unknown) > 0 {
			return nil, &UnknownInstancesError{Fleet: f.Name, Names: unknown}
		}
	}

	doc := &Document{
		APIVersion: APIVersion,
		Kind:       KindContract,
		Fleet:      f.Name,
		Sources:    nonNil(f.Sources),
		Engine:     engineStatus(opts.Observation),
		Instances:  make([]Contract, 0, len(selected)),
	}
	paths := opts.ManifestPaths
	if len(paths) == 0 {
		paths = f.Sources
	}
	b := builder{fleet: f.Name, opts: opts, restore: restoreCommand(paths), tools: f.Tools, github: f.GitHub, queue: f.Queue}
	for _, di := range selected {
		doc.Instances = append(doc.Instances, b.contract(di))
	}
	return doc, nil
}

func engineStatus(o *Observation) EngineStatus {
	switch {
	case o == nil:
		return EngineStatus{Status: EngineNotObserved}
	case o.Engine == nil:
		return EngineStatus{Status: EngineUnreachable, Endpoint: o.Endpoint, Error: o.EngineError}
	}
	return EngineStatus{Status: EngineObserved, Endpoint: o.Endpoint}
}

type builder struct {
	fleet   string
	opts    Options
	restore string
	tools   map[string]schema.Tool
	github  *schema.GitHub
	queue   *schema.Queue
}

// facts are derived once per instance and shared by the sections.
type facts struct {
	di   *reconciler.DesiredInstance
	inst schema.Instance
	// agent is the rendered agent container: the contract describes it.
	agent      *drivers.ContainerSpec
	fleet      string
	name       string // jk-<fleet>-<instance>
	rwMounts   []reconciler.SpecMount
	roMounts   []reconciler.SpecMount
	tmpfs      []reconciler.SpecMount
	openEgress bool
	unattended bool
	docker     string
	sensitive  []SensitivePath
}

func (b builder) contract(di *reconciler.DesiredInstance) Contract {
	inst := di.Instance
	fx := facts{
		di:         di,
		inst:       inst,
		agent:      agentContainer(di),
		fleet:      b.fleet,
		name:       reconciler.ResourceName(b.fleet, di.Name),
		openEgress: egressRank(di.Spec.Network.Egress) >= 2,
		unattended: orDefault(inst.Agent, schema.AgentShell) != schema.AgentShell,
		docker:     orDefault(di.Spec.Docker, schema.DockerNone),
	}
	allowed := map[string]bool{} // by container path: the spec does not carry allowSensitive
	for _, m := range inst.Mounts {
		if m.AllowSensitive {
			allowed[filepath.Clean(m.Dst)] = true
		}
	}
	for _, m := range di.Spec.Mounts {
		switch m.Mode {
		case schema.MountRW:
			fx.rwMounts = append(fx.rwMounts, m)
		case schema.MountRO:
			fx.roMounts = append(fx.roMounts, m)
		case schema.MountTmpfs:
			fx.tmpfs = append(fx.tmpfs, m)
		}
		if m.Mode == schema.MountRW || m.Mode == schema.MountRO {
			if f := hostPathFindings(m.Src, b.opts.Home); len(f) > 0 {
				fx.sensitive = append(fx.sensitive, SensitivePath{Source: m.Src, Destination: m.Dst, Mode: m.Mode, Findings: f, Severity: SeverityWarning, Allowed: allowed[filepath.Clean(m.Dst)]})
			}
		}
	}

	// A worktree's source git directory is a writable host mount too.
	for _, m := range renderedMounts(fx, reconciler.MountFromGitDir) {
		fx.rwMounts = append(fx.rwMounts, reconciler.SpecMount{Src: m.Source, Dst: m.Target, Mode: schema.MountRW})
	}

	c := Contract{Instance: di.Name}
	var warnings []Warning
	warn := func(section, format string, args ...any) {
		warnings = append(warnings, Warning{Section: section, Message: fmt.Sprintf(format, args...)})
	}
	c.Identity = b.identity(fx)
	c.Sandbox = b.sandbox(fx)
	c.Filesystem = b.filesystem(fx, warn)
	c.Credentials = b.credentials(fx, warn)
	c.Network = b.network(fx, warn)
	c.ServicePorts = b.servicePorts(fx, warn)
	c.Resources = b.resources(fx, warn)
	c.HostEffects = b.hostEffects(fx)
	c.Recovery = b.recovery(fx)
	c.ResidualRisk = b.residualRisk(fx, c)
	c.Tier = b.tier(fx)
	if warnings == nil {
		warnings = []Warning{}
	}
	c.Warnings = warnings
	c.access = AccessOfSpec(di.Spec, b.opts.Home)
	c.spec = di.Spec
	return c
}

func (b builder) identity(fx facts) Identity {
	di, inst := fx.di, fx.inst
	id := Identity{
		Fleet:       b.fleet,
		Instance:    di.Name,
		Description: inst.Description,
		Agent:       orDefault(inst.Agent, schema.AgentShell),
		Unattended:  fx.unattended,
		Backend:     orDefault(inst.Backend, schema.BackendDocker),
		Command:     nonNil(effectiveCommand(di.Spec)),
		State:       orDefault(inst.State, schema.StateRunning),
		Container:   fx.name,
		SpecHash:    di.Hash,
		Role:        Role{Source: RoleImage, Image: di.Image.Ref},
		Supervisor:  supervisorOf(fx, b.tools, b.github, b.queue),
	}
	if bs := di.Image.Build; bs != nil {
		keys := make([]string, 0, len(bs.Args))
		for k := range bs.Args {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		id.Role.Source = RoleBuild
		id.Role.Build = &ImageBuild{Context: bs.Context, Dockerfile: bs.Dockerfile, ArgKeys: keys, Tag: di.Image.Ref}
	}
	return id
}

func (b builder) sandbox(fx facts) Sandbox {
	backend := orDefault(fx.inst.Backend, schema.BackendDocker)
	s := Sandbox{
		Backend:              backend,
		Boundary:             "a container sharing the host kernel; not a VM",
		SharedKernel:         true,
		User:                 "image default (root unless the image sets USER); jackin sets no user",
		UserNamespace:        "not remapped by jackin: root in the container is uid 0 on the host kernel unless the engine runs with userns-remap",
		Privileged:           false,
		Capabilities:         Capabilities{Set: "engine default", Added: []string{}, Dropped: []string{}, Effective: append([]string(nil), DockerDefaultCapabilities...)},
		NoNewPrivileges:      false,
		Seccomp:              "engine default profile (not unconfined)",
		AppArmor:             "engine default (docker-default where the host runs AppArmor)",
		HostNamespaces:       "none shared: own pid, network, ipc, uts and mount namespaces",
		HostDockerSocket:     "not mounted",
		HostDockerSocketRule: HostDockerSocketRule,
		DockerAccess:         fx.docker,
		DockerAccessDetail:   "no Docker daemon is reachable from the agent; Docker access, when offered, is a private daemon, never the host's",
	}
	switch backend {
	case schema.BackendDocker:
		s.Engine = engineOf(fx.inst)
	case schema.BackendOrbStack:
		s.Boundary = orbStackBoundary
		s.Machine = orbMachine(fx)
	case schema.BackendKubernetes:
		s.Boundary = kubernetesBoundary
		s.Cluster = kubernetesCluster(fx)
	default:
		s.Boundary = "unknown backend " + strconv.Quote(backend) + ": no boundary is claimed"
	}
	switch fx.docker {
	case schema.DockerNone:
	case schema.DockerPrivate:
		s.DockerDaemon = b.dockerDaemon(fx)
		s.DockerAccessDetail = "a Docker daemon of the instance's own, in the sidecar " + s.DockerDaemon.Sidecar + ", over TLS with a client certificate; never the host's daemon"
	default:
		s.DockerAccessDetail = "docker " + strconv.Quote(fx.docker) + " is not known to this version"
	}
	s.Profile = orDefault(fx.inst.Profile, schema.ProfileStandard)
	if len(fx.inst.Sources) > 0 {
		s.Sources = fx.inst.Sources
	}
	from := func(field string) string {
		if src := fx.inst.Sources[field]; src != "" {
			return " (from " + src + ")"
		}
		return ""
	}
	if sb := fx.di.Spec.Sandbox; sb != nil {
		if sb.User != "" {
			s.User = sb.User + from("security.user")
			if strings.HasPrefix(sb.User, "0:") || sb.User == "0" {
				s.User += ": root"
			} else {
				s.User += ": not root"
			}
		}
		if len(sb.CapDrop) > 0 || len(sb.CapAdd) > 0 {
			var parts []string
			if len(sb.CapDrop) > 0 {
				parts = append(parts, "drop "+strings.Join(sb.CapDrop, " "))
			} else {
				parts = append(parts, "engine default")
			}
			if len(sb.CapAdd) > 0 {
				parts = append(parts, "add "+strings.Join(sb.CapAdd, " "))
			}
			set := strings.Join(parts, ", ")
			s.Capabilities = Capabilities{Set: set + from("security.capabilities"), Added: nonNil(sb.CapAdd), Dropped: nonNil(sb.CapDrop)}
			if slices.Contains(sb.CapDrop, "ALL") {
				s.Capabilities.Effective = nonNil(append([]string(nil), sb.CapAdd...))
			} else {
				eff := []string{}
				for _, c := range DockerDefaultCapabilities {
					if !slices.Contains(sb.CapDrop, c) {
						eff = append(eff, c)
					}
				}
				for _, c := range sb.CapAdd {
					if !slices.Contains(eff, c) {
						eff = append(eff, c)
					}
				}
				s.Capabilities.Effective = eff
			}
		}
		s.NoNewPrivileges = sb.NoNewPrivileges
	}
	return s
}

func (b builder) filesystem(fx facts, warn func(string, string, ...any)) Filesystem {
	fs := Filesystem{
		RootFS: RootFS{
			Writable:    true,
			Description: "writable (not read-only): the container's own layer; what the agent writes outside its mounts is lost when the container is recreated or deleted",
		},
		Mounts:         []Mount{},
		SensitivePaths: nonNil(fx.sensitive),
		Integrations:   fx.inst.IntegrationUses,
	}
	if sb := fx.di.Spec.Sandbox; sb != nil && sb.ReadOnlyRoot {
		src := fx.inst.Sources["security.readOnlyRoot"]
		fs.RootFS = RootFS{Writable: false, Description: "read-only (from " + orDefault(src, "manifest") + "): writes outside the mounts fail; /tmp and the agent's HOME " + schema.HomeDir + " are tmpfs in memory, lost on recreate"}
	}
	sizes := map[string]string{}
	for _, m := range fx.inst.Mounts {
		if m.Mode == schema.MountTmpfs {
			sizes[filepath.Clean(m.Dst)] = m.Size
		}
	}
	for _, m := range fx.di.Spec.Mounts {
		// What the container gets is the rendered mount: its host path (a
		// bind's source as validated, resolved) and its read-only flag.
		rm, _ := renderedMount(fx, m.Dst)
		mt := Mount{Source: m.Src, Destination: m.Dst, Mode: m.Mode}
		switch m.Mode {
		case schema.MountRO, schema.MountRW:
			mt.Type, mt.Source, mt.Access = MountBind, orDefault(rm.Source, m.Src), access(rm)
			if rm.ReadOnly {
				mt.EnforcedBy = "the engine (read-only bind mount)"
			} else {
				mt.EnforcedBy = "nothing: read-write, the agent can modify and delete these host files"
			}
			mt.Persistence = "on the host: survives recreate and delete"
		case schema.MountTmpfs:
			mt.Type, mt.Access = MountTmpfs, "read-write"
			mt.SizeBytes = m.SizeBytes
			if m.SizeBytes > 0 {
				mt.Size = orDefault(sizes[m.Dst], strconv.FormatInt(m.SizeBytes, 10))
				mt.EnforcedBy = "the engine (tmpfs of " + mt.Size + " in memory, counted against the memory limit)"
			} else {
				mt.EnforcedBy = "the engine (tmpfs in memory, no size set: the kernel default, half of the host's RAM, counted against the memory limit)"
			}
			mt.Persistence = "memory: lost when the container stops"
		case schema.MountWorktree, schema.MountClone, schema.MountEphemeral:
			mt = isolationMount(fx, m, rm)
		}
		fs.Mounts = append(fs.Mounts, mt)
	}
	fs.Mounts = append(fs.Mounts, gitDirMounts(fx)...)
	for _, m := range renderedMounts(fx, reconciler.MountFromSupervisor) {
		fs.Mounts = append(fs.Mounts, supervisorMount(m, fx.inst.Backend))
	}
	if sb := fx.di.Spec.Sandbox; sb != nil {
		mounted := map[string]bool{}
		for _, m := range fx.di.Spec.Mounts {
			mounted[filepath.Clean(m.Dst)] = true
		}
		for _, dst := range sb.Tmpfs {
			if mounted[dst] {
				continue
			}
			fs.Mounts = append(fs.Mounts, Mount{Type: MountTmpfs, Destination: dst, Mode: schema.MountTmpfs, Access: "read-write",
				EnforcedBy:  "the engine (tmpfs in memory for the read-only root, no size set: the kernel default, half of the host's RAM, counted against the memory limit)",
				Persistence: "memory: lost when the container stops"})
		}
	}
	for _, s := range fx.sensitive {
		mode := s.Mode
		if s.Allowed {
			mode += ", allowSensitive"
		}
		for _, f := range s.Findings {
			warn(SectionFilesystem, "mount %s -> %s (%s) %s", s.Source, s.Destination, mode, f)
		}
	}
	return fs
}

// secretLikeKey matches env names that usually hold secrets.
var secretLikeKey = regexp.MustCompile(`(?i)(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIAL|AUTH)`)

func (b builder) credentials(fx facts, warn func(string, string, ...any)) Credentials {
	keys := make([]string, 0, len(fx.di.Spec.Env))
	for k := range fx.di.Spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if secretLikeKey.MatchString(k) {
			warn(SectionCredentials, "env %s looks like a secret: env is not a credential delivery; its value is readable by every process in the container and by anyone who can inspect the container on the host", k)
		}
	}
	delivered := b.delivered(fx, warn)
	summary := "none: the manifest declares no credentials; env values are listed by key only"
	if n := len(delivered); n > 0 {
		summary = fmt.Sprintf("%d delivered; values are read on the host at apply time and never shown", n)
	}
	return Credentials{
		Delivered: delivered,
		Summary:   summary,
		EnvKeys:   keys,
	}
}

// delivered describes each credential: source, delivery and exactly where
// its value is visible.
func (b builder) delivered(fx facts, warn func(string, string, ...any)) []Credential {
	out := []Credential{}
	cp := fx.di.Credentials
	if cp == nil {
		return out
	}
	for _, n := range fx.inst.CredentialNames() {
		cr := fx.inst.Credentials[n]
		c := Credential{Name: n, Delivery: cr.Deliver.Kind, Source: cr.From.Kind, SourceDetail: cr.From.SourceText()}
		switch cr.Deliver.Kind {
		case schema.DeliverFile:
			t := cr.FileTarget()
			dir := path.Dir(t)
			owner := "owned by jackin's user; the image's user is not known: set security.user when the agent runs as neither root nor that user"
			if o := cp.FileOwner; o != nil {
				// jackin can hand a file to another user only as root.
				owner = fmt.Sprintf("owned by %d:%d, the agent's user, when jackin runs as root (else by jackin's user, which must then be the agent's)", o.UID, o.GID)
			}
			c.Target, c.InContainer = t, "file"
			c.VisibleIn = []string{
				fmt.Sprintf("inside the container: the file %s (mode 0400, %s) in %s, a read-only mount holding only credential files", t, owner, dir),
				fmt.Sprintf("on the host: %s, on a tmpfs (memory), under a directory (mode 0700) only jackin's user can open", filepath.Join(cp.FileDirs[dir], path.Base(t))),
				"not in the container's config or env (docker inspect shows the mount, not the value), not in the state dir",
			}
			c.Rotation = "a changed source value is rewritten in place by apply and watch; the container is not recreated"
		case schema.DeliverEnv:
			c.Target, c.InContainer = cr.Deliver.Env, "env"
			c.VisibleIn = []string{
				fmt.Sprintf("inside the container: the environment variable %s, readable by every process in it", cr.Deliver.Env),
				"in the container's config: docker inspect on the host shows it",
				"not in the state dir or the store: they hold a keyed digest of it, never the value",
			}
			c.Rotation = fmt.Sprintf("a changed source value recreates the container (reason \"credential %s changed\")", n)
			warn(SectionCredentials, "credential %s is delivered as env %s: its value is visible in the container's config (docker inspect) and to every process in the container; file or proxy delivery keeps it out of the config", n, cr.Deliver.Env)
		case schema.DeliverProxy:
			p := cr.Deliver.Proxy
			c.Target, c.InContainer, c.Header, c.Placeholder = p.Host, "nowhere", p.Header, p.Placeholder
			c.VisibleIn = []string{
				fmt.Sprintf("nowhere inside the agent container: the egress proxy %s sets the header %s (%s) on every HTTPS request to %s, after terminating TLS for %s only with a per-instance CA the agent trusts", reconciler.SidecarName(b.fleet, fx.di.Name), p.Header, strings.Replace(p.Format, "{{value}}", "<value>", 1), p.Host, p.Host),
				fmt.Sprintf("on the host: %s, on a tmpfs (memory), under a directory (mode 0700) only jackin's user can open, mounted read-only into the egress proxy container only", filepath.Join(cp.ProxyDir, "credentials.json")),
			}
			if p.Placeholder != "" {
				c.VisibleIn = append(c.VisibleIn, fmt.Sprintf("the agent's env %s holds only the placeholder %q", p.Placeholder, schema.PlaceholderValue))
			}
			c.Rotation = "a changed source value is rewritten in place by apply and watch; the proxy reloads it within a second; nothing is recreated"
		}
		out = append(out, c)
	}
	return out
}

func (b builder) network(fx facts, warn func(string, string, ...any)) Network {
	egress := orDefault(fx.di.Spec.Network.Egress, schema.EgressOpen)
	n := Network{
		Egress:           egress,
		EgressMeaning:    "unrestricted: the agent can reach any host the engine host can reach, including the host's LAN",
		EgressRestricted: false,
		EnforcementPoint: "none",
		InstanceNetwork:  fx.name + ": a bridge network of its own, with a /28 subnet from jackin's pool",
		HostReachable:    true,
		HostReachableVia: "the bridge gateway: host services listening on all interfaces or on the gateway address answer",
		OtherInstances:   "not on this instance's network (each instance has its own bridge network jk-<fleet>-<instance>), but reachable through their published host ports",
		DNS:              "resolution possible through the engine's resolver: a residual channel out, whatever the egress mode",
	}
	sidecar := reconciler.SidecarName(b.fleet, fx.di.Name)
	switch egress {
	case schema.EgressOpen:
	case schema.EgressAllowlist:
		n.EgressMeaning = "allowlist: only the hosts below, over HTTP (forward proxy) and HTTPS (CONNECT, with the TLS server name checked too), through the proxy; raw TCP and UDP out fail"
		n.EgressRestricted = true
		n.EnforcementPoint = "host-side proxy container " + sidecar + "; the agent has no route out (HTTP_PROXY and HTTPS_PROXY point at it; a tool that ignores them fails closed)"
		n.InstanceNetwork = fx.name + ": an internal network of its own (no route out), shared only with the proxy"
		n.HostReachable = false
		n.HostReachableVia = ""
		n.OtherInstances = "not reachable: the internal network holds only this agent and its proxy, and the proxy lets through only allowlisted names"
		n.DNS = "the engine's resolver answers names on the internal network (the proxy as \"egress\"); the agent's traffic out goes only through the proxy, which resolves allowed names on its outbound side"
		out := reconciler.OutNetworkName(b.fleet, fx.di.Name) + ", a bridge jackin creates"
		if fx.inst.Network.EgressNetwork != "" {
			out = fx.inst.Network.EgressNetwork + ", an existing engine network (never created or removed by jackin)"
			n.EgressNetwork = fx.inst.Network.EgressNetwork
		}
		n.EnforcementPoint += "; the proxy's outbound side joins " + out
		if fx.inst.Network.UpstreamProxy != "" {
			n.UpstreamProxy = fx.inst.Network.UpstreamProxy
			n.EnforcementPoint += "; allowed connections go through the upstream proxy " + fx.inst.Network.UpstreamProxy
		}
		n.Allowlist = []AllowEntry{}
		for _, entry := range fx.inst.Network.Allow {
			rules, err := egresspolicy.Expand([]string{entry}, fx.inst.Runtime())
			ae := AllowEntry{Entry: entry, Expands: []string{}}
			if err != nil {
				ae.Expands = append(ae.Expands, "invalid: "+err.Error())
			}
			for _, r := range rules {
				ae.Expands = append(ae.Expands, r.String())
			}
			n.Allowlist = append(n.Allowlist, ae)
		}
		if len(n.Allowlist) == 0 {
			warn(SectionNetwork, "the allowlist is empty: every connection out is denied")
		}
		warn(SectionNetwork, "the agent can send anything it can read to the allowed hosts")
		return n
	case schema.EgressNone:
		n.EgressMeaning = "none: no network interface but loopback"
		n.EgressRestricted = true
		n.EnforcementPoint = "the engine: the agent container has network mode none"
		n.InstanceNetwork = "none"
		if fx.docker == schema.DockerPrivate {
			n.EgressMeaning = "none: no route out; besides loopback the agent has only its internal network, shared with its private Docker daemon"
			n.EnforcementPoint = "the engine: the agent is on an internal network of its own (no route out), with only its private Docker daemon"
			n.InstanceNetwork = fx.name + ": an internal network of its own (no route out), shared only with the private Docker daemon"
		} else if len(fx.di.Spec.Network.Ports) > 0 {
			n.EgressMeaning = "none: no route out; besides loopback the agent has only its internal network, shared with the forwarder of its published ports (which only relays inbound connections to them)"
			n.EnforcementPoint = "the engine: the agent is on an internal network of its own (no route out), with only the forwarder " + sidecar + " that publishes its ports"
			n.InstanceNetwork = fx.name + ": an internal network of its own (no route out), shared only with the port forwarder"
		}
		n.HostReachable = false
		n.HostReachableVia = ""
		n.OtherInstances = "not reachable"
		n.DNS = "no resolver reachable outside the instance"
		return n
	default:
		n.EgressMeaning = "egress mode " + strconv.Quote(egress) + " is not known to this version: treated as unrestricted"
	}
	warn(SectionNetwork, "egress is %s", n.EgressMeaning)
	return n
}

func (b builder) servicePorts(fx facts, warn func(string, string, ...any)) ServicePorts {
	sp := ServicePorts{Ports: []Port{}}
	for _, p := range fx.di.Spec.Network.Ports {
		addr := orDefault(p.Address, "0.0.0.0")
		port := Port{
			HostAddress:    addr,
			HostPort:       p.Host,
			EngineAssigned: p.Host == 0,
			ContainerPort:  p.Container,
			Protocol:       protocolOf(p.Protocol),
		}
		if e := fx.di.Spec.Network.Egress; e == schema.EgressAllowlist || e == schema.EgressNone {
			port.PublishedBy = "the egress sidecar " + reconciler.SidecarName(b.fleet, fx.di.Name) + ", relaying to the agent's port over the internal network"
		}
		switch addressScope(p.Address) {
		case 0:
			port.Exposure = "this host only (loopback)"
		case 1:
			port.Exposure = "whoever can reach the host address " + addr
		default:
			port.AllInterfaces = true
			port.Exposure = "all interfaces: reachable from other machines"
			warn(SectionServicePorts, "%s binds all interfaces: reachable from other machines", portLine(port))
		}
		sp.Ports = append(sp.Ports, port)
	}
	return sp
}

// portLine renders "127.0.0.1:13000 -> 3000/tcp".
func portLine(p Port) string {
	host := strconv.Itoa(p.HostPort)
	if p.EngineAssigned {
		host = "engine-assigned"
	}
	return net.JoinHostPort(p.HostAddress, host) + " -> " + strconv.Itoa(p.ContainerPort) + "/" + p.Protocol
}

func (b builder) resources(fx facts, warn func(string, string, ...any)) Resources {
	sr, ir := fx.di.Spec.Resources, fx.inst.Resources
	r := Resources{
		Memory:            bytesQuantity(ir.Memory, sr.MemoryBytes, "unlimited"),
		MemoryReservation: bytesQuantity(ir.MemoryReservation, sr.MemoryReservationBytes, "unlimited (no soft limit)"),
		CPUs:              Quantity{Text: "unlimited", Unit: "nanoCPUs", Unlimited: true},
		Pids:              Quantity{Text: "unlimited", Unit: "processes", Unlimited: true},
		Nofile:            Quantity{Text: "engine default (the Docker daemon's limit)", Unit: "files", Unlimited: true},
	}
	if sr.NanoCPUs > 0 {
		unit := " CPUs"
		if sr.NanoCPUs == 1e9 {
			unit = " CPU"
		}
		r.CPUs = Quantity{Text: formatCPUs(sr.NanoCPUs) + unit, Value: sr.NanoCPUs, Unit: "nanoCPUs"}
	}
	if sr.Pids > 0 {
		r.Pids = Quantity{Text: strconv.FormatInt(sr.Pids, 10) + " processes", Value: sr.Pids, Unit: "processes"}
	}
	if sr.Nofile > 0 {
		r.Nofile = Quantity{Text: strconv.FormatInt(sr.Nofile, 10) + " open files", Value: sr.Nofile, Unit: "files"}
	}
	for field, q := range map[string]*Quantity{"memory": &r.Memory, "memoryReservation": &r.MemoryReservation, "cpus": &r.CPUs, "pids": &r.Pids, "nofile": &r.Nofile} {
		if src := fx.inst.Sources["resources."+field]; src != "" && !q.Unlimited {
			q.Source = src
		}
	}
	if r.Memory.Unlimited {
		warn(SectionResources, "no memory limit: the agent can exhaust the host's memory")
	}
	if r.CPUs.Unlimited {
		warn(SectionResources, "no CPU limit: the agent can use every host CPU")
	}
	if r.Pids.Unlimited {
		warn(SectionResources, "no pids limit: a fork bomb can exhaust the host's process table")
	}
	return r
}

func bytesQuantity(written string, n int64, none string) Quantity {
	if n <= 0 {
		return Quantity{Text: none, Unit: "bytes", Unlimited: true}
	}
	text := strconv.FormatInt(n, 10) + " bytes"
	if written != "" {
		text = written + " (" + text + ")"
	}
	return Quantity{Text: text, Value: n, Unit: "bytes"}
}

func (b builder) hostEffects(fx facts) HostEffects {
	o := b.opts.Observation
	he := HostEffects{Effects: []HostEffect{}}
	engineKnown := o != nil && o.Engine != nil
	switch {
	case o == nil:
		he.Presence = "unknown (not observed)"
	case o.Engine == nil:
		he.Presence = "unknown (engine unreachable: " + o.EngineError + "); state files observed read-only"
	default:
		he.Presence = "observed read-only: the engine"
		if o.Endpoint != "" {
			he.Presence += " at " + o.Endpoint
		}
		he.Presence += " and the state dir"
	}
	status := func(present bool) string {
		if !engineKnown {
			return StatusUnknown
		}
		if present {
			return StatusPresent
		}
		return StatusPlanned
	}

	// Image.
	di := fx.di
	img := HostEffect{Kind: EffectImage, Name: di.Image.Ref, AfterDelete: AfterDeletePersists}
	if bs := di.Image.Build; bs != nil {
		img.Effect = "build " + di.Image.Ref + " from " + bs.Context + " (" + bs.Dockerfile + ") through the engine, when the tag is missing"
	} else {
		img.Effect = "pull " + di.Image.Ref + " when it is missing locally (one attempt)"
	}
	present := engineKnown && o.Engine.Images[di.Image.Ref] != ""
	img.Status = status(present)

	// Network and container, by name and instance label.
	var netObs, ctrObs *drivers.ObservedResource
	if engineKnown {
		for i, n := range o.Engine.Networks {
			if n.Name == fx.name && n.Instance() == di.Name {
				netObs = &o.Engine.Networks[i]
			}
		}
		for i, c := range o.Engine.Containers {
			if c.Name == fx.name && c.Instance() == di.Name && c.Labels[drivers.LabelComponent] == drivers.ComponentAgent {
				ctrObs = &o.Engine.Containers[i]
			}
		}
	}
	network := HostEffect{Kind: EffectNetwork, Name: fx.name, Effect: "create the bridge network " + fx.name + " (a /28 subnet from jackin's pool)", Status: status(netObs != nil), AfterDelete: AfterDeleteRemoved}
	ctr := HostEffect{Kind: EffectContainer, Name: fx.name, AfterDelete: AfterDeleteRemoved, Status: status(ctrObs != nil)}
	if di.Running {
		ctr.Effect = "create the container " + fx.name + " and start it"
	} else {
		ctr.Effect = "create the container " + fx.name + " without starting it (state stopped)"
	}
	if ctrObs != nil && ctrObs.Labels[drivers.LabelSpecHash] != di.Hash {
		ctr.Detail = "spec changed: apply recreates it"
	}
	if len(di.Resources) > 0 && di.Resources[0].Network != nil && di.Resources[0].Network.Internal {
		network.Effect = "create the internal network " + fx.name + " (a /28 subnet from jackin's pool; no route out and no address on the host)"
	}
	he.Effects = append(he.Effects, img, network, ctr)
	he.Effects = append(he.Effects, egressEffects(fx, status, o)...)

	// Ports, bound while the container runs.
	running := ctrObs != nil && ctrObs.State == drivers.StateRunning
	for _, p := range di.Spec.Network.Ports {
		ap := AccessPort{Address: orDefault(p.Address, "0.0.0.0"), Host: p.Host, Container: p.Container, Protocol: p.Protocol}
		e := HostEffect{Kind: EffectPort, Name: portText(ap), Effect: "bind " + portText(ap) + " on the host while the container runs", Status: status(running), AfterDelete: AfterDeleteReleased}
		if mode := di.Spec.Network.Egress; mode == schema.EgressAllowlist || mode == schema.EgressNone {
			e.Effect = "bind " + portText(ap) + " on the host while the egress sidecar " + reconciler.SidecarName(b.fleet, di.Name) + " runs (it relays to the agent's port)"
		}
		he.Effects = append(he.Effects, e)
	}

	// Worktrees, clones and ephemeral volumes.
	volumes := map[string]bool{}
	if engineKnown {
		for _, v := range o.Engine.Volumes {
			if v.Instance() == di.Name {
				volumes[v.Name] = true
			}
		}
	}
	he.Effects = append(he.Effects, isolationEffects(fx, status, volumes)...)

	// State dir.
	db, lock := StatePaths(b.opts.StateDir, b.fleet)
	stateStatus := func(p string) string {
		if o == nil || o.StateFiles == nil {
			return StatusUnknown
		}
		if o.StateFiles[p] {
			return StatusPresent
		}
		return StatusPlanned
	}
	he.Effects = append(he.Effects,
		HostEffect{Kind: EffectStateDir, Name: db, Effect: "write the history database " + db + " (runs, actions, last-applied specs; creates the state dir if missing)", Status: stateStatus(db), AfterDelete: AfterDeletePersists},
		HostEffect{Kind: EffectStateDir, Name: lock, Effect: "take the fleet's writer lock " + lock, Status: stateStatus(lock), AfterDelete: AfterDeletePersists},
	)
	return he
}

// egressEffects are the host-side effects of an internal egress mode: the
// sidecar image built from jackin's executable, the policy file, the
// outbound network and the sidecar container.
func egressEffects(fx facts, status func(bool) string, o *Observation) []HostEffect {
	var out []HostEffect
	di := fx.di
	engineKnown := o != nil && o.Engine != nil
	for _, r := range di.Resources {
		switch {
		case r.Kind == drivers.KindNetwork && r.Name != fx.name:
			found := false
			if engineKnown {
				for _, n := range o.Engine.Networks {
					found = found || (n.Name == r.Name && n.Instance() == di.Name)
				}
			}
			out = append(out, HostEffect{Kind: EffectNetwork, Name: r.Name, Effect: "create the bridge network " + r.Name + " (the egress sidecar's outbound side)", Status: status(found), AfterDelete: AfterDeleteRemoved})
		case r.Kind == drivers.KindContainer && r.Component == drivers.ComponentEgress && r.Container != nil:
			img := r.Container.Image
			imgPresent := engineKnown && o.Engine.Images[img.Ref] != ""
			effect := "build " + img.Ref + " from jackin's own executable (FROM scratch), when the tag is missing"
			if img.Build != nil {
				effect += "; its context is written to " + img.Build.Context
			}
			out = append(out, HostEffect{Kind: EffectImage, Name: img.Ref, Effect: effect, Status: status(imgPresent), AfterDelete: AfterDeletePersists})
			found := false
			if engineKnown {
				for _, c := range o.Engine.Containers {
					found = found || (c.Name == r.Name && c.Instance() == di.Name)
				}
			}
			what := "the egress proxy"
			if di.Policy == nil {
				what = "the forwarder of the published ports"
			}
			out = append(out, HostEffect{Kind: EffectContainer, Name: r.Name, Effect: "create the container " + r.Name + " (" + what + ") and start it with the agent", Status: status(found), AfterDelete: AfterDeleteRemoved})
		}
	}
	if di.Policy != nil {
		out = append(out, HostEffect{Kind: EffectStateDir, Name: di.PolicyFile, Effect: "write the egress policy " + di.PolicyFile + " (the expanded allowlist; rewritten when allow changes, which the proxy reloads)", Status: StatusUnknown, AfterDelete: AfterDeletePersists})
	}
	return out
}

func (b builder) recovery(fx facts) Recovery {
	r := Recovery{Restore: b.restore}
	db, _ := StatePaths(b.opts.StateDir, b.fleet)
	var binds []string
	for _, m := range fx.di.Spec.Mounts {
		if m.Mode == schema.MountRW || m.Mode == schema.MountRO {
			binds = append(binds, "host path "+m.Src+" (mounted "+m.Mode+" at "+m.Dst+")")
		}
	}
	var tmpfs []string
	for _, m := range fx.tmpfs {
		tmpfs = append(tmpfs, "tmpfs "+m.Dst)
	}
	image := "the image " + fx.di.Image.Ref + " (jackin never removes images)"
	history := "history in " + db
	var checkouts, claims, volumes []string
	for _, m := range fx.di.Spec.Mounts {
		rm, ok := renderedMount(fx, m.Dst)
		if !ok {
			continue
		}
		switch m.Mode {
		case schema.MountWorktree, schema.MountClone:
			if rm.Clone != nil {
				claims = append(claims, clonedCheckoutOf(fx, rm.Source).volume+" (the "+m.Mode+" of "+m.Src+" at "+m.Dst+")")
				continue
			}
			checkouts = append(checkouts, m.Mode+" "+rm.Source+" (at "+m.Dst+")")
		case schema.MountEphemeral:
			volumes = append(volumes, "volume "+rm.Source+" (at "+m.Dst+")")
		}
	}
	var keptOnDelete []string
	for _, c := range checkouts {
		keptOnDelete = append(keptOnDelete, c+", while it holds uncommitted or unpushed work (until jackin delete --purge)")
	}
	for _, c := range claims {
		keptOnDelete = append(keptOnDelete, c+", always (until jackin delete --purge)")
	}
	for _, m := range renderedMounts(fx, reconciler.MountFromSupervisor) {
		if m.Target == supervisor.HomeStore {
			what := "the runtime's homes"
			if hs := fx.di.Spec.Run.Homes; len(hs) > 0 {
				what += ": ~/" + strings.Join(hs, ", ~/")
			} else {
				what += ", none for " + fx.inst.Runtime().Name
			}
			volumes = append(volumes, "volume "+m.Source+" ("+what+")")
		}
	}
	r.SurvivesRecreate = append(append(append(append(append([]string{}, binds...), checkouts...), claims...), volumes...), image, history)
	r.LostOnRecreate = append([]string{"the container's writable layer: everything written outside the mounts", "running processes"}, tmpfs...)
	r.SurvivesDelete = append(append(append([]string{}, binds...), keptOnDelete...), image, history)
	r.LostOnDelete = append(append([]string{"the container " + fx.name + " and its writable layer", "the network " + fx.name}, tmpfs...), volumes...)
	for _, c := range checkouts {
		r.LostOnDelete = append(r.LostOnDelete, c+", when it is clean and pushed or merged")
	}
	if len(claims) > 0 {
		r.PreservedWork = "the checkouts the instance cloned: " + strings.Join(claims, ", ") + "; review and push from inside (jackin exec), as jackin work sees only checkouts on this machine"
		if len(fx.rwMounts) > 0 {
			r.PreservedWork += "; and what the agent writes to its read-write mounts"
		}
	} else if len(checkouts) > 0 {
		r.PreservedWork = "the worktree and clone checkouts: " + strings.Join(checkouts, ", ") + "; jackin work lists them with their unpushed work and how to review it"
		if len(fx.rwMounts) > 0 {
			r.PreservedWork += "; and what the agent writes to its read-write mounts"
		}
	} else if len(fx.rwMounts) == 0 {
		r.PreservedWork = "none: the instance has no read-write mount, so nothing the agent writes outlives the container"
	} else {
		var dsts []string
		for _, m := range fx.rwMounts {
			dsts = append(dsts, m.Dst+" (host "+m.Src+")")
		}
		r.PreservedWork = "only what the agent writes to its read-write mounts: " + strings.Join(dsts, ", ") + "; tmpfs and the container layer are lost"
	}
	r.Snapshots = b.snapshots(fx)
	return r
}

// snapshots is the recovery section's snapshot part: computed from the
// instance as resolved, plus the repository's size read from disk.
func (b builder) snapshots(fx facts) Snapshots {
	inst := fx.inst
	inst.Name = fx.di.Name
	s := Snapshots{Policy: inst.Recovery.Policy(), Keep: inst.Recovery.KeepCount(), Covered: []string{}, Excludes: []string{}, NotCovered: []string{}}
	switch s.Policy {
	case schema.SnapshotBeforeStart:
		s.When = "before the agent container is created, recreated or started (apply and watch), and on jackin snapshot create"
	case schema.SnapshotBeforeApply:
		s.When = "before any apply or watch heal that changes the instance, and on jackin snapshot create"
	default:
		s.When = "only on jackin snapshot create (recovery.snapshot is off)"
	}
	for _, t := range recovery.TargetsOf(b.opts.StateDir, b.fleet, &inst) {
		line := t.Kind + " " + t.Path + " (at " + t.Dst + ")"
		if t.Kind != recovery.KindRW {
			line += ", with uncommitted and untracked files"
		}
		s.Covered = append(s.Covered, line)
	}
	s.Excludes = append(s.Excludes, inst.SnapshotExcludes...)
	if b.opts.StateDir != "" {
		s.Repository = recovery.RepoDir(b.opts.StateDir, b.fleet)
		if b.opts.Observation != nil && b.opts.Observation.StateFiles != nil {
			s.RepositoryBytes, _ = recovery.DirSize(s.Repository)
		}
	}
	s.NotCovered = append(s.NotCovered,
		"the agent's network side effects (requests it made, anything it sent or changed elsewhere)",
		"pushes and other changes to remote repositories",
		"inner Docker state (a private daemon's images, containers and volumes)",
		"ephemeral and runtime-home volumes (the engine's, not on a host path jackin reads)",
		"tmpfs and the container's writable layer",
		".git entries of a checkout (commits the agent made stay on its scratch branch), sockets, FIFOs and devices",
		"read-only mounts (the agent cannot change them)")
	if len(s.Covered) == 0 {
		s.NotCovered = append([]string{"nothing to snapshot: the instance has no rw mount and no worktree or clone"}, s.NotCovered...)
	}
	// The manifest flags of the restore line: "jackin apply -f X ...".
	m := strings.TrimPrefix(b.restore, "jackin apply ")
	if i := strings.Index(m, " (with"); i >= 0 {
		m = m[:i]
	}
	if !strings.HasPrefix(m, "-f ") || strings.Contains(m, "<") {
		m = "-f MANIFEST"
	}
	s.Commands = []string{
		"jackin snapshot create " + m + " " + inst.Name,
		"jackin snapshot list " + m + " " + inst.Name,
		"jackin snapshot restore " + m + " " + inst.Name + " [ID] --stop",
	}
	return s
}

func (b builder) residualRisk(fx facts, c Contract) []Risk {
	risks := []Risk{{RiskSharedKernel, "the agent shares the host kernel: a kernel exploit escapes the container to the host"}}
	if fx.inst.Backend == schema.BackendOrbStack {
		risks = append(risks, orbRisk())
	}
	if fx.inst.Backend == schema.BackendKubernetes {
		risks = append(risks, kubernetesRisk())
	}
	if r, ok := engineRisk(c.Sandbox.Engine); ok {
		risks = append(risks, r)
	}
	sb := fx.di.Spec.Sandbox
	caps := "the engine's default capabilities"
	if sb != nil && (len(sb.CapDrop) > 0 || len(sb.CapAdd) > 0) {
		caps = "the capabilities " + strings.Join(c.Sandbox.Capabilities.Effective, " ")
		if len(c.Sandbox.Capabilities.Effective) == 0 {
			caps = "no capabilities"
		}
	}
	switch {
	case sb == nil || sb.User == "" || sb.User == "0" || strings.HasPrefix(sb.User, "0:"):
		risks = append(risks, Risk{RiskRootInContainer, "the agent runs as root in the container unless the image sets USER, with " + caps + " and no user namespace set by jackin"})
	case !slices.Contains(sb.CapDrop, "ALL"):
		risks = append(risks, Risk{RiskRootInContainer, "the agent runs as uid " + sb.User + " with " + caps + " in its bounding set; a setuid binary in the image could regain them unless no-new-privileges is set"})
	}
	if d := c.Sandbox.DockerDaemon; d != nil {
		risks = append(risks, Risk{RiskPrivateDaemon, "the agent controls a Docker daemon whose sidecar holds " + d.Privilege +
			". Through it the agent can run containers with that power (privileged ones, host devices), so an agent with private Docker can reach root on the host: treat it as trusted with the host, or run it in a VM; the daemon's containers are not bound by the instance's limits"})
	}
	if fx.openEgress {
		risks = append(risks, Risk{RiskOpenEgress, "egress is open: the agent can send anything it can read (mounts, env, the image) to any host"})
	}
	if len(fx.rwMounts) > 0 {
		var srcs []string
		for _, m := range fx.rwMounts {
			srcs = append(srcs, m.Src)
		}
		risks = append(risks, Risk{RiskWritableMounts, "the agent can modify and delete the host files under " + strings.Join(srcs, ", ")})
	}
	for _, m := range renderedMounts(fx, reconciler.MountFromGitDir) {
		risks = append(risks, Risk{RiskGitDirWritable, "the agent can write the source repository's git directory " + m.Source + " (its objects and every branch and tag: it can move or delete your branches; its config and hooks are mounted read-only, so it cannot make git on the host run a command); a clone mount keeps the source untouched"})
	}
	if len(fx.sensitive) > 0 {
		var srcs []string
		for _, s := range fx.sensitive {
			srcs = append(srcs, s.Source)
		}
		risks = append(risks, Risk{RiskSensitiveMounts, "sensitive host paths are mounted (" + strings.Join(srcs, ", ") + "): the agent can read the credentials in them"})
	}
	var unlimited []string
	if c.Resources.Memory.Unlimited {
		unlimited = append(unlimited, "memory")
	}
	if c.Resources.CPUs.Unlimited {
		unlimited = append(unlimited, "CPUs")
	}
	if c.Resources.Pids.Unlimited {
		unlimited = append(unlimited, "pids")
	}
	if len(unlimited) > 0 {
		risks = append(risks, Risk{RiskNoLimits, "no limit on " + strings.Join(unlimited, ", ") + ": the agent can exhaust the host's " + strings.Join(unlimited, ", ")})
	}
	for _, p := range c.ServicePorts.Ports {
		if p.AllInterfaces {
			risks = append(risks, Risk{RiskPublicPorts, "ports published on all interfaces are reachable from other machines"})
			break
		}
	}
	if len(c.Credentials.EnvKeys) > 0 {
		risks = append(risks, Risk{RiskEnvValues, "env values are readable by every process in the container and by anyone who can inspect the container on the host"})
	}
	switch fx.di.Spec.Network.Egress {
	case schema.EgressAllowlist:
		risks = append(risks, Risk{RiskAllowedHosts, "the agent can send anything it can read (mounts, env, the image) to the allowed hosts: an allowlist limits where data goes, not what"})
	case schema.EgressNone:
	default:
		risks = append(risks, Risk{RiskDNSChannel, "DNS resolution works: a channel out that stays open whatever the egress mode"})
	}
	return risks
}

// dockerDaemon describes the private daemon docker "private" adds.
func (b builder) dockerDaemon(fx facts) *DockerDaemon {
	image, privilege := schema.DefaultDaemonImage, schema.DaemonPrivileged
	if dd := fx.di.Spec.DockerDaemon; dd != nil {
		image, privilege = dd.Image, dd.Privilege
	}
	tlsDir := reconciler.DockerTLSDir("<state dir>", b.fleet, fx.di.Name)
	if fx.di.DockerTLS != nil {
		tlsDir = fx.di.DockerTLS.Dir
	}
	d := &DockerDaemon{
		Sidecar:  reconciler.DockerSidecarName(b.fleet, fx.di.Name),
		Image:    image,
		Endpoint: fmt.Sprintf("tcp://%s:%d, TLS only: the daemon requires a client certificate signed by the instance's own CA, and the agent verifies the daemon's", reconciler.DockerAlias, reconciler.DockerPort),
		AgentEnv: []string{
			fmt.Sprintf("DOCKER_HOST=tcp://%s:%d", reconciler.DockerAlias, reconciler.DockerPort),
			"DOCKER_TLS_VERIFY=1",
			"DOCKER_CERT_PATH=" + reconciler.DockerClientDir,
			"TESTCONTAINERS_HOST_OVERRIDE=" + reconciler.DockerAlias,
		},
		Network: fx.name + " only (alias " + reconciler.DockerAlias + "), the instance's own network",
		Certificates: "CA, keys and certificates in " + tlsDir +
			" (directory 0700, files 0600), made by jackin for this instance and removed with it; the agent gets the client certificate and key read-only at " + reconciler.DockerClientDir,
		Data:   "volume " + reconciler.DockerVolumeName(b.fleet, fx.di.Name) + " at /var/lib/docker: images, containers and volumes survive recreates of the agent; removed when the instance is deleted. The host engine's images are neither used nor changed",
		Limits: "not covered: the daemon's containers run in cgroups of their own beside the sidecar's, so the instance's memory, CPU and pids limits do not bound them",
	}
	switch {
	case fx.di.DockerTLS != nil && fx.di.DockerTLS.ClientOwner != nil:
		d.ClientKey = fmt.Sprintf("mode 0600, handed to the agent's user %d:%d", fx.di.DockerTLS.ClientOwner.UID, fx.di.DockerTLS.ClientOwner.GID)
	case fx.di.Spec.Sandbox != nil && fx.di.Spec.Sandbox.User != "":
		d.ClientKey = "mode 0600, owned by the user jackin runs as: readable by the agent (" + fx.di.Spec.Sandbox.User + ") when that is the same user or root"
	default:
		d.ClientKey = "mode 0600, owned by the user jackin runs as: readable by an agent that runs as root or as that user; if the image's USER is another user, set security.user so jackin hands the key to it"
	}
	switch privilege {
	case schema.DaemonCapabilities:
		d.Privilege = "capabilities: not --privileged, but the capability set below (SYS_ADMIN and NET_ADMIN among them), no seccomp or AppArmor confinement, every device (device cgroup rule a *:* rwm) and the host's /sys/fs/cgroup read-write; /proc/sys stays read-only. It is narrower than --privileged, not a boundary: SYS_ADMIN with the host's cgroup hierarchy writable reaches root on the host"
		d.Capabilities = append([]string(nil), schema.DaemonCapabilitySet...)
	default:
		d.Privilege = "privileged: --privileged, every capability, every host device, no seccomp or AppArmor confinement, /proc and /sys writable; root in it is root on the host"
		d.Capabilities = []string{"ALL"}
	}
	switch fx.di.Spec.Network.Egress {
	case schema.EgressAllowlist:
		d.InnerEgress = "covered: the daemon sits only on the instance's internal network, so its containers (NATed through it) have no route out but the egress proxy, under the same allowlist; the daemon's own pulls go through the proxy (HTTP(S)_PROXY). Inside its containers the name egress does not resolve: they reach the proxy by its address. This holds while nothing escapes the sidecar, whose privilege (below) reaches the host"
		d.InnerEgressCovered = true
	case schema.EgressNone:
		d.InnerEgress = "covered: the daemon and the agent share an internal network with no route out, so the daemon's containers reach nothing outside the instance and it can pull nothing (load images with docker load or build FROM scratch). This holds while nothing escapes the sidecar, whose privilege (below) reaches the host"
		d.InnerEgressCovered = true
	default:
		d.InnerEgress = "as open as the agent: the daemon is on the instance's bridge, and its containers reach any host the agent can"
	}
	if fx.inst.Backend == schema.BackendKubernetes {
		kubernetesDaemon(d, b.fleet, fx.di.Name)
	}
	return d
}

func (b builder) tier(fx facts) Tier {
	t := Tier{Current: "docker container (shared kernel)", Reasons: []string{}}
	if fx.inst.Backend == schema.BackendOrbStack {
		t.Current = "docker container in an OrbStack isolated machine (shared kernel)"
	}
	if fx.inst.Backend == schema.BackendKubernetes {
		t.Current = "Kubernetes Pod (shared node kernel)"
	}
	if fx.docker != schema.DockerNone {
		t.Reasons = append(t.Reasons, "Docker access ("+fx.docker+"): a daemon next to the agent widens what a container escape reaches")
	}
	if fx.unattended {
		t.Reasons = append(t.Reasons, "unattended runs: the "+orDefault(fx.inst.Agent, schema.AgentShell)+" agent acts on its own, with no person watching each step")
	}
	for _, c := range fx.inst.Credentials {
		if c.Deliver.Kind != schema.DeliverProxy {
			t.Reasons = append(t.Reasons, "credentials the agent can read ("+strings.Join(readableCredentials(fx.inst), ", ")+"): an escape or a misbehaving agent can use them outside the sandbox")
			break
		}
	}
	if fx.openEgress && len(fx.rwMounts) > 0 {
		t.Reasons = append(t.Reasons, "an open network with a writable host mount: the agent can change host files and send them anywhere")
	}
	if len(t.Reasons) > 0 {
		t.Recommendation = TierStronger
		t.Recommended = "a microVM or VM backend (a kernel of its own); this version has none, so the residual risks apply as stated. On macOS, backend orbstack-isolated (an OrbStack isolated machine per instance: no Mac files but explicit shares, host network blocked) narrows what the agent reaches, but its machines share one Linux kernel"
		if fx.inst.Backend == schema.BackendOrbStack {
			t.Recommended = "a microVM or VM backend (a kernel of its own); this version has none, so the residual risks apply as stated (the OrbStack machine narrows the agent's reach, not the kernel it shares)"
		}
		t.Summary = "a stronger tier is recommended: " + strings.Join(t.Reasons, "; ")
		return t
	}
	t.Recommendation = TierAdequate
	t.Recommended = t.Current
	facts := []string{"an attended shell agent", "no Docker access", "no credentials the agent can read"}
	if len(fx.rwMounts) == 0 {
		facts = append(facts, "no writable host mount")
	} else {
		facts = append(facts, "writable host mounts behind restricted egress")
	}
	t.Summary = "docker container is adequate for " + strings.Join(facts, ", ")
	return t
}

// restoreCommand is the apply command that recreates the fleet.
func restoreCommand(paths []string) string {
	if len(paths) == 0 {
		return "jackin apply -f <the fleet's manifest>"
	}
	var b strings.Builder
	b.WriteString("jackin apply")
	stdin := false
	for _, p := range paths {
		b.WriteString(" -f ")
		b.WriteString(shellQuote(p))
		if p == "-" {
			stdin = true
		}
	}
	if stdin {
		b.WriteString(" (with the same manifest on stdin)")
	}
	return b.String()
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:@%+=,-]+$`)

func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// readableCredentials are the credentials delivered into the container
// (file or env), sorted.
func readableCredentials(inst schema.Instance) []string {
	var out []string
	for _, n := range inst.CredentialNames() {
		if inst.Credentials[n].Deliver.Kind != schema.DeliverProxy {
			out = append(out, n)
		}
	}
	return out
}

// effectiveCommand is what the supervisor runs after the image's
// entrypoint: the runtime's command with args, or the instance's command
// (shell); empty when the image's own command runs.
func effectiveCommand(s reconciler.Spec) []string {
	if s.Run.ImageCommand {
		return nil
	}
	return s.Run.Argv
}
