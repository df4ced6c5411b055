package contract

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// textWidth is where long values wrap in the text form.
const textWidth = 100

// WriteText writes the document in its text form: a header per instance and
// the eleven sections, numbered and titled, each always present ("none"
// when empty). Warnings are marked "!" in the section they belong to.
func WriteText(w io.Writer, doc *Document) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Fleet %s: %d session contract(s). Engine: %s.\n", doc.Fleet, len(doc.Instances), engineLine(doc.Engine))
	for i := range doc.Instances {
		b.WriteString("\n")
		writeContract(&b, &doc.Instances[i])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the document as indented JSON (without HTML escaping,
// so "<fleet>" stays readable).
func WriteJSON(w io.Writer, doc *Document) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(doc)
}

func engineLine(e EngineStatus) string {
	switch e.Status {
	case EngineObserved:
		if e.Endpoint != "" {
			return "observed read-only at " + e.Endpoint
		}
		return "observed read-only"
	case EngineUnreachable:
		return "unreachable (" + e.Error + "); host effects show presence unknown"
	}
	return "not observed; host effects show presence unknown"
}

func writeContract(b *strings.Builder, c *Contract) {
	title := fmt.Sprintf("Session contract: instance %s of fleet %s", c.Instance, c.Identity.Fleet)
	b.WriteString(title + "\n")
	b.WriteString(strings.Repeat("=", len(title)) + "\n")
	switch n := len(c.Warnings); n {
	case 0:
		b.WriteString("Warnings: none.\n")
	default:
		fmt.Fprintf(b, "Warnings: %d, marked ! below.\n", n)
	}
	warnings := map[string][]string{}
	for _, w := range c.Warnings {
		warnings[w.Section] = append(warnings[w.Section], w.Message)
	}
	sections := []*textSection{
		identitySection(c),
		sandboxSection(c),
		filesystemSection(c),
		credentialsSection(c),
		networkSection(c),
		portsSection(c),
		resourcesSection(c),
		hostEffectsSection(c),
		recoverySection(c),
		riskSection(c),
		tierSection(c),
	}
	for i, s := range sections {
		s.warnings = warnings[s.id]
		b.WriteString("\n")
		s.write(b, i+1)
	}
}

// textSection is one numbered section: aligned key/value rows, then
// warnings.
type textSection struct {
	id       string
	title    string
	rows     []textRow
	warnings []string
}

type textRow struct {
	key   string
	lines []string
	table bool // lines are pre-aligned: never wrapped
}

func (s *textSection) kv(key string, lines ...string) {
	if len(lines) == 0 {
		lines = []string{"none"}
	}
	s.rows = append(s.rows, textRow{key: key, lines: lines})
}

func (s *textSection) table(key string, rows [][]string) {
	if len(rows) <= 1 {
		s.kv(key, "none")
		return
	}
	s.rows = append(s.rows, textRow{key: key, lines: alignTable(rows), table: true})
}

func (s *textSection) write(b *strings.Builder, n int) {
	fmt.Fprintf(b, "%2d. %s\n", n, s.title)
	width := 0
	for _, r := range s.rows {
		width = max(width, len(r.key))
	}
	const indent = "    "
	for _, r := range s.rows {
		pad := indent + r.key + strings.Repeat(" ", width-len(r.key)) + "  "
		cont := indent + strings.Repeat(" ", width) + "  "
		if r.key == "" {
			pad, cont = indent, indent
		}
		first := true
		for _, line := range r.lines {
			parts := []string{line}
			if !r.table {
				parts = wrap(line, textWidth-len(cont)-2)
			}
			for j, p := range parts {
				prefix := cont
				if first {
					prefix = pad
					first = false
				}
				if j > 0 && !r.table {
					prefix = cont + "  "
				}
				b.WriteString(strings.TrimRight(prefix+p, " ") + "\n")
			}
		}
	}
	for _, w := range s.warnings {
		for j, p := range wrap(w, textWidth-len(indent)-4) {
			if j == 0 {
				b.WriteString(indent + "! " + p + "\n")
			} else {
				b.WriteString(indent + "    " + p + "\n")
			}
		}
	}
}

// wrap breaks s at spaces into lines of at most width characters (a longer
// word stays whole).
func wrap(s string, width int) []string {
	if width < 20 {
		width = 20
	}
	if len(s) <= width {
		return []string{s}
	}
	var out []string
	line := ""
	for _, word := range strings.Fields(s) {
		switch {
		case line == "":
			line = word
		case len(line)+1+len(word) <= width:
			line += " " + word
		default:
			out = append(out, line)
			line = word
		}
	}
	if line != "" {
		out = append(out, line)
	}
	return out
}

// alignTable pads columns; the last column is not padded.
func alignTable(rows [][]string) []string {
	widths := map[int]int{}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-len(c)+3))
			}
		}
		out = append(out, strings.TrimRight(b.String(), " "))
	}
	return out
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func identitySection(c *Contract) *textSection {
	id := c.Identity
	s := &textSection{id: SectionIdentity, title: "Identity"}
	s.kv("fleet", id.Fleet)
	s.kv("instance", id.Instance)
	s.kv("description", orNone(id.Description))
	if bd := id.Role.Build; bd != nil {
		s.kv("role", "build of "+bd.Context+" ("+bd.Dockerfile+"), tagged "+bd.Tag+" (derived from a hash of the context)")
		args := "none"
		if len(bd.ArgKeys) > 0 {
			args = strings.Join(bd.ArgKeys, ", ") + " (values not shown)"
		}
		s.kv("build args", args)
	} else {
		s.kv("role", "image "+id.Role.Image)
	}
	mode := "attended"
	if id.Unattended {
		mode = "unattended"
	}
	s.kv("agent runtime", id.Agent+" ("+mode+")")
	s.kv("backend", id.Backend)
	cmd := "the image's default command"
	if len(id.Command) > 0 {
		q := make([]string, len(id.Command))
		for i, a := range id.Command {
			q[i] = shellQuote(a)
		}
		cmd = strings.Join(q, " ")
	}
	s.kv("command", cmd)
	if sv := id.Supervisor; sv.Binary != "" {
		s.kv("supervisor", "jackin's "+sv.Binary+" is PID 1 (mounted read-only from "+sv.HostBinary+"): it runs "+sv.Runs+" on a terminal")
		s.kv("agent state", sv.State)
		if len(sv.Hooks) > 0 {
			s.kv("hooks written", strings.Join(sv.Hooks, ", ")+" (jackin's entries merged in; the user's own kept)")
		}
		if len(sv.RuntimeHomes) > 0 {
			s.kv("runtime homes", strings.Join(sv.RuntimeHomes, ", ")+" kept in volume "+sv.HomeVolume+" across recreates")
		}
		s.kv("state dir", sv.StateDir)
		s.kv("attach", sv.Attach)
		if len(sv.PromptTools) > 0 {
			names := make([]string, 0, len(sv.PromptTools))
			for _, t := range sv.PromptTools {
				n := t.Name
				if t.Key != "" {
					n += " (key " + t.Key + ")"
				}
				names = append(names, n)
			}
			s.kv("prompt tools", strings.Join(names, ", ")+": operator tools that type their prompt into the agent's terminal when it is idle or done (jackin tool NAME INSTANCE)")
		}
		if sv.Queue != "" {
			s.kv("task queue", sv.Queue)
		}
		if sv.GitHub != "" {
			s.kv("work links", sv.GitHub)
		}
	}
	s.kv("state", id.State)
	s.kv("container", id.Container)
	s.kv("spec hash", id.SpecHash)
	return s
}

