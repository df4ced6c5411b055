package manifests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/token"

	"github.com/jackin-dev/jackin/egress"
	"github.com/jackin-dev/jackin/runtimes"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/workspace"
)

// raw* mirror the manifest with pointers, so a merge can tell "unset" from
// "set to the zero value".
type rawFleet struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
}

type rawInstance struct {
	Description  *string                  `json:"description"`
	Backend      *string                  `json:"backend"`
	OrbStack     *rawOrbStack             `json:"orbstack"`
	Kubernetes   *rawKubernetes           `json:"kubernetes"`
	Engine       *string                  `json:"engine"`
	Role         *rawRole                 `json:"role"`
	Agent        *string                  `json:"agent"`
	Command      *[]string                `json:"command"`
	Args         *[]string                `json:"args"`
	State        *string                  `json:"state"`
	Env          map[string]string        `json:"env"`
	Labels       map[string]string        `json:"labels"`
	Mounts       *[]rawMount              `json:"mounts"`
	Resources    *rawResources            `json:"resources"`
	Network      *rawNetwork              `json:"network"`
	Docker       *string                  `json:"docker"`
	DockerDaemon *rawDockerDaemon         `json:"dockerDaemon"`
	Profile      *string                  `json:"profile"`
	Security     *rawSecurity             `json:"security"`
	Credentials  map[string]rawCredential `json:"credentials"`
	Recovery     *rawRecovery             `json:"recovery"`
	Integrations *[]string                `json:"integrations"`
	Idle         *rawIdle                 `json:"idle"`
	// ownDockerDaemon is set by merge when the instance itself (not
	// defaults) gives dockerDaemon.
	ownDockerDaemon bool
	// ownOrbStack: the instance itself (not defaults) gives orbstack.
	ownOrbStack bool
	// ownKubernetes: the instance itself (not defaults) gives kubernetes.
	ownKubernetes bool
}

type rawRecovery struct {
	Snapshot *string `json:"snapshot"`
	Keep     *int    `json:"keep"`
}

// rawIdle is idle cleanup as written; merged field by field.
type rawIdle struct {
	After  *string   `json:"after"`
	Action *string   `json:"action"`
	Exec   *[]string `json:"exec"`
}

type rawOrbStack struct {
	Distro           *string `json:"distro"`
	BlockHostNetwork *bool   `json:"blockHostNetwork"`
	SSHAgent         *string `json:"sshAgent"`
}

type rawDockerDaemon struct {
	Image     *string `json:"image"`
	Privilege *string `json:"privilege"`
}

// rawSecurity is the manifest's per-field override of the profile's sandbox.
type rawSecurity struct {
	User            *string `json:"user"`
	ReadOnlyRoot    *bool   `json:"readOnlyRoot"`
	NoNewPrivileges *bool   `json:"noNewPrivileges"`
	Capabilities    *struct {
		Drop []string `json:"drop"`
		Add  []string `json:"add"`
	} `json:"capabilities"`
}

type rawRole struct {
	Image *string   `json:"image"`
	Build *rawBuild `json:"build"`
}

type rawBuild struct {
	Context    string            `json:"context"`
	Dockerfile *string           `json:"dockerfile"`
	Args       map[string]string `json:"args"`
}

type rawMount struct {
	Src            *string `json:"src"`
	Dst            string  `json:"dst"`
	Mode           string  `json:"mode"`
	Size           *string `json:"size"`
	AllowSensitive *bool   `json:"allowSensitive"`
	Ref            *string `json:"ref"`
}

type rawResources struct {
	Memory            *string  `json:"memory"`
	MemoryReservation *string  `json:"memoryReservation"`
	CPUs              *float64 `json:"cpus"`
	Pids              *int64   `json:"pids"`
	Nofile            *int64   `json:"nofile"`
}

type rawNetwork struct {
	Egress        *string    `json:"egress"`
	Allow         *[]string  `json:"allow"`
	EgressNetwork *string    `json:"egressNetwork"`
	UpstreamProxy *string    `json:"upstreamProxy"`
	Ports         *[]rawPort `json:"ports"`
}

type rawPort struct {
	Container int     `json:"container"`
	Host      *int    `json:"host"`
	Address   *string `json:"address"`
	Protocol  *string `json:"protocol"`
}

