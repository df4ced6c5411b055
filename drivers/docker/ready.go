package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
)

var _ drivers.ReadyWaiter = (*Driver)(nil)

// readyInterval is the pause between two runs of a readiness probe.
const readyInterval = 250 * time.Millisecond

// WaitReady runs probe.Exec inside the container until it exits 0. It
// fails when the container stops (with the end of its log) or when
// probe.Timeout passes (with the probe's last output and the end of the
// container's log), so an operator sees why the service never came up.
func (d *Driver) WaitReady(ctx context.Context, id string, probe drivers.ReadyProbe) error {
	what := probe.What
	if what == "" {
		what = "container " + shortID(id)
	}
	timeout := probe.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	if len(probe.Exec) == 0 {
		return d.waitUp(ctx, id, what, timeout, probe)
	}
	deadline := time.Now().Add(timeout)
	var last string
	for attempt := 1; ; attempt++ {
		code, out, err := d.execOnce(ctx, id, probe.Exec)
		if err == nil && code == 0 {
			d.log.V(2).Info("ready", "container", shortID(id), "attempts", attempt)
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("exit status %d: %s", code, strings.TrimSpace(out))
		}
		insp, ierr := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if ierr == nil && insp.Container.State != nil && !insp.Container.State.Running {
			return fmt.Errorf("%s stopped before it answered (exit status %d)%s%s", what, insp.Container.State.ExitCode, d.logTail(ctx, id, probe), hint(probe.Hint))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %s; the last probe (%s) said: %s%s%s", what, timeout, strings.Join(probe.Exec, " "), last, d.logTail(ctx, id, probe), hint(probe.Hint))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(readyInterval):
		}
	}
}

// waitUp fails when the container exits with a non-zero status within
// timeout of now.
func (d *Driver) waitUp(ctx context.Context, id, what string, timeout time.Duration, probe drivers.ReadyProbe) error {
	deadline := time.Now().Add(timeout)
	for {
		insp, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return d.wrap(err, "inspect %s", what)
		}
		if st := insp.Container.State; st != nil && !st.Running && !st.Restarting {
			if st.ExitCode == 0 {
				return nil
			}
			return fmt.Errorf("%s exited with status %d right after it started%s%s", what, st.ExitCode, d.logTail(ctx, id, probe), hint(probe.Hint))
		}
		if time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(readyInterval):
		}
	}
}

func hint(h string) string {
	if h == "" {
		return ""
	}
	return "\n" + h
}

// probeAttemptTimeout bounds one run of a readiness probe, so a probe that
// hangs (a client with no timeout of its own) cannot hold the wait past
// its deadline.
const probeAttemptTimeout = 10 * time.Second

// execOnce runs cmd in the container and returns its exit status and
// combined output (at most 4 KiB is kept).
func (d *Driver) execOnce(ctx context.Context, id string, cmd []string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeAttemptTimeout)
	defer cancel()
	ex, err := d.cli.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return -1, "", d.wrap(err, "run the readiness probe in container %s", shortID(id))
	}
	att, err := d.cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return -1, "", d.wrap(err, "run the readiness probe in container %s", shortID(id))
	}
	// The attached stream does not follow ctx: close it when ctx ends.
	stop := context.AfterFunc(ctx, att.Close)
	var buf bytes.Buffer
	w := &capped{buf: &buf, max: 4 << 10}
	_, _ = stdcopy.StdCopy(w, w, att.Reader)
	stop()
	att.Close()
	if ctx.Err() != nil {
		return -1, buf.String(), fmt.Errorf("the probe did not finish within %s", probeAttemptTimeout)
	}
	res, err := d.cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	if err != nil {
		return -1, buf.String(), d.wrap(err, "read the readiness probe's result in container %s", shortID(id))
	}
	return res.ExitCode, buf.String(), nil
}

// logTail describes the end of a container's log for an error: quoted
// when probe.QuoteLog, else only the probe's signals it contains (with
// how to read it), or "" when it cannot be read.
func (d *Driver) logTail(ctx context.Context, id string, probe drivers.ReadyProbe) string {
	rc, err := d.cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "8"})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var buf bytes.Buffer
	w := &capped{buf: &buf, max: 4 << 10}
	_, _ = stdcopy.StdCopy(w, w, rc)
	text := strings.TrimSpace(buf.String())
	if text == "" {
		return ""
	}
	if probe.QuoteLog {
		text = printable(text)
		return "\nits log ends:\n  " + strings.ReplaceAll(text, "\n", "\n  ")
	}
	var found []string
	for _, sig := range probe.LogSignals {
		if strings.Contains(strings.ToLower(text), strings.ToLower(sig)) {
			found = append(found, strconv.Quote(sig))
		}
	}
	if len(found) == 0 {
		return "\n(its log is not quoted, as it may hold secrets: docker logs " + shortID(id) + ")"
	}
	return "\nits log says " + strings.Join(found, " and ") + " (the log is not quoted, as it may hold secrets: docker logs " + shortID(id) + ")"
}

// capped is a writer that keeps the first max bytes.
// printable replaces what a terminal would act on in text a container
// wrote (control characters, C1 codes) with '?': newlines and tabs stay.
func printable(text string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || (r >= ' ' && r != 0x7f && !(r >= 0x80 && r < 0xa0)) {
			return r
		}
		return '?'
	}, text)
}

type capped struct {
	buf *bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

var _ io.Writer = (*capped)(nil)

var _ drivers.LogTailer = (*Driver)(nil)

// ContainerLogTail reads the last lines the container wrote, stdout and
// stderr together (at most 16 KiB).
func (d *Driver) ContainerLogTail(ctx context.Context, id string, lines int) ([]string, error) {
	rc, err := d.cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(lines)})
	if err != nil {
		return nil, d.wrap(err, "read the log of container %s", shortID(id))
	}
	defer rc.Close()
	var buf bytes.Buffer
	w := &capped{buf: &buf, max: 16 << 10}
	_, _ = stdcopy.StdCopy(w, w, rc)
	var out []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if l = strings.TrimRight(l, "\r"); strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out, nil
}
