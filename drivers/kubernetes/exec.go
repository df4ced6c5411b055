package kubernetes

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/jackin-dev/jackin/drivers"
)

// Exec runs a command in a Pod's main container through the API server
// (pods/exec): no port or socket of the Pod is published.
func (d *Driver) Exec(ctx context.Context, containerID string, opts drivers.ExecOptions) (drivers.ExecSession, error) {
	ns, name, err := splitID(containerID)
	if err != nil {
		return nil, err
	}
	if d.rest == nil {
		return nil, errors.New("exec needs a cluster connection (a fake clientset has none)")
	}
	if opts.User != "" {
		return nil, fmt.Errorf("exec as user %q: the Kubernetes exec API runs commands as the container's user only", opts.User)
	}
	cmd := opts.Cmd
	if len(opts.Env) > 0 {
		// pods/exec takes no environment: env(1) semantics through the
		// supervisor binary is not available, so refuse rather than drop.
		return nil, errors.New("exec with extra environment is not supported by the Kubernetes exec API")
	}
	req := d.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(name).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: AgentContainer,
			Command:   cmd,
			Stdin:     opts.Stdin,
			Stdout:    true,
			Stderr:    !opts.Tty,
			TTY:       opts.Tty,
		}, scheme.ParameterCodec)
	ex, err := newExecutor(d, req.URL())
	if err != nil {
		return nil, err
	}
	s := &execSession{done: make(chan struct{}), sizes: make(chan remotecommand.TerminalSize, 4)}
	var stdinR *io.PipeReader
	if opts.Stdin {
		stdinR, s.stdinW = io.Pipe()
	}
	var outW, errW *io.PipeWriter
	s.stdoutR, outW = io.Pipe()
	s.stderrR, errW = io.Pipe()
	if opts.Tty && opts.Rows > 0 {
		s.sizes <- remotecommand.TerminalSize{Height: uint16(opts.Rows), Width: uint16(opts.Cols)}
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	so := remotecommand.StreamOptions{Stdout: outW, Tty: opts.Tty}
	if stdinR != nil {
		so.Stdin = stdinR
	}
	if !opts.Tty {
		so.Stderr = errW
	}
	if opts.Tty {
		so.TerminalSizeQueue = s
	}
	go func() {
		err := ex.StreamWithContext(sctx, so)
		s.err = err
		outW.Close()
		errW.Close()
		if stdinR != nil {
			stdinR.Close()
		}
		close(s.done)
	}()
	return s, nil
}

