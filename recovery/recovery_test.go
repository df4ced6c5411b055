package recovery

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func needGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git on PATH")
	}
}

// state is a tree's exact content: kind, mode, content or link target.
func state(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
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

func diffStates(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %q != %q", k, v, b[k]))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			d = append(d, fmt.Sprintf("%s: extra %q", k, v))
		}
	}
	sort.Strings(d)
	return d
}

func write(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// hostileTree is a tree an agent might leave: attributes asking for
// conversions and a filter, ignore rules, odd modes, an empty directory, a
// symlink, a nested repository without a commit, a name git refuses on
// NTFS.
func hostileTree(t *testing.T, dir string) {
	write(t, filepath.Join(dir, ".gitattributes"), "* text eol=crlf filter=evil ident\n", 0o644)
	write(t, filepath.Join(dir, ".gitignore"), "ignored/\n*.log\n", 0o644)
	write(t, filepath.Join(dir, "crlf.txt"), "a\r\nb\n$Id$\n", 0o644)
	write(t, filepath.Join(dir, "secret.key"), "k", 0o600)
	write(t, filepath.Join(dir, "run.sh"), "#!/bin/sh\n", 0o750)
	write(t, filepath.Join(dir, "ignored", "x.log"), "ignored but written", 0o644)
	write(t, filepath.Join(dir, "src", "a", "b.go"), "package a\n", 0o644)
	write(t, filepath.Join(dir, "git~1"), "ntfs alias", 0o644)
	write(t, filepath.Join(dir, "node_modules", "dep", "i.js"), "x", 0o644)
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "empty"), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("src/a/b.go", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "nested", ".git", "objects"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "nested", ".git", "config"), "[filter \"evil\"]\n\tclean = touch /tmp/jackin-recovery-pwned\n", 0o644)
	write(t, filepath.Join(dir, "nested", "n.txt"), "nested file", 0o644)
	write(t, filepath.Join(dir, ".git", "config"), "[core]\n\tfsmonitor = touch /tmp/jackin-recovery-pwned\n[filter \"evil\"]\n\tclean = touch /tmp/jackin-recovery-pwned\n", 0o644)
}

func TestSnapshotRestoreExact(t *testing.T) {
	needGit(t)
	ctx := context.Background()
	state0 := t.TempDir()
	work := filepath.Join(t.TempDir(), "work")
	outside := t.TempDir()
	hostileTree(t, work)
	write(t, filepath.Join(outside, "keep.txt"), "outside", 0o644)
	_ = os.Remove("/tmp/jackin-recovery-pwned")

	repo, err := Open(ctx, state0, "f1")
	if err != nil {
		t.Fatal(err)
	}
	tg := []Target{{Name: "rw-work", Kind: KindRW, Dst: "/work", Path: work, Excludes: []string{"node_modules"}}}
	want := state(t, work)
	s1, err := repo.Create(ctx, "web", TriggerManual, tg)
	if err != nil {
		t.Fatal(err)
	}
	if s1.Targets[0].Skipped == 0 {
		t.Errorf("the .git entries should count as skipped: %+v", s1.Targets[0])
	}
	outsideBefore := state(t, outside)

	// The agent deletes, corrupts, re-modes and adds; turns a directory
	// into a file and another into a symlink out of the tree.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Remove(filepath.Join(work, "secret.key")))
	write(t, filepath.Join(work, "crlf.txt"), "corrupted", 0o644)
	must(os.Chmod(filepath.Join(work, "run.sh"), 0o644))
	write(t, filepath.Join(work, "new", "untracked.txt"), "new", 0o644)
	must(os.RemoveAll(filepath.Join(work, "empty")))
	write(t, filepath.Join(work, "empty"), "now a file", 0o644)
	must(os.RemoveAll(filepath.Join(work, "src")))
	must(os.Symlink(outside, filepath.Join(work, "src")))
	must(os.Remove(filepath.Join(work, "link")))
	write(t, filepath.Join(work, "link"), "not a link", 0o644)
	write(t, filepath.Join(work, "node_modules", "dep", "i.js"), "changed, excluded", 0o644)
	corrupted := state(t, work)

	res, err := repo.Restore(ctx, "web", s1.ID, tg)
	if err != nil {
		t.Fatal(err)
	}
	got := state(t, work)
	// Excluded paths are left as they are.
	want["node_modules/dep/i.js"] = got["node_modules/dep/i.js"]
	if d := diffStates(want, got); len(d) > 0 {
		t.Errorf("restore is not exact:\n%s", strings.Join(d, "\n"))
	}
	if d := diffStates(outsideBefore, state(t, outside)); len(d) > 0 {
		t.Errorf("restore wrote outside the target:\n%s", strings.Join(d, "\n"))
	}
	if res.Written == 0 || res.Deleted == 0 || res.Modes == 0 {
		t.Errorf("restore counts: %+v", res)
	}
	// The pre-restore snapshot undoes the restore.
	if _, err := repo.Restore(ctx, "web", res.Before.ID, tg); err != nil {
		t.Fatal(err)
	}
	if d := diffStates(corrupted, state(t, work)); len(d) > 0 {
		t.Errorf("undoing the restore is not exact:\n%s", strings.Join(d, "\n"))
	}
	if _, err := os.Stat("/tmp/jackin-recovery-pwned"); err == nil {
		t.Fatal("git ran a program the tree named")
	}
	snaps, err := repo.List(ctx, "web")
	if err != nil || len(snaps) != 3 {
		t.Fatalf("list: %d snapshots, %v", len(snaps), err)
	}
	if snaps[0].Trigger != TriggerPreRestore || snaps[2].ID != s1.ID {
		t.Errorf("list order/triggers: %+v", snaps)
	}
}

