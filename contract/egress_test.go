package contract

import (
	"path/filepath"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/reconciler"
)

// The real sidecar image tag is a hash of the test binary: goldens use a
// fixed one.
func init() {
	reconciler.SidecarImage = func(stateDir string) (drivers.ImageSpec, error) {
		return drivers.ImageSpec{Ref: "jackin-sidecar:0123456789abcdef", Build: &drivers.BuildSpec{
			Context: filepath.Join(stateDir, "images", "sidecar-0123456789abcdef"), Dockerfile: "Dockerfile"}}, nil
	}
}
