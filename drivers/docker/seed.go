package docker

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
)

var _ drivers.Seeder = (*Driver)(nil)

// Seed copies the host directory srcDir to target in a created container
// (one archive upload). Run before the container first starts, it fills the
// volume mounted at target: the engine writes an upload under a volume's
// mount point into the volume. Owners become root, modes are kept.
func (d *Driver) Seed(ctx context.Context, containerID, target, srcDir string) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeSeedArchive(pw, srcDir)) }()
	defer pr.Close()
	if _, err := d.cli.CopyToContainer(ctx, containerID, client.CopyToContainerOptions{DestinationPath: target, Content: pr}); err != nil {
		return d.wrap(err, "copy %s into %s of container %s", srcDir, target, shortID(containerID))
	}
	return nil
}

// writeSeedArchive writes dir's tree as a tar archive: regular files,
// directories and symlinks, names relative to dir.
func writeSeedArchive(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		return writeTarEntry(tw, p, filepath.ToSlash(rel), de, nil)
	})
	if err != nil {
		return fmt.Errorf("archive %s: %w", dir, err)
	}
	return tw.Close()
}
