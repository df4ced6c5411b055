package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/jackin-dev/jackin/console"
	"github.com/jackin-dev/jackin/contract"
	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/supervisor"
	"github.com/jackin-dev/jackin/taskqueue"
	"github.com/jackin-dev/jackin/telemetry"
)

// Console defaults.
const (
	// consoleEgressPull is how often the console pulls the egress proxies'
	// new decisions into the store (DENY and the detail pane read them
	// there).
	consoleEgressPull = 30 * time.Second
	// consoleDebounce gathers a burst of events into one refresh.
	consoleDebounce = 100 * time.Millisecond
	// consoleDetailLines is how many state changes, egress decisions and
	// log lines the detail pane gets of each.
	consoleDetailLines = 12
	// consoleDetailTimeout bounds the engine calls of one refresh.
	consoleCallTimeout = 20 * time.Second
)

func newConsoleCommand(a *app) *cobra.Command {
	var mf manifestFlags
	var fleetName string
	var resync time.Duration
	cmd := &cobra.Command{
		Use:   "console [-f PATH... | --fleet NAME]",
		Short: "A live view of the fleet: agent states, resources, cost, drift; attach, logs, explain",
		Long: `console draws the fleet on the terminal and keeps it current: a table of the
instances (agent state, CPU, memory, tokens and cost, ports, egress denials in
the last hour, sync with the manifest, description) and, for the selected
instance, its contract summary, last state changes, last egress decisions and
last log lines.

Keys: ↑/↓ or j/k move, enter or a attaches (the console steps aside for jackin
attach and comes back when you detach with ctrl-p ctrl-q), l follows the log,
e shows the session contract (jackin explain), / filters, ? helps, q quits.
Nothing in the console changes the fleet: apply and delete stay reviewed
manifest changes.

It refreshes on the engine's events and the agents' published state, and does
a full resync every --resync. With -f it shows the manifest's view (sync,
description, contract); with --fleet only what the engine and the state dir
hold. With neither, a fleet.cue, fleet.yaml, fleet.yml or fleet.json (or a
fleets/ directory) in the current directory is used. NO_COLOR draws it
without colour.

When stdout is not a terminal it prints one line and exits 2: use jackin get.`,
		Example: `  jackin console -f fleet.cue
  jackin console --fleet demo
  NO_COLOR=1 jackin console`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if resync < time.Second {
				return exitWith(exitInvalid, fmt.Errorf("--resync must be at least 1s, got %s", resync))
			}
			return a.console(cmd.Context(), mf.files, fleetName, resync)
		},
	}
	mf.register(cmd)
	cmd.Flags().StringVar(&fleetName, "fleet", "", "the fleet's name, instead of -f (no manifest: no sync, description or contract)")
	cmd.Flags().DurationVar(&resync, "resync", console.DefaultResync, "interval of the full refresh that backs up the engine's and the agents' events")
	return cmd
}

// onTerminal reports whether the stream is a terminal (a character
// device such as /dev/null is not).
func onTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// manifestsHere are the manifests a bare jackin (and jackin console with
// neither -f nor --fleet) uses: fleet.cue, fleet.yaml, fleet.yml and
// fleet.json in dir (those that exist), else a fleets/ or fleet/
// directory with manifest files in it. None: nil.
func manifestsHere(dir string) []string {
	var files []string
	for _, n := range []string{"fleet.cue", "fleet.yaml", "fleet.yml", "fleet.json"} {
		if fi, err := os.Stat(filepath.Join(dir, n)); err == nil && fi.Mode().IsRegular() {
			files = append(files, n)
		}
	}
	if len(files) > 0 {
		return files
	}
	for _, d := range []string{"fleets", "fleet"} {
		ents, err := os.ReadDir(filepath.Join(dir, d))
		if err != nil {
			continue
		}
		for _, e := range ents {
			switch filepath.Ext(e.Name()) {
			case ".cue", ".yaml", ".yml", ".json":
				if !e.IsDir() {
					return []string{d + string(filepath.Separator)}
				}
			}
		}
	}
	return nil
}

