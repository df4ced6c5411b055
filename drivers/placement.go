package drivers

import (
	"context"
	"strings"
)

// PlacementKey is the key of a drivers.Set entry: where an instance runs.
// It is the backend's name, followed for a Docker engine the fleet
// declares by "@" and the engine's name ("docker@build1"); the local
// engine is plain "docker". Other backends (a later kubernetes) key by
// their own name beside them.
func PlacementKey(backend, engine string) string {
	if backend == "" {
		backend = DefaultBackend
	}
	if engine == "" {
		return backend
	}
	return backend + "@" + engine
}

// SplitPlacement takes a PlacementKey apart.
func SplitPlacement(key string) (backend, engine string) {
	backend, engine, _ = strings.Cut(key, "@")
	return backend, engine
}

// ErrEngineUnreachable is a declared engine that could not be observed: a
// partition, not an empty engine. Its instances are reported unreachable
// and nothing of theirs is planned for deletion or recreation.
type ErrEngineUnreachable struct {
	Engine   string
	Endpoint string
	Err      error
}

func (e *ErrEngineUnreachable) Error() string {
	return "engine " + e.Engine + " is unreachable (" + e.Endpoint + "): " + e.Err.Error() +
		"; its instances are left as they are until it answers"
}

func (e *ErrEngineUnreachable) Unwrap() error { return e.Err }

// HostFileForgetter is a driver that copies jackin's files to its engine's
// host (an engine on another machine): when an instance is deleted, the
// copies of its secrets there are wiped before jackin removes its own.
type HostFileForgetter interface {
	ForgetHostFiles(ctx context.Context, locals []string) error
}