// merge applies defaults under an instance: the instance's value wins; maps
// merge key by key; resources and network merge field by field; a role,
// lists and scalars come whole from one side.
func merge(d, in rawInstance) rawInstance {
	out := in
	out.Description = pick(in.Description, d.Description)
	out.Backend = pick(in.Backend, d.Backend)
	out.Engine = pick(in.Engine, d.Engine)
	out.ownOrbStack = in.OrbStack != nil
	if d.OrbStack != nil {
		o := rawOrbStack{}
		if in.OrbStack != nil {
			o = *in.OrbStack
		}
		o.Distro = pick(o.Distro, d.OrbStack.Distro)
		o.BlockHostNetwork = pick(o.BlockHostNetwork, d.OrbStack.BlockHostNetwork)
		o.SSHAgent = pick(o.SSHAgent, d.OrbStack.SSHAgent)
		out.OrbStack = &o
	}
	out.ownKubernetes = in.Kubernetes != nil
	out.Kubernetes = mergeKubernetes(d.Kubernetes, in.Kubernetes)
	out.Agent = pick(in.Agent, d.Agent)
	out.Args = pick(in.Args, d.Args)
	out.State = pick(in.State, d.State)
	out.Docker = pick(in.Docker, d.Docker)
	out.ownDockerDaemon = in.DockerDaemon != nil
	if d.DockerDaemon != nil {
		dd := rawDockerDaemon{}
		if in.DockerDaemon != nil {
			dd = *in.DockerDaemon
		}
		dd.Image = pick(dd.Image, d.DockerDaemon.Image)
		dd.Privilege = pick(dd.Privilege, d.DockerDaemon.Privilege)
		out.DockerDaemon = &dd
	}
	out.Profile = pick(in.Profile, d.Profile)
	if d.Security != nil {
		s := rawSecurity{}
		if in.Security != nil {
			s = *in.Security
		}
		s.User = pick(s.User, d.Security.User)
		s.ReadOnlyRoot = pick(s.ReadOnlyRoot, d.Security.ReadOnlyRoot)
		s.NoNewPrivileges = pick(s.NoNewPrivileges, d.Security.NoNewPrivileges)
		s.Capabilities = pick(s.Capabilities, d.Security.Capabilities)
		out.Security = &s
	}
	if in.Role == nil || (in.Role.Image == nil && in.Role.Build == nil) {
		out.Role = d.Role
	}
	out.Command = pick(in.Command, d.Command)
	out.Mounts = pick(in.Mounts, d.Mounts)
	out.Env = mergeMaps(d.Env, in.Env)
	out.Labels = mergeMaps(d.Labels, in.Labels)
	out.Credentials = mergeCredentials(d.Credentials, in.Credentials)
	if d.Recovery != nil {
		rc := rawRecovery{}
		if in.Recovery != nil {
			rc = *in.Recovery
		}
		rc.Snapshot = pick(rc.Snapshot, d.Recovery.Snapshot)
		rc.Keep = pick(rc.Keep, d.Recovery.Keep)
		out.Recovery = &rc
	}
	out.Integrations = pick(in.Integrations, d.Integrations)
	if d.Idle != nil {
		id := rawIdle{}
		if in.Idle != nil {
			id = *in.Idle
		}
		id.After = pick(id.After, d.Idle.After)
		id.Action = pick(id.Action, d.Idle.Action)
		id.Exec = pick(id.Exec, d.Idle.Exec)
		out.Idle = &id
	}
	if d.Resources != nil {
		r := rawResources{}
		if in.Resources != nil {
			r = *in.Resources
		}
		r.Memory = pick(r.Memory, d.Resources.Memory)
		r.MemoryReservation = pick(r.MemoryReservation, d.Resources.MemoryReservation)
		r.CPUs = pick(r.CPUs, d.Resources.CPUs)
		r.Pids = pick(r.Pids, d.Resources.Pids)
		r.Nofile = pick(r.Nofile, d.Resources.Nofile)
		out.Resources = &r
	}
	if d.Network != nil {
		n := rawNetwork{}
		if in.Network != nil {
			n = *in.Network
		}
		n.Egress = pick(n.Egress, d.Network.Egress)
		n.EgressNetwork = pick(n.EgressNetwork, d.Network.EgressNetwork)
		n.UpstreamProxy = pick(n.UpstreamProxy, d.Network.UpstreamProxy)
		n.Allow = pick(n.Allow, d.Network.Allow)
		n.Ports = pick(n.Ports, d.Network.Ports)
		out.Network = &n
	}
	return out
}

