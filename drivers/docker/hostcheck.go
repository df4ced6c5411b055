package docker

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
)

// hostFeatures is what the engine's `docker info` says it can enforce,
// asked once per driver and only when a container needs a limit.
type hostFeatures struct {
	once sync.Once
	info system.Info
	err  error
}

// checkHostSupport refuses a container whose limits the engine cannot
// enforce. An engine without a cgroup controller accepts the limit with
// only a warning ("Limitation discarded") and runs the container without
// it: a quiet weakening of the profile or manifest, which jackin turns into
// an error naming what is missing.
func (d *Driver) checkHostSupport(ctx context.Context, name string, s *drivers.ContainerSpec) error {
	if s.Memory == 0 && s.MemoryRes == 0 && s.NanoCPUs == 0 && s.PidsLimit == 0 {
		return nil
	}
	d.features.once.Do(func() {
		res, err := d.cli.Info(ctx, client.InfoOptions{})
		d.features.info, d.features.err = res.Info, err
	})
	if d.features.err != nil {
		return d.wrap(d.features.err, "create container %s: ask the engine which limits it enforces (docker info)", name)
	}
	return unsupportedLimits(name, s, d.features.info)
}

// unsupportedLimits names each limit of s that info says the engine cannot
// enforce.
func unsupportedLimits(name string, s *drivers.ContainerSpec, info system.Info) error {
	var missing []string
	if (s.Memory > 0 || s.MemoryRes > 0) && !info.MemoryLimit {
		missing = append(missing, "memory and memoryReservation (docker info: no memory limit support)")
	}
	if s.NanoCPUs > 0 && !info.CPUCfsQuota {
		missing = append(missing, "cpus (docker info: no CPU CFS quota support)")
	}
	if s.PidsLimit > 0 && !info.PidsLimit {
		missing = append(missing, "pids (docker info: no pids limit support)")
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("create container %s: this host cannot enforce %s; the engine would run the container without it. Enable the cgroup controller (cgroup %s), or remove the limit from the manifest (or choose a profile without it)",
		name, strings.Join(missing, ", "), orUnknown(info.CgroupVersion))
}

func orUnknown(s string) string {
	if s == "" {
		return "version unknown"
	}
	return "v" + s
}
