package schema

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackin-dev/jackin/hostpath"
)

// Protected is a host directory jackin keeps its own state in: keys,
// certificates, egress policies, credential values, history. An agent that
// could read it would hold every instance's secrets; one that could write
// it would rewrite its own policy. It is never a mount source, whatever
// allowSensitive says.
type Protected struct {
	Path string
	What string
}

// ProtectedPathFindings reports how src exposes one of jackin's own
// directories: src is one, lies inside one, or contains one (as /dev/shm
// contains the credential tmpfs). Symlinks are resolved, in src and in the
// protected paths.
func ProtectedPathFindings(src string, protected []Protected) []string {
	if src == "" || !filepath.IsAbs(src) {
		return nil
	}
	srcs := uniq(filepath.Clean(src), ResolveExisting(src))
	var out []string
	for _, p := range protected {
		if p.Path == "" || !filepath.IsAbs(p.Path) {
			continue
		}
		best := 0
		for _, s := range srcs {
			for _, c := range uniq(filepath.Clean(p.Path), ResolveExisting(p.Path)) {
				best = max(best, relation(s, c))
			}
		}
		if f := relationFinding(best, p.Path+" ("+p.What+")"); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// relation is 3 when s is c, 2 when s contains c, 1 when s lies inside c.
func relation(s, c string) int {
	switch {
	case s == c:
		return 3
	case isParentDir(s, c):
		return 2
	case isParentDir(c, s):
		return 1
	}
	return 0
}

func relationFinding(rel int, name string) string {
	switch rel {
	case 3:
		return "exposes " + name
	case 2:
		return "exposes " + name + ", which it contains"
	case 1:
		return "exposes part of " + name
	}
	return ""
}

// SystemPath is a host system location an agent should not be handed.
type SystemPath struct {
	Path string
	What string
	// Inside: a path below it exposes it too (/proc/1); otherwise only the
	// path itself and its parents do (/etc, but not /etc/ssl/certs).
	Inside bool
}

// SystemPaths are the host's own locations that SystemPathFindings refuses.
var SystemPaths = []SystemPath{
	{"/proc", "the host's processes and kernel interfaces", true},
	{"/sys", "the host's kernel and device settings", true},
	{"/dev", "the host's devices and shared memory", true},
	{"/boot", "the host's kernel and boot loader", true},
	{"/run", "the host's runtime state and sockets", true},
	{"/var/run", "the host's runtime state and sockets", true},
	{"/var/lib/docker", "the Docker engine's data: every container's files", true},
	{"/etc", "the host's configuration", false},
	{"/etc/shadow", "password hashes", true},
	{"/etc/gshadow", "group password hashes", true},
	{"/etc/sudoers", "sudo rules", true},
	{"/etc/sudoers.d", "sudo rules", true},
	{"/etc/ssh", "the host's SSH keys", true},
	// macOS.
	{"/Library/Keychains", "the system's keychains", true},
	{"/private/var/db", "the system's databases: local users, sudo state", true},
}

// SystemPathFindings reports what a bind mount of src exposes of the host
// itself: the whole filesystem (/), a system location (SystemPaths), other
// users' homes (/home, or /home/USER other than home's), or /root when home
// is not /root. Symlinks are resolved first; both forms are checked.
func SystemPathFindings(src, home string) []string {
	if src == "" || !filepath.IsAbs(src) {
		return nil
	}
	srcs := uniq(filepath.Clean(src), ResolveExisting(src))
	homes := []string{}
	if home != "" && filepath.IsAbs(home) {
		homes = uniq(filepath.Clean(home), ResolveExisting(home))
	}
	var out []string
	add := func(f string) {
		for _, o := range out {
			if o == f {
				return
			}
		}
		out = append(out, f)
	}
	for _, s := range srcs {
		if s == "/" {
			add("exposes the host's whole filesystem")
		}
	}
	exact := false
	for _, p := range SystemPaths {
		for _, s := range srcs {
			exact = exact || s == p.Path
		}
	}
	for _, p := range SystemPaths {
		best := 0
		for _, s := range srcs {
			r := relation(s, p.Path)
			if r == 1 && !p.Inside {
				r = 0
			}
			best = max(best, r)
		}
		if best == 2 && exact {
			continue // /etc names itself; its parts need no list of their own
		}
		if f := relationFinding(best, p.Path+" ("+p.What+")"); f != "" {
			add(f)
		}
	}
	// Other users' homes.
	ownHome := func(dir string) bool {
		for _, h := range homes {
			if h == dir || isParentDir(dir, h) || isParentDir(h, dir) {
				return true
			}
		}
		return false
	}
	for _, s := range srcs {
		for _, base := range []string{"/home", "/Users"} { // Linux, macOS
			switch {
			case s == base || isParentDir(s, base) && s != "/":
				add("exposes every user's home directory under " + base)
			case isParentDir(base, s):
				user := strings.SplitN(strings.TrimPrefix(s, base+"/"), "/", 2)[0]
				if !ownHome(base + "/" + user) {
					add("exposes " + base + "/" + user + ", another user's home directory")
				}
			}
		}
		if s == "/root" || isParentDir("/root", s) {
			if !ownHome("/root") {
				add("exposes /root, the root user's home directory")
			}
		}
	}
	return out
}

// MaxScanEntries bounds the walk HostGuard makes of a directory mount
// source looking for sockets and links to sensitive files.
const MaxScanEntries = 10000

// HostGuard checks host paths before they are handed to an agent: by
// spelling (the path, its symlinks) and by identity (device and inode), so
// a hard link to the Docker socket or to ~/.ssh/id_rsa, or a bind mount of
// a protected directory under another name, is found too. One guard serves
// one manifest load: what it learns of the host is computed once, on first
// use, and directory walks are cached by path.
type HostGuard struct {
	Home      string
	Protected []Protected
	// EngineSockets are the Docker engine's sockets (HostDockerSockets when
	// empty). A socket served by the same process as one of them is the
	// engine, whatever its name.
	EngineSockets []string

	sockOnce   sync.Once
	sockPaths  []string
	once       sync.Once
	ids        map[hostpath.ID]guarded // guarded paths, by identity
	above      map[hostpath.ID][]int   // identity of a parent directory -> guarded paths below it
	list       []guarded
	enginePIDs map[int]bool
	filesOnce  sync.Once
	files      map[hostpath.ID]guarded // files inside guarded directories
	walkPaths  []walkPath
	mu         sync.Mutex
	scans      map[string]GuardResult
	checked    map[string]GuardResult
}

type guarded struct {
	name   string
	never  bool // the Docker socket, jackin's own state: never mountable
	inside bool // a path inside it exposes it
	walk   bool // index the files inside it, to find hard links to them
}

// GuardResult is what a host path would expose. Never findings refuse the
// mount whatever allowSensitive says; Sensitive findings refuse it unless
// allowSensitive is set; Warnings are said but refuse nothing.
type GuardResult struct {
	Never     []string
	Sensitive []string
	Warnings  []string
}

// Check reports what handing src to an agent would expose. The answer is
// computed once per path: every instance naming it gets the same one.
func (g *HostGuard) Check(src string) GuardResult {
	g.mu.Lock()
	r, ok := g.checked[src]
	g.mu.Unlock()
	if ok {
		return r
	}
	r = g.check(src)
	g.mu.Lock()
	if g.checked == nil {
		g.checked = map[string]GuardResult{}
	}
	g.checked[src] = r
	g.mu.Unlock()
	return r
}

func (g *HostGuard) check(src string) GuardResult {
	var r GuardResult
	if sock, bad := socketExposure(src, g.socketPaths()); bad {
		r.Never = append(r.Never, "would expose the host Docker socket "+sock)
	}
	for _, f := range ProtectedPathFindings(src, g.Protected) {
		r.Never = append(r.Never, f)
	}
	r.Sensitive = append(SensitivePathFindings(src, g.Home), SystemPathFindings(src, g.Home)...)

	pin, err := hostpath.PinPath(src)
	if err != nil {
		return r // a missing source is reported by the caller
	}
	fi, err := os.Lstat(pin.Path)
	if err != nil {
		return r
	}
	g.once.Do(g.index)
	idr := g.identity(pin, fi)
	if len(r.Never) == 0 {
		r.Never = idr.Never
	}
	if len(r.Sensitive) == 0 {
		r.Sensitive = idr.Sensitive
	}
	switch {
	case fi.IsDir():
		sr := g.scan(pin.Path)
		r.Never = append(r.Never, sr.Never...)
		r.Sensitive = append(r.Sensitive, sr.Sensitive...)
		r.Warnings = append(r.Warnings, sr.Warnings...)
	case fi.Mode()&fs.ModeSocket != 0 && len(r.Never) == 0 && g.servedByEngine(pin.Path):
		r.Never = append(r.Never, "is a socket served by the Docker engine's process")
	}
	return r
}

// identity finds what pin (whose file is fi) is, contains or lies inside
// of, by identity.
func (g *HostGuard) identity(pin *hostpath.Pin, fi fs.FileInfo) GuardResult {
	var r GuardResult
	add := func(e guarded, f string) {
		if e.never {
			r.Never = append(r.Never, f)
		} else {
			r.Sensitive = append(r.Sensitive, f)
		}
	}
	if e, ok := g.ids[pin.ID()]; ok {
		add(e, "is "+e.name+" (the same file under another name: a hard link or a bind mount)")
	}
	for _, id := range pin.IDs[:len(pin.IDs)-1] {
		if e, ok := g.ids[id]; ok && e.inside {
			add(e, "lies inside "+e.name+" (reached under another name: a bind mount)")
		}
	}
	for _, i := range g.above[pin.ID()] {
		add(g.list[i], "contains "+g.list[i].name+" (by identity: a bind mount or link of one of its parents)")
	}
	if _, direct := g.ids[pin.ID()]; !direct && !fi.IsDir() && hostpath.Nlink(fi) > 1 {
		if e, ok := g.fileIndex()[pin.ID()]; ok {
			add(e, "is "+e.name+" (a hard link to it)")
		}
	}
	return r
}

// index learns the identity of every guarded path and of their parents.
func (g *HostGuard) index() {
	g.ids = map[hostpath.ID]guarded{}
	g.above = map[hostpath.ID][]int{}
	g.enginePIDs = map[int]bool{}
	socks := g.EngineSockets
	if len(socks) == 0 {
		socks = HostDockerSockets
	}
	for _, s := range socks {
		g.add(s, guarded{name: "the Docker socket " + s, never: true})
		if pid, ok := hostpath.SocketPeer(s, 500*time.Millisecond); ok {
			g.enginePIDs[pid] = true
		}
	}
	for _, p := range g.Protected {
		if p.Path != "" {
			g.add(p.Path, guarded{name: p.Path + " (" + p.What + ")", never: true, inside: true, walk: true})
		}
	}
	if g.Home != "" {
		g.add(g.Home, guarded{name: "the home directory " + g.Home})
		for _, p := range SensitiveHomePaths {
			g.add(filepath.Join(g.Home, filepath.FromSlash(p.Rel)), guarded{name: "~/" + p.Rel + " (" + p.What + ")", inside: true, walk: true})
		}
	}
	for _, p := range SystemPaths {
		// /proc, /sys, /dev, /run and the engine's data are not walked:
		// they are large or endless; only their identity is recorded.
		walk := strings.HasPrefix(p.Path, "/etc/")
		g.add(p.Path, guarded{name: p.Path + " (" + p.What + ")", inside: p.Inside, walk: walk})
	}
}

func (g *HostGuard) add(p string, e guarded) {
	pin, err := hostpath.PinPath(p)
	if err != nil {
		return // absent here: nothing to expose
	}
	if _, dup := g.ids[pin.ID()]; dup {
		return
	}
	g.ids[pin.ID()] = e
	g.list = append(g.list, e)
	i := len(g.list) - 1
	for _, id := range pin.IDs[:len(pin.IDs)-1] {
		if len(g.above[id]) < 64 { // "/" is above everything: the path checks cover it
			g.above[id] = append(g.above[id], i)
		}
	}
	g.walkPaths = append(g.walkPaths, walkPath{pin.Path, e})
}

type walkPath struct {
	path string
	e    guarded
}

// fileIndex is the identity of the files inside guarded directories (a
// bounded walk of each), built on first use: only a file with more than one
// link, or a top-level file source, needs it.
func (g *HostGuard) fileIndex() map[hostpath.ID]guarded {
	g.filesOnce.Do(func() {
		g.files = map[hostpath.ID]guarded{}
		budget := MaxScanEntries
		for _, w := range g.walkPaths {
			if !w.e.walk {
				continue
			}
			_ = filepath.WalkDir(w.path, func(p string, de fs.DirEntry, err error) error {
				if err != nil {
					return nil
				}
				if budget--; budget < 0 {
					return filepath.SkipAll
				}
				if de.Type().IsRegular() || de.Type()&fs.ModeSocket != 0 {
					if fi, err := de.Info(); err == nil {
						if id, ok := hostpath.Of(fi); ok {
							rel, _ := filepath.Rel(w.path, p)
							g.files[id] = guarded{name: w.e.name + "'s " + rel, never: w.e.never}
						}
					}
				}
				return nil
			})
		}
	})
	return g.files
}

// socketPaths are the well-known sockets and those EngineSockets whose
// engine is installed here (the socket, or the directory it is made in,
// exists: a stopped engine's socket comes back), each also with its links
// resolved. They are refused by path, above the identity checks that need
// the socket to exist.
func (g *HostGuard) socketPaths() []string {
	g.sockOnce.Do(func() {
		out := append([]string{}, hostSockets()...)
		for _, s := range g.EngineSockets {
			if _, err := os.Lstat(filepath.Dir(s)); err != nil {
				continue
			}
			out = append(out, filepath.Clean(s), ResolveExisting(s))
		}
		g.sockPaths = uniq(out...)
	})
	return g.sockPaths
}

// servedByEngine reports whether the socket at p is served by the Docker
// engine's own process.
func (g *HostGuard) servedByEngine(p string) bool {
	if len(g.enginePIDs) == 0 {
		return false
	}
	pid, ok := hostpath.SocketPeer(p, 500*time.Millisecond)
	return ok && g.enginePIDs[pid]
}

// scan walks a directory source without following links, at most
// MaxScanEntries entries, for sockets of the engine and for files and
// directories that are guarded paths under another name.
func (g *HostGuard) scan(dir string) GuardResult {
	g.mu.Lock()
	if r, ok := g.scans[dir]; ok {
		g.mu.Unlock()
		return r
	}
	g.mu.Unlock()
	var r GuardResult
	n := 0
	_ = filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil
		}
		if n++; n > MaxScanEntries {
			r.Warnings = append(r.Warnings, "only the first "+strconv.Itoa(MaxScanEntries)+" entries of "+dir+" were checked for sockets and links to sensitive files")
			return filepath.SkipAll
		}
		t := de.Type()
		if t&fs.ModeSymlink != 0 {
			return nil // followed in the container, inside its own mounts only
		}
		fi, err := de.Info()
		if err != nil {
			return nil
		}
		id, ok := hostpath.Of(fi)
		if !ok {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		e, found := g.ids[id]
		if !found && (t.IsRegular() && hostpath.Nlink(fi) > 1 || t&fs.ModeSocket != 0) {
			e, found = g.fileIndex()[id]
		}
		switch {
		case found && e.never:
			r.Never = append(r.Never, "contains "+rel+", which is "+e.name+" under another name (a hard link or a bind mount)")
		case found:
			r.Sensitive = append(r.Sensitive, "contains "+rel+", which is "+e.name+" under another name (a hard link or a bind mount)")
		case t&fs.ModeSocket != 0 && g.servedByEngine(p):
			r.Never = append(r.Never, "contains the socket "+rel+", served by the Docker engine's process")
		}
		return nil
	})
	g.mu.Lock()
	if g.scans == nil {
		g.scans = map[string]GuardResult{}
	}
	g.scans[dir] = r
	g.mu.Unlock()
	return r
}
