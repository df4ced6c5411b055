package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/test/harness"
)

// Tests of worktree, clone and ephemeral mounts against the engine, with
// real git repositories: a source checkout and a local bare repository as
// its "remote". Agents commit inside their containers with the git image.

var (
	gitImageOnce sync.Once
	gitImageErr  error
)

// gitImage builds (once, and only when the engine lacks it) the agent
// image that has git and a shell.
func gitImage(t *testing.T) string {
	t.Helper()
	gitImageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jackin-git-image-")
		if err != nil {
			gitImageErr = err
			return
		}
		defer os.RemoveAll(dir)
		gitImageErr = harness.BuildGitImage(dir)
	})
	if gitImageErr != nil {
		t.Fatalf("build %s: %v", harness.GitImage, gitImageErr)
	}
	return harness.GitImage
}

// hostGit runs the host's git in dir.
func hostGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=op", "GIT_AUTHOR_EMAIL=op@example.com", "GIT_COMMITTER_NAME=op", "GIT_COMMITTER_EMAIL=op@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git -C %s %s: %v\n%s", dir, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// gitRepo makes a source checkout with one commit on main, pushed to a
// bare repository that is its origin. files adds more files to the commit.
func gitRepo(t *testing.T, files int) (src, bare string) {
	t.Helper()
	root := t.TempDir()
	src, bare = filepath.Join(root, "src"), filepath.Join(root, "remote.git")
	hostGit(t, root, "init", "-q", "--bare", bare)
	hostGit(t, root, "init", "-q", "-b", "main", src)
	if err := os.WriteFile(filepath.Join(src, "README"), []byte("the main checkout\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < files; i++ {
		dir := filepath.Join(src, "pkg", fmt.Sprintf("d%02d", i%50))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d.txt", i)), bytes.Repeat([]byte(fmt.Sprintf("line %d\n", i)), 40), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hostGit(t, src, "add", ".")
	hostGit(t, src, "commit", "-q", "-m", "first")
	hostGit(t, src, "remote", "add", "origin", bare)
	hostGit(t, src, "push", "-q", "origin", "main")
	return src, bare
}

// gitEnv sets the commit identity in the container (the image has no git config).
const gitEnv = `env: {GIT_AUTHOR_NAME: "agent", GIT_AUTHOR_EMAIL: "agent@example.com", GIT_COMMITTER_NAME: "agent", GIT_COMMITTER_EMAIL: "agent@example.com"}`

// inContainer runs a shell command in an instance's container.
func (e *env) inContainer(instance, script string) string {
	e.t.Helper()
	return docker(e.t, "exec", e.name(instance), "sh", "-c", script)
}

// review is the start of the review commands jackin work prints for an
// instance's checkout of /work: through a git dir jackin keeps, never the
// checkout's own (whose config the agent writes).
func (e *env) review(instance string) string {
	return "git --no-optional-locks --git-dir=" + filepath.Join(e.stateDir, "review", e.fleet, instance, "work.git") + " --work-tree=" + e.checkoutPath(instance)
}

// checkoutPath is where jackin keeps an instance's checkout for /work.
func (e *env) checkoutPath(instance string) string {
	return filepath.Join(e.stateDir, "worktrees", e.fleet, instance, "work")
}

func (e *env) branch(instance string) string { return "jackin/" + e.fleet + "/" + instance }

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// workList is `jackin work -o json`.
type workList struct {
	Checkouts []struct {
		Instance     string `json:"instance"`
		Mode         string `json:"mode"`
		Path         string `json:"path"`
		Branch       string `json:"branch"`
		Base         string `json:"base"`
		Status       string `json:"status"`
		Dirty        bool   `json:"dirty"`
		Uncommitted  int    `json:"uncommitted"`
		Unpushed     int    `json:"unpushed"`
		ChangedFiles int    `json:"changedFiles"`
		Review       string `json:"review"`
	} `json:"checkouts"`
}

func (e *env) work(args ...string) workList {
	e.t.Helper()
	r := e.jackin(append([]string{"work", "--fleet", e.fleet, "-o", "json"}, args...)...)
	mustCode(e.t, r, 0, "jackin work")
	var w workList
	if err := json.Unmarshal([]byte(r.stdout), &w); err != nil {
		e.t.Fatalf("jackin work -o json: %v\n%s", err, r.stdout)
	}
	return w
}

// worktreeEntries lists the source repository's worktrees (git worktree list).
func worktreeEntries(t *testing.T, src string) []string {
	t.Helper()
	var paths []string
	for _, l := range strings.Split(hostGit(t, src, "worktree", "list", "--porcelain"), "\n") {
		if p, ok := strings.CutPrefix(l, "worktree "); ok {
			paths = append(paths, p)
		}
	}
	return paths
}

func TestWorktreeTwoAgentsCommitInTheirContainers(t *testing.T) {
	e := newEnv(t)
	img := gitImage(t)
	src, _ := gitRepo(t, 0)
	head := hostGit(t, src, "rev-parse", "HEAD")
	m := e.manifest(fmt.Sprintf(`defaults: {role: image: %q, %s}
instances: {
	a: mounts: [{src: %q, dst: "/work", mode: "worktree"}]
	b: mounts: [{src: %q, dst: "/work", mode: "worktree"}]
}`, img, gitEnv, src, src))
	r := e.jackin("apply", "-f", m)
	mustCode(t, r, 0, "apply")

	for _, inst := range []string{"a", "b"} {
		e.inContainer(inst, fmt.Sprintf(`echo "work of %[1]s" > /work/%[1]s.txt && git -C /work add %[1]s.txt && git -C /work commit -q -m "commit by %[1]s"`, inst))
	}

	// The main checkout: same HEAD, same branch, no change in its files.
	if got := hostGit(t, src, "rev-parse", "HEAD"); got != head {
		t.Fatalf("main checkout HEAD moved: %s -> %s", head, got)
	}
	if got := hostGit(t, src, "symbolic-ref", "HEAD"); got != "refs/heads/main" {
		t.Fatalf("main checkout is on %s", got)
	}
	if st := hostGit(t, src, "status", "--porcelain", "--untracked-files=all"); st != "" {
		t.Fatalf("main checkout's working tree changed:\n%s", st)
	}
	// Each scratch branch holds its own commit, and only its own.
	for _, inst := range []string{"a", "b"} {
		other := map[string]string{"a": "b", "b": "a"}[inst]
		if msg := hostGit(t, src, "log", "-1", "--format=%s", e.branch(inst)); msg != "commit by "+inst {
			t.Fatalf("branch %s: last commit %q", e.branch(inst), msg)
		}
		if parent := hostGit(t, src, "rev-parse", e.branch(inst)+"^"); parent != head {
			t.Fatalf("branch %s does not start at the main HEAD", e.branch(inst))
		}
		files := hostGit(t, src, "ls-tree", "--name-only", e.branch(inst))
		if !strings.Contains(files, inst+".txt") || strings.Contains(files, other+".txt") {
			t.Fatalf("branch %s holds %q", e.branch(inst), files)
		}
	}

	// jackin work lists both, with their state and the review command.
	w := e.work()
	if len(w.Checkouts) != 2 {
		t.Fatalf("jackin work: %+v", w)
	}
	for _, c := range w.Checkouts {
		if c.Path != e.checkoutPath(c.Instance) || c.Branch != e.branch(c.Instance) || c.Base != head || c.Status != "active" ||
			c.Dirty || c.Unpushed != 1 || c.ChangedFiles != 1 || c.Review != e.review(c.Instance)+" diff "+head {
			t.Fatalf("jackin work entry: %+v", c)
		}
	}
	text := e.jackin("work", "--fleet", e.fleet, "a")
	mustCode(t, text, 0, "jackin work a")
	for _, want := range []string{e.checkoutPath("a"), e.branch("a"), "1 unpushed commit", "1 file changed since base", "review:  " + e.review("a") + " diff " + head} {
		if !strings.Contains(text.stdout, want) {
			t.Fatalf("jackin work a lacks %q:\n%s", want, text.stdout)
		}
	}
	if strings.Contains(text.stdout, e.checkoutPath("b")) {
		t.Fatalf("jackin work a lists b:\n%s", text.stdout)
	}

	// The contract names the mode, host path, scratch branch, lifecycle and
	// the git metadata written in the source repository.
	ex := e.jackin("explain", "-f", m, "a", "-o", "json")
	mustCode(t, ex, 0, "explain")
	var doc struct {
		Instances []struct {
			Filesystem struct {
				Mounts []struct {
					Source, Destination, Mode string
					Isolation                 *struct {
						Mode, HostPath, Source, ScratchBranch, Persists, RemovedWhen string
						GitMetadata                                                  []string
					}
				}
			}
			HostEffects struct {
				Effects []struct{ Kind, Name, Effect string }
			}
			ResidualRisk []struct{ ID string }
		}
	}
	if err := json.Unmarshal([]byte(ex.stdout), &doc); err != nil || len(doc.Instances) != 1 {
		t.Fatalf("explain -o json: %v\n%s", err, ex.stdout)
	}
	c := doc.Instances[0]
	var sawWorktree, sawGitDir bool
	for _, mt := range c.Filesystem.Mounts {
		switch {
		case mt.Isolation != nil:
			iso := mt.Isolation
			sawWorktree = mt.Destination == "/work" && iso.Mode == "worktree" && iso.HostPath == e.checkoutPath("a") && iso.Source == src &&
				iso.ScratchBranch == e.branch("a") && strings.Contains(iso.RemovedWhen, "preserved-dirty") && strings.Contains(iso.Persists, "survives recreates") &&
				len(iso.GitMetadata) > 0 && strings.HasPrefix(iso.GitMetadata[0], filepath.Join(src, ".git", "worktrees")+"/")
		case mt.Source == filepath.Join(src, ".git"):
			sawGitDir = mt.Destination == mt.Source && mt.Mode == "rw"
		}
	}
	if !sawWorktree || !sawGitDir {
		t.Fatalf("explain: worktree mount described %v, source git dir mounted at its own path %v:\n%s", sawWorktree, sawGitDir, ex.stdout)
	}
	var sawMeta bool
	for _, he := range c.HostEffects.Effects {
		if he.Kind == "git-metadata" && strings.Contains(he.Effect, "refs/heads/"+e.branch("a")) {
			sawMeta = true
		}
	}
	var sawRisk bool
	for _, r := range c.ResidualRisk {
		sawRisk = sawRisk || r.ID == "source-git-dir-writable"
	}
	if !sawMeta || !sawRisk {
		t.Fatalf("explain: git metadata host effect %v, git dir risk %v:\n%s", sawMeta, sawRisk, ex.stdout)
	}
	text = e.jackin("explain", "-f", m, "a")
	mustCode(t, text, 0, "explain (text)")
	for _, want := range []string{"worktree /work", "scratch branch: " + e.branch("a"), "git metadata in the source (host-side effect)"} {
		if !strings.Contains(text.stdout, want) {
			t.Fatalf("explain lacks %q:\n%s", want, text.stdout)
		}
	}
}

func TestWorktreeRecreateKeepsUncommittedWork(t *testing.T) {
	e := newEnv(t)
	img := gitImage(t)
	src, _ := gitRepo(t, 0)
	body := `defaults: {role: image: %q, %s}
instances: w: {env: MODE: %q, mounts: [{src: %q, dst: "/work", mode: "worktree"}]}`
	m := e.manifest(fmt.Sprintf(body, img, gitEnv, "one", src))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	before := docker(t, "inspect", "--format", "{{.Id}}", e.name("w"))
	e.inContainer("w", `echo "half done" > /work/wip.txt && echo changed >> /work/README`)

	m = e.manifest(fmt.Sprintf(body, img, gitEnv, "two", src))
	r := e.jackin("apply", "-f", m)
	mustCode(t, r, 0, "apply after a spec change")
	if !strings.Contains(r.stdout, "-/+ w") {
		t.Fatalf("want a recreate:\n%s", r)
	}
	if after := docker(t, "inspect", "--format", "{{.Id}}", e.name("w")); after == before {
		t.Fatal("the container was not recreated")
	}
	if got := e.inContainer("w", "cat /work/wip.txt; git -C /work status --porcelain"); !strings.Contains(got, "half done") || !strings.Contains(got, " M README") || !strings.Contains(got, "?? wip.txt") {
		t.Fatalf("uncommitted work after the recreate:\n%s", got)
	}
}

func TestWorktreeDeleteKeepsWorkUntilPushed(t *testing.T) {
	e := newEnv(t)
	img := gitImage(t)
	src, bare := gitRepo(t, 0)
	m := e.manifest(fmt.Sprintf(`defaults: {role: image: %q, %s}
instances: w: mounts: [{src: %q, dst: "/work", mode: "worktree"}]`, img, gitEnv, src))
	path := e.checkoutPath("w")
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")

	// Dirty: kept and reported, status preserved-dirty in the store.
	e.inContainer("w", `echo draft > /work/feature.txt`)
	r := e.jackin("delete", "-f", m, "w")
	mustCode(t, r, 0, "delete with dirty work")
	if !strings.Contains(r.stdout, "w: kept worktree "+path+": preserved-dirty (1 uncommitted file)") {
		t.Fatalf("delete does not report the kept worktree:\n%s", r)
	}
	if !exists(filepath.Join(path, "feature.txt")) {
		t.Fatal("the dirty worktree was removed")
	}
	if w := e.work(); len(w.Checkouts) != 1 || w.Checkouts[0].Status != "preserved-dirty" || !w.Checkouts[0].Dirty {
		t.Fatalf("jackin work after delete: %+v", w)
	}
	if len(e.containers()) != 0 {
		t.Fatalf("containers left: %v", e.containers())
	}

	// Applied again, the instance reuses its worktree; the agent commits.
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply again")
	e.inContainer("w", `git -C /work add feature.txt && git -C /work commit -q -m feature`)
	if w := e.work(); w.Checkouts[0].Status != "active" || w.Checkouts[0].Unpushed != 1 {
		t.Fatalf("jackin work after the commit: %+v", w)
	}
	r = e.jackin("delete", "-f", m, "w")
	mustCode(t, r, 0, "delete with an unpushed commit")
	if !strings.Contains(r.stdout, "preserved-unpushed (1 unpushed commit)") || !exists(path) {
		t.Fatalf("the unpushed worktree was not kept:\n%s", r)
	}

	// Pushed to the bare remote: the next delete removes it.
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply a third time")
	hostGit(t, path, "push", "-q", "origin", e.branch("w"))
	if got := hostGit(t, bare, "log", "-1", "--format=%s", e.branch("w")); got != "feature" {
		t.Fatalf("remote branch holds %q", got)
	}
	r = e.jackin("delete", "-f", m, "w")
	mustCode(t, r, 0, "delete after push")
	if !strings.Contains(r.stdout, "w: removed worktree "+path) {
		t.Fatalf("delete does not report the removal:\n%s", r)
	}
	if exists(path) {
		t.Fatal("the pushed worktree is still there")
	}
	if got := worktreeEntries(t, src); len(got) != 1 {
		t.Fatalf("worktree entries left in the source: %v", got)
	}
	if out := hostGit(t, src, "branch", "--list", e.branch("w")); out != "" {
		t.Fatalf("scratch branch left: %s", out)
	}
	if w := e.work(); len(w.Checkouts) != 0 {
		t.Fatalf("jackin work still lists: %+v", w)
	}
}

func TestEphemeralVolumeSurvivesRecreateAndGoesWithDelete(t *testing.T) {
	e := newEnv(t)
	img := gitImage(t)
	seed := filepath.Join(t.TempDir(), "seed")
	if err := os.MkdirAll(filepath.Join(seed, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(seed, "sub", "start.txt"), []byte("seeded\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	body := `instances: v: {role: image: %q, env: MODE: %q, mounts: [{src: %q, dst: "/data", mode: "ephemeral"}, {dst: "/scratch", mode: "ephemeral"}]}`
	m := e.manifest(fmt.Sprintf(body, img, "one", seed))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	vol := e.name("v") + "-data"
	if got := e.inContainer("v", "cat /data/sub/start.txt; ls -A /scratch"); got != "seeded" {
		t.Fatalf("the volume does not start as a copy of src: %q", got)
	}
	e.inContainer("v", "echo kept > /data/new.txt; rm /data/sub/start.txt; echo also > /scratch/s.txt")

	m = e.manifest(fmt.Sprintf(body, img, "two", seed))
	r := e.jackin("apply", "-f", m)
	mustCode(t, r, 0, "apply after a spec change")
	if !strings.Contains(r.stdout, "-/+ v") {
		t.Fatalf("want a recreate:\n%s", r)
	}
	// The volume is the same one: not re-seeded, the agent's changes kept.
	if got := e.inContainer("v", "cat /data/new.txt /scratch/s.txt; ls /data/sub"); got != "kept\nalso" {
		t.Fatalf("after the recreate: %q", got)
	}

	mustCode(t, e.jackin("delete", "-f", m, "v"), 0, "delete")
	if vols := dockerLines(t, "volume", "ls", "-q", "--filter", "label=dev.jackin.fleet="+e.fleet); len(vols) != 0 {
		t.Fatalf("volumes left after delete: %v (looked for %s)", vols, vol)
	}
}

// sourceDigest hashes every file under dir, .git included: names, modes,
// sizes, modification times and contents.
func sourceDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %s %d %d\n", p, info.Mode(), info.Size(), info.ModTime().UnixNano())
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestCloneLeavesTheSourceUntouched(t *testing.T) {
	e := newEnv(t)
	img := gitImage(t)
	src, bare := gitRepo(t, 20)
	before := sourceDigest(t, src)
	m := e.manifest(fmt.Sprintf(`defaults: {role: image: %q, %s}
instances: c: mounts: [{src: %q, dst: "/work", mode: "clone"}]`, img, gitEnv, src))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	path := e.checkoutPath("c")
	got := e.inContainer("c", `cd /work && echo new > agent.txt && git add agent.txt && git commit -q -m "agent commit" && git rev-parse --abbrev-ref HEAD && git remote get-url origin`)
	if got != e.branch("c")+"\n"+bare {
		t.Fatalf("in the clone: %q", got)
	}
	if after := sourceDigest(t, src); after != before {
		t.Fatal("the source repository changed (a clone must write nothing there)")
	}
	if _, err := os.Stat(filepath.Join(path, ".git")); err != nil {
		t.Fatalf("the clone has no .git dir of its own: %v", err)
	}

	// Unpushed work is kept on delete; --purge off a terminal needs --yes.
	r := e.jackin("delete", "-f", m, "c")
	mustCode(t, r, 0, "delete")
	if !strings.Contains(r.stdout, "preserved-unpushed (1 unpushed commit)") || !exists(path) {
		t.Fatalf("the clone with an unpushed commit was not kept:\n%s", r)
	}
	r = e.jackin("delete", "--fleet", e.fleet, "--purge")
	mustCode(t, r, 2, "delete --purge without --yes")
	if !strings.Contains(r.stderr, "--purge removes this work for good") || !strings.Contains(r.stderr, path+" on "+e.branch("c")+" (1 unpushed commit)") ||
		!strings.Contains(r.stderr, "pass --yes") || !exists(path) {
		t.Fatalf("delete --purge without --yes:\n%s", r)
	}
	r = e.jackin("delete", "--fleet", e.fleet, "c", "--purge", "--yes")
	mustCode(t, r, 0, "delete --purge --yes")
	if exists(path) {
		t.Fatalf("purge left the clone:\n%s", r)
	}
	if after := sourceDigest(t, src); after != before {
		t.Fatal("the source repository changed after purge")
	}
}

func TestWorktreeErrors(t *testing.T) {
	e := newEnv(t)
	img := gitImage(t)
	src, _ := gitRepo(t, 0)
	plain := t.TempDir()

	t.Run("src not a git repository", func(t *testing.T) {
		m := e.manifest(fmt.Sprintf(`instances: a: {role: image: %q, mounts: [{src: %q, dst: "/work", mode: "worktree"}]}`, img, plain))
		r := e.jackin("validate", "-f", m)
		mustCode(t, r, 2, "validate")
		if !strings.Contains(r.stderr, "fleet.cue:4:") || !strings.Contains(r.stderr, "instances.a.mounts[0].src: src "+plain+" is not a git repository") {
			t.Fatalf("want a placed not-a-repository error:\n%s", r)
		}
	})
	t.Run("unknown ref", func(t *testing.T) {
		m := e.manifest(fmt.Sprintf(`instances: a: {role: image: %q, mounts: [{src: %q, dst: "/work", mode: "clone", ref: "no-such-branch"}]}`, img, src))
		r := e.jackin("apply", "-f", m)
		mustCode(t, r, 2, "apply")
		if !strings.Contains(r.stderr, `instances.a.mounts[0].ref: ref "no-such-branch" is not a commit in `+src) {
			t.Fatalf("want an unknown-ref error:\n%s", r)
		}
	})
	t.Run("two worktrees of one repository in an instance", func(t *testing.T) {
		m := e.manifest(fmt.Sprintf(`instances: a: {role: image: %q, mounts: [{src: %q, dst: "/one", mode: "worktree"}, {src: %q, dst: "/two", mode: "worktree"}]}`, img, src, src))
		r := e.jackin("validate", "-f", m)
		mustCode(t, r, 2, "validate")
		if !strings.Contains(r.stderr, "instances.a.mounts[1].src: mounts[0] already makes a worktree of the repository") {
			t.Fatalf("want a collision error:\n%s", r)
		}
	})
	t.Run("dirty src without ref", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(src, "README"), []byte("edited, not committed\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		defer hostGit(t, src, "checkout", "--", "README")
		m := e.manifest(fmt.Sprintf(`instances: a: {role: image: %q, mounts: [{src: %q, dst: "/work", mode: "worktree"}]}`, img, src))
		r := e.jackin("apply", "-f", m)
		mustCode(t, r, 2, "apply from a dirty source")
		if !strings.Contains(r.stderr, "warning: instance a, worktree mount /work: src "+src+" has uncommitted changes (M README)") || !strings.Contains(r.stderr, "--force") {
			t.Fatalf("want a dirty-source warning and refusal:\n%s", r)
		}
		if len(e.containers()) != 0 || exists(e.checkoutPath("a")) {
			t.Fatal("a refused apply changed something")
		}
		r = e.jackin("apply", "-f", m, "--force")
		mustCode(t, r, 0, "apply --force")
		if !strings.Contains(r.stderr, "has uncommitted changes") {
			t.Fatalf("--force should still warn:\n%s", r)
		}
		// The worktree starts from HEAD: the uncommitted edit is not in it.
		if got, _ := os.ReadFile(filepath.Join(e.checkoutPath("a"), "README")); string(got) != "the main checkout\n" {
			t.Fatalf("worktree README %q", got)
		}
		mustCode(t, e.jackin("delete", "-f", m, "--purge", "--yes"), 0, "clean up")
	})
	t.Run("two instances' worktrees collide", func(t *testing.T) {
		// Instance b's scratch branch is already checked out elsewhere, as
		// when the same fleet is applied from a second state dir.
		other := filepath.Join(t.TempDir(), "other-state-dir-worktree")
		hostGit(t, src, "worktree", "add", "-q", "-b", e.branch("b"), other)
		m := e.manifest(fmt.Sprintf(`defaults: {role: image: %q}
instances: {
	a: mounts: [{src: %q, dst: "/work", mode: "worktree"}]
	b: mounts: [{src: %q, dst: "/work", mode: "worktree"}]
}`, img, src, src))
		r := e.jackin("apply", "-f", m)
		mustCode(t, r, 1, "apply with a colliding worktree")
		if !strings.Contains(r.stdout, "b: create failed") || !strings.Contains(r.stdout, "the scratch branch "+e.branch("b")+` of instance "b" is already checked out in the worktree `+other) {
			t.Fatalf("want b's collision reported:\n%s", r)
		}
		if _, ok := e.containers()[e.name("a")]; !ok || exists(e.checkoutPath("b")) {
			t.Fatalf("a should be created and b left alone: %v", e.containers())
		}
		if _, ok := e.containers()[e.name("b")]; ok {
			t.Fatal("b's container was created without its worktree")
		}
	})
}

// SIGKILL of apply while it makes worktrees (jackin and its git children,
// one process group), then apply again: no stray checkout directories and
// no dangling worktree entries in the source repository.
func TestWorktreeCrashSafety(t *testing.T) {
	e := newEnv(t)
	img := gitImage(t)
	// Enough files that checking out a worktree takes a while.
	src, _ := gitRepo(t, 6000)
	instances := []string{"c1", "c2", "c3", "c4"}
	var body strings.Builder
	fmt.Fprintf(&body, "defaults: {role: image: %q}\ninstances: {\n", img)
	for _, inst := range instances {
		fmt.Fprintf(&body, "\t%s: mounts: [{src: %q, dst: \"/work\", mode: \"worktree\"}]\n", inst, src)
	}
	body.WriteString("}")
	m := e.manifest(body.String())
	root := filepath.Join(e.stateDir, "worktrees", e.fleet)

	cmd := exec.Command(jackinBin, "--state-dir", e.stateDir, "apply", "-f", m, "--parallel", "4")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		markers, _ := filepath.Glob(filepath.Join(root, "*", "*.creating"))
		if len(markers) > 0 {
			// Let git get some way into the checkout, then kill it all.
			time.Sleep(150 * time.Millisecond)
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			killed = true
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("never saw a worktree being made:\n%s", out.String())
	}
	markers, _ := filepath.Glob(filepath.Join(root, "*", "*.creating"))
	if len(markers) == 0 {
		t.Fatalf("the kill came after every worktree was made; the test proves nothing:\n%s", out.String())
	}
	t.Logf("killed apply with %d worktree(s) half-made; worktree entries then: %v", len(markers), worktreeEntries(t, src))

	r := e.jackin("apply", "-f", m)
	mustCode(t, r, 0, "apply after the kill")

	want := map[string]bool{src: true}
	for _, inst := range instances {
		want[e.checkoutPath(inst)] = true
	}
	got := worktreeEntries(t, src)
	if len(got) != len(want) {
		t.Fatalf("worktree entries %v, want %d", got, len(want))
	}
	for _, p := range got {
		if !want[p] {
			t.Fatalf("stray worktree entry %s (all: %v)", p, got)
		}
	}
	if dangling := hostGit(t, src, "worktree", "prune", "-n", "-v"); dangling != "" {
		t.Fatalf("dangling worktree entries:\n%s", dangling)
	}
	admin, _ := os.ReadDir(filepath.Join(src, ".git", "worktrees"))
	if len(admin) != len(instances) {
		t.Fatalf("%d worktree admin dirs in the source, want %d", len(admin), len(instances))
	}
	for _, inst := range instances {
		entries, err := os.ReadDir(filepath.Join(root, inst))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, en := range entries {
			names = append(names, en.Name())
		}
		if strings.Join(names, " ") != "work work.json" {
			t.Fatalf("instance dir %s holds %v, want the worktree and its record", inst, names)
		}
		if st := hostGit(t, e.checkoutPath(inst), "status", "--porcelain"); st != "" {
			t.Fatalf("worktree of %s is not a complete checkout:\n%s", inst, st)
		}
		if b := hostGit(t, e.checkoutPath(inst), "symbolic-ref", "--short", "HEAD"); b != e.branch(inst) {
			t.Fatalf("worktree of %s is on %s", inst, b)
		}
	}
	if hostGit(t, src, "status", "--porcelain") != "" {
		t.Fatal("the main checkout changed")
	}
	mustCode(t, e.jackin("delete", "-f", m), 0, "delete")
	if got := worktreeEntries(t, src); len(got) != 1 {
		t.Fatalf("after delete, worktree entries: %v", got)
	}
}
