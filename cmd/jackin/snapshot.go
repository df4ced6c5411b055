package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/recovery"
	"github.com/jackin-dev/jackin/schema"
)

// snapshotFlags are what every snapshot verb takes.
type snapshotFlags struct {
	mf          manifestFlags
	fleet       string
	out         outputFlag
	lockTimeout time.Duration
}

func (f *snapshotFlags) register(cmd *cobra.Command, fleetFlag bool) {
	f.mf.register(cmd)
	if fleetFlag {
		cmd.Flags().StringVar(&f.fleet, "fleet", "", "the fleet, instead of -f")
	}
	f.out.register(cmd, "table", "table", "json", "yaml")
}

func newSnapshotCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "List, take, show, restore and prune snapshots of what agents can write on the host",
		Long: `A snapshot holds what an instance's agent can write on the host: its rw
mounts' directories and its worktree and clone checkouts, with uncommitted and
untracked files, file modes, symlinks and empty directories (.git entries and
the snapshot excludes of its integrations left out). recovery.snapshot takes
them automatically before the agent starts (before-start) or before any apply
that changes the instance (before-apply); recovery.keep (default 10) is how
many each instance keeps.

Snapshots are git objects in a repository jackin owns, one per fleet, under
the state dir (recovery/<fleet>.git): content-addressed, so a second snapshot
of an unchanged tree adds one small commit. git runs there with no hook,
filter or config of the operator's, on the target's files as data only.

restore first snapshots the current state (its ID is printed: restoring it
undoes the restore), refuses while the agent runs unless --stop, writes only
inside the instance's current writable mounts, and brings back content, modes,
symlinks, deletions and untracked files.`,
		Example: `  jackin snapshot create -f fleet.cue web
  jackin snapshot list -f fleet.cue web
  jackin snapshot show -f fleet.cue web 3f2a9c
  jackin snapshot restore -f fleet.cue web 3f2a9c --stop
  jackin snapshot prune -f fleet.cue`,
	}
	cmd.AddCommand(newSnapshotListCommand(a), newSnapshotCreateCommand(a), newSnapshotShowCommand(a), newSnapshotRestoreCommand(a), newSnapshotPruneCommand(a))
	return cmd
}

// snapshotDoc is one snapshot in -o json|yaml.
type snapshotDoc struct {
	ID       string                `json:"id"`
	Commit   string                `json:"commit"`
	Instance string                `json:"instance"`
	Trigger  string                `json:"trigger"`
	Created  time.Time             `json:"created"`
	Files    int                   `json:"files"`
	Bytes    int64                 `json:"bytes"`
	Targets  []recovery.TargetInfo `json:"targets"`
	// DurationMs is how long taking it took (create only).
	DurationMs int64 `json:"durationMs,omitempty"`
}

func snapDoc(s recovery.Snapshot) snapshotDoc {
	d := snapshotDoc{ID: s.ID, Commit: s.Commit, Instance: s.Instance, Trigger: s.Trigger, Created: s.Created, Targets: s.Targets, DurationMs: s.Duration.Milliseconds()}
	if d.Targets == nil {
		d.Targets = []recovery.TargetInfo{}
	}
	for _, t := range s.Targets {
		d.Files += t.Files
		d.Bytes += t.Bytes
	}
	return d
}

// snapshotInstance is the manifest's instance name, or exit code 2.
func snapshotInstance(fleet *schema.Fleet, name string) (*schema.Instance, error) {
	in, ok := fleet.Instances[name]
	if !ok {
		return nil, exitWith(exitInvalid, fmt.Errorf("no instance %q in fleet %s", name, fleet.Name))
	}
	in.Name = name
	return &in, nil
}

