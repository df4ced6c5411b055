package reconciler_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/contract"
	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/fake"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenCase sets up a backend and a manifest; the test plans and renders.
type goldenCase struct {
	name  string
	color bool
	// setup returns the backend, the manifest, the last-applied specs and the options.
	setup func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions)
	// deletePlan, when set, renders DeletePlan(names) instead of BuildPlan.
	deletePlan []string
}

var prune = reconciler.PlanOptions{Prune: true}

// goldenHome is the host home directory the plans' widenings assume (the
// rich instance mounts paths under it; only ~/.ssh and the like are
// sensitive).
const goldenHome = "/home/dev"

// applied is a backend converged to f.
func applied(t *testing.T, f *schema.Fleet) (*fake.Driver, reconciler.LastApplied) {
	drv := newDriver()
	return drv, apply(t, drv, f, nil)
}

// changed applies base, then plans the manifest changed by fn.
func changed(base *schema.Fleet, instance string, fn func(*schema.Instance)) func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
	return func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
		drv, last := applied(t, base)
		return drv, with(base, instance, fn), last, prune
	}
}

// drifted applies f, then changes the backend with fn.
func drifted(f *schema.Fleet, fn func(t *testing.T, drv *fake.Driver)) func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
	return func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
		drv, last := applied(t, f)
		fn(t, drv)
		return drv, f, last, prune
	}
}

// richInstance exercises every spec field.
func richInstance(in *schema.Instance) {
	in.Command = []string{"/agent", "run"}
	in.Env = map[string]string{"KEEP": "same", "CHANGED": "old-secret-value", "REMOVED": "removed-secret-value"}
	in.Labels = map[string]string{"team": "core", "owner": "ann"}
	in.Mounts = []schema.Mount{
		{Src: "/home/dev/project", Dst: "/work", Mode: schema.MountRW},
		{Src: "/home/dev/docs", Dst: "/docs", Mode: schema.MountRO},
		{Src: "/home/dev/old", Dst: "/old", Mode: schema.MountRO},
		{Dst: "/tmp", Mode: schema.MountTmpfs, Size: "64Mi", SizeBytes: 64 << 20},
	}
	in.Resources = schema.Resources{Memory: "64Mi", MemoryBytes: 64 << 20, CPUs: 0.5, Pids: 100}
	in.Network.Ports = []schema.Port{{Container: 80, Host: 8080, Address: "127.0.0.1", Protocol: "tcp"}}
}

