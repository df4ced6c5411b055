package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/jackin-dev/jackin/agentstate"
	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/supervisor"
	"github.com/jackin-dev/jackin/taskqueue"
)

// LiveAgents follows the state of a fleet's queue instances through their
// supervisors' state streams (one connection per agent, reopened when it
// ends), so the dispatcher hears an agent turn idle as it happens rather
// than at its next poll.
type LiveAgents struct {
	Drivers drivers.Set
	Log     logr.Logger
	// Retry is how long a follower waits before it looks for its agent
	// again after losing it (default 250ms).
	Retry time.Duration

	mu       sync.Mutex
	fleet    string
	follow   map[string]*agentFollower
	changed  chan struct{}
	initOnce sync.Once
}

// agentFollower is one instance's follower and what it last saw.
type agentFollower struct {
	instance string
	spec     schema.Instance
	ctx      context.Context // ends when the follower stops
	cancel   context.CancelFunc
	done     chan struct{}

	mu     sync.Mutex
	spare  *spareConn // opened ahead for the next prompt (nil: none)
	seen   bool       // looked at least once
	found  bool       // the agent container exists
	ctr    drivers.ObservedResource
	status supervisor.Status
}

func (l *LiveAgents) init() {
	l.initOnce.Do(func() {
		l.changed = make(chan struct{}, 1)
		l.follow = map[string]*agentFollower{}
	})
}

// Changed implements QueueAgents.
func (l *LiveAgents) Changed() <-chan struct{} {
	l.init()
	return l.changed
}

func (l *LiveAgents) signal() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// Close stops every follower.
func (l *LiveAgents) Close() {
	l.init()
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, f := range l.follow {
		f.cancel()
		<-f.done
		delete(l.follow, name)
	}
}

// Agents implements QueueAgents: it starts a follower for each queue
// instance that has none (and stops those no longer of the queue) and
// returns what they saw.
func (l *LiveAgents) Agents(ctx context.Context, fleet *schema.Fleet) ([]taskqueue.Agent, []string) {
	l.init()
	l.mu.Lock()
	defer l.mu.Unlock()
	want := map[string]schema.Instance{}
	if fleet.Queue != nil {
		for _, n := range fleet.Queue.Instances {
			if inst, ok := fleet.Instances[n]; ok {
				want[n] = inst
			}
		}
	}
	for name, f := range l.follow {
		if inst, ok := want[name]; !ok || l.fleet != fleet.Name || drivers.PlacementKey(inst.Backend, inst.Engine) != drivers.PlacementKey(f.spec.Backend, f.spec.Engine) {
			f.cancel()
			<-f.done
			delete(l.follow, name)
		}
	}
	l.fleet = fleet.Name
	var unseen []string
	out := make([]taskqueue.Agent, 0, len(want))
	for name, inst := range want {
		f, ok := l.follow[name]
		if !ok {
			fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
			f = &agentFollower{instance: name, spec: inst, ctx: fctx, cancel: cancel, done: make(chan struct{})}
			l.follow[name] = f
			go l.run(fctx, fleet.Name, f)
		}
		f.mu.Lock()
		if !f.seen {
			f.mu.Unlock()
			unseen = append(unseen, name)
			continue
		}
		a := taskqueue.Agent{Instance: name, Present: f.found, Container: f.ctr.ID, Boot: f.status.Boot,
			State: f.status.State, StateSince: f.status.Since}
		if f.found && f.ctr.State != drivers.StateRunning {
			a.State = string(agentstate.StateExited)
		}
		f.mu.Unlock()
		out = append(out, a)
	}
	sort.Strings(unseen)
	return out, unseen
}