// console runs jackin console.
func (a *app) console(ctx context.Context, files []string, fleetName string, resync time.Duration) error {
	if len(files) > 0 && fleetName != "" {
		return exitWith(exitInvalid, errors.New("give either -f or --fleet, not both"))
	}
	if !onTerminal(a.stdout) {
		fmt.Fprintln(a.stderr, "jackin console needs a terminal, and stdout is not one: use jackin get (-o json) for the same rows")
		return &exitError{code: exitInvalid, err: errors.New("stdout is not a terminal"), reported: true}
	}
	if len(files) == 0 && fleetName == "" {
		if files = manifestsHere("."); len(files) == 0 {
			return exitWith(exitInvalid, errors.New("name the fleet: -f PATH or --fleet NAME (no fleet.cue, fleet.yaml, fleet.yml, fleet.json or fleets/ here)"))
		}
	}
	for _, f := range files {
		if f == "-" {
			return exitWith(exitInvalid, errors.New("the console cannot read the manifest from stdin (-f -): stdin is the terminal"))
		}
	}
	src, err := a.newConsoleSource(ctx, files, fleetName)
	if err != nil {
		return err
	}
	defer a.closeSession(src.sess)
	return console.Run(ctx, src, console.Options{Color: !console.NoColor(), Resync: resync}, a.stdin, a.stdout)
}

// consoleSource is the console's view of a fleet: the same observation
// jackin get makes (with -f: the plan against the manifest; with --fleet:
// the engine's objects and the last-applied specs), the agents' published
// state, the store's egress decisions, the engine's logs and the session
// contract.
type consoleSource struct {
	a     *app
	sess  *session
	fleet string
	// With -f: the manifest, rendered once (its credentials read once, as
	// jackin get reads them); nil with --fleet.
	manifest *schema.Fleet
	desired  *reconciler.Desired
	files    []string
	origin   string
	exe      string
	home     string

	// resources samples CPU and memory of the fleet's instances, by
	// instance; nil shows "-" in CPU and MEM.
	resources func(ctx context.Context, fleet string, observed reconciler.Observations) (map[string]telemetry.Resources, error)
	// usage is each instance's token use and cost, by instance and model;
	// nil shows "-" in TOKENS and COST.
	usage func(ctx context.Context, fleet string) (map[string][]telemetry.Usage, error)

	// linkPoll is set while the links' GitHub states are refreshed.
	linkPoll atomic.Bool

	mu        sync.Mutex
	agents    map[string]drivers.ObservedResource // the last observation's agent containers
	specs     map[string]reconciler.Spec          // desired (or last-applied) specs
	contracts map[string][]string
	pulled    time.Time
}

func (a *app) newConsoleSource(ctx context.Context, files []string, fleetName string) (*consoleSource, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, exitWith(exitInvalid, fmt.Errorf("find jackin's executable (for attach): %w", err))
	}
	home, _ := os.UserHomeDir()
	s := &consoleSource{a: a, files: files, exe: exe, home: home, contracts: map[string][]string{}, specs: map[string]reconciler.Spec{}}
	if len(files) > 0 {
		sess, err := a.openSession(ctx, files, false)
		if err != nil {
			return nil, err
		}
		res, err := a.plan(ctx, sess, reconciler.PlanOptions{Prune: true, AllowEmpty: true}, false)
		if err != nil {
			a.closeSession(sess)
			return nil, err
		}
		s.sess, s.manifest, s.desired, s.fleet = sess, sess.fleet, res.Desired, sess.fleet.Name
		for _, d := range res.Desired.Instances {
			s.specs[d.Name] = d.Spec
		}
		names := make([]string, len(files))
		for i, f := range files {
			names[i] = filepath.Base(filepath.Clean(f))
		}
		s.origin = strings.Join(names, ", ")
	} else {
		name, err := a.fleetFromFlags(ctx, nil, fleetName, true)
		if err != nil {
			return nil, err
		}
		sess, err := a.openEngineSession(ctx, false)
		if err != nil {
			return nil, err
		}
		s.sess, s.fleet, s.origin = sess, name, "engine, no manifest"
	}
	// One sampling pass per refresh for the whole fleet; the monitor keeps
	// the previous pass so CPU is a rate between refreshes.
	if mon := newResourceMonitor(s.sess.drv, s.desired); mon != nil {
		s.resources = mon.Sample
	}
	s.usage = func(ctx context.Context, fleet string) (map[string][]telemetry.Usage, error) {
		return a.usageRows(ctx, s.store(ctx), fleet)
	}
	return s, nil
}

