package recovery

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// oldTree writes a small tree and waits until none of its entries is
// racy, so that a snapshot's listing can be kept.
func oldTree(t *testing.T) string {
	t.Helper()
	work := t.TempDir()
	write(t, filepath.Join(work, "a", "one.txt"), "first content", 0o644)
	write(t, filepath.Join(work, "a", "run.sh"), "#!/bin/sh\n", 0o755)
	write(t, filepath.Join(work, "b", "two.txt"), "second", 0o600)
	if err := os.Symlink("a/one.txt", filepath.Join(work, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(work, "empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond)
	return work
}

func snapRepo(t *testing.T, work string) (*Repo, []Target, string) {
	t.Helper()
	repo, err := Open(context.Background(), t.TempDir(), "f1")
	if err != nil {
		t.Fatal(err)
	}
	tg := []Target{{Name: "rw-w", Kind: KindRW, Path: work}}
	return repo, tg, filepath.Join(repo.Dir, "indexes", "a", "rw-w.index")
}

func treeOf(t *testing.T, r *Repo, s Snapshot) string {
	t.Helper()
	out, err := r.git("", "").Run(context.Background(), "rev-parse", s.Commit+":rw-w")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// An unchanged target costs a listing: the second snapshot has the first
// one's tree and never goes through git's index (removed here, it is not
// made again).
func TestUnchangedTargetSkipsGit(t *testing.T) {
	needGit(t)
	ctx := context.Background()
	work := oldTree(t)
	repo, tg, index := snapRepo(t, work)
	s1, err := repo.Create(ctx, "a", TriggerManual, tg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(index); err != nil {
		t.Fatalf("the first snapshot left no index: %v", err)
	}
	s2, err := repo.Create(ctx, "a", TriggerManual, tg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(index); err == nil {
		t.Errorf("the second snapshot of an unchanged tree went through git's index")
	}
	if a, b := treeOf(t, repo, s1), treeOf(t, repo, s2); a != b {
		t.Errorf("unchanged tree, different trees: %s and %s", a, b)
	}
	if s2.Targets[0].Files != s1.Targets[0].Files || s2.Targets[0].Dirs != s1.Targets[0].Dirs || s2.Targets[0].Bytes != s1.Targets[0].Bytes {
		t.Errorf("counts differ: %+v and %+v", s1.Targets[0], s2.Targets[0])
	}
}

// Changes that keep a file's size and mtime (the agent sets the mtime
// back), a mode change, a new empty directory and a replaced file are all
// seen: each snapshot restores exactly what was there.
func TestChangesBehindTheSameSizeAndMtimeAreSeen(t *testing.T) {
	needGit(t)
	ctx := context.Background()
	cases := map[string]func(t *testing.T, work string){
		"same size, mtime set back": func(t *testing.T, work string) {
			p := filepath.Join(work, "a", "one.txt")
			fi, _ := os.Stat(p)
			write(t, p, "FIRST CONTENT", 0o644)
			if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
		},
		"mode": func(t *testing.T, work string) {
			if err := os.Chmod(filepath.Join(work, "b", "two.txt"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"new empty directory": func(t *testing.T, work string) {
			if err := os.Mkdir(filepath.Join(work, "b", "new"), 0o700); err != nil {
				t.Fatal(err)
			}
		},
		"replaced by a file of the same size and mtime": func(t *testing.T, work string) {
			p := filepath.Join(work, "b", "two.txt")
			fi, _ := os.Stat(p)
			tmp := filepath.Join(work, "tmp")
			write(t, tmp, "SECOND", 0o600)
			if err := os.Chtimes(tmp, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, p); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			work := oldTree(t)
			repo, tg, _ := snapRepo(t, work)
			if _, err := repo.Create(ctx, "a", TriggerManual, tg); err != nil {
				t.Fatal(err)
			}
			change(t, work)
			// Long enough that the change itself is not racy: only its
			// stat data can tell it.
			time.Sleep(250 * time.Millisecond)
			want := state(t, work)
			s2, err := repo.Create(ctx, "a", TriggerManual, tg)
			if err != nil {
				t.Fatal(err)
			}
			// Damage, then restore the second snapshot: it must hold the
			// change.
			write(t, filepath.Join(work, "a", "one.txt"), "damaged", 0o644)
			if err := os.RemoveAll(filepath.Join(work, "b")); err != nil {
				t.Fatal(err)
			}
			if _, err := repo.Restore(ctx, "a", s2.ID, tg); err != nil {
				t.Fatal(err)
			}
			if d := diffStates(want, state(t, work)); len(d) > 0 {
				t.Errorf("the snapshot after the change restored something else:\n%v", d)
			}
		})
	}
}

// Entries changed just before a listing may change again without new stat
// data: the next snapshot goes through git's index for them.
func TestRacyListingTakesGitsPath(t *testing.T) {
	needGit(t)
	ctx := context.Background()
	work := t.TempDir()
	write(t, filepath.Join(work, "fresh.txt"), "just written", 0o644)
	repo, tg, index := snapRepo(t, work)
	if _, err := repo.Create(ctx, "a", TriggerManual, tg); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(index); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Create(ctx, "a", TriggerManual, tg); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(index); err != nil {
		t.Errorf("a snapshot after a racy listing did not go through git's index: %v", err)
	}
}
