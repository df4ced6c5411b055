package manifests

import (
	"os/exec"
	"testing"
)

// gitInit makes dir a repository with one commit.
func gitInit(t *testing.T, dir string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git on PATH")
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main", dir},
		{"-C", dir, "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "first"},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
}

func repo(t *testing.T, fx fixture) { gitInit(t, fx.dir+"/repo") }

func TestLoadChecksIsolatedMounts(t *testing.T) {
	runRejects(t, []rejectCase{
		{name: "worktree src not a repository", files: map[string]string{"f.cue": inst("mounts: [{«src: \"plain\", dst: \"/w\", mode: \"worktree\"}]"), "plain/": ""},
			path: "instances.a.mounts[0].src", msg: "src $DIR/plain is not a git repository"},
		{name: "clone src inside a repository", files: map[string]string{"f.cue": inst("mounts: [{«src: \"repo/sub\", dst: \"/w\", mode: \"clone\"}]"), "repo/sub/": ""}, setup: repo,
			path: "instances.a.mounts[0].src", msg: "lies inside the git repository"},
		{name: "unknown ref", files: map[string]string{"f.cue": inst("mounts: [{src: \"repo\", dst: \"/w\", mode: \"worktree\", «ref: \"nope\"}]"), "repo/": ""}, setup: repo,
			path: "instances.a.mounts[0].ref", msg: `ref "nope" is not a commit in $DIR/repo`},
		{name: "worktree without src", src: inst("mounts: [«{dst: \"/w\", mode: \"worktree\"}]"),
			path: "instances.a.mounts[0]", msg: "a worktree mount needs src, the git repository to check out"},
		{name: "ref on a bind mount", files: map[string]string{"f.cue": inst("mounts: [{src: \"d\", dst: \"/w\", mode: \"rw\", «ref: \"main\"}]"), "d/": ""},
			path: "instances.a.mounts[0].ref", msg: `ref applies to worktree and clone mounts only, not "rw"`},
		{name: "size on an ephemeral mount", src: inst("mounts: [{dst: \"/w\", mode: \"ephemeral\", «size: \"1G\"}]"),
			path: "instances.a.mounts[0].size", msg: `size applies to tmpfs mounts only, not "ephemeral"`},
		{name: "ephemeral seed is a file", files: map[string]string{"f.cue": inst("mounts: [{«src: \"seed\", dst: \"/w\", mode: \"ephemeral\"}]"), "seed": "x"},
			path: "instances.a.mounts[0].src", msg: "src $DIR/seed is not a directory: an ephemeral volume is seeded from a directory"},
		{name: "two worktrees of one repository", files: map[string]string{"f.cue": inst("mounts: [{src: \"repo\", dst: \"/one\", mode: \"worktree\"}, {«src: \"repo\", dst: \"/two\", mode: \"worktree\"}]"), "repo/": ""}, setup: repo,
			path: "instances.a.mounts[1].src", msg: "mounts[0] already makes a worktree of the repository"},
		{name: "worktree of a repository with per-worktree config", files: map[string]string{"f.cue": inst("mounts: [{src: \"repo\", dst: \"/w\", «mode: \"worktree\"}]"), "repo/": ""},
			setup: func(t *testing.T, fx fixture) {
				repo(t, fx)
				for _, kv := range [][2]string{{"core.repositoryformatversion", "1"}, {"extensions.worktreeConfig", "true"}} {
					if out, err := exec.Command("git", "-C", fx.dir+"/repo", "config", kv[0], kv[1]).CombinedOutput(); err != nil {
						t.Fatalf("git config: %v\n%s", err, out)
					}
				}
			},
			path: "instances.a.mounts[0].mode", msg: "enables extensions.worktreeConfig"},
		{name: "two mounts with one slug", src: inst("mounts: [{dst: \"/a/b\", mode: \"ephemeral\"}, {«dst: \"/a-b\", mode: \"ephemeral\"}]"),
			path: "instances.a.mounts[1].dst", msg: `both name the checkout or volume "a-b"`},
	})
}

func TestLoadResolvesWorktreeGitDir(t *testing.T) {
	fx := newFixture(t, map[string]string{"f.cue": inst("mounts: [{src: \"repo\", dst: \"/w\", mode: \"worktree\"}, {src: \"repo\", dst: \"/c\", mode: \"clone\", ref: \"main\"}]"), "repo/": ""})
	gitInit(t, fx.dir+"/repo")
	f := fx.mustLoad(t, "f.cue")
	ms := f.Instances["a"].Mounts
	if ms[0].GitCommonDir != fx.dir+"/repo/.git" || ms[1].GitCommonDir != "" || ms[1].Ref != "main" {
		t.Fatalf("mounts %+v", ms)
	}
}

// homeRepoWorktree makes the fixture's home a repository (dotfiles kept in
// git) and wt a linked worktree of it: wt's git directory is ~/.git.
func homeRepoWorktree(t *testing.T, fx fixture) {
	gitInit(t, fx.dir+"/home")
	if out, err := exec.Command("git", "-C", fx.dir+"/home", "worktree", "add", "-q", fx.dir+"/wt").CombinedOutput(); err != nil {
		t.Fatalf("git worktree add: %v\n%s", err, out)
	}
}

func TestLoadChecksTheWorktreeGitDir(t *testing.T) {
	runRejects(t, []rejectCase{
		{name: "worktree of a linked worktree of ~ (its git dir is ~/.git)", src: inst("mounts: [{«src: \"wt\", dst: \"/w\", mode: \"worktree\"}]"), setup: homeRepoWorktree,
			path: "instances.a.mounts[0].src", msg: "the worktree would mount the git directory $DIR/home/.git"},
	})
}
