package workspace

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// An agent owns its checkout: every file in it, a clone's whole .git, and
// for a worktree the source's git dir except its config and hooks (mounted
// read-only). These tests arm a checkout the way such an agent could, with
// each "program" a script that records that it ran, then run every
// function of this package that runs git on a checkout or its source (and
// the review command jackin prints) and check that nothing ran.

// hostile is a checkout an agent has armed.
type hostile struct {
	t      *testing.T
	w      Want
	c      Checkout
	src    string
	marker string // written by the script when anything runs it
	script string // the program every trap names
	// private is the worktree's own git dir (<common>/worktrees/<name>),
	// or the clone's .git.
	private string
}

// evilScript writes a script that appends its name and arguments to
// marker; as a clean or smudge filter it passes its input through.
func evilScript(t *testing.T, dir, marker string) string {
	t.Helper()
	p := filepath.Join(dir, "evil.sh")
	mustWrite(t, p, "#!/bin/sh\necho \"ran: $0 $*\" >> "+marker+"\ncase \"$1\" in clean|smudge) cat ;; esac\nexit 0\n")
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func newHostile(t *testing.T, mode string) *hostile {
	t.Helper()
	src, _ := newRepo(t)
	w := want(t, src, mode)
	c, err := Prepare(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	h := &hostile{t: t, w: w, c: c, src: src, marker: filepath.Join(dir, "marker")}
	h.script = evilScript(t, dir, h.marker)
	h.private = filepath.Join(c.Path, ".git")
	if mode == ModeWorktree {
		b, err := os.ReadFile(filepath.Join(c.Path, ".git"))
		if err != nil {
			t.Fatal(err)
		}
		h.private = strings.TrimSpace(strings.TrimPrefix(string(b), "gitdir:"))
	}
	return h
}

// appendConfig adds text to a git config file (the agent edits it by hand:
// no git runs with the trap half set).
func appendConfig(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// filterConfig defines the filter driver evil, every command of it the script.
func (h *hostile) filterConfig() string {
	return "[filter \"evil\"]\n\tclean = " + h.script + " clean\n\tsmudge = " + h.script + " smudge\n\tprocess = " + h.script + " process\n\trequired = true\n"
}

// dirtyTracked changes a tracked file, keeping its size: only its content
// tells it changed, so git must hash it (through the clean filter when
// there is one).
func (h *hostile) dirtyTracked(dir string) {
	p := filepath.Join(dir, "README")
	b, err := os.ReadFile(p)
	if err != nil {
		h.t.Fatal(err)
	}
	mustWrite(h.t, p, strings.ToUpper(string(b)))
}

// nestedRepo makes a repository at <checkout>/sub with a committed file.
func (h *hostile) nestedRepo() string {
	t := h.t
	nested := filepath.Join(h.c.Path, "sub")
	run(t, "", "init", "-q", "-b", "main", nested)
	mustWrite(t, filepath.Join(nested, "README"), "nested\n")
	run(t, nested, "add", "README")
	run(t, nested, "-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "-q", "-m", "nested")
	return nested
}

// armNested sets the filter (and more) in a nested repository's own config
// and changes a file there that the filter applies to.
func (h *hostile) armNested(nested string) {
	appendConfig(h.t, filepath.Join(nested, ".git", "config"), h.filterConfig()+"[core]\n\tfsmonitor = "+h.script+"\n\thooksPath = "+filepath.Dir(h.script)+"\n[diff]\n\texternal = "+h.script+"\n")
	mustWrite(h.t, filepath.Join(nested, ".gitattributes"), "* filter=evil diff=evil\n")
	h.dirtyTracked(nested)
	h.dirtyTracked(h.c.Path)
}

// evilCommon makes, inside the checkout, a bare copy of the source
// repository whose config names the script: a git dir an agent can point
// the worktree's metadata at.
func (h *hostile) evilCommon() string {
	t := h.t
	p := filepath.Join(h.c.Path, ".evil-common")
	run(t, "", "clone", "-q", "--bare", "--no-hardlinks", h.src, p)
	appendConfig(t, filepath.Join(p, "config"), h.filterConfig()+"[core]\n\tfsmonitor = "+h.script+"\n\thooksPath = "+filepath.Dir(h.script)+"\n[diff]\n\texternal = "+h.script+"\n")
	if err := os.MkdirAll(filepath.Join(p, "info"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(p, "info", "attributes"), "* filter=evil diff=evil\n")
	return p
}

// hooks writes every hook git knows as the script, in dir.
func (h *hostile) hooks(dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	for _, name := range []string{"post-checkout", "reference-transaction", "pre-auto-gc", "post-index-change", "fsmonitor-watchman",
		"pre-commit", "post-commit", "post-rewrite", "pre-push", "push-to-checkout", "post-merge", "pre-rebase", "sendemail-validate"} {
		p := filepath.Join(dir, name)
		mustWrite(h.t, p, "#!/bin/sh\n"+h.script+" hook-"+name+"\n")
		if err := os.Chmod(p, 0o755); err != nil {
			h.t.Fatal(err)
		}
	}
}

// ran reports what the script recorded, "" when it never ran.
func (h *hostile) ran() string {
	b, err := os.ReadFile(h.marker)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}

// trap is one way an agent can arm its checkout.
type trap struct {
	name  string
	modes []string
	arm   func(h *hostile)
	// brokenState: the trap leaves a checkout jackin cannot read (it must
	// say so, not guess); else the state must show the agent's change.
	brokenState bool
}

var both = []string{ModeClone, ModeWorktree}

var traps = []trap{
	{name: "filter driver in .git/config", modes: []string{ModeClone}, arm: func(h *hostile) {
		appendConfig(h.t, filepath.Join(h.private, "config"), h.filterConfig())
		mustWrite(h.t, filepath.Join(h.c.Path, ".gitattributes"), "* filter=evil\n")
		h.dirtyTracked(h.c.Path)
	}},
	{name: "filter drivers named with a space or a dot", modes: []string{ModeClone}, arm: func(h *hostile) {
		appendConfig(h.t, filepath.Join(h.private, "config"), "[filter \"a b\"]\n\tclean = "+h.script+"\n[filter \"x.y\"]\n\tclean = "+h.script+"\n")
		mustWrite(h.t, filepath.Join(h.c.Path, ".gitattributes"), "* filter=x.y\n")
		h.dirtyTracked(h.c.Path)
	}},
	{name: "registered submodule with its own filter", modes: both, arm: func(h *hostile) {
		nested := h.nestedRepo()
		run(h.t, h.c.Path, "add", "sub")
		mustWrite(h.t, filepath.Join(h.c.Path, ".gitmodules"), "[submodule \"sub\"]\n\tpath = sub\n\turl = ./sub\n")
		h.armNested(nested)
	}},
	{name: "committed submodule with its own filter", modes: both, arm: func(h *hostile) {
		nested := h.nestedRepo()
		run(h.t, h.c.Path, "add", "sub")
		mustWrite(h.t, filepath.Join(h.c.Path, ".gitmodules"), "[submodule \"sub\"]\n\tpath = sub\n\turl = ./sub\n")
		run(h.t, h.c.Path, "add", ".gitmodules")
		run(h.t, h.c.Path, "-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "-q", "-m", "add a submodule")
		h.armNested(nested)
	}},
	{name: "nested repository with its own filter", modes: both, arm: func(h *hostile) {
		h.armNested(h.nestedRepo())
	}},
	{name: "fsmonitor", modes: []string{ModeClone}, arm: func(h *hostile) {
		appendConfig(h.t, filepath.Join(h.private, "config"), "[core]\n\tfsmonitor = "+h.script+"\n")
		h.dirtyTracked(h.c.Path)
	}},
	{name: "hooks in .git/hooks and core.hooksPath", modes: []string{ModeClone}, arm: func(h *hostile) {
		h.hooks(filepath.Join(h.private, "hooks"))
		h.hooks(filepath.Join(h.c.Path, "myhooks"))
		appendConfig(h.t, filepath.Join(h.private, "config"), "[core]\n\thooksPath = "+filepath.Join(h.c.Path, "myhooks")+"\n")
		h.dirtyTracked(h.c.Path)
	}},
	{name: "diff drivers: textconv, command, external", modes: []string{ModeClone}, arm: func(h *hostile) {
		appendConfig(h.t, filepath.Join(h.private, "config"), "[diff]\n\texternal = "+h.script+"\n[diff \"evil\"]\n\ttextconv = "+h.script+"\n\tcommand = "+h.script+"\n")
		mustWrite(h.t, filepath.Join(h.c.Path, ".gitattributes"), "* diff=evil\n")
		h.dirtyTracked(h.c.Path)
	}},
	{name: "include and includeIf of a file defining a filter", modes: []string{ModeClone}, arm: func(h *hostile) {
		mustWrite(h.t, filepath.Join(h.private, "evil.inc"), h.filterConfig())
		appendConfig(h.t, filepath.Join(h.private, "config"), "[include]\n\tpath = evil.inc\n[includeIf \"gitdir:/\"]\n\tpath = evil.inc\n[includeIf \"onbranch:**\"]\n\tpath = evil.inc\n")
		mustWrite(h.t, filepath.Join(h.c.Path, ".gitattributes"), "* filter=evil\n")
		h.dirtyTracked(h.c.Path)
	}},
	{name: "aliases and core programs", modes: []string{ModeClone}, arm: func(h *hostile) {
		s := h.script
		appendConfig(h.t, filepath.Join(h.private, "config"), "[alias]\n\tstatus = !"+s+"\n\tdiff = !"+s+"\n\trev-list = !"+s+"\n\trev-parse = !"+s+
			"\n[core]\n\tpager = "+s+"\n\teditor = "+s+"\n\tsshCommand = "+s+"\n\taskPass = "+s+"\n\tgitProxy = "+s+
			"\n[credential]\n\thelper = !"+s+"\n[sequence]\n\teditor = "+s+"\n[gpg]\n\tprogram = "+s+"\n[status]\n\tsubmoduleSummary = true\n[pager]\n\tdiff = "+s+"\n\tstatus = "+s+"\n")
		h.dirtyTracked(h.c.Path)
	}},
	{name: "partial clone: a missing object fetched through the agent's upload-pack", modes: []string{ModeClone}, brokenState: true, arm: func(h *hostile) {
		t := h.t
		mustWrite(t, filepath.Join(h.c.Path, "new.txt"), "agent\n")
		run(t, h.c.Path, "add", "new.txt")
		run(t, h.c.Path, "-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "-q", "-m", "agent work")
		head := run(t, h.c.Path, "rev-parse", "HEAD")
		if err := os.Remove(filepath.Join(h.private, "objects", head[:2], head[2:])); err != nil {
			t.Fatal(err)
		}
		appendConfig(t, filepath.Join(h.private, "config"), "[core]\n\trepositoryformatversion = 1\n[extensions]\n\tpartialClone = evil\n[remote \"evil\"]\n\turl = "+h.src+
			"\n\tpromisor = true\n\tuploadpack = "+h.script+"\n\treceivepack = "+h.script+"\n")
	}},
	{name: "worktree metadata's commondir pointed at the agent's git dir", modes: []string{ModeWorktree}, arm: func(h *hostile) {
		mustWrite(h.t, filepath.Join(h.private, "commondir"), h.evilCommon()+"\n")
		h.dirtyTracked(h.c.Path)
	}},
	{name: "worktree's .git file pointed at the agent's git dir", modes: []string{ModeWorktree}, arm: func(h *hostile) {
		t := h.t
		common := h.evilCommon()
		gd := filepath.Join(h.c.Path, ".evil-gitdir")
		if err := os.MkdirAll(gd, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"HEAD", "index"} {
			b, err := os.ReadFile(filepath.Join(h.private, f))
			if err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(gd, f), string(b))
		}
		mustWrite(t, filepath.Join(gd, "commondir"), common+"\n")
		mustWrite(t, filepath.Join(gd, "gitdir"), filepath.Join(h.c.Path, ".git")+"\n")
		mustWrite(t, filepath.Join(h.c.Path, ".git"), "gitdir: "+gd+"\n")
		h.dirtyTracked(h.c.Path)
	}},
	{name: "per-worktree config.worktree (the source has extensions.worktreeConfig)", modes: []string{ModeWorktree}, arm: func(h *hostile) {
		// The operator's choice, in the source's (read-only) config.
		run(h.t, h.src, "config", "core.repositoryformatversion", "1")
		run(h.t, h.src, "config", "extensions.worktreeConfig", "true")
		appendConfig(h.t, filepath.Join(h.private, "config.worktree"), h.filterConfig()+"[core]\n\tfsmonitor = "+h.script+"\n\thooksPath = "+filepath.Dir(h.script)+"\n[diff]\n\texternal = "+h.script+"\n")
		mustWrite(h.t, filepath.Join(h.c.Path, ".gitattributes"), "* filter=evil diff=evil\n")
		h.dirtyTracked(h.c.Path)
	}},
}

// TestHostileCheckoutRunsNothing runs, against a checkout armed by each
// trap, every git-running function jackin has on checkouts, in the order
// jackin work and jackin delete do, and the review command it prints.
func TestHostileCheckoutRunsNothing(t *testing.T) {
	for _, tr := range traps {
		for _, mode := range tr.modes {
			t.Run(mode+"/"+tr.name, func(t *testing.T) {
				h := newHostile(t, mode)
				tr.arm(h)
				if got := h.ran(); got != "" {
					t.Fatalf("arming the trap ran the script (the test is wrong): %s", got)
				}
				h.runEverything(tr.brokenState)
			})
		}
	}
}

// runEverything runs each git-running entry point and fails at the first
// after which the script has run.
func (h *hostile) runEverything(brokenState bool) {
	t := h.t
	ctx := context.Background()
	check := func(step string) {
		t.Helper()
		if got := h.ran(); got != "" {
			t.Fatalf("%s ran the agent's program:\n%s", step, got)
		}
	}
	st := Inspect(ctx, h.c)
	check("Inspect (jackin work, delete)")
	switch {
	case brokenState && st.Error == "":
		t.Errorf("Inspect of a checkout it cannot read: %+v, want an error", st)
	case !brokenState && (st.Error != "" || !st.Dirty):
		t.Errorf("Inspect: %+v, want a dirty checkout and no error", st)
	}
	if st.Safe() {
		t.Errorf("Inspect: %+v counts as safe to remove", st)
	}
	_, _ = InspectSource(ctx, h.src, "")
	check("InspectSource (apply, watch)")
	if _, err := Prepare(ctx, h.w); err != nil {
		t.Logf("Prepare again: %v", err)
	}
	check("Prepare of the existing checkout (apply)")
	if _, err := List(h.w.StateDir, "", ""); err != nil {
		t.Error(err)
	}
	check("List")
	review := exec.Command("sh", "-c", h.c.ReviewCommand())
	review.Dir = t.TempDir()
	out, err := review.CombinedOutput()
	check("the review command " + h.c.ReviewCommand())
	if !brokenState && (err != nil || !strings.Contains(string(out), "+HELLO")) {
		t.Errorf("the review command %s: %v\n%s", h.c.ReviewCommand(), err, out)
	}
	untracked := exec.Command("sh", "-c", h.c.UntrackedCommand())
	untracked.Dir = t.TempDir()
	out, err = untracked.CombinedOutput()
	check("the untracked files command " + h.c.UntrackedCommand())
	if !brokenState && err != nil {
		t.Errorf("the untracked files command %s: %v\n%s", h.c.UntrackedCommand(), err, out)
	}
	if h.c.Mode == ModeWorktree {
		if err := Remove(ctx, h.c, false); err == nil {
			t.Error("Remove without force removed a dirty worktree")
		}
		check("Remove without force (jackin delete)")
	}
	if err := Remove(ctx, h.c, true); err != nil {
		t.Errorf("Remove with force: %v", err)
	}
	check("Remove with force (jackin delete --purge)")
	if _, err := os.Stat(h.c.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the checkout is still there after a forced Remove: %v", err)
	}
}

// An agent rewrites its .git/config all the time: a check of the config
// followed by a git call that reads it again loses the race sooner or
// later. jackin must not read it at all.
func TestRacingConfigRunsNothing(t *testing.T) {
	ctx := context.Background()
	h := newHostile(t, ModeClone)
	cfg := filepath.Join(h.private, "config")
	benignB, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	benign, evil := string(benignB), string(benignB)+h.filterConfig()
	mustWrite(t, filepath.Join(h.c.Path, ".gitattributes"), "* filter=evil\n")
	h.dirtyTracked(h.c.Path)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tmp := cfg + ".agent"
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			body := benign
			if i%2 == 1 {
				body = evil
			}
			if os.WriteFile(tmp, []byte(body), 0o644) == nil {
				_ = os.Rename(tmp, cfg)
			}
			time.Sleep(time.Duration(i%3) * time.Millisecond)
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 150 && time.Now().Before(deadline); i++ {
		st := Inspect(ctx, h.c)
		if got := h.ran(); got != "" {
			t.Fatalf("Inspect %d ran the agent's filter while it rewrote its config:\n%s", i+1, got)
		}
		if st.Error != "" || !st.Dirty {
			t.Fatalf("Inspect %d: %+v", i+1, st)
		}
	}
}