func newExecutor(d *Driver, u *url.URL) (remotecommand.Executor, error) {
	ws, err := remotecommand.NewWebSocketExecutor(d.rest, "GET", u.String())
	if err != nil {
		return nil, fmt.Errorf("exec through %s: %w", d.endpoint, err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(d.rest, "POST", u)
	if err != nil {
		return nil, fmt.Errorf("exec through %s: %w", d.endpoint, err)
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return err != nil
	})
}

type execSession struct {
	stdinW           *io.PipeWriter
	stdoutR, stderrR *io.PipeReader
	sizes            chan remotecommand.TerminalSize
	done             chan struct{}
	err              error
	cancel           context.CancelFunc
	closeOnce        sync.Once
}

func (s *execSession) Stdin() io.WriteCloser {
	if s.stdinW == nil {
		return nil
	}
	return s.stdinW
}
func (s *execSession) Stdout() io.Reader { return s.stdoutR }
func (s *execSession) Stderr() io.Reader { return s.stderrR }

// Next hands the executor the terminal's sizes (TerminalSizeQueue).
func (s *execSession) Next() *remotecommand.TerminalSize {
	select {
	case sz := <-s.sizes:
		return &sz
	case <-s.done:
		return nil
	}
}

func (s *execSession) Resize(ctx context.Context, rows, cols uint) error {
	select {
	case s.sizes <- remotecommand.TerminalSize{Height: uint16(rows), Width: uint16(cols)}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return nil
	}
}

// Wait returns the command's exit status: pods/exec reports a non-zero
// one as an error carrying it.
func (s *execSession) Wait(ctx context.Context) (int, error) {
	select {
	case <-s.done:
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	if s.err == nil {
		return 0, nil
	}
	var ce utilexec.CodeExitError
	if errors.As(s.err, &ce) {
		return ce.Code, nil
	}
	var ee utilexec.ExitError
	if errors.As(s.err, &ee) {
		return ee.ExitStatus(), nil
	}
	return -1, fmt.Errorf("exec: %w", s.err)
}

func (s *execSession) Close() error {
	s.closeOnce.Do(func() {
		if s.stdinW != nil {
			s.stdinW.Close()
		}
		s.cancel()
	})
	return nil
}

// ContainerLogStream streams a Pod's output through pods/log. The API
// server merges stdout and stderr: opts.Stderr changes nothing.
func (d *Driver) ContainerLogStream(ctx context.Context, containerID string, opts drivers.LogOptions) (io.ReadCloser, error) {
	ns, name, err := splitID(containerID)
	if err != nil {
		return nil, err
	}
	lo := &corev1.PodLogOptions{Container: AgentContainer, Follow: opts.Follow}
	if opts.Tail >= 0 {
		t := int64(opts.Tail)
		lo.TailLines = &t
	}
	if !opts.Since.IsZero() {
		st := metav1.NewTime(opts.Since)
		lo.SinceTime = &st
	}
	rc, err := d.cs.CoreV1().Pods(ns).GetLogs(name, lo).Stream(ctx)
	if err != nil {
		return nil, d.wrap(err, "read the log of Pod %s", containerID)
	}
	return rc, nil
}

// ContainerLogTail reads a Pod's last lines.
func (d *Driver) ContainerLogTail(ctx context.Context, id string, lines int) ([]string, error) {
	rc, err := d.ContainerLogStream(ctx, id, drivers.LogOptions{Tail: lines, Stderr: true})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var out []string
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out, sc.Err()
}

// ContainerLogs reads a Pod's lines written after since, with their times.
func (d *Driver) ContainerLogs(ctx context.Context, id string, since time.Time) ([]drivers.LogLine, error) {
	ns, name, err := splitID(id)
	if err != nil {
		return nil, err
	}
	lo := &corev1.PodLogOptions{Container: AgentContainer, Timestamps: true}
	if !since.IsZero() {
		st := metav1.NewTime(since)
		lo.SinceTime = &st
	}
	rc, err := d.cs.CoreV1().Pods(ns).GetLogs(name, lo).Stream(ctx)
	if err != nil {
		return nil, d.wrap(err, "read the log of Pod %s", id)
	}
	defer rc.Close()
	var out []drivers.LogLine
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		ts, text, _ := strings.Cut(sc.Text(), " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || (!since.IsZero() && t.Before(since)) {
			continue
		}
		out = append(out, drivers.LogLine{Time: t, Text: text})
	}
	return out, sc.Err()
}

// WaitReady waits for a started Pod: the probe's command run through exec
// until it exits 0, or, without one, the Pod staying up for Timeout.
func (d *Driver) WaitReady(ctx context.Context, id string, probe drivers.ReadyProbe) error {
	ns, name, err := splitID(id)
	if err != nil {
		return err
	}
	what := probe.What
	if what == "" {
		what = "Pod " + id
	}
	deadline := time.Now().Add(probe.Timeout)
	for {
		p, err := d.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return d.wrap(err, "read Pod %s", id)
		}
		if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
			return fmt.Errorf("%s exited: %s", what, probe.Hint)
		}
		if w := waitingProblem(p); w != "" {
			return fmt.Errorf("%s cannot start: %s", what, w)
		}
		if len(probe.Exec) > 0 && p.Status.Phase == corev1.PodRunning {
			s, err := d.Exec(ctx, id, drivers.ExecOptions{Cmd: probe.Exec})
			if err == nil {
				go io.Copy(io.Discard, s.Stdout())
				go io.Copy(io.Discard, s.Stderr())
				code, werr := s.Wait(ctx)
				s.Close()
				if werr == nil && code == 0 {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			if len(probe.Exec) == 0 && p.Status.Phase == corev1.PodRunning {
				return nil
			}
			return fmt.Errorf("%s was not ready within %s: %s", what, probe.Timeout, probe.Hint)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// FindAgents finds an instance's agent container (Secret and Pod) in the
// placed namespaces, for every fleet when fleet is "".
func (d *Driver) FindAgents(ctx context.Context, fleet, instance string) ([]drivers.ObservedResource, error) {
	var out []drivers.ObservedResource
	for _, ns := range d.namespaces() {
		set := labels.Set{LabelAppManagedBy: drivers.ManagedByValue, drivers.LabelInstance: instance, drivers.LabelComponent: drivers.ComponentAgent}
		if fleet != "" {
			set[drivers.LabelFleet] = fleet
		}
		opts := metav1.ListOptions{LabelSelector: labels.SelectorFromSet(set).String()}
		secs, err := d.cs.CoreV1().Secrets(ns).List(ctx, opts)
		if err != nil {
			return nil, d.wrap(err, "list Secrets in %s", ns)
		}
		pods, err := d.cs.CoreV1().Pods(ns).List(ctx, opts)
		if err != nil {
			return nil, d.wrap(err, "list Pods in %s", ns)
		}
		o := observed(ns, nil, nil, secs.Items, pods.Items)
		out = append(out, o.Containers...)
	}
	return out, nil
}
