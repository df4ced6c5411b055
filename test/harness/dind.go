package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// DindImage has dockerd, containerd, runc and the docker CLI (Debian
// bookworm's docker.io), built without a registry by dind/build.sh. The
// private-daemon tests run it both as the daemon sidecar and as the agent
// (for its docker CLI).
const DindImage = "jackin-e2e-dind:bookworm"

// BuildDindImage builds DindImage unless the engine has it (a few minutes
// the first time on a machine: debootstrap fetches Debian's packages).
func BuildDindImage() error {
	cmd := exec.Command("bash", filepath.Join(RepoRoot(), "test", "harness", "dind", "build.sh"), DindImage)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s (test/harness/dind/build.sh): %w", DindImage, err)
	}
	return nil
}

// BrokenDindImage is DindImage with a dockerd that fails at once, for the
// readiness tests.
const BrokenDindImage = "jackin-e2e-dind-broken:v1"

// BuildBrokenDindImage builds BrokenDindImage on top of DindImage.
func BuildBrokenDindImage(dir string) error {
	ctxDir := filepath.Join(dir, "broken-dind")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		return err
	}
	script := "#!/bin/sh\necho 'dockerd stub: refusing to start' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "dockerd"), []byte(script), 0o755); err != nil {
		return err
	}
	df := "FROM " + DindImage + "\nCOPY dockerd /usr/local/bin/dockerd\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("docker", "build", "-q", "-t", BrokenDindImage, ctxDir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker build %s: %v\n%s", BrokenDindImage, err, b)
	}
	return nil
}
