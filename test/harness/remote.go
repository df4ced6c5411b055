package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// RemoteEngineImage is a real remote Docker engine for the remote-engine
// tests: Debian's openssh-server in front, Debian's dockerd behind, built
// without a registry by sshd/build.sh. Each engine is one container of it
// on a private network, reached by jackin through `ssh` with a key and a
// known-hosts file of the test's own (never the operator's ~/.ssh).
const RemoteEngineImage = "jackin-e2e-remote-engine:bookworm"

// BuildRemoteEngineImage builds RemoteEngineImage unless the engine has it
// (a few minutes the first time on a machine: debootstrap fetches
// Debian's packages; the tag is kept and reused after that).
func BuildRemoteEngineImage() error {
	cmd := exec.Command("bash", filepath.Join(RepoRoot(), "test", "harness", "sshd", "build.sh"), RemoteEngineImage)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s (test/harness/sshd/build.sh): %w", RemoteEngineImage, err)
	}
	return nil
}

// daemonCaps is what dockerd needs in a container on a host that refuses
// --privileged (see ../shared/environment.md): the capability set of
// dockerDaemon.privilege "capabilities".
var daemonCaps = []string{
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER",
	"KILL", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "SETFCAP", "SETGID",
	"SETPCAP", "SETUID", "SYS_ADMIN", "SYS_CHROOT", "SYS_NICE", "SYS_PTRACE",
}

// RemoteEngines are remote engine containers on one private network, and
// the ssh configuration that reaches them: SSHCommand is the value for
// JACKIN_SSH_COMMAND ("ssh -F CONFIG"), and engine NAME is
// ssh://root@NAME (the config maps NAME to the container's address and
// pins its host key).
type RemoteEngines struct {
	Dir     string
	Network string
	Names   []string // engine names, also ssh host aliases

	prefix   string
	mu       sync.Mutex
	addrs    map[string]string
	hostKeys map[string]string
}

// SSHCommand is the JACKIN_SSH_COMMAND that reaches the engines.
func (r *RemoteEngines) SSHCommand() string {
	return "ssh -F " + filepath.Join(r.Dir, "ssh_config")
}

// Container is the Docker container of engine name.
func (r *RemoteEngines) Container(name string) string { return r.prefix + "-" + name }

// StartRemoteEngines starts one engine container per name on a new
// private network, with a fresh client key and per-engine host keys, and
// waits until each engine's dockerd answers over ssh. Stop removes it all.
func StartRemoteEngines(dir string, names ...string) (*RemoteEngines, error) {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	r := &RemoteEngines{Dir: dir, Names: names, prefix: "jk-remote-" + hex.EncodeToString(b), addrs: map[string]string{}, hostKeys: map[string]string{}}
	r.Network = r.prefix
	if err := run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "jackin-e2e", "-f", filepath.Join(dir, "id_ed25519")); err != nil {
		return nil, err
	}
	if err := run("docker", "network", "create", "--label", "jackin.e2e=remote-engines", r.Network); err != nil {
		return nil, err
	}
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { errs[i] = r.start(name) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

func (r *RemoteEngines) start(name string) error {
	keys := filepath.Join(r.Dir, "keys-"+name)
	if err := os.MkdirAll(keys, 0o755); err != nil {
		return err
	}
	hostKey := filepath.Join(keys, "ssh_host_ed25519_key")
	if err := run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", hostKey); err != nil {
		return err
	}
	pub, err := os.ReadFile(filepath.Join(r.Dir, "id_ed25519.pub"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(keys, "authorized_keys"), pub, 0o644); err != nil {
		return err
	}
	hk, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return err
	}
	f := strings.Fields(string(hk))
	if len(f) < 2 {
		return fmt.Errorf("host key %s: unreadable", hostKey)
	}
	args := []string{"run", "-d", "--name", r.Container(name), "--network", r.Network, "--label", "jackin.e2e=remote-engines",
		"--cap-drop", "ALL",
		"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
		"--device-cgroup-rule", "a *:* rwm", "-v", "/sys/fs/cgroup:/sys/fs/cgroup",
		// dockerd's data on an exec-able tmpfs (vfs): the engine is thrown
		// away with the container.
		"--tmpfs", "/run", "--tmpfs", "/var/lib/docker:exec", "--sysctl", "net.ipv4.ip_forward=1",
		"-v", keys + ":/keys:ro"}
	for _, c := range daemonCaps {
		args = append(args, "--cap-add", c)
	}
	if err := run("docker", append(args, RemoteEngineImage)...); err != nil {
		return err
	}
	r.mu.Lock()
	r.hostKeys[name] = f[0] + " " + f[1]
	r.mu.Unlock()
	if err := r.refresh(name); err != nil {
		return err
	}
	return r.WaitReady(name, 60*time.Second)
}

// refresh reads engine name's address on the network and rewrites the ssh
// config and known-hosts file.
func (r *RemoteEngines) refresh(name string) error {
	out, err := exec.Command("docker", "inspect", "-f", "{{(index .NetworkSettings.Networks \""+r.Network+"\").IPAddress}}", r.Container(name)).Output()
	if err != nil {
		return fmt.Errorf("address of %s: %w", r.Container(name), err)
	}
	addr := strings.TrimSpace(string(out))
	if addr == "" {
		return fmt.Errorf("%s has no address on %s", r.Container(name), r.Network)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs[name] = addr
	var cfg, known strings.Builder
	for _, n := range r.Names {
		if r.addrs[n] == "" {
			continue
		}
		fmt.Fprintf(&cfg, "Host %s\n  HostName %s\n  HostKeyAlias %s\n", n, r.addrs[n], n)
		fmt.Fprintf(&known, "%s %s\n", n, r.hostKeys[n])
	}
	fmt.Fprintf(&cfg, "Host *\n  User root\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n",
		filepath.Join(r.Dir, "id_ed25519"), filepath.Join(r.Dir, "known_hosts"))
	if err := os.WriteFile(filepath.Join(r.Dir, "known_hosts"), []byte(known.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(r.Dir, "ssh_config"), []byte(cfg.String()), 0o644)
}

// WaitReady waits until engine name's dockerd answers over ssh.
func (r *RemoteEngines) WaitReady(name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		out, err := r.SSH(name, "docker", "version", "--format", "{{.Server.Version}}")
		if err == nil {
			return nil
		}
		last = out
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("engine %s did not answer over ssh within %s: %s", name, timeout, last)
}

// SSH runs a command on engine name's host through the test's ssh config.
func (r *RemoteEngines) SSH(name string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"-F", filepath.Join(r.Dir, "ssh_config"), name, "--"}, argv...)
	out, err := exec.CommandContext(ctx, "ssh", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Cut disconnects engine name from the network: jackin's ssh then fails
// to reach it, while its dockerd and containers keep running.
func (r *RemoteEngines) Cut(name string) error {
	return run("docker", "network", "disconnect", r.Network, r.Container(name))
}

// Restore reconnects engine name and points the ssh config at its new
// address.
func (r *RemoteEngines) Restore(name string) error {
	if err := run("docker", "network", "connect", r.Network, r.Container(name)); err != nil {
		return err
	}
	if err := r.refresh(name); err != nil {
		return err
	}
	return r.WaitReady(name, 30*time.Second)
}

// Stop removes the engine containers (and everything in their engines)
// and the network.
func (r *RemoteEngines) Stop() {
	for _, n := range r.Names {
		_ = exec.Command("docker", "rm", "-f", "-v", r.Container(n)).Run()
	}
	_ = exec.Command("docker", "network", "rm", r.Network).Run()
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}
