package reconciler

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/linuxexe"
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

	mu    sync.Mutex
	waits []func() error // the copies Prepare began, for Ready
}

// SupervisorBinDir is where jackin keeps the binary agent containers run
// as their supervisor.
func SupervisorBinDir(stateDir string) string { return filepath.Join(stateDir, "supervisor") }

// MachineDir holds what jackin keeps on the host for an instance's OrbStack
// machine alone.
func MachineDir(stateDir, fleet, instance string) string {
	return filepath.Join(stateDir, "machines", fleet, instance)
}

// MachineSupervisorBinDir is the supervisor's directory of an instance on
// backend orbstack-isolated: a copy of its own. A machine's share is
// writable from inside the machine (OrbStack has no read-only share; the
// machine's Docker enforces :ro, and an agent with docker: private
// controls that Docker), so sharing the one every agent container runs
// would let one machine change every other instance's PID 1.
func MachineSupervisorBinDir(stateDir, fleet, instance string) string {
	return filepath.Join(MachineDir(stateDir, fleet, instance), "supervisor")
}

// HomeVolumeName is the instance's runtime-home volume.
func HomeVolumeName(fleet, instance string) string { return ResourceName(fleet, instance) + "-home" }

// renderSupervisor makes ctr run under jackin's supervisor: the mounts of
// the binary, the agent directory and the runtime-home volume, and the
// entrypoint. It returns the home volume and what the host must prepare.
func renderSupervisor(fleet, name string, inst schema.Instance, spec Spec, ctr *drivers.ContainerSpec, base func(string) map[string]string, stateDir string) (drivers.Resource, *AgentPrep) {
	rt := inst.Runtime()
	prep := &AgentPrep{BinDir: SupervisorBinDir(stateDir), Dir: supervisor.HostDir(stateDir, fleet, name)}
	if inst.Backend == schema.BackendOrbStack {
		prep.BinDir = MachineSupervisorBinDir(stateDir, fleet, name)
	}
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

// InstallSupervisorBinary starts putting jackin's static Linux executable
// (linuxexe: this one on a Linux host) into dir, where agent containers
// mount it, and returns what waits for it to be there. What it can refuse
// at once (no Linux build) it refuses at once; the copy itself (about
// 100 MB, when dir lacks it) runs in the background, beside the rest of
// the action (on OrbStack, beside the machine's making), and installs
// into one directory are one. Unit tests that run the executor against
// the in-memory driver replace it (their test binary is not static, and no
// container runs it).
var InstallSupervisorBinary = func(dir string) (wait func() error, err error) {
	exe, err := linuxexe.Path()
	if err != nil {
		return nil, fmt.Errorf("the agent's supervisor: %w", err)
	}
	return startInstall(exe, dir)
}

// installs are the copies in progress, by directory.
var installs struct {
	sync.Mutex
	m map[string]*install
}

type install struct {
	source installStamp // the source fields alone
	done   chan struct{}
	err    error
}

func (in *install) wait() error {
	<-in.done
	return in.err
}

// startInstall joins the copy of exe into dir already in progress, or
// checks the stamp and, when dir lacks exe, starts one.
func startInstall(exe, dir string) (func() error, error) {
	want, err := sourceStamp(exe)
	if err != nil {
		return nil, err
	}
	installs.Lock()
	defer installs.Unlock()
	if in := installs.m[dir]; in != nil {
		select {
		case <-in.done:
		default:
			if in.source == want {
				return in.wait, nil
			}
			// Another source (jackin replaced meanwhile): after that copy.
			prev := in
			return startCopy(exe, dir, want, prev), nil
		}
	}
	if installedFrom(dir, want) {
		return func() error { return nil }, nil
	}
	// The directory exists before the wait: it is what a machine shares.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("the agent's supervisor: %w", err)
	}
	// Mounted into containers: readable by any user.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("the agent's supervisor: %w", err)
	}
	return startCopy(exe, dir, want, nil), nil
}

// startCopy runs installBinary in the background, after prev if any.
// installs is held.
func startCopy(exe, dir string, want installStamp, prev *install) func() error {
	in := &install{source: want, done: make(chan struct{})}
	if installs.m == nil {
		installs.m = map[string]*install{}
	}
	installs.m[dir] = in
	go func() {
		defer close(in.done)
		if prev != nil {
			<-prev.done
		}
		in.err = installBinary(exe, dir)
	}()
	return in.wait
}

// Prepare makes the agent directory, writable by the agent's user whoever
// that is (its parent directories are jackin's own, 0700), and starts
// copying jackin's executable into BinDir when it differs (a new version
// is renamed into place, and a running supervisor keeps the one it
// started with); Ready waits for that copy.
func (p *AgentPrep) Prepare() error {
	wait, err := InstallSupervisorBinary(p.BinDir)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.waits = append(p.waits, wait)
	p.mu.Unlock()
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

// Ready waits until the supervisor's executable Prepare began copying is
// in BinDir: before the agent container is created or started.
func (p *AgentPrep) Ready() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	waits := slices.Clone(p.waits)
	p.mu.Unlock()
	for _, w := range waits {
		if err := w(); err != nil {
			return err
		}
	}
	return nil
}

