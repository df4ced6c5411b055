// Package harness builds what end-to-end tests and benchmarks run against a
// real engine: the jackin binary and the locally built agent images (there is
// no registry), and removes a fleet's objects afterwards.
package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Test images, built locally. They differ only in a label, so a test can
// change an instance's image.
const (
	AgentImage   = "jackin-e2e-agent:v1"
	AgentImageV2 = "jackin-e2e-agent:v2"
)

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// EngineError is nil when a Docker engine answers.
func EngineError() error {
	out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker info: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// GoBuild builds a static binary of pkg (relative to the repo root) at out.
func GoBuild(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// BuildJackin builds the jackin binary into dir and returns its path.
func BuildJackin(dir string) (string, error) {
	bin := filepath.Join(dir, "jackin")
	return bin, GoBuild(bin, "./cmd/jackin")
}

// BuildAgentImages builds the demo agent into AgentImage and AgentImageV2,
// using dir as scratch space.
func BuildAgentImages(dir string) error {
	ctxDir := filepath.Join(dir, "agent-image")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		return err
	}
	if err := GoBuild(filepath.Join(ctxDir, "agent"), "./examples/offline/role/agent"); err != nil {
		return err
	}
	for i, tag := range []string{AgentImage, AgentImageV2} {
		df := fmt.Sprintf("FROM scratch\nCOPY agent /agent\nLABEL jackin.e2e.variant=%d\nENTRYPOINT [\"/agent\"]\nCMD [\"idle\"]\n", i+1)
		if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
			return err
		}
		cmd := exec.Command("docker", "build", "-q", "-t", tag, ctxDir)
		cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("docker build %s: %v\n%s", tag, err, b)
		}
	}
	return nil
}

// DockerLines runs the docker CLI and returns its non-empty output lines
// (nil on error).
func DockerLines(args ...string) []string {
	out, err := exec.Command("docker", args...).Output()
	if err != nil {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// RemoveFleetObjects removes every container, network and volume labelled
// for fleet, through the docker CLI, so cleanup works even when jackin is broken.
func RemoveFleetObjects(fleet string) {
	RemoveLabelled("dev.jackin.fleet=" + fleet)
}

// RemoveLabelled removes containers, networks and volumes carrying label.
func RemoveLabelled(label string) {
	filter := "label=" + label
	if ids := DockerLines("ps", "-aq", "--filter", filter); len(ids) > 0 {
		_, _ = exec.Command("docker", append([]string{"rm", "-f", "-v"}, ids...)...).CombinedOutput()
	}
	if ids := DockerLines("network", "ls", "-q", "--filter", filter); len(ids) > 0 {
		_, _ = exec.Command("docker", append([]string{"network", "rm"}, ids...)...).CombinedOutput()
	}
	if ids := DockerLines("volume", "ls", "-q", "--filter", filter); len(ids) > 0 {
		_, _ = exec.Command("docker", append([]string{"volume", "rm", "-f"}, ids...)...).CombinedOutput()
	}
}
