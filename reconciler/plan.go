package reconciler

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackin-dev/jackin/drivers"
)

// ErrEmptyFleet refuses a plan that would delete every instance of a fleet
// because the manifest declares none: an empty or truncated manifest must
// never cause mass deletion.
var ErrEmptyFleet = errors.New("the manifest declares no instances, so applying it would delete every instance of the fleet; pass --allow-empty if that is what you want")

// PlanOptions shape a plan.
type PlanOptions struct {
	// Prune deletes instances of the fleet that are not in the manifest;
	// false only reports them (Action.Pruned is false).
	Prune bool
	// AllowEmpty lets a manifest with zero instances delete the fleet's instances.
	AllowEmpty bool
	// Unreachable are the declared engines that could not be observed, by
	// drivers.Set key (BuildPlanAll): their instances are planned as
	// ActionUnreachable, and nothing of theirs is deleted anywhere.
	Unreachable map[string]error
	// IdleStopped are the instances idle cleanup stopped (from the
	// store). Stopped containers of such an instance are not drift: its
	// start is planned as a noop (Action.IdleStopped) until a task or
	// an attach starts it. A create or recreate still happens (a
	// manifest change, a missing container): it starts the instance, and
	// the executed action clears the mark.
	IdleStopped map[string]bool
}

// Reasons the planner gives, as fixed strings.
const (
	ReasonNewInstance   = "new instance"
	ReasonNotInManifest = "not in the manifest"
	ReasonStateStopped  = "desired state is stopped"
	ReasonDeleteRequest = "deletion requested"
	ReasonCreateStopped = "desired state is stopped: created, not started"
	// ReasonIdleStopped explains the noop of an idle-stopped instance.
	ReasonIdleStopped = "stopped by idle cleanup: left stopped until a task is dispatched to it or jackin attach starts it"
)

// observedInstance is what the backend holds for one instance.
type observedInstance struct {
	networks   []drivers.ObservedResource
	volumes    []drivers.ObservedResource
	containers []drivers.ObservedResource
}

// all lists the instance's objects: networks, volumes, containers.
func (o *observedInstance) all() []drivers.ObservedResource {
	out := make([]drivers.ObservedResource, 0, len(o.networks)+len(o.volumes)+len(o.containers))
	out = append(out, o.networks...)
	out = append(out, o.volumes...)
	return append(out, o.containers...)
}

// live reports whether the instance has a container or a network. Volumes
// alone are kept work of a deleted instance, not an instance.
func (o *observedInstance) live() bool { return len(o.networks)+len(o.containers) > 0 }

// groupObserved groups the fleet's jackin-managed objects by instance label.
// Objects of another fleet, unmanaged objects and objects without an
// instance label are ignored.
func groupObserved(fleet string, obs *drivers.Observed) map[string]*observedInstance {
	groups := map[string]*observedInstance{}
	if obs == nil {
		return groups
	}
	add := func(list []drivers.ObservedResource, pick func(*observedInstance) *[]drivers.ObservedResource) {
		for _, r := range list {
			if r.Labels[drivers.LabelManagedBy] != drivers.ManagedByValue || r.Labels[drivers.LabelFleet] != fleet || r.Instance() == "" {
				continue
			}
			r.Name = strings.TrimPrefix(r.Name, "/")
			g := groups[r.Instance()]
			if g == nil {
				g = &observedInstance{}
				groups[r.Instance()] = g
			}
			p := pick(g)
			*p = append(*p, r)
		}
	}
	add(obs.Networks, func(g *observedInstance) *[]drivers.ObservedResource { return &g.networks })
	add(obs.Volumes, func(g *observedInstance) *[]drivers.ObservedResource { return &g.volumes })
	add(obs.Containers, func(g *observedInstance) *[]drivers.ObservedResource { return &g.containers })
	for _, g := range groups {
		for _, l := range [][]drivers.ObservedResource{g.networks, g.volumes, g.containers} {
			sort.Slice(l, func(i, j int) bool {
				if l[i].Name != l[j].Name {
					return l[i].Name < l[j].Name
				}
				return l[i].ID < l[j].ID
			})
		}
	}
	return groups
}