// store is the state dir's store, opened once it exists (an apply may
// create it while the console runs).
func (s *consoleSource) store(ctx context.Context) *store.Store {
	if s.sess.st == nil {
		if st, err := s.a.openStoreReadOnly(ctx); err == nil {
			s.sess.st = st
		}
	}
	return s.sess.st
}

// Snapshot observes the fleet: one list call per resource kind and
// backend, a small file read per running agent, two store queries.
func (s *consoleSource) Snapshot(ctx context.Context) (console.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, consoleCallTimeout)
	defer cancel()
	snap := console.Snapshot{Fleet: s.fleet, Origin: s.origin, Endpoint: s.sess.drv.Endpoint(), At: time.Now()}
	st := s.store(ctx)
	var items []instanceStatus
	var observed reconciler.Observations
	var last reconciler.LastApplied
	var err error
	if last, err = pipeline.LastApplied(ctx, st, s.fleet); err != nil {
		snap.Notes = append(snap.Notes, err.Error())
	}
	// Instances idle cleanup stopped are in sync, shown idle-stopped.
	idleSet := map[string]bool{}
	if st != nil {
		if marks, err := st.IdleStopped(ctx, s.fleet); err == nil {
			for name := range marks {
				idleSet[name] = true
			}
		} else {
			snap.Notes = append(snap.Notes, err.Error())
		}
	}
	if s.desired != nil {
		if observed, err = reconciler.ObserveAll(ctx, s.sess.set, s.desired); err != nil {
			return snap, err
		}
		plan, err := reconciler.BuildPlanAll(s.desired, observed, last, reconciler.PlanOptions{Prune: true, AllowEmpty: true, IdleStopped: idleSet})
		if err != nil {
			return snap, err
		}
		res := &pipeline.Result{Fleet: s.manifest, Desired: s.desired, Observed: observed, Plan: plan, Last: last}
		items = statusRows(res)
		s.a.addAgentStates(s.fleet, res, items)
	} else {
		obs, err := s.sess.drv.Observe(ctx, s.fleet, nil)
		if err != nil {
			return snap, err
		}
		observed = reconciler.Observations{drivers.DefaultBackend: obs}
		items = observedRows(obs, last)
		s.a.addAgentStates(s.fleet, &pipeline.Result{Observed: observed}, items)
	}
	if st != nil {
		if crashes, err := st.CrashStates(ctx, s.fleet); err == nil {
			markCrashLoops(items, crashes)
		}
	}
	for i := range items {
		if idleSet[items[i].Instance] && items[i].Observed == "stopped" {
			items[i].Observed = observedIdleStopped
		}
	}

	agents := map[string]drivers.ObservedResource{}
	for _, o := range observed {
		for _, c := range o.Containers {
			if c.Labels[drivers.LabelComponent] == drivers.ComponentAgent {
				agents[c.Instance()] = c
			}
		}
	}
	s.mu.Lock()
	s.agents = agents
	if s.desired == nil {
		s.specs = map[string]reconciler.Spec{}
		for name, spec := range last {
			s.specs[name] = spec
		}
	}
	specs := s.specs
	s.mu.Unlock()

	denied, notes := s.denials(ctx, st, specs)
	snap.Notes = append(snap.Notes, notes...)
	var res map[string]telemetry.Resources
	if s.resources != nil {
		if res, err = s.resources(ctx, s.fleet, observed); err != nil {
			snap.Notes = append(snap.Notes, "resources: "+err.Error())
		}
	}
	var usage map[string][]telemetry.Usage
	if s.usage != nil {
		if usage, err = s.usage(ctx, s.fleet); err != nil {
			snap.Notes = append(snap.Notes, "usage: "+err.Error())
		}
	}
	links := s.consoleLinkStates(ctx, st)
	held := s.consoleQueue(ctx, st, &snap)
	description := map[string]string{}
	runtimeOf := map[string]string{}
	if s.desired != nil {
		for _, d := range s.desired.Instances {
			description[d.Name] = d.Instance.Description
			runtimeOf[d.Name] = d.Instance.Runtime().Name
		}
	}
	for _, it := range items {
		row := console.Row{Instance: it.Instance, Observed: it.Observed, Runtime: runtimeOf[it.Instance], Description: description[it.Instance]}
		if row.Runtime == "" {
			if spec, ok := specs[it.Instance]; ok {
				row.Runtime = spec.Agent
			}
		}
		if ag := it.Agent; ag != nil {
			row.State, row.StateDetail, row.ExitStatus = ag.State, ag.Detail, ag.ExitStatus
			if !ag.Since.IsZero() {
				row.StateSince = ag.Since.Local()
			}
			if ag.Runtime != "" {
				row.Runtime = ag.Runtime
			}
		}
		if s.desired != nil {
			row.Sync = "in-sync"
			if !it.InSync {
				row.Sync = "drift: " + it.Action
			}
		}
		if spec, ok := specs[it.Instance]; ok {
			for _, p := range spec.Network.Ports {
				row.Ports = append(row.Ports, consolePort(p))
			}
		}
		if n, ok := denied[it.Instance]; ok {
			row.Denied = &n
		}
		if r, ok := res[it.Instance]; ok {
			row.Resources = &r
		}
		if usage != nil {
			row.Usage = usage[it.Instance]
			if row.Usage == nil {
				row.Usage = []telemetry.Usage{}
			}
		}
		row.Links = consoleLinks(links[it.Instance])
		row.Task = held[it.Instance]
		snap.Rows = append(snap.Rows, row)
	}
	return snap, nil
}

