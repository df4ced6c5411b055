package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"time"

	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
)

// supervisorCommand turns a supervised container's spec into the engine's
// entrypoint and command: the supervisor, then the image's entrypoint and
// the command, as the engine itself would have run them.
func (d *Driver) supervisorCommand(ctx context.Context, s *drivers.ContainerSpec) (entry, cmd []string, err error) {
	sup := s.Supervisor
	res, err := d.cli.ImageInspect(ctx, s.Image.Ref)
	if err != nil {
		return nil, nil, d.wrap(err, "inspect image %q for the agent's command", s.Image.Ref)
	}
	var imgEntry, imgCmd []string
	if c := res.Config; c != nil {
		imgEntry, imgCmd = c.Entrypoint, c.Cmd
	}
	entry = append([]string{}, sup.Entrypoint...)
	var argv []string
	if sup.ImageCommand {
		argv = append(append(append([]string{}, imgEntry...), imgCmd...), sup.Args...)
		if len(imgEntry) == 0 && len(imgCmd) == 0 {
			// Nothing in the image to run: the agent user's login shell.
			entry = append(entry, sup.LoginShellFlag)
			argv = append([]string{}, sup.Args...)
		}
	} else {
		argv = append(append([]string{}, imgEntry...), sup.Command...)
	}
	return append(entry, "--"), argv, nil
}

// openHomeVolume makes a directory in the runtime-home volume, mounted at
// target in a created container, writable by any user: the agent runs as
// the image's user, whoever that is, and a new volume is root's. One
// archive upload holding only that directory's entry, into the volume
// itself (the engine allows that under a read-only root filesystem too).
func (d *Driver) openHomeVolume(ctx context.Context, id, target, subdir string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: subdir + "/", Mode: 0o1777, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if _, err := d.cli.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: target, Content: &buf}); err != nil {
		return d.wrap(err, "open the runtime-home volume of container %s", shortID(id))
	}
	return nil
}