func sandboxSection(c *Contract) *textSection {
	sb := c.Sandbox
	s := &textSection{id: SectionSandbox, title: "Sandbox"}
	s.kv("backend", sb.Backend)
	s.kv("boundary", sb.Boundary)
	orbSandboxLines(s, sb.Machine)
	engineSandboxLines(s, sb.Engine)
	kubernetesSandboxLines(s, sb.Cluster)
	s.kv("profile", sb.Profile)
	s.kv("user", sb.User)
	s.kv("user namespace", sb.UserNamespace)
	s.kv("privileged", yesNo(sb.Privileged))
	caps := sb.Capabilities
	s.kv("capabilities", fmt.Sprintf("%s (added: %s; dropped: %s):", caps.Set, listOrNone(caps.Added), listOrNone(caps.Dropped)), listOrNone(caps.Effective))
	nnp := "not set"
	if sb.NoNewPrivileges {
		nnp = "set"
	}
	s.kv("no-new-privileges", nnp)
	s.kv("seccomp", sb.Seccomp)
	s.kv("apparmor", sb.AppArmor)
	s.kv("host namespaces", sb.HostNamespaces)
	s.kv("host Docker socket", sb.HostDockerSocket, "rule: "+sb.HostDockerSocketRule)
	s.kv("Docker access", sb.DockerAccess, sb.DockerAccessDetail)
	if d := sb.DockerDaemon; d != nil {
		s.kv("  daemon sidecar", d.Sidecar+" (image "+d.Image+")", "network: "+d.Network)
		s.kv("  endpoint", d.Endpoint, "agent env: "+strings.Join(d.AgentEnv, " "))
		s.kv("  daemon privilege", d.Privilege, "capabilities: "+listOrNone(d.Capabilities))
		s.kv("  certificates", d.Certificates, "client key: "+d.ClientKey)
		s.kv("  daemon data", d.Data)
		s.kv("  inner containers' egress", d.InnerEgress)
		s.kv("  inner containers' limits", d.Limits)
	}
	return s
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, " ")
}

