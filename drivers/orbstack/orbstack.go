// Package orbstack is the OrbStack isolated machine backend
// (backend "orbstack-isolated"): one OrbStack isolated machine per
// instance, made with `orb create --isolated` and provisioned by
// cloud-init, and inside it the same Docker rendering the docker backend
// does, against the machine's own Docker engine. That engine is reached
// through the machine (`orb -m NAME -u root docker system dial-stdio`), never by
// forwarding its socket to the host. Role images are built on the host
// engine and streamed into a machine that lacks their image ID.
//
// OrbStack machines share one Linux kernel: they are not virtual machines
// of their own, and nothing here calls them that.
package orbstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/docker"
)

// Backend is the backend name manifests use.
const Backend = "orbstack-isolated"

// MinVersion is the first OrbStack with isolated machines.
var MinVersion = semver{2, 1, 0}

// DefaultReadyTimeout is how long a machine's Docker engine may take to
// answer after it is made (cloud-init installs docker.io first).
const DefaultReadyTimeout = 5 * time.Minute

// ErrNoOrb is returned when the orb command cannot be found.
var ErrNoOrb = errors.New("backend orbstack-isolated needs OrbStack's orb command, and it is not on PATH: install OrbStack 2.1.0 or later (https://orbstack.dev) or fix PATH")

func init() {
	drivers.Register(Backend, func(ctx context.Context, log logr.Logger) (drivers.Driver, error) {
		return New(ctx, log)
	})
}

// LookOrb finds the orb command on PATH: validate and apply refuse an
// OrbStack instance without it.
func LookOrb() (string, error) {
	p, err := exec.LookPath("orb")
	if err != nil {
		return "", ErrNoOrb
	}
	return p, nil
}

// machineImage names one image reference in one machine.
type machineImage struct{ machine, ref string }

// Driver is the OrbStack isolated machine backend. Object IDs it reports
// and takes are "MACHINE/ID": the machine's name, then the ID its engine
// gives the object.
type Driver struct {
	orb  *orbCLI
	host *docker.Driver
	log  logr.Logger

	readyTimeout time.Duration

	mu    sync.Mutex
	inner map[string]*docker.Driver // by machine name
	// spares start connections to a machine's engine ahead of need.
	spares map[string]*docker.SpareDialer // by machine name
	owners map[string]marker              // by machine ID: the markers read
	// imgMu serialises image transfers into one machine.
	imgMu map[string]*sync.Mutex
	// stageErr is a staged transfer's failure, by machine and image
	// reference, for the container's Create to report.
	stageErr map[machineImage]error
	// spools are image exports started while a new machine is made, by
	// machine and image reference, for the transfer into it to read.
	spools map[machineImage]*imageSpool
	// spoolReserved is the image bytes the open spools may write.
	spoolReserved int64
	// version is the probed OrbStack version (zero before Ping).
	version semver
	// listed is the last `orb list` machines() read (nil before one):
	// PrepareInstance makes a machine it does not name without listing
	// again, as orb create refuses a name taken since.
	listed []machine
}

var (
	_ drivers.Driver          = (*Driver)(nil)
	_ drivers.InstanceHost    = (*Driver)(nil)
	_ drivers.ImageStager     = (*Driver)(nil)
	_ drivers.Execer          = (*Driver)(nil)
	_ drivers.LogStreamer     = (*Driver)(nil)
	_ drivers.LogTailer       = (*Driver)(nil)
	_ drivers.LogReader       = (*Driver)(nil)
	_ drivers.ReadyWaiter     = (*Driver)(nil)
	_ drivers.Seeder          = (*Driver)(nil)
	_ drivers.AgentLocator    = (*Driver)(nil)
	_ drivers.ContainerStater = (*Driver)(nil)
)

// New opens the backend: the orb command on PATH, and the host's Docker
// engine (from the environment) that builds role images. It contacts
// neither; Ping does.
func New(ctx context.Context, log logr.Logger) (*Driver, error) {
	path, err := LookOrb()
	if err != nil {
		return nil, err
	}
	host, err := docker.New(ctx, log.WithName("host"))
	if err != nil {
		return nil, err
	}
	timeout := DefaultReadyTimeout
	if s := os.Getenv("JACKIN_ORB_READY_TIMEOUT"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			timeout = d
		}
	}
	return &Driver{
		orb:          &orbCLI{path: path, log: log},
		host:         host,
		log:          log,
		readyTimeout: timeout,
		inner:        map[string]*docker.Driver{},
		spares:       map[string]*docker.SpareDialer{},
		owners:       map[string]marker{},
		imgMu:        map[string]*sync.Mutex{},
		stageErr:     map[machineImage]error{},
		spools:       map[machineImage]*imageSpool{},
	}, nil
}