// BuildPlan decides one action per instance: for each desired instance a create,
// recreate, start, stop or noop, and a delete for each instance of the fleet
// that the backend holds but the manifest no longer lists. It is a pure
// function of its inputs. Actions are sorted by instance name.
//
// It returns an error wrapping ErrEmptyFleet when the manifest declares no
// instances, something would be deleted and opts.AllowEmpty is false.
func BuildPlan(d *Desired, obs *drivers.Observed, last LastApplied, opts PlanOptions) (*Plan, error) {
	if d == nil {
		return nil, errors.New("plan: no desired state")
	}
	groups := groupObserved(d.Fleet, obs)
	var images map[string]string
	if obs != nil {
		images = obs.Images
	}

	p := &Plan{Fleet: d.Fleet}
	desired := map[string]bool{}
	for i := range d.Instances {
		in := &d.Instances[i]
		desired[in.Name] = true
		g := groups[in.Name]
		if g == nil {
			g = &observedInstance{}
		}
		act := planInstance(in, g, last, images)
		if act.Type == ActionStart && opts.IdleStopped[in.Name] {
			// Stopped on purpose, not drift.
			act.Type, act.Reasons, act.IdleStopped = ActionNoop, []string{ReasonIdleStopped}, true
		}
		if in.CredentialErr != nil {
			// Fail closed: nothing of this instance changes, and its
			// action fails with the reason (the others go on).
			act.Err = in.CredentialErr
			act.Reasons = []string{in.CredentialErr.Error() + "; nothing of this instance is changed"}
			act.Widens = nil
		}
		p.Actions = append(p.Actions, act)
	}

	var orphans []string
	for name, g := range groups {
		if !desired[name] && g.live() {
			orphans = append(orphans, name)
		}
	}
	sort.Strings(orphans)
	if len(d.Instances) == 0 && len(orphans) > 0 && opts.Prune && !opts.AllowEmpty {
		return nil, fmt.Errorf("fleet %q: %w (%d would be deleted: %s)", d.Fleet, ErrEmptyFleet, len(orphans), strings.Join(orphans, ", "))
	}
	for _, name := range orphans {
		p.Actions = append(p.Actions, Action{
			Instance: name,
			Type:     ActionDelete,
			Reasons:  []string{ReasonNotInManifest},
			Observed: groups[name].all(),
			Pruned:   opts.Prune,
		})
	}
	sort.SliceStable(p.Actions, func(i, j int) bool { return p.Actions[i].Instance < p.Actions[j].Instance })
	return p, nil
}

// DeletePlan plans the deletion of the named instances of a fleet, or of
// every instance it holds when names is empty. A named instance the backend
// does not hold is an error. Volumes are kept.
func DeletePlan(fleet string, obs *drivers.Observed, names []string) (*Plan, error) {
	groups := groupObserved(fleet, obs)
	p := &Plan{Fleet: fleet}
	if len(names) == 0 {
		for name, g := range groups {
			if g.live() {
				names = append(names, name)
			}
		}
	}
	var unknown []string
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		g := groups[name]
		if g == nil || !g.live() {
			unknown = append(unknown, name)
			continue
		}
		p.Actions = append(p.Actions, Action{
			Instance: name,
			Type:     ActionDelete,
			Reasons:  []string{ReasonDeleteRequest},
			Observed: g.all(),
			Pruned:   true,
		})
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("fleet %q has no instance named %s on the backend", fleet, strings.Join(quoteAll(unknown), ", "))
	}
	sort.Slice(p.Actions, func(i, j int) bool { return p.Actions[i].Instance < p.Actions[j].Instance })
	return p, nil
}

