package contract

import (
	"path/filepath"
	"strings"

	"github.com/jackin-dev/jackin/drivers"
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

// clonedCheckout describes a checkout the instance clones from a git URL
// into a volume of its own: a claim filled by the Pod's init container on
// Kubernetes, a volume filled by a short-lived container before the
// agent's on a Docker engine.
type clonedCheckout struct {
	volume, filler, persists, removedWhen string
}

func clonedCheckoutOf(fx facts, name string) clonedCheckout {
	if fx.inst.Backend == schema.BackendKubernetes {
		return clonedCheckout{volume: "the claim " + name, filler: "the Pod's init container",
			persists:    "in a PersistentVolumeClaim of the namespace: survives Pod recreates",
			removedWhen: "never by jackin apply or delete (jackin cannot see from here whether it holds unpushed work): only jackin delete --purge removes the claim"}
	}
	where := "the engine"
	if fx.inst.Engine != "" {
		where = "engine " + fx.inst.Engine
	}
	return clonedCheckout{volume: "the volume " + name + " on " + where, filler: "a short-lived container of the role image, before the agent's,",
		persists:    "in a volume on " + where + ": survives recreates",
		removedWhen: "never by jackin apply or delete (jackin cannot see from here whether it holds unpushed work): only jackin delete --purge removes the volume"}
}

// agentContainer is the rendered agent container: what the executor
// creates, and so what the contract describes.
func agentContainer(di *reconciler.DesiredInstance) *drivers.ContainerSpec {
	for _, r := range di.Resources {
		if r.Kind == drivers.KindContainer && r.Component == drivers.ComponentAgent && r.Container != nil {
			return r.Container
		}
	}
	return &drivers.ContainerSpec{}
}

// renderedMounts are the agent container's mounts that made origin, in the
// order the container gets them.
func renderedMounts(fx facts, origin string) []drivers.MountSpec {
	var out []drivers.MountSpec
	for _, m := range fx.agent.Mounts {
		if fx.di.MountOrigin(m) == origin {
			out = append(out, m)
		}
	}
	return out
}

// renderedMount is the rendered mount of the manifest's mount at dst.
func renderedMount(fx facts, dst string) (drivers.MountSpec, bool) {
	for _, m := range renderedMounts(fx, reconciler.MountFromManifest) {
		if m.Target == dst {
			return m, true
		}
	}
	return drivers.MountSpec{}, false
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
// filesystem section, from its rendered mount rm (the checkout's host path,
// or the volume).
func isolationMount(fx facts, m reconciler.SpecMount, rm drivers.MountSpec) Mount {
	mt := Mount{Destination: m.Dst, Mode: m.Mode, Access: access(rm)}
	switch m.Mode {
	case schema.MountWorktree, schema.MountClone:
		if rm.Clone != nil {
			cc := clonedCheckoutOf(fx, rm.Source)
			mt.Type, mt.Source = MountVolume, rm.Source
			mt.EnforcedBy = "nothing: read-write, the agent can change this checkout and push from it with what its network and credentials allow"
			mt.Persistence = cc.persists
			mt.Isolation = &Isolation{Mode: m.Mode, HostPath: rm.Source, Source: m.Src, ScratchBranch: rm.Clone.Branch,
				StartsFrom: orDefault(m.Ref, "the HEAD of "+m.Src+" when "+cc.volume+" is first filled"), Persists: cc.persists, RemovedWhen: cc.removedWhen}
			break
		}
		path := rm.Source
		mt.Type, mt.Source = MountBind, path
		mt.EnforcedBy = "nothing: read-write, the agent can change this checkout (not " + m.Src + " itself)"
		mt.Persistence = checkoutPersists
		branch := workspace.Branch(fx.fleet, fx.di.Name)
		iso := &Isolation{Mode: m.Mode, HostPath: path, Source: m.Src, ScratchBranch: branch,
			StartsFrom: orDefault(m.Ref, "HEAD of "+m.Src+" when the checkout is made"), Persists: checkoutPersists, RemovedWhen: checkoutRemovedWhen}
		if m.Mode == schema.MountWorktree {
			iso.GitMetadata = gitMetadata(reconciler.CommonDir(fx.inst, m.Dst), path, iso.ScratchBranch)
		}
		mt.Isolation = iso
	case schema.MountEphemeral:
		name := rm.Source
		mt.Type, mt.Source = MountVolume, name
		mt.EnforcedBy = "the engine (a named volume, no host path)"
		mt.Persistence = volumePersists + "; removed " + volumeRemovedWhen
		mt.Isolation = &Isolation{Mode: m.Mode, HostPath: name, Source: m.Src, Persists: volumePersists, RemovedWhen: volumeRemovedWhen}
	}
	return mt
}

// access is a rendered mount's access, as the engine enforces it.
func access(m drivers.MountSpec) string {
	if m.ReadOnly {
		return "read-only"
	}
	return "read-write"
}

// gitDirMounts are the bind mounts of source git directories that worktree
// mounts add, so git works inside the container: each directory
// read-write, and the parts of it that name programs (config, hooks)
// read-only over it, as rendered.
func gitDirMounts(fx facts) []Mount {
	var out []Mount
	for _, m := range fx.agent.Mounts {
		switch fx.di.MountOrigin(m) {
		case reconciler.MountFromGitDir:
			var ro []string
			for _, sub := range renderedMounts(fx, reconciler.MountFromGitDirRO) {
				if rel, err := filepath.Rel(m.Source, sub.Source); err == nil && !strings.HasPrefix(rel, "..") {
					ro = append(ro, rel)
				}
			}
			enforced := "nothing: read-write, so git in the container can commit (objects, refs); the agent can also move or delete the repository's other branches and tags"
			if len(ro) > 0 {
				enforced += ", but not its " + strings.Join(ro, " or ") + ", which are mounted read-only over it"
			}
			out = append(out, Mount{Type: MountBind, Source: m.Source, Destination: m.Target, Mode: schema.MountRW, Access: access(m),
				EnforcedBy:  enforced,
				Persistence: "on the host: the source repository's git directory, never removed by jackin"})
		case reconciler.MountFromGitDirRO:
			out = append(out, Mount{Type: MountBind, Source: m.Source, Destination: m.Target, Mode: schema.MountRO, Access: access(m),
				EnforcedBy:  "the engine (read-only bind mount over the git directory: git on the host runs the programs it names)",
				Persistence: "on the host: part of the source repository's git directory, never removed by jackin"})
		}
	}
	return out
}

// checkoutExists reports whether the checkout of the mount at dst is made.
func checkoutExists(di *reconciler.DesiredInstance, dst string) bool {
	for _, w := range di.Checkouts {
		if w.Dst == dst {
			return workspace.Exists(w)
		}
	}
	return false
}

// isolationEffects are the host-side effects of an instance's worktree,
// clone and ephemeral mounts. Presence of checkouts is a stat of the
// state dir, nothing more.
func isolationEffects(fx facts, status func(bool) string, volumes map[string]bool) []HostEffect {
	var out []HostEffect
	for _, m := range fx.di.Spec.Mounts {
		rm, _ := renderedMount(fx, m.Dst)
		switch m.Mode {
		case schema.MountWorktree, schema.MountClone:
			if rm.Clone != nil {
				// Nothing on this machine: the Pod's init container clones.
				cc := clonedCheckoutOf(fx, rm.Source)
				out = append(out, HostEffect{Kind: EffectVolume, Name: rm.Source, Status: status(volumes[rm.Source]), AfterDelete: AfterDeleteKeptIfWork,
					Effect: "create " + cc.volume + "; " + cc.filler + " clones " + m.Src + " into it with the role image's git and checks out the new branch " + rm.Clone.Branch + " from " + orDefault(m.Ref, "the remote's HEAD") + " (once: a volume holding a checkout is kept as it is)"})
				continue
			}
			path := rm.Source
			st := StatusPlanned
			if checkoutExists(fx.di, m.Dst) {
				st = StatusPresent
			}
			branch := workspace.Branch(fx.fleet, fx.di.Name)
			start := orDefault(m.Ref, "the HEAD of "+m.Src)
			if m.Mode == schema.MountWorktree {
				out = append(out, HostEffect{Kind: EffectWorktree, Name: path, Status: st, AfterDelete: AfterDeleteKeptIfWork,
					Effect: "create the git worktree " + path + " of " + m.Src + " on the new branch " + branch + " from " + start})
				cd := reconciler.CommonDir(fx.inst, m.Dst)
				out = append(out, HostEffect{Kind: EffectGitMeta, Name: cd, Status: st, AfterDelete: AfterDeleteKeptIfWork,
					Effect: "write git metadata in the source repository (its working tree and HEAD are not touched): " + strings.Join(gitMetadata(cd, path, branch), "; ")})
			} else {
				out = append(out, HostEffect{Kind: EffectClone, Name: path, Status: st, AfterDelete: AfterDeleteKeptIfWork,
					Effect: "clone " + m.Src + " into " + path + " (no hard links; nothing is written in " + m.Src + ") and check out the new branch " + branch + " from " + start + "; its remotes are " + m.Src + "'s, plus \"source\" for " + m.Src})
			}
		case schema.MountEphemeral:
			name := rm.Source
			effect := "create the volume " + name
			if m.Src != "" {
				effect += " and copy " + m.Src + " into it when it is created"
			}
			out = append(out, HostEffect{Kind: EffectVolume, Name: name, Status: status(volumes[name]), AfterDelete: AfterDeleteRemoved, Effect: effect})
		}
	}
	return out
}
