// Package fake is an in-memory drivers.Driver for planner and executor unit
// tests only. It keeps objects by ID with their labels and container states,
// behaves like an engine where it matters to the reconciler (names are
// unique, a container needs its image and networks, a network with attached
// containers cannot be removed), counts calls per method, records the order
// of mutating calls and the highest number of calls in flight at once,
// injects failures, and simulates drift (a killed or stopped container, a
// removed network, a re-tagged image).
package fake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackin-dev/jackin/drivers"
)

// Method names, as used by Calls, FailOn and the call log.
const (
	MethodPing        = "Ping"
	MethodObserve     = "Observe"
	MethodEnsureImage = "EnsureImage"
	MethodCreate      = "Create"
	MethodStart       = "Start"
	MethodStop        = "Stop"
	MethodRemove      = "Remove"
	MethodEvents      = "Events"
	MethodWaitReady   = "WaitReady"
)

// WaitReady is in the call log, so tests see it between the starts it
// orders.
var mutating = map[string]bool{MethodEnsureImage: true, MethodCreate: true, MethodStart: true, MethodStop: true, MethodRemove: true, MethodWaitReady: true}

// Object is one object held by the fake backend.
type Object struct {
	drivers.ObservedResource
	// Resource is the spec it was created from (zero for seeded objects).
	Resource drivers.Resource
}

// Driver is the in-memory backend. The zero value is not usable: use New.
type Driver struct {
	mu       sync.Mutex
	objects  map[string]*Object // by ID
	images   map[string]string  // ref -> image ID
	calls    map[string]int
	log      []string
	failures map[string]error // method + "\x00" + name
	nextID   int
	clock    time.Time

	inflight, maxInflight int

	// Delay is slept inside every mutating call, while it counts as in
	// flight (to measure concurrency). Set it before use.
	Delay time.Duration
	// BeforeCall, when set, runs at the start of every call with the method
	// and the object name (or image reference). Set it before use.
	BeforeCall   func(method, name string)
	crashOnStart map[string]int // exit status, see SetCrashOnStart

	subscribers []chan drivers.Event
	subErrs     []chan error
	subFleets   []string // the fleet each stream is for
}

// New returns an empty fake backend.
func New() *Driver {
	return &Driver{
		objects:  map[string]*Object{},
		images:   map[string]string{},
		calls:    map[string]int{},
		failures: map[string]error{},
		clock:    time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

var _ drivers.Driver = (*Driver)(nil)

// Name implements drivers.Driver.
func (d *Driver) Name() string { return "fake" }

// Endpoint implements drivers.Driver.
func (d *Driver) Endpoint() string { return "fake://memory" }

// FailOn makes every later call of method on the object or image named name
// fail with err. name is an object name ("jk-demo-web", which matches a
// network and a container alike), a kind and a name ("container jk-demo-web"),
// an image reference for EnsureImage, or "*" for any. A nil err clears the
// failure.
func (d *Driver) FailOn(method, name string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := method + "\x00" + name
	if err == nil {
		delete(d.failures, key)
		return
	}
	d.failures[key] = err
}

// ClearFailures removes every injected failure.
func (d *Driver) ClearFailures() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failures = map[string]error{}
}

// Calls returns the number of calls per method.
func (d *Driver) Calls() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]int, len(d.calls))
	for k, v := range d.calls {
		out[k] = v
	}
	return out
}

// MutatingCalls returns the number of calls that may change the backend
// (EnsureImage, Create, Start, Stop, Remove), failed ones included.
func (d *Driver) MutatingCalls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for m, c := range d.calls {
		if mutating[m] {
			n += c
		}
	}
	return n
}

// CallLog returns the mutating calls in the order they were made, as
// "Method kind name" ("Create network jk-demo-web") or "EnsureImage ref".
func (d *Driver) CallLog() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.log...)
}

// ResetCalls clears the call counts, the call log and the concurrency peak.
func (d *Driver) ResetCalls() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = map[string]int{}
	d.log = nil
	d.maxInflight = 0
}

// MaxConcurrent returns the highest number of mutating calls that were in
// flight at once.
func (d *Driver) MaxConcurrent() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.maxInflight
}

