package contract

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackin-dev/jackin/reconciler"
)

// compactSection is one line of the compact contract: a section that
// changed, in one line, and its warnings.
type compactSection struct {
	num   int
	id    string
	title string
	// changed says whether a change of the spec alters the section.
	changed func(ch reconciler.SpecChanges) bool
	line    func(c *Contract) string
}

// compactSections are the sections WriteCompact can print: those a spec
// change can alter. The others (host effects, recovery, residual risk,
// tier) follow from these; `jackin explain` prints them.
var compactSections = []compactSection{
	{1, SectionIdentity, "Identity", func(ch reconciler.SpecChanges) bool {
		return ch.Has(reconciler.FieldImage, reconciler.FieldAgent, reconciler.FieldBackend, reconciler.FieldCommand, reconciler.FieldRun)
	}, func(c *Contract) string {
		line := fmt.Sprintf("image %s, agent %s, backend %s", c.Identity.Role.Image, c.Identity.Agent, c.Identity.Backend)
		if e := c.Sandbox.Engine; e != nil {
			line += " on engine " + e.Name + " (" + e.Host + ")"
			if e.Remote {
				line += ": root on that host sees everything the agent has"
			}
		}
		return line
	}},
	{2, SectionSandbox, "Sandbox", func(ch reconciler.SpecChanges) bool { return ch.Has(reconciler.FieldDocker) }, func(c *Contract) string {
		return "Docker access " + c.Sandbox.DockerAccess + "; host Docker socket " + c.Sandbox.HostDockerSocket
	}},
	{3, SectionFilesystem, "Filesystem", func(ch reconciler.SpecChanges) bool { return ch.Has(reconciler.FieldMounts) }, func(c *Contract) string {
		var parts []string
		for _, m := range c.Filesystem.Mounts {
			if isSupervisorMount(m.Destination) {
				continue // every agent has them; the identity section says so
			}
			if m.Type == MountTmpfs {
				size := ""
				if m.Size != "" {
					size = " " + m.Size
				}
				parts = append(parts, "tmpfs"+size+" -> "+m.Destination)
				continue
			}
			parts = append(parts, m.Mode+" "+m.Source+" -> "+m.Destination)
		}
		return listOrNoneSep(parts, ", ", "no mounts")
	}},
	{4, SectionCredentials, "Credentials", func(ch reconciler.SpecChanges) bool {
		// Env keys and deliveries are in the contract; values are not.
		env, _ := ch.Get(reconciler.FieldEnv)
		cred, credChanged := ch.Get(reconciler.FieldCredentials)
		return len(env.KeysAdded)+len(env.KeysRemoved) > 0 || (credChanged && !cred.ValuesOnly)
	}, func(c *Contract) string {
		line := fmt.Sprintf("%d delivered", len(c.Credentials.Delivered))
		var names []string
		for _, d := range c.Credentials.Delivered {
			names = append(names, d.Name+" ("+d.Delivery+", in container: "+d.InContainer+")")
		}
		if len(names) > 0 {
			line += ": " + strings.Join(names, ", ")
		}
		if len(c.Credentials.EnvKeys) > 0 {
			line += "; env keys " + strings.Join(c.Credentials.EnvKeys, ", ") + " (values not shown)"
		}
		return line
	}},
	{5, SectionNetwork, "Network", func(ch reconciler.SpecChanges) bool { return ch.Has(reconciler.FieldEgress) }, func(c *Contract) string {
		return "egress " + c.Network.Egress
	}},
	{6, SectionServicePorts, "Service ports", func(ch reconciler.SpecChanges) bool { return ch.Has(reconciler.FieldPorts) }, func(c *Contract) string {
		var parts []string
		for _, p := range c.ServicePorts.Ports {
			parts = append(parts, portLine(p))
		}
		return listOrNoneSep(parts, ", ", "none published")
	}},
	{7, SectionResources, "Resources", func(ch reconciler.SpecChanges) bool { return ch.Has(reconciler.FieldResources) }, func(c *Contract) string {
		r := c.Resources
		short := func(q Quantity) string { // "1Gi (1073741824 bytes)" -> "1Gi"
			text, _, _ := strings.Cut(q.Text, " (")
			return text
		}
		s := fmt.Sprintf("memory %s, reservation %s, CPUs %s, pids %s", short(r.Memory), short(r.MemoryReservation), short(r.CPUs), short(r.Pids))
		if !r.Nofile.Unlimited {
			s += ", open files " + strconv.FormatInt(r.Nofile.Value, 10)
		}
		return s
	}},
}

// WriteCompact writes the compact form of a contract, as apply prints it
// for an instance it creates or recreates: one line per section that
// differs from prev (the last-applied spec; nil when there is none, which
// prints every section it covers), followed by those sections' warnings.
// Only the sections a spec change can alter are covered; `jackin explain`
// prints the whole contract.
func WriteCompact(w io.Writer, c *Contract, prev *reconciler.Spec) error {
	var b strings.Builder
	var shown []compactSection
	var changes reconciler.SpecChanges
	if prev != nil {
		changes = reconciler.CompareSpecs(*prev, c.spec)
	}
	for _, s := range compactSections {
		if prev == nil || s.changed(changes) {
			shown = append(shown, s)
		}
	}
	what := "changed sections"
	if prev == nil {
		what = "no earlier contract recorded"
	}
	fmt.Fprintf(&b, "Contract of %s (%s):\n", c.Instance, what)
	if len(shown) == 0 {
		b.WriteString("    no section changed\n")
	}
	width := 0
	for _, s := range shown {
		width = max(width, len(s.title))
	}
	ids := map[string]bool{}
	for _, s := range shown {
		ids[s.id] = true
		fmt.Fprintf(&b, "  %2d. %-*s  %s\n", s.num, width, s.title, s.line(c))
	}
	for _, wn := range c.Warnings {
		if ids[wn.Section] {
			b.WriteString("    ! " + wn.Message + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func listOrNoneSep(parts []string, sep, none string) string {
	if len(parts) == 0 {
		return none
	}
	return strings.Join(parts, sep)
}
