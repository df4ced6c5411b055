package orbstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/docker"
	"github.com/jackin-dev/jackin/schema"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// Share is one host path shared into a machine, and who enforces its
// read-only flag: OrbStack's shares have no documented read-only mode, so
// a read-only mount is enforced by the machine's Docker (`-v src:dst:ro`).
type Share struct {
	Path     string
	ReadOnly bool
	// Enforcement is "guest-enforced" for a read-only share, "" otherwise.
	Enforcement string
}

// machineLocal are bind sources that are the machine's own, never shares
// (the private daemon's cgroup bind).
func machineLocal(p string) bool {
	for _, pre := range []string{"/sys/", "/proc/", "/dev/"} {
		if p+"/" == pre || strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}

// Shares are the host paths an instance's resources bind: exactly its
// mount sources, each once (read-only only when every bind of it is).
func Shares(rs []drivers.Resource) []Share {
	ro := map[string]bool{}
	for _, r := range rs {
		if r.Kind != drivers.KindContainer || r.Container == nil {
			continue
		}
		for _, m := range r.Container.Mounts {
			if m.Type != "bind" || machineLocal(m.Source) {
				continue
			}
			prev, seen := ro[m.Source]
			ro[m.Source] = m.ReadOnly && (!seen || prev)
		}
	}
	out := make([]Share, 0, len(ro))
	for p, r := range ro {
		s := Share{Path: p, ReadOnly: r}
		if r {
			s.Enforcement = "guest-enforced"
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func sharePaths(ss []Share) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Path
	}
	return out
}

// PrepareInstance makes the instance's machine, or adopts the one a
// previous apply made (its marker names the fleet and instance), starts it
// when stopped, and waits until its Docker engine answers. A machine it
// makes gets its images' export from the host started first (spool.go),
// for StageImages to hand to the transfer or give up.
func (d *Driver) PrepareInstance(ctx context.Context, setup drivers.InstanceSetup) error {
	err := d.prepareInstance(ctx, setup)
	if err != nil {
		// Exports begun for a machine that is not ready go with it.
		d.dropSpools(MachineName(setup.Fleet, setup.Instance.Name), nil)
	}
	return err
}

func (d *Driver) prepareInstance(ctx context.Context, setup drivers.InstanceSetup) error {
	inst := setup.Instance
	name := MachineName(setup.Fleet, inst.Name)
	opts := inst.OrbStack
	if opts == nil {
		opts = &schema.OrbStack{Distro: schema.DefaultOrbDistro, BlockHostNetwork: true, SSHAgent: "off"}
	}
	shares := Shares(setup.Resources)
	// The list this command's Observe read, when it lacks the machine: a
	// machine made since makes orb create fail with "already exists", and
	// is then adopted below. One that names it is listed again, fresh.
	d.mu.Lock()
	all := d.listed
	d.mu.Unlock()
	if all == nil || slices.ContainsFunc(all, func(m machine) bool { return m.Name == name }) {
		var err error
		if all, err = d.orb.list(ctx); err != nil {
			return err
		}
	}
	var found *machine
	for i := range all {
		if all[i].Name == name {
			found = &all[i]
		}
	}
	if found == nil {
		// A new machine lacks every image: their export from the host
		// runs beside the machine's making.
		d.startSpools(ctx, name, setup.Resources)
		err := d.create(ctx, name, setup.Fleet, inst.Name, opts, shares)
		var oe *orbError
		if !errors.As(err, &oe) || !strings.Contains(oe.stderr, "already exists") {
			if err != nil {
				return err
			}
			return d.waitEngine(ctx, name)
		}
		// Made meanwhile (an interrupted apply's orb create finishing):
		// adopted like any machine of the instance's.
		if all, err = d.orb.list(ctx); err != nil {
			return err
		}
		for i := range all {
			if all[i].Name == name {
				found = &all[i]
			}
		}
		if found == nil {
			return fmt.Errorf("create machine %s: %w", name, oe)
		}
	}
	if err := d.adopt(ctx, *found, setup.Fleet, inst.Name, opts, shares); err != nil {
		return err
	}
	return d.waitEngine(ctx, name)
}

// StageImages starts streaming the images of the containers in setup into
// their machine (PrepareInstance made it ready) while the executor creates
// the objects that need none. The transfer holds the machine's image lock,
// so a container's Create waits for it and then finds its image there, or
// returns the error the staged transfer met; settle cancels whatever is
// still running and waits for it to end.
func (d *Driver) StageImages(ctx context.Context, setup drivers.InstanceSetup) (settle func()) {
	name := MachineName(setup.Fleet, setup.Instance.Name)
	in, err := d.engine(ctx, name)
	if err != nil {
		d.dropSpools(name, nil)
		return func() {}
	}
	// Which images the machine lacks is asked here, on the engine
	// connection the wait for the engine left idle.
	var refs []string
	seen := map[string]bool{}
	for _, r := range setup.Resources {
		if r.Kind != drivers.KindContainer || r.Container == nil || seen[r.Container.Image.Ref] {
			continue
		}
		ref := r.Container.Image.Ref
		seen[ref] = true
		if need, err := d.needsImage(ctx, name, in, ref); err == nil && need {
			refs = append(refs, ref)
		}
	}
	// An export begun for an image the machine turned out to have (or
	// that no container of this action uses) is given up.
	d.dropSpools(name, refs)
	if len(refs) == 0 {
		return func() {}
	}
	tctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	mu := d.imageLock(name)
	mu.Lock() // taken here, so no Create can start a transfer of its own first
	// The machine's lack of refs was asked just above, and one instance
	// has one action at a time: asking again here would take a second
	// engine connection beside the executor's first create.
	go func() {
		defer close(done)
		defer mu.Unlock()
		for _, ref := range refs {
			err := d.loadImage(tctx, name, in, ref)
			if err == nil || tctx.Err() != nil {
				continue
			}
			d.log.V(2).Info("staged image transfer failed", "machine", name, "ref", ref, "error", err.Error())
			d.mu.Lock()
			d.stageErr[machineImage{name, ref}] = err
			d.mu.Unlock()
		}
	}()
	return func() {
		cancel()
		<-done
		d.dropSpools(name, nil)
	}
}

// adopt checks that an existing machine is this instance's and has the
// shares it needs, and starts it when stopped.
func (d *Driver) adopt(ctx context.Context, m machine, fleet, instance string, opts *schema.OrbStack, shares []Share) error {
	if m.State == stateStopped {
		d.log.V(2).Info("starting machine", "machine", m.Name)
		if _, err := d.orb.run(ctx, nil, "start", m.Name); err != nil {
			return err
		}
		m.State = stateRunning
	}
	mk, ok := d.markerOf(ctx, m)
	if !ok {
		// Made by an apply interrupted before cloud-init wrote the
		// marker, or by someone else: wait for the engine, then look again.
		if err := d.waitEngine(ctx, m.Name); err != nil {
			return fmt.Errorf("machine %s exists and is not marked as jackin's (%s): jackin never removes machines it does not own: rename or delete it yourself (orb delete %s): %w", m.Name, MarkerPath, m.Name, err)
		}
		d.forgetMarker(m.ID)
		if mk, ok = d.markerOf(ctx, m); !ok {
			return fmt.Errorf("machine %s exists and is not marked as jackin's (%s): jackin never removes machines it does not own: rename or delete it yourself (orb delete %s)", m.Name, MarkerPath, m.Name)
		}
	}
	if mk.Fleet != fleet || mk.Instance != instance {
		return fmt.Errorf("machine %s belongs to instance %q of fleet %s: rename one of the instances", m.Name, mk.Instance, mk.Fleet)
	}
	// Fail closed: a machine made with other settings (the host network
	// open, the SSH agent forwarded, another distro) is never taken for
	// one that has what the manifest now asks.
	if mk.Distro != opts.Distro || mk.BlockHostNetwork != opts.BlockHostNetwork || orNone(mk.SSHAgent, "off") != orNone(opts.SSHAgent, "off") {
		return fmt.Errorf("machine %s was made with distro %s, blockHostNetwork %v, sshAgent %s, and the instance now asks for distro %s, blockHostNetwork %v, sshAgent %s; a machine's settings are fixed when it is made: delete the instance (jackin delete) and apply again",
			m.Name, mk.Distro, mk.BlockHostNetwork, orNone(mk.SSHAgent, "off"), opts.Distro, opts.BlockHostNetwork, orNone(opts.SSHAgent, "off"))
	}
	have := map[string]bool{}
	for _, p := range mk.Shares {
		have[p] = true
	}
	var missing []string
	for _, s := range shares {
		if !have[s.Path] {
			missing = append(missing, s.Path)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("machine %s was made without the share(s) %s, and a machine's shares are fixed when it is made: delete the instance (jackin delete) and apply again", m.Name, strings.Join(missing, ", "))
	}
	d.log.V(2).Info("machine adopted", "machine", m.Name, "shares", len(mk.Shares))
	return nil
}

func (d *Driver) forgetMarker(id string) {
	d.mu.Lock()
	delete(d.owners, id)
	d.mu.Unlock()
}

// create makes the machine: isolated, with exactly the instance's shares,
// the host network blocked unless the manifest opens it, no SSH agent
// unless it asks, and cloud-init installing Docker and the marker.
func (d *Driver) create(ctx context.Context, name, fleet, instance string, opts *schema.OrbStack, shares []Share) error {
	d.mu.Lock()
	v := d.version
	d.mu.Unlock()
	if v == (semver{}) {
		if err := d.Ping(ctx); err != nil {
			return err
		}
	}
	ud, err := userData(marker{Backend: Backend, Fleet: fleet, Instance: instance, Shares: sharePaths(shares),
		Distro: opts.Distro, BlockHostNetwork: opts.BlockHostNetwork, SSHAgent: opts.SSHAgent})
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "jackin-orb-user-data-*.yaml")
	if err != nil {
		return fmt.Errorf("machine %s: write its cloud-init user data: %w", name, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(ud); err != nil {
		f.Close()
		return fmt.Errorf("machine %s: write its cloud-init user data: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	args := []string{"create", "--isolated"}
	if opts.BlockHostNetwork {
		args = append(args, "--isolate-network")
	}
	if opts.SSHAgent == "on" {
		args = append(args, "--forward-ssh-agent")
	}
	for _, s := range shares {
		if !filepath.IsAbs(s.Path) {
			return fmt.Errorf("machine %s: share %q is not an absolute path", name, s.Path)
		}
		args = append(args, "--mount", s.Path+":"+s.Path)
	}
	args = append(args, "-c", f.Name(), opts.Distro, name)
	d.log.V(2).Info("creating machine", "machine", name, "distro", opts.Distro, "shares", len(shares),
		"blockHostNetwork", opts.BlockHostNetwork, "sshAgentForwarding", opts.SSHAgent)
	for _, s := range shares {
		d.log.V(2).Info("machine share", "machine", name, "path", s.Path, "readOnly", s.ReadOnly, "enforcement", orNone(s.Enforcement, "rw"))
	}
	start := time.Now()
	if _, err := d.orb.run(ctx, nil, args...); err != nil {
		var oe *orbError
		if errors.As(err, &oe) && opts.BlockHostNetwork && strings.Contains(oe.stderr, "isolate-network") {
			// Fail closed: never a machine that can reach the host when
			// the manifest asked for one that cannot.
			return fmt.Errorf("machine %s: the installed OrbStack cannot block the host network (--isolate-network refused), and the instance asks for it (orbstack.blockHostNetwork, default true): update OrbStack, or set blockHostNetwork: false to accept an open host network: %w", name, err)
		}
		if errors.As(err, &oe) && strings.Contains(oe.stderr, "isolated") {
			return fmt.Errorf("machine %s: the installed OrbStack cannot make isolated machines: update OrbStack to %s or later: %w", name, MinVersion, err)
		}
		return fmt.Errorf("create machine %s: %w", name, err)
	}
	d.log.V(2).Info("machine created", "machine", name, "elapsed", time.Since(start).String())
	return nil
}

// waitEngine waits until the machine's Docker engine answers (cloud-init
// may still be installing it), for at most the ready timeout.
func (d *Driver) waitEngine(ctx context.Context, name string) error {
	in, err := d.engine(ctx, name)
	if err != nil {
		return err
	}
	// A second connection is started beside the wait: the executor's
	// first create and the image load then run at once, neither waiting
	// for an orb command to start. It is given up with the wait.
	d.mu.Lock()
	sp := d.spares[name] // nil when the machine was forgotten meanwhile
	d.mu.Unlock()
	fillCtx, stopFill := context.WithTimeout(context.WithoutCancel(ctx), d.readyTimeout)
	if sp != nil {
		go func() {
			defer stopFill()
			if err := sp.Fill(fillCtx, 200*time.Millisecond); err != nil {
				d.log.V(2).Info("no spare connection to the machine's engine", "machine", name, "error", err.Error())
			}
		}()
	}
	ready := false
	defer func() {
		if !ready {
			stopFill()
		}
	}()
	deadline := time.Now().Add(d.readyTimeout)
	delay := 100 * time.Millisecond
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		last = in.Ping(pctx)
		var ver client.ServerVersionResult
		if last == nil {
			ver, last = in.Client().ServerVersion(pctx, client.ServerVersionOptions{})
		}
		cancel()
		if last == nil {
			d.log.V(2).Info("machine docker ready", "machine", name, "dockerVersion", ver.Version, "api", ver.APIVersion)
			ready = true
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("machine %s: its Docker engine did not answer within %s (cloud-init installs docker.io; see `orb -m %s cloud-init status --long`): %w", name, d.readyTimeout, name, last)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		if delay < 2*time.Second {
			delay *= 2
		}
	}
}

// RemoveInstance deletes the instance's machine (`orb delete -f`), only
// when its marker says it is the instance's.
func (d *Driver) RemoveInstance(ctx context.Context, fleet, instance string) error {
	name := MachineName(fleet, instance)
	all, err := d.orb.list(ctx)
	if err != nil {
		return err
	}
	for _, m := range all {
		if m.Name != name {
			continue
		}
		// A stopped machine proves its owner too: reading its marker
		// starts it (orb runs a command in a stopped machine by starting
		// it). A machine of this name without this instance's marker is
		// someone else's, running or not, and is never deleted.
		mk, ok := d.markerOf(ctx, m)
		if !ok || mk.Fleet != fleet || mk.Instance != instance {
			d.log.Info("machine left alone: it does not carry this instance's marker (jackin never removes a machine it cannot prove is its own)", "machine", name, "state", m.State)
			return nil
		}
		_, err := d.orb.run(ctx, nil, "delete", "-f", name)
		d.log.V(2).Info("machine deleted", "machine", name, "error", errString(err))
		d.forget(name)
		if err != nil && !errors.Is(err, errMachineNotFound) {
			return err
		}
		return nil
	}
	d.forget(name)
	return nil
}

// CollectMachines deletes the fleet's machines whose instance is not in
// keep (an apply interrupted after making a machine, or an instance whose
// objects were all removed), and returns their names.
func (d *Driver) CollectMachines(ctx context.Context, fleet string, keep []string) ([]string, error) {
	want := map[string]bool{}
	for _, k := range keep {
		want[k] = true
	}
	ms, marks, err := d.machines(ctx, fleet)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, m := range ms {
		if want[marks[m.Name].Instance] {
			continue
		}
		if err := d.RemoveInstance(ctx, fleet, marks[m.Name].Instance); err != nil {
			return removed, err
		}
		d.log.V(2).Info("orphan machine collected", "machine", m.Name)
		removed = append(removed, m.Name)
	}
	return removed, nil
}

// transferImage streams ref from the host engine into the machine
// (`docker save` into `orb -m NAME -u root docker load`) unless the machine
// already holds the same image ID.
func (d *Driver) transferImage(ctx context.Context, name string, in *docker.Driver, ref string) error {
	mu := d.imageLock(name)
	mu.Lock()
	defer mu.Unlock()
	key := machineImage{name, ref}
	d.mu.Lock()
	staged, failed := d.stageErr[key]
	delete(d.stageErr, key)
	d.mu.Unlock()
	if failed {
		// Not streamed a second time: a large image would double the
		// time to the same error. The next apply tries again.
		return staged
	}
	return d.transferImageLocked(ctx, name, in, ref)
}

// imageLock serialises the image transfers into one machine.
func (d *Driver) imageLock(name string) *sync.Mutex {
	d.mu.Lock()
	defer d.mu.Unlock()
	mu, ok := d.imgMu[name]
	if !ok {
		mu = &sync.Mutex{}
		d.imgMu[name] = mu
	}
	return mu
}

// transferImageLocked is transferImage with the machine's image lock held.
func (d *Driver) transferImageLocked(ctx context.Context, name string, in *docker.Driver, ref string) error {
	need, err := d.needsImage(ctx, name, in, ref)
	if err != nil || !need {
		return err
	}
	return d.loadImage(ctx, name, in, ref)
}

// needsImage says whether the machine lacks the host's image ID of ref.
func (d *Driver) needsImage(ctx context.Context, name string, in *docker.Driver, ref string) (bool, error) {
	host, err := d.host.Client().ImageInspect(ctx, ref)
	if err != nil {
		return false, fmt.Errorf("image %s is not on the host engine (it is built there first): %w", ref, err)
	}
	if got, err := in.Client().ImageInspect(ctx, ref); err == nil && got.ID == host.ID {
		d.log.V(2).Info("image present in machine", "machine", name, "ref", ref, "id", host.ID)
		return false, nil
	}
	return true, nil
}

// loadImage streams ref from the host engine into the machine: `docker
// save` on the host into the machine engine's image load, over the same
// `orb -m NAME -u root docker system dial-stdio` connection every other request
// takes (what `orb -m NAME -u root docker load` would send, without starting a
// command for it).
func (d *Driver) loadImage(ctx context.Context, name string, in *docker.Driver, ref string) error {
	if sp := d.takeSpool(name, ref); sp != nil {
		defer sp.close()
		err := sp.failed()
		if err == nil {
			err = d.loadFrom(ctx, name, in, ref, sp.reader(ctx), sp.start)
			if err == nil || ctx.Err() != nil || sp.failed() == nil {
				// Done, interrupted, or refused by the machine: a second
				// stream would meet the same end.
				return err
			}
			err = sp.failed()
		}
		// The export broke (the spool's disk full, say), not the machine:
		// straight from the host engine instead.
		d.log.V(2).Info("image export failed; streaming it again", "machine", name, "ref", ref, "error", err.Error())
	}
	save, err := d.host.Client().ImageSave(ctx, []string{ref})
	if err != nil {
		return fmt.Errorf("save image %s from the host engine: %w", ref, err)
	}
	defer save.Close()
	return d.loadFrom(ctx, name, in, ref, save, time.Time{})
}

// loadFrom loads the image tar r into the machine's engine and logs the
// transfer; exportStart is when its spool's export began (zero: none).
func (d *Driver) loadFrom(ctx context.Context, name string, in *docker.Driver, ref string, r io.Reader, exportStart time.Time) error {
	start := time.Now()
	cr := &countingReader{r: r}
	if err := in.LoadImage(ctx, cr); err != nil {
		return fmt.Errorf("load image %s into machine %s: %w", ref, name, err)
	}
	kv := []any{"machine", name, "ref", ref, "bytes", cr.n, "ms", time.Since(start).Milliseconds()}
	if !exportStart.IsZero() {
		kv = append(kv, "exportStartedMsBefore", start.Sub(exportStart).Milliseconds())
	}
	d.log.V(2).Info("image transferred", kv...)
	return nil
}

// startSpools begins exporting, from the host engine, the image of every
// container in rs, for machine name (made now, so lacking them all).
func (d *Driver) startSpools(ctx context.Context, name string, rs []drivers.Resource) {
	save := func(ctx context.Context, ref string) (io.ReadCloser, error) {
		return d.host.Client().ImageSave(ctx, []string{ref})
	}
	for _, r := range rs {
		if r.Kind != drivers.KindContainer || r.Container == nil || r.Container.Image.Ref == "" {
			continue
		}
		ref := r.Container.Image.Ref
		key := machineImage{name, ref}
		d.mu.Lock()
		_, have := d.spools[key]
		d.mu.Unlock()
		if have {
			continue
		}
		size, why := d.reserveSpool(ctx, ref)
		if why != "" {
			d.log.V(2).Info("no early image export", "machine", name, "ref", ref, "reason", why)
			continue
		}
		// The export outlives this call: the transfer reads it, or the
		// action's end closes it.
		sp, err := startSpool(context.WithoutCancel(ctx), "", ref, save)
		if err != nil {
			d.releaseSpool(size)
			// Only a head start is lost: the transfer streams it.
			d.log.V(2).Info("no early image export", "machine", name, "ref", ref, "error", err.Error())
			continue
		}
		sp.release = func() { d.releaseSpool(size) }
		d.log.V(2).Info("image export started beside the machine's making", "machine", name, "ref", ref)
		d.mu.Lock()
		d.spools[key] = sp
		d.mu.Unlock()
	}
}

// spoolHeadroom is the space a spool leaves free beside its image.
const spoolHeadroom = 1 << 30

// reserveSpool says why ref is not spooled (why != ""), or reserves its
// size in the temporary directory: a spool that would fill the disk it
// shares with everything else (the machines' own disks among it, on a
// Mac) is not worth its head start, and the spools of instances made at
// once count together.
func (d *Driver) reserveSpool(ctx context.Context, ref string) (size int64, why string) {
	img, err := d.host.Client().ImageInspect(ctx, ref)
	if err != nil {
		return 0, "the host engine does not have it: " + err.Error()
	}
	size = max(img.Size, 0)
	dir := os.TempDir()
	free, known := freeSpace(dir)
	d.mu.Lock()
	defer d.mu.Unlock()
	if known && free < uint64(d.spoolReserved+size)+spoolHeadroom {
		return 0, fmt.Sprintf("%s has %d MiB free, the image is %d MiB and the exports under way hold %d MiB", dir, free>>20, size>>20, d.spoolReserved>>20)
	}
	d.spoolReserved += size
	return size, ""
}

// releaseSpool gives back a closed spool's reservation.
func (d *Driver) releaseSpool(size int64) {
	d.mu.Lock()
	d.spoolReserved -= size
	d.mu.Unlock()
}

// takeSpool hands out the export of ref for machine name, if one runs.
func (d *Driver) takeSpool(name, ref string) *imageSpool {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := machineImage{name, ref}
	sp := d.spools[key]
	delete(d.spools, key)
	return sp
}

// dropSpools closes machine name's exports, but for those of keep.
func (d *Driver) dropSpools(name string, keep []string) {
	var drop []*imageSpool
	d.mu.Lock()
	for key, sp := range d.spools {
		if key.machine == name && !slices.Contains(keep, key.ref) {
			drop = append(drop, sp)
			delete(d.spools, key)
		}
	}
	d.mu.Unlock()
	for _, sp := range drop {
		sp.close()
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func orNone(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
