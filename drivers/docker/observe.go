package docker

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
)

// fleetFilters selects the objects jackin manages for fleet (label filters
// are ANDed by the engine).
func fleetFilters(fleet string) client.Filters {
	return client.Filters{}.Add("label",
		drivers.LabelManagedBy+"="+drivers.ManagedByValue,
		drivers.LabelFleet+"="+fleet,
	)
}

// Observe lists the fleet's labelled containers, networks and volumes with one
// list call each, and, when imageRefs is not empty, the local images with one
// more. The calls run concurrently (one after another on an engine reached
// through a command per connection). Nothing is inspected per object.
func (d *Driver) Observe(ctx context.Context, fleet string, imageRefs []string) (*drivers.Observed, error) {
	if err := d.ensureNegotiated(ctx); err != nil {
		return nil, err
	}
	var (
		cres                   client.ContainerListResult
		nres                   client.NetworkListResult
		vres                   client.VolumeListResult
		ires                   client.ImageListResult
		cerr, nerr, verr, ierr error
		filters                = fleetFilters(fleet) // only read from here on
		wantImages             = len(imageRefs) > 0
	)
	calls := []func(){
		func() {
			cres, cerr = d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filters})
		},
		func() { nres, nerr = d.cli.NetworkList(ctx, client.NetworkListOptions{Filters: filters}) },
		func() { vres, verr = d.cli.VolumeList(ctx, client.VolumeListOptions{Filters: filters}) },
	}
	if wantImages {
		calls = append(calls, func() { ires, ierr = d.cli.ImageList(ctx, client.ImageListOptions{}) })
	}
	d.concurrently(calls...)
	switch {
	case cerr != nil:
		return nil, d.wrap(cerr, "list containers of fleet %q", fleet)
	case nerr != nil:
		return nil, d.wrap(nerr, "list networks of fleet %q", fleet)
	case verr != nil:
		return nil, d.wrap(verr, "list volumes of fleet %q", fleet)
	case ierr != nil:
		return nil, d.wrap(ierr, "list local images")
	}

	obs := &drivers.Observed{
		Containers: make([]drivers.ObservedResource, 0, len(cres.Items)),
		Networks:   make([]drivers.ObservedResource, 0, len(nres.Items)),
		Volumes:    make([]drivers.ObservedResource, 0, len(vres.Items)),
		Images:     map[string]string{},
	}
	for _, c := range cres.Items {
		obs.Containers = append(obs.Containers, observedContainer(c))
	}
	d.markOOMKills(ctx, obs.Containers)
	for _, n := range nres.Items {
		obs.Networks = append(obs.Networks, observedNetwork(n))
	}
	for _, v := range vres.Items {
		obs.Volumes = append(obs.Volumes, observedVolume(v))
	}
	if wantImages {
		obs.Images = matchImages(imageRefs, ires.Items)
	}
	for _, list := range [][]drivers.ObservedResource{obs.Containers, obs.Networks, obs.Volumes} {
		sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	}
	d.log.V(2).Info("observed fleet", "fleet", fleet, "containers", len(obs.Containers),
		"networks", len(obs.Networks), "volumes", len(obs.Volumes), "images", len(obs.Images))
	return obs, nil
}

var _ drivers.ContainerStater = (*Driver)(nil)

// ContainerStates lists the containers with the given IDs (one list call,
// the same fields Observe gives, OOM kills included).
func (d *Driver) ContainerStates(ctx context.Context, ids []string) ([]drivers.ObservedResource, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if err := d.ensureNegotiated(ctx); err != nil {
		return nil, err
	}
	res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("id", ids...)})
	if err != nil {
		return nil, d.wrap(err, "list containers %s", strings.Join(ids, ", "))
	}
	out := make([]drivers.ObservedResource, 0, len(res.Items))
	for _, c := range res.Items {
		out = append(out, observedContainer(c))
	}
	d.markOOMKills(ctx, out)
	return out, nil
}

