package docker

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"

	"github.com/jackin-dev/jackin/drivers"
)

// Create creates r and returns its ID (a volume's ID is its name). Networks
// and volumes that already exist for the same fleet are returned as they are;
// a name taken by an object jackin does not own for this fleet is a
// *drivers.ErrNameConflict and the object is left untouched. A container is
// created, not started.
func (d *Driver) Create(ctx context.Context, r drivers.Resource) (string, error) {
	switch {
	case r.Kind == drivers.KindNetwork && r.Network != nil:
		return d.createNetwork(ctx, r)
	case r.Kind == drivers.KindVolume && r.Volume != nil:
		return d.createVolume(ctx, r)
	case r.Kind == drivers.KindContainer && r.Container != nil:
		return d.createContainer(ctx, r)
	}
	return "", fmt.Errorf("create %s %q: %w", r.Kind, r.Name, errNoKind)
}

// createNetwork creates a bridge network with a subnet from jackin's pool.
// One list of every network answers both questions a create needs: is the
// name taken (engines before API 1.44 accept duplicate names, and this client
// no longer sends CheckDuplicate), and which subnets are in use.
func (d *Driver) createNetwork(ctx context.Context, r drivers.Resource) (string, error) {
	fleet := r.Labels[drivers.LabelFleet]
	list, err := d.cli.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return "", d.wrap(err, "list networks to create %s", r.Name)
	}
	if id, found, err := d.sameName(list.Items, r, fleet); err != nil || found {
		return id, err
	}
	used := usedSubnets(list.Items)
	tried := map[netip.Prefix]bool{}
	for attempt := 0; attempt < 32; attempt++ {
		subnet, ok := d.subnets.next(r.Name, used, tried)
		if !ok {
			return "", fmt.Errorf("create network %s: no free /%d subnet left in the pool %s (set JACKIN_SUBNET_POOL to a wider range)", r.Name, SubnetBits, d.subnets.pool)
		}
		var opts map[string]string
		if r.Network.Internal {
			// An internal bridge still gets the gateway address on the
			// host, and host services listening on all interfaces would
			// answer it: give the bridge no address, so the network joins
			// only its containers.
			opts = map[string]string{"com.docker.network.bridge.inhibit_ipv4": "true"}
		}
		res, err := d.cli.NetworkCreate(ctx, r.Name, client.NetworkCreateOptions{
			Driver:     "bridge",
			Internal:   r.Network.Internal,
			Options:    opts,
			Attachable: false,
			Labels:     r.Labels,
			IPAM:       &network.IPAM{Driver: "default", Config: []network.IPAMConfig{{Subnet: subnet}}},
		})
		if err == nil {
			for _, w := range res.Warning {
				d.log.Info("engine warning", "network", r.Name, "warning", w)
			}
			d.log.V(2).Info("created network", "name", r.Name, "id", res.ID, "subnet", subnet.String())
			return d.settleDuplicates(ctx, r, fleet, res.ID), nil
		}
		d.subnets.release(subnet)
		switch {
		case isPoolOverlap(err):
			// Taken by another writer since we listed: try the next block.
			tried[subnet] = true
			continue
		case isConflict(err):
			// Created concurrently, or an engine that checks names itself.
			if id, found, lerr := d.existingNetwork(ctx, r, fleet); lerr == nil && found {
				return id, nil
			} else if lerr != nil {
				return "", lerr
			}
		}
		return "", d.wrap(err, "create network %s", r.Name)
	}
	return "", fmt.Errorf("create network %s: every subnet tried was taken concurrently; try again", r.Name)
}

