package reconciler

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/jackin-dev/jackin/schema"
)

// Widening is one way an action widens an instance's access: a host path
// newly mounted or made writable, more open egress, a port newly or more
// widely published, Docker access, a credential, a limit raised. It is
// computed by contract.Widenings; it lives here so a Plan can carry it.
// Its JSON field names are part of the plan document's stable API.
type Widening struct {
	// Field is the manifest field that widened: mounts, network.egress,
	// network.ports, docker, credentials, resources.memory, resources.cpus,
	// resources.pids, resources.nofile.
	Field   string `json:"field"`
	Was     string `json:"was"`
	Now     string `json:"now"`
	Message string `json:"message"`
}

// Spec fields a SpecChange names.
const (
	FieldFormatVersion = "formatVersion"
	FieldBackend       = "backend"
	FieldOrbStack      = "orbstack"
	FieldImage         = "image"
	FieldAgent         = "agent"
	FieldCommand       = "command"
	FieldRun           = "run"
	FieldEnv           = "env"
	FieldLabels        = "labels"
	FieldMounts        = "mounts"
	FieldResources     = "resources"
	FieldPorts         = "network.ports"
	FieldEgress        = "network.egress"
	FieldEgressNetwork = "network.egressNetwork"
	FieldUpstreamProxy = "network.upstreamProxy"
	FieldDocker        = "docker"
	FieldDockerDaemon  = "dockerDaemon"
	FieldSandbox       = "sandbox"
	FieldCredentials   = "credentials"
	FieldIntegrations  = "integrations"
)

// SpecChange is one field that differs between two specs: the one
// structured diff that recreate reasons, widening marks and the compact
// contract's sections are all printed from.
type SpecChange struct {
	Field string
	// Reasons are the recreate reasons it gives (values never appear).
	Reasons []string
	// KeysAdded and KeysRemoved (env, labels) are keys that appeared or
	// went; a value change alone leaves both empty.
	KeysAdded, KeysRemoved []string
	// ValuesOnly (credentials) says only delivered values changed, not
	// which credentials are delivered, nor how.
	ValuesOnly bool
}

// SpecChanges are the changes between two specs, in a fixed order.
type SpecChanges []SpecChange

// Has reports whether any of fields changed.
func (cs SpecChanges) Has(fields ...string) bool {
	for _, c := range cs {
		for _, f := range fields {
			if c.Field == f {
				return true
			}
		}
	}
	return false
}

// Get is the change of field, if any.
func (cs SpecChanges) Get(field string) (SpecChange, bool) {
	for _, c := range cs {
		if c.Field == field {
			return c, true
		}
	}
	return SpecChange{}, false
}

// Reasons are every change's reasons, in order.
func (cs SpecChanges) Reasons() []string {
	var r []string
	for _, c := range cs {
		r = append(r, c.Reasons...)
	}
	return r
}

