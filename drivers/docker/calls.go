package docker

import (
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/go-logr/logr"
)

// callCounter counts every request the client sends to the engine, keyed by
// method and path template ("POST /containers/{id}/start"). It is installed
// as a request hook, which the client runs inside its own RoundTripper for
// every request, including version negotiation pings and failed dials.
type callCounter struct {
	log logr.Logger

	mu       sync.Mutex
	calls    map[string]int
	mutating int
}

func newCallCounter(log logr.Logger) *callCounter {
	return &callCounter{log: log, calls: map[string]int{}}
}

// hook is a client.RequestHook: it counts and logs req and never fails it.
func (c *callCounter) hook(req *http.Request) error {
	key := req.Method + " " + pathTemplate(req.URL.Path)
	mutating := req.Method != http.MethodGet && req.Method != http.MethodHead
	c.mu.Lock()
	c.calls[key]++
	if mutating {
		c.mutating++
	}
	c.mu.Unlock()
	c.log.V(6).Info("engine request", "call", key, "method", req.Method, "path", req.URL.Path, "query", req.URL.RawQuery)
	return nil
}

// snapshot returns a copy of the counts.
func (c *callCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.calls))
	for k, n := range c.calls {
		out[k] = n
	}
	return out
}

func (c *callCounter) mutatingCalls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mutating
}

var versionPrefix = regexp.MustCompile(`^/v[0-9]+(\.[0-9]+)?`)

// collections are the API's top-level object collections: the segment after
// one is an object ID or name unless it is a collection-level action.
var collections = map[string]bool{
	"containers": true, "images": true, "networks": true, "volumes": true,
	"exec": true, "plugins": true, "services": true, "tasks": true,
	"nodes": true, "secrets": true, "configs": true, "distribution": true,
}

// collectionActions are paths under a collection that name no object.
var collectionActions = map[string]bool{
	"json": true, "create": true, "prune": true, "load": true, "get": true,
	"search": true, "privileges": true, "pull": true,
}

// objectActions are the last segment of a per-object path. Anything between
// the collection and one of these is the object's ID or name, which for
// images may contain slashes ("docker.io/library/alpine:latest").
var objectActions = map[string]bool{
	"json": true, "start": true, "stop": true, "restart": true, "kill": true,
	"wait": true, "pause": true, "unpause": true, "attach": true, "logs": true,
	"top": true, "changes": true, "export": true, "stats": true, "resize": true,
	"update": true, "rename": true, "archive": true, "exec": true, "connect": true,
	"disconnect": true, "tag": true, "history": true, "push": true, "get": true,
	"enable": true, "disable": true, "upgrade": true, "set": true, "checkpoints": true,
}

// pathTemplate turns a request path into a template for counting: the API
// version prefix is dropped and object IDs and names become {id}.
//
//	/v1.41/containers/3f2a.../start  ->  /containers/{id}/start
//	/v1.41/images/docker.io/library/alpine:latest/json  ->  /images/{id}/json
//	/_ping  ->  /_ping
func pathTemplate(p string) string {
	if loc := versionPrefix.FindStringIndex(p); loc != nil && (len(p) == loc[1] || p[loc[1]] == '/') {
		p = p[loc[1]:]
	}
	segs := strings.Split(strings.Trim(p, "/"), "/")
	if len(segs) < 2 || !collections[segs[0]] {
		return "/" + strings.Join(segs, "/")
	}
	if len(segs) == 2 && collectionActions[segs[1]] {
		return "/" + segs[0] + "/" + segs[1]
	}
	last := segs[len(segs)-1]
	if len(segs) >= 3 && objectActions[last] {
		return "/" + segs[0] + "/{id}/" + last
	}
	// Nested object paths with two known segments ("/containers/{id}/checkpoints/{id}").
	if len(segs) == 4 && objectActions[segs[2]] {
		return "/" + segs[0] + "/{id}/" + segs[2] + "/{id}"
	}
	return "/" + segs[0] + "/{id}"
}