// readRepo opens the fleet's snapshot repository for reading (nil when
// there is none yet).
func (a *app) readRepo(ctx context.Context, f *snapshotFlags) (string, *recovery.Repo, error) {
	fleet, err := a.fleetFromFlags(ctx, f.mf.files, f.fleet, true)
	if err != nil {
		return "", nil, err
	}
	repo, err := recovery.OpenExisting(a.global.stateDir, fleet)
	if err != nil {
		return "", nil, exitWith(exitInvalid, err)
	}
	return fleet, repo, nil
}

func newSnapshotListCommand(a *app) *cobra.Command {
	var f snapshotFlags
	cmd := &cobra.Command{
		Use:   "list INSTANCE (-f PATH | --fleet NAME)",
		Short: "List an instance's snapshots, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.out.validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			fleet, repo, err := a.readRepo(ctx, &f)
			if err != nil {
				return err
			}
			docs := []snapshotDoc{}
			var size int64
			if repo != nil {
				snaps, err := repo.List(ctx, args[0])
				if err != nil {
					return exitWith(exitInvalid, err)
				}
				for _, s := range snaps {
					docs = append(docs, snapDoc(s))
				}
				size, _ = repo.Size()
			}
			if f.out.format != "table" {
				return writeStructured(a.stdout, f.out.format, map[string]any{
					"apiVersion": "jackin.dev/v1alpha1", "kind": "SnapshotList", "fleet": fleet, "instance": args[0],
					"repository": recovery.RepoDir(a.global.stateDir, fleet), "repositoryBytes": size, "snapshots": docs,
				})
			}
			if len(docs) == 0 {
				fmt.Fprintf(a.stdout, "Instance %s of fleet %s has no snapshots.\n", args[0], fleet)
				return nil
			}
			t := &table{}
			t.add("ID", "CREATED", "TRIGGER", "FILES", "SIZE", "TARGETS")
			for _, d := range docs {
				var names []string
				for _, tg := range d.Targets {
					names = append(names, tg.Name)
				}
				t.add(d.ID, d.Created.Local().Format("2006-01-02 15:04:05"), d.Trigger, fmt.Sprint(d.Files), humanSize(d.Bytes), strings.Join(names, ","))
			}
			t.write(a.stdout)
			fmt.Fprintf(a.stdout, "Repository %s: %s.\n", recovery.RepoDir(a.global.stateDir, fleet), humanSize(size))
			return nil
		},
	}
	f.register(cmd, true)
	return cmd
}

func newSnapshotShowCommand(a *app) *cobra.Command {
	var f snapshotFlags
	cmd := &cobra.Command{
		Use:   "show INSTANCE [ID] (-f PATH | --fleet NAME)",
		Short: "Show one snapshot (the newest without ID): its targets, files and sizes",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.out.validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			fleet, repo, err := a.readRepo(ctx, &f)
			if err != nil {
				return err
			}
			if repo == nil {
				return exitWith(exitInvalid, fmt.Errorf("fleet %s has no snapshots", fleet))
			}
			s, err := repo.Find(ctx, args[0], argOr(args, 1))
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			d := snapDoc(s)
			if f.out.format != "table" {
				return writeStructured(a.stdout, f.out.format, map[string]any{"apiVersion": "jackin.dev/v1alpha1", "kind": "Snapshot", "fleet": fleet, "snapshot": d})
			}
			fmt.Fprintf(a.stdout, "Snapshot %s of %s/%s\n  commit   %s\n  created  %s\n  trigger  %s\n  total    %d files, %s\n", d.ID, fleet, d.Instance, d.Commit, d.Created.Local().Format(time.RFC3339), d.Trigger, d.Files, humanSize(d.Bytes))
			for _, t := range d.Targets {
				fmt.Fprintf(a.stdout, "  %s: %s (at %s): %d files, %d dirs, %s", t.Name, t.Path, t.Dst, t.Files, t.Dirs, humanSize(t.Bytes))
				if t.Skipped > 0 {
					fmt.Fprintf(a.stdout, ", %d not covered (.git, sockets, devices)", t.Skipped)
				}
				if len(t.Excludes) > 0 {
					fmt.Fprintf(a.stdout, ", excluding %s", strings.Join(t.Excludes, " "))
				}
				fmt.Fprintln(a.stdout)
			}
			return nil
		},
	}
	f.register(cmd, true)
	return cmd
}

