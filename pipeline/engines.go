package pipeline

import (
	"context"
	"fmt"
	"sort"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/reconciler"
)

// fileCarrier is a driver of an engine on another machine, whose
// containers mount copies of jackin's files made on that machine's host
// (drivers/docker: HostFiles).
type fileCarrier interface {
	CarryFile(ctx context.Context, local string) error
}

// carryRefreshed copies the credential files rewritten in place (no
// recreate), changed by instance, to the host of each remote engine whose
// instance mounts them: there the container sees the copy, not this
// machine's tmpfs. It returns why each instance's copy failed.
func (e Env) carryRefreshed(ctx context.Context, d *reconciler.Desired, changed map[string][]string) map[string]error {
	failed := map[string]error{}
	for i := range d.Instances {
		in := &d.Instances[i]
		if len(changed[in.Name]) == 0 || in.Instance.Engine == "" || in.Credentials == nil {
			continue
		}
		drv, ok := e.Drivers[drivers.PlacementKey(in.Instance.Backend, in.Instance.Engine)].(fileCarrier)
		if !ok {
			continue
		}
		dirs := make([]string, 0, len(in.Credentials.FileDirs))
		for _, dir := range in.Credentials.FileDirs {
			dirs = append(dirs, dir)
		}
		sort.Strings(dirs)
		for _, dir := range dirs {
			if err := drv.CarryFile(ctx, dir); err != nil {
				failed[in.Name] = fmt.Errorf("copy the refreshed credentials to engine %s: %w", in.Instance.Engine, err)
				break
			}
		}
	}
	return failed
}
