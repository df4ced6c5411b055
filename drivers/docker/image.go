package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/drivers"
)

// EnsureImage makes img available locally and returns its image ID. With a
// Build it builds the context into img.Ref unless that tag already exists;
// without one it makes a single pull attempt when img.Ref is missing.
// Build output and pull progress go to progress (which may be nil).
func (d *Driver) EnsureImage(ctx context.Context, img drivers.ImageSpec, progress io.Writer) (string, error) {
	if img.Ref == "" {
		return "", errors.New("ensure image: no image reference given")
	}
	if progress == nil {
		progress = io.Discard
	}
	res, err := d.cli.ImageInspect(ctx, img.Ref)
	if err == nil {
		d.log.V(2).Info("image present", "ref", img.Ref, "id", res.ID)
		return res.ID, nil
	}
	if !isNotFound(err) {
		return "", d.wrap(err, "inspect image %q", img.Ref)
	}
	if img.Build != nil {
		return d.build(ctx, img.Ref, img.Build, progress)
	}
	return d.pull(ctx, img.Ref, progress)
}

// build runs a classic engine build of b into ref.
func (d *Driver) build(ctx context.Context, ref string, b *drivers.BuildSpec, progress io.Writer) (string, error) {
	dockerfile := b.Dockerfile
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	d.log.V(1).Info("building image", "ref", ref, "context", b.Context, "dockerfile", dockerfile)

	// Stream the archive: the engine reads it while it is written. A failure
	// to archive is reported as such, not as the failed request it causes.
	pr, pw := io.Pipe()
	tarErr := make(chan error, 1)
	go func() {
		err := writeBuildContext(pw, b.Context, dockerfile)
		pw.CloseWithError(err)
		tarErr <- err
	}()
	archiveErr := func() error {
		_ = pr.Close()
		if err := <-tarErr; err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return fmt.Errorf("build image %q: %w", ref, err)
		}
		return nil
	}

	args := make(map[string]*string, len(b.Args))
	for k, v := range b.Args {
		args[k] = &v
	}
	resp, err := d.cli.ImageBuild(ctx, pr, client.ImageBuildOptions{
		Tags:        []string{ref},
		Dockerfile:  dockerfile,
		BuildArgs:   args,
		Remove:      true,
		ForceRemove: true,
		// Not LabelManagedBy: containers inherit image labels, and a container
		// someone else runs from this image must not look like jackin's.
		Labels:  map[string]string{drivers.LabelBuiltBy: drivers.ManagedByValue},
		Version: build.BuilderV1,
	})
	if err != nil {
		if aerr := archiveErr(); aerr != nil {
			return "", aerr
		}
		return "", d.wrap(err, "build image %q from %s", ref, b.Context)
	}
	id, err := readJSONStream(resp.Body, progress)
	_ = resp.Body.Close()
	if aerr := archiveErr(); aerr != nil {
		return "", aerr
	}
	if err != nil {
		return "", d.wrap(err, "build image %q from %s", ref, b.Context)
	}
	if id == "" {
		// Old engines do not report the ID in the stream.
		res, err := d.cli.ImageInspect(ctx, ref)
		if err != nil {
			return "", d.wrap(err, "inspect image %q after building it", ref)
		}
		id = res.ID
	}
	d.log.V(1).Info("built image", "ref", ref, "id", id)
	return id, nil
}

// pull makes one attempt to pull ref.
func (d *Driver) pull(ctx context.Context, ref string, progress io.Writer) (string, error) {
	fail := func(err error) error {
		return d.wrap(err, "image %q is not available locally and could not be pulled", ref)
	}
	d.log.V(1).Info("pulling image", "ref", ref)
	resp, err := d.cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return "", fail(err)
	}
	defer resp.Close()
	if _, err := readJSONStream(resp, progress); err != nil {
		return "", fail(err)
	}
	res, err := d.cli.ImageInspect(ctx, ref)
	if err != nil {
		return "", fail(fmt.Errorf("the pull finished but the image is still missing: %w", err))
	}
	d.log.V(1).Info("pulled image", "ref", ref, "id", res.ID)
	return res.ID, nil
}

// streamMessage is one message of the engine's JSON progress stream (build,
// pull). Older engines send the error both as "error" and "errorDetail".
type streamMessage struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	Progress    string `json:"progress"`
	ID          string `json:"id"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"errorDetail"`
	Aux json.RawMessage `json:"aux"`
}

// readJSONStream copies a progress stream's text to progress and returns the
// image ID a build reports in its aux message, or the stream's error.
func readJSONStream(r io.Reader, progress io.Writer) (string, error) {
	dec := json.NewDecoder(r)
	var id string
	for {
		var m streamMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return id, nil
			}
			return id, fmt.Errorf("read engine progress stream: %w", err)
		}
		switch {
		case m.ErrorDetail != nil && m.ErrorDetail.Message != "":
			return id, errors.New(strings.TrimSpace(m.ErrorDetail.Message))
		case m.Error != "":
			return id, errors.New(strings.TrimSpace(m.Error))
		}
		if m.Stream != "" {
			_, _ = io.WriteString(progress, m.Stream)
		}
		if m.Status != "" {
			line := m.Status
			if m.ID != "" {
				line = m.ID + ": " + line
			}
			if m.Progress != "" {
				line += " " + m.Progress
			}
			_, _ = io.WriteString(progress, line+"\n")
		}
		if len(m.Aux) > 0 {
			var aux struct {
				ID string `json:"ID"`
			}
			if json.Unmarshal(m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
	}
}

// sortedEnv renders env as KEY=VALUE in key order.
func sortedEnv(env map[string]string) []string {
	if len(env) == 0 {
		return nil
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

// LoadImage loads an image tar (`docker save`'s stream) into the engine and
// reads the engine's answer to its end.
func (d *Driver) LoadImage(ctx context.Context, tar io.Reader) error {
	if err := d.ensureNegotiated(ctx); err != nil {
		return err
	}
	res, err := d.cli.ImageLoad(ctx, tar, client.ImageLoadWithQuiet(true))
	if err != nil {
		return d.wrap(err, "engine image load")
	}
	defer res.Close()
	if _, err := readJSONStream(res, io.Discard); err != nil {
		return d.wrap(err, "engine image load")
	}
	return nil
}