// CompareSpecs lists the fields that differ between two specs, one change
// per field, in a fixed order. Env values never appear (they may be
// secrets): env and label changes name keys only, commands are reported as
// changed without their arguments.
func CompareSpecs(old, cur Spec) SpecChanges {
	old, cur = normalizeSpec(old), normalizeSpec(cur)
	var cs SpecChanges
	add := func(field string, reasons ...string) { cs = append(cs, SpecChange{Field: field, Reasons: reasons}) }
	if old.FormatVersion != cur.FormatVersion {
		add(FieldFormatVersion, fmt.Sprintf("spec format version changed: %d → %d", old.FormatVersion, cur.FormatVersion))
	}
	if old.Backend != cur.Backend {
		add(FieldBackend, fmt.Sprintf("backend changed: %s → %s", orNone(old.Backend), orNone(cur.Backend)))
	}
	if o, c := fmt.Sprintf("%+v", derefOrb(old.OrbStack)), fmt.Sprintf("%+v", derefOrb(cur.OrbStack)); o != c {
		add(FieldOrbStack, fmt.Sprintf("orbstack machine settings changed: %s → %s", o, c))
	}
	if old.SupervisorCopy != cur.SupervisorCopy && cur.SupervisorCopy == SupervisorCopyMachine && old.Backend == cur.Backend {
		add(FieldOrbStack, "the supervisor's executable is now a copy of the machine's own, and a machine made before shares the one every agent runs (writable from inside it): delete the instance (jackin delete) and apply it again to remake its machine")
	}
	if old.Image != cur.Image {
		add(FieldImage, fmt.Sprintf("image changed: %s → %s", orNone(old.Image), orNone(cur.Image)))
	}
	if old.Agent != cur.Agent {
		add(FieldAgent, fmt.Sprintf("agent changed: %s → %s", orNone(old.Agent), orNone(cur.Agent)))
	}
	if !reflect.DeepEqual(old.Command, cur.Command) {
		add(FieldCommand, "command changed")
	}
	if !reflect.DeepEqual(old.Run, cur.Run) && old.Agent == cur.Agent && reflect.DeepEqual(old.Command, cur.Command) {
		// The runtime's command, args or homes, not explained above.
		add(FieldRun, "the agent's command or runtime homes changed: "+strings.Join(old.Run.Argv, " ")+" → "+strings.Join(cur.Run.Argv, " "))
	}
	for _, kv := range []struct {
		field    string
		old, cur map[string]string
	}{{FieldEnv, old.Env, cur.Env}, {FieldLabels, old.Labels, cur.Labels}} {
		if d := diffKeys(kv.old, kv.cur); d != "" {
			added, removed := keyChanges(kv.old, kv.cur)
			cs = append(cs, SpecChange{Field: kv.field, Reasons: []string{kv.field + " changed: " + d}, KeysAdded: added, KeysRemoved: removed})
		}
	}
	if d := diffMounts(old.Mounts, cur.Mounts); d != "" {
		add(FieldMounts, "mounts changed: "+d)
	}
	if d := diffResources(old.Resources, cur.Resources); d != "" {
		add(FieldResources, "resources changed: "+d)
	}
	if d := diffPorts(old.Network.Ports, cur.Network.Ports); d != "" {
		add(FieldPorts, "ports changed: "+d)
	}
	if old.Network.Egress != cur.Network.Egress {
		add(FieldEgress, fmt.Sprintf("network egress changed: %s → %s", orNone(old.Network.Egress), orNone(cur.Network.Egress)))
	}
	if old.Network.EgressNetwork != cur.Network.EgressNetwork {
		add(FieldEgressNetwork, fmt.Sprintf("network egressNetwork changed: %s → %s", orNone(old.Network.EgressNetwork), orNone(cur.Network.EgressNetwork)))
	}
	if old.Network.UpstreamProxy != cur.Network.UpstreamProxy {
		add(FieldUpstreamProxy, fmt.Sprintf("network upstreamProxy changed: %s → %s", orNone(old.Network.UpstreamProxy), orNone(cur.Network.UpstreamProxy)))
	}
	if old.Docker != cur.Docker {
		add(FieldDocker, fmt.Sprintf("docker access changed: %s → %s", orNone(old.Docker), orNone(cur.Docker)))
	}
	if o, c := daemonText(old.DockerDaemon), daemonText(cur.DockerDaemon); o != c && old.DockerDaemon != nil && cur.DockerDaemon != nil {
		add(FieldDockerDaemon, fmt.Sprintf("dockerDaemon changed: %s → %s", o, c))
	}
	if d := diffSandbox(old.Sandbox, cur.Sandbox); d != "" {
		add(FieldSandbox, "sandbox changed: "+d)
	}
	if d := diffIntegrations(old.Integrations, cur.Integrations); d != "" {
		add(FieldIntegrations, "integrations changed: "+d)
	}
	if reasons, valuesOnly := diffCredentials(old.Credentials, cur.Credentials); len(reasons) > 0 {
		cs = append(cs, SpecChange{Field: FieldCredentials, Reasons: reasons, ValuesOnly: valuesOnly})
	}
	return cs
}

// DiffSpecs names the fields that differ between two specs, one reason per
// field (CompareSpecs' reasons), in a fixed order.
func DiffSpecs(old, cur Spec) []string { return CompareSpecs(old, cur).Reasons() }

// keyChanges are the keys added to and removed from a map.
func keyChanges(old, cur map[string]string) (added, removed []string) {
	for _, k := range sortedKeys(cur) {
		if _, ok := old[k]; !ok {
			added = append(added, k)
		}
	}
	for _, k := range sortedKeys(old) {
		if _, ok := cur[k]; !ok {
			removed = append(removed, k)
		}
	}
	return added, removed
}

// daemonText is the private daemon's configuration for a reason.
func daemonText(d *SpecDockerDaemon) string {
	if d == nil {
		return "none"
	}
	return "image " + d.Image + ", privilege " + d.Privilege
}