// Name returns "orbstack-isolated".
func (d *Driver) Name() string { return Backend }

// Endpoint names the orb command used.
func (d *Driver) Endpoint() string { return "OrbStack (" + d.orb.path + ")" }

// Calls counts the orb commands run, and the requests made to the host
// engine and to every machine's engine, by method and path.
func (d *Driver) Calls() map[string]int {
	out := map[string]int{"orb": int(d.orb.calls.Load())}
	for k, n := range d.host.Calls() {
		out["host "+k] += n
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, in := range d.inner {
		for k, n := range in.Calls() {
			out["machine "+k] += n
		}
	}
	return out
}

// MutatingCalls counts the engine requests that were neither GET nor HEAD.
func (d *Driver) MutatingCalls() int {
	n := d.host.MutatingCalls()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, in := range d.inner {
		n += in.MutatingCalls()
	}
	return n
}

// Ping probes the OrbStack version (isolated machines need MinVersion) and
// the host engine.
func (d *Driver) Ping(ctx context.Context) error {
	v, raw, err := d.orb.version(ctx)
	if err != nil {
		return &drivers.ErrUnreachable{Endpoint: d.Endpoint(), Err: err}
	}
	d.log.V(2).Info("orbstack version probe", "version", raw)
	if v.less(MinVersion) {
		return fmt.Errorf("OrbStack %s has no isolated machines (backend orbstack-isolated needs OrbStack %s or later): update OrbStack", raw, MinVersion)
	}
	d.mu.Lock()
	d.version = v
	d.mu.Unlock()
	return d.host.Ping(ctx)
}

// inMachine are the orb arguments that run argv in a machine, as root:
// orb runs a command as the machine's default user otherwise, whom
// OrbStack names after the Mac's user and the distro's docker.io does not
// put in the docker group, so the machine's Docker socket refuses it.
func inMachine(machine string, argv ...string) []string {
	return append([]string{"-m", machine, "-u", "root"}, argv...)
}

// MachineName is the machine of an instance.
func MachineName(fleet, instance string) string { return "jk-" + fleet + "-" + instance }

// machines lists the fleet's machines (fleet "" is every fleet): those
// whose marker names the fleet, by name, with their markers.
func (d *Driver) machines(ctx context.Context, fleet string) ([]machine, map[string]marker, error) {
	all, err := d.orb.list(ctx)
	if err != nil {
		return nil, nil, err
	}
	d.mu.Lock()
	d.listed = all
	d.mu.Unlock()
	prefix := "jk-" + fleet
	if fleet != "" {
		prefix += "-"
	}
	var out []machine
	marks := map[string]marker{}
	for _, m := range all {
		if !strings.HasPrefix(m.Name, prefix) || m.State != stateRunning {
			// A stopped machine's engine cannot be asked; its instance
			// is started again by the next apply (PrepareInstance).
			continue
		}
		mk, ok := d.markerOf(ctx, m)
		if !ok || (fleet != "" && mk.Fleet != fleet) || MachineName(mk.Fleet, mk.Instance) != m.Name {
			continue
		}
		out = append(out, m)
		marks[m.Name] = mk
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, marks, nil
}

// markerOf reads a machine's marker once per machine ID.
func (d *Driver) markerOf(ctx context.Context, m machine) (marker, bool) {
	d.mu.Lock()
	mk, ok := d.owners[m.ID]
	d.mu.Unlock()
	if ok {
		return mk, mk.Backend == Backend
	}
	out, err := d.orb.run(ctx, nil, inMachine(m.Name, "cat", MarkerPath)...)
	if err != nil {
		d.log.V(2).Info("machine has no jackin marker: not jackin's", "machine", m.Name, "error", err.Error())
		return marker{}, false
	}
	if err := jsonUnmarshal(out, &mk); err != nil {
		return marker{}, false
	}
	d.mu.Lock()
	d.owners[m.ID] = mk
	d.mu.Unlock()
	return mk, mk.Backend == Backend
}

// engine is the Docker driver of a machine's own engine, reached through
// `orb -m NAME -u root docker system dial-stdio` (inMachine).
func (d *Driver) engine(ctx context.Context, name string) (*docker.Driver, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if in, ok := d.inner[name]; ok {
		return in, nil
	}
	args := inMachine(name, "docker", "system", "dial-stdio")
	sp := docker.NewSpareDialer(d.log.WithName(name), docker.CommandDialer(append([]string{d.orb.path}, args...), nil))
	in, err := docker.NewDialed(ctx, d.log.WithName(name), "machine "+name+" (orb "+strings.Join(args, " ")+")", sp.Dial)
	if err != nil {
		return nil, err
	}
	d.inner[name] = in
	d.spares[name] = sp
	return in, nil
}

// forget drops a machine's engine and marker (the machine is gone).
func (d *Driver) forget(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if in, ok := d.inner[name]; ok {
		_ = in.Close()
		delete(d.inner, name)
	}
	if sp, ok := d.spares[name]; ok {
		sp.Close()
		delete(d.spares, name)
	}
	for id, mk := range d.owners {
		if MachineName(mk.Fleet, mk.Instance) == name {
			delete(d.owners, id)
		}
	}
}

// Observe lists the fleet's objects in each of its running machines' own
// engines (IDs "MACHINE/ID"), and the host's image IDs of imageRefs: the
// images are built there, and a transfer keeps their IDs.
func (d *Driver) Observe(ctx context.Context, fleet string, imageRefs []string) (*drivers.Observed, error) {
	ms, _, err := d.machines(ctx, fleet)
	if err != nil {
		return nil, err
	}
	obs := &drivers.Observed{Images: map[string]string{}}
	for _, m := range ms {
		in, err := d.engine(ctx, m.Name)
		if err != nil {
			return nil, err
		}
		o, err := in.Observe(ctx, fleet, nil)
		if err != nil {
			return nil, fmt.Errorf("observe machine %s: %w", m.Name, err)
		}
		obs.Networks = append(obs.Networks, qualify(m.Name, o.Networks)...)
		obs.Volumes = append(obs.Volumes, qualify(m.Name, o.Volumes)...)
		obs.Containers = append(obs.Containers, qualify(m.Name, o.Containers)...)
	}
	for _, ref := range imageRefs {
		res, err := d.host.Client().ImageInspect(ctx, ref)
		if err == nil {
			obs.Images[ref] = res.ID
		}
	}
	return obs, nil
}

// ContainerStates asks each machine's engine for its containers among ids
// ("MACHINE/ID"), through the connection it already holds: no orb list and
// no marker read.
func (d *Driver) ContainerStates(ctx context.Context, ids []string) ([]drivers.ObservedResource, error) {
	byMachine := map[string][]string{}
	var order []string
	for _, id := range ids {
		m, inner, err := split(id)
		if err != nil {
			return nil, err
		}
		if _, ok := byMachine[m]; !ok {
			order = append(order, m)
		}
		byMachine[m] = append(byMachine[m], inner)
	}
	var out []drivers.ObservedResource
	for _, m := range order {
		in, err := d.engine(ctx, m)
		if err != nil {
			return nil, err
		}
		cs, err := in.ContainerStates(ctx, byMachine[m])
		if err != nil {
			return nil, fmt.Errorf("machine %s: %w", m, err)
		}
		out = append(out, qualify(m, cs)...)
	}
	return out, nil
}

func qualify(name string, rs []drivers.ObservedResource) []drivers.ObservedResource {
	for i := range rs {
		rs[i].ID = name + "/" + rs[i].ID
	}
	return rs
}

// split takes a "MACHINE/ID" apart.
func split(id string) (string, string, error) {
	m, inner, ok := strings.Cut(id, "/")
	if !ok || m == "" || inner == "" {
		return "", "", fmt.Errorf("object ID %q is not MACHINE/ID (an OrbStack backend ID)", id)
	}
	return m, inner, nil
}

// routed is the engine of the machine an ID names, and the ID there.
func (d *Driver) routed(ctx context.Context, id string) (*docker.Driver, string, error) {
	m, inner, err := split(id)
	if err != nil {
		return nil, "", err
	}
	in, err := d.engine(ctx, m)
	return in, inner, err
}

// EnsureImage makes the image on the host engine (built or pulled there,
// as the docker backend does); Create streams it into the machine.
func (d *Driver) EnsureImage(ctx context.Context, img drivers.ImageSpec, progress io.Writer) (string, error) {
	return d.host.EnsureImage(ctx, img, progress)
}

// Create creates r in its instance's machine (PrepareInstance made it).
// A container's image is streamed into the machine first when the machine
// lacks its image ID.
func (d *Driver) Create(ctx context.Context, r drivers.Resource) (string, error) {
	name := MachineName(r.Labels[drivers.LabelFleet], r.Labels[drivers.LabelInstance])
	in, err := d.engine(ctx, name)
	if err != nil {
		return "", err
	}
	if r.Kind == drivers.KindContainer && r.Container != nil {
		if err := d.transferImage(ctx, name, in, r.Container.Image.Ref); err != nil {
			return "", err
		}
	}
	id, err := in.Create(ctx, r)
	if err != nil {
		return "", fmt.Errorf("machine %s: %w", name, err)
	}
	return name + "/" + id, nil
}

// Start starts a container in its machine.
func (d *Driver) Start(ctx context.Context, id string) error {
	in, cid, err := d.routed(ctx, id)
	if err != nil {
		return err
	}
	return in.Start(ctx, cid)
}

// Stop stops a container; the machine stays up.
func (d *Driver) Stop(ctx context.Context, id string) error {
	in, cid, err := d.routed(ctx, id)
	if err != nil {
		return err
	}
	return in.Stop(ctx, cid)
}

// Remove removes an object from its machine; a machine already gone has
// nothing left to remove.
func (d *Driver) Remove(ctx context.Context, kind drivers.Kind, id string) error {
	m, cid, err := split(id)
	if err != nil {
		return err
	}
	if gone, err := d.machineGone(ctx, m); err != nil || gone {
		return err
	}
	in, err := d.engine(ctx, m)
	if err != nil {
		return err
	}
	return in.Remove(ctx, kind, cid)
}

func (d *Driver) machineGone(ctx context.Context, name string) (bool, error) {
	ms, err := d.orb.list(ctx)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if m.Name == name {
			return false, nil
		}
	}
	return true, nil
}

// WaitReady waits for a container's probe in its machine.
func (d *Driver) WaitReady(ctx context.Context, id string, probe drivers.ReadyProbe) error {
	in, cid, err := d.routed(ctx, id)
	if err != nil {
		return err
	}
	return in.WaitReady(ctx, cid, probe)
}

// Seed copies a host directory into a created container's volume, through
// the machine's engine.
func (d *Driver) Seed(ctx context.Context, containerID, target, srcDir string) error {
	in, cid, err := d.routed(ctx, containerID)
	if err != nil {
		return err
	}
	return in.Seed(ctx, cid, target, srcDir)
}

// Exec runs a command in a container in its machine.
func (d *Driver) Exec(ctx context.Context, containerID string, opts drivers.ExecOptions) (drivers.ExecSession, error) {
	in, cid, err := d.routed(ctx, containerID)
	if err != nil {
		return nil, err
	}
	return in.Exec(ctx, cid, opts)
}

// ContainerLogStream streams a container's output from its machine.
func (d *Driver) ContainerLogStream(ctx context.Context, containerID string, opts drivers.LogOptions) (io.ReadCloser, error) {
	in, cid, err := d.routed(ctx, containerID)
	if err != nil {
		return nil, err
	}
	return in.ContainerLogStream(ctx, cid, opts)
}

// ContainerLogTail reads a container's last lines from its machine.
func (d *Driver) ContainerLogTail(ctx context.Context, id string, lines int) ([]string, error) {
	in, cid, err := d.routed(ctx, id)
	if err != nil {
		return nil, err
	}
	return in.ContainerLogTail(ctx, cid, lines)
}

// ContainerLogs reads a container's stdout lines from its machine.
func (d *Driver) ContainerLogs(ctx context.Context, id string, since time.Time) ([]drivers.LogLine, error) {
	in, cid, err := d.routed(ctx, id)
	if err != nil {
		return nil, err
	}
	return in.ContainerLogs(ctx, cid, since)
}

// FindAgents finds an instance's agent container in the machines of fleet
// (every fleet's when fleet is "").
func (d *Driver) FindAgents(ctx context.Context, fleet, instance string) ([]drivers.ObservedResource, error) {
	ms, marks, err := d.machines(ctx, fleet)
	if err != nil {
		return nil, err
	}
	var out []drivers.ObservedResource
	for _, m := range ms {
		if marks[m.Name].Instance != instance {
			continue
		}
		in, err := d.engine(ctx, m.Name)
		if err != nil {
			return nil, err
		}
		found, err := in.FindAgents(ctx, marks[m.Name].Fleet, instance)
		if err != nil {
			return nil, fmt.Errorf("machine %s: %w", m.Name, err)
		}
		out = append(out, qualify(m.Name, found)...)
	}
	return out, nil
}
