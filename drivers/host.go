package drivers

import (
	"context"

	"github.com/jackin-dev/jackin/schema"
)

// InstanceSetup is what a backend that gives each instance a host of its
// own needs to make that host: the instance as the manifest resolved it
// (its backend settings) and every resource it is rendered into (their
// bind sources are what the host must share).
type InstanceSetup struct {
	Fleet     string
	Instance  schema.Instance
	Resources []Resource
}

// InstanceHost is a backend that holds each instance in a host of its own
// (an OrbStack machine): the executor makes or adopts that host before
// the instance's first resource is created, and removes it after a
// delete has removed the instance's resources.
type InstanceHost interface {
	PrepareInstance(ctx context.Context, in InstanceSetup) error
	RemoveInstance(ctx context.Context, fleet, instance string) error
}

// ImageStager is an InstanceHost that can stream an instance's images
// into its host while the executor creates the instance's objects that
// need none (its networks and volumes). StageImages starts that once the
// host is prepared and returns settle, which stops what is still running
// and waits for it: the executor calls settle before the action ends,
// whatever its outcome, so no transfer outlives its action. A container's
// Create waits for a transfer of its image in flight and makes its own
// when the staged one failed, so staging reports no error. The executor
// calls StageImages after every PrepareInstance that succeeded, with no
// containers too: PrepareInstance may have begun work for the images (an
// export from the host beside a new machine's making) that StageImages
// hands to the transfer or gives up.
type ImageStager interface {
	StageImages(ctx context.Context, in InstanceSetup) (settle func())
}
