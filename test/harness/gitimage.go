package harness

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// GitImage is an agent image with git and a shell, for tests where agents
// commit inside their containers (or clone over http, in a Kubernetes
// Pod). It is built from the host's own git, its http remote helper and
// their shared libraries (there is no registry), plus the demo agent as
// the entrypoint and busybox (from Debian's busybox-static) as /bin/sh.
const GitImage = "jackin-e2e-git:v2"

// BuildGitImage builds GitImage unless the engine already has it, using dir
// as scratch space.
func BuildGitImage(dir string) error {
	if out, err := exec.Command("docker", "image", "inspect", "--format", "{{.Id}}", GitImage).Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		return nil
	}
	gitBin, err := exec.LookPath("git")
	if err != nil {
		return fmt.Errorf("git image: no git on the host: %w", err)
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("git image: no busybox on the host (apt-get install -y busybox-static): %w", err)
	}
	ctxDir := filepath.Join(dir, "git-image")
	root := filepath.Join(ctxDir, "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	if err := GoBuild(filepath.Join(root, "agent"), "./examples/offline/role/agent"); err != nil {
		return err
	}
	files := map[string]string{gitBin: "/usr/bin/git", busybox: "/bin/busybox"}
	bins := []string{gitBin}
	if out, err := exec.Command(gitBin, "--exec-path").Output(); err == nil {
		helper := filepath.Join(strings.TrimSpace(string(out)), "git-remote-http")
		if _, err := os.Stat(helper); err == nil {
			files[helper] = helper
			bins = append(bins, helper)
		}
	}
	for _, bin := range bins {
		libs, err := sharedLibraries(bin)
		if err != nil {
			return err
		}
		for _, l := range libs {
			files[l] = l
		}
	}
	for src, dst := range files {
		if err := copyFile(src, filepath.Join(root, dst)); err != nil {
			return fmt.Errorf("git image: %w", err)
		}
	}
	for _, tool := range []string{"sh", "cat", "ls", "echo", "rm", "mkdir", "id"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", tool)); err != nil {
			return err
		}
	}
	for _, d := range []string{"tmp", "root", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o1777); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		return err
	}
	df := "FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/bin:/bin HOME=/root\nENTRYPOINT [\"/agent\"]\nCMD [\"idle\"]\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("docker", "build", "-q", "-t", GitImage, ctxDir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker build %s: %v\n%s", GitImage, err, b)
	}
	return nil
}

var lddPath = regexp.MustCompile(`(/\S+)`)

// sharedLibraries lists the absolute paths of the libraries bin loads
// (the dynamic loader included), from ldd.
func sharedLibraries(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	var libs []string
	for _, l := range strings.Split(string(out), "\n") {
		if m := lddPath.FindAllString(l, -1); len(m) > 0 {
			libs = append(libs, m[len(m)-1])
		}
	}
	return libs, nil
}

// copyFile copies src (following symlinks) to dst with its mode.
func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