// begin counts a call and returns the injected failure, if any. For
// mutating calls it marks the call in flight; the caller must call end.
func (d *Driver) begin(method, desc, name string) error {
	if d.BeforeCall != nil {
		d.BeforeCall(method, name)
	}
	d.mu.Lock()
	d.calls[method]++
	if mutating[method] {
		d.log = append(d.log, strings.TrimSpace(method+" "+desc))
		d.inflight++
		if d.inflight > d.maxInflight {
			d.maxInflight = d.inflight
		}
	}
	var err error
	for _, key := range []string{name, desc, "*"} {
		if e := d.failures[method+"\x00"+key]; e != nil {
			err = e
			break
		}
	}
	d.mu.Unlock()
	if mutating[method] && d.Delay > 0 {
		time.Sleep(d.Delay)
	}
	return err
}

func (d *Driver) end(method string) {
	if !mutating[method] {
		return
	}
	d.mu.Lock()
	d.inflight--
	d.mu.Unlock()
}

// Ping implements drivers.Driver.
func (d *Driver) Ping(ctx context.Context) error {
	defer d.end(MethodPing)
	if err := d.begin(MethodPing, "", ""); err != nil {
		return err
	}
	return ctx.Err()
}

// Observe implements drivers.Driver: the fleet's jackin-managed objects,
// sorted by name, and the IDs of the given image references present.
func (d *Driver) Observe(ctx context.Context, fleet string, imageRefs []string) (*drivers.Observed, error) {
	defer d.end(MethodObserve)
	if err := d.begin(MethodObserve, "", fleet); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	obs := &drivers.Observed{Images: map[string]string{}}
	for _, o := range d.sortedLocked() {
		if o.Labels[drivers.LabelManagedBy] != drivers.ManagedByValue || o.Labels[drivers.LabelFleet] != fleet {
			continue
		}
		r := copyObserved(o.ObservedResource)
		switch o.Kind {
		case drivers.KindNetwork:
			obs.Networks = append(obs.Networks, r)
		case drivers.KindVolume:
			obs.Volumes = append(obs.Volumes, r)
		case drivers.KindContainer:
			obs.Containers = append(obs.Containers, r)
		}
	}
	for _, ref := range imageRefs {
		if id, ok := d.images[ref]; ok {
			obs.Images[ref] = id
		}
	}
	return obs, nil
}

// EnsureImage implements drivers.Driver: a present reference returns its ID;
// otherwise the "build" or "pull" succeeds with an ID derived from the
// reference, unless a failure is injected for it.
func (d *Driver) EnsureImage(ctx context.Context, img drivers.ImageSpec, progress io.Writer) (string, error) {
	defer d.end(MethodEnsureImage)
	if err := d.begin(MethodEnsureImage, img.Ref, img.Ref); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if id, ok := d.images[img.Ref]; ok {
		return id, nil
	}
	verb := "pulled"
	if img.Build != nil {
		verb = "built"
	}
	id := ImageID(img.Ref)
	d.images[img.Ref] = id
	if progress != nil {
		fmt.Fprintf(progress, "%s %s\n", verb, img.Ref)
	}
	return id, nil
}

// Create implements drivers.Driver.
func (d *Driver) Create(ctx context.Context, r drivers.Resource) (string, error) {
	defer d.end(MethodCreate)
	if err := d.begin(MethodCreate, string(r.Kind)+" "+r.Name, r.Name); err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, o := range d.objects {
		if o.Kind != r.Kind || o.Name != r.Name {
			continue
		}
		owner := "unlabelled"
		if o.Labels[drivers.LabelManagedBy] == drivers.ManagedByValue {
			owner = "fleet " + o.Labels[drivers.LabelFleet]
		}
		return "", &drivers.ErrNameConflict{Kind: r.Kind, Name: r.Name, ID: o.ID, Owner: owner, Instance: o.Labels[drivers.LabelInstance]}
	}
	o := &Object{Resource: r}
	o.Kind, o.Name, o.Labels = r.Kind, r.Name, copyLabels(r.Labels)
	switch r.Kind {
	case drivers.KindContainer:
		if r.Container == nil {
			return "", fmt.Errorf("container %s: no container spec", r.Name)
		}
		id, ok := d.images[r.Container.Image.Ref]
		if !ok {
			return "", fmt.Errorf("container %s: no such image: %s", r.Name, r.Container.Image.Ref)
		}
		for _, n := range r.Container.Networks {
			if d.findLocked(drivers.KindNetwork, n) == nil {
				return "", fmt.Errorf("container %s: network %s not found", r.Name, n)
			}
		}
		o.State, o.Status = drivers.StateCreated, "Created"
		o.Image, o.ImageID = r.Container.Image.Ref, id
		o.Networks = append([]string(nil), r.Container.Networks...)
	case drivers.KindNetwork, drivers.KindVolume:
	default:
		return "", fmt.Errorf("%s: unknown kind %q", r.Name, r.Kind)
	}
	d.addLocked(o)
	return o.ID, nil
}

