package contract

import (
	"path/filepath"
	"strings"

	"github.com/jackin-dev/jackin/schema"
)

// SensitiveHomePath is a well-known credential location under the home
// directory (schema.SensitiveHomePath).
type SensitiveHomePath = schema.SensitiveHomePath

// SensitiveHomePaths are the credential locations SensitivePathFindings
// looks for under the home directory. The list lives in schema, which
// manifest validation uses to refuse these mounts; this is the same slice.
var SensitiveHomePaths = schema.SensitiveHomePaths

// SensitivePathFindings reports what a bind mount of the host path src
// exposes of home (see schema.SensitivePathFindings, the one matcher that
// validation and the contract share). The contract lists findings as
// warnings, also for mounts that set allowSensitive.
func SensitivePathFindings(src, home string) []string {
	return schema.SensitivePathFindings(src, home)
}

// hostPathFindings are the findings validation refuses without
// allowSensitive: the home directory's credential locations and the host's
// own system paths and other users' homes.
func hostPathFindings(src, home string) []string {
	return append(SensitivePathFindings(src, home), schema.SystemPathFindings(src, home)...)
}

// isParent reports whether dir is a proper ancestor of p (both clean).
func isParent(dir, p string) bool {
	if dir == p {
		return false
	}
	if dir == string(filepath.Separator) {
		return strings.HasPrefix(p, dir)
	}
	return strings.HasPrefix(p, dir+string(filepath.Separator))
}
