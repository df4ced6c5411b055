package harness

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// RuntimeImage holds stand-ins for the coding-agent CLIs jackin runs
// (claude, codex, gemini, opencode, amp in /usr/local/bin: one binary,
// test/harness/standin, that behaves as the runtime it is called as) and a
// busybox shell for their hook commands. It runs as user agent (uid 1000,
// home /home/agent) and has no entrypoint.
const RuntimeImage = "jackin-e2e-runtimes:v1"

// runtimeNames are the stand-in's names in the image.
var runtimeNames = []string{"claude", "codex", "gemini", "opencode", "amp"}

// busyboxApplets get a /bin symlink each: what hook scripts and tests use.
var busyboxApplets = []string{
	"sh", "cat", "ls", "sleep", "echo", "env", "id", "printf", "mkdir",
	"rm", "touch", "tee", "date", "grep", "sed", "head", "tail", "wc", "cp", "mv",
	"chmod", "kill", "true", "false", "test", "[", "tr", "cut", "pwd", "stty", "ps",
}

// BuildRuntimeImage builds RuntimeImage, using dir as scratch space. It
// needs a static busybox on the host: Debian's busybox-static (apt-get
// install -y busybox-static) puts one at /bin/busybox. The engine's layer
// cache makes a rebuild of unchanged files take a second or two.
func BuildRuntimeImage(dir string) error {
	busybox, err := staticBusybox()
	if err != nil {
		return err
	}
	ctxDir := filepath.Join(dir, "runtime-image")
	if err := os.RemoveAll(ctxDir); err != nil {
		return err
	}
	root := filepath.Join(ctxDir, "rootfs")
	bin := filepath.Join(root, "usr", "local", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	standin := filepath.Join(bin, runtimeNames[0])
	if err := GoBuild(standin, "./test/harness/standin"); err != nil {
		return err
	}
	for _, n := range runtimeNames[1:] {
		if err := os.Link(standin, filepath.Join(bin, n)); err != nil {
			if err := copyFile(standin, filepath.Join(bin, n)); err != nil {
				return fmt.Errorf("runtime image: %w", err)
			}
		}
	}
	if err := copyFile(busybox, filepath.Join(root, "bin", "busybox")); err != nil {
		return fmt.Errorf("runtime image: %w", err)
	}
	for _, tool := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", tool)); err != nil {
			return err
		}
	}
	for _, d := range []string{"tmp", "root", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), os.ModeSticky|0o777); err != nil {
		return err
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000:agent:/home/agent:/bin/sh\n",
		"etc/group":  "root:x:0:\nagent:x:1000:\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	// The home directory is copied on its own with --chown, so that it and
	// what it holds belong to the agent user.
	home := filepath.Join(ctxDir, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(home, ".profile"), []byte("export PATH=/usr/local/bin:/bin\n"), 0o644); err != nil {
		return err
	}
	df := "FROM scratch\n" +
		"COPY rootfs/ /\n" +
		"COPY --chown=1000:1000 home/ /home/agent/\n" +
		"ENV HOME=/home/agent PATH=/usr/local/bin:/bin\n" +
		"USER 1000\n" +
		"WORKDIR /home/agent\n" +
		"CMD [\"/bin/sh\"]\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("docker", "build", "-q", "-t", RuntimeImage, ctxDir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker build %s: %v\n%s", RuntimeImage, err, b)
	}
	return nil
}

// staticBusybox is the host's busybox, refused when it is dynamically
// linked (Debian's plain busybox package): the image has no libraries.
func staticBusybox() (string, error) {
	path, err := exec.LookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("runtime image: no busybox on the host (apt-get install -y busybox-static): %w", err)
	}
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("runtime image: %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("runtime image: %s is dynamically linked; install busybox-static", path)
		}
	}
	return path, nil
}
