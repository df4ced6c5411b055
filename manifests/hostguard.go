package manifests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/jackin-dev/jackin/credentials"
	"github.com/jackin-dev/jackin/hostpath"
	"github.com/jackin-dev/jackin/schema"
)

// newGuard is the host-path guard for one load: the operator's home, and
// jackin's own state and credential directories as protected paths.
func newGuard(opts Options) *schema.HostGuard {
	state := opts.StateDir
	if state == "" {
		state = schema.DefaultStateDir()
	}
	secrets := opts.SecretsDir
	if secrets == "" {
		secrets = credentials.Base()
	}
	var protected []schema.Protected
	for _, p := range []schema.Protected{
		{Path: state, What: "jackin's state: keys, certificates, egress policies and history"},
		{Path: secrets, What: "jackin's credential values"},
		{Path: schema.SSHControlDir(), What: "jackin's ssh control sockets: the operator's access to remote engines' hosts"},
	} {
		if abs, err := filepath.Abs(p.Path); err == nil {
			p.Path = abs
			protected = append(protected, p)
		}
	}
	socks := opts.EngineSockets
	if len(socks) == 0 {
		socks = append([]string{}, schema.HostDockerSockets...)
		if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
			socks = append(socks, strings.TrimPrefix(h, "unix://"))
		}
		if h, _, _ := schema.DockerContextHost(); strings.HasPrefix(h, "unix://") {
			socks = append(socks, strings.TrimPrefix(h, "unix://"))
		}
		socks = append(socks, userEngineSockets(opts.Home, os.Getenv("XDG_RUNTIME_DIR"))...)
	}
	return &schema.HostGuard{Home: opts.Home, Protected: protected, EngineSockets: socks}
}

// pin records the identity of a host source once per load: every instance
// naming the same path shares it, so they are checked against one truth.
func (l *loader) pin(p string) (*hostpath.Pin, error) {
	if pin, ok := l.pins[p]; ok {
		return pin, nil
	}
	pin, err := hostpath.PinPath(p)
	if err != nil {
		return nil, err
	}
	l.pins[p] = pin
	return pin, nil
}

// checkSource refuses a host source that would expose the Docker engine,
// jackin's own state, or (without allowSensitive) a sensitive host path,
// by spelling or by identity. lead opens the message ("mounting /x"); the
// findings follow it.
func (c *instanceChecker) checkSource(rel []any, lead string, src string, allowSensitive bool) bool {
	r := c.l.guard.Check(src)
	if len(r.Never) > 0 {
		c.errorf(rel, "%s %s: jackin never hands an agent the host Docker socket or its own state (keys, policies, credential values), in any form (path, parent directory, symlink, hard link, bind mount), and allowSensitive does not change that; Docker access for an agent is a private daemon", lead, strings.Join(r.Never, "; "))
		return false
	}
	if len(r.Sensitive) > 0 && !allowSensitive {
		c.errorf(rel, "%s %s: sensitive host paths are refused; set allowSensitive: true on this mount to mount it anyway (explain still warns about it)", lead, strings.Join(r.Sensitive, "; "))
		return false
	}
	for _, w := range r.Warnings {
		c.warnf(rel, "%s", w)
	}
	return true
}

// pinChecked pins src and checks the path it pinned, then that the pin
// still holds: what the engine will get (the pinned, resolved path) is
// what was checked, even if a component was swapped between the spelled
// check and the pin.
func (c *instanceChecker) pinChecked(rel []any, lead, src string, allowSensitive bool) bool {
	pin, err := c.l.pin(src)
	if err != nil {
		c.errorf(rel, "%s: cannot pin %s: %v", lead, src, err)
		return false
	}
	if pin.Path != src && !c.checkSource(rel, lead+" (resolved to "+pin.Path+")", pin.Path, allowSensitive) {
		return false
	}
	if err := pin.Verify(); err != nil {
		c.errorf(rel, "%s: %v while it was checked: nothing is mounted from a path that moves", lead, err)
		return false
	}
	return true
}

// warnf records a warning at a field of the instance.
func (c *instanceChecker) warnf(rel []any, format string, args ...any) {
	pos, path := c.at(rel...)
	d := Diagnostic{Path: path, Msg: fmt.Sprintf(format, args...), Severity: schema.SeverityWarning}
	if pos.IsValid() {
		d.File, d.Line, d.Col = pos.Filename(), pos.Line(), pos.Column()
	}
	c.l.warnings = append(c.l.warnings, d)
}

// writable is a host directory an agent can write: a read-write mount's
// source, or a worktree's git directory.
type writable struct {
	pin      *hostpath.Pin
	instance string
	what     string
}

