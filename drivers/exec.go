package drivers

import (
	"context"
	"io"
	"time"
)

// ExecOptions is a command to run inside a running container, the way
// `docker exec` runs one.
type ExecOptions struct {
	Cmd []string
	// User runs the command as this user; empty is the container's user
	// (the agent's).
	User string
	// Env adds environment variables (NAME=value) to the container's.
	Env []string
	// Stdin attaches the session's input to the command's stdin.
	Stdin bool
	// Tty gives the command a terminal: output is one raw stream (no
	// separate stderr) and Resize works.
	Tty bool
	// Rows and Cols are the terminal's first size (Tty only).
	Rows, Cols uint
}

// ExecSession is a command running inside a container.
type ExecSession interface {
	// Stdin is the command's input (nil unless ExecOptions.Stdin). Closing
	// it closes the command's stdin and nothing else.
	Stdin() io.WriteCloser
	// Stdout is the command's output (with a terminal: all of it).
	Stdout() io.Reader
	// Stderr is the command's error output; without a terminal only (it is
	// empty with one).
	Stderr() io.Reader
	// Resize changes the terminal's size (Tty only).
	Resize(ctx context.Context, rows, cols uint) error
	// Wait waits for the command to exit and the output to be read to its
	// end, and returns its exit status.
	Wait(ctx context.Context) (int, error)
	// Close ends the session (the command may go on running).
	Close() error
}

// Execer is a backend that can run a command inside a running container.
// It is the one path from the host into an agent's container: attach,
// status queries and `jackin exec` all go through it, on every backend (no
// host socket, no published port).
type Execer interface {
	Exec(ctx context.Context, containerID string, opts ExecOptions) (ExecSession, error)
}

// LogOptions selects what LogStreamer returns.
type LogOptions struct {
	Follow bool
	// Tail is how many of the last lines to return; negative is all.
	Tail int
	// Since returns only what was written at or after it (zero: all).
	Since time.Time
	// Stderr includes the container's stderr (stdout only otherwise).
	Stderr bool
}

// LogStreamer is a backend that can stream what a container wrote, as raw
// bytes (stdout only unless LogOptions.Stderr), following it when asked.
type LogStreamer interface {
	ContainerLogStream(ctx context.Context, containerID string, opts LogOptions) (io.ReadCloser, error)
}

// AgentLocator is a backend that can find agent containers by instance name
// across fleets (fleet "" is every fleet), with one list call.
type AgentLocator interface {
	FindAgents(ctx context.Context, fleet, instance string) ([]ObservedResource, error)
}
