package docker

import (
	"context"
	"fmt"
	"strings"

	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
)

// StopTimeoutSeconds is how long Stop waits after the stop signal before the
// engine kills the container.
const StopTimeoutSeconds = 10

// Start starts a container. Starting a running container is not an error.
func (d *Driver) Start(ctx context.Context, id string) error {
	if _, err := d.cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		if isNotFound(err) {
			return d.wrap(err, "start container %s: it does not exist", shortID(id))
		}
		if strings.Contains(err.Error(), "setting rlimit type 7") {
			// RLIMIT_NOFILE above the engine's own hard limit needs
			// CAP_SYS_RESOURCE, which the engine may not hold.
			return d.wrap(err, "start container %s: its open-files limit (resources.nofile, or the profile's) is above what this engine may grant (the Docker daemon's own hard limit): lower resources.nofile", shortID(id))
		}
		if strings.Contains(err.Error(), "unable to apply caps") {
			// --privileged asks for every capability, and an engine whose
			// own bounding set lacks one cannot grant it.
			return d.wrap(err, "start container %s: this engine cannot grant every capability the container asks for (it refuses --privileged): for a private Docker daemon, set dockerDaemon.privilege: \"capabilities\"", shortID(id))
		}
		return d.wrap(err, "start container %s", shortID(id))
	}
	d.log.V(2).Info("started container", "id", shortID(id))
	return nil
}

// Stop stops a container gracefully: its stop signal, then SIGKILL after
// StopTimeoutSeconds. Stopping a stopped container is not an error.
func (d *Driver) Stop(ctx context.Context, id string) error {
	timeout := StopTimeoutSeconds
	if _, err := d.cli.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		if isNotFound(err) {
			return d.wrap(err, "stop container %s: it does not exist", shortID(id))
		}
		return d.wrap(err, "stop container %s", shortID(id))
	}
	d.log.V(2).Info("stopped container", "id", shortID(id))
	return nil
}

// Remove removes a resource by kind and ID (a volume's ID is its name).
// Containers are removed forcibly but keep their volumes. Removing something
// already gone is not an error.
func (d *Driver) Remove(ctx context.Context, kind drivers.Kind, id string) error {
	var err error
	switch kind {
	case drivers.KindContainer:
		_, err = d.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: false})
	case drivers.KindNetwork:
		_, err = d.cli.NetworkRemove(ctx, id, client.NetworkRemoveOptions{})
	case drivers.KindVolume:
		_, err = d.cli.VolumeRemove(ctx, id, client.VolumeRemoveOptions{})
	default:
		return fmt.Errorf("remove %s %s: unknown kind", kind, id)
	}
	if err != nil {
		if isNotFound(err) {
			d.log.V(2).Info("already removed", "kind", kind, "id", shortID(id))
			return nil
		}
		return d.wrap(err, "remove %s %s", kind, shortID(id))
	}
	d.log.V(2).Info("removed", "kind", kind, "id", shortID(id))
	return nil
}