func goldenCases() []goldenCase {
	two := fleetOf("api", "web")
	web := fleetOf("web")
	rich := with(fleetOf(), "web", richInstance)
	allow := with(fleetOf(), "web", allowlisted)
	private := with(allow, "web", func(in *schema.Instance) {
		in.Docker = schema.DockerPrivate
		in.DockerDaemon = &schema.DockerDaemon{Image: "docker:dind", Privilege: schema.DaemonPrivileged}
	})
	return []goldenCase{
		{name: "converged", setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			drv, last := applied(t, two)
			return drv, two, last, prune
		}},
		{name: "create_new_instance", setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			f := with(two, "worker", func(in *schema.Instance) { in.State = schema.StateStopped })
			return newDriver(), f, nil, prune
		}},
		{name: "create_container_missing", setup: drifted(two, func(t *testing.T, drv *fake.Driver) {
			mustDo(t, drv.RemoveContainer(name("web")))
		})},
		{name: "create_network_and_container_missing", setup: drifted(web, func(t *testing.T, drv *fake.Driver) {
			// A companion container of the instance survived; the agent and network did not.
			mustDo(t, drv.RemoveContainer(name("web")))
			mustDo(t, drv.RemoveNetwork(name("web")))
			drv.Seed(drivers.ObservedResource{Kind: drivers.KindContainer, Name: name("web") + "-dind", State: drivers.StateRunning, Labels: map[string]string{
				drivers.LabelManagedBy: drivers.ManagedByValue, drivers.LabelFleet: testFleet, drivers.LabelInstance: "web", drivers.LabelComponent: "dind",
			}})
		})},
		{name: "recreate_duplicate_containers", setup: drifted(web, func(t *testing.T, drv *fake.Driver) {
			c, _ := drv.Object(drivers.KindContainer, name("web"))
			dup := c.ObservedResource
			dup.ID, dup.Name = "", name("web")+"-copy"
			drv.Seed(dup)
		})},
		{name: "recreate_duplicate_networks", setup: drifted(web, func(t *testing.T, drv *fake.Driver) {
			n, _ := drv.Object(drivers.KindNetwork, name("web"))
			dup := n.ObservedResource
			dup.ID = ""
			drv.Seed(dup)
		})},
		{name: "recreate_container_renamed", setup: drifted(web, func(t *testing.T, drv *fake.Driver) {
			c, _ := drv.Object(drivers.KindContainer, name("web"))
			mustDo(t, drv.RemoveContainer(name("web")))
			moved := c.ObservedResource
			moved.Name = "/" + name("web") + "-renamed"
			drv.Seed(moved)
		})},
		{name: "recreate_image_changed", setup: changed(web, "web", func(in *schema.Instance) { in.Role.Image = imageV2 })},
		{name: "recreate_agent_changed", setup: changed(web, "web", func(in *schema.Instance) { in.Agent = schema.AgentClaude })},
		{name: "recreate_command_changed", setup: changed(rich, "web", func(in *schema.Instance) { in.Command = []string{"/agent", "run", "--token=do-not-print"} })},
		{name: "recreate_env_changed", setup: changed(rich, "web", func(in *schema.Instance) {
			in.Env = map[string]string{"KEEP": "same", "CHANGED": "new-secret-value", "ADDED": "added-secret-value", "ALSO_ADDED": "x"}
		})},
		{name: "recreate_labels_changed", setup: changed(rich, "web", func(in *schema.Instance) {
			in.Labels = map[string]string{"team": "platform", "cost-center": "42"}
		})},
		{name: "recreate_mounts_changed", setup: changed(rich, "web", func(in *schema.Instance) {
			in.Mounts = []schema.Mount{
				{Src: "/home/dev/project", Dst: "/work", Mode: schema.MountRO},
				{Src: "/home/dev/docs-v2", Dst: "/docs", Mode: schema.MountRO},
				{Dst: "/tmp", Mode: schema.MountTmpfs, Size: "128Mi", SizeBytes: 128 << 20},
				{Src: "/home/dev/cache", Dst: "/cache", Mode: schema.MountRW},
				{Dst: "/scratch", Mode: schema.MountTmpfs},
			}
		})},
		{name: "recreate_resources_changed", setup: changed(rich, "web", func(in *schema.Instance) {
			in.Resources = schema.Resources{Memory: "1.5Gi", MemoryBytes: 1536 << 20, MemoryReservation: "32Mi", MemoryReservationBytes: 32 << 20, CPUs: 2}
		})},
		{name: "recreate_ports_changed", setup: changed(rich, "web", func(in *schema.Instance) {
			in.Network.Ports = []schema.Port{{Container: 80, Host: 9090, Address: "127.0.0.1", Protocol: "tcp"}, {Container: 53, Address: "127.0.0.1", Protocol: "udp"}}
		})},
		{name: "recreate_egress_changed", setup: changed(web, "web", func(in *schema.Instance) { in.Network.Egress = "none" })},
		{name: "recreate_profile_locked", setup: changed(web, "web", func(in *schema.Instance) {
			in.Profile = schema.ProfileLocked
			in.Sandbox = schema.Sandbox{User: "1000:1000", CapDrop: []string{"ALL"}, NoNewPrivileges: true, ReadOnlyRoot: true, Tmpfs: schema.ReadOnlyTmpfs}
		})},
		{name: "recreate_docker_changed", setup: changed(web, "web", func(in *schema.Instance) { in.Docker = "private" })},
		// Widening access: each kind the plan marks. (Credentials are not in
		// the spec yet: contract.TestWideningCredentials covers them.)
		{name: "widen_new_rw_mount", setup: changed(rich, "web", func(in *schema.Instance) {
			in.Mounts = append(append([]schema.Mount(nil), in.Mounts...), schema.Mount{Src: "/srv/cache", Dst: "/cache", Mode: schema.MountRW})
		})},
		{name: "widen_mount_made_writable", setup: changed(rich, "web", func(in *schema.Instance) {
			in.Mounts = append([]schema.Mount(nil), in.Mounts...)
			in.Mounts[1].Mode = schema.MountRW
		})},
		{name: "widen_sensitive_mount", setup: changed(rich, "web", func(in *schema.Instance) {
			in.Mounts = append(append([]schema.Mount(nil), in.Mounts...), schema.Mount{Src: goldenHome + "/.ssh", Dst: "/root/.ssh", Mode: schema.MountRO, AllowSensitive: true})
		})},
		{name: "widen_new_port", setup: changed(rich, "web", func(in *schema.Instance) {
			in.Network.Ports = append(append([]schema.Port(nil), in.Network.Ports...), schema.Port{Container: 9229, Host: 9229, Address: "127.0.0.1", Protocol: "tcp"})
		})},
		{name: "widen_port_all_interfaces", setup: changed(rich, "web", func(in *schema.Instance) {
			in.Network.Ports = []schema.Port{{Container: 80, Host: 8080, Address: "0.0.0.0", Protocol: "tcp"}}
		})},
		{name: "widen_egress", setup: changed(with(web, "web", func(in *schema.Instance) { in.Network.Egress = "none" }), "web", func(in *schema.Instance) {
			in.Network.Egress = schema.EgressOpen
		})},
		// nofile set where it was the engine's default narrows (a new
		// limit); raised from a set limit, it widens.
		{name: "widen_nofile_raised", setup: changed(with(rich, "web", func(in *schema.Instance) { in.Resources.Nofile = 1024 }), "web", func(in *schema.Instance) {
			in.Resources.Nofile = 65536
		})},
		// From locked back to standard: every hardening setting loosens.
		{name: "widen_profile_loosened", setup: changed(with(web, "web", func(in *schema.Instance) {
			in.Profile = schema.ProfileLocked
			in.Sandbox = schema.Sandbox{User: "1000:1000", CapDrop: []string{"ALL"}, NoNewPrivileges: true, ReadOnlyRoot: true, Tmpfs: schema.ReadOnlyTmpfs}
		}), "web", func(in *schema.Instance) {
			in.Profile, in.Sandbox = schema.ProfileStandard, schema.Sandbox{}
		})},
		{name: "widen_new_instance_with_mounts", setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			drv, last := applied(t, web)
			return drv, with(web, "agent", richInstance), last, prune
		}},
		{name: "widen_new_credential", setup: changed(web, "web", func(in *schema.Instance) {
			reconciler.SecretsBase = func() string { return "/dev/shm/jackin-1000" }
			in.Credentials = map[string]schema.Credential{
				"GH_TOKEN":  {Name: "GH_TOKEN", From: schema.CredentialSource{Kind: schema.SourceCommand, Command: []string{"gh", "auth", "token"}}, Deliver: schema.CredentialDelivery{Kind: schema.DeliverFile}},
				"NPM_TOKEN": {Name: "NPM_TOKEN", From: schema.CredentialSource{Kind: schema.SourceEnv, Env: "NPM_TOKEN"}, Deliver: schema.CredentialDelivery{Kind: schema.DeliverEnv, Env: "NPM_TOKEN"}},
			}
		})},
		{name: "narrow_only", setup: changed(rich, "web", func(in *schema.Instance) {
			// Read-only instead of read-write, a mount and a port removed,
			// limits lowered: nothing widens.
			in.Mounts = []schema.Mount{{Src: "/home/dev/project", Dst: "/work", Mode: schema.MountRO}, {Src: "/home/dev/docs", Dst: "/docs", Mode: schema.MountRO}}
			in.Network.Ports = nil
			in.Resources = schema.Resources{Memory: "32Mi", MemoryBytes: 32 << 20, CPUs: 0.25, Pids: 50}
		})},
		{name: "recreate_backend_changed", setup: changed(web, "web", func(in *schema.Instance) { in.Backend = "orbstack" })},
		{name: "recreate_many_fields_changed", setup: changed(rich, "web", func(in *schema.Instance) {
			in.Role.Image = imageV2
			in.Env = map[string]string{"KEEP": "same"}
			in.Resources.MemoryBytes, in.Resources.Memory = 128<<20, "128Mi"
		})},
		{name: "recreate_last_applied_unknown", setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			drv, _ := applied(t, web)
			return drv, with(web, "web", func(in *schema.Instance) { in.Env = map[string]string{"A": "1"} }), nil, prune
		}},
		{name: "recreate_last_applied_stale", setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			// The store remembers a spec that is not what the container runs.
			drv, last := applied(t, web)
			stale := last["web"]
			stale.Agent = schema.AgentCodex
			last["web"] = stale
			return drv, with(web, "web", func(in *schema.Instance) { in.Env = map[string]string{"A": "1"} }), last, prune
		}},
		{name: "recreate_spec_hash_label_missing", setup: drifted(web, func(t *testing.T, drv *fake.Driver) {
			mustDo(t, drv.SetLabel(drivers.KindContainer, name("web"), drivers.LabelSpecHash, ""))
		})},
		{name: "recreate_format_version_changed", setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			drv, last := applied(t, web)
			old := last["web"]
			old.FormatVersion = reconciler.SpecFormatVersion - 1
			h, err := reconciler.HashSpec(old)
			mustDo(t, err)
			mustDo(t, drv.SetLabel(drivers.KindContainer, name("web"), drivers.LabelSpecHash, h))
			last["web"] = old
			return drv, web, last, prune
		}},
		{name: "recreate_image_drift", setup: drifted(web, func(t *testing.T, drv *fake.Driver) {
			drv.SetImageID(imageV1, "sha256:3333333333333333333333333333333333333333333333333333333333333333")
		})},
		{name: "recreate_network_missing", setup: drifted(web, func(t *testing.T, drv *fake.Driver) {
			mustDo(t, drv.RemoveNetwork(name("web")))
		})},
		{name: "recreate_network_detached", setup: drifted(web, func(t *testing.T, drv *fake.Driver) {
			mustDo(t, drv.Disconnect(name("web"), name("web")))
		})},
		{name: "recreate_container_dead", setup: drifted(web, func(t *testing.T, drv *fake.Driver) {
			mustDo(t, drv.SetState(name("web"), drivers.StateDead, "Dead"))
		})},
		{name: "recreate_container_removing", setup: drifted(web, func(t *testing.T, drv *fake.Driver) {
			mustDo(t, drv.SetState(name("web"), drivers.StateRemoving, "Removal In Progress"))
		})},
		{name: "start_exited", setup: drifted(web, func(t *testing.T, drv *fake.Driver) { mustDo(t, drv.Kill(name("web"))) })},
		{name: "start_created", setup: drifted(web, func(t *testing.T, drv *fake.Driver) {
			mustDo(t, drv.SetState(name("web"), drivers.StateCreated, "Created"))
		})},
		{name: "start_paused", setup: drifted(web, func(t *testing.T, drv *fake.Driver) {
			mustDo(t, drv.SetState(name("web"), drivers.StatePaused, "Up 2 minutes (Paused)"))
		})},
		{name: "stop_running", setup: changed(two, "web", func(in *schema.Instance) { in.State = schema.StateStopped })},
		{name: "stop_paused", setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			drv, last := applied(t, web)
			mustDo(t, drv.SetState(name("web"), drivers.StatePaused, "Up 2 minutes (Paused)"))
			return drv, with(web, "web", func(in *schema.Instance) { in.State = schema.StateStopped }), last, prune
		}},
		{name: "stopped_converged", setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			f := with(web, "web", func(in *schema.Instance) { in.State = schema.StateStopped })
			drv, last := applied(t, f)
			return drv, f, last, prune
		}},
		{name: "delete_orphan", setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			drv, last := applied(t, fleetOf("keep", "gone"))
			return drv, fleetOf("keep"), last, prune
		}},
		{name: "delete_orphan_kept", setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			drv, last := applied(t, fleetOf("keep", "gone"))
			return drv, fleetOf("keep"), last, reconciler.PlanOptions{Prune: false}
		}},
		{name: "delete_all_allow_empty", setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			drv, last := applied(t, two)
			return drv, fleetOf(), last, reconciler.PlanOptions{Prune: true, AllowEmpty: true}
		}},
		// A private Docker daemon: a sidecar and a data volume beside the agent.
		{name: "docker_private_create", setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			return newDriver(), private, nil, prune
		}},
		{name: "docker_private_sidecar_missing", setup: drifted(private, func(t *testing.T, drv *fake.Driver) {
			mustDo(t, drv.RemoveContainer(name("web")+"-dind"))
		})},
		{name: "docker_private_daemon_exited", setup: drifted(private, func(t *testing.T, drv *fake.Driver) { mustDo(t, drv.Kill(name("web")+"-dind")) })},
		{name: "docker_private_privilege_changed", setup: changed(private, "web", func(in *schema.Instance) {
			in.DockerDaemon = &schema.DockerDaemon{Image: "docker:dind", Privilege: schema.DaemonCapabilities}
		})},
		{name: "docker_private_removed", setup: changed(private, "web", func(in *schema.Instance) {
			in.Docker, in.DockerDaemon = schema.DockerNone, nil
		})},
		// Egress: an instance of several networks and containers.
		{name: "egress_create_allowlist", setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			return newDriver(), allow, nil, prune
		}},
		{name: "egress_allow_changed_converged", setup: changed(allow, "web", func(in *schema.Instance) { in.Network.Allow = []string{"@github"} })},
		{name: "egress_recreate_sidecar_missing", setup: drifted(allow, func(t *testing.T, drv *fake.Driver) {
			mustDo(t, drv.RemoveContainer(name("web")+"-egress"))
		})},
		{name: "egress_recreate_sidecar_dead", setup: drifted(allow, func(t *testing.T, drv *fake.Driver) {
			mustDo(t, drv.SetState(name("web")+"-egress", drivers.StateDead, "Dead"))
		})},
		{name: "egress_recreate_sidecar_image_changed", setup: drifted(allow, func(t *testing.T, drv *fake.Driver) {
			// A new jackin build: the sidecar was made from the old one's image.
			mustDo(t, drv.SetLabel(drivers.KindContainer, name("web")+"-egress", drivers.LabelImage, "jackin-sidecar:00000000000000aa"))
		})},
		{name: "egress_start_sidecar_exited", setup: drifted(allow, func(t *testing.T, drv *fake.Driver) { mustDo(t, drv.Kill(name("web")+"-egress")) })},
		{name: "egress_recreate_out_network_missing", setup: drifted(allow, func(t *testing.T, drv *fake.Driver) {
			mustDo(t, drv.RemoveNetwork(name("web")+"-out"))
		})},
		{name: "egress_recreate_internal_network_missing", setup: drifted(allow, func(t *testing.T, drv *fake.Driver) {
			mustDo(t, drv.RemoveNetwork(name("web")))
		})},
		{name: "egress_allowlist_to_open", setup: changed(allow, "web", func(in *schema.Instance) { in.Network = schema.Network{Egress: schema.EgressOpen} })},
		{name: "egress_open_to_allowlist", setup: changed(web, "web", allowlisted)},
		{name: "egress_stop_allowlist", setup: changed(allow, "web", func(in *schema.Instance) { in.State = schema.StateStopped })},
		{name: "egress_delete_allowlist", setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			drv, last := applied(t, with(allow, "api", func(*schema.Instance) {}))
			return drv, fleetOf("api"), last, prune
		}},
		{name: "mixed", setup: mixedSetup},
		{name: "mixed_color", color: true, setup: mixedSetup},
		// Idle cleanup: an instance it stopped (agent and sidecar) is
		// no change; another one stopped is drift as ever; a manifest
		// change still recreates an idle-stopped instance.
		{name: "idle_stopped_left_stopped", setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			f := with(allow, "api", func(*schema.Instance) {})
			drv, last := applied(t, f)
			mustDo(t, drv.StopContainer(name("web")))
			mustDo(t, drv.StopContainer(name("web")+"-egress"))
			return drv, f, last, reconciler.PlanOptions{Prune: true, IdleStopped: map[string]bool{"web": true}}
		}},
		{name: "idle_stopped_among_drift", setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			drv, last := applied(t, two)
			mustDo(t, drv.StopContainer(name("web")))
			mustDo(t, drv.Kill(name("api")))
			return drv, two, last, reconciler.PlanOptions{Prune: true, IdleStopped: map[string]bool{"web": true}}
		}},
		{name: "idle_stopped_recreated_on_change", setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			drv, last := applied(t, web)
			mustDo(t, drv.StopContainer(name("web")))
			return drv, with(web, "web", func(in *schema.Instance) { in.Role.Image = imageV2 }), last, reconciler.PlanOptions{Prune: true, IdleStopped: map[string]bool{"web": true}}
		}},
		{name: "delete_plan_named", deletePlan: []string{"web"}, setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			drv, last := applied(t, two)
			return drv, two, last, prune
		}},
		{name: "delete_plan_fleet", deletePlan: []string{}, setup: func(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
			drv, last := applied(t, two)
			return drv, two, last, prune
		}},
	}
}

