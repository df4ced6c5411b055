package docker

import (
	"context"
	"sort"

	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
)

var _ drivers.AgentLocator = (*Driver)(nil)

// FindAgents lists the agent containers of instance (of fleet, or of every
// fleet when fleet is ""), with one list call.
func (d *Driver) FindAgents(ctx context.Context, fleet, instance string) ([]drivers.ObservedResource, error) {
	if err := d.ensureNegotiated(ctx); err != nil {
		return nil, err
	}
	f := client.Filters{}.Add("label",
		drivers.LabelManagedBy+"="+drivers.ManagedByValue,
		drivers.LabelComponent+"="+drivers.ComponentAgent,
		drivers.LabelInstance+"="+instance,
	)
	if fleet != "" {
		f = f.Add("label", drivers.LabelFleet+"="+fleet)
	}
	res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, d.wrap(err, "list the agent containers of instance %q", instance)
	}
	out := make([]drivers.ObservedResource, 0, len(res.Items))
	for _, c := range res.Items {
		out = append(out, observedContainer(c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
