// Package docker is the Docker Engine backend: it renders jackin resources
// into engine objects and observes them by label.
//
// It talks to the engine through github.com/moby/moby/client, configured from
// the environment (DOCKER_HOST, DOCKER_API_VERSION, DOCKER_CERT_PATH,
// DOCKER_TLS_VERIFY) with API version negotiation, so engines from Docker
// 20.10 (API 1.41) on work. Every engine request is counted by method and
// path template (Calls, MutatingCalls) and logged at verbosity 6.
package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/go-logr/logr"
	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/schema"
)

// Driver is the Docker Engine backend. It is safe for concurrent use.
type Driver struct {
	cli      *client.Client
	log      logr.Logger
	counter  *callCounter
	endpoint string
	subnets  *subnetAllocator
	features hostFeatures
	// serialCalls: the engine is reached through a command per connection
	// (NewDialed), so a call's requests are made one after another.
	serialCalls bool
	// engine is the declared engine's name ("" for the local engine), and
	// hostFiles, for an engine on another machine, how jackin's own bind
	// sources reach its host (engine.go, hostfiles.go).
	engine    string
	hostFiles *HostFiles

	// negotiated is set once a ping has fixed the API version.
	negotiated atomic.Bool
}

var _ drivers.Driver = (*Driver)(nil)

func init() {
	drivers.Register("docker", func(ctx context.Context, log logr.Logger) (drivers.Driver, error) {
		return New(ctx, log)
	})
}

// New returns a driver for the engine the environment points at. It does not
// contact the engine; call Ping for that.
func New(ctx context.Context, log logr.Logger) (*Driver, error) {
	_ = ctx // reserved: creating a client makes no engine calls
	counter := newCallCounter(log)
	opts := []client.Opt{client.FromEnv, client.WithHTTPRequestHook(counter.hook)}
	host, skipped, err := schema.DockerContextHost()
	if err != nil {
		return nil, err
	}
	if skipped != "" {
		log.Info(skipped)
	}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("configure the Docker engine client from the environment: %w", err)
	}
	subnets, err := newSubnetAllocator()
	if err != nil {
		return nil, err
	}
	d := &Driver{cli: cli, log: log, counter: counter, endpoint: cli.DaemonHost(), subnets: subnets}
	log.V(2).Info("docker client configured", "endpoint", d.endpoint)
	return d, nil
}

// Name returns "docker".
func (d *Driver) Name() string { return "docker" }

// Endpoint returns the engine address the client uses, such as
// unix:///var/run/docker.sock.
func (d *Driver) Endpoint() string { return d.endpoint }

// Client returns the underlying engine client, for tests and diagnostics.
func (d *Driver) Client() *client.Client { return d.cli }

// APIVersion returns the API version requests use: the negotiated one after a
// successful Ping.
func (d *Driver) APIVersion() string { return d.cli.ClientVersion() }

// Calls returns how many engine requests were made, keyed by method and path
// template, such as "POST /containers/{id}/start" or "HEAD /_ping".
func (d *Driver) Calls() map[string]int { return d.counter.snapshot() }

// MutatingCalls returns how many engine requests were neither GET nor HEAD.
func (d *Driver) MutatingCalls() int { return d.counter.mutatingCalls() }

// Close releases idle connections.
func (d *Driver) Close() error { return d.cli.Close() }

// Ping checks the engine answers and negotiates the API version. Any failure
// is an *drivers.ErrUnreachable naming the endpoint.
func (d *Driver) Ping(ctx context.Context) error {
	res, err := d.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("ping the Docker engine at %s: %w", d.endpoint, err)
		}
		return &drivers.ErrUnreachable{Endpoint: d.endpoint, Err: connCause(err)}
	}
	if d.negotiated.CompareAndSwap(false, true) {
		d.log.V(1).Info("docker engine answers", "endpoint", d.endpoint,
			"engineAPI", res.APIVersion, "usingAPI", d.cli.ClientVersion(), "os", res.OSType)
	}
	return nil
}

// ensureNegotiated pings once, so the API version is known before a request
// whose shape depends on it, and so concurrent first requests do not each
// trigger their own negotiation ping.
func (d *Driver) ensureNegotiated(ctx context.Context) error {
	if d.negotiated.Load() {
		return nil
	}
	return d.Ping(ctx)
}

// wrap adds context to an engine error. Connection failures become
// *drivers.ErrUnreachable, so callers can tell "no engine" from "engine said no".
func (d *Driver) wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if client.IsErrConnectionFailed(err) {
		return &drivers.ErrUnreachable{Endpoint: d.endpoint, Err: fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), connCause(err))}
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}

// connCause shortens a connection failure's message to the network error
// underneath ("dial unix /var/run/docker.sock: connect: permission denied"):
// the client's own message repeats the endpoint ErrUnreachable already names.
// The result still unwraps to err.
func connCause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return &causeError{msg: op.Error(), err: err}
	}
	return err
}

type causeError struct {
	msg string
	err error
}

func (e *causeError) Error() string { return e.msg }
func (e *causeError) Unwrap() error { return e.err }

// isNotFound reports an engine "no such object" answer.
func isNotFound(err error) bool { return err != nil && cerrdefs.IsNotFound(err) }

// isConflict reports an engine "conflict" answer (a name in use).
func isConflict(err error) bool {
	return err != nil && (cerrdefs.IsConflict(err) || cerrdefs.IsAlreadyExists(err))
}

// ownerOf describes who owns an object with labels, relative to fleet: ""
// when jackin owns it for fleet, else "unlabelled" or "fleet NAME".
func ownerOf(labels map[string]string, fleet string) string {
	if labels[drivers.LabelManagedBy] != drivers.ManagedByValue {
		return "unlabelled"
	}
	if f := labels[drivers.LabelFleet]; f != fleet {
		if f == "" {
			return "unlabelled"
		}
		return "fleet " + f
	}
	return ""
}

// ownerOfResource is ownerOf for an object jackin is about to reuse by
// name: it must also belong to the same instance and component. Generated
// names can coincide ("web" + "-out" is the network of an instance named
// "web-out"), and reusing another instance's network or volume would join
// instances that must stay apart.
func ownerOfResource(labels map[string]string, fleet string, r drivers.Resource) string {
	if owner := ownerOf(labels, fleet); owner != "" {
		return owner
	}
	inst, comp := labels[drivers.LabelInstance], labels[drivers.LabelComponent]
	if inst != r.Labels[drivers.LabelInstance] || comp != r.Labels[drivers.LabelComponent] {
		return fmt.Sprintf("instance %q (its %s) of fleet %s", inst, comp, fleet)
	}
	return ""
}

// errNoKind reports a resource whose spec does not match its kind.
var errNoKind = errors.New("resource spec does not match its kind")