// pick is the instance's value a when it sets one, else the default b.
func pick[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

func mergeMaps(d, in map[string]string) map[string]string {
	if len(d) == 0 {
		return in
	}
	out := maps.Clone(d)
	maps.Copy(out, in)
	return out
}

// resolve decodes the user's manifests into a fleet: defaults merged, paths
// absolute, sizes parsed, policy checked. Problems go to l.diags.
func (l *loader) resolve() *schema.Fleet {
	// One JSON export and a plain unmarshal is much cheaper than decoding
	// value by value through CUE; the data is concrete once it passed the
	// schema. Type errors are already reported by the schema pass.
	var doc struct {
		rawFleet
		Defaults  rawInstance                `json:"defaults"`
		Instances map[string]json.RawMessage `json:"instances"`
		Runtimes  map[string]rawRuntime      `json:"runtimes"`
		Engines   map[string]rawEngine       `json:"engines"`
	}
	b, err := l.data.MarshalJSON()
	if err != nil {
		l.addCUEErrors(err)
		return &schema.Fleet{Instances: map[string]schema.Instance{}}
	}
	_ = json.Unmarshal(b, &doc) // a mistyped part stays zero; the schema pass reported it
	fleet := &schema.Fleet{APIVersion: doc.APIVersion, Kind: doc.Kind, Name: doc.Name, Instances: map[string]schema.Instance{}}
	fleet.Runtimes = l.customRuntimes(doc.Runtimes)
	l.runtimes = fleet.Runtimes
	fleet.Engines = l.fleetEngines(doc.Engines)
	l.engines = fleet.Engines
	ports := map[string][]publishedPort{} // "port/protocol" -> claims, across the fleet
	checkers := map[string]*instanceChecker{}
	for _, name := range sortedKeys(doc.Instances) {
		var raw rawInstance
		if err := json.Unmarshal(doc.Instances[name], &raw); err != nil {
			// Never drop an instance silently: a missing instance is a delete.
			path := []string{"instances", name}
			if !l.hasErrorUnder(path) {
				l.errAtPos(l.posOfPath(path), formatPath(path), fmt.Sprintf("cannot read this instance: %v", err))
			}
			continue
		}
		c := &instanceChecker{l: l, name: name}
		inst := c.build(merge(doc.Defaults, raw))
		c.checkPorts(inst, ports)
		fleet.Instances[name] = inst
		checkers[name] = c
	}
	fleet.Pins = l.pins
	l.checkWritableNesting(checkers, fleet)
	l.workTools(b, fleet)
	l.queue(b, fleet)
	return fleet
}

// hasErrorUnder reports whether an error is already recorded at or under path.
func (l *loader) hasErrorUnder(path []string) bool {
	prefix := formatPath(path)
	for _, d := range l.diags {
		if d.Path == prefix || strings.HasPrefix(d.Path, prefix+".") || strings.HasPrefix(d.Path, prefix+"[") {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// instanceChecker resolves and checks one instance, placing problems in the
// instance's own text or, for inherited values, in defaults.
type instanceChecker struct {
	l    *loader
	name string
	// remoteEngine names the engine on another machine the instance runs
	// on (engines.go): its host paths are that machine's.
	remoteEngine string
}

// keyPos is where the instance is named.
func (c *instanceChecker) keyPos() token.Pos {
	return c.l.data.LookupPath(cue.MakePath(cue.Str("instances"), cue.Str(c.name))).Pos()
}

// at finds the position of a field in the text its merged value came from:
// the instance's own, or the inherited one in defaults (by the rules of
// merge). A field with no text (an implicit default such as the Dockerfile)
// is placed at the nearest enclosing value on that side.
func (c *instanceChecker) at(rel ...any) (token.Pos, string) {
	own := append([]cue.Selector{cue.Str("instances"), cue.Str(c.name)}, selectors(rel)...)
	inherited := append([]cue.Selector{cue.Str("defaults")}, selectors(rel)...)
	side, root := own, 2
	if !c.ownsValue(rel) {
		side, root = inherited, 1
	}
	for n := len(side); n > root; n-- {
		if v := c.l.data.LookupPath(cue.MakePath(side[:n]...)); v.Exists() {
			if p := v.Pos(); p.IsValid() {
				return p, pathString(side)
			}
		}
	}
	return c.keyPos(), pathString(own)
}

// ownsValue reports whether the merged value at rel comes from the instance
// rather than defaults: the unit of merge (a role, a list, a scalar; one
// field of resources or network; one key of env or labels) is the
// instance's own when the instance sets it.
func (c *instanceChecker) ownsValue(rel []any) bool {
	if len(rel) == 0 {
		return true
	}
	unit := rel[:1]
	switch rel[0] {
	case "resources", "network", "env", "labels", "credentials", "idle":
		if len(rel) >= 2 {
			unit = rel[:2]
		}
	case "role":
		// An instance's role counts only when it names an image or a build.
		return c.ownHas("role", "image") || c.ownHas("role", "build")
	}
	if c.ownHas(unit...) {
		return true
	}
	// Nothing inherited either: the instance is where to look.
	return !c.l.data.LookupPath(cue.MakePath(append([]cue.Selector{cue.Str("defaults")}, selectors(unit)...)...)).Exists()
}

func (c *instanceChecker) ownHas(rel ...any) bool {
	sels := append([]cue.Selector{cue.Str("instances"), cue.Str(c.name)}, selectors(rel)...)
	return c.l.data.LookupPath(cue.MakePath(sels...)).Exists()
}

func selectors(rel []any) []cue.Selector {
	out := make([]cue.Selector, 0, len(rel))
	for _, r := range rel {
		switch v := r.(type) {
		case int:
			out = append(out, cue.Index(v))
		case string:
			out = append(out, cue.Str(v))
		}
	}
	return out
}

func pathString(sels []cue.Selector) string {
	parts := make([]string, len(sels))
	for i, s := range sels {
		if s.Type() == cue.IndexLabel {
			parts[i] = fmt.Sprint(s.Index())
			continue
		}
		parts[i] = s.Unquoted()
	}
	return formatPath(parts)
}

func (c *instanceChecker) errorf(rel []any, format string, args ...any) {
	pos, p := c.at(rel...)
	c.l.errAtPos(pos, p, fmt.Sprintf(format, args...))
}

// baseDir is the directory relative paths at rel resolve against: that of
// the file holding the value.
func (c *instanceChecker) baseDir(rel ...any) string {
	if len(c.l.names) == 1 {
		return c.l.dirs[c.l.names[0]] // one file holds every value
	}
	pos, _ := c.at(rel...)
	if d, ok := c.l.dirs[pos.Filename()]; ok {
		return d
	}
	return c.l.opts.WorkDir
}

// hostPath expands ~ and makes p absolute against the holding file's directory.
func (c *instanceChecker) hostPath(p string, rel ...any) (string, bool) {
	expanded, ok := schema.ExpandHome(p, c.l.opts.Home)
	if !ok {
		c.errorf(rel, "%q: only ~ and ~/ are expanded (to your home directory), not ~user", p)
		return "", false
	}
	if !filepath.IsAbs(expanded) {
		expanded = filepath.Join(c.baseDir(rel...), expanded)
	}
	return filepath.Clean(expanded), true
}

func str(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

func (c *instanceChecker) build(r rawInstance) schema.Instance {
	inst := schema.Instance{
		Name:        c.name,
		Description: str(r.Description, ""),
		Backend:     str(r.Backend, schema.BackendDocker),
		Agent:       str(r.Agent, schema.AgentShell),
		State:       str(r.State, schema.StateRunning),
		Docker:      str(r.Docker, schema.DockerNone),
		Env:         r.Env,
		Labels:      r.Labels,
		Network:     schema.Network{Egress: schema.EgressOpen},
	}
	if r.Recovery != nil {
		inst.Recovery.Snapshot = str(r.Recovery.Snapshot, "")
		if r.Recovery.Keep != nil {
			inst.Recovery.Keep = *r.Recovery.Keep
		}
	}
	if r.Integrations != nil {
		inst.Integrations = slices.Compact(slices.Sorted(slices.Values(*r.Integrations)))
	}
	c.agent(r, &inst)
	c.role(r.Role, &inst)
	c.orbstack(r, &inst)
	c.kubernetes(r, &inst)
	c.engine(r, &inst)
	if inst.EngineSpec != nil && inst.EngineSpec.Remote() {
		c.remoteEngine = inst.Engine
	}
	if inst.Docker != schema.DockerPrivate && r.ownDockerDaemon {
		// Set in defaults it configures the instances that use it; set on
		// an instance without a private daemon it is a mistake.
		c.errorf([]any{"dockerDaemon"}, "dockerDaemon configures the private Docker daemon, and this instance has docker: %q: set docker: \"private\" or remove dockerDaemon", inst.Docker)
	}
	if inst.Docker == schema.DockerPrivate {
		dd := rawDockerDaemon{}
		if r.DockerDaemon != nil {
			dd = *r.DockerDaemon
		}
		inst.DockerDaemon = &schema.DockerDaemon{
			Image:     str(dd.Image, schema.DefaultDaemonImage),
			Privilege: str(dd.Privilege, schema.DaemonPrivileged),
		}
	}
	c.literalEnv(r.Env)
	for k, v := range r.Env {
		if inst.Docker == schema.DockerPrivate && k != "DOCKER_HOST" && slices.Contains(schema.DockerClientEnv, k) {
			c.errorf([]any{"env", k}, "env %s is set by jackin for docker: \"private\" (it points the agent's Docker client at its private daemon): remove it", k)
		}
		if k == "DOCKER_HOST" {
			if problem := schema.DockerHostProblem(v); problem != "" {
				c.errorf([]any{"env", k}, "%s", problem)
			}
		}
	}
	if r.Mounts != nil {
		c.mounts(*r.Mounts, &inst)
	}
	c.integrations(&inst)
	res := rawResources{}
	if r.Resources != nil {
		res = *r.Resources
	}
	c.profile(r, &res, &inst)
	c.resources(res, &inst)
	if r.Network != nil {
		inst.Network.Egress = str(r.Network.Egress, schema.EgressOpen)
		c.egress(*r.Network, &inst)
		if r.Network.Ports != nil {
			for i, p := range *r.Network.Ports {
				port := schema.Port{Container: p.Container, Address: str(p.Address, "127.0.0.1"), Protocol: str(p.Protocol, "tcp")}
				if p.Host != nil {
					port.Host = *p.Host
				}
				if net.ParseIP(port.Address) == nil {
					c.errorf([]any{"network", "ports", i, "address"}, "address %q is not an IP address (use 127.0.0.1, ::1, 0.0.0.0 or a host address)", port.Address)
				}
				if port.Protocol != "tcp" && inst.Network.Egress != schema.EgressOpen {
					c.errorf([]any{"network", "ports", i, "protocol"}, "protocol %q: in egress mode %q a port is published by jackin's forwarder, which relays tcp only", port.Protocol, inst.Network.Egress)
				}
				inst.Network.Ports = append(inst.Network.Ports, port)
			}
		}
	}
	c.credentials(r.Credentials, &inst)
	if r.Idle != nil {
		c.idle(*r.Idle, &inst)
	}
	if c.remoteEngine != "" {
		c.remoteLimits(&inst)
	}
	if inst.Backend == schema.BackendKubernetes {
		c.kubernetesLimits(&inst)
	}
	return inst
}

// idle resolves idle cleanup: after a positive duration, exec given with
// action "exec" and only then. An exec inherited from defaults by an
// instance that sets its own action is dropped, as egress fields are:
// defaults can hold a command that an instance stopping instead does not
// use.
func (c *instanceChecker) idle(r rawIdle, inst *schema.Instance) {
	if r.After == nil || r.Action == nil {
		// The schema requires both where idle is written; merged from
		// defaults and an instance, one side may hold only part of it.
		missing := "after"
		if r.After != nil {
			missing = "action"
		}
		if !c.l.hasErrorUnder([]string{"instances", c.name, "idle"}) && !c.l.hasErrorUnder([]string{"defaults", "idle"}) {
			c.errorf([]any{"idle"}, "idle needs %s (after: a duration such as \"30m\", action: \"stop\" or \"exec\"), here or in defaults", missing)
		}
		return
	}
	idle := &schema.Idle{Action: *r.Action}
	d, err := time.ParseDuration(*r.After)
	switch {
	case err != nil:
		c.errorf([]any{"idle", "after"}, "after %q is not a duration: use a number and a unit, such as \"90s\", \"30m\" or \"1h30m\"", *r.After)
	case d <= 0:
		c.errorf([]any{"idle", "after"}, "after %q must be more than zero", *r.After)
	}
	idle.After = d
	switch {
	case idle.Action == schema.IdleExec && r.Exec == nil:
		c.errorf([]any{"idle", "action"}, "action \"exec\" needs exec, the command to run in the agent container (for example exec: [\"gradle\", \"--stop\"])")
	case idle.Action == schema.IdleExec:
		idle.Exec = append([]string(nil), *r.Exec...)
	case r.Exec != nil:
		if !c.ownHas("idle", "exec") && c.ownHas("idle", "action") {
			break // defaults' command, for instances whose action is exec
		}
		c.errorf([]any{"idle", "exec"}, "exec applies to action \"exec\" only, and action is %q: remove exec, or set action: \"exec\"", idle.Action)
	}
	inst.Idle = idle
}

// egress checks the allowlist fields: each entry parses (hosts, wildcards,
// ports, known presets), and allow, egressNetwork and upstreamProxy appear
// only with egress "allowlist".
func (c *instanceChecker) egress(r rawNetwork, inst *schema.Instance) {
	mode := inst.Network.Egress
	only := func(field string) {
		// A field inherited from defaults by an instance that sets its own
		// egress mode is dropped: defaults can hold an allowlist that an
		// instance with egress "none" simply does not use.
		if !c.ownHas("network", field) && c.ownHas("network", "egress") {
			return
		}
		c.errorf([]any{"network", field}, "%s applies to egress \"allowlist\" only, and egress is %q", field, mode)
	}
	if r.Allow != nil {
		if mode != schema.EgressAllowlist {
			only("allow")
		} else {
			for i, entry := range *r.Allow {
				if entry == "" {
					continue // the schema reports it
				}
				var err error
				if strings.HasPrefix(entry, "@") {
					_, err = egress.PresetHosts(entry, inst.Runtime())
				} else {
					_, err = egress.ParseEntry(entry)
				}
				switch {
				case err == nil:
				case strings.HasPrefix(err.Error(), strconv.Quote(entry)):
					c.errorf([]any{"network", "allow", i}, "allow entry %v", err)
				default:
					c.errorf([]any{"network", "allow", i}, "allow entry %q: %v", entry, err)
				}
			}
			inst.Network.Allow = append([]string(nil), *r.Allow...)
		}
	}
	if r.EgressNetwork != nil {
		if mode != schema.EgressAllowlist {
			only("egressNetwork")
		} else {
			inst.Network.EgressNetwork = *r.EgressNetwork
		}
	}
	if r.UpstreamProxy != nil {
		if mode != schema.EgressAllowlist {
			only("upstreamProxy")
		} else if err := egress.CheckUpstream(*r.UpstreamProxy); err != nil {
			c.errorf([]any{"network", "upstreamProxy"}, "%v", err)
		} else {
			inst.Network.UpstreamProxy = *r.UpstreamProxy
		}
	}
}

func (c *instanceChecker) role(r *rawRole, inst *schema.Instance) {
	switch {
	case r == nil || (r.Image == nil && r.Build == nil):
		c.l.errAtPos(c.keyPos(), "instances."+c.name, "role is required: set role.image (an image reference) or role.build ({context: DIR}), here or in defaults")
		return
	case r.Image != nil && r.Build != nil:
		c.errorf([]any{"role"}, "role sets both image and build: set exactly one")
		return
	case r.Image != nil:
		inst.Role.Image = *r.Image
		return
	}
	b := r.Build
	ctxDir, ok := c.hostPath(b.Context, "role", "build", "context")
	if !ok {
		return
	}
	build := &schema.Build{Context: ctxDir, Dockerfile: str(b.Dockerfile, "Dockerfile"), Args: b.Args}
	inst.Role.Build = build
	st, err := os.Stat(ctxDir)
	switch {
	case err != nil:
		c.errorf([]any{"role", "build", "context"}, "build context %s does not exist", ctxDir)
		return
	case !st.IsDir():
		c.errorf([]any{"role", "build", "context"}, "build context %s is not a directory", ctxDir)
		return
	}
	df := path.Clean(filepath.ToSlash(build.Dockerfile))
	if path.IsAbs(df) || df == ".." || strings.HasPrefix(df, "../") {
		c.errorf([]any{"role", "build", "dockerfile"}, "dockerfile %q must be a path inside the build context", build.Dockerfile)
		return
	}
	if _, err := os.Stat(filepath.Join(ctxDir, df)); err != nil {
		c.errorf([]any{"role", "build", "dockerfile"}, "dockerfile %s does not exist in the build context %s", df, ctxDir)
	}
}

func (c *instanceChecker) mounts(ms []rawMount, inst *schema.Instance) {
	seen := map[string]int{}
	slugs := map[string]int{} // checkout and volume names, by slug
	repos := map[string]int{} // worktree sources, by git common dir
	for i, m := range ms {
		mount := schema.Mount{Dst: m.Dst, Mode: m.Mode, AllowSensitive: m.AllowSensitive != nil && *m.AllowSensitive}
		if !path.IsAbs(m.Dst) {
			c.errorf([]any{"mounts", i, "dst"}, "dst %q must be an absolute path inside the container", m.Dst)
		} else {
			mount.Dst = path.Clean(m.Dst)
			if j, dup := seen[mount.Dst]; dup {
				c.errorf([]any{"mounts", i, "dst"}, "dst %s is already mounted by mounts[%d]: each container path is mounted once", mount.Dst, j)
			}
			seen[mount.Dst] = i
			if schema.IsCheckout(m.Mode) || m.Mode == schema.MountEphemeral {
				slug := workspace.Slug(mount.Dst)
				if j, dup := slugs[slug]; dup {
					c.errorf([]any{"mounts", i, "dst"}, "dst %s and mounts[%d].dst %s both name the checkout or volume %q (from the container path): change one of them", mount.Dst, j, ms[j].Dst, slug)
				}
				slugs[slug] = i
			}
		}
		if m.Ref != nil {
			if schema.IsCheckout(m.Mode) {
				mount.Ref = *m.Ref
			} else {
				c.errorf([]any{"mounts", i, "ref"}, "ref applies to worktree and clone mounts only, not %q", m.Mode)
			}
		}
		if m.Size != nil && m.Mode != schema.MountTmpfs {
			c.errorf([]any{"mounts", i, "size"}, "size applies to tmpfs mounts only, not %q", m.Mode)
		}
		switch m.Mode {
		case schema.MountTmpfs:
			if m.Src != nil {
				c.errorf([]any{"mounts", i, "src"}, "a tmpfs mount has no src: it is memory inside the container")
			}
			if m.AllowSensitive != nil {
				c.errorf([]any{"mounts", i, "allowSensitive"}, "allowSensitive applies to mounts with a host src only: a tmpfs mount exposes no host path")
			}
			if m.Size != nil {
				mount.Size = *m.Size
				n, err := schema.ParseSize(*m.Size)
				if err != nil {
					c.errorf([]any{"mounts", i, "size"}, "%v", err)
				}
				mount.SizeBytes = n
			}
		case schema.MountRW, schema.MountRO, schema.MountWorktree, schema.MountClone, schema.MountEphemeral:
			if m.Src == nil {
				switch m.Mode {
				case schema.MountEphemeral:
					// An ephemeral volume starts empty without src.
				case schema.MountWorktree, schema.MountClone:
					c.errorf([]any{"mounts", i}, "a %s mount needs src, the git repository to check out", m.Mode)
				default:
					c.errorf([]any{"mounts", i}, "a %s mount needs src, the host path to mount", m.Mode)
				}
				break
			}
			if c.remoteEngine != "" {
				c.remoteSource(i, m, &mount)
				break
			}
			if inst.Backend == schema.BackendKubernetes {
				c.kubernetesSource(i, m, &mount)
				break
			}
			src, ok := c.hostPath(*m.Src, "mounts", i, "src")
			if !ok {
				break
			}
			mount.Src = src
			// A checkout or a volume seeded from src exposes src's content
			// just as a bind mount does: every kind gets the same checks.
			if !c.checkSource([]any{"mounts", i, "src"}, "mounting "+src, src, mount.AllowSensitive) {
				break
			}
			st, err := os.Stat(src)
			if err != nil {
				c.errorf([]any{"mounts", i, "src"}, "src %s does not exist: create it, or fix the path (relative paths start at the manifest file's directory)", src)
				break
			}
			if !c.pinChecked([]any{"mounts", i, "src"}, "mounting "+src, src, mount.AllowSensitive) {
				break
			}
			switch {
			case m.Mode == schema.MountEphemeral && !st.IsDir():
				c.errorf([]any{"mounts", i, "src"}, "src %s is not a directory: an ephemeral volume is seeded from a directory", src)
			case schema.IsCheckout(m.Mode):
				c.checkoutSource(i, &mount, repos)
			}
		}
		inst.Mounts = append(inst.Mounts, mount)
	}
}

// checkoutSource checks a worktree or clone source with git: a repository's
// top directory, a ref that names a commit, and for a worktree the
// repository's git directory (which the container also mounts). Two
// worktree mounts of one repository in one instance would share the scratch
// branch, so the second is refused.
func (c *instanceChecker) checkoutSource(i int, mount *schema.Mount, repos map[string]int) {
	ctx := c.l.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	src, err := workspace.InspectSource(ctx, mount.Src, mount.Ref)
	if err != nil {
		var refErr *workspace.UnknownRefError
		if errors.As(err, &refErr) {
			c.errorf([]any{"mounts", i, "ref"}, "%v", err)
			return
		}
		c.errorf([]any{"mounts", i, "src"}, "%v", err)
		return
	}
	if mount.Mode != schema.MountWorktree {
		return
	}
	if src.WorktreeConfig {
		c.errorf([]any{"mounts", i, "mode"}, "%s enables extensions.worktreeConfig (sparse checkout does): git would then read config.worktree from its git directory, which a worktree mount lets the agent write, and run what it names on the host; use mode \"clone\" for this repository", mount.Src)
		return
	}
	// The git directory is mounted read-write too: it gets the checks src
	// got (a linked worktree's git directory can be anywhere, ~/.git too).
	// A git directory holds the history of its repository's files: ~/.git
	// is as sensitive as the home it tracks.
	repoDir := src.CommonDir
	if filepath.Base(repoDir) == ".git" {
		repoDir = filepath.Dir(repoDir)
	}
	what := "the worktree would mount the git directory " + src.CommonDir + " of " + mount.Src + " read-write, and it"
	if !c.checkSource([]any{"mounts", i, "src"}, what, src.CommonDir, mount.AllowSensitive) {
		return
	}
	if repoDir != src.CommonDir && repoDir != mount.Src {
		if !c.checkSource([]any{"mounts", i, "src"}, what, repoDir, mount.AllowSensitive) {
			return
		}
	}
	if !c.pinChecked([]any{"mounts", i, "src"}, what, src.CommonDir, mount.AllowSensitive) {
		return
	}
	mount.GitCommonDir = src.CommonDir
	if j, dup := repos[src.CommonDir]; dup {
		c.errorf([]any{"mounts", i, "src"}, "mounts[%d] already makes a worktree of the repository %s for instance %q: both worktrees would need the one scratch branch %s; use one worktree mount per repository, or mode \"clone\" for the second", j, src.TopLevel, c.name, "jackin/<fleet>/"+c.name)
		return
	}
	repos[src.CommonDir] = i
}

func (c *instanceChecker) resources(r rawResources, inst *schema.Instance) {
	res := &inst.Resources
	size := func(p *string, field string) (string, int64) {
		if p == nil {
			return "", 0
		}
		n, err := schema.ParseSize(*p)
		if err != nil {
			c.errorf([]any{"resources", field}, "%v", err)
		}
		return *p, n
	}
	res.Memory, res.MemoryBytes = size(r.Memory, "memory")
	res.MemoryReservation, res.MemoryReservationBytes = size(r.MemoryReservation, "memoryReservation")
	if res.MemoryBytes > 0 && res.MemoryReservationBytes > res.MemoryBytes {
		c.errorf([]any{"resources", "memoryReservation"}, "memoryReservation %s is more than memory %s", res.MemoryReservation, res.Memory)
	}
	if res.MemoryBytes > 0 && res.MemoryBytes < 6<<20 {
		c.errorf([]any{"resources", "memory"}, "memory %s is below the engine's minimum of 6Mi", res.Memory)
	}
	if r.CPUs != nil {
		res.CPUs = *r.CPUs
		if *r.CPUs > float64(c.l.opts.HostCPUs) {
			c.errorf([]any{"resources", "cpus"}, "cpus %g is more than this host's %d CPUs", *r.CPUs, c.l.opts.HostCPUs)
		}
	}
	if r.Pids != nil {
		res.Pids = *r.Pids
	}
	if r.Nofile != nil {
		res.Nofile = *r.Nofile
	}
}

// profile applies the instance's hardening profile: its limits fill the
// resources the manifest leaves unset (r is changed), its sandbox settings
// are overridden by the manifest's security fields, and inst.Sources
// records where each effective value came from.
func (c *instanceChecker) profile(r rawInstance, res *rawResources, inst *schema.Instance) {
	inst.Profile = str(r.Profile, schema.ProfileStandard)
	p, ok := schema.Profiles[inst.Profile]
	if !ok {
		// The schema allows only known names and has said so at the
		// field: a second line here would only repeat it.
		if len(c.l.diags) == 0 {
			c.errorf([]any{"profile"}, "unknown profile %q", inst.Profile)
		}
		return
	}
	src := map[string]string{}
	fromProfile := schema.SourceProfile(p.Name)
	strLimit := func(field string, manifest **string, def string) {
		switch {
		case *manifest != nil:
			src["resources."+field] = schema.SourceManifest
		case def != "":
			v := def
			*manifest = &v
			src["resources."+field] = fromProfile
		}
	}
	strLimit("memory", &res.Memory, p.Memory)
	strLimit("memoryReservation", &res.MemoryReservation, p.MemoryReservation)
	// A profile's reservation never exceeds a memory limit the manifest
	// lowered: it is a soft floor, not a grant.
	if src["resources.memoryReservation"] == fromProfile && src["resources.memory"] == schema.SourceManifest {
		mem, err1 := schema.ParseSize(*res.Memory)
		rsv, err2 := schema.ParseSize(*res.MemoryReservation)
		if err1 == nil && err2 == nil && mem > 0 && rsv > mem {
			v := *res.Memory
			res.MemoryReservation = &v
			src["resources.memoryReservation"] = fromProfile + " (capped at resources.memory)"
		}
	}
	switch {
	case res.CPUs != nil:
		src["resources.cpus"] = schema.SourceManifest
	case p.CPUs > 0:
		v := p.CPUs
		if v > float64(c.l.opts.HostCPUs) {
			c.errorf([]any{"profile"}, "profile %q sets cpus %g, more than this host's %d CPUs: set resources.cpus", p.Name, v, c.l.opts.HostCPUs)
		}
		res.CPUs = &v
		src["resources.cpus"] = fromProfile
	}
	intLimit := func(field string, manifest **int64, def int64) {
		switch {
		case *manifest != nil:
			src["resources."+field] = schema.SourceManifest
		case def > 0:
			v := def
			*manifest = &v
			src["resources."+field] = fromProfile
		}
	}
	intLimit("pids", &res.Pids, p.Pids)
	intLimit("nofile", &res.Nofile, p.Nofile)

	sb := schema.Sandbox{
		CapDrop:         append([]string(nil), p.CapDrop...),
		CapAdd:          append([]string(nil), p.CapAdd...),
		NoNewPrivileges: p.NoNewPrivileges,
		ReadOnlyRoot:    p.ReadOnlyRoot,
	}
	if len(p.CapDrop) > 0 {
		src["security.capabilities"] = fromProfile
	}
	if p.NoNewPrivileges {
		src["security.noNewPrivileges"] = fromProfile
	}
	if p.ReadOnlyRoot {
		src["security.readOnlyRoot"] = fromProfile
	}
	if p.HostUser {
		sb.User = c.l.hostUser()
		src["security.user"] = fromProfile
	}
	if s := r.Security; s != nil {
		if s.User != nil {
			sb.User = *s.User
			if sb.User == "host" {
				sb.User = c.l.hostUser()
			}
			src["security.user"] = schema.SourceManifest
		}
		if s.ReadOnlyRoot != nil {
			sb.ReadOnlyRoot = *s.ReadOnlyRoot
			src["security.readOnlyRoot"] = schema.SourceManifest
		}
		if s.NoNewPrivileges != nil {
			sb.NoNewPrivileges = *s.NoNewPrivileges
			src["security.noNewPrivileges"] = schema.SourceManifest
		}
		if caps := s.Capabilities; caps != nil {
			for _, l := range []struct {
				field string
				names []string
			}{{"drop", caps.Drop}, {"add", caps.Add}} {
				for i, n := range l.names {
					if !schema.KnownCapability(n) {
						c.errorf([]any{"security", "capabilities", l.field, i}, "unknown capability %q: use a name from capabilities(7) without the CAP_ prefix (CHOWN, NET_ADMIN, ...), or ALL", n)
					}
				}
			}
			if slices.Contains(caps.Add, "ALL") {
				c.errorf([]any{"security", "capabilities", "add"}, "adding ALL capabilities is --privileged in all but name: list the capabilities the agent needs")
			}
			// Each list the manifest gives replaces the profile's; one it
			// leaves out keeps the profile's (a locked agent that adds a
			// capability still drops ALL first).
			if caps.Drop != nil {
				sb.CapDrop = append([]string{}, caps.Drop...)
			}
			if caps.Add != nil {
				sb.CapAdd = append([]string{}, caps.Add...)
			}
			src["security.capabilities"] = schema.SourceManifest
		}
	}
	if sb.ReadOnlyRoot {
		sb.Tmpfs = append([]string(nil), schema.ReadOnlyTmpfs...)
	}
	inst.Sandbox = sb
	if len(src) > 0 {
		inst.Sources = src
	}
}

// publishedPort is a host port already claimed, for clash checks.
type publishedPort struct {
	address string
	owner   string
}

// checkPorts refuses a host port published twice, in this instance or
// another: the same port and protocol on the same address, or on any
// address when either side binds all of them (0.0.0.0 or ::).
func (c *instanceChecker) checkPorts(inst schema.Instance, used map[string][]publishedPort) {
	for i, p := range inst.Network.Ports {
		if p.Host == 0 {
			continue
		}
		key := fmt.Sprintf("%d/%s", p.Host, p.Protocol)
		clash := ""
		for _, u := range used[key] {
			if sameAddress(u.address, p.Address) || isUnspecified(u.address) || isUnspecified(p.Address) {
				clash = u.owner
				break
			}
		}
		if clash != "" {
			c.errorf([]any{"network", "ports", i, "host"}, "host port %s:%d/%s is already published by %s", p.Address, p.Host, p.Protocol, clash)
			continue
		}
		used[key] = append(used[key], publishedPort{address: p.Address, owner: fmt.Sprintf("instance %q (network.ports[%d])", c.name, i)})
	}
}

// sameAddress compares IP addresses, not their spellings ("::1" and
// "0:0:0:0:0:0:0:1" are one address).
func sameAddress(a, b string) bool {
	if ia, ib := net.ParseIP(a), net.ParseIP(b); ia != nil && ib != nil {
		return ia.Equal(ib)
	}
	return a == b
}

func isUnspecified(addr string) bool {
	ip := net.ParseIP(addr)
	return ip != nil && ip.IsUnspecified()
}

// rawRuntime is a custom runtime's declaration.
type rawRuntime struct {
	Command     []string `json:"command"`
	Homes       []string `json:"homes"`
	Credentials []string `json:"credentials"`
	Hosts       []string `json:"hosts"`
}

// customRuntimes reads the fleet's own runtimes. A name of a built-in
// runtime is refused: an instance could not say which it means.
func (l *loader) customRuntimes(raw map[string]rawRuntime) map[string]runtimes.Runtime {
	if len(raw) == 0 {
		return nil
	}
	out := map[string]runtimes.Runtime{}
	for _, name := range sortedKeys(raw) {
		r := raw[name]
		path := []string{"runtimes", name}
		if runtimes.IsBuiltin(name) {
			l.errAtPos(l.posOfPath(path), formatPath(path), fmt.Sprintf("%q is a built-in runtime: name yours differently (the built-in ones are %s)", name, strings.Join(runtimes.Names(), ", ")))
			continue
		}
		if len(r.Command) == 0 {
			if !l.hasErrorUnder(path) {
				l.errAtPos(l.posOfPath(path), formatPath(path), "a runtime needs a command: what the supervisor runs, e.g. command: [\"my-agent\", \"--yes\"]")
			}
			// Declared, if wrongly: instances that name it get no second error.
			out[name] = runtimes.NewCustom(name, nil, nil, nil, nil)
			continue
		}
		for i, h := range r.Homes {
			if c := filepath.ToSlash(filepath.Clean(h)); c != h || strings.HasPrefix(h, "/") || h == "." || strings.HasPrefix(h, "../") {
				p := append(path, "homes", strconv.Itoa(i))
				l.errAtPos(l.posOfPath(p), formatPath(p), fmt.Sprintf("home %q: give a clean path relative to the home directory (like .config/my-agent)", h))
			}
		}
		out[name] = runtimes.NewCustom(name, r.Command, r.Homes, r.Credentials, r.Hosts)
	}
	return out
}

// agent resolves the instance's runtime and what it runs: command is for
// shell only (the other runtimes run their own command, and their hooks
// and state depend on it); args are appended to any runtime's command.
func (c *instanceChecker) agent(r rawInstance, inst *schema.Instance) {
	if r.Args != nil {
		inst.Args = *r.Args
	}
	if !runtimes.IsBuiltin(inst.Agent) {
		rt, ok := c.l.runtimes[inst.Agent]
		if !ok {
			hint := ""
			if near := nearest(inst.Agent, runtimes.Names()); len(near) == 1 {
				hint = fmt.Sprintf(": did you mean %q?", near[0])
			}
			c.errorf([]any{"agent"}, "agent %q is neither a built-in runtime (%s) nor declared under runtimes%s", inst.Agent, strings.Join(runtimes.Names(), ", "), hint)
			return
		}
		inst.CustomRuntime = &rt
	}
	if r.Command == nil {
		return
	}
	if inst.Agent != schema.AgentShell {
		rt := inst.Runtime()
		if rt.Custom {
			c.errorf([]any{"command"}, "agent %q runs the command its runtime declares (runtimes.%s.command: %s): remove command, and put extra arguments in args", inst.Agent, inst.Agent, strings.Join(rt.Command, " "))
		} else {
			c.errorf([]any{"command"}, "agent %q runs its own command (%s), which jackin's state hooks depend on: remove command, put extra arguments in args, or declare a runtime of your own under runtimes for another program", inst.Agent, strings.Join(rt.Command, " "))
		}
		return
	}
	inst.Command = *r.Command
}
