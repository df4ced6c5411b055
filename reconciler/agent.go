package reconciler

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sync"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/supervisor"
)

// AgentPrep is what an agent container needs on the host before it is
// created or started: jackin's binary, which the container mounts
// read-only and runs as its supervisor, and the instance's agent
// directory, where the supervisor publishes the agent's state.
type AgentPrep struct {
	// BinDir holds the binary (mounted at supervisor.BinDir).
	BinDir string
	// Dir is the instance's agent directory (mounted at
	// supervisor.AgentDir).
	Dir string
}

// SupervisorBinDir is where jackin keeps the binary agent containers run
// as their supervisor.
func SupervisorBinDir(stateDir string) string { return filepath.Join(stateDir, "supervisor") }

// HomeVolumeName is the instance's runtime-home volume.
func HomeVolumeName(fleet, instance string) string { return ResourceName(fleet, instance) + "-home" }

// renderSupervisor makes ctr run under jackin's supervisor: the mounts of
// the binary, the agent directory and the runtime-home volume, and the
// entrypoint. It returns the home volume and what the host must prepare.
func renderSupervisor(fleet, name string, inst schema.Instance, spec Spec, ctr *drivers.ContainerSpec, base func(string) map[string]string, stateDir string) (drivers.Resource, *AgentPrep) {
	rt := inst.Runtime()
	prep := &AgentPrep{BinDir: SupervisorBinDir(stateDir), Dir: supervisor.HostDir(stateDir, fleet, name)}
	entry := []string{supervisor.Binary, "supervise", "--runtime", rt.Name}
	if rt.Custom {
		entry = append(entry, "--state-source", string(rt.State))
	}
	for _, h := range spec.Run.Homes {
		entry = append(entry, "--home", h)
	}
	sup := &drivers.SupervisorSpec{Entrypoint: entry, HomeTarget: supervisor.HomeStore, HomeSubdir: path.Base(supervisor.HomeKept), LoginShellFlag: "--login-shell"}
	if spec.Run.ImageCommand {
		sup.ImageCommand, sup.Args = true, append([]string{}, spec.Run.Argv...)
	} else {
		sup.Command = append([]string{}, spec.Run.Argv...)
	}
	ctr.Supervisor = sup
	for k, v := range rt.Env {
		if _, set := ctr.Env[k]; !set {
			if ctr.Env == nil {
				ctr.Env = map[string]string{}
			}
			ctr.Env[k] = v
		}
	}
	vname := HomeVolumeName(fleet, name)
	labels := base(drivers.ComponentHome)
	delete(labels, drivers.LabelSpecHash) // it outlives recreates
	ctr.Mounts = append(ctr.Mounts,
		drivers.MountSpec{Type: "bind", Source: prep.BinDir, Target: supervisor.BinDir, ReadOnly: true},
		drivers.MountSpec{Type: "bind", Source: prep.Dir, Target: supervisor.AgentDir},
		drivers.MountSpec{Type: "volume", Source: vname, Target: supervisor.HomeStore},
	)
	vol := drivers.Resource{Kind: drivers.KindVolume, Name: vname, Component: drivers.ComponentHome, Labels: labels, Volume: &drivers.VolumeSpec{Target: supervisor.HomeStore}}
	return vol, prep
}

// specRun is what the supervisor runs, in canonical form.
func specRun(inst schema.Instance) SpecRun {
	rt := inst.Runtime()
	argv, imageCommand := inst.AgentCommand()
	// shell with no command: the image's entrypoint and CMD (args
	// appended), or, with neither, the user's login shell.
	return SpecRun{Argv: argv, ImageCommand: imageCommand, Homes: rt.HomeRels(), StateSource: string(rt.State)}
}

var binMu sync.Mutex

// InstallSupervisorBinary puts jackin's static executable into dir, where
// agent containers mount it. Unit tests that run the executor against the
// in-memory driver replace it (their test binary is not static, and no
// container runs it).
var InstallSupervisorBinary = func(dir string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find jackin's executable for the agent's supervisor: %w", err)
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	binMu.Lock()
	defer binMu.Unlock()
	return installBinary(exe, dir)
}

// Prepare copies jackin's executable into BinDir (when its content
// differs: a new version is renamed into place, and a running supervisor
// keeps the one it started with) and makes the agent directory, writable
// by the agent's user whoever that is (its parent directories are
// jackin's own, 0700).
func (p *AgentPrep) Prepare() error {
	if err := InstallSupervisorBinary(p.BinDir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.Dir), 0o700); err != nil {
		return fmt.Errorf("agent directory: %w", err)
	}
	if err := os.Mkdir(p.Dir, 0o777); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("agent directory: %w", err)
	}
	fi, err := os.Lstat(p.Dir)
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("agent directory %s is not a directory", p.Dir)
	}
	return os.Chmod(p.Dir, 0o777|os.ModeSticky)
}

func installBinary(exe, dir string) error {
	if err := CheckStatic(exe); err != nil {
		return fmt.Errorf("the agent's supervisor: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("the agent's supervisor: %w", err)
	}
	// The directory is mounted into containers: readable by any user.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	dst := filepath.Join(dir, "jackin")
	same, err := sameContent(exe, dst)
	if err != nil {
		return fmt.Errorf("the agent's supervisor: %w", err)
	}
	if same {
		return nil
	}
	in, err := os.Open(exe)
	if err != nil {
		return fmt.Errorf("the agent's supervisor: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(dir, ".jackin-*")
	if err != nil {
		return fmt.Errorf("the agent's supervisor: %w", err)
	}
	_, cerr := io.Copy(tmp, in)
	if err := errors.Join(cerr, tmp.Close(), os.Chmod(tmp.Name(), 0o755)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("the agent's supervisor: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("the agent's supervisor: %w", err)
	}
	return nil
}

// sameContent compares two files by size and hash.
func sameContent(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if fa.Size() != fb.Size() {
		return false, nil
	}
	ha, err := fileHash(a)
	if err != nil {
		return false, err
	}
	hb, err := fileHash(b)
	if err != nil {
		return false, err
	}
	return bytes.Equal(ha, hb), nil
}

func fileHash(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