// Start implements drivers.Driver.
func (d *Driver) Start(ctx context.Context, id string) error {
	return d.containerCall(MethodStart, id, func(o *Object) error {
		for _, n := range o.Networks {
			if d.findLocked(drivers.KindNetwork, n) == nil {
				return fmt.Errorf("start %s: network %s not found", o.Name, n)
			}
		}
		o.State, o.Status = drivers.StateRunning, "Up Less than a second"
		if code := d.crashOnStart[o.Name]; code != 0 {
			o.State, o.Status = drivers.StateExited, fmt.Sprintf("Exited (%d) Less than a second ago", code)
			d.emitLocked(containerEvent(o, drivers.EventDie, strconv.Itoa(code)), o.Labels[drivers.LabelFleet])
		}
		return nil
	})
}

var _ drivers.ReadyWaiter = (*Driver)(nil)

// WaitReady implements drivers.ReadyWaiter: a running container is ready at
// once (FailOn(MethodWaitReady, name, err) makes it never ready).
func (d *Driver) WaitReady(ctx context.Context, id string, probe drivers.ReadyProbe) error {
	return d.containerCall(MethodWaitReady, id, func(o *Object) error {
		if o.State != drivers.StateRunning {
			return fmt.Errorf("%s is %s, not running", o.Name, o.State)
		}
		return nil
	})
}

// Stop implements drivers.Driver.
func (d *Driver) Stop(ctx context.Context, id string) error {
	return d.containerCall(MethodStop, id, func(o *Object) error {
		if o.State == drivers.StateRunning || o.State == drivers.StateRestarting || o.State == drivers.StatePaused {
			o.State, o.Status = drivers.StateExited, "Exited (0) Less than a second ago"
		}
		return nil
	})
}

func (d *Driver) containerCall(method, id string, fn func(o *Object) error) error {
	defer d.end(method)
	d.mu.Lock()
	o := d.objects[id]
	name := id
	if o != nil {
		name = o.Name
	}
	d.mu.Unlock()
	if err := d.begin(method, "container "+name, name); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	o = d.objects[id]
	if o == nil || o.Kind != drivers.KindContainer {
		return fmt.Errorf("no such container: %s", id)
	}
	return fn(o)
}

// Remove implements drivers.Driver. Removing something already gone is not
// an error; a network with attached containers cannot be removed.
func (d *Driver) Remove(ctx context.Context, kind drivers.Kind, id string) error {
	defer d.end(MethodRemove)
	d.mu.Lock()
	name := id
	if o := d.objects[id]; o != nil {
		name = o.Name
	}
	d.mu.Unlock()
	if err := d.begin(MethodRemove, string(kind)+" "+name, name); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.objects[id]
	if o == nil {
		return nil
	}
	if o.Kind != kind {
		return fmt.Errorf("remove %s %s: it is a %s", kind, id, o.Kind)
	}
	if kind == drivers.KindNetwork {
		for _, c := range d.objects {
			if c.Kind == drivers.KindContainer && contains(c.Networks, o.Name) {
				return fmt.Errorf("remove network %s: it has active endpoints (%s)", o.Name, c.Name)
			}
		}
	}
	delete(d.objects, id)
	return nil
}

// --- state setup and drift ---

