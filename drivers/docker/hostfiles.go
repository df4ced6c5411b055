package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
)

// HostFiles says which bind sources are jackin's own files on the
// operator's machine (the supervisor's binary, the agent directory,
// credential files on jackin's tmpfs, certificates, policies) when the
// engine runs on another machine. Before a container that mounts one is
// created, the file or directory is copied to the engine's host, under
// Dir (or TmpfsDir for a source under a TmpfsRoots directory) followed by
// its local path, through the engine's own connection: a short-lived,
// never started carrier container binds the target's parent directory and
// the engine's archive API fills it. The mount then names the copy.
// Every other bind source is a path on the engine's host, as written.
type HostFiles struct {
	// Roots and TmpfsRoots are local directories.
	Roots, TmpfsRoots []string
	// Dir and TmpfsDir are absolute directories on the engine's host;
	// TmpfsDir must be on a tmpfs there (/dev/shm).
	Dir, TmpfsDir string

	mu     sync.Mutex
	pushed map[string]string // local path -> digest last copied (this process)
	locks  map[string]*sync.Mutex
}

// DefaultRemoteDir and DefaultRemoteTmpfsDir are where a remote engine's
// host keeps jackin's files.
const (
	DefaultRemoteDir      = "/var/lib/jackin-remote"
	DefaultRemoteTmpfsDir = "/dev/shm/jackin-remote"
)

// CarrierImage is the empty image carrier containers are made from,
// imported on an engine the first time a file is carried there.
const CarrierImage = "jackin-carrier:v1"

func (h *HostFiles) init() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pushed == nil {
		h.pushed = map[string]string{}
		h.locks = map[string]*sync.Mutex{}
	}
}

// RemotePath is where a local source is copied on the engine's host, and
// whether it is one of jackin's own files at all.
func (h *HostFiles) RemotePath(local string) (string, bool) {
	clean := filepath.Clean(local)
	for _, r := range h.TmpfsRoots {
		if within(clean, r) {
			return path.Join(h.TmpfsDir, filepath.ToSlash(clean)), true
		}
	}
	for _, r := range h.Roots {
		if within(clean, r) {
			return path.Join(h.Dir, filepath.ToSlash(clean)), true
		}
	}
	return "", false
}

func within(p, root string) bool {
	root = filepath.Clean(root)
	return root != "" && (p == root || strings.HasPrefix(p, root+string(filepath.Separator)))
}

func (h *HostFiles) lockFor(local string) *sync.Mutex {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.locks[local]
	if m == nil {
		m = &sync.Mutex{}
		h.locks[local] = m
	}
	return m
}

// carryHostFiles copies the container's binds of jackin's own files to the
// engine's host and returns the resource with its mounts naming the copies.
func (d *Driver) carryHostFiles(ctx context.Context, r drivers.Resource) (drivers.Resource, error) {
	if d.hostFiles == nil || r.Container == nil {
		return r, nil
	}
	c := *r.Container
	c.Mounts = append([]drivers.MountSpec(nil), r.Container.Mounts...)
	for i, m := range c.Mounts {
		if m.Type != "bind" {
			continue
		}
		remote, ok := d.hostFiles.RemotePath(m.Source)
		if !ok {
			continue
		}
		if err := d.carry(ctx, m.Source, remote); err != nil {
			return r, fmt.Errorf("create container %s: copy %s to %s on %s: %w", r.Name, m.Source, remote, d.endpoint, err)
		}
		c.Mounts[i].Source = remote
		c.Mounts[i].Pin, c.Mounts[i].Under = nil, nil
	}
	r.Container = &c
	return r, nil
}

// CarryFile copies a local file or directory that one of the engine's
// containers mounts (a rewritten credential, a policy) to the engine's
// host again; a path that is not one of jackin's own files is left alone.
func (d *Driver) CarryFile(ctx context.Context, local string) error {
	if d.hostFiles == nil {
		return nil
	}
	remote, ok := d.hostFiles.RemotePath(local)
	if !ok {
		return nil
	}
	return d.carry(ctx, local, remote)
}

// carry copies local (a file or a directory tree) to remote on the
// engine's host, unless this process already copied the same content.
func (d *Driver) carry(ctx context.Context, local, remote string) error {
	lk := d.hostFiles.lockFor(local)
	lk.Lock()
	defer lk.Unlock()
	// What the tree looks like (names, modes, sizes, times): the same as
	// at the last copy skips archiving it again (the supervisor's binary
	// is tens of MB, mounted by every instance).
	seen, err := fingerprint(local)
	if err != nil {
		return err
	}
	d.hostFiles.mu.Lock()
	same := d.hostFiles.pushed[local] == seen
	d.hostFiles.mu.Unlock()
	if same {
		return nil
	}
	archive, _, err := tarOf(local, path.Base(remote))
	if err != nil {
		return err
	}
	id, done, err := d.carrier(ctx, path.Dir(remote))
	if err != nil {
		return err
	}
	defer done()
	if _, err := d.cli.CopyToContainer(ctx, id, client.CopyToContainerOptions{
		DestinationPath: "/c", Content: bytes.NewReader(archive),
	}); err != nil {
		return d.wrap(err, "copy into the carrier container")
	}
	d.hostFiles.mu.Lock()
	d.hostFiles.pushed[local] = seen
	d.hostFiles.mu.Unlock()
	d.log.V(2).Info("carried host files", "local", local, "remote", remote, "bytes", len(archive))
	return nil
}

