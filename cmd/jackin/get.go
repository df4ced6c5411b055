package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/agentstate"
	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/supervisor"
	"github.com/jackin-dev/jackin/telemetry"
)

// instanceStatus is one row of `jackin get`.
type instanceStatus struct {
	Instance string `json:"instance"`
	// Engine is where the instance runs: "local" (the local Docker
	// engine), a declared engine's name, or another backend's name.
	Engine      string    `json:"engine"`
	Desired     string    `json:"desired"`  // running|stopped|absent
	Observed    string    `json:"observed"` // running|stopped|missing|orphan
	InSync      bool      `json:"inSync"`
	Action      string    `json:"action"`
	Reasons     []string  `json:"reasons"`
	SpecHash    string    `json:"specHash,omitempty"`
	ContainerID string    `json:"containerID,omitempty"`
	Status      string    `json:"status,omitempty"`
	Image       string    `json:"image,omitempty"`
	Created     time.Time `json:"created,omitzero"`
	// Crash loop, as the running watch reports it.
	Restarts    int       `json:"restarts,omitempty"`
	NextAttempt time.Time `json:"nextAttempt,omitzero"`
	// Agent is what the agent is doing, when it has a container.
	Agent *agentInfo `json:"agent,omitempty"`
	// Resources is what a running instance uses (resources.go).
	Resources *telemetry.Resources `json:"resources,omitempty"`
	// Usage is the instance's token totals and estimated cost, from the
	// runtime's own usage records (usage.go); absent when none are recorded.
	Usage *telemetry.Usage `json:"usage,omitempty"`
	// Links are what the agent said it works on, with their GitHub state
	// (links.go).
	Links []linkItem `json:"links,omitempty"`
	// Idle is idle cleanup's view of it (idle.go): its policy, idle time,
	// whether it is idle-stopped and the last idle action.
	Idle *idleInfo `json:"idle,omitempty"`
}

// agentInfo is the agent's live state in `jackin get -o json`.
type agentInfo struct {
	Runtime string    `json:"runtime"`
	State   string    `json:"state"`
	Since   time.Time `json:"since,omitzero"`
	// Detail is e.g. the tool a pending permission is for: a tool name,
	// never a tool's input.
	Detail     string   `json:"detail,omitempty"`
	ExitStatus *int     `json:"exitStatus,omitempty"`
	Warnings   []string `json:"warnings,omitempty"`
}

type instanceList struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Fleet      string           `json:"fleet"`
	Items      []instanceStatus `json:"items"`
}