// run follows one agent until ctx ends: find its container, open the
// supervisor's state stream, record every status; when the stream ends
// (the agent exited, the container went), look again.
func (l *LiveAgents) run(ctx context.Context, fleet string, f *agentFollower) {
	defer close(f.done)
	retry := l.Retry
	if retry <= 0 {
		retry = 250 * time.Millisecond
	}
	defer f.dropSpare()
	for ctx.Err() == nil {
		err := l.followOnce(ctx, fleet, f)
		if err != nil && ctx.Err() == nil {
			l.Log.V(1).Info("following an agent's state", "fleet", fleet, "instance", f.instance, "reason", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}

func (l *LiveAgents) followOnce(ctx context.Context, fleet string, f *agentFollower) error {
	drv, err := l.Drivers.For(drivers.PlacementKey(f.spec.Backend, f.spec.Engine))
	if err != nil {
		f.see(false, drivers.ObservedResource{}, nil)
		l.signal()
		return err
	}
	loc, ok := drv.(drivers.AgentLocator)
	ex, ok2 := drv.(drivers.Execer)
	if !ok || !ok2 {
		f.see(false, drivers.ObservedResource{}, nil)
		l.signal()
		return fmt.Errorf("backend %s cannot reach agents' supervisors", drv.Name())
	}
	found, err := loc.FindAgents(ctx, fleet, f.instance)
	if err != nil {
		f.markUnknown()
		l.signal()
		return err
	}
	if len(found) != 1 {
		f.see(false, drivers.ObservedResource{}, nil)
		l.signal()
		return nil
	}
	ctr := found[0]
	if ctr.State != drivers.StateRunning {
		f.see(true, ctr, nil)
		l.signal()
		return nil
	}
	conn, err := supervisor.Connect(ctx, ex, ctr.ID)
	if err != nil {
		f.see(true, ctr, &supervisor.Status{State: string(agentstate.StateUnknown)})
		l.signal()
		return err
	}
	defer conn.Close()
	go l.openSpare(ctx, ex, f, ctr.ID)
	err = conn.Watch(ctx, func(st supervisor.Status) bool {
		st = supervisor.Clean(st)
		f.see(true, ctr, &st)
		l.signal()
		return true
	})
	// The stream ended: until the next look, nothing is known of the
	// agent's turn (its container ID and boot stay, so a task on it is
	// not taken for lost before that look).
	f.dropSpare()
	f.markUnknown()
	l.signal()
	return err
}

// spareConn is a supervisor connection in standby: the exec into the
// container is paid while the agent works, so a prompt typed when it
// turns idle costs one write and one answer.
type spareConn struct {
	conn      *supervisor.Conn
	container string
}

// takeSpare returns the spare for container (nil: none) and forgets it.
func (f *agentFollower) takeSpare(container string) *spareConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	sp := f.spare
	f.spare = nil
	if sp != nil && sp.container != container {
		_ = sp.conn.Close()
		return nil
	}
	return sp
}

// dropSpare closes the spare (the agent's container went away, or the
// follower stops).
func (f *agentFollower) dropSpare() {
	if sp := f.takeSpare(""); sp != nil {
		_ = sp.conn.Close()
	}
}

// see records a look: found says the container exists; st (nil: none)
// is the supervisor's status.
func (f *agentFollower) see(found bool, ctr drivers.ObservedResource, st *supervisor.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen, f.found, f.ctr = true, found, ctr
	switch {
	case st != nil:
		f.status = *st
	case !found:
		f.status = supervisor.Status{}
	}
}

// markUnknown keeps the container and boot but forgets the turn.
func (f *agentFollower) markUnknown() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status.State != string(agentstate.StateExited) {
		f.status.State = string(agentstate.StateUnknown)
	}
}

// openSpare opens a standby connection to the agent in container for its
// next prompt, unless one is open.
func (l *LiveAgents) openSpare(ctx context.Context, ex drivers.Execer, f *agentFollower, container string) {
	f.mu.Lock()
	have := f.spare != nil && f.spare.container == container
	f.mu.Unlock()
	if have {
		return
	}
	conn, err := supervisor.Connect(ctx, ex, container)
	if err != nil {
		l.Log.V(1).Info("open a standby connection", "instance", f.instance, "reason", err.Error())
		return
	}
	if err := conn.Standby(); err != nil {
		_ = conn.Close()
		return
	}
	f.mu.Lock()
	old := f.spare
	f.spare = &spareConn{conn: conn, container: container}
	f.mu.Unlock()
	if old != nil {
		_ = old.conn.Close()
	}
	if ctx.Err() != nil { // the follower stopped meanwhile
		f.dropSpare()
	}
}

// Prompt implements QueueAgents: through the agent's standby connection
// when one is open (then a new one is opened for the next prompt, while
// the agent works on this one), else a connection of its own (the
// follower's is a state stream); the supervisor types the prompt when the
// agent waits for one.
func (l *LiveAgents) Prompt(ctx context.Context, fleet *schema.Fleet, instance, container, text string) error {
	inst, ok := fleet.Instances[instance]
	if !ok {
		return fmt.Errorf("the fleet has no instance %q", instance)
	}
	drv, err := l.Drivers.For(drivers.PlacementKey(inst.Backend, inst.Engine))
	if err != nil {
		return err
	}
	ex, ok := drv.(drivers.Execer)
	if !ok {
		return fmt.Errorf("backend %s cannot run commands in a container", drv.Name())
	}
	l.init()
	l.mu.Lock()
	f := l.follow[instance]
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if f != nil {
		if sp := f.takeSpare(container); sp != nil {
			stop := context.AfterFunc(ctx, func() { sp.conn.Close() })
			_, err := sp.conn.PromptLater(text)
			stop()
			_ = sp.conn.Close()
			if !errors.Is(err, supervisor.ErrNoStandby) {
				if err == nil {
					go l.openSpare(f.ctx, ex, f, container)
				}
				return err
			}
		}
	}
	conn, err := supervisor.Connect(ctx, ex, container)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := conn.Prompt(text); err != nil {
		return err
	}
	return nil
}
