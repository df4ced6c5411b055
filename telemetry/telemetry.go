// Package telemetry is what jackin measures about running agents: the
// resources each instance uses (CPU, memory, disk) and the tokens and
// estimated cost its runtime reports. It holds the shapes the CLI, the
// store and the console share; the sampler and the usage parsers fill
// them.
package telemetry

import "time"

// Resources is one instance's resource use at SampledAt.
type Resources struct {
	// CPUPercent is percent of one core (200 is two cores busy).
	CPUPercent float64 `json:"cpuPercent"`
	// CPULimitPercent is percent of the instance's CPU limit, when it has
	// one.
	CPULimitPercent *float64 `json:"cpuLimitPercent,omitempty"`
	MemoryBytes     int64    `json:"memoryBytes"`
	// MemoryLimitBytes is the instance's memory limit (0: none).
	MemoryLimitBytes int64 `json:"memoryLimitBytes,omitempty"`
	// NearMemoryLimit: within 10% of the limit.
	NearMemoryLimit bool `json:"nearMemoryLimit,omitempty"`
	// DiskBytes is what the instance wrote (its writable layer, its
	// volumes and ephemeral mounts), when measured (get -o wide).
	DiskBytes *int64    `json:"diskBytes,omitempty"`
	SampledAt time.Time `json:"sampledAt"`
	// Source says how it was sampled ("cgroup", "engine-stats").
	Source string `json:"source,omitempty"`
	// CPUWindow is the interval CPUPercent was measured over; 0 when it
	// was not (a single sample: CPUPercent means nothing then).
	CPUWindow time.Duration `json:"-"`
	// CPUWindowSeconds is CPUWindow for -o json: a short window (get's
	// own two readings, 50ms) is noisier than one since an earlier get.
	CPUWindowSeconds float64 `json:"cpuWindowSeconds,omitempty"`
	// Sidecars are the instance's sidecar containers' own figures (the
	// totals above include them).
	Sidecars []ContainerResources `json:"sidecars,omitempty"`
}

// Usage is an instance's token use and estimated cost for one model.
type Usage struct {
	Model            string `json:"model"`
	InputTokens      int64  `json:"inputTokens"`
	OutputTokens     int64  `json:"outputTokens"`
	CacheReadTokens  int64  `json:"cacheReadTokens"`
	CacheWriteTokens int64  `json:"cacheWriteTokens"`
	// CostUSD is the estimate from the price table; nil when the model's
	// price is unknown (never a silent zero).
	CostUSD *float64 `json:"costUSD"`
}