// consoleQueue fills the snapshot's queue (when the manifest declares
// one, or the store holds tasks of the fleet) and returns the task each
// instance holds: dispatched to it, worked on or waiting for review.
func (s *consoleSource) consoleQueue(ctx context.Context, st *store.Store, snap *console.Snapshot) map[string]*console.Task {
	if st == nil {
		return nil
	}
	tasks, err := st.Tasks(ctx, s.fleet)
	if err != nil {
		snap.Notes = append(snap.Notes, "queue: "+err.Error())
		return nil
	}
	if len(tasks) == 0 && (s.manifest == nil || s.manifest.Queue == nil) {
		return nil
	}
	q := &console.Queue{Counts: map[string]int{}}
	if q.Paused, err = st.QueuePaused(ctx, s.fleet); err != nil {
		snap.Notes = append(snap.Notes, "queue: "+err.Error())
	}
	held := map[string]*console.Task{}
	for _, t := range tasks {
		q.Counts[string(t.State)]++
		switch t.State {
		case taskqueue.StateDispatched, taskqueue.StateWorking, taskqueue.StateNeedsReview:
			held[t.Instance] = &console.Task{ID: t.ID, Title: t.Title, State: string(t.State)}
		}
	}
	snap.Queue = q
	return held
}

// observedRows are the rows of --fleet: the agent containers on the
// engine, and the instances applied before whose container is gone.
func observedRows(obs *drivers.Observed, last reconciler.LastApplied) []instanceStatus {
	seen := map[string]bool{}
	var items []instanceStatus
	for _, c := range obs.Containers {
		if c.Labels[drivers.LabelComponent] != drivers.ComponentAgent {
			continue
		}
		it := instanceStatus{Instance: c.Instance(), Desired: "-", ContainerID: c.ID, Status: c.Status, Image: c.Image, Created: c.Created,
			SpecHash: c.Labels[drivers.LabelSpecHash], InSync: true, Reasons: []string{}}
		switch {
		case c.State == drivers.StateRunning || c.State == drivers.StateRestarting || c.State == drivers.StatePaused:
			it.Observed = "running"
		case c.OOMKilled:
			it.Observed = observedOOMKilled
		default:
			it.Observed = "stopped"
		}
		seen[it.Instance] = true
		items = append(items, it)
	}
	for name := range last {
		if !seen[name] {
			items = append(items, instanceStatus{Instance: name, Desired: "-", Observed: "missing", InSync: true, Reasons: []string{}})
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Instance < items[j].Instance })
	return items
}

func consolePort(p reconciler.SpecPort) string {
	host := strconv.Itoa(p.Host)
	if p.Host == 0 {
		host = "*"
	}
	s := host + "->" + strconv.Itoa(p.Container)
	if p.Address != "" && p.Address != "0.0.0.0" {
		s = net.JoinHostPort(p.Address, host) + "->" + strconv.Itoa(p.Container)
	}
	if p.Protocol != "" && p.Protocol != "tcp" {
		s += "/" + p.Protocol
	}
	return s
}

