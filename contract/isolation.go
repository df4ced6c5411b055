package contract

import (
	"path/filepath"
	"strings"

	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/workspace"
)

// Lifecycle of isolated mounts, in the words the contract prints.
const (
	checkoutPersists    = "on the host under the state dir: survives recreates and crashes"
	checkoutRemovedWhen = "when the instance is deleted, if it is clean and its commits are pushed or merged; otherwise kept (status preserved-dirty or preserved-unpushed, listed by jackin work) until jackin delete --purge"
	volumePersists      = "in the engine's volume: survives recreates"
	volumeRemovedWhen   = "when the instance is deleted (jackin delete, or removal from the manifest)"
)

// checkoutOf finds the desired checkout for the mount at dst.
func checkoutOf(di *reconciler.DesiredInstance, dst string) (workspace.Want, bool) {
	for _, w := range di.Checkouts {
		if w.Dst == dst {
			return w, true
		}
	}
	return workspace.Want{}, false
}

func wantPath(w workspace.Want) string {
	return workspace.Path(w.StateDir, w.Fleet, w.Instance, workspace.Slug(w.Dst))
}

// gitCommonDir is the source git directory resolved at load for a worktree mount.
func gitCommonDir(inst schema.Instance, dst string) string {
	for _, m := range inst.Mounts {
		if m.Dst == dst && m.Mode == schema.MountWorktree {
			return m.GitCommonDir
		}
	}
	return ""
}

// gitMetadata lists what making a worktree writes in the source
// repository: the worktree's entry and the scratch branch.
func gitMetadata(commonDir, path, branch string) []string {
	if commonDir == "" {
		commonDir = "<src>/.git"
	}
	return []string{
		filepath.Join(commonDir, "worktrees", filepath.Base(path)) + "/ (the worktree's entry: HEAD, index, gitdir; git may add a number to the name)",
		"refs/heads/" + branch + " (the scratch branch) in " + commonDir,
		"objects and refs the agent's commits add, in " + commonDir,
	}
}

// isolationMount describes a worktree, clone or ephemeral mount for the
// filesystem section.
func isolationMount(fx facts, m reconciler.SpecMount) Mount {
	mt := Mount{Destination: m.Dst, Mode: m.Mode, Access: "read-write"}
	switch m.Mode {
	case schema.MountWorktree, schema.MountClone:
		w, _ := checkoutOf(fx.di, m.Dst)
		path := wantPath(w)
		mt.Type, mt.Source = MountBind, path
		mt.EnforcedBy = "nothing: read-write, the agent can change this checkout (not " + m.Src + " itself)"
		mt.Persistence = checkoutPersists
		iso := &Isolation{Mode: m.Mode, HostPath: path, Source: m.Src, ScratchBranch: workspace.Branch(w.Fleet, w.Instance),
			StartsFrom: orDefault(m.Ref, "HEAD of "+m.Src+" when the checkout is made"), Persists: checkoutPersists, RemovedWhen: checkoutRemovedWhen}
		if m.Mode == schema.MountWorktree {
			iso.GitMetadata = gitMetadata(gitCommonDir(fx.inst, m.Dst), path, iso.ScratchBranch)
		}
		mt.Isolation = iso
	case schema.MountEphemeral:
		name := volumeName(fx, m.Dst)
		mt.Type, mt.Source = MountVolume, name
		mt.EnforcedBy = "the engine (a named volume, no host path)"
		mt.Persistence = volumePersists + "; removed " + volumeRemovedWhen
		mt.Isolation = &Isolation{Mode: m.Mode, HostPath: name, Source: m.Src, Persists: volumePersists, RemovedWhen: volumeRemovedWhen}
	}
	return mt
}

// volumeName is reconciler.VolumeName: fx.name is the instance's resource name.
func volumeName(fx facts, dst string) string {
	return fx.name + "-" + workspace.Slug(dst)
}

// gitDirMounts are the bind mounts of source git directories that worktree
// mounts add, so git works inside the container.
func gitDirMounts(fx facts) []Mount {
	seen := map[string]bool{}
	var out []Mount
	for _, m := range fx.di.Spec.Mounts {
		if m.Mode != schema.MountWorktree {
			continue
		}
		cd := gitCommonDir(fx.inst, m.Dst)
		if cd == "" || seen[cd] {
			continue
		}
		seen[cd] = true
		out = append(out, Mount{Type: MountBind, Source: cd, Destination: cd, Mode: schema.MountRW, Access: "read-write",
			EnforcedBy:  "nothing: read-write, so git in the container can commit (objects, refs); the agent can also change " + m.Src + "'s other branches, config and hooks",
			Persistence: "on the host: the source repository's git directory, never removed by jackin"})
	}
	return out
}

// isolationEffects are the host-side effects of an instance's worktree,
// clone and ephemeral mounts. Presence of checkouts is a stat of the
// state dir, nothing more.
func isolationEffects(fx facts, status func(bool) string, volumes map[string]bool) []HostEffect {
	var out []HostEffect
	for _, m := range fx.di.Spec.Mounts {
		switch m.Mode {
		case schema.MountWorktree, schema.MountClone:
			w, _ := checkoutOf(fx.di, m.Dst)
			path := wantPath(w)
			st := StatusPlanned
			if workspace.Exists(w) {
				st = StatusPresent
			}
			branch := workspace.Branch(w.Fleet, w.Instance)
			start := orDefault(m.Ref, "the HEAD of "+m.Src)
			if m.Mode == schema.MountWorktree {
				out = append(out, HostEffect{Kind: EffectWorktree, Name: path, Status: st, AfterDelete: AfterDeleteKeptIfWork,
					Effect: "create the git worktree " + path + " of " + m.Src + " on the new branch " + branch + " from " + start})
				cd := gitCommonDir(fx.inst, m.Dst)
				out = append(out, HostEffect{Kind: EffectGitMeta, Name: cd, Status: st, AfterDelete: AfterDeleteKeptIfWork,
					Effect: "write git metadata in the source repository (its working tree and HEAD are not touched): " + strings.Join(gitMetadata(cd, path, branch), "; ")})
			} else {
				out = append(out, HostEffect{Kind: EffectClone, Name: path, Status: st, AfterDelete: AfterDeleteKeptIfWork,
					Effect: "clone " + m.Src + " into " + path + " (no hard links; nothing is written in " + m.Src + ") and check out the new branch " + branch + " from " + start + "; its remotes are " + m.Src + "'s, plus \"source\" for " + m.Src})
			}
		case schema.MountEphemeral:
			name := volumeName(fx, m.Dst)
			effect := "create the volume " + name
			if m.Src != "" {
				effect += " and copy " + m.Src + " into it when it is created"
			}
			out = append(out, HostEffect{Kind: EffectVolume, Name: name, Status: status(volumes[name]), AfterDelete: AfterDeleteRemoved, Effect: effect})
		}
	}
	return out
}