// installStamp says which executable a directory's copy came from and
// which copy that is. It is kept beside the directory (installStampPath),
// never in it: the directory is mounted into containers (and shared into
// an OrbStack machine, whose root can write it), the stamp is jackin's.
type installStamp struct {
	Source      string `json:"source"`
	SourceSize  int64  `json:"sourceSize"`
	SourceMtime int64  `json:"sourceMtime"`
	SourceIno   uint64 `json:"sourceIno,omitempty"`
	SourceCtime int64  `json:"sourceCtime,omitempty"`
	CopySize    int64  `json:"copySize"`
	CopyMtime   int64  `json:"copyMtime"`
	CopyIno     uint64 `json:"copyIno,omitempty"`
	CopyCtime   int64  `json:"copyCtime,omitempty"`
}

func installStampPath(dir string) string {
	return filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".installed")
}

// installBinary copies exe into dir as jackin, unless the stamp beside dir
// says the copy there came from exe as it is now and the copy is the one
// made then (its size, modification time and inode): comparing a few stat
// fields rather than hashing two 100 MB files, which took 0.2 s per action.
// A new version is renamed into place, so a running supervisor keeps the
// one it started with. A copy that is not a regular file is replaced.
func installBinary(exe, dir string) error {
	want, err := sourceStamp(exe)
	if err != nil {
		return err
	}
	if installedFrom(dir, want) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("the agent's supervisor: %w", err)
	}
	removeStaleCopies(dir)
	in, err := os.Open(exe)
	if err != nil {
		return fmt.Errorf("the agent's supervisor: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(dir, ".jackin-*")
	if err != nil {
		return fmt.Errorf("the agent's supervisor: %w", err)
	}
	defer tmp.Close()
	_, cerr := io.Copy(tmp, in)
	if err := errors.Join(cerr, tmp.Chmod(0o755)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("the agent's supervisor: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, "jackin")); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("the agent's supervisor: %w", err)
	}
	// The copy as it is after the rename (which sets its change time),
	// through the descriptor: never a file put in its place since.
	fi, err := tmp.Stat()
	if err != nil {
		return fmt.Errorf("the agent's supervisor: %w", err)
	}
	want.CopySize, want.CopyMtime = fi.Size(), fi.ModTime().UnixNano()
	want.CopyIno, want.CopyCtime = fileID(fi)
	// Without a stamp the next command copies again: slower, not wrong.
	_ = writeInstallStamp(dir, want)
	return nil
}

// staleCopy is the age past which a temporary copy in a supervisor
// directory is an interrupted jackin's (a copy takes well under a second),
// and not one another jackin is making now.
const staleCopy = 10 * time.Minute

// removeStaleCopies removes the temporary copies interrupted installs left
// in dir (100 MB each). Entries are removed, never followed.
func removeStaleCopies(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".jackin-") {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleCopy {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// sourceStamp is the stamp's source fields for exe as it is now.
func sourceStamp(exe string) (installStamp, error) {
	src, err := os.Stat(exe)
	if err != nil {
		return installStamp{}, fmt.Errorf("the agent's supervisor: %w", err)
	}
	ino, ctime := fileID(src)
	return installStamp{Source: exe, SourceSize: src.Size(), SourceMtime: src.ModTime().UnixNano(), SourceIno: ino, SourceCtime: ctime}, nil
}

// installedFrom reports whether dir's copy is the one its stamp says was
// made from the source want describes.
func installedFrom(dir string, want installStamp) bool {
	st, ok := readInstallStamp(dir)
	if !ok || st.Source != want.Source || st.SourceSize != want.SourceSize || st.SourceMtime != want.SourceMtime ||
		st.SourceIno != want.SourceIno || st.SourceCtime != want.SourceCtime {
		return false
	}
	fi, err := os.Lstat(filepath.Join(dir, "jackin"))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
		return false
	}
	// The change time as well: a copy rewritten in place, its times set
	// back, still shows a new one.
	ino, ctime := fileID(fi)
	return fi.Size() == st.CopySize && fi.ModTime().UnixNano() == st.CopyMtime && ino == st.CopyIno && ctime == st.CopyCtime
}

// readInstallStamp reads the stamp beside dir (a small file of jackin's).
func readInstallStamp(dir string) (installStamp, bool) {
	var st installStamp
	b, err := os.ReadFile(installStampPath(dir))
	if err != nil || len(b) > 4096 || json.Unmarshal(b, &st) != nil {
		return installStamp{}, false
	}
	return st, true
}

func writeInstallStamp(dir string, st installStamp) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return replaceFile(installStampPath(dir), b, 0o644)
}
