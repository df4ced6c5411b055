package docker

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
)

var _ drivers.LogStreamer = (*Driver)(nil)

// ContainerLogStream returns what the container wrote (stdout, and stderr
// too when opts.Stderr), demultiplexed into one plain byte stream, from
// the engine's log: the last opts.Tail lines (negative: all), written at
// or after opts.Since, and with opts.Follow what it writes next, until
// the container stops, ctx ends or the stream is closed. jackin creates
// its containers without a terminal, so the engine's stream is always
// multiplexed.
func (d *Driver) ContainerLogStream(ctx context.Context, id string, opts drivers.LogOptions) (io.ReadCloser, error) {
	if err := d.ensureNegotiated(ctx); err != nil {
		return nil, err
	}
	lo := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: opts.Stderr, Follow: opts.Follow, Tail: "all"}
	if opts.Tail >= 0 {
		lo.Tail = strconv.Itoa(opts.Tail)
	}
	if !opts.Since.IsZero() {
		lo.Since = fmt.Sprintf("%d.%09d", opts.Since.Unix(), opts.Since.Nanosecond())
	}
	rc, err := d.cli.ContainerLogs(ctx, id, lo)
	if err != nil {
		return nil, d.wrap(err, "read the log of container %s", shortID(id))
	}
	pr, pw := io.Pipe()
	go func() {
		// Both streams go to the one pipe: a pipe write returns once it
		// is read, so frames keep their order and nothing is buffered.
		_, err := stdcopy.StdCopy(pw, pw, rc)
		if err != nil {
			err = d.wrap(err, "read the log of container %s", shortID(id))
		}
		_ = rc.Close()
		pw.CloseWithError(err)
	}()
	return &logStream{PipeReader: pr, body: rc}, nil
}

// logStream closes the engine's response along with the pipe, so the
// copying goroutine ends even in the middle of a follow.
type logStream struct {
	*io.PipeReader
	body io.Closer
}

func (l *logStream) Close() error {
	_ = l.body.Close()
	return l.PipeReader.Close()
}