func newSnapshotCreateCommand(a *app) *cobra.Command {
	var f snapshotFlags
	cmd := &cobra.Command{
		Use:   "create INSTANCE -f PATH",
		Short: "Snapshot what an instance's agent can write on the host, now",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.out.validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			fleet, err := a.loadFleet(ctx, f.mf.files)
			if err != nil {
				return err
			}
			in, err := snapshotInstance(fleet, args[0])
			if err != nil {
				return err
			}
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			lock, err := a.lockFleet(ctx, fleet.Name, "snapshot create", f.lockTimeout)
			if err != nil {
				return err
			}
			defer lock.Release()
			env := pipeline.Env{StateDir: a.global.stateDir, Store: st, Log: a.log}
			s, ok, err := env.Snapshot(ctx, fleet.Name, in, recovery.TriggerManual)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			if !ok {
				return exitWith(exitInvalid, fmt.Errorf("instance %s has no writable host directory to snapshot (no rw mount, and no worktree or clone made yet)", in.Name))
			}
			d := snapDoc(s)
			if f.out.format != "table" {
				return writeStructured(a.stdout, f.out.format, map[string]any{"apiVersion": "jackin.dev/v1alpha1", "kind": "Snapshot", "fleet": fleet.Name, "snapshot": d})
			}
			fmt.Fprintf(a.stdout, "Snapshot %s of %s: %d files, %s in %d target(s), taken in %s.\n", d.ID, in.Name, d.Files, humanSize(d.Bytes), len(d.Targets), s.Duration.Round(time.Millisecond))
			return nil
		},
	}
	f.register(cmd, false)
	cmd.Flags().DurationVar(&f.lockTimeout, "lock-timeout", defaultLockTimeout, "how long to wait for another writer of the same fleet")
	return cmd
}

func newSnapshotRestoreCommand(a *app) *cobra.Command {
	var f snapshotFlags
	var stop bool
	cmd := &cobra.Command{
		Use:   "restore INSTANCE [ID] -f PATH [--stop]",
		Short: "Bring an instance's writable host directories back to a snapshot (the newest without ID)",
		Long: `restore snapshots the current state first (restoring that snapshot undoes the
restore), then writes, inside each of the instance's current writable mounts
only, what differs from the snapshot: content, modes, symlinks, deletions and
untracked files. A snapshot holding a directory that is no longer one of the
instance's writable mounts is refused, with nothing restored.

It refuses while the agent runs: --stop stops it for the restore and starts it
again after. It takes the fleet's writer lock (watch waits meanwhile).`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.out.validate(); err != nil {
				return err
			}
			return a.snapshotRestore(cmd.Context(), &f, args[0], argOr(args, 1), stop)
		},
	}
	f.register(cmd, false)
	cmd.Flags().BoolVar(&stop, "stop", false, "stop a running agent for the restore, and start it again after")
	cmd.Flags().DurationVar(&f.lockTimeout, "lock-timeout", defaultLockTimeout, "how long to wait for another writer of the same fleet")
	return cmd
}

