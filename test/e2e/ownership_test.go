package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFleetNameOwnership: a fleet name belongs to the manifest it was first
// applied from. A second manifest elsewhere on disk with the same name is
// refused (naming both) by apply, watch and delete, instead of taking the
// fleet over and garbage-collecting its instances; --adopt moves it.
func TestFleetNameOwnership(t *testing.T) {
	e := newEnv(t)
	write := func(dir, instance string) string {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "fleet.cue")
		body := fmt.Sprintf("apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: %q\ninstances: %s: {role: image: %q, agent: \"shell\"}\n", e.fleet, instance, agentImage)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := write(filepath.Join(e.dir, "team-a"), "alpha")
	second := write(filepath.Join(e.dir, "team-b"), "beta")
	// A manifest is where it lives: its directory ("-f ." and "-f
	// fleet.cue" are the same manifest).
	firstDir, secondDir := filepath.Dir(first), filepath.Dir(second)

	mustCode(t, e.jackin("apply", "-f", first), 0, "apply of the first manifest")
	for _, verb := range [][]string{{"apply", "-f", second}, {"delete", "-f", second}} {
		r := e.jackin(verb...)
		mustCode(t, r, 2, strings.Join(verb[:1], " ")+" from a second manifest with the same fleet name")
		for _, want := range []string{firstDir, secondDir, "--adopt"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%s does not name %q:\n%s", verb[0], want, r)
			}
		}
	}
	w := e.startWatch(nil, "-f", second)
	select {
	case <-w.done: // refused at start, before it watches anything
	case <-time.After(30 * time.Second):
		w.stop()
		t.Fatalf("watch from the second manifest kept running:\n%s", w.dump())
	}
	if w.code != 2 || !strings.Contains(w.stderr.String(), firstDir) {
		t.Errorf("watch from the second manifest: exit %d, want 2 naming %s\n%s", w.code, firstDir, w.dump())
	}
	if got := e.containers(); got[e.name("alpha")] != "running" || got[e.name("beta")] != "" {
		t.Fatalf("the refused manifests changed the fleet: %v", got)
	}

	// Adopting moves the name: the second manifest now owns the fleet.
	mustCode(t, e.jackin("apply", "-f", second, "--adopt"), 0, "apply --adopt")
	if got := e.containers(); got[e.name("beta")] != "running" || got[e.name("alpha")] != "" {
		t.Fatalf("after the adoption: %v", got)
	}
	r := e.jackin("apply", "-f", first)
	mustCode(t, r, 2, "apply of the first manifest after the adoption")
	if !strings.Contains(r.stderr, "belongs to the manifest "+secondDir) {
		t.Errorf("the refusal does not name the new owner:\n%s", r)
	}
	// The same manifest, named by its directory, is the owner too.
	mustCode(t, e.jackin("diff", "-f", secondDir), 0, "diff by directory")
	mustCode(t, e.jackin("apply", "-f", secondDir), 0, "apply by directory")
	mustCode(t, e.jackin("delete", "-f", second), 0, "delete by the owner")
}

// TestDeleteOfAnUnknownFleetIsAnError: --fleet of a name nothing knows is
// exit 2, not "nothing to delete".
func TestDeleteOfAnUnknownFleetIsAnError(t *testing.T) {
	e := newEnv(t)
	r := e.jackin("delete", "--fleet", e.fleet)
	mustCode(t, r, 2, "delete of an unknown fleet")
	if !strings.Contains(r.stderr, "no fleet named") {
		t.Fatalf("the error does not say the fleet is unknown:\n%s", r)
	}
}

// TestApplyReportsAnAgentThatExitsAtOnce: an agent whose command fails at
// once is a failed action (exit 1) naming its exit status and its last log
// line, not a success; the other instance proceeds.
func TestApplyReportsAnAgentThatExitsAtOnce(t *testing.T) {
	e := newEnv(t)
	m := e.manifest(fmt.Sprintf(`instances: {
	broken: {role: image: %[1]q, agent: "shell", command: ["/agent", "exit", "3"]}
	fine: {role: image: %[1]q, agent: "shell"}
}`, agentImage))
	r := e.jackin("apply", "-f", m, "--start-check", "-1s")
	mustCode(t, r, 2, "apply with a negative --start-check")
	if !strings.Contains(r.stderr, "--start-check must be 0 (no check) or more") {
		t.Errorf("the refusal does not name the flag:\n%s", r)
	}
	// The window is wall-clock: a loaded CI machine can take longer than the
	// default 300ms to start the supervisor and the agent that fails.
	r = e.jackin("apply", "-f", m, "--start-check", "5s")
	mustCode(t, r, 1, "apply of an agent that exits at once")
	for _, want := range []string{"the agent container " + e.name("broken") + " exited with status 3 right after it started", `its last log line: "jackin demo agent broken exiting with 3"`} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("apply does not say %q:\n%s", want, r)
		}
	}
	if got := e.containers(); got[e.name("fine")] != "running" {
		t.Errorf("the other instance did not proceed: %v", got)
	}
}
