package main

import (
	"context"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/telemetry"
)

func TestResourceText(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 1023: "1023B", 1024: "1Ki", 1536: "1.5Ki", 310 << 20: "310Mi",
		512 << 20: "512Mi", 3 << 29: "1.5Gi", 10 << 30: "10Gi", 6885376: "6.6Mi"} {
		if got := bytesText(n); got != want {
			t.Errorf("bytesText(%d) = %q, want %q", n, got, want)
		}
	}
	for p, want := range map[float64]string{0: "0%", 0.4: "0.4%", 9.96: "10.0%", 12.3: "12%", 180: "180%"} {
		if got := percentText(p); got != want {
			t.Errorf("percentText(%v) = %q, want %q", p, got, want)
		}
	}
	disk := int64(12 << 20)
	r := &telemetry.Resources{CPUPercent: 12, CPUWindow: time.Second, MemoryBytes: 470 << 20, MemoryLimitBytes: 512 << 20, NearMemoryLimit: true, DiskBytes: &disk}
	on := resourceFlags{}
	cases := []struct {
		r    *telemetry.Resources
		f    resourceFlags
		wide bool
		want []string
	}{
		{r: r, want: []string{"12%", "470Mi/512Mi!"}},
		{r: r, wide: true, want: []string{"12%", "470Mi/512Mi!", "12Mi"}},
		{r: &telemetry.Resources{MemoryBytes: 1 << 20}, wide: true, want: []string{"-", "1Mi", "-"}}, // one reading: no CPU
		{r: nil, want: []string{"-", "-"}},
		{r: r, f: resourceFlags{off: true}, want: nil},
	}
	for _, c := range cases {
		if got := resourceCells(c.r, c.f, c.wide); !reflect.DeepEqual(got, c.want) {
			t.Errorf("resourceCells(%+v, wide %v) = %q, want %q", c.r, c.wide, got, c.want)
		}
	}
	if h := resourceHeaders(on, true); !reflect.DeepEqual(h, []string{"CPU", "MEM", "DISK"}) {
		t.Errorf("wide headers %v", h)
	}
	if h := resourceHeaders(resourceFlags{off: true}, true); h != nil {
		t.Errorf("headers with telemetry off: %v", h)
	}
	if got := withResources([]string{"A"}, []string{"CPU"}, "B", "C"); !reflect.DeepEqual(got, []string{"A", "CPU", "B", "C"}) {
		t.Errorf("withResources = %v", got)
	}
}

// fakeSampler answers the second pass: CPU counters one second's worth
// of half a core on.
type fakeSampler struct {
	calls []drivers.SampleOptions
}

func (f *fakeSampler) SampleResources(_ context.Context, _ string, opts ...drivers.SampleOption) (*drivers.ResourceSamples, error) {
	o := drivers.ApplySampleOptions(opts...)
	f.calls = append(f.calls, o)
	out := &drivers.ResourceSamples{At: time.Now(), CPUOnly: o.CPUOnly}
	for _, c := range o.Containers.Containers {
		out.Containers = append(out.Containers, telemetry.ContainerSample{ID: c.ID, Name: c.Name, Instance: c.Instance, Component: c.Component,
			CPUNanos: c.CPUNanos + uint64(time.Since(c.At).Nanoseconds()/2), At: time.Now(), Source: c.Source})
	}
	return out, nil
}

func TestSecondPass(t *testing.T) {
	disk := int64(4096)
	now := time.Now()
	first := &drivers.ResourceSamples{At: now, Source: "cgroup+engine-stats", VolumeBytes: map[string]int64{"a": 1}, DiskSource: "layer-files", Containers: []telemetry.ContainerSample{
		{ID: "1", Name: "jk-f-a", Instance: "a", Component: "agent", CPUNanos: 1e9, At: now, MemoryBytes: 10 << 20, MemoryLimitBytes: 64 << 20, DiskBytes: &disk, Source: telemetry.SourceCgroup, CPULimitKnown: true},
		// The engine's stats with their own earlier reading: not sampled again.
		{ID: "2", Name: "jk-f-b", Instance: "b", Component: "agent", CPUNanos: 3e9, At: now, PrevCPUNanos: 2e9, PrevAt: now.Add(-time.Second), MemoryBytes: 5 << 20, Source: telemetry.SourceEngineStats},
	}}
	s := &fakeSampler{}
	start := time.Now()
	prev, cur, err := secondPass(t.Context(), s, "f", first)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < minCPUWindow-10*time.Millisecond {
		t.Errorf("second pass after %v, want at least %v after the first", waited, minCPUWindow)
	}
	if len(s.calls) != 1 || !s.calls[0].CPUOnly || len(s.calls[0].Containers.Containers) != 1 || s.calls[0].Containers.Containers[0].ID != "1" {
		t.Fatalf("second pass calls: %+v", s.calls)
	}
	if prev != first || len(cur.Containers) != 2 || cur.Source != "cgroup+engine-stats" || cur.VolumeBytes["a"] != 1 || cur.DiskSource != "layer-files" {
		t.Fatalf("cur = %+v", cur)
	}
	res := telemetry.InstanceResources(prev, cur, nil)
	a, b := res["a"], res["b"]
	if a.CPUPercent < 45 || a.CPUPercent > 55 || a.MemoryBytes != 10<<20 || a.MemoryLimitBytes != 64<<20 || a.DiskBytes == nil || *a.DiskBytes != 4096+1 {
		t.Errorf("a = %+v", a)
	}
	if b.CPUPercent != 100 || b.MemoryBytes != 5<<20 {
		t.Errorf("b (its own earlier reading) = %+v", b)
	}

	// Nothing read from files: no second pass.
	only := &drivers.ResourceSamples{Containers: first.Containers[1:]}
	s = &fakeSampler{}
	if prev, cur, _ := secondPass(t.Context(), s, "f", only); prev != nil || cur != only || len(s.calls) != 0 {
		t.Errorf("engine stats only: prev %v, cur %v, calls %d", prev, cur, len(s.calls))
	}
}