func (a *app) snapshotRestore(ctx context.Context, f *snapshotFlags, name, id string, stop bool) error {
	fleet, err := a.loadFleet(ctx, f.mf.files)
	if err != nil {
		return err
	}
	in, err := snapshotInstance(fleet, name)
	if err != nil {
		return err
	}
	repo, err := recovery.OpenExisting(a.global.stateDir, fleet.Name)
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	if repo == nil {
		return exitWith(exitInvalid, fmt.Errorf("fleet %s has no snapshots", fleet.Name))
	}
	if _, err := repo.Find(ctx, name, id); err != nil {
		return exitWith(exitInvalid, err)
	}
	st, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	lock, err := a.lockFleet(ctx, fleet.Name, "snapshot restore", f.lockTimeout)
	if err != nil {
		return err
	}
	defer lock.Release()
	agent, drv, err := a.agentContainer(ctx, fleet.Name, name)
	if err != nil {
		return err
	}
	restart := false
	if agent != nil && agent.State == drivers.StateRunning {
		if !stop {
			return exitWith(exitInvalid, fmt.Errorf("instance %s's agent is running (container %s): restore refused, nothing changed; stop it first or pass --stop", name, agent.Name))
		}
		defer signals.hold("the restore")()
		if err := drv.Stop(context.WithoutCancel(ctx), agent.ID); err != nil {
			return exitWith(exitInvalid, fmt.Errorf("stop the agent of %s for the restore: %w", name, err))
		}
		fmt.Fprintf(a.stderr, "Stopped %s for the restore.\n", agent.Name)
		restart = true
	} else {
		defer signals.hold("the restore")()
	}
	res, rerr := repo.Restore(context.WithoutCancel(ctx), name, id, recovery.TargetsOf(a.global.stateDir, fleet.Name, in))
	env := pipeline.Env{StateDir: a.global.stateDir, Store: st, Log: a.log}
	if rerr == nil {
		env.RecordRestore(ctx, fleet.Name, name, res)
	}
	if restart {
		if err := drv.Start(context.WithoutCancel(ctx), agent.ID); err != nil {
			rerr = errors.Join(rerr, fmt.Errorf("start the agent of %s again: %w (jackin apply starts it)", name, err))
		} else {
			fmt.Fprintf(a.stderr, "Started %s again.\n", agent.Name)
		}
	}
	if rerr != nil {
		return exitWith(exitInvalid, rerr)
	}
	if f.out.format != "table" {
		return writeStructured(a.stdout, f.out.format, map[string]any{
			"apiVersion": "jackin.dev/v1alpha1", "kind": "Restore", "fleet": fleet.Name, "instance": name,
			"snapshot": snapDoc(res.Snapshot), "before": snapDoc(res.Before), "written": res.Written, "deleted": res.Deleted, "modes": res.Modes, "left": orEmpty(res.Left),
		})
	}
	fmt.Fprintf(a.stdout, "Restored %s to snapshot %s: %d written, %d deleted, %d modes set.\n", name, res.Snapshot.ID, res.Written, res.Deleted, res.Modes)
	for _, l := range res.Left {
		fmt.Fprintf(a.stdout, "  left in place (holds what snapshots do not cover): %s\n", l)
	}
	fmt.Fprintf(a.stdout, "The state before the restore is snapshot %s: jackin snapshot restore %s %s undoes it.\n", res.Before.ID, name, res.Before.ID)
	return nil
}

// agentContainer is the instance's agent container, nil when it has none
// on the engine (or in a machine of its own).
func (a *app) agentContainer(ctx context.Context, fleet, instance string) (*drivers.ObservedResource, drivers.Driver, error) {
	drv, err := a.connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	loc, ok := drv.(drivers.AgentLocator)
	if !ok {
		return nil, nil, exitWith(exitInvalid, fmt.Errorf("backend %s cannot find agent containers", drv.Name()))
	}
	found, err := loc.FindAgents(ctx, fleet, instance)
	if err != nil {
		return nil, nil, exitWith(exitInvalid, err)
	}
	var d drivers.Driver = drv
	if len(found) == 0 {
		if md, f := a.findAgentInMachines(ctx, fleet, instance); len(f) > 0 {
			d, found = md, f
		}
	}
	if len(found) == 0 {
		return nil, d, nil
	}
	return &found[0], d, nil
}

