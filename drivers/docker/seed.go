package docker

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
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
		info, err := de.Info()
		if err != nil {
			return err
		}
		var link string
		switch {
		case info.Mode().IsRegular(), info.IsDir():
		case info.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			return nil // sockets, devices and pipes are not copied
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("archive %s: %w", dir, err)
	}
	return tw.Close()
}
