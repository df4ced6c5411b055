package docker

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
)

var _ drivers.EventSource = (*Driver)(nil)

// errStreamEnded reports an event stream the engine closed, as it does when
// it shuts down.
var errStreamEnded = errors.New("the engine ended the stream")

// Events streams the fleet's container and network events (see
// drivers.EventSource). The engine filters by type and action; the fleet is
// matched here, because network events carry no labels: a network is matched
// by its jk-<fleet>- name, a container by its labels.
func (d *Driver) Events(ctx context.Context, fleet string) (<-chan drivers.Event, <-chan error, error) {
	// A ping first, so an engine that is down is an error now rather than a
	// stream that ends at once.
	if err := d.Ping(ctx); err != nil {
		return nil, nil, err
	}
	filters := client.Filters{}.
		Add("type", string(events.ContainerEventType), string(events.NetworkEventType)).
		Add("event", drivers.EventKill, drivers.EventDie, drivers.EventDestroy, drivers.EventStop, drivers.EventOOM, drivers.EventDisconnect)
	res := d.cli.Events(ctx, client.EventsListOptions{Filters: filters})
	out := make(chan drivers.Event, 64)
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		defer close(out)
		for {
			select {
			case m, ok := <-res.Messages:
				if !ok {
					errs <- d.wrap(errStreamEnded, "engine event stream")
					return
				}
				ev, ok := fleetEvent(m, fleet)
				if !ok {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					errs <- ctx.Err()
					return
				}
			case err := <-res.Err:
				if err == nil || errors.Is(err, io.EOF) {
					err = errStreamEnded
				}
				errs <- d.wrap(err, "engine event stream")
				return
			}
		}
	}()
	return out, errs, nil
}

// fleetEvent translates an engine event, reporting false for events about
// objects outside the fleet.
func fleetEvent(m events.Message, fleet string) (drivers.Event, bool) {
	attrs := m.Actor.Attributes
	ev := drivers.Event{
		Action: string(m.Action),
		ID:     m.Actor.ID,
		Name:   attrs["name"],
		Time:   eventTime(m),
	}
	switch m.Type {
	case events.ContainerEventType:
		if attrs[drivers.LabelManagedBy] != drivers.ManagedByValue || attrs[drivers.LabelFleet] != fleet {
			return ev, false
		}
		ev.Kind = drivers.KindContainer
		ev.Instance = attrs[drivers.LabelInstance]
		ev.Component = attrs[drivers.LabelComponent]
		ev.ExitCode = attrs["exitCode"]
	case events.NetworkEventType:
		prefix := "jk-" + fleet + "-"
		if !strings.HasPrefix(ev.Name, prefix) {
			return ev, false
		}
		ev.Kind = drivers.KindNetwork
		ev.Instance = strings.TrimPrefix(ev.Name, prefix)
	default:
		return ev, false
	}
	return ev, true
}

func eventTime(m events.Message) time.Time {
	switch {
	case m.TimeNano != 0:
		return time.Unix(0, m.TimeNano)
	case m.Time != 0:
		return time.Unix(m.Time, 0)
	default:
		return time.Now()
	}
}
