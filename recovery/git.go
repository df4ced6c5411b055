package recovery

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackin-dev/jackin/workspace"
)

// runIn runs git with stdin and returns its trimmed stdout.
func runIn(ctx context.Context, g workspace.OwnGit, stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, workspace.GitTimeout)
	defer cancel()
	cmd := g.Command(ctx, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimRight(stdout.String(), "\n"), nil
}

// List is instance's snapshots, newest first.
func (r *Repo) List(ctx context.Context, instance string) ([]Snapshot, error) {
	out, err := r.git("", "").Run(ctx, "for-each-ref", "--format=%(objectname) %(refname) %(contents:subject)", refPrefix(instance))
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var snaps []Snapshot
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, " ", 3)
		if len(f) != 3 {
			continue
		}
		var m message
		if err := json.Unmarshal([]byte(f[2]), &m); err != nil {
			continue
		}
		snaps = append(snaps, Snapshot{ID: f[0][:12], Commit: f[0], Ref: f[1], Instance: m.Instance, Trigger: m.Trigger, Created: m.Created, Targets: m.Targets})
	}
	sort.Slice(snaps, func(i, j int) bool { return refTime(snaps[i].Ref) > refTime(snaps[j].Ref) })
	return snaps, nil
}

func refTime(ref string) int64 {
	n, _ := strconv.ParseInt(ref[strings.LastIndex(ref, "/")+1:], 10, 64)
	return n
}

// Find is instance's snapshot whose ID starts with id ("" or "latest":
// the newest). An ambiguous or unknown id is an error.
func (r *Repo) Find(ctx context.Context, instance, id string) (Snapshot, error) {
	snaps, err := r.List(ctx, instance)
	if err != nil {
		return Snapshot{}, err
	}
	if len(snaps) == 0 {
		return Snapshot{}, fmt.Errorf("instance %s has no snapshots", instance)
	}
	if id == "" || id == "latest" {
		return snaps[0], nil
	}
	var found []Snapshot
	for _, s := range snaps {
		if strings.HasPrefix(s.Commit, strings.ToLower(id)) {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return Snapshot{}, fmt.Errorf("instance %s has no snapshot %q (jackin snapshot list %s)", instance, id, instance)
	case 1:
		return found[0], nil
	}
	return Snapshot{}, fmt.Errorf("snapshot id %q is ambiguous for instance %s: give more digits", id, instance)
}

// Prune deletes instance's snapshots beyond the newest keep (keep < 1
// keeps one). With reclaim, it also deletes the objects no snapshot of
// the fleet refers to any more. It returns the snapshots deleted.
func (r *Repo) Prune(ctx context.Context, instance string, keep int, reclaim bool) ([]Snapshot, error) {
	unlock, err := r.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return r.prune(ctx, instance, keep, reclaim)
}

func (r *Repo) prune(ctx context.Context, instance string, keep int, reclaim bool) ([]Snapshot, error) {
	if keep < 1 {
		keep = 1
	}
	snaps, err := r.List(ctx, instance)
	if err != nil {
		return nil, err
	}
	var dropped []Snapshot
	if len(snaps) > keep {
		dropped = snaps[keep:]
		var in bytes.Buffer
		for _, s := range dropped {
			fmt.Fprintf(&in, "delete %s %s\n", s.Ref, s.Commit)
		}
		if _, err := runIn(ctx, r.git("", ""), in.Bytes(), "update-ref", "--stdin"); err != nil {
			return nil, fmt.Errorf("prune snapshots: %w", err)
		}
	}
	if reclaim {
		// The trees the instance's stat caches name may go with the
		// objects: the next snapshot lists through git again.
		removeStatCaches(filepath.Join(r.Dir, "indexes", instance))
		if _, err := r.git("", "").Run(ctx, "prune", "--expire=now"); err != nil {
			return dropped, fmt.Errorf("prune snapshot objects: %w", err)
		}
	}
	return dropped, nil
}

// catFile streams objects out of the repository (git cat-file --batch).
type catFile struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func (r *Repo) catFile(ctx context.Context) (*catFile, error) {
	cmd := r.git("", "").Command(ctx, "cat-file", "--batch")
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &catFile{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<16)}, nil
}

// object asks for one object and returns a reader of its content, valid
// until the next call; the caller reads it to the end.
func (c *catFile) object(name string) (io.Reader, int64, error) {
	if _, err := io.WriteString(c.in, name+"\n"); err != nil {
		return nil, 0, err
	}
	header, err := c.out.ReadString('\n')
	if err != nil {
		return nil, 0, err
	}
	f := strings.Fields(header)
	if len(f) != 3 {
		return nil, 0, fmt.Errorf("object %s: %s", name, strings.TrimSpace(header))
	}
	size, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return nil, 0, err
	}
	return &objectReader{r: io.LimitReader(c.out, size), c: c}, size, nil
}

// read returns a whole object.
func (c *catFile) read(name string) ([]byte, error) {
	rd, _, err := c.object(name)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(rd)
}

// objectReader reads one object and then the newline after it.
type objectReader struct {
	r    io.Reader
	c    *catFile
	done bool
}

func (o *objectReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	if err == io.EOF && !o.done {
		o.done = true
		if _, e := o.c.out.ReadByte(); e != nil {
			return n, e
		}
	}
	return n, err
}

func (c *catFile) close() {
	c.in.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// Instances are the names of the instances with snapshots in the
// repository, sorted.
func (r *Repo) Instances(ctx context.Context) ([]string, error) {
	out, err := r.git("", "").Run(ctx, "for-each-ref", "--format=%(refname)", "refs/jackin/")
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	seen := map[string]bool{}
	var names []string
	for _, ref := range strings.Split(out, "\n") {
		f := strings.Split(ref, "/")
		if len(f) == 4 && !seen[f[2]] {
			seen[f[2]] = true
			names = append(names, f[2])
		}
	}
	sort.Strings(names)
	return names, nil
}