// AddImage makes an image reference present locally with the given ID.
func (d *Driver) AddImage(ref, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.images[ref] = id
}

// SetImageID re-tags a reference to another image ID (a rebuilt or
// re-pulled tag), which the planner sees as image drift.
func (d *Driver) SetImageID(ref, id string) { d.AddImage(ref, id) }

// RemoveImage removes a local image reference.
func (d *Driver) RemoveImage(ref string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.images, ref)
}

// Seed adds an object as is (an unlabelled squatter, a duplicate, another
// fleet's object) and returns its ID. An empty ID is generated.
func (d *Driver) Seed(r drivers.ObservedResource) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	o := &Object{ObservedResource: copyObserved(r)}
	d.addLocked(o)
	return o.ID
}

// Object returns a copy of the object of the given kind and name.
func (d *Driver) Object(kind drivers.Kind, name string) (Object, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.findLocked(kind, name)
	if o == nil {
		return Object{}, false
	}
	c := *o
	c.ObservedResource = copyObserved(o.ObservedResource)
	return c, true
}

// Objects returns copies of every object, sorted by kind and name.
func (d *Driver) Objects() []Object {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Object
	for _, o := range d.sortedLocked() {
		c := *o
		c.ObservedResource = copyObserved(o.ObservedResource)
		out = append(out, c)
	}
	return out
}

// Kill simulates `docker kill` done out of band: exited with code 137, with
// a kill event then a die event.
func (d *Driver) Kill(name string) error {
	if err := d.setState(name, drivers.StateExited, "Exited (137) Less than a second ago"); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if o := d.findLocked(drivers.KindContainer, name); o != nil {
		d.emitLocked(containerEvent(o, drivers.EventKill, ""), o.Labels[drivers.LabelFleet])
		d.emitLocked(containerEvent(o, drivers.EventDie, "137"), o.Labels[drivers.LabelFleet])
	}
	return nil
}

var _ drivers.EventSource = (*Driver)(nil)

// Events implements drivers.EventSource: events of the fleet's objects
// (Kill, a crash on start) reach the streams opened for that fleet, as the
// engine filters by label; an event given to Emit reaches every stream.
func (d *Driver) Events(ctx context.Context, fleet string) (<-chan drivers.Event, <-chan error, error) {
	if err := d.begin(MethodEvents, "", fleet); err != nil {
		return nil, nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ch := make(chan drivers.Event, 256)
	errs := make(chan error, 1)
	d.subscribers = append(d.subscribers, ch)
	d.subErrs = append(d.subErrs, errs)
	d.subFleets = append(d.subFleets, fleet)
	go func() {
		<-ctx.Done()
		d.mu.Lock()
		defer d.mu.Unlock()
		d.closeStreamLocked(ch, ctx.Err())
	}()
	return ch, errs, nil
}

// SetCrashOnStart makes the named container exit as soon as it starts, with
// a die event, like an agent whose command fails at once (or stop doing so).
func (d *Driver) SetCrashOnStart(name string, crash bool) {
	code := 0
	if crash {
		code = 1
	}
	d.SetExitOnStart(name, code)
}

// SetExitOnStart makes the named container exit with code as soon as it
// starts (137: as the kernel's OOM killer leaves it); 0 stops doing so.
func (d *Driver) SetExitOnStart(name string, code int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.crashOnStart == nil {
		d.crashOnStart = map[string]int{}
	}
	d.crashOnStart[name] = code
}

// Emit sends an event to every open stream.
func (d *Driver) Emit(ev drivers.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.emitLocked(ev, "")
}

// EndStreams ends every open event stream with err, as an engine restart does.
func (d *Driver) EndStreams(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.subscribers) > 0 {
		d.closeStreamLocked(d.subscribers[0], err)
	}
}

// Streams returns how many event streams are open.
func (d *Driver) Streams() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.subscribers)
}

func (d *Driver) closeStreamLocked(ch chan drivers.Event, err error) {
	for i, c := range d.subscribers {
		if c == ch {
			d.subErrs[i] <- err
			close(d.subErrs[i])
			close(c)
			d.subscribers = append(d.subscribers[:i], d.subscribers[i+1:]...)
			d.subErrs = append(d.subErrs[:i], d.subErrs[i+1:]...)
			d.subFleets = append(d.subFleets[:i], d.subFleets[i+1:]...)
			return
		}
	}
}