func newGetCommand(a *app) *cobra.Command {
	var mf manifestFlags
	var out outputFlag
	var rf resourceFlags
	var refreshLinks bool
	cmd := &cobra.Command{
		Use:   "get -f PATH... [INSTANCE...]",
		Short: "Show each instance's desired and observed state",
		Long: `get lists the fleet's instances: desired state (from the manifest), observed
state (running, stopped, oom-killed when the kernel's OOM killer ended the
agent (kept as an event in history), missing, crashloop while jackin watch is delaying the
restarts of an instance that keeps exiting, idle-stopped for one idle cleanup
stopped (in sync: a task or jackin attach starts it), or orphan for an
instance of this fleet that is no longer in the manifest), whether it is in sync, the spec
hash, age and image. It changes nothing on the engine.

LINKS (-o wide; links in -o json) are what each agent said it works on
(the tag protocol: <jackin:repo>, <jackin:issue>, <jackin:pr>), with the
GitHub state of issues and pull requests when the fleet declares github:
those due on their schedule are asked again (--refresh-links: all, now).

IDLE (-o wide; idle in -o json) is idle cleanup's view: how long the agent
has been idle or done against its idle.after, when an idle-stopped instance
was stopped, or the last idle action (an exec's exit status).

Naming instances shows only those; a name neither in the manifest nor on
the engine is an error (exit 2).

` + resourceHelp,
		Example: `  jackin get -f fleet.cue
  jackin get -f fleet.cue web -o yaml
  jackin get -f fleet.cue -o wide`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			sess, err := a.openSession(ctx, mf.files, false)
			if err != nil {
				return err
			}
			defer a.closeSession(sess)
			fleet := sess.fleet
			probe := a.startResourceProbe(ctx, sess, rf, out.format == "wide")
			defer probe.stop()
			res, err := a.plan(ctx, sess, reconciler.PlanOptions{Prune: true, AllowEmpty: true}, false)
			if err != nil {
				return err
			}
			if err := narrowPlan(res, args); err != nil {
				return err
			}
			items := statusRows(res)
			a.addAgentStates(fleet.Name, res, items)
			if sess.st != nil {
				crashes, err := sess.st.CrashStates(ctx, fleet.Name)
				if err != nil {
					return exitWith(exitInvalid, err)
				}
				markCrashLoops(items, crashes)
			}
			if err := addIdle(ctx, sess.st, res, items, time.Now()); err != nil {
				return exitWith(exitInvalid, err)
			}
			a.finishResourceProbe(ctx, probe, res.Desired, res.Observed, items)
			if !rf.off {
				if err := a.addUsage(ctx, sess, items); err != nil {
					return exitWith(exitInvalid, err)
				}
			}
			if err := a.addLinks(ctx, sess, items, refreshLinks); err != nil {
				return exitWith(exitInvalid, err)
			}
			if out.format != "table" && out.format != "wide" {
				return writeStructured(a.stdout, out.format, instanceList{APIVersion: "jackin.dev/v1alpha1", Kind: "InstanceList", Fleet: fleet.Name, Items: items})
			}
			if len(items) == 0 {
				fmt.Fprintf(a.stdout, "Fleet %q has no instances.\n", fleet.Name)
				return nil
			}
			t := &table{}
			wide := out.format == "wide"
			t.add(withResources([]string{"INSTANCE", "ENGINE", "DESIRED", "OBSERVED", "STATE"}, append(resourceHeaders(rf, wide), costHeader(rf)...), "SYNC", "SPEC", "AGE", "IMAGE")...)
			now := time.Now()
			for _, it := range items {
				sync := "in-sync"
				if !it.InSync {
					sync = "drift: " + it.Action
				}
				age := "-"
				if !it.Created.IsZero() {
					age = humanAge(now.Sub(it.Created))
				}
				observed := it.Observed
				if it.Observed == observedCrashLoop {
					observed = fmt.Sprintf("crashloop (%d restarts, next %s)", it.Restarts, it.NextAttempt.Local().Format("15:04:05"))
				}
				state := "-"
				if ag := it.Agent; ag != nil {
					state = ag.State
					if ag.Detail != "" {
						state += " (" + ag.Detail + ")"
					}
					if ag.ExitStatus != nil {
						state += fmt.Sprintf(" (%d)", *ag.ExitStatus)
					}
				}
				t.add(withResources([]string{it.Instance, it.Engine, it.Desired, observed, state}, append(resourceCells(it.Resources, rf, wide), costCells(rf, it.Usage)...), sync, shortHash(it.SpecHash), age, orDash(it.Image))...)
			}
			if wide {
				addLinkColumn(t, items)
				addIdleColumn(t, items, now)
			}
			t.write(a.stdout)
			return nil
		},
	}
	mf.register(cmd)
	out.register(cmd, "table", "table", "wide", "json", "yaml")
	rf.register(cmd)
	cmd.Flags().BoolVar(&refreshLinks, "refresh-links", false, "ask GitHub for the state of every issue and pull request link now, not only those due")
	return cmd
}

