package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// End-to-end tests of issue 22's containment holes in mounts (items 1, 3
// and 7), as the attacks: the manifests and moves that broke the promises.

// TestSwappedBindSourceUnderWatchIsNeverStarted: an instance mounts a host
// directory; while watch keeps it running the directory is replaced by a
// symlink to /run (where the Docker socket lives) and the agent exits.
// Watch's restart from its cached desired state must fail closed, name the
// mount, and leave the container stopped; the other instance keeps running.
func TestSwappedBindSourceUnderWatchIsNeverStarted(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "cache")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	path := e.manifest(fmt.Sprintf(`instances: {
  a: {role: image: %q, agent: "shell", mounts: [{src: %q, dst: "/cache", mode: "rw"}]}
  b: {role: image: %q, agent: "shell"}
}`, agentImage, src, agentImage))
	w := e.startWatch(nil, "-f", path, "--resync", "1h")
	w.waitFor("a and b created", time.Minute, 2, func(l watchLine) bool { return l.Type == "action" && l.Action == "create" && l.Outcome == "succeeded" })
	e.waitState("a", "running", 10*time.Second)

	// The swap: the validated directory moves away, a symlink takes its name.
	if err := os.Rename(src, src+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/run", src); err != nil {
		t.Fatal(err)
	}
	docker(t, "kill", e.name("a"))
	failed := w.waitFor("a's restart refused", 30*time.Second, 1, func(l watchLine) bool {
		return l.Type == "action" && l.Instance == "a" && l.Outcome == "failed"
	})
	for _, want := range []string{"refused: mount /cache", src + " is now a symbolic link"} {
		if !strings.Contains(failed[0].Message, want) {
			t.Errorf("the failure %q does not say %q", failed[0].Message, want)
		}
	}
	if st := e.containers()[e.name("a")]; st == "running" {
		t.Fatalf("a is running over the swapped source:\n%s", w.dump())
	}
	for _, l := range w.find(func(l watchLine) bool {
		return l.Type == "action" && l.Instance == "a" && l.Outcome == "succeeded" && l.Action != "create"
	}) {
		t.Fatalf("a was started after the swap: %+v\n%s", l, w.dump())
	}
	if st := e.containers()[e.name("b")]; st != "running" {
		t.Fatalf("b is %q, want it untouched and running", st)
	}
	w.stop()

	// A fresh apply validates again and refuses the path: it now leads to
	// the Docker socket.
	r := e.jackin("apply", "-f", path)
	mustCode(t, r, 2, "apply over the swapped source")
	if !strings.Contains(r.stderr, "would expose the host Docker socket") {
		t.Fatalf("apply does not name the socket:\n%s", r)
	}
}

// TestNestedWritableLayoutsAreRefusedByApply is the manifest: ./work
// read-write and ./work/cache as a second mount, in one instance and across
// two. Apply refuses it (exit 2) before creating anything.
func TestNestedWritableLayoutsAreRefusedByApply(t *testing.T) {
	for name, instances := range map[string]string{
		"same instance": `instances: a: {role: image: %[1]q, agent: "shell", mounts: [{src: "./work", dst: "/work", mode: "rw"}, {src: "./work/cache", dst: "/cache", mode: "rw"}]}`,
		"cross instance": `instances: {
  a: {role: image: %[1]q, agent: "shell", mounts: [{src: "./work", dst: "/work", mode: "rw"}]}
  b: {role: image: %[1]q, agent: "shell", mounts: [{src: "./work/cache", dst: "/cache", mode: "ro"}]}
}`,
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			if err := os.MkdirAll(filepath.Join(e.dir, "work", "cache"), 0o755); err != nil {
				t.Fatal(err)
			}
			path := e.manifest(fmt.Sprintf(instances, agentImage))
			r := e.jackin("apply", "-f", path)
			mustCode(t, r, 2, "apply of the nested layout")
			if !strings.Contains(r.stderr, "work/cache lies inside") || !strings.Contains(r.stderr, `which instance "a" can write`) {
				t.Fatalf("apply does not explain the refusal:\n%s", r)
			}
			if len(e.containers()) != 0 || len(e.networks()) != 0 {
				t.Fatalf("objects were created: %v %v", e.containers(), e.networks())
			}
		})
	}
}

// TestHardLinkedDockerSocketIsRefused: `ln /var/run/docker.sock ./hs` and a
// mount of ./hs (or of the directory holding it), with allowSensitive even:
// refused by identity, whatever the name.
func TestHardLinkedDockerSocketIsRefused(t *testing.T) {
	e := newEnv(t)
	sock, err := filepath.EvalSymlinks("/var/run/docker.sock")
	if err != nil {
		t.Skipf("no engine socket at /var/run/docker.sock (the engine is reached otherwise): %v", err)
	}
	// A hard link must be on the socket's own filesystem: next to it.
	dir, err := os.MkdirTemp(filepath.Dir(sock), "jackin-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Link(sock, filepath.Join(dir, "hs")); err != nil {
		t.Fatalf("hard-link the engine socket: %v", err)
	}
	for _, src := range []string{filepath.Join(dir, "hs"), dir} {
		path := e.manifest(fmt.Sprintf(`instances: a: {role: image: %q, agent: "shell", mounts: [{src: %q, dst: "/x", mode: "rw", allowSensitive: true}]}`, agentImage, src))
		r := e.jackin("validate", "-f", path)
		mustCode(t, r, 2, "validate of a hard link to the socket")
		if !strings.Contains(r.stderr, "the Docker socket") || !strings.Contains(r.stderr, "hard link") {
			t.Fatalf("validate of %s does not name the socket and the link:\n%s", src, r)
		}
	}
}

// TestJackinStateDirIsNeverMounted: the state dir (keys, egress policies)
// mounted read-write let an agent rewrite its own policy. It is refused,
// with allowSensitive too, and so is a parent of it.
func TestJackinStateDirIsNeverMounted(t *testing.T) {
	e := newEnv(t)
	for _, src := range []string{e.stateDir, filepath.Dir(e.stateDir)} {
		path := e.manifest(fmt.Sprintf(`instances: a: {role: image: %q, agent: "shell", mounts: [{src: %q, dst: "/s", mode: "rw", allowSensitive: true}]}`, agentImage, src))
		r := e.jackin("apply", "-f", path)
		mustCode(t, r, 2, "apply mounting the state dir")
		if !strings.Contains(r.stderr, "jackin's state") || !strings.Contains(r.stderr, "allowSensitive does not change that") {
			t.Fatalf("apply of %s does not refuse the state dir:\n%s", src, r)
		}
	}
	if len(e.containers()) != 0 {
		t.Fatalf("objects were created: %v", e.containers())
	}
}