func newSnapshotPruneCommand(a *app) *cobra.Command {
	var f snapshotFlags
	var keep int
	cmd := &cobra.Command{
		Use:   "prune [INSTANCE...] (-f PATH | --fleet NAME) [--keep N]",
		Short: "Drop snapshots beyond each instance's keep and reclaim the space no snapshot uses",
		Long: `prune keeps, per instance (every instance with snapshots when none is named),
the newest recovery.keep snapshots (with -f; --keep overrides it; default 10),
drops the others and deletes the objects no remaining snapshot of the fleet
refers to.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.out.validate(); err != nil {
				return err
			}
			return a.snapshotPrune(cmd.Context(), &f, args, keep)
		},
	}
	f.register(cmd, true)
	cmd.Flags().IntVar(&keep, "keep", 0, "snapshots to keep per instance (default: the instance's recovery.keep, else 10)")
	cmd.Flags().DurationVar(&f.lockTimeout, "lock-timeout", defaultLockTimeout, "how long to wait for another writer of the same fleet")
	return cmd
}

func (a *app) snapshotPrune(ctx context.Context, f *snapshotFlags, names []string, keep int) error {
	if keep < 0 {
		return exitWith(exitInvalid, fmt.Errorf("--keep must be at least 1, got %d", keep))
	}
	keeps := map[string]int{}
	var fleetName string
	if len(f.mf.files) > 0 {
		if f.fleet != "" {
			return exitWith(exitInvalid, errors.New("give either -f or --fleet, not both"))
		}
		fleet, err := a.loadFleet(ctx, f.mf.files)
		if err != nil {
			return err
		}
		fleetName = fleet.Name
		for n, in := range fleet.Instances {
			keeps[n] = in.Recovery.KeepCount()
		}
	} else {
		var err error
		if fleetName, err = a.fleetFromFlags(ctx, nil, f.fleet, true); err != nil {
			return err
		}
	}
	repo, err := recovery.OpenExisting(a.global.stateDir, fleetName)
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	type pruned struct {
		Instance string   `json:"instance"`
		Keep     int      `json:"keep"`
		Dropped  []string `json:"dropped"`
	}
	doc := map[string]any{"apiVersion": "jackin.dev/v1alpha1", "kind": "SnapshotPrune", "fleet": fleetName}
	out := []pruned{}
	if repo == nil {
		doc["instances"] = out
		if f.out.format != "table" {
			return writeStructured(a.stdout, f.out.format, doc)
		}
		fmt.Fprintf(a.stdout, "Fleet %s has no snapshots.\n", fleetName)
		return nil
	}
	lock, err := a.lockFleet(ctx, fleetName, "snapshot prune", f.lockTimeout)
	if err != nil {
		return err
	}
	defer lock.Release()
	if len(names) == 0 {
		if names, err = repo.Instances(ctx); err != nil {
			return exitWith(exitInvalid, err)
		}
	}
	sort.Strings(names)
	before, _ := repo.Size()
	for i, n := range names {
		k := keep
		if k == 0 {
			k = keeps[n]
		}
		if k == 0 {
			k = schema.DefaultSnapshotKeep
		}
		dropped, err := repo.Prune(ctx, n, k, i == len(names)-1)
		if err != nil {
			return exitWith(exitInvalid, err)
		}
		p := pruned{Instance: n, Keep: k, Dropped: []string{}}
		for _, s := range dropped {
			p.Dropped = append(p.Dropped, s.ID)
		}
		out = append(out, p)
	}
	after, _ := repo.Size()
	doc["instances"], doc["bytesBefore"], doc["bytesAfter"] = out, before, after
	if f.out.format != "table" {
		return writeStructured(a.stdout, f.out.format, doc)
	}
	for _, p := range out {
		fmt.Fprintf(a.stdout, "%s: kept the newest %d, dropped %d\n", p.Instance, p.Keep, len(p.Dropped))
	}
	fmt.Fprintf(a.stdout, "Repository %s: %s → %s.\n", repo.Dir, humanSize(before), humanSize(after))
	return nil
}

func argOr(args []string, i int) string {
	if len(args) > i {
		return args[i]
	}
	return ""
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// humanSize is n bytes for people (1024-based).
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
