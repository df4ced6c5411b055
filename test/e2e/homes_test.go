package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/test/harness"
)

// TestRootAgentHomeStore: an agent that runs as root gets no upload into
// its runtime-home volume when its container is made; its supervisor
// makes the store there itself, writable by every user (sticky, as the
// upload made it), and the runtime's homes are kept across a recreate as
// for an agent of any other user (TestAgentRuntimes covers those).
func TestRootAgentHomeStore(t *testing.T) {
	if err := harness.BuildDindImage(); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	fleet := func(mark string) string {
		return fmt.Sprintf(`runtimes: keeper: {command: ["sh", "-c", "trap exit TERM; sleep infinity & wait"], homes: [".keeper"]}
instances: r: {role: image: %q, agent: "keeper", env: {MARK: %q}}`, harness.DindImage, mark)
	}
	m := e.manifest(fleet("1"))
	r := e.jackin("-v", "6", "apply", "-f", m)
	mustCode(t, r, 0, "apply")
	if strings.Contains(r.stderr, "/archive") {
		t.Errorf("the container of a root agent was made with an archive upload:\n%s", r.stderr)
	}
	ctr := e.name("r")
	var mode string
	if !agtUntil(15*time.Second, func() bool {
		mode = inCtr(ctr, "stat", "-c", "%a %u", "/run/jackin/home/kept")
		return mode == "1777 0"
	}) {
		t.Fatalf("runtime-home store of a root agent: %q, want 1777 owned by root (made by its supervisor)", mode)
	}
	docker(t, "exec", ctr, "sh", "-c", `echo kept > "$HOME/.keeper/x"`)
	if out := docker(t, "exec", ctr, "sh", "-c", `readlink "$HOME/.keeper"`); out != "/run/jackin/home/kept/.keeper" {
		t.Errorf("~/.keeper links to %q, want the runtime-home volume", out)
	}

	before := docker(t, "inspect", "--format", "{{.Id}}", ctr)
	mustCode(t, e.jackin("apply", "-f", e.manifest(fleet("2"))), 0, "apply (recreate)")
	if after := docker(t, "inspect", "--format", "{{.Id}}", ctr); after == before {
		t.Fatal("the env change did not recreate the agent")
	}
	var got string
	if !agtUntil(15*time.Second, func() bool {
		got = inCtr(ctr, "sh", "-c", `cat "$HOME/.keeper/x"`)
		return got == "kept"
	}) {
		t.Errorf("~/.keeper/x after the recreate: %q, want kept", got)
	}
}

// inCtr is what a command in a container printed, or what docker said.
func inCtr(ctr string, argv ...string) string {
	out, _ := exec.Command("docker", append([]string{"exec", ctr}, argv...)...).CombinedOutput()
	return strings.TrimSpace(string(out))
}
