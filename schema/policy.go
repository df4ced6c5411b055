package schema

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// HostDockerSockets are the well-known host Docker socket paths.
var HostDockerSockets = []string{"/var/run/docker.sock", "/run/docker.sock"}

// DockerSocketExposure reports whether bind-mounting src would expose the
// host Docker socket: src is a socket path, a parent directory of one, or a
// symlink or ".." spelling that resolves to either. It returns the socket
// path it would expose.
func DockerSocketExposure(src string) (string, bool) {
	return socketExposure(src, hostSockets())
}

// socketExposure is DockerSocketExposure against socks: by path, so a
// socket that is absent now (its engine stopped) is still never mounted,
// nor a directory above it. On macOS paths compare without case, as its
// filesystems do by default.
func socketExposure(src string, socks []string) (string, bool) {
	if src == "" || !filepath.IsAbs(src) {
		return "", false
	}
	candidates := uniq(filepath.Clean(src), ResolveExisting(src))
	for _, c := range candidates {
		for _, s := range socks {
			if samePath(c, s) || c == "/" || hasPathPrefix(s, c+"/") {
				return s, true
			}
		}
	}
	return "", false
}

// foldCase: paths on this system's default filesystem ignore case.
var foldCase = runtime.GOOS == "darwin"

func samePath(a, b string) bool {
	if foldCase {
		return strings.EqualFold(a, b)
	}
	return a == b
}

func hasPathPrefix(s, prefix string) bool {
	return len(s) >= len(prefix) && samePath(s[:len(prefix)], prefix)
}

// hostSockets is HostDockerSockets plus their symlink-resolved forms (on
// many hosts /var/run is a link to /run), resolved once per process.
var hostSockets = sync.OnceValue(func() []string {
	var out []string
	for _, s := range HostDockerSockets {
		out = append(out, s, ResolveExisting(s))
	}
	return uniq(out...)
})

// ResolveExisting resolves symlinks in the longest existing prefix of p and
// appends the rest, so a path through a symlinked directory resolves even
// when its last element does not exist. A dangling symlink is followed by
// its text: a link to a socket that is missing now (the daemon is not
// running yet) still names it.
func ResolveExisting(p string) string {
	p = filepath.Clean(p)
	for hops := 0; hops < 40; hops++ { // as many links as the kernel follows
		next, ok := resolveStep(p)
		if !ok {
			return next
		}
		p = next
	}
	return p
}

// resolveStep resolves p's longest existing prefix. When that prefix ends
// in a dangling symlink, it returns the path with the link replaced by its
// target, and true: there is more to resolve.
func resolveStep(p string) (string, bool) {
	rest := ""
	for cur := p; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest), false
		}
		if target, err := os.Readlink(cur); err == nil {
			if !filepath.IsAbs(target) {
				dir := filepath.Dir(cur)
				if r, err := filepath.EvalSymlinks(dir); err == nil {
					dir = r // ".." in the target leaves the real directory
				}
				target = filepath.Join(dir, target)
			}
			return filepath.Join(target, rest), true
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p, false
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

func uniq(items ...string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range items {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// DockerHostProblem explains why an agent's DOCKER_HOST value is refused, or
// returns "" for an empty value. Any endpoint is refused: an agent's Docker
// endpoint is jackin's to set (a private daemon), and an operator-supplied
// one would most often be the host's own daemon.
func DockerHostProblem(value string) string {
	v := strings.TrimSpace(value)
	if v == "" {
		return ""
	}
	what := "a Docker endpoint"
	switch {
	case strings.HasPrefix(v, "unix://"), strings.HasPrefix(v, "/"):
		what = "a Docker socket on the host"
	case strings.HasPrefix(v, "npipe://"), strings.HasPrefix(v, "fd://"):
		what = "the host's Docker daemon"
	case strings.HasPrefix(v, "tcp://"), strings.HasPrefix(v, "ssh://"), strings.HasPrefix(v, "http://"), strings.HasPrefix(v, "https://"):
		what = "a Docker daemon reachable from the agent, such as the host's"
	}
	return "DOCKER_HOST=" + v + " points the agent at " + what + ": the host Docker daemon is never exposed to an agent; Docker access for an agent is a private daemon that jackin sets up: remove DOCKER_HOST and set docker: \"private\""
}

// DockerClientEnv are the variables jackin sets in the agent for docker
// "private": the manifest may not set them itself.
var DockerClientEnv = []string{"DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "TESTCONTAINERS_HOST_OVERRIDE"}

// JackinEnv are the variables jackin itself sets in an agent (the private
// daemon's client, the egress proxy, the trust of the egress CA, HOME
// under a read-only root): a credential may not be delivered into one.
var JackinEnv = append(append([]string{}, DockerClientEnv...),
	"DOCKER_CONFIG", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
	"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "NODE_EXTRA_CA_CERTS", "HOME")

// JackinMountTargets are directories jackin mounts into an agent (the
// private daemon's client files, the egress CA): nothing else may be
// mounted at, in or around them.
var JackinMountTargets = []string{"/run/jackin", "/run/jackin-ca"}

// DefaultStateDir is where jackin keeps its state when no directory is
// given: $JACKIN_HOME, else ~/.local/state/jackin.
func DefaultStateDir() string {
	if d := os.Getenv("JACKIN_HOME"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".jackin"
	}
	return filepath.Join(home, ".local", "state", "jackin")
}

// SSHControlDir is the directory of jackin's ssh control sockets (and its
// dial keepers' sockets) for ssh:// engines: the system's temporary
// directory, unless a control socket's path there would not fit a unix
// socket address (macOS's $TMPDIR under /var/folders is that long), then
// /tmp. Each socket in it is the operator's access to an engine's host.
func SSHControlDir() string {
	name := "jackin-ssh-" + strconv.Itoa(os.Getuid())
	dir := filepath.Join(os.TempDir(), name)
	if len(dir)+sshSocketTail >= maxSocketPath {
		dir = filepath.Join("/tmp", name)
	}
	return dir
}

// sshSocketTail is what ssh adds to the directory for a control socket:
// "/", the 40 hex digits of %C, and the "." and 16 characters of the
// temporary name it binds first. maxSocketPath is the smallest
// sun_path of the systems jackin runs on (macOS: 104, with its NUL).
const (
	sshSocketTail = 1 + 40 + 17
	maxSocketPath = 104
)

// ExpandHome replaces a leading "~" or "~/" with home. "~user" is not supported.
func ExpandHome(p, home string) (string, bool) {
	switch {
	case p == "~":
		return home, true
	case strings.HasPrefix(p, "~/"):
		return filepath.Join(home, p[2:]), true
	case strings.HasPrefix(p, "~"):
		return p, false
	}
	return p, true
}

// exists reports whether p exists (following symlinks).
func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
