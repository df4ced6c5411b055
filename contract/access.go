package contract

import (
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// Access is the part of a contract that says what the agent can reach: the
// input of Widenings. It is computed the same way from a contract and from
// a last-applied reconciler.Spec, so a plan can compare what was applied with
// what is about to be.
type Access struct {
	Mounts      []AccessMount `json:"mounts"`
	Egress      string        `json:"egress"`
	Ports       []AccessPort  `json:"ports"`
	Docker      string        `json:"docker"`
	Credentials []string      `json:"credentials"`
	// Limits in canonical units; 0 is unlimited.
	MemoryBytes int64 `json:"memoryBytes"`
	NanoCPUs    int64 `json:"nanoCPUs"`
	Pids        int64 `json:"pids"`
	Nofile      int64 `json:"nofile,omitempty"`
	// Sandbox is the hardening in force (a zero value is the engine's
	// defaults); nil in NoAccess, where there is nothing to loosen.
	Sandbox *reconciler.SpecSandbox `json:"sandbox,omitempty"`
}

// AccessMount is a host bind mount (tmpfs mounts give no host access and are
// not listed).
type AccessMount struct {
	Src  string `json:"src"`
	Dst  string `json:"dst"`
	Mode string `json:"mode"` // rw | ro
	// Sensitive are the SensitivePathFindings of Src.
	Sensitive []string `json:"sensitive"`
}

// AccessPort is a published port.
type AccessPort struct {
	Address   string `json:"address"`
	Host      int    `json:"host"`
	Container int    `json:"container"`
	Protocol  string `json:"protocol"`
}

// AccessOfSpec computes the access of a canonical spec (such as a
// last-applied one from the store). home is the host home directory for the
// sensitive-path matcher.
func AccessOfSpec(s reconciler.Spec, home string) Access {
	a := Access{
		Mounts:      []AccessMount{},
		Egress:      s.Network.Egress,
		Ports:       []AccessPort{},
		Docker:      s.Docker,
		Credentials: []string{},
		MemoryBytes: s.Resources.MemoryBytes,
		NanoCPUs:    s.Resources.NanoCPUs,
		Pids:        s.Resources.Pids,
		Nofile:      s.Resources.Nofile,
		Sandbox:     &reconciler.SpecSandbox{},
	}
	if s.Sandbox != nil {
		sb := *s.Sandbox
		a.Sandbox = &sb
	}
	for _, m := range s.Mounts {
		// What a mount gives access to on the host: a worktree writes the
		// source repository's git directory (so counts as rw of src); a
		// clone or a seeded volume is a copy of src's content (ro).
		mode := m.Mode
		if schema.IsCheckout(m.Mode) && !filepath.IsAbs(m.Src) {
			// A git URL cloned inside a Pod: no host access.
			continue
		}
		switch m.Mode {
		case schema.MountRW, schema.MountRO:
		case schema.MountWorktree:
			mode = schema.MountRW
		case schema.MountClone, schema.MountEphemeral:
			if m.Src == "" {
				continue
			}
			mode = schema.MountRO
		default:
			continue
		}
		f := SensitivePathFindings(m.Src, home)
		if f == nil {
			f = []string{}
		}
		a.Mounts = append(a.Mounts, AccessMount{Src: m.Src, Dst: m.Dst, Mode: mode, Sensitive: f})
	}
	for _, c := range s.Credentials {
		a.Credentials = append(a.Credentials, accessCredential(c))
	}
	for _, p := range s.Network.Ports {
		a.Ports = append(a.Ports, AccessPort{Address: p.Address, Host: p.Host, Container: p.Container, Protocol: protocolOf(p.Protocol)})
	}
	return a
}

// Widening is one way the new access reaches further than the old. It is
// the reconciler's type, so a plan's actions can carry it.
type Widening = reconciler.Widening

// Widenings lists every way next reaches further than prev, in a stable
// order (field, then message): a host path newly mounted or made writable
// (a mount under a host path already mounted with at least the same mode is
// not new), a sensitive path newly exposed, more open egress, a container
// port newly published or published more widely (loopback, then a specific
// address, then all interfaces), Docker access granted, a credential added,
// and a resource limit raised or removed. Narrowing is not reported.
func Widenings(prev, next Access) []Widening {
	var out []Widening
	add := func(field, was, now, msg string) {
		out = append(out, Widening{Field: field, Was: was, Now: now, Message: msg})
	}

	// Mounts.
	prevSensitive := map[string]bool{}
	for _, m := range prev.Mounts {
		for _, f := range m.Sensitive {
			prevSensitive[f] = true
		}
	}
	for _, m := range next.Mounts {
		cover := coveringMount(prev.Mounts, m)
		switch {
		case cover == nil:
			add("mounts", "not mounted", m.Mode+" "+m.Src, fmt.Sprintf("host path %s is newly mounted at %s (%s)", m.Src, m.Dst, modeWord(m.Mode)))
		case cover.Mode == schema.MountRO && m.Mode == schema.MountRW:
			add("mounts", "ro "+cover.Src, "rw "+m.Src, fmt.Sprintf("host path %s becomes writable (mounted at %s)", m.Src, m.Dst))
		}
		for _, f := range m.Sensitive {
			if !prevSensitive[f] {
				prevSensitive[f] = true
				add("mounts", "not exposed", m.Src, fmt.Sprintf("mount %s -> %s %s", m.Src, m.Dst, f))
			}
		}
	}

	// Egress.
	if egressRank(next.Egress) > egressRank(prev.Egress) {
		add("network.egress", prev.Egress, next.Egress, fmt.Sprintf("egress widens from %q to %q", prev.Egress, next.Egress))
	}

	// Ports: by container port and protocol, the widest exposure.
	prevScope := map[string]int{}
	for _, p := range prev.Ports {
		k := strconv.Itoa(p.Container) + "/" + protocolOf(p.Protocol)
		if sc, ok := prevScope[k]; !ok || addressScope(p.Address) > sc {
			prevScope[k] = addressScope(p.Address)
		}
	}
	for _, p := range next.Ports {
		k := strconv.Itoa(p.Container) + "/" + protocolOf(p.Protocol)
		sc, ok := prevScope[k]
		switch {
		case !ok:
			add("network.ports", "not published", portText(p), fmt.Sprintf("container port %s is newly published on %s", k, portText(p)))
		case addressScope(p.Address) > sc:
			add("network.ports", scopeWord(sc), portText(p), fmt.Sprintf("container port %s is published more widely: %s (%s)", k, portText(p), scopeWord(addressScope(p.Address))))
		default:
			continue
		}
		prevScope[k] = max(sc, addressScope(p.Address))
	}

	// Docker access.
	if dockerRank(next.Docker) > dockerRank(prev.Docker) {
		add("docker", prev.Docker, next.Docker, fmt.Sprintf("Docker access changes from %q to %q", prev.Docker, next.Docker))
	}

	// Credentials.
	// A credential the agent can read ("NAME") covers the same credential
	// injected by the proxy ("NAME via proxy"); the reverse is a widening.
	had := map[string]bool{}
	for _, c := range prev.Credentials {
		had[c] = true
	}
	for _, c := range next.Credentials {
		name, proxied := strings.CutSuffix(c, viaProxy)
		switch {
		case had[c] || (proxied && had[name]):
		case had[name+viaProxy]:
			add("credentials", name+viaProxy, c, fmt.Sprintf("credential %s becomes readable by the agent (was injected by the egress proxy)", name))
		default:
			add("credentials", "not delivered", c, fmt.Sprintf("credential %s is newly delivered", c))
		}
	}

	// Sandbox: a hardening setting loosened.
	if prev.Sandbox != nil && next.Sandbox != nil {
		was, now := prev.Sandbox, next.Sandbox
		nonRoot := func(u string) bool { return u != "" && u != "0" && !strings.HasPrefix(u, "0:") }
		if nonRoot(was.User) && !nonRoot(now.User) {
			add("security.user", was.User, orText(now.User, "image default"), fmt.Sprintf("the agent may run as root: user %s becomes %s", was.User, orText(now.User, "the image's (root unless it sets USER)")))
		}
		if capsWider(was, now) {
			add("security.capabilities", capsText(was), capsText(now), fmt.Sprintf("capabilities widen from %s to %s", capsText(was), capsText(now)))
		}
		if was.NoNewPrivileges && !now.NoNewPrivileges {
			add("security.noNewPrivileges", "set", "not set", "no-new-privileges is removed: setuid binaries can gain privileges")
		}
		if was.ReadOnlyRoot && !now.ReadOnlyRoot {
			add("security.readOnlyRoot", "read-only", "writable", "the root filesystem becomes writable")
		}
	}

	// Resources.
	limit := func(field string, was, now int64, show func(int64) string) {
		switch {
		case was > 0 && now == 0:
			add(field, show(was), "unlimited", fmt.Sprintf("%s limit %s is removed (unlimited)", strings.TrimPrefix(field, "resources."), show(was)))
		case was > 0 && now > was:
			add(field, show(was), show(now), fmt.Sprintf("%s limit is raised from %s to %s", strings.TrimPrefix(field, "resources."), show(was), show(now)))
		}
	}
	limit("resources.memory", prev.MemoryBytes, next.MemoryBytes, schema.FormatSize)
	limit("resources.cpus", prev.NanoCPUs, next.NanoCPUs, func(n int64) string { return formatCPUs(n) + " CPUs" })
	limit("resources.pids", prev.Pids, next.Pids, func(n int64) string { return strconv.FormatInt(n, 10) + " processes" })
	limit("resources.nofile", prev.Nofile, next.Nofile, func(n int64) string { return strconv.FormatInt(n, 10) + " open files" })

	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Field != out[j].Field {
			return out[i].Field < out[j].Field
		}
		return out[i].Message < out[j].Message
	})
	return out
}

