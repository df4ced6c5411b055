package reconciler_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// fakeResolver returns values by host env name, and fails for "BROKEN".
type fakeResolver map[string]string

func (f fakeResolver) Resolve(_ context.Context, src schema.CredentialSource) ([]byte, error) {
	if src.Env == "BROKEN" {
		return nil, errors.New("vault sealed")
	}
	return []byte(f[src.Env]), nil
}

func (f fakeResolver) Digest(fleet, instance, name string, value []byte) string {
	return "hmac-sha256:" + strings.Repeat("0", 28) + string(rune('a'+len(value)%26)) + "key"
}

func withCreds(f *schema.Fleet) *schema.Fleet {
	return with(f, "a", func(in *schema.Instance) {
		in.Credentials = map[string]schema.Credential{
			"ENV_TOKEN":  {Name: "ENV_TOKEN", From: schema.CredentialSource{Kind: schema.SourceEnv, Env: "E"}, Deliver: schema.CredentialDelivery{Kind: schema.DeliverEnv, Env: "ENV_TOKEN"}},
			"FILE_TOKEN": {Name: "FILE_TOKEN", From: schema.CredentialSource{Kind: schema.SourceEnv, Env: "F"}, Deliver: schema.CredentialDelivery{Kind: schema.DeliverFile}},
		}
	})
}