// planInstance decides the action for one desired instance. An instance is
// its networks, volumes and containers (the agent, and in an internal
// egress mode the egress sidecar). A problem with the agent or its network
// recreates every container; a problem with the sidecar alone (or its
// outbound network) recreates the sidecar and leaves the agent running.
func planInstance(in *DesiredInstance, g *observedInstance, last LastApplied, images map[string]string) Action {
	act := Action{Instance: in.Name, Desired: in, Observed: g.all()}
	var netRes, ctrRes drivers.Resource
	var desiredNets, sidecars []drivers.Resource
	for _, r := range in.Resources {
		switch r.Kind {
		case drivers.KindNetwork:
			if netRes.Name == "" {
				netRes = r
			}
			desiredNets = append(desiredNets, r)
		case drivers.KindContainer:
			if r.Component == drivers.ComponentAgent {
				ctrRes = r
			} else {
				sidecars = append(sidecars, r)
			}
		}
	}

	// Volumes found are kept as they are (an ephemeral volume outlives
	// recreates); those not found are created before the container.
	haveVolume := map[string]bool{}
	for _, v := range g.volumes {
		haveVolume[v.Name] = true
	}
	var missingVolumes []drivers.Resource
	for _, r := range in.Resources {
		if r.Kind == drivers.KindVolume && !haveVolume[r.Name] {
			missingVolumes = append(missingVolumes, r)
		}
	}

	if !g.live() {
		act.Type = ActionCreate
		act.Reasons = []string{ReasonNewInstance}
		for _, r := range in.Resources {
			if r.Kind != drivers.KindVolume || !haveVolume[r.Name] {
				act.Missing = append(act.Missing, r)
			}
		}
		if !in.Running {
			act.Reasons = append(act.Reasons, ReasonCreateStopped)
		}
		return act
	}

	// Networks: each desired one found exactly once, internal as desired.
	netProblem := map[string]string{} // desired network name -> why it is replaced
	duplicateNet := map[string]bool{} // desired network name -> found more than once
	wantNet := map[string]bool{}
	for _, n := range desiredNets {
		wantNet[n.Name] = true
		var found []drivers.ObservedResource
		for _, o := range g.networks {
			if o.Name == n.Name {
				found = append(found, o)
			}
		}
		internal := n.Network != nil && n.Network.Internal
		switch {
		case len(found) == 0:
			netProblem[n.Name] = fmt.Sprintf("network %s is missing", n.Name)
		case len(found) > 1:
			netProblem[n.Name] = fmt.Sprintf("%d networks named %s found for one instance", len(found), n.Name)
			duplicateNet[n.Name] = true
		case (found[0].Labels[drivers.LabelInternal] == "true") != internal:
			if internal {
				netProblem[n.Name] = fmt.Sprintf("network %s must be internal (no route out)", n.Name)
			} else {
				netProblem[n.Name] = fmt.Sprintf("network %s is internal and must not be", n.Name)
			}
		}
	}
	var extraNets []string
	for _, o := range g.networks {
		if !wantNet[o.Name] {
			extraNets = append(extraNets, o.Name)
		}
	}

	var agents []drivers.ObservedResource
	byComponent := map[string][]drivers.ObservedResource{}
	wantComponent := map[string]bool{drivers.ComponentAgent: true}
	for _, r := range sidecars {
		wantComponent[r.Component] = true
	}
	var extraCtrs []drivers.ObservedResource
	for _, c := range g.containers {
		comp := c.Labels[drivers.LabelComponent]
		switch {
		case comp == drivers.ComponentAgent:
			agents = append(agents, c)
		case wantComponent[comp]:
			byComponent[comp] = append(byComponent[comp], c)
		default:
			extraCtrs = append(extraCtrs, c)
		}
	}
	// missingNets lists the desired networks an action must (re)create:
	// all with a problem, or those of the sidecar side only.
	missingNets := func(only map[string]bool) []drivers.Resource {
		var out []drivers.Resource
		for _, n := range desiredNets {
			if netProblem[n.Name] != "" && (only == nil || only[n.Name]) {
				out = append(out, n)
			}
		}
		return out
	}
	recreate := func(reasons ...string) Action {
		act.Type = ActionRecreate
		act.Reasons = reasons
		// A recreate always creates every container; a network only when
		// it is missing, duplicated or of the wrong kind (the executor then
		// removes the ones found).
		act.Missing = append(act.Missing, missingNets(nil)...)
		act.Missing = append(act.Missing, missingVolumes...)
		act.Missing = append(act.Missing, ctrRes)
		act.Missing = append(act.Missing, sidecars...)
		return act
	}
	agentNets := map[string]bool{}
	if ctrRes.Container != nil {
		for _, n := range ctrRes.Container.Networks {
			agentNets[n] = true
		}
	}

	// checkSidecars says what is wrong with each desired sidecar (it is
	// then replaced), and which are fine but stopped (they are started).
	checkSidecars := func() (sideReasons, startReasons []string, sideMissing []drivers.Resource, sideNets map[string]bool) {
		sideNets = map[string]bool{}
		for _, r := range sidecars {
			found := byComponent[r.Component]
			var why []string
			switch {
			case len(found) == 0:
				why = append(why, fmt.Sprintf("container %s is missing", r.Name))
			case len(found) > 1:
				why = append(why, fmt.Sprintf("%d %s containers found for one instance", len(found), r.Component))
			default:
				s := found[0]
				if s.Name != r.Name {
					why = append(why, fmt.Sprintf("container %s should be named %s", s.Name, r.Name))
				}
				if s.Labels[drivers.LabelSpecHash] != in.Hash {
					why = append(why, fmt.Sprintf("container %s was made for another spec", r.Name))
				}
				if got := s.Labels[drivers.LabelImage]; got != r.Container.Image.Ref {
					why = append(why, fmt.Sprintf("container %s was made from image %s, want %s", r.Name, orNone(got), r.Container.Image.Ref))
				}
				for _, n := range r.Container.Networks {
					switch {
					case netProblem[n] != "":
						why = append(why, netProblem[n])
						sideNets[n] = true
					case !contains(s.Networks, n):
						why = append(why, fmt.Sprintf("container %s is not attached to network %s", r.Name, n))
					}
				}
				switch s.State {
				case drivers.StateDead:
					why = append(why, "container "+r.Name+" is "+stateText(s))
				case drivers.StateRemoving:
					why = append(why, "container "+r.Name+" is being removed")
				}
				active := s.State == drivers.StateRunning || s.State == drivers.StateRestarting
				if len(why) == 0 && in.Running && !active {
					startReasons = append(startReasons, "container "+r.Name+" is "+stateText(s))
				}
			}
			if len(why) > 0 {
				sideReasons = append(sideReasons, why...)
				sideMissing = append(sideMissing, r)
			}
		}
		return sideReasons, startReasons, sideMissing, sideNets
	}

	switch {
	case len(agents) > 1:
		return recreate(fmt.Sprintf("%d containers found for one instance", len(agents)))
	case duplicateNet[netRes.Name]:
		return recreate(netProblem[netRes.Name])
	case len(agents) == 0 && len(g.containers)-len(extraCtrs) > 0:
		reasons := []string{}
		for _, n := range desiredNets {
			if netProblem[n.Name] != "" {
				reasons = append(reasons, netProblem[n.Name])
			}
		}
		missing := fmt.Sprintf("container %s is missing", ctrRes.Name)
		if side, start, _, _ := checkSidecars(); len(reasons)+len(extraCtrs)+len(side)+len(start) == 0 {
			// Only the agent is gone: its sidecars (a private daemon and
			// the containers it runs, the egress proxy) are right and stay.
			act.Type, act.Reasons = ActionRecreate, []string{missing}
			act.Missing = append(append(act.Missing, missingVolumes...), ctrRes)
			return act
		}
		return recreate(append(reasons, missing)...)
	case len(agents) == 0:
		act.Type = ActionCreate
		for _, n := range desiredNets {
			if netProblem[n.Name] != "" {
				act.Reasons = append(act.Reasons, netProblem[n.Name])
			}
		}
		act.Missing = append(act.Missing, missingNets(nil)...)
		act.Reasons = append(act.Reasons, fmt.Sprintf("container %s is missing", ctrRes.Name))
		act.Missing = append(act.Missing, missingVolumes...)
		act.Missing = append(act.Missing, ctrRes)
		act.Missing = append(act.Missing, sidecars...)
		if !in.Running {
			act.Reasons = append(act.Reasons, ReasonCreateStopped)
		}
		return act
	}

	c := agents[0]
	var reasons []string
	if c.Name != ctrRes.Name {
		reasons = append(reasons, fmt.Sprintf("container %s should be named %s", c.Name, ctrRes.Name))
	}
	if got := c.Labels[drivers.LabelSpecHash]; got != in.Hash {
		reasons = append(reasons, specReasons(got, in, last)...)
	} else if id, ok := images[in.Image.Ref]; ok && id != "" && c.ImageID != "" && id != c.ImageID {
		reasons = append(reasons, fmt.Sprintf("image %s now points to %s (container runs %s)", in.Image.Ref, shortImageID(id), shortImageID(c.ImageID)))
	}
	for _, n := range desiredNets {
		if !agentNets[n.Name] && n.Name != netRes.Name {
			continue
		}
		switch {
		case netProblem[n.Name] != "":
			reasons = append(reasons, netProblem[n.Name])
		case agentNets[n.Name] && !contains(c.Networks, n.Name):
			reasons = append(reasons, fmt.Sprintf("container is not attached to network %s", n.Name))
		}
	}
	for _, n := range extraNets {
		reasons = append(reasons, fmt.Sprintf("network %s is no longer part of the instance", n))
	}
	for _, x := range extraCtrs {
		if drivers.IsSidecar(x.Labels[drivers.LabelComponent]) {
			reasons = append(reasons, fmt.Sprintf("container %s is no longer part of the instance", x.Name))
		}
	}
	switch c.State {
	case drivers.StateDead:
		reasons = append(reasons, "container is "+stateText(c))
	case drivers.StateRemoving:
		reasons = append(reasons, "container is being removed")
	}
	if len(reasons) > 0 {
		return recreate(reasons...)
	}

	// The sidecars: replaced alone when only they (or their outbound
	// network) are wrong.
	sideReasons, startReasons, sideMissing, sideNets := checkSidecars()
	if len(sideReasons) > 0 {
		act.Type = ActionRecreate
		act.Reasons = sideReasons
		// A volume gone with the sidecar (its data) is created again first:
		// the engine would otherwise make an unlabelled one for the mount.
		act.Missing = append(missingNets(sideNets), missingVolumes...)
		act.Missing = append(act.Missing, sideMissing...)
		return act
	}

	active := c.State == drivers.StateRunning || c.State == drivers.StateRestarting
	sideActive := false
	for _, r := range sidecars {
		for _, s := range byComponent[r.Component] {
			if s.State == drivers.StateRunning || s.State == drivers.StateRestarting || s.State == drivers.StatePaused {
				sideActive = true
			}
		}
	}
	switch {
	case in.Running && (!active || len(startReasons) > 0):
		act.Type = ActionStart
		if !active {
			act.Reasons = []string{"container is " + stateText(c)}
		}
		act.Reasons = append(act.Reasons, startReasons...)
	case !in.Running && (active || c.State == drivers.StatePaused || sideActive):
		act.Type = ActionStop
		act.Reasons = []string{ReasonStateStopped}
	default:
		act.Type = ActionNoop
	}
	return act
}

