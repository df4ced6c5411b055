package pipeline

import (
	"os"
	"testing"

	"github.com/jackin-dev/jackin/reconciler"
)

func TestMain(m *testing.M) {
	// The executor runs against the in-memory driver here: no container
	// runs the supervisor's binary, and the test binary is not static.
	reconciler.InstallSupervisorBinary = func(string) (func() error, error) { return func() error { return nil }, nil }
	os.Exit(m.Run())
}
