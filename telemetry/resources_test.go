package telemetry

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestCPUPercent(t *testing.T) {
	cases := []struct {
		name       string
		prev, cur  uint64
		interval   time.Duration
		want       float64
		wantOK     bool
		lowerBound bool
	}{
		{name: "idle", prev: 5e9, cur: 5e9, interval: time.Second, want: 0, wantOK: true},
		{name: "a quarter core", prev: 1e9, cur: 1e9 + 250e6, interval: time.Second, want: 25, wantOK: true},
		{name: "two cores busy", prev: 0, cur: 1e9, interval: 500 * time.Millisecond, want: 200, wantOK: true},
		{name: "short window", prev: 10, cur: 10 + 25e6, interval: 250 * time.Millisecond, want: 10, wantOK: true},
		{name: "zero interval", prev: 1, cur: 2, interval: 0, wantOK: false},
		{name: "negative interval", prev: 1, cur: 2, interval: -time.Second, wantOK: false},
		// A restart makes a new cgroup, counting from zero: the CPU since
		// the restart over the whole interval.
		{name: "counter reset after a restart", prev: 90e9, cur: 300e6, interval: time.Second, want: 30, wantOK: true},
		{name: "counter reset to zero", prev: 90e9, cur: 0, interval: time.Second, want: 0, wantOK: true},
		{name: "huge counters", prev: math.MaxUint64 - 2e9, cur: math.MaxUint64 - 1e9, interval: 2 * time.Second, want: 50, wantOK: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := CPUPercent(c.prev, c.cur, t0, t0.Add(c.interval))
			if ok != c.wantOK || (ok && !near(got, c.want)) {
				t.Fatalf("CPUPercent(%d, %d, %v) = %v, %v; want %v, %v", c.prev, c.cur, c.interval, got, ok, c.want, c.wantOK)
			}
		})
	}
}

func TestCPULimitPercent(t *testing.T) {
	cases := []struct {
		pct    float64
		nano   int64
		want   float64
		wantOK bool
	}{
		{pct: 50, nano: 1e9, want: 50, wantOK: true},
		{pct: 50, nano: 500e6, want: 100, wantOK: true},
		{pct: 150, nano: 2e9, want: 75, wantOK: true},
		{pct: 30, nano: 1500e6, want: 20, wantOK: true},
		{pct: 30, nano: 0, wantOK: false},
		{pct: 30, nano: -1, wantOK: false},
	}
	for _, c := range cases {
		got, ok := CPULimitPercent(c.pct, c.nano)
		if ok != c.wantOK || (ok && !near(got, c.want)) {
			t.Errorf("CPULimitPercent(%v, %d) = %v, %v; want %v, %v", c.pct, c.nano, got, ok, c.want, c.wantOK)
		}
	}
}

func TestNearLimit(t *testing.T) {
	const mi = 1 << 20
	cases := []struct {
		used, limit int64
		want        bool
	}{
		{used: 460 * mi, limit: 512 * mi, want: false}, // 89.8%
		{used: 461 * mi, limit: 512 * mi, want: true},  // 90.0%
		{used: 512 * mi, limit: 512 * mi, want: true},
		{used: 600 * mi, limit: 512 * mi, want: true},
		{used: 600 * mi, limit: 0, want: false},
		{used: 0, limit: 0, want: false},
	}
	for _, c := range cases {
		if got := NearLimit(c.used, c.limit); got != c.want {
			t.Errorf("NearLimit(%d, %d) = %v, want %v", c.used, c.limit, got, c.want)
		}
	}
}

func i64(v int64) *int64 { return &v }

func sample(id, inst, comp string, cpu uint64, at time.Duration, mem, memLimit int64) ContainerSample {
	name := "jk-f-" + inst
	if comp != "agent" {
		name += "-" + comp
	}
	return ContainerSample{ID: id, Name: name, Instance: inst, Component: comp, CPUNanos: cpu, At: t0.Add(at),
		MemoryBytes: mem, MemoryLimitBytes: memLimit, Source: SourceCgroup, CPULimitKnown: true}
}

