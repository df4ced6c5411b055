package pipeline_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/fake"
	"github.com/jackin-dev/jackin/pipeline"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
)

// The pipeline's tests run on the in-memory backend: no engine needed.

const (
	image      = "example.com/agent:v1"
	sidecarRef = "jackin-sidecar:pipeline-test"
)

func init() {
	reconciler.SidecarImage = func(string) (drivers.ImageSpec, error) { return drivers.ImageSpec{Ref: sidecarRef}, nil }
}

// logFake is the fake backend with container logs: each egress proxy has
// written one decision line.
type logFake struct {
	*fake.Driver
	mu    sync.Mutex
	lines map[string][]drivers.LogLine
}

func (l *logFake) ContainerLogs(_ context.Context, id string, since time.Time) ([]drivers.LogLine, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []drivers.LogLine
	for _, ln := range l.lines[id] {
		if ln.Time.After(since) {
			out = append(out, ln)
		}
	}
	return out, nil
}

func (l *logFake) decide(id, host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	at := time.Now().UTC()
	l.lines[id] = append(l.lines[id], drivers.LogLine{Time: at,
		Text: `{"jackinEgress":1,"time":"` + at.Format(time.RFC3339Nano) + `","instance":"web","host":"` + host + `","port":443,"method":"CONNECT","allowed":false,"rule":"no rule","bytesUp":0,"bytesDown":0,"durationMs":1}`})
}

func newBackend() *logFake {
	d := fake.New()
	d.AddImage(image, "sha256:1111111111111111111111111111111111111111111111111111111111111111")
	d.AddImage(sidecarRef, "sha256:5555555555555555555555555555555555555555555555555555555555555555")
	return &logFake{Driver: d, lines: map[string][]drivers.LogLine{}}
}

func fleetWith(stateDir string, mod func(*schema.Instance)) *schema.Fleet {
	in := schema.Instance{Name: "web", Backend: schema.BackendDocker, Role: schema.Role{Image: image}, Agent: schema.AgentClaude,
		State: schema.StateRunning, Docker: schema.DockerNone,
		Network: schema.Network{Egress: schema.EgressAllowlist, Allow: []string{"example.com"}}}
	if mod != nil {
		mod(&in)
	}
	return &schema.Fleet{APIVersion: schema.APIVersion, Kind: schema.KindFleet, Name: "demo", StateDir: stateDir, Instances: map[string]schema.Instance{"web": in}}
}

func newEnv(t *testing.T, drv drivers.Driver) pipeline.Env {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return pipeline.Env{StateDir: dir, Store: st, Drivers: drivers.Set{"docker": drv}, Log: logr.Discard()}
}

