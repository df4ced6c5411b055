package drivers

import (
	"context"

	"github.com/jackin-dev/jackin/telemetry"
)

// ResourceSamples is one sampling pass over a fleet's running containers
// (the agents and their sidecars): cumulative CPU time, memory and its
// limit, and disk when asked, per container, and the source used.
type ResourceSamples = telemetry.Samples

// ResourceSampler is a backend that can measure what a fleet's running
// containers use, in one pass for the whole fleet: one list call, then the
// cheapest per-container source the backend has (on a local Docker engine,
// the containers' cgroup files; otherwise the engine's stats API). CPU is
// a cumulative counter: a percentage needs two passes
// (telemetry.InstanceResources).
type ResourceSampler interface {
	SampleResources(ctx context.Context, fleet string, opts ...SampleOption) (*ResourceSamples, error)
}

// SampleOptions are what a sampling pass measures besides CPU and memory.
type SampleOptions struct {
	// Disk measures each container's writable layer.
	Disk bool
	// Volumes also measures the fleet's volumes, per instance (implies
	// Disk). Without local access to the volumes' files it needs the
	// engine's disk-usage call, which sizes everything on the engine:
	// slow, for `get -o wide` only.
	Volumes bool
	// Containers, when set, samples the containers an earlier pass found,
	// without listing the fleet again (a second pass a moment after the
	// first, for CPU). A container gone since is left out.
	Containers *ResourceSamples
	// CPUOnly reads only the CPU counter where that is cheaper (cgroup
	// files): memory is left zero and Samples.CPUOnly set. For a second
	// pass a moment after a full one, whose memory stands.
	CPUOnly bool
	// PreviousSample asks a source that can take an earlier CPU reading
	// itself to do so (the engine's stats: a second reading about a
	// second after the first, in the same request), so the pass alone
	// gives CPU for those containers (ContainerSample.PrevAt). The cgroup
	// source ignores it: a second pass is cheaper there.
	PreviousSample bool
	// Source forces a source (telemetry.SourceEngineStats), for tests and
	// comparisons; "" picks the cheapest.
	Source string
}

// SampleOption sets a SampleOptions field.
type SampleOption func(*SampleOptions)

// WithDisk measures each container's writable layer.
func WithDisk() SampleOption { return func(o *SampleOptions) { o.Disk = true } }

// WithVolumes measures the writable layers and the fleet's volumes.
func WithVolumes() SampleOption {
	return func(o *SampleOptions) { o.Disk, o.Volumes = true, true }
}

// WithContainersOf samples the containers of an earlier pass, without a
// list call.
func WithContainersOf(prev *ResourceSamples) SampleOption {
	return func(o *SampleOptions) { o.Containers = prev }
}

// WithCPUOnly reads only the CPU counters where that is cheaper.
func WithCPUOnly() SampleOption { return func(o *SampleOptions) { o.CPUOnly = true } }

// WithPreviousSample makes the engine's stats carry an earlier CPU
// reading (slower: about a second per request).
func WithPreviousSample() SampleOption {
	return func(o *SampleOptions) { o.PreviousSample = true }
}

// WithSource forces a source ("" picks the cheapest).
func WithSource(source string) SampleOption {
	return func(o *SampleOptions) { o.Source = source }
}

// ApplySampleOptions folds opts into a SampleOptions.
func ApplySampleOptions(opts ...SampleOption) SampleOptions {
	var o SampleOptions
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}
