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
