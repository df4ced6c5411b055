package docker

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/go-logr/logr"
)

// TestDialedCommandStream reaches the engine through `docker system
// dial-stdio` (the way the OrbStack and SSH backends do) and counts the
// requests like the environment-configured driver.
func TestDialedCommandStream(t *testing.T) {
	engine(t) // skips without an engine
	ctx := context.Background()
	d, err := NewDialed(ctx, logr.Discard(), "docker system dial-stdio", CommandDialer([]string{"docker", "system", "dial-stdio"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Ping(ctx); err != nil {
		t.Fatalf("ping through dial-stdio: %v", err)
	}
	if _, err := d.Observe(ctx, "jk-dial-test-none", nil); err != nil {
		t.Fatalf("observe through dial-stdio: %v", err)
	}
	if d.Calls()["HEAD /_ping"]+d.Calls()["GET /_ping"] == 0 {
		t.Fatalf("ping not counted: %v", d.Calls())
	}
}

// TestDialedCommandFails says what the command said when it cannot connect.
func TestDialedCommandFails(t *testing.T) {
	dial := CommandDialer([]string{"sh", "-c", "echo 'machine not found: nope' >&2; exit 1"}, nil)
	c, err := dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"))
	_, err = io.ReadAll(c)
	if err == nil || !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "machine not found: nope") {
		t.Fatalf("err = %v, want the command's message", err)
	}
	if !strings.Contains(err.Error(), "machine not found: nope") {
		t.Fatalf("err = %v, want the command's message", err)
	}
	if _, err := CommandDialer(nil, nil)(context.Background()); err == nil {
		t.Fatal("dial with no command: no error")
	}
}
