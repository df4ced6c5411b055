// Package linuxexe finds the static Linux build of this jackin that
// containers run: the agents' supervisor (PID 1 of every agent container),
// the egress proxy and the Kubernetes helper image. On a Linux host it is
// jackin's own executable. Elsewhere (macOS, where OrbStack's machines and
// Docker Desktop run Linux engines) it is the companion build beside it,
// jackin-linux-ARCH, which `make build` makes there. Either way it must be
// the same build as the running jackin: the host and the supervisor speak
// one protocol, so a companion left over from another version is refused.
package linuxexe

import (
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
)

// Env names an executable to use instead of the one found: a static
// linux/ARCH build of the same jackin.
const Env = "JACKIN_LINUX_EXECUTABLE"

// CompanionName is the file name of the Linux build kept beside a jackin
// built for another system.
func CompanionName(arch string) string { return "jackin-linux-" + arch }

var found struct {
	sync.Mutex
	key, path string
	fi        os.FileInfo // the found file's: found again when it changes
}

// Path returns the static linux executable, for this host's architecture,
// of the jackin that is running: Env when set, this executable on a Linux
// host (the running file itself, even if it was replaced since it
// started), else the companion beside it. A file found is checked again
// when it changes; a failure is not remembered.
func Path() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find jackin's executable: %w", err)
	}
	if r, err := filepath.EvalSymlinks(self); err == nil {
		self = r
	}
	h := host{goos: runtime.GOOS, goarch: runtime.GOARCH, self: self, running: self, override: os.Getenv(Env)}
	if h.goos == "linux" {
		// The file at self's path is another one when jackin was replaced
		// while this process runs: the running one is used.
		a, errA := os.Stat(procSelf)
		b, errB := os.Stat(self)
		if errA == nil && (errB != nil || !os.SameFile(a, b)) {
			h.running = procSelf
		}
	}
	key := h.self + "\x00" + h.override
	found.Lock()
	defer found.Unlock()
	if found.key == key && found.path != "" && unchanged(found.path, found.fi) {
		return found.path, nil
	}
	p, err := find(h, Check)
	if err != nil {
		found.key, found.path = "", ""
		return "", err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("the Linux build of jackin for containers: %w", err)
	}
	found.key, found.path, found.fi = key, p, fi
	return p, nil
}

// procSelf is the running executable on Linux, whatever became of the
// file it was started from.
const procSelf = "/proc/self/exe"

// unchanged reports whether p is still the file was: the same file, size
// and modification time.
func unchanged(p string, was os.FileInfo) bool {
	fi, err := os.Stat(p)
	return err == nil && os.SameFile(fi, was) && fi.Size() == was.Size() && fi.ModTime().Equal(was.ModTime())
}

// host is what find looks from: the system jackin runs on, its executable
// and Env.
type host struct {
	goos, goarch string
	// self is the executable's path (the companion is looked for beside
	// it); running is the file to use for self (/proc/self/exe on Linux).
	self, running, override string
}

// find picks the executable; check is Check outside tests.
func find(h host, check func(path, arch, self string) error) (string, error) {
	if h.running == "" {
		h.running = h.self
	}
	if h.override != "" {
		p, err := filepath.Abs(h.override)
		if err != nil {
			return "", fmt.Errorf("%s=%s: %w", Env, h.override, err)
		}
		if err := check(p, h.goarch, h.running); err != nil {
			return "", fmt.Errorf("%s=%s: %w", Env, h.override, err)
		}
		return p, nil
	}
	var selfErr error
	if h.goos == "linux" {
		if selfErr = check(h.running, h.goarch, h.running); selfErr == nil {
			return h.running, nil
		}
	}
	comp := filepath.Join(filepath.Dir(h.self), CompanionName(h.goarch))
	if _, err := os.Stat(comp); err == nil {
		if err := check(comp, h.goarch, h.running); err != nil {
			return "", fmt.Errorf("the Linux build of jackin for containers: %w", err)
		}
		return comp, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("the Linux build of jackin for containers: %w", err)
	}
	build := fmt.Sprintf("CGO_ENABLED=0 GOOS=linux GOARCH=%s go build -o %s ./cmd/jackin", h.goarch, comp)
	if selfErr != nil {
		return "", fmt.Errorf("%w: rebuild jackin with CGO_ENABLED=0 (make build does), or put a static build of the same jackin beside it (%s), or set %s", selfErr, build, Env)
	}
	return "", fmt.Errorf("this jackin is built for %s/%s, and containers run a static Linux build of the same jackin (the agents' supervisor, the egress proxy): %s is missing: build both with make build, or %s, or set %s to its path", h.goos, h.goarch, comp, build, Env)
}

// machines are the ELF machines of the architectures jackin is built for.
var machines = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386, "arm": elf.EM_ARM,
	"riscv64": elf.EM_RISCV, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "loong64": elf.EM_LOONGARCH,
}

// Check refuses path unless it is a static Linux executable for arch
// (containers have no C library) and, unless it is self, the same build
// of jackin as self.
func Check(path, arch, self string) error {
	if err := checkELF(path, arch); err != nil {
		return err
	}
	if path == self {
		return nil
	}
	return sameBuild(path, self)
}

func checkELF(path, arch string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s is not a Linux (ELF) executable jackin can run in a container: %w", path, err)
	}
	defer f.Close()
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return fmt.Errorf("%s is an executable for %s, not Linux", path, f.OSABI)
	}
	if want, ok := machines[arch]; ok && f.Machine != want {
		return fmt.Errorf("%s is built for %s, and this host's engines run %s (%s)", path, f.Machine, arch, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked, and jackin runs its own executable in containers without a C library (the agents' supervisor, the egress proxy)", path)
		}
	}
	return nil
}

// sameBuild compares the module version and the VCS stamp Go recorded in
// both executables, and the link flags (which may set the version).
func sameBuild(path, self string) error {
	theirs, err := buildinfo.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s is not a Go build of jackin: %w", path, err)
	}
	ours, ok := debug.ReadBuildInfo()
	if !ok && self != "" {
		ours, err = buildinfo.ReadFile(self)
		ok = err == nil
	}
	if !ok {
		return errors.New("this jackin carries no build information to compare its Linux build with")
	}
	a, b := stamp(ours), stamp(theirs)
	if a != b {
		return fmt.Errorf("%s is another build of jackin (%s) than this one (%s): install the two from the same build (make build makes both)", path, b, a)
	}
	return nil
}

type buildStamp struct {
	module, version, revision, modified, ldflags string
}

func (s buildStamp) String() string {
	out := s.module + " " + s.version
	if s.revision != "" {
		out += " commit " + s.revision
		if s.modified == "true" {
			out += " (modified)"
		}
	}
	if s.ldflags != "" {
		out += " ldflags " + s.ldflags
	}
	return out
}

func stamp(bi *debug.BuildInfo) buildStamp {
	s := buildStamp{module: bi.Main.Path, version: bi.Main.Version}
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			s.revision = kv.Value
		case "vcs.modified":
			s.modified = kv.Value
		case "-ldflags":
			s.ldflags = kv.Value
		}
	}
	return s
}