func resolvedPlan(t *testing.T, drv interface {
	Observe(context.Context, string, []string) (*drivers.Observed, error)
}, f *schema.Fleet, r fakeResolver, last reconciler.LastApplied) *reconciler.Plan {
	t.Helper()
	d := reconciler.ResolveCredentials(context.Background(), desired(t, f), r)
	obs, err := drv.Observe(context.Background(), d.Fleet, d.ImageRefs())
	if err != nil {
		t.Fatal(err)
	}
	p, err := reconciler.BuildPlan(d, obs, last, reconciler.PlanOptions{Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// An env-delivered value is in the agent's env and, as a keyed digest,
// in the spec; a changed value recreates with "credential NAME changed";
// a file-delivered value changes neither spec nor container.
func TestCredentialRotationPlans(t *testing.T) {
	reconciler.SecretsBase = func() string { return "/dev/shm/jackin-test" }
	drv := newDriver()
	f := withCreds(fleetOf("a", "b"))
	v1 := fakeResolver{"E": "env-secret-1", "F": "file-secret-1"}
	p := resolvedPlan(t, drv, f, v1, reconciler.LastApplied{})
	last := reconciler.LastApplied{}
	rec := &recorder{last: last}
	for _, r := range reconciler.Execute(context.Background(), p, drv, reconciler.ExecOptions{Recorder: rec}) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	a := p.Actions[0].Desired
	var ctr *drivers.ContainerSpec
	for _, r := range a.Resources {
		if r.Component == drivers.ComponentAgent {
			ctr = r.Container
		}
	}
	if ctr.Env["ENV_TOKEN"] != "env-secret-1" {
		t.Fatalf("agent env: %v", ctr.Env)
	}
	if _, ok := ctr.Env["FILE_TOKEN"]; ok {
		t.Fatal("a file credential is in the env")
	}
	var mounted bool
	for _, m := range ctr.Mounts {
		if m.Target == "/run/secrets" && m.ReadOnly && m.Source == "/dev/shm/jackin-test/demo/a/files/run-secrets" {
			mounted = true
		}
	}
	if !mounted {
		t.Fatalf("no read-only mount of the tmpfs directory at /run/secrets: %+v", ctr.Mounts)
	}
	spec, _ := json.Marshal(last["a"])
	if strings.Contains(string(spec), "secret-1") || !strings.Contains(string(spec), "hmac-sha256:") {
		t.Fatalf("last-applied spec: %s", spec)
	}

	// The file value changes: nothing to recreate.
	if p := resolvedPlan(t, drv, f, fakeResolver{"E": "env-secret-1", "F": "file-secret-2"}, last); p.HasChanges() {
		t.Fatalf("a file credential rotation recreates: %+v", p.Actions)
	}
	// The env value changes: recreate, the reason names it, no value.
	p = resolvedPlan(t, drv, f, fakeResolver{"E": "env-secret-22", "F": "file-secret-1"}, last)
	act := p.Actions[0]
	if act.Type != reconciler.ActionRecreate || strings.Join(act.Reasons, ";") != "credential ENV_TOKEN changed" {
		t.Fatalf("env rotation: %s %q", act.Type, act.Reasons)
	}
	if p.Actions[1].Type != reconciler.ActionNoop {
		t.Fatalf("b: %s", p.Actions[1].Type)
	}
}

// A source that cannot be read fails its instance's action before
// anything changes; the other instances are planned as usual.
func TestCredentialFailureFailsOneInstance(t *testing.T) {
	reconciler.SecretsBase = func() string { return "/dev/shm/jackin-test" }
	drv := newDriver()
	f := with(fleetOf("a", "b"), "a", func(in *schema.Instance) {
		in.Credentials = map[string]schema.Credential{"X_TOKEN": {Name: "X_TOKEN", From: schema.CredentialSource{Kind: schema.SourceEnv, Env: "BROKEN"}, Deliver: schema.CredentialDelivery{Kind: schema.DeliverFile}}}
	})
	p := resolvedPlan(t, drv, f, fakeResolver{}, reconciler.LastApplied{})
	results := reconciler.Execute(context.Background(), p, drv, reconciler.ExecOptions{})
	if len(results) != 2 || results[0].Outcome != reconciler.OutcomeFailed || !strings.Contains(results[0].Err.Error(), "credential X_TOKEN (from env BROKEN) cannot be read: vault sealed") {
		t.Fatalf("a: %+v", results[0])
	}
	if results[1].Outcome != reconciler.OutcomeSucceeded {
		t.Fatalf("b: %+v", results[1])
	}
	obs, _ := drv.Observe(context.Background(), testFleet, nil)
	for _, c := range obs.Containers {
		if c.Instance() == "a" {
			t.Fatal("a was created")
		}
	}
}

func TestDiffSpecsCredentials(t *testing.T) {
	old := reconciler.Spec{Credentials: []reconciler.SpecCredential{{Name: "A", Delivery: "env", Target: "A", Digest: "hmac-sha256:1"}, {Name: "B", Delivery: "file", Target: "/run/secrets/B"}}}
	cur := reconciler.Spec{Credentials: []reconciler.SpecCredential{{Name: "A", Delivery: "env", Target: "A", Digest: "hmac-sha256:2"}, {Name: "C", Delivery: "proxy", Target: "api.example.com"}}}
	got := strings.Join(reconciler.DiffSpecs(old, cur), "; ")
	if got != "credentials changed: +C (proxy) -B; credential A changed" {
		t.Fatalf("DiffSpecs: %q", got)
	}
}

func TestUnfitValuesFailWithoutQuoting(t *testing.T) {
	for _, c := range []struct {
		delivery string
		value    string
		bad      bool
	}{
		{schema.DeliverProxy, "tok-1", false},
		{schema.DeliverProxy, "tok\r\nX-Evil: 1", true},
		{schema.DeliverEnv, "a\x00b", true},
		{schema.DeliverEnv, "", true},
		{schema.DeliverFile, "-----BEGIN KEY-----\nabc\n", false},
	} {
		why := reconciler.UnfitValue(c.delivery, []byte(c.value))
		if (why != "") != c.bad {
			t.Errorf("%s %q: %q", c.delivery, c.value, why)
		}
		if c.value != "" && strings.Contains(why, c.value) {
			t.Errorf("the reason quotes the value: %q", why)
		}
	}
}

// Credentials removed from a live instance leave the host tmpfs at the
// next write, not at its delete.
func TestRemovedCredentialsLeaveTheTmpfs(t *testing.T) {
	base := "/dev/shm/jackin-test-removed"
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skip("no /dev/shm")
	}
	reconciler.SecretsBase = func() string { return base }
	t.Cleanup(func() { os.RemoveAll(base) })
	f := withCreds(fleetOf("a"))
	f.StateDir = t.TempDir()
	d := reconciler.ResolveCredentials(t.Context(), desired(t, f), fakeResolver{"E": "env-secret-1", "F": "file-secret-1"})
	if _, failed := reconciler.WriteCredentials(d); len(failed) > 0 {
		t.Fatal(failed)
	}
	dir := filepath.Join(base, "demo", "a")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("not written: %v", err)
	}
	g := fleetOf("a")
	g.StateDir = f.StateDir
	if _, failed := reconciler.WriteCredentials(desired(t, g)); len(failed) > 0 {
		t.Fatal(failed)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the values of removed credentials are still on the tmpfs: %v", err)
	}
}
