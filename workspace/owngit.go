package workspace

import (
	"context"
	"os/exec"
	"time"
)

// OwnGit is git run on a git dir jackin made and alone writes (the
// snapshot repository of package recovery), with a work tree an agent can
// write: the same hardening as every other call here (no hook, fsmonitor,
// submodule recursion or ext:: transport), no system or global config (the
// operator's filters and attributes must not change what is stored), and
// no GIT_ variable of jackin's environment but GIT_EXEC_PATH. git reads
// the work tree's files as data only: the git dir's own config and
// info/attributes decide everything else.
type OwnGit struct {
	// GitDir is the jackin-owned git dir.
	GitDir string
	// WorkTree is the directory git reads or writes files in ("" for none).
	WorkTree string
	// IndexFile is the index to use ("" for the git dir's own).
	IndexFile string
}

// Command is a git command (no shell) with OwnGit's environment. The
// caller wires its standard streams and runs it; ctx bounds it.
func (g OwnGit) Command(ctx context.Context, args ...string) *exec.Cmd {
	extra := []string{"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_DIR=" + g.GitDir, "GIT_NO_LAZY_FETCH=1"}
	if g.WorkTree != "" {
		extra = append(extra, "GIT_WORK_TREE="+g.WorkTree)
	}
	if g.IndexFile != "" {
		extra = append(extra, "GIT_INDEX_FILE="+g.IndexFile)
	}
	full := append(append([]string(nil), hardening...), args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = g.GitDir
	cmd.Env = gitEnv(false, extra...)
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// Run runs git with OwnGit's environment and returns its trimmed stdout;
// GitTimeout bounds it.
func (g OwnGit) Run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, GitTimeout)
	defer cancel()
	env := g.Command(ctx).Env
	return runGit(ctx, g.GitDir, env, args)
}