// settleDuplicates makes sure one network is named r.Name after a create.
// An engine before API 1.44 accepts duplicate names, and a create by a
// jackin process killed a moment before (its request still in the engine)
// can land after this process listed the names: two networks then make
// every container create by that name fail as ambiguous. The oldest of
// this instance's networks of that name is kept; the others, unused, are
// removed. Errors leave things as they are: the planner also repairs
// duplicates on its next pass.
func (d *Driver) settleDuplicates(ctx context.Context, r drivers.Resource, fleet, created string) string {
	list, err := d.cli.NetworkList(ctx, client.NetworkListOptions{Filters: client.Filters{}.Add("name", r.Name)})
	if err != nil {
		return created
	}
	var same []network.Summary
	for _, n := range list.Items {
		if n.Name == r.Name && ownerOfResource(n.Labels, fleet, r) == "" {
			same = append(same, n)
		}
	}
	if len(same) < 2 {
		return created
	}
	sort.Slice(same, func(i, j int) bool {
		if !same[i].Created.Equal(same[j].Created) {
			return same[i].Created.Before(same[j].Created)
		}
		return same[i].ID < same[j].ID
	})
	for _, n := range same[1:] {
		if _, err := d.cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil {
			d.log.Info("duplicate network left in place", "name", r.Name, "id", shortID(n.ID), "error", err.Error())
			continue
		}
		d.log.V(1).Info("removed a duplicate network", "name", r.Name, "id", shortID(n.ID))
	}
	return same[0].ID
}

// existingNetwork looks for a network named exactly r.Name.
func (d *Driver) existingNetwork(ctx context.Context, r drivers.Resource, fleet string) (string, bool, error) {
	list, err := d.cli.NetworkList(ctx, client.NetworkListOptions{Filters: client.Filters{}.Add("name", r.Name)})
	if err != nil {
		return "", false, d.wrap(err, "look up network %s", r.Name)
	}
	return d.sameName(list.Items, r, fleet)
}

// sameName finds a network named exactly r.Name (the engine's name filter
// matches substrings). It returns the ID when jackin owns it for fleet, and
// an *ErrNameConflict when someone else does.
func (d *Driver) sameName(nets []network.Summary, r drivers.Resource, fleet string) (string, bool, error) {
	for _, n := range nets {
		if n.Name != r.Name {
			continue
		}
		if owner := ownerOfResource(n.Labels, fleet, r); owner != "" {
			return "", true, &drivers.ErrNameConflict{Kind: drivers.KindNetwork, Name: r.Name, ID: n.ID, Owner: owner, Instance: r.Labels[drivers.LabelInstance]}
		}
		d.log.V(2).Info("network exists", "name", r.Name, "id", n.ID)
		return n.ID, true, nil
	}
	return "", false, nil
}

// createVolume creates a local volume. The engine answers a create for an
// existing name with the existing volume, so its labels decide ownership.
func (d *Driver) createVolume(ctx context.Context, r drivers.Resource) (string, error) {
	res, err := d.cli.VolumeCreate(ctx, client.VolumeCreateOptions{
		Name:   r.Name,
		Driver: "local",
		Labels: r.Labels,
	})
	if err != nil {
		return "", d.wrap(err, "create volume %s", r.Name)
	}
	if owner := ownerOfResource(res.Volume.Labels, r.Labels[drivers.LabelFleet], r); owner != "" {
		return "", &drivers.ErrNameConflict{Kind: drivers.KindVolume, Name: r.Name, ID: res.Volume.Name, Owner: owner, Instance: r.Labels[drivers.LabelInstance]}
	}
	d.log.V(2).Info("volume ready", "name", r.Name)
	return res.Volume.Name, nil
}