// mixedSetup yields one action of every kind, plus a noop and a kept orphan.
func mixedSetup(t *testing.T) (*fake.Driver, *schema.Fleet, reconciler.LastApplied, reconciler.PlanOptions) {
	base := fleetOf("same", "changed", "killed", "halted", "gone")
	drv, last := applied(t, base)
	mustDo(t, drv.Kill(name("killed")))
	f := fleetOf("same", "changed", "killed", "halted", "fresh")
	f = with(f, "changed", func(in *schema.Instance) { in.Role.Image = imageV2 })
	f = with(f, "halted", func(in *schema.Instance) { in.State = schema.StateStopped })
	return drv, f, last, prune
}

func TestGoldenPlans(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			drv, f, last, opts := c.setup(t)
			var p *reconciler.Plan
			if c.deletePlan != nil {
				obs, err := drv.Observe(t.Context(), f.Name, nil)
				mustDo(t, err)
				p, err = reconciler.DeletePlan(f.Name, obs, c.deletePlan)
				mustDo(t, err)
			} else {
				p = plan(t, drv, f, last, opts)
				// As diff and apply do: mark what widens access.
				contract.MarkWidenings(p, last, goldenHome)
			}
			var text bytes.Buffer
			reconciler.WritePlanText(&text, p, c.color)
			js, err := json.MarshalIndent(reconciler.PlanDocument(p), "", "  ")
			mustDo(t, err)
			js = append(js, '\n')
			checkGolden(t, c.name+".txt.golden", text.Bytes())
			seen[c.name+".txt.golden"] = true
			if !c.color {
				checkGolden(t, c.name+".json.golden", js)
				seen[c.name+".json.golden"] = true
			}
			// Secret values never reach any rendering.
			for _, out := range [][]byte{text.Bytes(), js} {
				for _, secret := range []string{"secret-value", "do-not-print"} {
					if bytes.Contains(out, []byte(secret)) {
						t.Errorf("rendering contains a secret value %q:\n%s", secret, out)
					}
				}
			}
		})
	}
	// No stale golden files.
	if !t.Failed() {
		files, _ := filepath.Glob(filepath.Join("testdata", "*.golden"))
		for _, f := range files {
			base := filepath.Base(f)
			if !seen[base] {
				if *update {
					_ = os.Remove(f)
				} else {
					t.Errorf("stale golden file %s (run with -update)", f)
				}
			}
		}
	}
}