// statusRows joins the plan with the observed agent containers, one row
// per action (narrowPlan keeps the named instances' only).
func statusRows(res *pipeline.Result) []instanceStatus {
	agents := map[string]drivers.ObservedResource{}
	for _, obs := range res.Observed {
		for _, c := range obs.Containers {
			if c.Labels[drivers.LabelComponent] == drivers.ComponentAgent {
				agents[c.Instance()] = c
			}
		}
	}
	var items []instanceStatus
	for _, act := range res.Plan.Actions {
		it := instanceStatus{Instance: act.Instance, Engine: engineColumn(act), Action: string(act.Type), Reasons: act.Reasons, InSync: act.Type == reconciler.ActionNoop}
		if it.Reasons == nil {
			it.Reasons = []string{}
		}
		switch {
		case act.Desired == nil:
			it.Desired = "absent"
		case act.Desired.Running:
			it.Desired = "running"
		default:
			it.Desired = "stopped"
		}
		c, ok := agents[act.Instance]
		switch {
		case act.Type == reconciler.ActionUnreachable:
			it.Observed = "unreachable"
		case act.Type == reconciler.ActionDelete:
			it.Observed = "orphan"
		case !ok:
			it.Observed = "missing"
		case c.State == drivers.StateRunning || c.State == drivers.StateRestarting || c.State == drivers.StatePaused:
			it.Observed = "running"
		case c.OOMKilled:
			it.Observed = observedOOMKilled
		default:
			it.Observed = "stopped"
		}
		if ok {
			it.SpecHash, it.ContainerID, it.Status, it.Image, it.Created = c.Labels[drivers.LabelSpecHash], c.ID, c.Status, c.Image, c.Created
		} else if act.Desired != nil {
			it.SpecHash, it.Image = act.Desired.Hash, act.Desired.Image.Ref
		}
		items = append(items, it)
	}
	return items
}

// engineColumn is the ENGINE of an instance's row: a declared engine's
// name, "local" for the local Docker engine, or the backend's name.
func engineColumn(act reconciler.Action) string {
	switch {
	case act.Engine != "":
		return act.Engine
	case act.Backend == "" || act.Backend == drivers.DefaultBackend:
		return "local"
	}
	return act.Backend
}

// addAgentStates fills each row's agent state: what the supervisor
// published in the instance's agent directory (one small file read per
// instance, no engine call), exited for a container that is not running.
func (a *app) addAgentStates(fleet string, res *pipeline.Result, items []instanceStatus) {
	runtimeOf := map[string]string{}
	if res.Desired != nil {
		for _, d := range res.Desired.Instances {
			runtimeOf[d.Name] = d.Instance.Runtime().Name
		}
	}
	for i := range items {
		it := &items[i]
		if it.ContainerID == "" || strings.HasPrefix(it.Status, "Created") {
			continue // no agent has run in it yet
		}
		info := &agentInfo{Runtime: runtimeOf[it.Instance], State: string(agentstate.StateUnknown)}
		if it.Observed != "running" {
			info.State = string(agentstate.StateExited)
			if m := exitedStatus.FindStringSubmatch(it.Status); m != nil {
				code, _ := strconv.Atoi(m[1])
				info.ExitStatus = &code
			}
		} else if st, err := supervisor.ReadPublished(supervisor.HostDir(a.global.stateDir, fleet, it.Instance)); err == nil {
			info.State, info.Since, info.Detail, info.Warnings = st.State, st.Since, st.Detail, st.Warnings
			if st.Runtime != "" {
				info.Runtime = st.Runtime
			}
		}
		it.Agent = info
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// observedOOMKilled is the observed state of an instance whose agent
// container the kernel's OOM killer ended (the engine's State.OOMKilled).
const observedOOMKilled = "oom-killed"

// observedCrashLoop is the observed state of an instance a running watch is
// restarting with backoff.
const observedCrashLoop = "crashloop"

// markCrashLoops shows the crash loops a running watch has recorded. A
// record left by a watch that has exited says nothing about now: skipped.
func markCrashLoops(items []instanceStatus, crashes map[string]store.CrashState) {
	for i := range items {
		c, ok := crashes[items[i].Instance]
		if !ok || !c.Watching || items[i].Desired != "running" {
			continue
		}
		items[i].Observed = observedCrashLoop
		items[i].Restarts, items[i].NextAttempt = c.Restarts, c.NextAttempt
	}
}
