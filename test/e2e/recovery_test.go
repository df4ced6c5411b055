package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tests of recovery: snapshots of what an agent can write on the host (a
// rw mount and a worktree), restores, retention and history, against the
// engine with the agent changing the files from inside its container.

// treeState is a directory's exact state: kind, mode, content digest or
// link target, per path (.git left out: snapshots do not cover it).
func treeState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Name() == ".git" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "link " + l
		case fi.IsDir():
			out[rel] = fmt.Sprintf("dir %v", fi.Mode())
		default:
			b, _ := os.ReadFile(p)
			out[rel] = fmt.Sprintf("file %v %x", fi.Mode(), sha256.Sum256(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func stateDiff(want, got map[string]string) string {
	var d []string
	for k, v := range want {
		if got[k] != v {
			d = append(d, fmt.Sprintf("%s: want %q, got %q", k, v, got[k]))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("%s: extra %q", k, v))
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

type snapList struct {
	Repository      string `json:"repository"`
	RepositoryBytes int64  `json:"repositoryBytes"`
	Snapshots       []struct {
		ID      string `json:"id"`
		Trigger string `json:"trigger"`
		Files   int    `json:"files"`
		Targets []struct {
			Name string `json:"name"`
			Kind string `json:"kind"`
			Path string `json:"path"`
		} `json:"targets"`
	} `json:"snapshots"`
}

func (e *env) snapshots(t *testing.T, m, instance string) snapList {
	t.Helper()
	r := e.jackin("snapshot", "list", "-f", m, instance, "-o", "json")
	mustCode(t, r, 0, "snapshot list")
	var l snapList
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
		t.Fatalf("snapshot list -o json: %v\n%s", err, r)
	}
	return l
}

func (e *env) snapshotCreate(t *testing.T, m, instance string) string {
	t.Helper()
	r := e.jackin("snapshot", "create", "-f", m, instance, "-o", "json")
	mustCode(t, r, 0, "snapshot create")
	var doc struct {
		Snapshot struct {
			ID string `json:"id"`
		} `json:"snapshot"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc.Snapshot.ID == "" {
		t.Fatalf("snapshot create -o json: %v\n%s", err, r)
	}
	return doc.Snapshot.ID
}

func repoBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, _ := d.Info()
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// dataTree fills dir with what the agent will damage: files of several
// modes, a symlink, an empty directory, and n more files.
func dataTree(t *testing.T, dir string, n int) {
	t.Helper()
	for _, d := range []string{"bin", "sub/deeper", "empty", "bulk"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]os.FileMode{"a.txt": 0o644, "bin/run.sh": 0o755, "sub/deeper/secret.txt": 0o600, "sub/note.md": 0o640}
	for p, mode := range files {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("content of "+p+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, p), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "empty"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(dir, "bulk", fmt.Sprintf("f%05d", i)), []byte(strings.Repeat(fmt.Sprintf("bulk %d\n", i), 200)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// damage is what the bad unattended run does, from inside the container.
const damage = `set -e
rm /data/a.txt
echo junk > /data/bin/run.sh && chmod 644 /data/bin/run.sh
rm -rf /data/sub /data/empty
rm /data/bulk/f00007
echo corrupt > /data/bulk/f00008
echo new > /data/new.txt
mkdir -p /data/made/by/agent
ln -sf /etc/passwd /data/link
rm /work/untracked.txt
echo corrupt > /work/README
chmod 600 /work/script.sh
mkdir /work/evil && echo x > /work/evil/x`

func TestRecoverySnapshotRestoreUndo(t *testing.T) {
	e := newEnv(t)
	img := shellImage(t)
	src, _ := gitRepo(t, 0)
	data := filepath.Join(t.TempDir(), "data")
	dataTree(t, data, 300)
	body := `defaults: {role: image: %q, %s}
instances: w: {
	command: ["/bin/sh", "-c", "while :; do sleep 1; done"]
	env: GEN: %q
	recovery: {snapshot: %q, keep: %d}
	mounts: [{src: %q, dst: "/data", mode: "rw"}, {src: %q, dst: "/work", mode: "worktree"}]
}`
	m := e.manifest(fmt.Sprintf(body, img, gitEnv, "one", "before-start", 10, data, src))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")

	// before-start: the create was preceded by a snapshot of the rw mount
	// (the worktree did not exist yet).
	l := e.snapshots(t, m, "w")
	if len(l.Snapshots) != 1 || l.Snapshots[0].Trigger != "before-start" || len(l.Snapshots[0].Targets) != 1 || l.Snapshots[0].Targets[0].Kind != "rw" {
		t.Fatalf("after the first apply, want one before-start snapshot of the rw mount: %+v", l)
	}

	// Untracked and uncommitted work in the worktree, then a snapshot.
	e.inContainer("w", `echo untracked > /work/untracked.txt && printf '#!/bin/sh\necho hi\n' > /work/script.sh && chmod 755 /work/script.sh && echo more >> /work/README`)
	wt := e.checkoutPath("w")
	good := e.snapshotCreate(t, m, "w")
	wantData, wantWork := treeState(t, data), treeState(t, wt)
	if wantWork["untracked.txt"] == "" || !strings.Contains(wantWork["script.sh"], "-rwxr-xr-x") {
		t.Fatalf("the worktree fixture is not as meant: %v", wantWork)
	}

	// A second snapshot of the unchanged trees adds almost nothing.
	before := repoBytes(t, l.Repository)
	e.snapshotCreate(t, m, "w")
	grown := repoBytes(t, l.Repository) - before
	t.Logf("repository %d bytes; a second snapshot of the unchanged trees added %d bytes", before, grown)
	if grown > 16<<10 || grown*100 > before {
		t.Fatalf("a second snapshot of unchanged trees grew the repository by %d bytes (of %d)", grown, before)
	}

	// The bad run.
	e.inContainer("w", damage)
	badData, badWork := treeState(t, data), treeState(t, wt)
	if stateDiff(wantData, badData) == "" || stateDiff(wantWork, badWork) == "" {
		t.Fatal("the damage changed nothing")
	}

	// Refused while the agent runs; nothing changed.
	r := e.jackin("snapshot", "restore", "-f", m, "w", good)
	mustCode(t, r, 2, "restore while the agent runs")
	if !strings.Contains(r.stderr, "running") || !strings.Contains(r.stderr, "--stop") {
		t.Fatalf("the refusal does not say why:\n%s", r)
	}
	if d := stateDiff(badData, treeState(t, data)); d != "" {
		t.Fatalf("a refused restore changed the rw mount:\n%s", d)
	}

	// --stop: restored exactly, agent running again.
	r = e.jackin("snapshot", "restore", "-f", m, "w", good, "--stop", "-o", "json")
	mustCode(t, r, 0, "restore --stop")
	var res struct {
		Before struct {
			ID string `json:"id"`
		} `json:"before"`
		Written, Deleted int
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Before.ID == "" {
		t.Fatalf("restore -o json: %v\n%s", err, r)
	}
	if d := stateDiff(wantData, treeState(t, data)); d != "" {
		t.Fatalf("the rw mount after the restore:\n%s", d)
	}
	if d := stateDiff(wantWork, treeState(t, wt)); d != "" {
		t.Fatalf("the worktree after the restore:\n%s", d)
	}
	if st := docker(t, "inspect", "--format", "{{.State.Running}}", e.name("w")); st != "true" {
		t.Fatalf("the agent is not running again after restore --stop: %s", st)
	}
	// The agent sees the restored files through its mounts.
	if got := e.inContainer("w", "cat /data/a.txt /work/untracked.txt"); got != "content of a.txt\nuntracked" {
		t.Fatalf("in the container after the restore: %q", got)
	}

	// The pre-restore snapshot undoes the restore.
	r = e.jackin("snapshot", "restore", "-f", m, "w", res.Before.ID, "--stop")
	mustCode(t, r, 0, "undo the restore")
	if d := stateDiff(badData, treeState(t, data)); d != "" {
		t.Fatalf("the rw mount after undoing the restore:\n%s", d)
	}
	if d := stateDiff(badWork, treeState(t, wt)); d != "" {
		t.Fatalf("the worktree after undoing the restore:\n%s", d)
	}

	// show names the targets; history records snapshots and restores.
	r = e.jackin("snapshot", "show", "-f", m, "w", good)
	mustCode(t, r, 0, "snapshot show")
	if !strings.Contains(r.stdout, "rw-data: "+data) || !strings.Contains(r.stdout, "worktree-work: "+wt) {
		t.Fatalf("snapshot show:\n%s", r)
	}
	r = e.jackin("history", "-f", m, "-o", "json")
	mustCode(t, r, 0, "history")
	var h struct {
		Recovery []struct {
			Kind    string `json:"kind"`
			Message string `json:"message"`
		} `json:"recovery"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, ev := range h.Recovery {
		kinds[ev.Kind]++
	}
	if kinds["snapshot"] < 3 || kinds["restore"] != 2 {
		t.Fatalf("history's recovery entries: %+v", h.Recovery)
	}

	// before-apply with keep 2: a spec change snapshots before the
	// recreate, and retention leaves two.
	m = e.manifest(fmt.Sprintf(body, img, gitEnv, "two", "before-apply", 2, data, src))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply a spec change")
	l = e.snapshots(t, m, "w")
	if len(l.Snapshots) != 2 || l.Snapshots[0].Trigger != "before-apply" {
		t.Fatalf("after a before-apply recreate with keep 2: %+v", l.Snapshots)
	}
	// A converged apply changes nothing, so takes no snapshot.
	mustCode(t, e.jackin("apply", "-f", m), 0, "converged apply")
	if l2 := e.snapshots(t, m, "w"); l2.Snapshots[0].ID != l.Snapshots[0].ID {
		t.Fatalf("a converged apply took a snapshot: %+v", l2.Snapshots)
	}
}

// TestRecoverySnapshotKilledLeavesAUsableRepository: a snapshot killed
// with SIGKILL (jackin and its git children) leaves a repository the next
// snapshot and restore use.
func TestRecoverySnapshotKilledLeavesAUsableRepository(t *testing.T) {
	e := newEnv(t)
	data := filepath.Join(t.TempDir(), "data")
	dataTree(t, data, 6000)
	m := e.manifest(fmt.Sprintf(`instances: w: {role: image: %q, state: "stopped", mounts: [{src: %q, dst: "/data", mode: "rw"}]}`, agentImage, data))

	killed := false
	for _, delay := range []time.Duration{150 * time.Millisecond, 400 * time.Millisecond, time.Second} {
		cmd := exec.Command(jackinBin, "--state-dir", e.stateDir, "snapshot", "create", "-f", m, "w")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok && ee.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
			killed = true
			t.Logf("killed after %s", delay)
			break
		}
	}
	if !killed {
		t.Fatal("every snapshot finished before SIGKILL: make the tree larger")
	}
	want := treeState(t, data)
	id := e.snapshotCreate(t, m, "w")
	if err := os.WriteFile(filepath.Join(data, "a.txt"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCode(t, e.jackin("snapshot", "restore", "-f", m, "w", id), 0, "restore after a killed snapshot")
	if d := stateDiff(want, treeState(t, data)); d != "" {
		t.Fatalf("after the restore:\n%s", d)
	}
	r := e.jackin("snapshot", "prune", "-f", m, "--keep", "1", "-o", "json")
	mustCode(t, r, 0, "prune")
	if l := e.snapshots(t, m, "w"); len(l.Snapshots) != 1 {
		t.Fatalf("after prune --keep 1: %+v", l.Snapshots)
	}
	fsck := exec.Command("git", "--git-dir", filepath.Join(e.stateDir, "recovery", e.fleet+".git"), "fsck", "--no-dangling")
	if out, err := fsck.CombinedOutput(); err != nil {
		t.Fatalf("git fsck of the snapshot repository: %v\n%s", err, out)
	}
}