// coveringMount returns the prev mount whose host source is m's or a parent
// of it, preferring a read-write one, or nil.
func coveringMount(prev []AccessMount, m AccessMount) *AccessMount {
	var best *AccessMount
	src := filepath.Clean(m.Src)
	for i := range prev {
		p := filepath.Clean(prev[i].Src)
		if p != src && !isParent(p, src) {
			continue
		}
		if best == nil || (best.Mode != schema.MountRW && prev[i].Mode == schema.MountRW) {
			best = &prev[i]
		}
	}
	return best
}

func modeWord(mode string) string {
	if mode == schema.MountRW {
		return "read-write"
	}
	return "read-only"
}

// egressRank orders egress modes from most to least restricted; an unknown
// mode ranks as open.
func egressRank(mode string) int {
	switch mode {
	case "none":
		return 0
	case "allowlist":
		return 1
	}
	return 2
}

// dockerRank: "none" and empty are no access; any other value grants some.
func dockerRank(mode string) int {
	if mode == "" || mode == schema.DockerNone {
		return 0
	}
	return 1
}

// addressScope orders host addresses by reach: loopback 0, a specific
// address 1, all interfaces (or unset, which the engine binds to all) 2.
func addressScope(addr string) int {
	if addr == "" {
		return 2
	}
	ip := net.ParseIP(addr)
	switch {
	case ip == nil:
		return 1
	case ip.IsLoopback():
		return 0
	case ip.IsUnspecified():
		return 2
	}
	return 1
}

