package docker

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/supervisor"
)

// LabelCheckoutOf marks the one-shot container that fills a checkout
// volume: its value is the agent container's name. It carries no fleet
// label, so observation never sees it.
const LabelCheckoutOf = "dev.jackin.checkout-of"

// fillCheckouts runs, before an agent container is created, one
// short-lived container per volume mount with a Clone: the role image's
// git (driven by jackin's binary, bound as the supervisor's is) clones
// the URL into the volume as the agent's user (it starts as root with
// three capabilities to hand the volume over, and drops them), on the
// agent's first network, or keeps the checkout the volume already holds. It is the
// Docker form of a Kubernetes init container; running it before the
// agent exists means an apply killed meanwhile leaves no agent to start
// over a half-made checkout.
func (d *Driver) fillCheckouts(ctx context.Context, r drivers.Resource, imageUser string) error {
	s := r.Container
	owner := s.User
	if owner == "" {
		owner = imageUser
	}
	var bin *drivers.MountSpec
	for i, m := range s.Mounts {
		if m.Type == "bind" && m.Target == supervisor.BinDir {
			bin = &s.Mounts[i]
		}
	}
	for i, m := range s.Mounts {
		if m.Clone == nil {
			continue
		}
		if m.Type != "volume" || bin == nil {
			return fmt.Errorf("container %s: the checkout at %s is cloned by jackin's binary into a volume, and the container has no supervisor or the mount is a %s", r.Name, m.Target, m.Type)
		}
		if err := d.runCheckout(ctx, r, i, m, *bin, owner); err != nil {
			return err
		}
	}
	return nil
}

func (d *Driver) runCheckout(ctx context.Context, r drivers.Resource, n int, m, bin drivers.MountSpec, owner string) error {
	s := r.Container
	name := r.Name + "-checkout-" + strconv.Itoa(n)
	if err := d.removeCheckoutJob(ctx, name, r.Name); err != nil {
		return err
	}
	argv := []string{path.Join(supervisor.BinDir, "jackin"), "git-checkout", "--dir", m.Target, "--url", m.Clone.URL, "--branch", m.Clone.Branch}
	if m.Clone.Ref != "" {
		argv = append(argv, "--ref", m.Clone.Ref)
	}
	// It starts as root, hands a new volume to the agent's user (the
	// profile's, else the image's) and runs git as them: the checkout is
	// the agent's, whoever that is.
	if owner != "" {
		argv = append(argv, "--owner", owner)
	}
	env := []string{"HOME=/tmp"}
	for _, k := range drivers.ProxyEnv {
		if v, ok := s.Env[k]; ok {
			env = append(env, k+"="+v)
		}
	}
	cfg := &container.Config{
		Image: s.Image.Ref, Entrypoint: argv, Env: env, User: "0:0",
		Labels: map[string]string{drivers.LabelManagedBy: drivers.ManagedByValue, LabelCheckoutOf: r.Name},
	}
	hc := &container.HostConfig{
		CapDrop: []string{"ALL"}, CapAdd: drivers.CheckoutCaps, SecurityOpt: []string{"no-new-privileges"}, ReadonlyRootfs: true,
		Tmpfs: map[string]string{"/tmp": ""},
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: bin.Source, Target: supervisor.BinDir, ReadOnly: true},
			{Type: mount.TypeVolume, Source: m.Source, Target: m.Target},
		},
	}
	if len(s.Networks) > 0 {
		hc.NetworkMode = container.NetworkMode(s.Networks[0])
	}
	res, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: hc})
	if err != nil {
		return d.wrap(err, "create %s, which clones %s into the volume %s", name, m.Clone.URL, m.Source)
	}
	defer func() {
		if _, err := d.cli.ContainerRemove(context.WithoutCancel(ctx), res.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !isNotFound(err) {
			// The next create of this agent removes it (removeCheckoutJob).
			d.log.Error(err, "remove the checkout container", "container", name)
		}
	}()
	wait := d.cli.ContainerWait(ctx, res.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := d.cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return d.wrap(err, "start %s, which clones %s", name, m.Clone.URL)
	}
	var code int64
	select {
	case w := <-wait.Result:
		code = w.StatusCode
	case err := <-wait.Error:
		return d.wrap(err, "wait for %s, which clones %s", name, m.Clone.URL)
	}
	out := d.jobOutput(ctx, res.ID)
	if code != 0 {
		return fmt.Errorf("container %s: the checkout of %s into %s failed (exit %d): %s", r.Name, m.Clone.URL, m.Target, code, out)
	}
	d.log.V(2).Info("checkout filled", "container", r.Name, "target", m.Target, "result", out)
	return nil
}

// removeCheckoutJob removes a checkout container an earlier, interrupted
// run left behind, only when its label says it is this agent's.
func (d *Driver) removeCheckoutJob(ctx context.Context, name, agent string) error {
	res, err := d.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return d.wrap(err, "inspect %s", name)
	}
	if res.Container.Config == nil || res.Container.Config.Labels[LabelCheckoutOf] != agent || res.Container.Config.Labels[drivers.LabelManagedBy] != drivers.ManagedByValue {
		return fmt.Errorf("a container named %s exists and is not jackin's checkout of %s: jackin never removes it; rename or remove it yourself", name, agent)
	}
	if _, err := d.cli.ContainerRemove(ctx, res.Container.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !isNotFound(err) {
		return d.wrap(err, "remove the leftover %s", name)
	}
	return nil
}

// jobOutput is what a checkout container printed (git's own words on a
// failure), printable characters only, at most 4 KiB.
func (d *Driver) jobOutput(ctx context.Context, id string) string {
	rc, err := d.cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "20"})
	if err != nil {
		return "(its log cannot be read: " + err.Error() + ")"
	}
	defer rc.Close()
	var buf bytes.Buffer
	w := &capped{buf: &buf, max: 4 << 10}
	_, _ = stdcopy.StdCopy(w, w, rc)
	return printable(strings.TrimSpace(buf.String()))
}
