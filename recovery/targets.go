package recovery

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/workspace"
)

var targetUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// TargetsOf are the host directories instance in can write, as
// snapshot targets: its rw mounts' sources and its worktree and clone
// checkouts, with the snapshot excludes of its active integrations.
// tmpfs and ro mounts are not targets; ephemeral volumes are the engine's
// and are not covered (the contract says so).
func TargetsOf(stateDir, fleet string, in *schema.Instance) []Target {
	var out []Target
	seen := map[string]int{}
	for _, m := range in.Mounts {
		var t Target
		switch m.Mode {
		case schema.MountRW:
			t = Target{Kind: KindRW, Path: m.Src}
		case schema.MountWorktree:
			t = Target{Kind: KindWorktree, Path: workspace.Path(stateDir, fleet, in.Name, workspace.Slug(m.Dst))}
		case schema.MountClone:
			t = Target{Kind: KindClone, Path: workspace.Path(stateDir, fleet, in.Name, workspace.Slug(m.Dst))}
		default:
			continue
		}
		t.Dst = m.Dst
		slug := strings.Trim(targetUnsafe.ReplaceAllString(strings.ToLower(m.Dst), "-"), "-")
		if slug == "" {
			slug = "root"
		}
		t.Name = t.Kind + "-" + slug
		if n := seen[t.Name]; n > 0 {
			t.Name = fmt.Sprintf("%s-%d", t.Name, n+1)
		}
		seen[t.Kind+"-"+slug]++
		t.Excludes = append([]string(nil), in.SnapshotExcludes...)
		out = append(out, t)
	}
	return out
}
