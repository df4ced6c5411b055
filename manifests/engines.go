package manifests

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/jackin-dev/jackin/drivers/docker"
	"github.com/jackin-dev/jackin/schema"
)

// rawEngine is one entry of the fleet's engines.
type rawEngine struct {
	Host string `json:"host"`
	TLS  *struct {
		CA   string `json:"ca"`
		Cert string `json:"cert"`
		Key  string `json:"key"`
	} `json:"tls"`
}

// fleetEngines checks the fleet's engines: each host's shape (ssh:// as
// ssh takes it, tcp:// with tls only, unix:// an absolute socket path)
// and its TLS files, which are read on this machine (~ and relative paths
// resolve as mount sources do). Nothing is contacted.
func (l *loader) fleetEngines(raw map[string]rawEngine) map[string]schema.Engine {
	if len(raw) == 0 {
		return nil
	}
	out := map[string]schema.Engine{}
	for _, name := range sortedKeys(raw) {
		r := raw[name]
		at := func(field ...string) []string { return append([]string{"engines", name}, field...) }
		errAt := func(p []string, format string, args ...any) {
			l.errAtPos(l.posOfPath(p), formatPath(p), fmt.Sprintf(format, args...))
		}
		e := schema.Engine{Name: name, Host: r.Host}
		if err := docker.CheckEngineHost(r.Host, r.TLS != nil); err != nil {
			p := at("host")
			if r.TLS != nil && !strings.HasPrefix(r.Host, "tcp://") {
				p = at("tls")
			}
			errAt(p, "%v", err)
		}
		if r.TLS != nil {
			e.TLS = &schema.EngineTLS{}
			for _, f := range []struct {
				field string
				val   string
				dst   *string
			}{{"ca", r.TLS.CA, &e.TLS.CA}, {"cert", r.TLS.Cert, &e.TLS.Cert}, {"key", r.TLS.Key, &e.TLS.Key}} {
				p := at("tls", f.field)
				expanded, ok := schema.ExpandHome(f.val, l.opts.Home)
				if !ok {
					errAt(p, "%q: only ~ and ~/ are expanded (to your home directory), not ~user", f.val)
					continue
				}
				if !filepath.IsAbs(expanded) {
					base := l.opts.WorkDir
					if pos := l.posOfPath(p); pos.IsValid() {
						if d, ok := l.dirs[pos.Filename()]; ok {
							base = d
						}
					}
					expanded = filepath.Join(base, expanded)
				}
				expanded = filepath.Clean(expanded)
				if _, err := os.Stat(expanded); err != nil {
					errAt(p, "tls %s %s cannot be read on this machine: %v", f.field, expanded, err)
				}
				*f.dst = expanded
			}
		}
		out[name] = e
	}
	return out
}

// engine places the instance on a declared engine, and refuses what
// cannot work there: an engine the fleet does not declare, an engine with
// a backend other than docker.
func (c *instanceChecker) engine(r rawInstance, inst *schema.Instance) {
	if r.Engine == nil {
		return
	}
	name := *r.Engine
	if inst.Backend != schema.BackendDocker {
		c.errorf([]any{"engine"}, "engine places an instance on a Docker engine, and this instance has backend: %q: remove engine, or set backend: %q", inst.Backend, schema.BackendDocker)
		return
	}
	e, ok := c.l.engines[name]
	if !ok {
		declared := make([]string, 0, len(c.l.engines))
		for n := range c.l.engines {
			declared = append(declared, n)
		}
		hint := "the fleet declares none: add engines: " + name + ": {host: \"ssh://user@host\"}"
		if len(declared) > 0 {
			hint = "the fleet declares " + strings.Join(sortedKeys(c.l.engines), ", ")
		}
		c.errorf([]any{"engine"}, "engine %q is not declared under engines (%s)", name, hint)
		return
	}
	inst.Engine = name
	inst.EngineSpec = &e
}

// remoteSource checks a mount's src for an instance on an engine on
// another machine: the path is that machine's, so it is taken as written
// (absolute, never ~ or relative: those name this machine's files), never
// looked up here, and never the engine's Docker socket or a parent of it
// (by spelling: the remote host's symbolic links cannot be resolved from
// here). A worktree or clone takes a git URL, cloned on the engine into
// a volume; an ephemeral volume's seed (copied from this machine) cannot
// work there.
func (c *instanceChecker) remoteSource(i int, m rawMount, mount *schema.Mount) {
	e := c.l.engines[c.remoteEngine]
	where := fmt.Sprintf("engine %s (%s)", e.Name, e.Host)
	switch m.Mode {
	case schema.MountWorktree, schema.MountClone:
		c.gitURLSource(i, m, mount, fmt.Sprintf("on %s a %s mount clones a git URL into a volume there, before the agent starts (jackin makes checkouts of paths with git on this machine, which the engine's host cannot mount; for a checkout already on that host, mount its path there with mode \"rw\")", where, m.Mode))
		return
	case schema.MountEphemeral:
		c.errorf([]any{"mounts", i, "src"}, "an ephemeral mount's src is copied from this machine into the volume, and the instance runs on %s: remove src (the volume starts empty), or run the instance on the local engine", where)
		return
	}
	src := *m.Src
	if !path.IsAbs(src) {
		c.errorf([]any{"mounts", i, "src"}, "src %q: an instance on %s mounts a path on that engine's host; give it as an absolute path there (~ and relative paths name this machine's files)", src, where)
		return
	}
	src = path.Clean(src)
	for _, s := range schema.HostDockerSockets {
		if src == s || src == "/" || strings.HasPrefix(s, src+"/") {
			c.errorf([]any{"mounts", i, "src"}, "mounting %s would expose %s, the Docker socket of %s's host: root on that host to the agent (use docker: \"private\" for Docker access)", src, s, where)
			return
		}
	}
	mount.Src = src
}

// remoteLimits refuses, for an instance on an engine on another machine,
// the features that read or rewrite files on this machine while the
// instance runs: an egress allowlist (the proxy's policy file is rewritten
// in place here), integrations (they mount this machine's toolchains and
// caches) and recovery snapshots (taken of this machine's paths).
func (c *instanceChecker) remoteLimits(inst *schema.Instance) {
	e := c.l.engines[c.remoteEngine]
	where := fmt.Sprintf("engine %s (%s)", e.Name, e.Host)
	if inst.Network.Egress == schema.EgressAllowlist {
		c.errorf([]any{"network", "egress"}, "egress \"allowlist\" is not available on %s yet: the egress proxy's policy file is rewritten in place on this machine; use egress \"open\" or \"none\" there, or run the instance on the local engine", where)
	} else {
		c.clonedCheckouts(inst)
	}
	if len(inst.Integrations) > 0 {
		c.errorf([]any{"integrations"}, "integrations mount this machine's toolchains and caches, and the instance runs on %s: remove integrations, or run the instance on the local engine", where)
	}
	if inst.Recovery.Snapshot != "" && inst.Recovery.Snapshot != schema.SnapshotOff {
		c.errorf([]any{"recovery", "snapshot"}, "recovery snapshots are taken of this machine's paths, and the instance's host paths are on %s: set snapshot: \"off\", or run the instance on the local engine", where)
	}
	if inst.Idle != nil {
		c.errorf([]any{"idle"}, "idle cleanup is not available on %s yet: it reads the state the agent publishes in its agent directory, which is on that host; remove idle, or run the instance on the local engine", where)
	}
}
