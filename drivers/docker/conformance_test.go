package docker

import (
	"context"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/drivertest"
)

// TestConformance runs the backend contract's suite against a real engine
// (the same suite drivers/fake passes).
func TestConformance(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) drivertest.Backend {
		d := engine(t)
		ref, _ := agentImage(t, d)
		cli := d.Client()
		ctx := func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 30*time.Second)
		}
		return drivertest.Backend{
			Driver: d,
			Image:  ref,
			Kill: func(t *testing.T, name string) {
				c, cancel := ctx()
				defer cancel()
				if _, err := cli.ContainerKill(c, name, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
					t.Fatalf("docker kill %s: %v", name, err)
				}
			},
			RemoveContainer: func(t *testing.T, name string) {
				c, cancel := ctx()
				defer cancel()
				if _, err := cli.ContainerRemove(c, name, client.ContainerRemoveOptions{Force: true}); err != nil {
					t.Fatalf("docker rm -f %s: %v", name, err)
				}
			},
			CreateForeign: func(t *testing.T, kind drivers.Kind, name string) {
				c, cancel := ctx()
				defer cancel()
				var err error
				switch kind {
				case drivers.KindNetwork:
					_, err = cli.NetworkCreate(c, name, client.NetworkCreateOptions{Driver: "bridge"})
				case drivers.KindContainer:
					_, err = cli.ContainerCreate(c, client.ContainerCreateOptions{Name: name, Config: &container.Config{Image: ref}})
				}
				if err != nil {
					t.Fatalf("create a foreign %s %s: %v", kind, name, err)
				}
			},
			RemoveForeign: func(t *testing.T, kind drivers.Kind, name string) {
				c, cancel := ctx()
				defer cancel()
				switch kind {
				case drivers.KindNetwork:
					_, _ = cli.NetworkRemove(c, name, client.NetworkRemoveOptions{})
				case drivers.KindContainer:
					_, _ = cli.ContainerRemove(c, name, client.ContainerRemoveOptions{Force: true})
				}
			},
		}
	})
}
