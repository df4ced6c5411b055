package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/termtext"
)

// logsFlushAfter is how long `jackin logs --follow` holds an unfinished
// line (a prompt, a progress bar) before printing it as it stands.
const logsFlushAfter = 250 * time.Millisecond

func newLogsCommand(a *app) *cobra.Command {
	var af agentFlags
	var follow, raw bool
	var tail, since string
	cmd := &cobra.Command{
		Use:   "logs [-f PATH... | --fleet NAME] INSTANCE",
		Short: "Show what an instance's agent printed",
		Long: `logs prints what the instance's agent printed: its container's stdout,
which the supervisor fills with the agent's terminal output. Escape sequences
(colours, cursor moves, titles) and control characters are stripped, and a line
the agent rewrote in place (a progress bar, a spinner) shows only its last
version; --raw prints the bytes as written, to replay on a terminal.

It works on a stopped agent too: the engine keeps the log until the container
is removed (jackin apply recreating it, or jackin delete).

--tail N prints the last N lines only (all: every line, the default).
--since takes a duration ("10m": written in the last ten minutes) or an
RFC 3339 time ("2026-12-01T09:30:00Z"). --follow keeps printing what the agent
prints next, line by line, until interrupted (exit 0) or the agent stops.

With neither -f nor --fleet, the instance name must be unique among the
engine's fleets. An unknown instance is an error (exit 2).`,
		Example: `  jackin logs -f fleet.cue web
  jackin logs --fleet demo web --tail 50 --follow
  jackin logs web --since 10m
  jackin logs web --raw | less -R`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return exitWith(exitInvalid, fmt.Errorf("name one instance: jackin logs [-f PATH... | --fleet NAME] INSTANCE (got %d arguments)", len(args)))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := drivers.LogOptions{Follow: follow}
			var err error
			if opts.Tail, err = parseTail(tail); err != nil {
				return exitWith(exitInvalid, err)
			}
			if opts.Since, err = parseSince(since, time.Now()); err != nil {
				return exitWith(exitInvalid, err)
			}
			ctx := cmd.Context()
			ref, err := a.findAgent(ctx, af, args[0])
			if err != nil {
				return err
			}
			ls, ok := ref.drv.(drivers.LogStreamer)
			if !ok {
				return exitWith(exitInvalid, fmt.Errorf("backend %s cannot read a container's log", ref.drv.Name()))
			}
			rc, err := ls.ContainerLogStream(ctx, ref.ctr.ID, opts)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			defer rc.Close()
			err = copyLog(a.stdout, rc, raw, follow)
			if err != nil && ctx.Err() != nil {
				return nil // interrupted while following: the normal end
			}
			if err != nil {
				return exitWith(exitInvalid, fmt.Errorf("read the log of instance %s of fleet %s: %w", ref.instance, ref.fleet, err))
			}
			return nil
		},
	}
	af.register(cmd)
	cmd.Flags().BoolVar(&follow, "follow", false, "keep printing what the agent prints next, until interrupted or it stops")
	cmd.Flags().StringVar(&tail, "tail", "all", "print only the last N lines (all: every line)")
	cmd.Flags().StringVar(&since, "since", "", `only what was printed since then: a duration ("10m") or an RFC 3339 time`)
	cmd.Flags().BoolVar(&raw, "raw", false, "print the output as written, escape sequences and all")
	return cmd
}

// copyLog copies the log to w, stripped to plain text unless raw. While
// following, an unfinished line is printed once the log pauses.
func copyLog(w io.Writer, r io.Reader, raw, follow bool) error {
	if raw {
		_, err := io.Copy(w, r)
		return err
	}
	strip := termtext.Strip(w)
	var flushErr error
	var mu sync.Mutex
	var timer *time.Timer
	if follow {
		timer = time.AfterFunc(time.Hour, func() {
			if err := strip.Flush(); err != nil {
				mu.Lock()
				flushErr = err
				mu.Unlock()
			}
		})
		timer.Stop()
		defer timer.Stop()
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := strip.Write(buf[:n]); werr != nil {
				return werr
			}
			if timer != nil {
				timer.Reset(logsFlushAfter)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_ = strip.Close()
			return err
		}
	}
	if timer != nil {
		timer.Stop()
	}
	if err := strip.Close(); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return flushErr
}

// parseTail reads --tail: a number of lines, or "all" (also any negative
// number) for every line.
func parseTail(s string) (int, error) {
	if s == "" || strings.EqualFold(s, "all") {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("invalid --tail %q: want a number of lines or all", s)
	}
	if n < 0 {
		return -1, nil
	}
	return n, nil
}

// parseSince reads --since: "" (everything), a duration back from now, or
// an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("invalid --since %q: a duration counts back from now and cannot be negative", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid --since %q: want a duration (10m, 1h30m) or an RFC 3339 time (2026-12-01T09:30:00Z)", s)
	}
	return t, nil
}