func filesystemSection(c *Contract) *textSection {
	fs := c.Filesystem
	s := &textSection{id: SectionFilesystem, title: "Filesystem"}
	s.kv("root filesystem", fs.RootFS.Description)
	rows := [][]string{{"SOURCE", "DESTINATION", "MODE", "ENFORCED BY"}}
	for _, m := range fs.Mounts {
		src := m.Source
		if m.Type == MountTmpfs {
			src = "tmpfs"
			if m.Size != "" {
				src += " (" + m.Size + ")"
			}
		}
		rows = append(rows, []string{src, m.Destination, m.Mode, m.EnforcedBy})
	}
	s.table("mounts", rows)
	for _, m := range fs.Mounts {
		iso := m.Isolation
		if iso == nil {
			continue
		}
		lines := []string{"host path: " + iso.HostPath}
		if iso.Source != "" {
			lines = append(lines, "from: "+iso.Source)
		}
		if iso.ScratchBranch != "" {
			lines = append(lines, "scratch branch: "+iso.ScratchBranch+", from "+iso.StartsFrom)
		}
		for _, g := range iso.GitMetadata {
			lines = append(lines, "git metadata in the source (host-side effect): "+g)
		}
		lines = append(lines, "persists: "+iso.Persists, "removed: "+iso.RemovedWhen)
		s.kv(iso.Mode+" "+m.Destination, lines...)
	}
	sens := "none"
	if n := len(fs.SensitivePaths); n > 0 {
		sens = fmt.Sprintf("%d mount(s) expose the home directory or credentials (marked ! below)", n)
	}
	s.kv("sensitive paths", sens)
	for _, u := range fs.Integrations {
		if u.Name == "" {
			s.kv("integrations", "recommendation in "+u.Source+" "+u.Inactive)
			continue
		}
		state := "active"
		if !u.Active {
			state = "inactive: " + u.Inactive
		}
		src := "named by the manifest"
		if u.Source != "manifest" {
			src = "recommended by " + u.Source + " (sha256 " + short(u.SHA256) + ")"
		}
		lines := append([]string{src + ", " + state}, u.Adds...)
		for _, w := range u.Warnings {
			lines = append(lines, "note: "+w)
		}
		s.kv("integration "+u.Name, lines...)
	}
	return s
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

func credentialsSection(c *Contract) *textSection {
	cr := c.Credentials
	s := &textSection{id: SectionCredentials, title: "Credentials"}
	if len(cr.Delivered) == 0 {
		s.kv("delivered", cr.Summary)
	}
	for _, d := range cr.Delivered {
		lines := []string{d.Delivery + " " + d.Target + ", from " + d.SourceDetail}
		for _, v := range d.VisibleIn {
			lines = append(lines, "visible: "+v)
		}
		lines = append(lines, "rotation: "+d.Rotation)
		s.kv(d.Name, lines...)
	}
	keys := "none"
	if len(cr.EnvKeys) > 0 {
		keys = strings.Join(cr.EnvKeys, ", ") + " (values not shown)"
	}
	s.kv("env keys", keys)
	return s
}

func networkSection(c *Contract) *textSection {
	n := c.Network
	s := &textSection{id: SectionNetwork, title: "Network"}
	s.kv("egress", n.Egress, n.EgressMeaning)
	s.kv("enforcement point", n.EnforcementPoint)
	s.kv("instance network", n.InstanceNetwork)
	host := "no"
	if n.HostReachable {
		host = "yes, via " + n.HostReachableVia
	}
	s.kv("host reachable", host)
	s.kv("other instances", n.OtherInstances)
	s.kv("DNS", n.DNS)
	if n.Allowlist != nil {
		lines := []string{}
		for _, e := range n.Allowlist {
			line := e.Entry
			if len(e.Expands) != 1 || e.Expands[0] != e.Entry {
				line += " = " + strings.Join(e.Expands, ", ")
			}
			lines = append(lines, line)
		}
		if len(lines) == 0 {
			lines = append(lines, "empty: every connection out is denied")
		}
		s.kv("allowlist", lines...)
		s.kv("ports allowed", "80 and 443 unless an entry gives host:port")
	}
	return s
}

func portsSection(c *Contract) *textSection {
	s := &textSection{id: SectionServicePorts, title: "Service ports"}
	rows := [][]string{{"HOST", "CONTAINER", "EXPOSURE"}}
	for _, p := range c.ServicePorts.Ports {
		host := strconv.Itoa(p.HostPort)
		if p.EngineAssigned {
			host = "engine-assigned"
		}
		addr := p.HostAddress
		if strings.Contains(addr, ":") {
			addr = "[" + addr + "]"
		}
		rows = append(rows, []string{addr + ":" + host, strconv.Itoa(p.ContainerPort) + "/" + p.Protocol, p.Exposure})
	}
	s.table("published", rows)
	for _, p := range c.ServicePorts.Ports {
		if p.PublishedBy != "" {
			s.kv("published by", p.PublishedBy+" (the engine cannot publish from an internal network)")
			break
		}
	}
	return s
}

func resourcesSection(c *Contract) *textSection {
	r := c.Resources
	s := &textSection{id: SectionResources, title: "Resources"}
	s.kv("memory", withSource(r.Memory))
	s.kv("memory reservation", withSource(r.MemoryReservation))
	s.kv("CPUs", withSource(r.CPUs))
	s.kv("pids", withSource(r.Pids))
	s.kv("open files", withSource(r.Nofile))
	return s
}

// withSource is a limit's text, with "(from profile NAME)" when a profile
// set it (a manifest value needs no note).
func withSource(q Quantity) string {
	if strings.HasPrefix(q.Source, "profile") {
		return q.Text + " (from " + q.Source + ")"
	}
	return q.Text
}

func hostEffectsSection(c *Contract) *textSection {
	he := c.HostEffects
	s := &textSection{id: SectionHostEffects, title: "Host-side effects (of jackin apply; explain performs none)"}
	s.kv("presence", he.Presence)
	rows := [][]string{{"STATUS", "AFTER DELETE", "EFFECT"}}
	for _, e := range he.Effects {
		st := e.Status
		if e.Detail != "" {
			st += " (" + e.Detail + ")"
		}
		rows = append(rows, []string{st, e.AfterDelete, e.Effect})
	}
	s.table("effects", rows)
	return s
}

func recoverySection(c *Contract) *textSection {
	r := c.Recovery
	s := &textSection{id: SectionRecovery, title: "Recovery"}
	s.kv("survives recreate", r.SurvivesRecreate...)
	s.kv("lost on recreate", r.LostOnRecreate...)
	s.kv("survives delete", r.SurvivesDelete...)
	s.kv("lost on delete", r.LostOnDelete...)
	s.kv("restore", r.Restore)
	s.kv("preserved work", r.PreservedWork)
	sn := r.Snapshots
	s.kv("snapshots", fmt.Sprintf("%s: %s; keep %d", sn.Policy, sn.When, sn.Keep))
	if len(sn.Covered) > 0 {
		s.kv("snapshotted", sn.Covered...)
	}
	if len(sn.Excludes) > 0 {
		s.kv("left out", sn.Excludes...)
	}
	if sn.Repository != "" {
		s.kv("repository", fmt.Sprintf("%s (%s on disk)", sn.Repository, sizeText(sn.RepositoryBytes)))
	}
	s.kv("not covered", sn.NotCovered...)
	s.kv("commands", sn.Commands...)
	return s
}

func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func riskSection(c *Contract) *textSection {
	s := &textSection{id: SectionResidualRisk, title: "Residual risk"}
	if len(c.ResidualRisk) == 0 {
		s.kv("", "none")
	}
	for _, r := range c.ResidualRisk {
		s.kv("", "- "+r.Statement)
	}
	return s
}

func tierSection(c *Contract) *textSection {
	t := c.Tier
	s := &textSection{id: SectionTier, title: "Tier recommendation"}
	s.kv("current", t.Current)
	if t.Recommendation == TierStronger {
		s.kv("recommendation", "a stronger tier: "+t.Recommended)
		s.kv("why", t.Reasons...)
	} else {
		s.kv("recommendation", t.Summary)
	}
	return s
}
