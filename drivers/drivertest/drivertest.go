// Package drivertest is the conformance suite of the backend contract: one
// set of behaviours (create, observe, drift, name conflicts, events) that
// every driver must show. It runs against drivers/fake and drivers/docker,
// so the fake unit tests rely on is proven to behave like the engine, and
// every later driver (a machine, a pod, a remote engine) runs it too.
// It is test code, imported only by tests.
package drivertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/drivers"
)

// Backend is a driver under test and the out-of-band moves the suite makes
// on its backend, as an operator or a crash would.
type Backend struct {
	Driver drivers.Driver
	// Image is a reference present on the backend whose default command
	// keeps running until stopped.
	Image string
	// Kill ends a container by name out of band (as docker kill does).
	Kill func(t *testing.T, name string)
	// RemoveContainer removes a container by name out of band.
	RemoveContainer func(t *testing.T, name string)
	// CreateForeign makes an object of kind with the given name and no
	// jackin labels, as a user would; the suite removes it with
	// RemoveForeign.
	CreateForeign func(t *testing.T, kind drivers.Kind, name string)
	RemoveForeign func(t *testing.T, kind drivers.Kind, name string)
}

// Run runs the conformance suite. newBackend is called once per subtest;
// fleet names are unique, and every object the suite creates is removed
// through the driver when the subtest ends.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	t.Run("CreateObserveStartStop", func(t *testing.T) { createObserve(t, newBackend(t)) })
	t.Run("Drift", func(t *testing.T) { drift(t, newBackend(t)) })
	t.Run("NameConflicts", func(t *testing.T) { conflicts(t, newBackend(t)) })
	t.Run("Events", func(t *testing.T) { eventsOf(t, newBackend(t)) })
	t.Run("RemoveIsIdempotent", func(t *testing.T) { removeTwice(t, newBackend(t)) })
}

// fleetName is unique to one subtest.
func fleetName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "conf" + hex.EncodeToString(b)
}

func labels(fleet, instance, component string) map[string]string {
	return map[string]string{
		drivers.LabelManagedBy: drivers.ManagedByValue,
		drivers.LabelFleet:     fleet,
		drivers.LabelInstance:  instance,
		drivers.LabelComponent: component,
		drivers.LabelSpecHash:  "conformance",
	}
}

// instance creates a network, a volume and a container (attached to the
// network, mounting the volume) for instance web of fleet, and registers
// their removal.
type created struct {
	network, volume, container string            // names
	ids                        map[string]string // kind/name -> ID
}

func (c created) id(kind drivers.Kind, name string) string { return c.ids[string(kind)+"/"+name] }

func createInstance(t *testing.T, b Backend, fleet string) created {
	t.Helper()
	ctx := t.Context()
	base := "jk-" + fleet + "-web"
	c := created{network: base, volume: base + "-data", container: base, ids: map[string]string{}}
	res := []drivers.Resource{
		{Kind: drivers.KindNetwork, Name: c.network, Component: drivers.ComponentNetwork, Labels: labels(fleet, "web", drivers.ComponentNetwork), Network: &drivers.NetworkSpec{}},
		{Kind: drivers.KindVolume, Name: c.volume, Component: drivers.ComponentEphemeral, Labels: labels(fleet, "web", drivers.ComponentEphemeral), Volume: &drivers.VolumeSpec{}},
		{Kind: drivers.KindContainer, Name: c.container, Component: drivers.ComponentAgent, Labels: labels(fleet, "web", drivers.ComponentAgent), Container: &drivers.ContainerSpec{
			Image:    drivers.ImageSpec{Ref: b.Image},
			Networks: []string{c.network},
			Mounts:   []drivers.MountSpec{{Type: "volume", Source: c.volume, Target: "/data"}},
			Hostname: "web",
			Running:  true,
		}},
	}
	t.Cleanup(func() {
		ctx := context.WithoutCancel(ctx)
		for i := len(res) - 1; i >= 0; i-- {
			if id := c.id(res[i].Kind, res[i].Name); id != "" {
				_ = b.Driver.Remove(ctx, res[i].Kind, id)
			}
		}
	})
	for _, r := range res {
		id, err := b.Driver.Create(ctx, r)
		if err != nil {
			t.Fatalf("create %s %s: %v", r.Kind, r.Name, err)
		}
		if id == "" {
			t.Fatalf("create %s %s returned no ID", r.Kind, r.Name)
		}
		c.ids[string(r.Kind)+"/"+r.Name] = id
	}
	return c
}