func TestSecondSnapshotAddsAlmostNothing(t *testing.T) {
	needGit(t)
	ctx := context.Background()
	work := t.TempDir()
	for i := range 300 {
		write(t, filepath.Join(work, fmt.Sprintf("d%d", i%10), fmt.Sprintf("f%d", i)), strings.Repeat(fmt.Sprint(i), 2000), 0o644)
	}
	repo, err := Open(ctx, t.TempDir(), "f1")
	if err != nil {
		t.Fatal(err)
	}
	tg := []Target{{Name: "rw-w", Kind: KindRW, Path: work}}
	if _, err := repo.Create(ctx, "a", TriggerManual, tg); err != nil {
		t.Fatal(err)
	}
	s1, _ := repo.Size()
	if _, err := repo.Create(ctx, "a", TriggerManual, tg); err != nil {
		t.Fatal(err)
	}
	s2, _ := repo.Size()
	if s2-s1 > 4096 {
		t.Errorf("a second snapshot of an unchanged tree added %d bytes (first: %d)", s2-s1, s1)
	}
	t.Logf("first snapshot: %d bytes, second added %d bytes", s1, s2-s1)
}

func TestRestoreRefusesMovedTarget(t *testing.T) {
	needGit(t)
	ctx := context.Background()
	work, other := t.TempDir(), t.TempDir()
	write(t, filepath.Join(work, "a"), "a", 0o644)
	repo, err := Open(ctx, t.TempDir(), "f1")
	if err != nil {
		t.Fatal(err)
	}
	s, err := repo.Create(ctx, "a", TriggerManual, []Target{{Name: "rw-w", Path: work}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = repo.Restore(ctx, "a", s.ID, []Target{{Name: "rw-w", Path: other}})
	if err == nil || !strings.Contains(err.Error(), "not a writable mount") {
		t.Fatalf("restore into a path that is no longer the mount: %v", err)
	}
	if _, err := repo.Restore(ctx, "a", "ffff", []Target{{Name: "rw-w", Path: work}}); err == nil {
		t.Fatal("an unknown id restored")
	}
}

func TestPruneKeeps(t *testing.T) {
	needGit(t)
	ctx := context.Background()
	work := t.TempDir()
	repo, err := Open(ctx, t.TempDir(), "f1")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		write(t, filepath.Join(work, "a"), fmt.Sprint(i), 0o644)
		if _, err := repo.Create(ctx, "a", TriggerManual, []Target{{Name: "rw-w", Path: work}}); err != nil {
			t.Fatal(err)
		}
	}
	dropped, err := repo.Prune(ctx, "a", 2, true)
	if err != nil || len(dropped) != 2 {
		t.Fatalf("prune: %d dropped, %v", len(dropped), err)
	}
	snaps, _ := repo.List(ctx, "a")
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots kept, want 2", len(snaps))
	}
}

func TestStaleLocksAreCleared(t *testing.T) {
	needGit(t)
	ctx := context.Background()
	work := t.TempDir()
	write(t, filepath.Join(work, "a"), "a", 0o644)
	repo, err := Open(ctx, t.TempDir(), "f1")
	if err != nil {
		t.Fatal(err)
	}
	tg := []Target{{Name: "rw-w", Path: work}}
	if _, err := repo.Create(ctx, "a", TriggerManual, tg); err != nil {
		t.Fatal(err)
	}
	// What a SIGKILLed git leaves behind.
	write(t, filepath.Join(repo.Dir, "indexes", "a", "rw-w.index.lock"), "", 0o644)
	write(t, filepath.Join(repo.Dir, "packed-refs.lock"), "", 0o644)
	write(t, filepath.Join(work, "b"), "b", 0o644)
	if _, err := repo.Create(ctx, "a", TriggerManual, tg); err != nil {
		t.Fatalf("a snapshot after a killed one: %v", err)
	}
}
