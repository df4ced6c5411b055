package manifests

import (
	"errors"
	"os"
	"path"
	"slices"
	"sort"

	"github.com/jackin-dev/jackin/integrations"
	"github.com/jackin-dev/jackin/schema"
)

// approvals are the operator's integration approvals, read once per load
// (none without a state dir).
func (l *loader) approvals() integrations.Approvals {
	if l.integrationApprovals != nil {
		return l.integrationApprovals
	}
	l.integrationApprovals = integrations.Approvals{}
	if l.opts.StateDir == "" {
		return l.integrationApprovals
	}
	as, err := integrations.LoadApprovals(l.opts.StateDir)
	if err != nil {
		l.warnings = append(l.warnings, Diagnostic{File: integrations.ApprovalsFile(l.opts.StateDir), Msg: err.Error() + ": no recommended integration is active", Severity: schema.SeverityWarning})
		return l.integrationApprovals
	}
	l.integrationApprovals = as
	return as
}

// integrations finds the instance's integrations (those the manifest names,
// and those a repository it mounts recommends) and applies the active
// ones: their read-only mounts (each through the same source checks and
// pins as the manifest's own), cache volumes, env and snapshot excludes.
// A recommendation is active only when its file, as it is now, was
// approved; a refused recommendation file is a warning at its file:line
// and activates nothing.
func (c *instanceChecker) integrations(inst *schema.Instance) {
	var uses []schema.IntegrationUse
	active := map[string]bool{}
	for _, n := range inst.Integrations {
		uses = append(uses, schema.IntegrationUse{Name: n, Source: "manifest", Active: true})
		active[n] = true
	}
	seenFile := map[string]bool{}
	for _, m := range inst.Mounts {
		if m.Src == "" || (m.Mode != schema.MountRW && !schema.IsCheckout(m.Mode)) {
			continue
		}
		rec, err := integrations.FindRecommendation(m.Src)
		if err != nil {
			var ie *integrations.Error
			d := Diagnostic{Msg: "integration recommendation refused, nothing in it is active: " + err.Error(), Severity: schema.SeverityWarning}
			if errors.As(err, &ie) {
				d.File, d.Line, d.Col, d.Path = ie.File, ie.Line, ie.Col, ie.Field
				d.Msg = "integration recommendation refused, nothing in it is active: " + ie.Msg
			}
			c.l.warnings = append(c.l.warnings, d)
			uses = append(uses, schema.IntegrationUse{Source: m.Src, Inactive: "refused: " + err.Error()})
			continue
		}
		if rec == nil || seenFile[rec.Path] {
			continue
		}
		seenFile[rec.Path] = true
		approved := c.l.approvals().Approved(rec)
		inactive := ""
		if !approved {
			inactive = "not approved (jackin approve -f MANIFEST " + c.name + ")"
			if _, was := c.l.approvals()[rec.Path]; was {
				inactive = "the file changed since it was approved (jackin approve -f MANIFEST " + c.name + ")"
			}
		}
		for _, n := range rec.Names {
			u := schema.IntegrationUse{Name: n, Source: rec.Path, SHA256: rec.SHA256, Active: approved && !active[n], Inactive: inactive}
			if approved && active[n] {
				u.Inactive = "already active from the manifest"
			}
			uses = append(uses, u)
			if approved {
				active[n] = true
			}
		}
	}
	mounted := map[string]bool{}
	for _, m := range inst.Mounts {
		mounted[m.Dst] = true
	}
	for i := range uses {
		u := &uses[i]
		d := integrations.Builtin(u.Name)
		if d == nil {
			continue
		}
		u.Adds, u.Warnings = d.Adds(), d.Warnings
		if !u.Active {
			continue
		}
		rel := []any{"integrations"}
		for _, im := range d.Mounts {
			src, ok := c.hostPath(im.Src, rel...)
			if !ok || mounted[im.Dst] {
				continue
			}
			if st, err := os.Stat(src); err != nil || !st.IsDir() {
				continue // not on this host: nothing to share
			}
			if !c.checkSource(rel, "integration "+u.Name+" mounting "+src, src, false) || !c.pinChecked(rel, "integration "+u.Name+" mounting "+src, src, false) {
				continue
			}
			inst.Mounts = append(inst.Mounts, schema.Mount{Src: src, Dst: im.Dst, Mode: schema.MountRO})
			mounted[im.Dst] = true
		}
		for _, dst := range d.Caches {
			if !mounted[dst] {
				inst.Mounts = append(inst.Mounts, schema.Mount{Dst: path.Clean(dst), Mode: schema.MountEphemeral})
				mounted[dst] = true
			}
		}
		for _, n := range d.Env {
			if v, ok := os.LookupEnv(n); ok {
				if _, set := inst.Env[n]; !set {
					if inst.Env == nil {
						inst.Env = map[string]string{}
					}
					inst.Env[n] = v
				}
			}
		}
		for n, v := range d.SetEnv {
			if _, set := inst.Env[n]; !set {
				if inst.Env == nil {
					inst.Env = map[string]string{}
				}
				inst.Env[n] = v
			}
		}
		inst.SnapshotExcludes = append(inst.SnapshotExcludes, d.SnapshotExcludes...)
	}
	sort.Strings(inst.SnapshotExcludes)
	inst.SnapshotExcludes = slices.Compact(inst.SnapshotExcludes)
	inst.IntegrationUses = uses
}
