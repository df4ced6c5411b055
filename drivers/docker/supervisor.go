package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
)

// imageRun is what an image runs and as whom, from its config.
type imageRun struct {
	entry, cmd []string
	user       string
}

// imageRunOf inspects a supervised container's image once: the supervisor
// runs the image's entrypoint and command, and a checkout is handed to
// the image's user.
func (d *Driver) imageRunOf(ctx context.Context, ref string) (imageRun, error) {
	res, err := d.cli.ImageInspect(ctx, ref)
	if err != nil {
		return imageRun{}, d.wrap(err, "inspect image %q for the agent's command and user", ref)
	}
	if c := res.Config; c != nil {
		return imageRun{entry: c.Entrypoint, cmd: c.Cmd, user: c.User}, nil
	}
	return imageRun{}, nil
}

// supervisorCommand turns a supervised container's spec into the engine's
// entrypoint and command: the supervisor, then the image's entrypoint and
// the command, as the engine itself would have run them.
func supervisorCommand(s *drivers.ContainerSpec, img imageRun) (entry, cmd []string) {
	sup := s.Supervisor
	imgEntry, imgCmd := img.entry, img.cmd
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
	return append(entry, "--"), argv
}

// runsAsRoot reports whether a container runs as root: its user (the
// profile's, else the image's) is unset, 0 or root. A name that only maps
// to uid 0 in the image counts as another user (the upload is made).
func runsAsRoot(specUser, imageUser string) bool {
	u := specUser
	if u == "" {
		u = imageUser
	}
	name, _, _ := strings.Cut(u, ":")
	return name == "" || name == "0" || name == "root"
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