func checkGolden(t *testing.T, file string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		mustDo(t, os.MkdirAll("testdata", 0o755))
		mustDo(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./reconciler -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestGoldenCoverage checks the golden plans contain every action type and
// every reason the planner can give.
func TestGoldenCoverage(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json.golden"))
	mustDo(t, err)
	actions := map[string]bool{}
	var reasons []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		mustDo(t, err)
		var doc reconciler.PlanDoc
		mustDo(t, json.Unmarshal(b, &doc))
		for _, a := range doc.Actions {
			actions[a.Action] = true
			reasons = append(reasons, a.Reasons...)
		}
	}
	for _, a := range []reconciler.ActionType{reconciler.ActionCreate, reconciler.ActionRecreate, reconciler.ActionStart, reconciler.ActionStop, reconciler.ActionDelete, reconciler.ActionNoop} {
		if !actions[string(a)] {
			t.Errorf("no golden plan has a %s action", a)
		}
	}
	all := strings.Join(reasons, "\n")
	for _, want := range []string{
		reconciler.ReasonNewInstance, reconciler.ReasonNotInManifest, reconciler.ReasonStateStopped, reconciler.ReasonDeleteRequest, reconciler.ReasonCreateStopped,
		"container jk-demo-web is missing", "network jk-demo-web is missing", "containers found for one instance",
		"networks named jk-demo-web found for one instance", "should be named", "spec format version changed",
		"backend changed", "image changed", "agent changed", "command changed", "env changed", "labels changed",
		"mounts changed", "resources changed", "ports changed", "network egress changed", "docker access changed", "sandbox changed",
		"last applied spec unknown", "now points to", "container is not attached to network", "container is dead",
		"container is being removed", "container is exited", "container is created", "container is paused",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no golden plan gives the reason %q", want)
		}
	}
	sort.Strings(reasons)
}