// containerCreateOptions renders a container resource into the engine's
// create request. multiNetwork says whether the engine accepts more than one
// network at create time (API 1.44 and later); otherwise only the first is
// configured and the rest are returned to be connected after create.
func containerCreateOptions(r drivers.Resource, multiNetwork bool) (client.ContainerCreateOptions, []string, error) {
	s := r.Container
	cfg := &container.Config{
		Image:      s.Image.Ref,
		Cmd:        s.Command,
		Env:        sortedEnv(s.Env),
		Labels:     r.Labels,
		Hostname:   s.Hostname,
		StopSignal: s.StopSignal,
		User:       s.User,
	}
	hc := &container.HostConfig{
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
		CapDrop:        s.CapDrop,
		CapAdd:         s.CapAdd,
		ReadonlyRootfs: s.ReadOnlyRoot,
	}
	if s.NoNewPrivileges {
		hc.SecurityOpt = append(hc.SecurityOpt, "no-new-privileges")
	}
	hc.SecurityOpt = append(hc.SecurityOpt, s.SecurityOpt...)
	hc.Privileged = s.Privileged
	hc.DeviceCgroupRules = s.DeviceCgroupRules
	if len(s.Sysctls) > 0 {
		hc.Sysctls = s.Sysctls
	}
	hc.Memory = s.Memory
	hc.MemoryReservation = s.MemoryRes
	hc.NanoCPUs = s.NanoCPUs
	if s.PidsLimit > 0 {
		limit := s.PidsLimit
		hc.PidsLimit = &limit
	}
	if s.Nofile > 0 {
		hc.Ulimits = append(hc.Ulimits, &container.Ulimit{Name: "nofile", Soft: s.Nofile, Hard: s.Nofile})
	}

	for _, m := range s.Mounts {
		mt, err := renderMount(m)
		if err != nil {
			return client.ContainerCreateOptions{}, nil, fmt.Errorf("container %s: %w", r.Name, err)
		}
		hc.Mounts = append(hc.Mounts, mt)
	}

	if len(s.Ports) > 0 {
		cfg.ExposedPorts = network.PortSet{}
		hc.PortBindings = network.PortMap{}
	}
	for _, p := range s.Ports {
		port, binding, err := renderPort(p)
		if err != nil {
			return client.ContainerCreateOptions{}, nil, fmt.Errorf("container %s: %w", r.Name, err)
		}
		cfg.ExposedPorts[port] = struct{}{}
		hc.PortBindings[port] = append(hc.PortBindings[port], binding)
	}

	var nc *network.NetworkingConfig
	var later []string
	if s.NoNetwork {
		hc.NetworkMode = container.NetworkMode("none")
	} else if len(s.Networks) > 0 {
		hc.NetworkMode = container.NetworkMode(s.Networks[0])
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			s.Networks[0]: {Aliases: s.Aliases[s.Networks[0]]},
		}}
		for _, n := range s.Networks[1:] {
			if multiNetwork {
				nc.EndpointsConfig[n] = &network.EndpointSettings{Aliases: s.Aliases[n]}
			} else {
				later = append(later, n)
			}
		}
	}
	return client.ContainerCreateOptions{
		Name:             r.Name,
		Config:           cfg,
		HostConfig:       hc,
		NetworkingConfig: nc,
	}, later, nil
}

// renderMount turns a mount spec into an engine mount. Besides "bind" and
// "tmpfs" it accepts "volume" (Source is the volume name).
func renderMount(m drivers.MountSpec) (mount.Mount, error) {
	switch m.Type {
	case "bind":
		return mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}, nil
	case "tmpfs":
		mt := mount.Mount{Type: mount.TypeTmpfs, Target: m.Target, ReadOnly: m.ReadOnly}
		if m.SizeBytes > 0 {
			mt.TmpfsOptions = &mount.TmpfsOptions{SizeBytes: m.SizeBytes}
		}
		return mt, nil
	case "volume":
		return mount.Mount{Type: mount.TypeVolume, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}, nil
	}
	return mount.Mount{}, fmt.Errorf("mount %s: unsupported mount type %q", m.Target, m.Type)
}

// renderPort turns a port spec into an exposed port and its host binding. A
// host port of 0 leaves the choice to the engine.
func renderPort(p drivers.PortSpec) (network.Port, network.PortBinding, error) {
	proto := strings.ToLower(p.Protocol)
	if proto == "" {
		proto = "tcp"
	}
	if p.ContainerPort <= 0 || p.ContainerPort > 65535 {
		return network.Port{}, network.PortBinding{}, fmt.Errorf("port %d: container port out of range", p.ContainerPort)
	}
	if p.HostPort < 0 || p.HostPort > 65535 {
		return network.Port{}, network.PortBinding{}, fmt.Errorf("port %d: host port %d out of range", p.ContainerPort, p.HostPort)
	}
	port, ok := network.PortFrom(uint16(p.ContainerPort), network.IPProtocol(proto))
	if !ok {
		return network.Port{}, network.PortBinding{}, fmt.Errorf("port %d/%s: invalid", p.ContainerPort, proto)
	}
	var b network.PortBinding
	if p.HostIP != "" {
		ip, err := netip.ParseAddr(p.HostIP)
		if err != nil {
			return network.Port{}, network.PortBinding{}, fmt.Errorf("port %d: host IP: %w", p.ContainerPort, err)
		}
		b.HostIP = ip
	}
	if p.HostPort != 0 {
		b.HostPort = strconv.Itoa(p.HostPort)
	}
	return port, b, nil
}