func TestDesiredLimits(t *testing.T) {
	d := &reconciler.Desired{Instances: []reconciler.DesiredInstance{{Name: "a", Resources: []drivers.Resource{
		{Kind: drivers.KindNetwork, Name: "jk-f-a"},
		{Kind: drivers.KindContainer, Name: "jk-f-a-egress", Container: &drivers.ContainerSpec{Memory: 128 << 20}},
		{Kind: drivers.KindContainer, Name: "jk-f-a", Container: &drivers.ContainerSpec{Memory: 64 << 20, NanoCPUs: 1500e6}},
	}}}}
	want := map[string]telemetry.Limits{"jk-f-a-egress": {MemoryBytes: 128 << 20}, "jk-f-a": {MemoryBytes: 64 << 20, NanoCPUs: 1500e6}}
	if got := desiredLimits(d); !reflect.DeepEqual(got, want) {
		t.Errorf("desiredLimits = %v", got)
	}
	if len(desiredLimits(nil)) != 0 {
		t.Error("nil desired")
	}
}

func TestKeptCPUReadings(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if kept, err := loadCPUReadings(dir, "f"); kept != nil || err != nil {
		t.Fatalf("no file: %v %v", kept, err)
	}
	earlier := &drivers.ResourceSamples{Containers: []telemetry.ContainerSample{
		{ID: "old", CPUNanos: 1e9, At: now.Add(-time.Minute)},
		{ID: "ok", CPUNanos: 1e9, At: now.Add(-2 * time.Second)},
		{ID: "soon", CPUNanos: 1e9, At: now.Add(-10 * time.Millisecond)},
		{ID: "restarted", CPUNanos: 5e9, At: now.Add(-2 * time.Second)},
	}}
	if err := saveCPUReadings(dir, "f", []*drivers.ResourceSamples{earlier, nil}); err != nil {
		t.Fatal(err)
	}
	kept, err := loadCPUReadings(dir, "f")
	if err != nil || len(kept) != 4 {
		t.Fatalf("kept %v, %v", kept, err)
	}
	first := &drivers.ResourceSamples{At: now, Containers: []telemetry.ContainerSample{
		{ID: "old", Instance: "a", CPUNanos: 2e9, At: now},
		{ID: "ok", Instance: "b", CPUNanos: 2e9, At: now},
		{ID: "soon", Instance: "c", CPUNanos: 2e9, At: now},
		{ID: "restarted", Instance: "d", CPUNanos: 1e9, At: now},
		{ID: "new", Instance: "e", CPUNanos: 1e9, At: now},
	}}
	if n := useKeptReadings(first, kept); n != 1 {
		t.Fatalf("%d containers given a kept reading, want 1 (only ok: old is too old, soon too recent, restarted's counter went back, new has none)", n)
	}
	res := telemetry.InstanceResources(nil, first, nil)
	if r := res["b"]; r == nil || r.CPUPercent < 49 || r.CPUPercent > 51 {
		t.Errorf("b: 1s of CPU over 2s, got %+v", r)
	}
	for _, c := range first.Containers {
		if c.ID != "ok" && !c.PrevAt.IsZero() {
			t.Errorf("%s was given a kept reading", c.ID)
		}
	}

	// A file that is not jackin's is not used.
	if err := os.WriteFile(cpuReadingsPath(dir, "g"), []byte(`{"containers":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if kept, err := loadCPUReadings(dir, "g"); kept != nil || err == nil {
		t.Errorf("a file without jackin's version: %v, %v", kept, err)
	}
}
