// Package e2e drives the real jackin binary against a real Docker engine.
// Each test uses its own fleet name and state dir and removes every object
// labelled for its fleet when it ends, pass or fail. Without an engine the
// tests skip loudly, except under CI=true, where they fail.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/test/harness"
)

var (
	jackinBin   string // built once in TestMain
	engineError error  // non-nil when no engine answers
)

const (
	agentImage   = harness.AgentImage
	agentImageV2 = harness.AgentImageV2
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		engineError = fmt.Errorf("-short given")
		return m.Run()
	}
	if engineError = harness.EngineError(); engineError != nil {
		return m.Run()
	}
	tmp, err := os.MkdirTemp("", "jackin-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if jackinBin, err = harness.BuildJackin(tmp); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build jackin:", err)
		return 1
	}
	if err := harness.BuildAgentImages(tmp); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build test images:", err)
		return 1
	}
	return m.Run()
}

// requireEngine skips (or fails under CI=true) when no engine answers.
func requireEngine(t *testing.T) {
	t.Helper()
	if engineError == nil {
		return
	}
	if os.Getenv("CI") == "true" && !testing.Short() {
		t.Fatalf("CI=true requires a Docker engine, but none answers: %v", engineError)
	}
	t.Skipf("\n\n*** SKIPPING END-TO-END TEST: no Docker engine (%v). Start one (see README) or set CI=true to make this a failure. ***\n", engineError)
}

// env is one test's fleet: its name, state dir, manifest dir.
type env struct {
	t        *testing.T
	fleet    string
	stateDir string
	dir      string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	requireEngine(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	e := &env{t: t, fleet: "e2e-" + hex.EncodeToString(b), stateDir: t.TempDir(), dir: t.TempDir()}
	t.Cleanup(func() { harness.RemoveFleetObjects(e.fleet) })
	return e
}

// manifest writes fleet.cue with the given instances body and returns its path.
func (e *env) manifest(instances string) string {
	e.t.Helper()
	return e.writeFile("fleet.cue", fmt.Sprintf("apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: %q\n%s\n", e.fleet, instances))
}

func (e *env) writeFile(name, content string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// result is one jackin invocation.
type result struct {
	code   int
	stdout string
	stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// jackin runs the binary with this env's state dir.
func (e *env) jackin(args ...string) result {
	e.t.Helper()
	return e.jackinEnv(nil, args...)
}

func (e *env) jackinEnv(extraEnv []string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, jackinBin, append([]string{"--state-dir", e.stateDir}, args...)...)
	cmd.Env = append(os.Environ(), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			e.t.Fatalf("run jackin %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// mustCode fails unless r exited with code.
func mustCode(t *testing.T, r result, code int, what string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: want exit %d, got:\n%s", what, code, r)
	}
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func dockerLines(_ *testing.T, args ...string) []string { return harness.DockerLines(args...) }

// fleetContainers lists "name state" for the fleet's containers, sorted by docker.
func (e *env) containers() map[string]string {
	out := map[string]string{}
	for _, l := range dockerLines(e.t, "ps", "-a", "--filter", "label=dev.jackin.fleet="+e.fleet, "--format", "{{.Names}} {{.State}}") {
		f := strings.Fields(l)
		if len(f) == 2 {
			out[f[0]] = f[1]
		}
	}
	return out
}

func (e *env) networks() []string {
	return dockerLines(e.t, "network", "ls", "--filter", "label=dev.jackin.fleet="+e.fleet, "--format", "{{.Name}}")
}

func (e *env) name(instance string) string { return "jk-" + e.fleet + "-" + instance }