// carrier makes a carrier container (never started) binding dir of the
// engine's host at /c; done removes it.
func (d *Driver) carrier(ctx context.Context, dir string) (id string, done func(), err error) {
	if err := d.ensureCarrierImage(ctx); err != nil {
		return "", nil, err
	}
	res, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:  CarrierImage,
			Cmd:    []string{"/c/none"},
			Labels: map[string]string{drivers.LabelBuiltBy: drivers.ManagedByValue, "dev.jackin.carrier": "true"},
		},
		HostConfig: &container.HostConfig{Binds: []string{dir + ":/c"}, NetworkMode: "none"},
	})
	if err != nil {
		return "", nil, d.wrap(err, "create the carrier container")
	}
	return res.ID, func() {
		if _, rerr := d.cli.ContainerRemove(context.WithoutCancel(ctx), res.ID, client.ContainerRemoveOptions{Force: true}); rerr != nil && !isNotFound(rerr) {
			d.log.Info("remove the carrier container", "id", res.ID, "error", rerr.Error())
		}
	}, nil
}

// ForgetHostFiles wipes the copies on the engine's host of locals (jackin's
// files of a deleted instance: its delivered credentials, its private
// daemon's keys): every regular file below each copy is overwritten with
// nothing, since the engine's archive API can write files but not remove
// them, so no secret value outlives its instance there. A copy that was
// never made is no error.
func (d *Driver) ForgetHostFiles(ctx context.Context, locals []string) error {
	if d.hostFiles == nil {
		return nil
	}
	for _, local := range locals {
		remote, ok := d.hostFiles.RemotePath(local)
		if !ok {
			continue
		}
		d.hostFiles.mu.Lock()
		delete(d.hostFiles.pushed, local)
		d.hostFiles.mu.Unlock()
		if err := d.wipe(ctx, remote); err != nil {
			return fmt.Errorf("wipe %s on %s: %w", remote, d.endpoint, err)
		}
	}
	return nil
}

// wipe overwrites every regular file below remote with an empty one.
func (d *Driver) wipe(ctx context.Context, remote string) error {
	id, done, err := d.carrier(ctx, path.Dir(remote))
	if err != nil {
		return err
	}
	defer done()
	res, err := d.cli.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: "/c/" + path.Base(remote)})
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return d.wrap(err, "read %s through the carrier container", remote)
	}
	defer res.Content.Close()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(res.Content)
	files := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read the archive of %s: %w", remote, err)
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
			continue
		}
		files++
		empty := &tar.Header{Name: hdr.Name, Typeflag: tar.TypeReg, Mode: hdr.Mode, Uid: hdr.Uid, Gid: hdr.Gid, ModTime: hdr.ModTime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(empty); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if files == 0 {
		return nil
	}
	if _, err := d.cli.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: "/c", Content: &buf}); err != nil {
		return d.wrap(err, "wipe %s through the carrier container", remote)
	}
	d.log.V(2).Info("wiped host files", "remote", remote, "files", files)
	return nil
}

// fingerprint is local's tree as stat sees it: every entry's relative
// name, mode, size and modification time.
func fingerprint(local string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(local, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(local, p)
		fmt.Fprintf(h, "%s\x00%o\x00%d\x00%d\n", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ensureCarrierImage imports CarrierImage (one empty directory) unless the
// engine has it.
func (d *Driver) ensureCarrierImage(ctx context.Context) error {
	if _, err := d.cli.ImageInspect(ctx, CarrierImage); err == nil {
		return nil
	} else if !isNotFound(err) {
		return d.wrap(err, "inspect image %s", CarrierImage)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "c/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	rc, err := d.cli.ImageImport(ctx, client.ImageImportSource{Source: &buf, SourceName: "-"}, CarrierImage,
		client.ImageImportOptions{Changes: []string{`CMD ["/c/none"]`, "LABEL " + drivers.LabelBuiltBy + "=" + drivers.ManagedByValue}})
	if err != nil {
		return d.wrap(err, "import image %s", CarrierImage)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return d.wrap(err, "import image %s", CarrierImage)
	}
	return nil
}

// tarOf archives local under the name base (a file, or a directory and
// everything below it; symbolic links are refused: jackin's own files have
// none) with modes and numeric owners kept, and returns a digest of the
// archive's content for skipping a repeated copy.
func tarOf(local, base string) ([]byte, string, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	fi, err := os.Lstat(local)
	if err != nil {
		return nil, "", err
	}
	add := func(p, name string, fi fs.FileInfo) error {
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link: refusing to copy it to another host", p)
		}
		if !fi.IsDir() && !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file or directory", p)
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = name
		hdr.Uname, hdr.Gname = "", ""
		hdr.ModTime = hdr.ModTime.Truncate(1e9)
		hdr.AccessTime, hdr.ChangeTime = hdr.ModTime, hdr.ModTime
		hdr.Format = tar.FormatPAX
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	}
	if !fi.IsDir() {
		err = add(local, base, fi)
	} else {
		var names []string
		err = filepath.WalkDir(local, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			names = append(names, p)
			return nil
		})
		sort.Strings(names)
		for _, p := range names {
			if err != nil {
				break
			}
			rel, _ := filepath.Rel(local, p)
			name := base
			if rel != "." {
				name = base + "/" + filepath.ToSlash(rel)
			}
			var st fs.FileInfo
			if st, err = os.Lstat(p); err == nil {
				err = add(p, name, st)
			}
		}
	}
	if err != nil {
		return nil, "", err
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(sum[:]), nil
}