// createContainer creates (does not start) a container. The container joins
// its first network at create time and, on engines that accept only one
// there, the others right after; if that fails the new container is removed
// again, so no half-connected container is left behind.
func (d *Driver) createContainer(ctx context.Context, r drivers.Resource) (string, error) {
	if err := d.ensureNegotiated(ctx); err != nil {
		return "", err
	}
	if err := d.checkHostSupport(ctx, r.Name, r.Container); err != nil {
		return "", err
	}
	r, err := d.carryHostFiles(ctx, r)
	if err != nil {
		return "", err
	}
	var img imageRun
	if r.Container.Supervisor != nil {
		if img, err = d.imageRunOf(ctx, r.Container.Image.Ref); err != nil {
			return "", fmt.Errorf("create container %s: %w", r.Name, err)
		}
	}
	if err := d.fillCheckouts(ctx, r, img.user); err != nil {
		return "", err
	}
	multi := versions.GreaterThanOrEqualTo(d.cli.ClientVersion(), "1.44")
	opts, later, err := containerCreateOptions(r, multi)
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", r.Name, err)
	}
	if r.Container.Supervisor != nil {
		opts.Config.Entrypoint, opts.Config.Cmd = supervisorCommand(r.Container, img)
	}
	res, err := d.cli.ContainerCreate(ctx, opts)
	if err != nil {
		if isConflict(err) {
			return "", d.containerNameTaken(ctx, r, err)
		}
		if isNotFound(err) {
			return "", d.wrap(err, "create container %s from image %q", r.Name, r.Container.Image.Ref)
		}
		return "", d.wrap(err, "create container %s", r.Name)
	}
	for _, w := range res.Warnings {
		d.log.Info("engine warning", "container", r.Name, "warning", w)
	}
	for _, n := range later {
		if _, err := d.cli.NetworkConnect(ctx, n, client.NetworkConnectOptions{Container: res.ID, EndpointConfig: &network.EndpointSettings{Aliases: r.Container.Aliases[n]}}); err != nil {
			cerr := d.wrap(err, "connect container %s to network %s", r.Name, n)
			if _, rerr := d.cli.ContainerRemove(ctx, res.ID, client.ContainerRemoveOptions{Force: true}); rerr != nil && !isNotFound(rerr) {
				return "", fmt.Errorf("%w (and removing the half-created container failed: %v)", cerr, rerr)
			}
			return "", cerr
		}
	}
	// An agent that runs as root has its supervisor make the directory
	// (one upload fewer per create); any other user cannot.
	if sup := r.Container.Supervisor; sup != nil && sup.HomeTarget != "" && sup.HomeSubdir != "" && !runsAsRoot(r.Container.User, img.user) {
		if err := d.openHomeVolume(ctx, res.ID, sup.HomeTarget, sup.HomeSubdir); err != nil {
			if _, rerr := d.cli.ContainerRemove(ctx, res.ID, client.ContainerRemoveOptions{Force: true}); rerr != nil && !isNotFound(rerr) {
				return "", fmt.Errorf("%w (and removing the half-created container failed: %v)", err, rerr)
			}
			return "", err
		}
	}
	d.log.V(2).Info("created container", "name", r.Name, "id", res.ID)
	return res.ID, nil
}

// containerNameTaken explains a create that failed because the name is in
// use: an object jackin does not own for this fleet is an *ErrNameConflict
// (and is never removed); one it owns is reported as already existing.
func (d *Driver) containerNameTaken(ctx context.Context, r drivers.Resource, createErr error) error {
	res, err := d.cli.ContainerInspect(ctx, r.Name, client.ContainerInspectOptions{})
	if err != nil {
		return d.wrap(createErr, "create container %s (and inspecting the container holding the name failed: %v)", r.Name, err)
	}
	var labels map[string]string
	if res.Container.Config != nil {
		labels = res.Container.Config.Labels
	}
	if owner := ownerOf(labels, r.Labels[drivers.LabelFleet]); owner != "" {
		return &drivers.ErrNameConflict{Kind: drivers.KindContainer, Name: r.Name, ID: res.Container.ID, Owner: owner, Instance: r.Labels[drivers.LabelInstance]}
	}
	return fmt.Errorf("create container %s: it already exists as %s (the next observe will see it): %w",
		r.Name, shortID(res.Container.ID), createErr)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
