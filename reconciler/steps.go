package reconciler

import (
	"sort"

	"github.com/jackin-dev/jackin/drivers"
)

// StepKind is what one step of an action does.
type StepKind string

// The kinds of step an action is made of.
const (
	StepPrepareCheckouts StepKind = "prepare-checkouts"  // make the instance's worktrees and clones
	StepPrepareDockerTLS StepKind = "prepare-docker-tls" // write the private daemon's certificates
	StepPrepareAgent     StepKind = "prepare-agent"      // install the supervisor's binary, make the agent directory
	StepCreate           StepKind = "create"             // create Resource
	StepSeed             StepKind = "seed"               // copy a volume's seed directory through the container Through
	StepStart            StepKind = "start"              // start a container, its bind sources checked first
	StepWaitReady        StepKind = "wait-ready"         // run Probe until the container answers
	StepWatchStart       StepKind = "watch-start"        // watch a started container stay up for Probe's time
	StepStop             StepKind = "stop"               // stop a container
	StepRemove           StepKind = "remove"             // remove an object
	StepRemoveFiles      StepKind = "remove-files"       // remove the instance's host files (certificates, credentials, policy)
	StepReleaseCheckouts StepKind = "release-checkouts"  // release the instance's checkouts, keeping unsaved work
)

// Step is one step of an action, as data: the executor runs steps in
// order and decides nothing itself. An object created by an earlier step of
// the same action is named by Name with an empty ID.
type Step struct {
	Kind   StepKind
	Object drivers.Kind // the object's kind, for steps on an engine object
	Name   string       // the object's name
	ID     string       // an observed object's ID; "" for one this action creates
	// Resource is what StepCreate creates.
	Resource *drivers.Resource
	// Spec is the desired spec of the container StepStart starts: its bind
	// sources are checked against their pins first.
	Spec *drivers.ContainerSpec
	// Agent marks the start of the agent container (not a sidecar's).
	Agent bool
	// Probe is what StepWaitReady and StepWatchStart wait for.
	Probe *drivers.ReadyProbe
	// Seed (StepSeed) is the volume to fill, and Through the container,
	// created by this action, whose mount of it the copy goes through.
	Seed    *drivers.Resource
	Through string
}

// String is the step as printed in plans and errors.
func (s Step) String() string {
	switch s.Kind {
	case StepPrepareCheckouts:
		return "prepare worktree and clone checkouts"
	case StepPrepareDockerTLS:
		return "prepare the private Docker daemon's certificates"
	case StepPrepareAgent:
		return "prepare the agent's supervisor and directory"
	case StepCreate, StepStart, StepStop, StepRemove:
		return string(s.Kind) + " " + string(s.Object) + " " + s.Name
	case StepSeed:
		return "copy " + s.Seed.Volume.Seed + " into volume " + s.Seed.Name
	case StepWaitReady:
		return "wait for container " + s.Name + " to answer"
	case StepWatchStart:
		return "watch container " + s.Name + " start"
	case StepRemoveFiles:
		return "remove the instance's certificates, credentials, egress policy and agent directory"
	case StepReleaseCheckouts:
		return "release worktree and clone checkouts"
	}
	return string(s.Kind)
}

// StepOptions say what the executor has besides the driver.
type StepOptions struct {
	// RemoveFiles: a delete removes the instance's host files (the
	// executor knows the state dir).
	RemoveFiles bool
	// ReleaseCheckouts: a delete releases the instance's checkouts (the
	// executor can manage them).
	ReleaseCheckouts bool
}