// emitLocked delivers ev to the streams of fleet ("": every stream).
func (d *Driver) emitLocked(ev drivers.Event, fleet string) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	for i, c := range d.subscribers {
		if fleet != "" && d.subFleets[i] != fleet {
			continue
		}
		select {
		case c <- ev:
		default: // a stalled reader loses events, as with a real engine
		}
	}
}

func containerEvent(o *Object, action, exit string) drivers.Event {
	return drivers.Event{
		Kind: drivers.KindContainer, Action: action, ID: o.ID, Name: o.Name,
		Instance: o.Labels[drivers.LabelInstance], Component: o.Labels[drivers.LabelComponent],
		ExitCode: exit, Time: time.Now(),
	}
}

// StopContainer simulates `docker stop` done out of band.
func (d *Driver) StopContainer(name string) error {
	return d.setState(name, drivers.StateExited, "Exited (0) Less than a second ago")
}

// SetState sets a container's state and status as the engine would report them.
func (d *Driver) SetState(name, state, status string) error { return d.setState(name, state, status) }

func (d *Driver) setState(name, state, status string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.findLocked(drivers.KindContainer, name)
	if o == nil {
		return fmt.Errorf("no container named %s", name)
	}
	o.State, o.Status = state, status
	return nil
}

// RemoveContainer simulates `docker rm -f` done out of band.
func (d *Driver) RemoveContainer(name string) error {
	return d.removeNamed(drivers.KindContainer, name)
}

// RemoveNetwork simulates `docker network disconnect -f` of every container
// then `docker network rm`, done out of band.
func (d *Driver) RemoveNetwork(name string) error {
	if err := d.removeNamed(drivers.KindNetwork, name); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, o := range d.objects {
		if o.Kind == drivers.KindContainer {
			o.Networks = without(o.Networks, name)
		}
	}
	return nil
}

// Disconnect simulates `docker network disconnect` of a container.
func (d *Driver) Disconnect(container, network string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.findLocked(drivers.KindContainer, container)
	if o == nil {
		return fmt.Errorf("no container named %s", container)
	}
	o.Networks = without(o.Networks, network)
	return nil
}

// SetLabel sets (or with an empty value removes) a label on an object.
func (d *Driver) SetLabel(kind drivers.Kind, name, key, value string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.findLocked(kind, name)
	if o == nil {
		return fmt.Errorf("no %s named %s", kind, name)
	}
	if value == "" {
		delete(o.Labels, key)
	} else {
		o.Labels[key] = value
	}
	return nil
}

func (d *Driver) removeNamed(kind drivers.Kind, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.findLocked(kind, name)
	if o == nil {
		return fmt.Errorf("no %s named %s", kind, name)
	}
	delete(d.objects, o.ID)
	return nil
}

// ImageID is the ID the fake gives an image it pulls or builds.
func ImageID(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (d *Driver) addLocked(o *Object) {
	d.nextID++
	if o.ID == "" {
		o.ID = fmt.Sprintf("%s%063d", string(o.Kind[0]), d.nextID)
	}
	if o.Created.IsZero() {
		o.Created = d.clock.Add(time.Duration(d.nextID) * time.Second)
	}
	if o.Labels == nil {
		o.Labels = map[string]string{}
	}
	d.objects[o.ID] = o
}

func (d *Driver) findLocked(kind drivers.Kind, name string) *Object {
	for _, o := range d.sortedLocked() {
		if o.Kind == kind && o.Name == name {
			return o
		}
	}
	return nil
}

func (d *Driver) sortedLocked() []*Object {
	out := make([]*Object, 0, len(d.objects))
	for _, o := range d.objects {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func copyObserved(r drivers.ObservedResource) drivers.ObservedResource {
	r.Labels = copyLabels(r.Labels)
	r.Networks = append([]string(nil), r.Networks...)
	return r
}

func copyLabels(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func without(list []string, s string) []string {
	var out []string
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