func TestInstanceResourcesSumsAgentAndSidecars(t *testing.T) {
	const mi = 1 << 20
	prev := &Samples{At: t0, Containers: []ContainerSample{
		sample("a1", "web", "agent", 10e9, 0, 0, 0),
		sample("e1", "web", "egress", 1e9, 0, 0, 0),
		sample("a2", "db", "agent", 5e9, 0, 0, 0),
	}}
	webAgent := sample("a1", "web", "agent", 10e9+400e6, time.Second, 300*mi, 512*mi)
	webAgent.NanoCPUs = 2e9
	egress := sample("e1", "web", "egress", 1e9+100e6, time.Second, 120*mi, 128*mi) // 93.75%: near
	egress.NanoCPUs = 500e6
	cur := &Samples{At: t0.Add(time.Second), Containers: []ContainerSample{
		webAgent, egress,
		sample("a2", "db", "agent", 5e9+1e9, time.Second, 40*mi, 0),
		sample("a3", "new", "agent", 7e9, time.Second, 10*mi, 64*mi), // not in prev: no CPU
		{ID: "x", Name: "stray"},                                     // no instance label: skipped
	}}
	got := InstanceResources(prev, cur, nil)
	if len(got) != 3 {
		t.Fatalf("want 3 instances, got %d: %v", len(got), got)
	}
	web := got["web"]
	if web.CPUPercent != 50 || web.MemoryBytes != 420*mi || web.MemoryLimitBytes != 640*mi {
		t.Errorf("web: cpu %v mem %d limit %d; want 50, %d, %d", web.CPUPercent, web.MemoryBytes, web.MemoryLimitBytes, 420*mi, 640*mi)
	}
	if web.CPULimitPercent == nil || *web.CPULimitPercent != 20 { // 50% of one core over 2.5 cores
		t.Errorf("web cpuLimitPercent = %v, want 20", web.CPULimitPercent)
	}
	if !web.NearMemoryLimit {
		t.Error("web: the egress sidecar is at 94% of its own limit: want nearMemoryLimit")
	}
	if web.CPUWindow != time.Second || web.Source != SourceCgroup || !web.SampledAt.Equal(cur.At) {
		t.Errorf("web: window %v source %q sampledAt %v", web.CPUWindow, web.Source, web.SampledAt)
	}
	if len(web.Sidecars) != 1 || web.Sidecars[0].Component != "egress" || web.Sidecars[0].CPUPercent != 10 ||
		!web.Sidecars[0].NearMemoryLimit || web.Sidecars[0].CPULimitPercent == nil || *web.Sidecars[0].CPULimitPercent != 20 {
		t.Errorf("web sidecars = %+v", web.Sidecars)
	}
	db := got["db"]
	if db.CPUPercent != 100 || db.MemoryLimitBytes != 0 || db.CPULimitPercent != nil || db.NearMemoryLimit || db.Sidecars != nil {
		t.Errorf("db = %+v", db)
	}
	n := got["new"]
	if n.CPUWindow != 0 || n.CPUPercent != 0 || n.MemoryLimitBytes != 64*mi {
		t.Errorf("new (no earlier reading) = %+v", n)
	}
}

func TestInstanceResourcesLimits(t *testing.T) {
	const mi = 1 << 20
	// An agent with a limit beside a sidecar without one: the instance as
	// a whole is unbounded, yet near its limit when the agent is.
	agent := sample("a", "w", "agent", 0, 0, 60*mi, 64*mi)
	dind := sample("d", "w", "docker", 0, 0, 500*mi, 0)
	r := InstanceResources(nil, &Samples{At: t0, Containers: []ContainerSample{agent, dind}}, nil)["w"]
	if r.MemoryLimitBytes != 0 || !r.NearMemoryLimit || r.MemoryBytes != 560*mi {
		t.Errorf("agent near its limit beside an unbounded sidecar: %+v", r)
	}
	// The sum near the summed limit, no container near its own: not near.
	a := sample("a", "w", "agent", 0, 0, 57*mi, 64*mi)
	e := sample("e", "w", "egress", 0, 0, 115*mi, 128*mi)
	r = InstanceResources(nil, &Samples{At: t0, Containers: []ContainerSample{a, e}}, nil)["w"]
	if r.MemoryLimitBytes != 192*mi || r.NearMemoryLimit {
		t.Errorf("each under 90%% of its own limit: %+v", r)
	}
}

func TestInstanceResourcesDesiredCPULimit(t *testing.T) {
	// The engine's stats carry no CPU limit: the desired spec's stands in.
	prev := &Samples{At: t0, Containers: []ContainerSample{{ID: "a", Name: "jk-f-w", Instance: "w", Component: "agent", CPUNanos: 0, At: t0, Source: SourceEngineStats}}}
	cur := &Samples{At: t0.Add(time.Second), Containers: []ContainerSample{{ID: "a", Name: "jk-f-w", Instance: "w", Component: "agent", CPUNanos: 750e6, At: t0.Add(time.Second), Source: SourceEngineStats}}}
	r := InstanceResources(prev, cur, map[string]Limits{"jk-f-w": {NanoCPUs: 1500e6}})["w"]
	if r.CPUPercent != 75 || r.CPULimitPercent == nil || *r.CPULimitPercent != 50 || r.Source != SourceEngineStats {
		t.Errorf("got %+v (limit %v)", r, r.CPULimitPercent)
	}
	// A cgroup sample that read no quota is believed over the spec.
	cur.Containers[0].Source, cur.Containers[0].CPULimitKnown = SourceCgroup, true
	r = InstanceResources(prev, cur, map[string]Limits{"jk-f-w": {NanoCPUs: 1500e6}})["w"]
	if r.CPULimitPercent != nil {
		t.Errorf("cgroup said no quota, got cpuLimitPercent %v", *r.CPULimitPercent)
	}
}

