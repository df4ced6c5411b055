package docker

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
)

var _ drivers.LogReader = (*Driver)(nil)

// ContainerLogs reads the container's stdout written after since, with the
// engine's timestamps.
func (d *Driver) ContainerLogs(ctx context.Context, id string, since time.Time) ([]drivers.LogLine, error) {
	opts := client.ContainerLogsOptions{ShowStdout: true, Timestamps: true}
	if !since.IsZero() {
		opts.Since = fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond())
	}
	rc, err := d.cli.ContainerLogs(ctx, id, opts)
	if err != nil {
		return nil, d.wrap(err, "read the logs of container %s", shortID(id))
	}
	defer rc.Close()
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, io.Discard, rc)
		pw.CloseWithError(err)
	}()
	var out []drivers.LogLine
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		ts, text, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		if !since.IsZero() && !t.After(since) {
			continue // since is inclusive to the engine
		}
		out = append(out, drivers.LogLine{Time: t, Text: text})
	}
	_ = pr.Close()
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read the logs of container %s: %w", shortID(id), err)
	}
	return out, nil
}