func scopeWord(scope int) string {
	switch scope {
	case 0:
		return "this host only"
	case 1:
		return "one host address"
	}
	return "all interfaces: reachable from other machines"
}

func portText(p AccessPort) string {
	host := "engine-assigned"
	if p.Host != 0 {
		host = strconv.Itoa(p.Host)
	}
	addr := p.Address
	if addr == "" {
		addr = "0.0.0.0"
	}
	return net.JoinHostPort(addr, host) + "/" + protocolOf(p.Protocol)
}

func protocolOf(p string) string {
	if p == "" {
		return "tcp"
	}
	return strings.ToLower(p)
}

func formatCPUs(nano int64) string {
	return strconv.FormatFloat(float64(nano)/1e9, 'f', -1, 64)
}

// capsText is "engine default" or "drop ALL add CHOWN ...".
func capsText(s *reconciler.SpecSandbox) string {
	if len(s.CapDrop) == 0 && len(s.CapAdd) == 0 {
		return "engine default"
	}
	return "drop " + strings.Join(s.CapDrop, " ") + " add " + orText(strings.Join(s.CapAdd, " "), "none")
}

// capsWider reports whether now's capability set holds one that was's did
// not: the effective sets compared (drop ALL keeps only the added ones).
func capsWider(was, now *reconciler.SpecSandbox) bool {
	set := func(s *reconciler.SpecSandbox) map[string]bool {
		m := map[string]bool{}
		all := false
		for _, c := range s.CapDrop {
			all = all || c == "ALL"
		}
		if !all {
			for _, c := range DockerDefaultCapabilities {
				m[c] = true
			}
			for _, c := range s.CapDrop {
				delete(m, c)
			}
		}
		for _, c := range s.CapAdd {
			m[c] = true
		}
		return m
	}
	w := set(was)
	for c := range set(now) {
		if !w[c] {
			return true
		}
	}
	return false
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// viaProxy marks a credential the agent never reads (proxy delivery).
const viaProxy = " via proxy"

// accessCredential is a credential as Access lists it: its name, with
// viaProxy when only the egress proxy holds the value.
func accessCredential(c reconciler.SpecCredential) string {
	if c.Delivery == schema.DeliverProxy {
		return c.Name + viaProxy
	}
	return c.Name
}