// denials counts each allowlisted instance's denied connections in the
// last hour, from the store; every consoleEgressPull it first pulls the
// proxies' new decisions into it (as jackin egress log does). Instances
// without an egress proxy are absent (DENY shows "-").
func (s *consoleSource) denials(ctx context.Context, st *store.Store, specs map[string]reconciler.Spec) (map[string]int, []string) {
	out := map[string]int{}
	any := false
	for name, spec := range specs {
		if spec.Network.Egress == schema.EgressAllowlist {
			out[name] = 0
			any = true
		}
	}
	if st == nil || !any {
		return out, nil
	}
	var notes []string
	if time.Since(s.pulled) >= consoleEgressPull {
		s.pulled = time.Now()
		if err := s.a.env(s.sess).PullEgressLogs(ctx, s.fleet); err != nil {
			notes = append(notes, "egress log: "+err.Error())
		}
	}
	ds, err := st.EgressDecisions(ctx, store.EgressQuery{Fleet: s.fleet, Denied: true, Limit: 10000})
	if err != nil {
		return out, append(notes, err.Error())
	}
	since := time.Now().Add(-time.Hour)
	for _, d := range ds {
		if _, ok := out[d.Instance]; ok && d.Time.After(since) {
			out[d.Instance]++
		}
	}
	return out, notes
}

// Detail reads the selected instance's detail: its contract summary, last
// state changes (published by its supervisor, else recorded in the store),
// last egress decisions and last log lines.
func (s *consoleSource) Detail(ctx context.Context, instance string) (console.Detail, error) {
	ctx, cancel := context.WithTimeout(ctx, consoleCallTimeout)
	defer cancel()
	d := console.Detail{Instance: instance, Contract: s.contractLines(instance)}
	problem := func(what string, err error) { d.Problems = append(d.Problems, what+": "+err.Error()) }

	events, err := supervisor.ReadEvents(supervisor.HostDir(s.a.global.stateDir, s.fleet, instance))
	if err != nil {
		problem("published states", err)
	}
	for _, e := range events {
		detail := e.Detail
		if e.State == "exited" {
			detail = strings.TrimSpace(detail + " status " + strconv.Itoa(e.ExitStatus))
		}
		d.States = append(d.States, console.StateChange{At: e.Since.Local(), State: e.State, Detail: detail})
	}
	st := s.store(ctx)
	if len(d.States) == 0 && st != nil {
		d.States = recordedStates(ctx, st, s.fleet, instance)
	}
	if n := len(d.States); n > consoleDetailLines {
		d.States = d.States[n-consoleDetailLines:]
	}
	if st != nil {
		ds, err := st.EgressDecisions(ctx, store.EgressQuery{Fleet: s.fleet, Instance: instance, Limit: consoleDetailLines})
		if err != nil {
			problem("egress decisions", err)
		}
		for _, e := range ds {
			rule := e.Rule
			if e.Error != "" {
				rule = strings.TrimSpace(rule + " error: " + e.Error)
			}
			d.Egress = append(d.Egress, console.EgressDecision{At: e.Time.Local(), Allowed: e.Allowed, Method: e.Method,
				Destination: net.JoinHostPort(e.Host, strconv.Itoa(e.Port)), Rule: rule})
		}
	}
	if lines, err := s.logTail(ctx, instance, consoleDetailLines); err != nil {
		problem("log", err)
	} else {
		d.Logs = lines
	}
	return d, nil
}

