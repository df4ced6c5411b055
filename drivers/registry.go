package drivers

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/go-logr/logr"
)

// Opener makes a driver for a backend. It does not contact the backend:
// the caller pings it.
type Opener func(ctx context.Context, log logr.Logger) (Driver, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Opener{}
)

// Register makes a backend available by name (a driver package registers
// itself in init). Registering a name twice panics: it is a programming
// error, never input.
func Register(name string, open Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("drivers: backend " + name + " registered twice")
	}
	registry[name] = open
}

// Backends lists the registered backend names, sorted.
func Backends() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Open makes the driver of the named backend.
func Open(ctx context.Context, name string, log logr.Logger) (Driver, error) {
	registryMu.RLock()
	open, ok := registry[name]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown backend %q (this jackin has: %s)", name, strings.Join(Backends(), ", "))
	}
	return open(ctx, log.WithName(name))
}

// Set is the drivers one plan runs through, by backend name: one plan can
// span several backends.
type Set map[string]Driver

// For returns the driver of a backend ("" is the default backend, docker).
func (s Set) For(backend string) (Driver, error) {
	if backend == "" {
		backend = DefaultBackend
	}
	if d, ok := s[backend]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("backend %q is not open for this command", backend)
}

// DefaultBackend is the backend of an instance that names none.
const DefaultBackend = "docker"