// checkWritableNesting refuses every host source that lies inside a host
// directory some agent of the fleet can write. Such an agent could swap the
// source (or one of its parents) for a symlink between validation and a
// later start, and the engine would follow it: to the Docker socket, to
// ~/.ssh. The identity check before every start closes that window too;
// this refuses the layout that opens it.
func (l *loader) checkWritableNesting(checkers map[string]*instanceChecker, fleet *schema.Fleet) {
	var ws []writable
	for _, name := range sortedKeys(fleet.Instances) {
		for i, m := range fleet.Instances[name].Mounts {
			switch {
			case m.Mode == schema.MountRW && l.pins[m.Src] != nil:
				ws = append(ws, writable{l.pins[m.Src], name, fmt.Sprintf("mounts[%d] (read-write)", i)})
			case m.Mode == schema.MountWorktree && l.pins[m.GitCommonDir] != nil:
				ws = append(ws, writable{l.pins[m.GitCommonDir], name, fmt.Sprintf("mounts[%d] (the worktree's git directory, read-write)", i)})
			}
		}
	}
	if len(ws) == 0 {
		return
	}
	// By identity, first writer kept: a source's parents are looked up in
	// it, so the check costs the depth of each path, not the number of
	// writable mounts (a thousand instances sharing one rw path are one).
	byID := map[hostpath.ID]*writable{}
	for i := range ws {
		if _, dup := byID[ws[i].pin.ID()]; !dup {
			byID[ws[i].pin.ID()] = &ws[i]
		}
	}
	inside := func(p *hostpath.Pin) *writable {
		for _, id := range p.IDs[:len(p.IDs)-1] {
			if w, ok := byID[id]; ok {
				return w
			}
		}
		return nil
	}
	for _, name := range sortedKeys(fleet.Instances) {
		c := checkers[name]
		inst := fleet.Instances[name]
		for i, m := range inst.Mounts {
			for _, path := range []string{m.Src, m.GitCommonDir} {
				p := l.pins[path]
				if path == "" || p == nil {
					continue
				}
				if w := inside(p); w != nil {
					c.errorf([]any{"mounts", i, "src"}, "%s lies inside %s, which instance %q can write (%s): its agent could replace %s, or a directory above it, with a symlink (to the Docker socket, to ~/.ssh) before a later start; mount %s alone, or move %s out of it", p.Path, w.pin.Path, w.instance, w.what, p.Path, w.pin.Path, p.Path)
					break
				}
			}
		}
		if b := inst.Role.Build; b != nil && b.Context != "" {
			if p, err := l.pin(b.Context); err == nil {
				if w := inside(p); w != nil {
					c.errorf([]any{"role", "build", "context"}, "the build context %s lies inside %s, which instance %q can write (%s): its agent could swap it for a symlink and have another directory of the host built into the image; move the build context out of it", p.Path, w.pin.Path, w.instance, w.what)
				}
			}
		}
		for _, cname := range sortedKeys(inst.Credentials) {
			cr := inst.Credentials[cname]
			if cr.From.File != "" {
				if p, err := l.pin(cr.From.File); err == nil {
					if w := inside(p); w != nil {
						c.errorf([]any{"credentials", cname, "from", "file"}, "the credential file %s lies inside %s, which instance %q can write (%s): its agent could swap it for a symlink to another host file, which jackin would then read and deliver; keep credential files out of agent-writable directories", p.Path, w.pin.Path, w.instance, w.what)
					}
				}
			}
			if len(cr.From.Command) > 0 {
				// The program jackin runs on the host to read the value:
				// one an agent can rewrite would run the agent's code as
				// the operator (on every apply, diff and watch pass).
				prog := cr.From.Command[0]
				if !filepath.IsAbs(prog) {
					if found, err := exec.LookPath(prog); err == nil {
						prog, _ = filepath.Abs(found)
					}
				}
				if p, err := hostpath.PinPath(prog); err == nil {
					w := inside(p)
					if w == nil {
						w = byID[p.ID()]
					}
					if w != nil {
						c.errorf([]any{"credentials", cname, "from", "command", 0}, "the credential command %s lies inside %s, which instance %q can write (%s): its agent could rewrite it, and jackin would run the agent's program on the host; use a program outside agent-writable directories", p.Path, w.pin.Path, w.instance, w.what)
					}
				}
			}
		}
	}
}

// userEngineSockets are the Docker engine sockets that live in a user's
// own directories, whichever engine jackin itself talks to: Docker
// Desktop's and OrbStack's on macOS (where /var/run/docker.sock is at most
// a link to one of them), Colima's, Rancher Desktop's, and rootless
// Docker's under $XDG_RUNTIME_DIR. Each is root of some engine, so none is
// ever a mount source, nor is a directory above one.
func userEngineSockets(home, runtimeDir string) []string {
	var out []string
	if home != "" {
		for _, rel := range []string{
			".docker/run/docker.sock", ".docker/desktop/docker.sock", // Docker Desktop (macOS, Linux)
			"Library/Containers/com.docker.docker/Data/docker.raw.sock", "Library/Containers/com.docker.docker/Data/docker-cli.sock",
			".orbstack/run/docker.sock",
			".colima/default/docker.sock", ".colima/docker.sock",
			".lima/default/sock/docker.sock", ".lima/docker/sock/docker.sock",
			".rd/docker.sock", // Rancher Desktop
			".local/share/containers/podman/machine/podman.sock", ".local/share/containers/podman/machine/qemu/podman.sock",
		} {
			out = append(out, filepath.Join(home, filepath.FromSlash(rel)))
		}
	}
	if runtimeDir == "" && runtime.GOOS == "linux" {
		runtimeDir = "/run/user/" + strconv.Itoa(os.Getuid())
	}
	if runtimeDir != "" {
		out = append(out, filepath.Join(runtimeDir, "docker.sock"), filepath.Join(runtimeDir, "podman", "podman.sock"))
	}
	return out
}