// Steps lists an action's steps: a pure function of the action, so what a
// create, recreate, start, stop or delete does, and in which order, can be
// printed and golden-tested. Host-side checkouts are made first on create
// and recreate (before anything is removed, so a failure leaves the old
// container running) and released last on delete (after the container that
// used them is gone). A container others depend on (the private daemon)
// starts, and answers, before the rest.
func Steps(act Action, opts StepOptions) []Step {
	var steps []Step
	add := func(s Step) { steps = append(steps, s) }
	if (act.Type == ActionCreate || act.Type == ActionRecreate) && act.Desired != nil && len(act.Desired.Checkouts) > 0 {
		add(Step{Kind: StepPrepareCheckouts})
	}
	if t := act.Type; (t == ActionCreate || t == ActionRecreate || t == ActionStart) && act.Desired != nil && act.Desired.DockerTLS != nil {
		// Before anything is stopped (a failure leaves the old containers
		// running), and on a start too: certificates deleted by hand are
		// made again instead of failing every start.
		add(Step{Kind: StepPrepareDockerTLS})
	}
	if t := act.Type; (t == ActionCreate || t == ActionRecreate || t == ActionStart) && act.Desired != nil && act.Desired.Agent != nil {
		// On a start too: a state dir cleaned by hand, or a jackin binary
		// moved, is made good again instead of failing the start.
		add(Step{Kind: StepPrepareAgent})
	}
	var containers, networks []drivers.ObservedResource
	for _, o := range act.Observed {
		switch o.Kind {
		case drivers.KindContainer:
			containers = append(containers, o)
		case drivers.KindNetwork:
			networks = append(networks, o)
		}
	}
	var agent *drivers.ObservedResource
	for i, c := range containers {
		if c.Labels[drivers.LabelComponent] == drivers.ComponentAgent {
			agent = &containers[i]
			break
		}
	}
	desired := desiredContainers(act.Desired)
	probes := readyProbes(act.Desired)

	stop := func(c drivers.ObservedResource) {
		add(Step{Kind: StepStop, Object: drivers.KindContainer, Name: c.Name, ID: c.ID})
	}
	stopRemove := func(c drivers.ObservedResource) {
		if running(c.State) || c.State == drivers.StatePaused {
			stop(c)
		}
		add(Step{Kind: StepRemove, Object: drivers.KindContainer, Name: c.Name, ID: c.ID})
	}
	start := func(name, id string, spec *drivers.ContainerSpec, agent bool) {
		add(Step{Kind: StepStart, Object: drivers.KindContainer, Name: name, ID: id, Spec: spec, Agent: agent})
	}
	wait := func(name, id string, p *drivers.ReadyProbe) {
		kind := StepWatchStart
		if serves(p) {
			kind = StepWaitReady
		}
		add(Step{Kind: kind, Object: drivers.KindContainer, Name: name, ID: id, Probe: p})
	}
	createMissing := func() {
		var ctrs []drivers.Resource
		agentName := ""
		for i, r := range act.Missing {
			add(Step{Kind: StepCreate, Object: r.Kind, Name: r.Name, Resource: &act.Missing[i]})
			if r.Kind == drivers.KindContainer {
				ctrs = append(ctrs, r)
				if r.Component == drivers.ComponentAgent {
					agentName = r.Name
				}
			}
		}
		for i, r := range act.Missing {
			// Through the new agent container, before it first starts:
			// the copy lands in the volume mounted at the target.
			if r.Kind == drivers.KindVolume && r.Volume != nil && r.Volume.Seed != "" {
				add(Step{Kind: StepSeed, Object: drivers.KindVolume, Name: r.Name, Seed: &act.Missing[i], Through: agentName})
			}
		}
		if act.Desired == nil || !act.Desired.Running {
			return
		}
		sort.SliceStable(ctrs, func(i, j int) bool {
			return serves(ctrs[i].Container.Ready) && !serves(ctrs[j].Container.Ready)
		})
		for _, r := range ctrs {
			start(r.Name, "", r.Container, r.Component == drivers.ComponentAgent)
			if p := r.Container.Ready; serves(p) {
				wait(r.Name, "", p)
			}
		}
		// Then the checks that a container stays up, once all started.
		for _, r := range ctrs {
			if p := r.Container.Ready; p != nil && !serves(p) {
				wait(r.Name, "", p)
			}
		}
	}

	switch act.Type {
	case ActionCreate:
		createMissing()
	case ActionRecreate:
		// The containers replaced are those of the components created
		// again, and any the desired state no longer has; the networks
		// replaced are those created again, and any no longer desired.
		replaceNet, replaceComp := map[string]bool{}, map[string]bool{}
		for _, r := range act.Missing {
			switch r.Kind {
			case drivers.KindNetwork:
				replaceNet[r.Name] = true
			case drivers.KindContainer:
				replaceComp[r.Component] = true
			}
		}
		wantNet := map[string]bool{}
		if act.Desired != nil {
			for _, r := range act.Desired.Resources {
				if r.Kind == drivers.KindNetwork {
					wantNet[r.Name] = true
				}
			}
		}
		for _, c := range containers {
			if comp := c.Labels[drivers.LabelComponent]; replaceComp[comp] || desired[comp] == nil {
				stopRemove(c)
			}
		}
		for _, n := range networks {
			if replaceNet[n.Name] || !wantNet[n.Name] {
				add(Step{Kind: StepRemove, Object: drivers.KindNetwork, Name: n.Name, ID: n.ID})
			}
		}
		createMissing()
	case ActionStart:
		if agent == nil {
			break
		}
		if agent.State == drivers.StatePaused {
			// The Driver contract has no unpause, and an engine refuses to
			// start a paused container: stop it (an engine can stop a
			// paused container), then start it.
			stop(*agent)
		}
		// A container the agent depends on (the private daemon) starts, and
		// answers, first; one already running is asked again before the
		// agent starts (it may be running without ever having answered).
		agentStarts := !running(agent.State)
		for _, c := range containers {
			p := probes[c.Labels[drivers.LabelComponent]]
			if c.ID == agent.ID || !serves(p) {
				continue
			}
			if running(c.State) && !agentStarts {
				continue
			}
			if !running(c.State) {
				if c.State == drivers.StatePaused {
					stop(c)
				}
				start(c.Name, c.ID, desired[c.Labels[drivers.LabelComponent]], false)
			}
			wait(c.Name, c.ID, p)
		}
		if agentStarts {
			start(agent.Name, agent.ID, desired[drivers.ComponentAgent], true)
		}
		for _, c := range containers {
			if c.ID == agent.ID || serves(probes[c.Labels[drivers.LabelComponent]]) || running(c.State) {
				continue
			}
			if c.State == drivers.StatePaused {
				stop(c)
			}
			start(c.Name, c.ID, desired[c.Labels[drivers.LabelComponent]], false)
		}
		if p := probes[drivers.ComponentAgent]; agentStarts && p != nil && !serves(p) {
			wait(agent.Name, agent.ID, p)
		}
	case ActionStop:
		if agent != nil {
			stop(*agent)
		}
		for _, c := range containers {
			if (agent == nil || c.ID != agent.ID) && (running(c.State) || c.State == drivers.StatePaused) {
				stop(c)
			}
		}
	case ActionDelete:
		// Containers, then networks, then the volumes that live as long as
		// the instance (and with purge the checkout claims). Other volumes
		// are kept.
		for _, c := range containers {
			stopRemove(c)
		}
		for _, n := range networks {
			add(Step{Kind: StepRemove, Object: drivers.KindNetwork, Name: n.Name, ID: n.ID})
		}
		for _, o := range act.Observed {
			comp := o.Labels[drivers.LabelComponent]
			if o.Kind == drivers.KindVolume && (drivers.OwnedByInstance(comp) || act.Purge && comp == drivers.ComponentCheckout) {
				add(Step{Kind: StepRemove, Object: drivers.KindVolume, Name: o.Name, ID: o.ID})
			}
		}
		// Host files before checkouts: a checkout that cannot be released
		// fails the step, and must not leave keys and values behind.
		if opts.RemoveFiles {
			add(Step{Kind: StepRemoveFiles})
		}
		if opts.ReleaseCheckouts {
			add(Step{Kind: StepReleaseCheckouts})
		}
	}
	return steps
}

// running reports whether a container state counts as up.
func running(state string) bool {
	return state == drivers.StateRunning || state == drivers.StateRestarting
}