func apply(t *testing.T, env pipeline.Env, f *schema.Fleet) *pipeline.Applied {
	t.Helper()
	res, err := env.Plan(t.Context(), f, reconciler.PlanOptions{Prune: true}, true)
	if err != nil {
		t.Fatal(err)
	}
	done, err := env.Apply(t.Context(), res, pipeline.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if done.Summary.Failed > 0 {
		t.Fatalf("apply failed: %+v", done.Results)
	}
	return done
}

func egressID(t *testing.T, drv *logFake) string {
	t.Helper()
	o, ok := drv.Object(drivers.KindContainer, "jk-demo-web-egress")
	if !ok {
		t.Fatal("no egress proxy")
	}
	return o.ID
}

func decisions(t *testing.T, env pipeline.Env) []store.EgressDecision {
	t.Helper()
	ds, err := env.Store.EgressDecisions(context.Background(), store.EgressQuery{Fleet: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// watchStore is the store as the watch loop needs it.
type watchStore struct{ env pipeline.Env }

func (s watchStore) LastApplied(ctx context.Context, fleet string) (reconciler.LastApplied, error) {
	return pipeline.LastApplied(ctx, s.env.Store, fleet)
}
func (s watchStore) BeginPass(ctx context.Context, fleet string, _ []reconciler.Trigger) (reconciler.PassRecorder, error) {
	id, err := s.env.Store.BeginRun(ctx, fleet, "watch")
	if err != nil {
		return nil, err
	}
	return pipeline.NewPassRecorder(s.env.Store, fleet, id, "test", s.env.Log), nil
}
func (watchStore) RecordEvent(context.Context, string, reconciler.WatchEvent) error { return nil }
func (watchStore) SetCrashState(context.Context, string, string, *reconciler.CrashState) error {
	return nil
}

// TestWatchKeepsTheEgressLogAcrossAProxyRecreate: the proxy's last
// decisions are in its log only; watch recreating the proxy (a manifest
// edit) used to remove it before anything pulled them. Watch now runs the
// same step as apply before it executes.
func TestWatchKeepsTheEgressLogAcrossAProxyRecreate(t *testing.T) {
	drv := newBackend()
	env := newEnv(t, drv)
	f := fleetWith(env.StateDir, nil)
	apply(t, env, f)
	old := egressID(t, drv)
	drv.decide(old, "denied.example.org")

	var mu sync.Mutex
	current := f
	files := make(chan reconciler.Trigger)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- reconciler.Watch(ctx, reconciler.WatchConfig{
			Fleet: f,
			Load: func(context.Context) (*schema.Fleet, error) {
				mu.Lock()
				defer mu.Unlock()
				return current, nil
			},
			Files: files, Driver: drv, Events: map[string]drivers.EventSource{drivers.DefaultBackend: drv}, Store: watchStore{env},
			Lock:          func(context.Context) (func(), error) { return func() {}, nil },
			StateDir:      env.StateDir,
			BeforeExecute: env.BeforeHeal,
			Resync:        time.Hour,
		})
	}()
	defer func() {
		cancel()
		<-done
	}()
	// An env change recreates the agent and its proxy.
	mu.Lock()
	current = fleetWith(env.StateDir, func(in *schema.Instance) { in.Env = map[string]string{"K": "v"} })
	mu.Unlock()
	files <- reconciler.Trigger{Source: reconciler.TriggerFile, Detail: "fleet.cue", At: time.Now()}

	deadline := time.Now().Add(5 * time.Second)
	for {
		if o, ok := drv.Object(drivers.KindContainer, "jk-demo-web-egress"); ok && o.ID != old {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("watch did not recreate the proxy")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ds := decisions(t, env)
	if len(ds) != 1 || ds[0].Host != "denied.example.org" || ds[0].Allowed {
		t.Fatalf("the removed proxy's decision is not in the store: %+v", ds)
	}
}

// TestApplyPullsTheLogOfAProxyItRemoves is the same step, through apply.
func TestApplyPullsTheLogOfAProxyItRemoves(t *testing.T) {
	drv := newBackend()
	env := newEnv(t, drv)
	apply(t, env, fleetWith(env.StateDir, nil))
	drv.decide(egressID(t, drv), "denied.example.org")
	apply(t, env, fleetWith(env.StateDir, func(in *schema.Instance) { in.Env = map[string]string{"K": "v"} }))
	if ds := decisions(t, env); len(ds) != 1 {
		t.Fatalf("want the removed proxy's one decision, got %+v", ds)
	}
}

// TestARecreatesNewHostPortIsCheckedAtPlanTime: a recreate that would
// publish a host port another process holds is refused before the old
// container is removed; the ports its last spec published are its own.
func TestARecreatesNewHostPortIsCheckedAtPlanTime(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freePort := free.Addr().(*net.TCPAddr).Port
	free.Close()

	drv := newBackend()
	env := newEnv(t, drv)
	port := func(p int) func(*schema.Instance) {
		return func(in *schema.Instance) {
			in.Network = schema.Network{Egress: schema.EgressOpen, Ports: []schema.Port{{Container: 80, Host: p, Address: "127.0.0.1", Protocol: "tcp"}}}
		}
	}
	apply(t, env, fleetWith(env.StateDir, port(freePort)))

	res, err := env.Plan(t.Context(), fleetWith(env.StateDir, port(busy)), reconciler.PlanOptions{Prune: true}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Plan.Actions) != 1 || res.Plan.Actions[0].Type != reconciler.ActionRecreate {
		t.Fatalf("want a recreate, got %+v", res.Plan.Actions)
	}
	conflicts := res.HostPortsInUse()
	if len(conflicts) != 1 || !strings.Contains(conflicts[0].Message, "already in use") || res.MayBeFreed(conflicts[0]) {
		t.Fatalf("want the busy new port refused at plan time, got %+v", conflicts)
	}

	// The port the instance already publishes is its own: no conflict.
	held, err := net.Listen("tcp", "127.0.0.1:0") // stands in for the old container
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	heldPort := held.Addr().(*net.TCPAddr).Port
	env2 := newEnv(t, newBackend())
	apply(t, env2, fleetWith(env2.StateDir, port(heldPort)))
	res, err = env2.Plan(t.Context(), fleetWith(env2.StateDir, func(in *schema.Instance) {
		port(heldPort)(in)
		in.Env = map[string]string{"K": "v"}
	}), reconciler.PlanOptions{Prune: true}, true)
	if err != nil {
		t.Fatal(err)
	}
	if c := res.HostPortsInUse(); len(c) != 0 {
		t.Fatalf("the recreate's own port was reported busy: %+v", c)
	}
}