// diffCredentials names credentials added, removed or delivered
// elsewhere, and one reason "credential NAME changed" for each env-delivered
// value whose keyed digest changed (valuesOnly: nothing else changed).
// Values and digests are never printed.
func diffCredentials(old, cur []SpecCredential) (reasons []string, valuesOnly bool) {
	oldBy := map[string]SpecCredential{}
	for _, c := range old {
		oldBy[c.Name] = c
	}
	curBy := map[string]bool{}
	var parts, values []string
	for _, c := range cur {
		curBy[c.Name] = true
		o, ok := oldBy[c.Name]
		switch {
		case !ok:
			parts = append(parts, "+"+c.Name+" ("+c.Delivery+")")
		case o.Delivery != c.Delivery || o.Target != c.Target || o.HostDir != c.HostDir || o.Placeholder != c.Placeholder:
			parts = append(parts, "~"+c.Name+" ("+o.Delivery+" "+o.Target+" → "+c.Delivery+" "+c.Target+")")
		case o.Digest != c.Digest:
			values = append(values, "credential "+c.Name+" changed")
		}
	}
	for _, c := range old {
		if !curBy[c.Name] {
			parts = append(parts, "-"+c.Name)
		}
	}
	var r []string
	if len(parts) > 0 {
		r = append(r, "credentials changed: "+strings.Join(parts, " "))
	}
	return append(r, values...), len(parts) == 0 && len(values) > 0
}

// diffKeys is "+ADDED ~CHANGED -REMOVED", keys sorted within each group.
// Values are never printed.
func diffKeys(old, cur map[string]string) string {
	var added, changed, removed []string
	for _, k := range sortedKeys(cur) {
		v, ok := old[k]
		switch {
		case !ok:
			added = append(added, "+"+k)
		case v != cur[k]:
			changed = append(changed, "~"+k)
		}
	}
	for _, k := range sortedKeys(old) {
		if _, ok := cur[k]; !ok {
			removed = append(removed, "-"+k)
		}
	}
	return strings.Join(append(append(added, changed...), removed...), " ")
}

// diffMounts is "+ /dst (rw), ~ /data (ro → rw), - /old", keyed by destination.
func diffMounts(old, cur []SpecMount) string {
	oldBy := map[string]SpecMount{}
	for _, m := range old {
		oldBy[m.Dst] = m
	}
	curBy := map[string]SpecMount{}
	for _, m := range cur {
		curBy[m.Dst] = m
	}
	var added, changed, removed []string
	for _, m := range sortedMounts(cur) {
		o, ok := oldBy[m.Dst]
		switch {
		case !ok:
			added = append(added, fmt.Sprintf("+ %s (%s)", m.Dst, mountText(m)))
		case o.Mode != m.Mode:
			changed = append(changed, fmt.Sprintf("~ %s (%s → %s)", m.Dst, mountText(o), mountText(m)))
		case o.Src != m.Src:
			changed = append(changed, fmt.Sprintf("~ %s (source %s → %s)", m.Dst, orNone(o.Src), orNone(m.Src)))
		case o.SizeBytes != m.SizeBytes:
			changed = append(changed, fmt.Sprintf("~ %s (size %s → %s)", m.Dst, sizeOr(o.SizeBytes, "unlimited"), sizeOr(m.SizeBytes, "unlimited")))
		}
	}
	for _, m := range sortedMounts(old) {
		if _, ok := curBy[m.Dst]; !ok {
			removed = append(removed, "- "+m.Dst)
		}
	}
	return strings.Join(append(append(added, changed...), removed...), ", ")
}

func sortedMounts(ms []SpecMount) []SpecMount {
	out := append([]SpecMount(nil), ms...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Dst < out[j].Dst })
	return out
}

// mountText is "rw", "ro", "tmpfs" or "tmpfs 64Mi".
func mountText(m SpecMount) string {
	if m.Mode == "tmpfs" && m.SizeBytes > 0 {
		return "tmpfs " + humanBytes(m.SizeBytes)
	}
	return m.Mode
}

// diffResources is "memory 64Mi → 128Mi, cpus 0.5 → 1".
func diffResources(old, cur SpecResources) string {
	var parts []string
	if old.MemoryBytes != cur.MemoryBytes {
		parts = append(parts, fmt.Sprintf("memory %s → %s", sizeOr(old.MemoryBytes, "unlimited"), sizeOr(cur.MemoryBytes, "unlimited")))
	}
	if old.MemoryReservationBytes != cur.MemoryReservationBytes {
		parts = append(parts, fmt.Sprintf("memory reservation %s → %s", sizeOr(old.MemoryReservationBytes, "none"), sizeOr(cur.MemoryReservationBytes, "none")))
	}
	if old.NanoCPUs != cur.NanoCPUs {
		parts = append(parts, fmt.Sprintf("cpus %s → %s", cpusText(old.NanoCPUs), cpusText(cur.NanoCPUs)))
	}
	if old.Pids != cur.Pids {
		parts = append(parts, fmt.Sprintf("pids %s → %s", countOr(old.Pids, "unlimited"), countOr(cur.Pids, "unlimited")))
	}
	if old.Nofile != cur.Nofile {
		parts = append(parts, fmt.Sprintf("nofile %s → %s", countOr(old.Nofile, "engine default"), countOr(cur.Nofile, "engine default")))
	}
	return strings.Join(parts, ", ")
}

