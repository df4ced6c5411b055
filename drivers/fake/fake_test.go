package fake

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/drivers"
)

func labels(fleet, instance, component string) map[string]string {
	return map[string]string{
		drivers.LabelManagedBy: drivers.ManagedByValue, drivers.LabelFleet: fleet,
		drivers.LabelInstance: instance, drivers.LabelComponent: component,
	}
}

func TestEngineRules(t *testing.T) {
	ctx := context.Background()
	d := New()
	net := drivers.Resource{Kind: drivers.KindNetwork, Name: "jk-f-a", Labels: labels("f", "a", "network"), Network: &drivers.NetworkSpec{}}
	ctr := drivers.Resource{Kind: drivers.KindContainer, Name: "jk-f-a", Labels: labels("f", "a", "agent"),
		Container: &drivers.ContainerSpec{Image: drivers.ImageSpec{Ref: "img:1"}, Networks: []string{"jk-f-a"}}}

	if _, err := d.Create(ctx, ctr); err == nil || !strings.Contains(err.Error(), "no such image") {
		t.Fatalf("create without image: %v", err)
	}
	if _, err := d.EnsureImage(ctx, ctr.Container.Image, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Create(ctx, ctr); err == nil || !strings.Contains(err.Error(), "network jk-f-a not found") {
		t.Fatalf("create without network: %v", err)
	}
	netID, err := d.Create(ctx, net)
	if err != nil {
		t.Fatal(err)
	}
	id, err := d.Create(ctx, ctr)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Create(ctx, ctr); err == nil {
		t.Fatal("duplicate name accepted")
	}
	if err := d.Remove(ctx, drivers.KindNetwork, netID); err == nil {
		t.Fatal("removed a network with an attached container")
	}
	obs, err := d.Observe(ctx, "f", []string{"img:1", "img:2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(obs.Networks) != 1 || len(obs.Containers) != 1 || obs.Containers[0].State != drivers.StateRunning || len(obs.Images) != 1 {
		t.Fatalf("observed %+v", obs)
	}
	if other, _ := d.Observe(ctx, "g", nil); len(other.Containers) != 0 {
		t.Fatal("observed another fleet's objects")
	}
	if err := d.Remove(ctx, drivers.KindContainer, id); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, drivers.KindContainer, id); err != nil {
		t.Fatalf("removing a gone object: %v", err)
	}
	if err := d.Remove(ctx, drivers.KindNetwork, netID); err != nil {
		t.Fatal(err)
	}
	if got := d.MutatingCalls(); got != 11 {
		t.Errorf("mutating calls %d (%v)", got, d.Calls())
	}
}

func TestNameConflictAndFailures(t *testing.T) {
	ctx := context.Background()
	d := New()
	d.Seed(drivers.ObservedResource{Kind: drivers.KindContainer, Name: "jk-f-a"})
	d.AddImage("img:1", "sha256:1")
	_, _ = d.Create(ctx, drivers.Resource{Kind: drivers.KindNetwork, Name: "jk-f-a", Labels: labels("f", "a", "network")})
	_, err := d.Create(ctx, drivers.Resource{Kind: drivers.KindContainer, Name: "jk-f-a", Labels: labels("f", "a", "agent"),
		Container: &drivers.ContainerSpec{Image: drivers.ImageSpec{Ref: "img:1"}, Networks: []string{"jk-f-a"}}})
	var conflict *drivers.ErrNameConflict
	if !errors.As(err, &conflict) || conflict.Owner != "unlabelled" {
		t.Fatalf("want a name conflict, got %v", err)
	}
	boom := errors.New("boom")
	d.FailOn(MethodCreate, "network jk-f-b", boom)
	if _, err := d.Create(ctx, drivers.Resource{Kind: drivers.KindNetwork, Name: "jk-f-b"}); !errors.Is(err, boom) {
		t.Fatalf("injected failure: %v", err)
	}
	if _, err := d.Create(ctx, drivers.Resource{Kind: drivers.KindVolume, Name: "jk-f-b"}); err != nil {
		t.Fatalf("failure matched another kind: %v", err)
	}
	d.FailOn(MethodCreate, "network jk-f-b", nil)
	if _, err := d.Create(ctx, drivers.Resource{Kind: drivers.KindNetwork, Name: "jk-f-b"}); err != nil {
		t.Fatalf("cleared failure: %v", err)
	}
}

func TestDrift(t *testing.T) {
	d := New()
	d.Seed(drivers.ObservedResource{Kind: drivers.KindNetwork, Name: "n"})
	d.Seed(drivers.ObservedResource{Kind: drivers.KindContainer, Name: "c", State: drivers.StateRunning, Networks: []string{"n"}})
	if err := d.Kill("c"); err != nil {
		t.Fatal(err)
	}
	if c, _ := d.Object(drivers.KindContainer, "c"); c.State != drivers.StateExited || !strings.Contains(c.Status, "137") {
		t.Fatalf("after kill %+v", c)
	}
	if err := d.RemoveNetwork("n"); err != nil {
		t.Fatal(err)
	}
	if c, _ := d.Object(drivers.KindContainer, "c"); len(c.Networks) != 0 {
		t.Fatalf("still attached to a removed network: %v", c.Networks)
	}
	if d.MutatingCalls() != 0 {
		t.Fatal("drift helpers counted as driver calls")
	}
}