// TestGoldenWideningCoverage checks the golden plans mark every kind of
// widening the spec can express, and that narrowing marks nothing.
func TestGoldenWideningCoverage(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json.golden"))
	mustDo(t, err)
	fields := map[string]bool{}
	var messages []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		mustDo(t, err)
		var doc reconciler.PlanDoc
		mustDo(t, json.Unmarshal(b, &doc))
		for _, a := range doc.Actions {
			if len(a.Widens) > 0 && a.Action != string(reconciler.ActionCreate) && a.Action != string(reconciler.ActionRecreate) {
				t.Errorf("%s: a %s action widens access: %+v", f, a.Action, a.Widens)
			}
			for _, w := range a.Widens {
				fields[w.Field] = true
				messages = append(messages, w.Message)
			}
			if strings.HasPrefix(filepath.Base(f), "narrow_") && len(a.Widens) > 0 {
				t.Errorf("%s: narrowing marked as widening: %+v", f, a.Widens)
			}
		}
	}
	for _, want := range []string{"mounts", "network.egress", "network.ports", "docker", "resources.memory", "resources.cpus", "resources.pids", "resources.nofile",
		"security.user", "security.capabilities", "security.noNewPrivileges", "security.readOnlyRoot"} {
		if !fields[want] {
			t.Errorf("no golden plan marks a widening of %s", want)
		}
	}
	all := strings.Join(messages, "\n")
	for _, want := range []string{"is newly mounted", "becomes writable", "exposes ~/.ssh", "is newly published", "is published more widely", `egress widens from "none" to "open"`, "Docker access changes"} {
		if !strings.Contains(all, want) {
			t.Errorf("no golden plan marks a widening saying %q", want)
		}
	}
}