// diffPorts is "+ 127.0.0.1:8080->80/tcp, - 127.0.0.1:9090->90/tcp".
func diffPorts(old, cur []SpecPort) string {
	set := func(ps []SpecPort) map[string]bool {
		m := map[string]bool{}
		for _, p := range ps {
			m[portString(p)] = true
		}
		return m
	}
	o, c := set(old), set(cur)
	var added, removed []string
	for k := range c {
		if !o[k] {
			added = append(added, "+ "+k)
		}
	}
	for k := range o {
		if !c[k] {
			removed = append(removed, "- "+k)
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	return strings.Join(append(added, removed...), ", ")
}

// portString is "[address:]host->container/protocol", host "auto" when the
// engine picks it.
func portString(p SpecPort) string {
	host := "auto"
	if p.Host != 0 {
		host = strconv.Itoa(p.Host)
	}
	if p.Address != "" {
		host = p.Address + ":" + host
	}
	proto := p.Protocol
	if proto == "" {
		proto = "tcp"
	}
	return fmt.Sprintf("%s->%d/%s", host, p.Container, proto)
}

// humanBytes prints a size exactly, in the unit that gives the smallest
// number: binary ("64Mi", "1536Mi") or decimal ("2G"), else bytes ("1001B").
func humanBytes(n int64) string {
	if n == 0 {
		return "0"
	}
	best, suffix := n, "B"
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"Ki", 1 << 10}, {"k", 1e3}, {"Mi", 1 << 20}, {"M", 1e6}, {"Gi", 1 << 30}, {"G", 1e9}, {"Ti", 1 << 40}, {"T", 1e12}} {
		if n%u.size == 0 && n/u.size < best {
			best, suffix = n/u.size, u.suffix
		}
	}
	return strconv.FormatInt(best, 10) + suffix
}

func sizeOr(n int64, zero string) string {
	if n == 0 {
		return zero
	}
	return humanBytes(n)
}

func countOr(n int64, zero string) string {
	if n == 0 {
		return zero
	}
	return strconv.FormatInt(n, 10)
}

func cpusText(nano int64) string {
	if nano == 0 {
		return "unlimited"
	}
	return strconv.FormatFloat(float64(nano)/1e9, 'f', -1, 64)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// diffSandbox is "user image default → 1000:1000, read-only root false → true".
func diffSandbox(old, cur *SpecSandbox) string {
	var o, c SpecSandbox
	if old != nil {
		o = *old
	}
	if cur != nil {
		c = *cur
	}
	var parts []string
	if o.User != c.User {
		parts = append(parts, fmt.Sprintf("user %s → %s", orText(o.User, "image default"), orText(c.User, "image default")))
	}
	caps := func(s SpecSandbox) string {
		if len(s.CapDrop) == 0 && len(s.CapAdd) == 0 {
			return "engine default"
		}
		return "drop " + strings.Join(s.CapDrop, ",") + " add " + orText(strings.Join(s.CapAdd, ","), "none")
	}
	if caps(o) != caps(c) {
		parts = append(parts, fmt.Sprintf("capabilities %s → %s", caps(o), caps(c)))
	}
	if o.NoNewPrivileges != c.NoNewPrivileges {
		parts = append(parts, fmt.Sprintf("no-new-privileges %v → %v", o.NoNewPrivileges, c.NoNewPrivileges))
	}
	if o.ReadOnlyRoot != c.ReadOnlyRoot {
		parts = append(parts, fmt.Sprintf("read-only root %v → %v", o.ReadOnlyRoot, c.ReadOnlyRoot))
	}
	if strings.Join(o.Tmpfs, ",") != strings.Join(c.Tmpfs, ",") {
		parts = append(parts, fmt.Sprintf("tmpfs %s → %s", orText(strings.Join(o.Tmpfs, ","), "none"), orText(strings.Join(c.Tmpfs, ","), "none")))
	}
	return strings.Join(parts, ", ")
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// derefOrb is an OrbStack setting for a reason text ("none" when absent).
func derefOrb(o *schema.OrbStack) any {
	if o == nil {
		return "none"
	}
	return *o
}

// diffIntegrations names the integrations that became active (a
// repository's recommendation "newly approved") and those that did not stay.
func diffIntegrations(old, cur []string) string {
	was := map[string]bool{}
	for _, o := range old {
		was[o] = true
	}
	is := map[string]bool{}
	var parts []string
	for _, c := range cur {
		is[c] = true
		if !was[c] {
			if name, src, ok := strings.Cut(c, " (approved "); ok {
				parts = append(parts, "+ "+name+" (newly approved: "+strings.TrimSuffix(src, ")")+")")
			} else {
				parts = append(parts, "+ "+c)
			}
		}
	}
	for _, o := range old {
		if !is[o] {
			parts = append(parts, "- "+o)
		}
	}
	return strings.Join(parts, ", ")
}