// recordedStates are the agent state changes the store recorded for the
// instance, oldest first (an instance whose agent directory is gone).
func recordedStates(ctx context.Context, st *store.Store, fleet, instance string) []console.StateChange {
	evs, err := st.Events(ctx, fleet, 500)
	if err != nil {
		return nil
	}
	var out []console.StateChange
	for _, e := range evs {
		if e.Kind != store.EventAgentState || e.Instance != instance {
			continue
		}
		var as store.AgentState
		_ = json.Unmarshal(e.Data, &as)
		detail := as.Detail
		if as.State == "exited" {
			detail = strings.TrimSpace(detail + " status " + strconv.Itoa(as.ExitStatus))
		}
		out = append(out, console.StateChange{At: e.At.Local(), State: as.State, Detail: detail})
		if len(out) == consoleDetailLines {
			break
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// contractLines is the instance's contract summary: jackin apply's
// compact form from the manifest, or (--fleet) what the last-applied
// spec says it can reach.
func (s *consoleSource) contractLines(instance string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lines, ok := s.contracts[instance]; ok {
		return lines
	}
	var lines []string
	switch {
	case s.desired != nil && s.desired.Instance(instance) != nil:
		doc, err := contract.Build(s.manifest, s.desired, contract.Options{Instances: []string{instance}, Home: s.home, StateDir: s.a.global.stateDir, ManifestPaths: s.files})
		if err != nil {
			return []string{"cannot compute the contract: " + err.Error()}
		}
		var b bytes.Buffer
		_ = contract.WriteCompact(&b, &doc.Instances[0], nil)
		all := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
		for _, l := range all[1:] { // the first line names the instance
			lines = append(lines, strings.TrimSpace(l))
		}
	case s.desired != nil:
		lines = []string{"not in the manifest: an orphan, which jackin apply deletes"}
	default:
		spec, ok := s.specs[instance]
		if !ok {
			return []string{"no spec recorded (jackin console -f PATH shows the manifest's contract)"}
		}
		lines = specSummary(spec, s.home)
	}
	s.contracts[instance] = lines
	return lines
}

// specSummary says what a last-applied spec gives the agent.
func specSummary(spec reconciler.Spec, home string) []string {
	acc := contract.AccessOfSpec(spec, home)
	lines := []string{"as last applied (jackin console -f PATH shows the manifest's contract)",
		fmt.Sprintf("image %s, agent %s, backend %s", spec.Image, spec.Agent, spec.Backend),
		"Docker access " + orDash(acc.Docker) + ", egress " + orDash(acc.Egress)}
	var mounts []string
	for _, m := range acc.Mounts {
		mounts = append(mounts, m.Mode+" "+m.Src+" -> "+m.Dst)
	}
	if len(mounts) > 0 {
		lines = append(lines, "mounts "+strings.Join(mounts, ", "))
	}
	if len(acc.Credentials) > 0 {
		lines = append(lines, "credentials "+strings.Join(acc.Credentials, ", "))
	}
	return lines
}

// agent is the instance's agent container in the last snapshot.
func (s *consoleSource) agent(instance string) (drivers.ObservedResource, error) {
	s.mu.Lock()
	c, ok := s.agents[instance]
	s.mu.Unlock()
	if !ok {
		return c, fmt.Errorf("instance %s has no agent container", instance)
	}
	return c, nil
}

func (s *consoleSource) logStreamer() (drivers.LogStreamer, error) {
	ls, ok := s.sess.drv.(drivers.LogStreamer)
	if !ok {
		return nil, fmt.Errorf("backend %s cannot read a container's log", s.sess.drv.Name())
	}
	return ls, nil
}

// logTail is the last n lines the agent printed, as plain text.
func (s *consoleSource) logTail(ctx context.Context, instance string, n int) ([]string, error) {
	c, err := s.agent(instance)
	if err != nil {
		return nil, nil // nothing printed: no container
	}
	ls, err := s.logStreamer()
	if err != nil {
		return nil, err
	}
	// Rewritten lines (a spinner) collapse: ask for more than shown.
	rc, err := ls.ContainerLogStream(ctx, c.ID, drivers.LogOptions{Tail: 4 * n})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var b bytes.Buffer
	if err := copyLog(&b, rc, false, false); err != nil {
		return nil, err
	}
	var lines []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

// FollowLogs streams the agent's log as plain text (jackin logs --follow
// --tail N), until ctx ends or the agent stops.
func (s *consoleSource) FollowLogs(ctx context.Context, instance string, tail int) (io.ReadCloser, error) {
	c, err := s.agent(instance)
	if err != nil {
		return nil, err
	}
	ls, err := s.logStreamer()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	rc, err := ls.ContainerLogStream(ctx, c.ID, drivers.LogOptions{Follow: true, Tail: tail})
	if err != nil {
		cancel()
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		err := copyLog(pw, rc, false, true)
		rc.Close()
		pw.CloseWithError(err) // nil: io.EOF for the reader
	}()
	return &followedLog{PipeReader: pr, stop: func() { cancel(); rc.Close() }}, nil
}

type followedLog struct {
	*io.PipeReader
	stop func()
}

func (f *followedLog) Close() error {
	f.stop()
	return f.PipeReader.Close()
}

// Explain is jackin explain's text for the instance.
func (s *consoleSource) Explain(ctx context.Context, instance string) (string, error) {
	if s.desired == nil {
		return "", errors.New("the session contract needs the fleet's manifest: run jackin console -f PATH (or jackin explain -f PATH " + instance + ")")
	}
	if s.desired.Instance(instance) == nil {
		return "", errors.New(instance + " is not in the manifest (an orphan, which jackin apply deletes)")
	}
	obs := &contract.Observation{Endpoint: s.sess.drv.Endpoint(), StateFiles: contract.ObserveStateDir(s.a.global.stateDir, s.fleet)}
	ctx, cancel := context.WithTimeout(ctx, explainObserveTimeout)
	defer cancel()
	if engine, err := s.sess.drv.Observe(ctx, s.fleet, s.desired.ImageRefs()); err != nil {
		obs.EngineError = engineErrorText(err)
	} else {
		obs.Engine = engine
	}
	doc, err := contract.Build(s.manifest, s.desired, contract.Options{Instances: []string{instance}, Home: s.home, StateDir: s.a.global.stateDir, ManifestPaths: s.files, Observation: obs})
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := contract.WriteText(&b, doc); err != nil {
		return "", err
	}
	return b.String(), nil
}

// AttachCommand is jackin attach for the instance, run by the console on
// its own terminal.
func (s *consoleSource) AttachCommand(instance string) (*exec.Cmd, error) {
	return exec.Command(s.exe, "--state-dir", s.a.global.stateDir, "attach", "--fleet", s.fleet, instance), nil
}

// Watch reports changes: the engine's events about the fleet (a container
// dies, stops, is removed or OOM-killed; the stream is reopened when it
// ends) and the agents' published state files (fsnotify on
// $JACKIN_HOME/agents/<fleet> and each instance's directory in it). A
// burst is one report.
func (s *consoleSource) Watch(ctx context.Context) <-chan struct{} {
	raw := make(chan struct{}, 1)
	poke := func() {
		select {
		case raw <- struct{}{}:
		default:
		}
	}
	if es, ok := s.sess.drv.(drivers.EventSource); ok {
		go s.watchEngine(ctx, es, poke)
	}
	go s.watchAgentDirs(ctx, poke)
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case <-raw:
			}
			// Gather the burst.
			t := time.NewTimer(consoleDebounce)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}

func (s *consoleSource) watchEngine(ctx context.Context, es drivers.EventSource, poke func()) {
	backoff := time.Second
	for ctx.Err() == nil {
		evs, errs, err := es.Events(ctx, s.fleet)
		if err == nil {
			backoff = time.Second
			for range evs {
				poke()
			}
			<-errs
			poke() // the stream ended: resync
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// watchAgentDirs watches the fleet's agent directories for state files
// the supervisors publish (state.json, replaced by rename). The fleet's
// directory may not exist yet: it is looked for again every few seconds.
func (s *consoleSource) watchAgentDirs(ctx context.Context, poke func()) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return
	}
	defer w.Close()
	root := filepath.Dir(supervisor.HostDir(s.a.global.stateDir, s.fleet, "x"))
	watching := false
	addRoot := func() {
		if watching || w.Add(root) != nil {
			return
		}
		watching = true
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				_ = w.Add(filepath.Join(root, e.Name()))
			}
		}
	}
	addRoot()
	retry := time.NewTicker(5 * time.Second)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
			addRoot()
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			switch {
			case ev.Name == root:
				if ev.Op&(fsnotify.Remove|fsnotify.Rename) != 0 {
					watching = false // looked for again
				}
			case filepath.Dir(ev.Name) == root:
				// An instance's directory came or went.
				if ev.Op&fsnotify.Create != 0 && !strings.HasPrefix(filepath.Base(ev.Name), ".") {
					if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
						_ = w.Add(ev.Name)
					}
				}
				poke()
			case filepath.Base(ev.Name) == supervisor.StateFile && ev.Op&(fsnotify.Create|fsnotify.Write|fsnotify.Rename) != 0:
				poke()
			}
		case _, ok := <-w.Errors:
			if !ok {
				return
			}
		}
	}
}
