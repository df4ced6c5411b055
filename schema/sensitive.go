package schema

import (
	"path/filepath"
	"strings"

	"github.com/jackin-dev/jackin/runtimes"
)

// SensitiveHomePath is a well-known credential location under the home
// directory.
type SensitiveHomePath struct {
	Rel  string // relative to the home directory, slash-separated
	What string // what it holds
}

// SensitiveHomePaths are the credential locations SensitivePathFindings
// looks for under the home directory. The list lives here rather than in
// the contract package because manifest validation refuses these mounts and
// the contract lists them, and both must agree on one list.
var SensitiveHomePaths = append([]SensitiveHomePath{
	{".ssh", "SSH keys"},
	{".aws", "AWS credentials"},
	{".gnupg", "GnuPG keys"},
	{".config/gh", "GitHub CLI token"},
	{".docker", "Docker registry credentials"},
	{".kube", "Kubernetes credentials"},
	{".netrc", "login passwords"},
	{".npmrc", "npm tokens"},
	{".git-credentials", "git passwords and tokens"},
	{".config/gcloud", "Google Cloud credentials"},
	{".azure", "Azure credentials"},
	{".config/op", "1Password CLI session"},
	{".pgpass", "PostgreSQL passwords"},
	// macOS, and the engines that run there.
	{"Library/Keychains", "macOS keychains"},
	{"Library/Cookies", "browser cookies"},
	{".orbstack", "OrbStack's engine socket and its SSH key into the machines"},
	{".colima", "Colima's engine socket and VM"},
	{".lima", "Lima's VMs and their sockets"},
	{"Library/Containers/com.docker.docker", "Docker Desktop's VM and sockets"},
}, runtimeHomePaths()...)

// runtimeHomePaths are the agent runtimes' own logins (runtimes.Runtime.Home,
// in the table's order): an agent given another's would run as the
// operator's account.
func runtimeHomePaths() []SensitiveHomePath {
	var out []SensitiveHomePath
	for _, rt := range runtimes.All() {
		for _, h := range rt.Home {
			out = append(out, SensitiveHomePath{Rel: h.Rel, What: h.What})
		}
	}
	return out
}

// SensitivePathFindings reports what a bind mount of the host path src
// exposes of home: the home directory itself (src is home or a parent of it)
// or well-known credential locations (src is one of them, inside one, or a
// parent of one, such as ~/.config). Symlinks are resolved first, in src and
// in home, so a link to ~/.ssh is found; both the spelled and the resolved
// forms are checked. It returns one human-readable finding per exposure, in
// SensitiveHomePaths order, or nil.
//
// Manifest validation refuses a mount with findings unless it sets
// allowSensitive; the session contract lists the findings as warnings.
func SensitivePathFindings(src, home string) []string {
	if src == "" || home == "" || !filepath.IsAbs(src) || !filepath.IsAbs(home) {
		return nil
	}
	srcs := uniq(filepath.Clean(src), ResolveExisting(src))
	homes := uniq(filepath.Clean(home), ResolveExisting(home))

	for _, s := range srcs {
		for _, h := range homes {
			if s == h || isParentDir(s, h) {
				return []string{"exposes the home directory " + filepath.Clean(home) + " and every credential in it (such as ~/.ssh, ~/.aws, ~/.config/gh)"}
			}
		}
	}
	var out []string
	for _, p := range SensitiveHomePaths {
		name := "~/" + p.Rel + " (" + p.What + ")"
		best := 0 // 3: src is it, 2: src contains it, 1: src is inside it
		for _, s := range srcs {
			for _, h := range homes {
				c := filepath.Join(h, filepath.FromSlash(p.Rel))
				switch {
				case s == c:
					best = max(best, 3)
				case isParentDir(s, c):
					best = max(best, 2)
				case isParentDir(c, s):
					best = max(best, 1)
				}
			}
		}
		finding := ""
		switch best {
		case 3:
			finding = "exposes " + name
		case 2:
			finding = "exposes " + name + ", which it contains"
		case 1:
			finding = "exposes part of " + name
		}
		if finding != "" {
			out = append(out, finding)
		}
	}
	return out
}

// isParentDir reports whether dir is a proper ancestor of p (both clean).
func isParentDir(dir, p string) bool {
	if dir == p {
		return false
	}
	if dir == string(filepath.Separator) {
		return strings.HasPrefix(p, dir)
	}
	return strings.HasPrefix(p, dir+string(filepath.Separator))
}