func observe(t *testing.T, b Backend, fleet string) *drivers.Observed {
	t.Helper()
	obs, err := b.Driver.Observe(t.Context(), fleet, []string{b.Image})
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	return obs
}

func find(list []drivers.ObservedResource, name string) *drivers.ObservedResource {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

// waitState observes until the container is in one of states.
func waitState(t *testing.T, b Backend, fleet, name string, states ...string) drivers.ObservedResource {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		obs := observe(t, b, fleet)
		if c := find(obs.Containers, name); c != nil && slices.Contains(states, c.State) {
			return *c
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s never reached %v: %+v", name, states, obs.Containers)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func createObserve(t *testing.T, b Backend) {
	fleet, other := fleetName(), fleetName()
	c := createInstance(t, b, fleet)
	createInstance(t, b, other) // another fleet: never observed with this one
	ctx := t.Context()

	obs := observe(t, b, fleet)
	if len(obs.Networks) != 1 || len(obs.Volumes) != 1 || len(obs.Containers) != 1 {
		t.Fatalf("observe lists %d networks, %d volumes, %d containers; want one of each (another fleet's are not listed)", len(obs.Networks), len(obs.Volumes), len(obs.Containers))
	}
	for _, o := range []drivers.ObservedResource{obs.Networks[0], obs.Volumes[0], obs.Containers[0]} {
		if o.Labels[drivers.LabelFleet] != fleet || o.Labels[drivers.LabelManagedBy] != drivers.ManagedByValue || o.Instance() != "web" {
			t.Errorf("%s %s: labels %v", o.Kind, o.Name, o.Labels)
		}
		if o.ID != c.id(o.Kind, o.Name) {
			t.Errorf("%s %s: observed ID %q, created %q", o.Kind, o.Name, o.ID, c.id(o.Kind, o.Name))
		}
	}
	ctr := obs.Containers[0]
	if ctr.Name != c.container || ctr.State != drivers.StateCreated {
		t.Errorf("a created container: name %q state %q, want %q created", ctr.Name, ctr.State, c.container)
	}
	if !slices.Contains(ctr.Networks, c.network) {
		t.Errorf("container networks %v, want %s", ctr.Networks, c.network)
	}
	if _, ok := obs.Images[b.Image]; !ok {
		t.Errorf("observe does not report the image %s: %v", b.Image, obs.Images)
	}

	if err := b.Driver.Start(ctx, c.id(drivers.KindContainer, c.container)); err != nil {
		t.Fatalf("start: %v", err)
	}
	waitState(t, b, fleet, c.container, drivers.StateRunning)
	if err := b.Driver.Stop(ctx, c.id(drivers.KindContainer, c.container)); err != nil {
		t.Fatalf("stop: %v", err)
	}
	waitState(t, b, fleet, c.container, drivers.StateExited)
}

func drift(t *testing.T, b Backend) {
	fleet := fleetName()
	c := createInstance(t, b, fleet)
	if err := b.Driver.Start(t.Context(), c.id(drivers.KindContainer, c.container)); err != nil {
		t.Fatalf("start: %v", err)
	}
	waitState(t, b, fleet, c.container, drivers.StateRunning)
	b.Kill(t, c.container)
	waitState(t, b, fleet, c.container, drivers.StateExited, drivers.StateDead)
	b.RemoveContainer(t, c.container)
	if obs := observe(t, b, fleet); find(obs.Containers, c.container) != nil {
		t.Fatalf("a container removed out of band is still observed: %+v", obs.Containers)
	}
}

func conflicts(t *testing.T, b Backend) {
	fleet := fleetName()
	for _, kind := range []drivers.Kind{drivers.KindNetwork, drivers.KindContainer} {
		name := "jk-" + fleet + "-taken-" + string(kind)
		b.CreateForeign(t, kind, name)
		t.Cleanup(func() { b.RemoveForeign(t, kind, name) })
		r := drivers.Resource{Kind: kind, Name: name, Component: drivers.ComponentAgent, Labels: labels(fleet, "taken", drivers.ComponentAgent)}
		switch kind {
		case drivers.KindNetwork:
			r.Component, r.Network = drivers.ComponentNetwork, &drivers.NetworkSpec{}
		case drivers.KindContainer:
			r.Container = &drivers.ContainerSpec{Image: drivers.ImageSpec{Ref: b.Image}, NoNetwork: true}
		}
		id, err := b.Driver.Create(t.Context(), r)
		var nc *drivers.ErrNameConflict
		if !errors.As(err, &nc) {
			if id != "" {
				_ = b.Driver.Remove(context.WithoutCancel(t.Context()), kind, id)
			}
			t.Fatalf("create over a foreign %s: %v, want *drivers.ErrNameConflict", kind, err)
		}
		if nc.Name != name || nc.Kind != kind {
			t.Errorf("conflict names %s %s, want %s %s", nc.Kind, nc.Name, kind, name)
		}
		if obs := observe(t, b, fleet); len(obs.Containers)+len(obs.Networks) != 0 {
			t.Fatalf("the foreign object is observed as the fleet's: %+v %+v", obs.Containers, obs.Networks)
		}
	}
}

func eventsOf(t *testing.T, b Backend) {
	src, ok := b.Driver.(drivers.EventSource)
	if !ok {
		t.Skip("this backend streams no events: watch resyncs it periodically")
	}
	fleet, other := fleetName(), fleetName()
	c := createInstance(t, b, fleet)
	o := createInstance(t, b, other)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	evs, errs, err := src.Events(ctx, fleet)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	for _, cr := range []created{c, o} {
		if err := b.Driver.Start(t.Context(), cr.id(drivers.KindContainer, cr.container)); err != nil {
			t.Fatalf("start: %v", err)
		}
	}
	waitState(t, b, fleet, c.container, drivers.StateRunning)
	waitState(t, b, other, o.container, drivers.StateRunning)
	b.Kill(t, o.container) // another fleet's: never delivered
	b.Kill(t, c.container)
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev, open := <-evs:
			if !open {
				t.Fatalf("the event stream ended: %v", <-errs)
			}
			if ev.Name == o.container || ev.ID == o.id(drivers.KindContainer, o.container) {
				t.Fatalf("an event of another fleet was delivered: %+v", ev)
			}
			if ev.Kind == drivers.KindContainer && ev.Action == drivers.EventDie && ev.ID == c.id(drivers.KindContainer, c.container) {
				if ev.Instance != "web" || ev.Component != drivers.ComponentAgent {
					t.Errorf("die event without its instance and component: %+v", ev)
				}
				return
			}
		case <-deadline:
			t.Fatal("no die event within 30s of a kill")
		}
	}
}

func removeTwice(t *testing.T, b Backend) {
	fleet := fleetName()
	c := createInstance(t, b, fleet)
	ctx := t.Context()
	id := c.id(drivers.KindContainer, c.container)
	for i := 0; i < 2; i++ {
		if err := b.Driver.Remove(ctx, drivers.KindContainer, id); err != nil {
			t.Fatalf("remove #%d: %v", i+1, err)
		}
	}
	if obs := observe(t, b, fleet); find(obs.Containers, c.container) != nil {
		t.Fatal("a removed container is still observed")
	}
}