func TestInstanceResourcesOwnPreviousReading(t *testing.T) {
	// The engine's stats with their previous sample: one pass gives CPU.
	c := ContainerSample{ID: "a", Name: "n", Instance: "w", Component: "agent", CPUNanos: 3e9, At: t0.Add(time.Second),
		PrevCPUNanos: 2.5e9, PrevAt: t0, Source: SourceEngineStats}
	r := InstanceResources(nil, &Samples{At: t0, Containers: []ContainerSample{c}}, nil)["w"]
	if r.CPUPercent != 50 || r.CPUWindow != time.Second {
		t.Errorf("got %+v", r)
	}
	// The same reading in prev and cur (a pass reused for containers the
	// second pass did not sample again): the carried reading is used.
	r = InstanceResources(&Samples{Containers: []ContainerSample{c}}, &Samples{At: t0, Containers: []ContainerSample{c}}, nil)["w"]
	if r.CPUPercent != 50 {
		t.Errorf("same reading twice: got %+v", r)
	}
}

func TestInstanceResourcesDiskAndSources(t *testing.T) {
	a := sample("a", "w", "agent", 0, 0, 1, 0)
	a.DiskBytes = i64(4096)
	e := sample("e", "w", "egress", 0, 0, 1, 0)
	e.DiskBytes = i64(100)
	e.Source = SourceEngineStats
	b := sample("b", "v", "agent", 0, 0, 1, 0)
	cur := &Samples{At: t0, Containers: []ContainerSample{a, e, b}, VolumeBytes: map[string]int64{"w": 1 << 20, "gone": 5}}
	got := InstanceResources(nil, cur, nil)
	if w := got["w"]; w.DiskBytes == nil || *w.DiskBytes != 4096+100+1<<20 || w.Source != "cgroup+engine-stats" {
		t.Errorf("w = %+v", w)
	}
	if v := got["v"]; v.DiskBytes != nil {
		t.Errorf("v: disk not measured, got %d", *v.DiskBytes)
	}
	if _, ok := got["gone"]; ok {
		t.Error("an instance with volumes but no running container got resources")
	}
	if len(InstanceResources(nil, nil, nil)) != 0 {
		t.Error("nil pass")
	}
}

func TestResourcesJSON(t *testing.T) {
	const mi = 1 << 20
	prev := &Samples{At: t0, Containers: []ContainerSample{sample("a", "w", "agent", 0, 0, 0, 0)}}
	cur := &Samples{At: t0.Add(time.Second), Containers: []ContainerSample{sample("a", "w", "agent", 123456789, time.Second, 300*mi, 512*mi)}}
	b, err := json.Marshal(InstanceResources(prev, cur, nil)["w"])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cpuPercent":12.3,"memoryBytes":314572800,"memoryLimitBytes":536870912,"sampledAt":"2026-12-04T12:00:01Z","source":"cgroup","cpuWindowSeconds":1}`
	if string(b) != want {
		t.Errorf("json:\n got %s\nwant %s", b, want)
	}
	if strings.Contains(string(b), "CPUWindow") {
		t.Error("CPUWindow (nanoseconds) leaked into JSON")
	}
	if got := JoinSources("engine-stats", "cgroup", "cgroup", ""); got != "cgroup+engine-stats" {
		t.Errorf("JoinSources = %q", got)
	}
}

func TestWithMemoryOf(t *testing.T) {
	d := i64(7)
	earlier := &Samples{VolumeBytes: map[string]int64{"w": 3}, DiskSource: "layer-files", Containers: []ContainerSample{
		{ID: "a", MemoryBytes: 10, MemoryLimitBytes: 20, NanoCPUs: 5, CPULimitKnown: true, DiskBytes: d, Source: SourceCgroup},
		{ID: "gone", MemoryBytes: 1, Source: SourceCgroup},
	}}
	cur := &Samples{CPUOnly: true, Containers: []ContainerSample{
		{ID: "a", CPUNanos: 99, Source: SourceCgroup},
		{ID: "new", CPUNanos: 1, Source: SourceCgroup},                        // no memory read anywhere: dropped
		{ID: "stats", CPUNanos: 2, MemoryBytes: 4, Source: SourceEngineStats}, // a full reading: kept
	}}
	got := cur.WithMemoryOf(earlier)
	if len(got.Containers) != 2 || got.CPUOnly || got.VolumeBytes["w"] != 3 || got.DiskSource != "layer-files" {
		t.Fatalf("got %+v", got)
	}
	a := got.Containers[0]
	if a.CPUNanos != 99 || a.MemoryBytes != 10 || a.MemoryLimitBytes != 20 || a.NanoCPUs != 5 || !a.CPULimitKnown || a.DiskBytes != d {
		t.Errorf("a = %+v", a)
	}
	if got.Containers[1].ID != "stats" || got.Containers[1].MemoryBytes != 4 {
		t.Errorf("stats = %+v", got.Containers[1])
	}
	if cur.Containers[0].MemoryBytes != 0 {
		t.Error("cur changed")
	}
}
