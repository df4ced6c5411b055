package fake_test

import (
	"testing"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/drivertest"
	"github.com/jackin-dev/jackin/drivers/fake"
)

// TestConformance runs the backend contract's suite against the in-memory
// driver: the fake the unit tests rely on behaves like the engine.
func TestConformance(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) drivertest.Backend {
		d := fake.New()
		const image = "conformance/idle:1"
		d.AddImage(image, "sha256:c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0")
		must := func(t *testing.T, err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		return drivertest.Backend{
			Driver:          d,
			Image:           image,
			Kill:            func(t *testing.T, name string) { must(t, d.Kill(name)) },
			RemoveContainer: func(t *testing.T, name string) { must(t, d.RemoveContainer(name)) },
			CreateForeign: func(t *testing.T, kind drivers.Kind, name string) {
				d.Seed(drivers.ObservedResource{Kind: kind, Name: name, Labels: map[string]string{}})
			},
			RemoveForeign: func(t *testing.T, kind drivers.Kind, name string) {
				if kind == drivers.KindNetwork {
					_ = d.RemoveNetwork(name)
				} else {
					_ = d.RemoveContainer(name)
				}
			},
		}
	})
}
