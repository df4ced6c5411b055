package workspace

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSourceWorktreeConfigRunsNothing: with extensions.worktreeConfig on,
// git reads config.worktree from the source's git dir, which a worktree
// mount lets the agent write. A filter planted there (with attributes that
// use it) ran on the host when jackin read the source's status at the
// next validation; now no status is taken and the source is flagged.
func TestSourceWorktreeConfigRunsNothing(t *testing.T) {
	src, _ := newRepo(t)
	marker := filepath.Join(t.TempDir(), "PWNED")
	run(t, src, "config", "core.repositoryformatversion", "1") // extensions count from version 1 on
	run(t, src, "config", "extensions.worktreeConfig", "true")
	gitDir := filepath.Join(src, ".git")
	if err := os.WriteFile(filepath.Join(gitDir, "config.worktree"), []byte("[filter \"x\"]\n\tclean = touch "+marker+"; cat\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(gitDir, "info"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gitDir, "info", "attributes"), []byte("* filter=x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A file whose size is unchanged but whose time moved makes status
	// read it again, through the clean filter.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(src, "README"), later, later); err != nil {
		t.Fatal(err)
	}
	s, err := InspectSource(context.Background(), src, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the filter planted in config.worktree ran on the host")
	}
	if !s.WorktreeConfig {
		t.Fatal("the source is not flagged as using per-worktree config")
	}
}