// stateText is "exited (Exited (1) 3 seconds ago)", or the bare state when
// the backend gave no status.
func stateText(c drivers.ObservedResource) string {
	state := c.State
	if state == "" {
		state = "in an unknown state"
	}
	if c.Status == "" {
		return state
	}
	return state + " (" + c.Status + ")"
}

// specReasons explains a spec hash change by diffing the last applied spec
// against the desired one. The last applied spec only explains the change
// when it is what the container runs (its hash matches the container's).
func specReasons(observedHash string, in *DesiredInstance, last LastApplied) []string {
	unknown := []string{fmt.Sprintf("spec hash changed (%s → %s), last applied spec unknown", shortHash(observedHash), shortHash(in.Hash))}
	prev, ok := last[in.Name]
	if !ok {
		return unknown
	}
	if h, err := HashSpec(prev); err != nil || h != observedHash {
		return unknown
	}
	if r := DiffSpecs(prev, in.Spec); len(r) > 0 {
		return r
	}
	return unknown
}

func shortHash(h string) string {
	if h == "" {
		return "none"
	}
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// shortImageID shortens "sha256:<64 hex>" to "sha256:<12 hex>".
func shortImageID(id string) string {
	algo, hex, ok := strings.Cut(id, ":")
	if !ok {
		return shortHash(id)
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return algo + ":" + hex
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.TrimPrefix(x, "/") == s {
			return true
		}
	}
	return false
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = fmt.Sprintf("%q", x)
	}
	return out
}

// Counts returns the number of actions of each type. A delete kept back by
// --prune=false is not counted: it changes nothing (see KeptOrphans).
func (p *Plan) Counts() map[ActionType]int {
	c := map[ActionType]int{}
	for _, a := range p.Actions {
		if a.Type == ActionDelete && !a.Pruned {
			continue
		}
		c[a.Type]++
	}
	return c
}

// KeptOrphans returns the number of instances not in the manifest that the
// plan reports but does not delete (--prune=false).
func (p *Plan) KeptOrphans() int {
	n := 0
	for _, a := range p.Actions {
		if a.Type == ActionDelete && !a.Pruned {
			n++
		}
	}
	return n
}

// HasChanges reports whether executing the plan would change the backend.
func (p *Plan) HasChanges() bool {
	for _, a := range p.Actions {
		if a.Mutates() {
			return true
		}
	}
	return false
}