func observedContainer(c container.Summary) drivers.ObservedResource {
	r := drivers.ObservedResource{
		Kind:    drivers.KindContainer,
		ID:      c.ID,
		Name:    containerName(c.Names),
		Labels:  nonNil(c.Labels),
		Created: time.Unix(c.Created, 0),
		State:   string(c.State),
		Status:  c.Status,
		Image:   c.Image,
		ImageID: c.ImageID,
	}
	if c.NetworkSettings != nil {
		for name := range c.NetworkSettings.Networks {
			r.Networks = append(r.Networks, name)
		}
		sort.Strings(r.Networks)
	}
	return r
}

// markOOMKills learns State.OOMKilled, which the engine's container list
// does not carry, by inspecting only the containers that exited from a
// SIGKILL (status "Exited (137) ..."): an OOM kill always ends so, and a
// fleet with nothing killed costs no call beyond the list. A failed inspect
// (the container was removed meanwhile) leaves the container unmarked.
func (d *Driver) markOOMKills(ctx context.Context, cs []drivers.ObservedResource) {
	for i := range cs {
		c := &cs[i]
		if (c.State != drivers.StateExited && c.State != drivers.StateDead) || !strings.HasPrefix(c.Status, "Exited (137)") {
			continue
		}
		res, err := d.cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil || res.Container.State == nil {
			d.log.V(1).Info("inspect of a killed container failed", "name", c.Name, "error", err)
			continue
		}
		c.OOMKilled = res.Container.State.OOMKilled
		if t, err := time.Parse(time.RFC3339Nano, res.Container.State.FinishedAt); err == nil {
			c.FinishedAt = t
		}
	}
}

// containerName picks the container's own name from the list's Names, which
// also carries link aliases ("/other/alias"), and drops the leading slash.
func containerName(names []string) string {
	for _, n := range names {
		if n = strings.TrimPrefix(n, "/"); !strings.Contains(n, "/") {
			return n
		}
	}
	if len(names) > 0 {
		return strings.TrimPrefix(names[0], "/")
	}
	return ""
}

func observedNetwork(n network.Summary) drivers.ObservedResource {
	return drivers.ObservedResource{
		Kind:    drivers.KindNetwork,
		ID:      n.ID,
		Name:    n.Name,
		Labels:  nonNil(n.Labels),
		Created: n.Created,
	}
}

// observedVolume reports a volume; volumes have no ID, so ID is the name.
func observedVolume(v volume.Volume) drivers.ObservedResource {
	created, _ := time.Parse(time.RFC3339Nano, v.CreatedAt)
	return drivers.ObservedResource{
		Kind:    drivers.KindVolume,
		ID:      v.Name,
		Name:    v.Name,
		Labels:  nonNil(v.Labels),
		Created: created,
	}
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// normalizeRef returns the canonical form of an image reference, so "alpine",
// "alpine:latest" and "docker.io/library/alpine:latest" compare equal. A
// string that is not a valid reference (an image ID, say) is returned as is.
func normalizeRef(ref string) string {
	if strings.HasPrefix(ref, "sha256:") {
		return ref // an image ID, which would otherwise parse as name "sha256", tag "..."
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return reference.TagNameOnly(named).String()
}

// matchImages maps each requested reference present among the local images to
// the image's ID. References are compared in canonical form; a reference that
// is an image ID ("sha256:...") matches that image.
func matchImages(refs []string, images []image.Summary) map[string]string {
	local := map[string]string{}
	for _, img := range images {
		local[img.ID] = img.ID
		for _, t := range img.RepoTags {
			if t != "<none>:<none>" {
				local[normalizeRef(t)] = img.ID
			}
		}
		for _, dg := range img.RepoDigests {
			if dg != "<none>@<none>" {
				local[normalizeRef(dg)] = img.ID
			}
		}
	}
	out := make(map[string]string, len(refs))
	for _, ref := range refs {
		if id, ok := local[normalizeRef(ref)]; ok {
			out[ref] = id
		}
	}
	return out
}
