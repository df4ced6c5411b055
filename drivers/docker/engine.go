package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/moby/moby/client"

	"github.com/jackin-dev/jackin/schema"
)

// EngineConfig is a Docker engine a fleet declares besides the local one
// (engines: NAME: {host, tls}).
type EngineConfig struct {
	// Name is the engine's name in the manifest.
	Name string
	// Host is ssh://[user@]host[:port], tcp://host:port or unix:///path.
	Host string
	// TLS (tcp:// only) are the client's files on this machine.
	TLS *TLSFiles
	// HostFiles, for an engine on another machine, says which bind sources
	// are jackin's own files on this machine, copied to the engine's host
	// before a container that mounts them is created.
	HostFiles *HostFiles
	// Keeper, for an ssh:// engine, is the command that runs a dial keeper
	// (jackin's own binary and its hidden command; see RunDialKeeper):
	// connections are then taken from it. Empty: every connection starts
	// its own ssh.
	Keeper []string
}

// TLSFiles are a tcp:// engine's CA and client certificate and key.
type TLSFiles struct {
	CA, Cert, Key string
}

// SSHCommand is the command that reaches the engine behind an ssh:// host:
// the operator's own ssh (its config, agent and known hosts) running
// `docker system dial-stdio` on the far side, as the docker CLI's SSH
// connection helper runs it. BatchMode keeps ssh from prompting: jackin
// never waits on a prompt. Only ssh://[user@]host[:port] is accepted (no
// password, path, query or fragment).
func SSHCommand(host string) ([]string, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("engine host %q: %w", host, err)
	}
	if u.Scheme != "ssh" {
		return nil, fmt.Errorf("engine host %q is not an ssh:// address", host)
	}
	if _, ok := u.User.Password(); ok {
		return nil, fmt.Errorf("engine host %q: a password in the address is refused (use your ssh agent or keys)", redactURL(u))
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("engine host %q: give ssh://[user@]host[:port] only (no path, query or fragment)", host)
	}
	h := u.Hostname()
	if h == "" || strings.HasPrefix(h, "-") {
		return nil, fmt.Errorf("engine host %q names no host", host)
	}
	argv := append(sshProgram(), "-o", "ConnectTimeout=10", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=2", "-T")
	if dir, ok := sshMuxDir(); ok {
		// One ssh connection per engine, shared by every API connection
		// and kept a minute after jackin exits: a connection then costs a
		// channel, not a key exchange (docker's own ssh helper leaves this
		// to the operator's config; a converged diff would otherwise pay a
		// handshake per list).
		argv = append(argv, "-o", "ControlMaster=auto", "-o", "ControlPath="+filepath.Join(dir, "%C"), "-o", "ControlPersist=60")
	}
	if user := u.User.Username(); user != "" {
		if strings.HasPrefix(user, "-") {
			return nil, fmt.Errorf("engine host %q: user %q is not a user name", host, user)
		}
		argv = append(argv, "-l", user)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("engine host %q: port %q is not a port number", host, p)
		}
		argv = append(argv, "-p", p)
	}
	return append(argv, "--", h, "docker", "system", "dial-stdio"), nil
}

// SSHCommandEnv names the variable that replaces the plain "ssh" jackin
// runs for ssh:// engines: a program and its arguments split at white
// space, never through a shell (as GIT_SSH_COMMAND, less the quoting), such
// as "ssh -F /path/to/config". Tests use it to reach their engines with a
// key and known-hosts file of their own.
const SSHCommandEnv = "JACKIN_SSH_COMMAND"

func sshProgram() []string {
	if f := strings.Fields(os.Getenv(SSHCommandEnv)); len(f) > 0 {
		return f
	}
	return []string{"ssh"}
}

// sshMuxDir is the directory of jackin's ssh control sockets: the user's
// own, mode 0700 (anyone who can open a control socket can run commands on
// the engine's host as the operator). Anything else there (another
// owner, wider modes, a symbolic link) turns multiplexing off.
func sshMuxDir() (string, bool) {
	dir := schema.SSHControlDir()
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return "", false
	}
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		return "", false
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
		return "", false
	}
	return dir, true
}

func redactURL(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User(c.User.Username())
	}
	return c.String()
}

// CheckEngineHost checks an engine's host and TLS settings without
// contacting it: the scheme, an ssh:// address's shape, a tcp:// address's
// port, TLS present for tcp:// and only there, a unix:// absolute path.
func CheckEngineHost(host string, hasTLS bool) error {
	scheme, rest, _ := strings.Cut(host, "://")
	switch scheme {
	case "ssh":
		if hasTLS {
			return errors.New("tls applies to tcp:// engines only: an ssh:// engine is reached through ssh")
		}
		_, err := SSHCommand(host)
		return err
	case "tcp":
		if !hasTLS {
			return errors.New("a tcp:// engine requires tls {ca, cert, key}: an engine API without TLS gives root on its host to anyone who can reach the port")
		}
		h, p, err := net.SplitHostPort(rest)
		if err != nil || h == "" {
			return fmt.Errorf("tcp:// engine address %q is not host:port", rest)
		}
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("tcp:// engine address %q: port %q is not a port number", rest, p)
		}
		return nil
	case "unix":
		if hasTLS {
			return errors.New("tls applies to tcp:// engines only")
		}
		if !strings.HasPrefix(rest, "/") {
			return fmt.Errorf("unix:// engine address %q is not an absolute socket path", host)
		}
		return nil
	}
	return fmt.Errorf("engine host %q: the scheme must be ssh://, tcp:// or unix://", host)
}

// OpenEngine returns a driver for a declared engine. It does not contact
// the engine; call Ping for that. ssh:// runs the operator's ssh per
// connection (CommandDialer), taken from a dial keeper when cfg.Keeper
// names one; tcp:// uses mutual TLS, unix:// a socket on this machine.
func OpenEngine(ctx context.Context, log logr.Logger, cfg EngineConfig) (*Driver, error) {
	if err := CheckEngineHost(cfg.Host, cfg.TLS != nil); err != nil {
		return nil, fmt.Errorf("engine %s: %w", cfg.Name, err)
	}
	endpoint := "engine " + cfg.Name + " (" + cfg.Host + ")"
	var d *Driver
	switch {
	case strings.HasPrefix(cfg.Host, "ssh://"):
		argv, err := SSHCommand(cfg.Host)
		if err != nil {
			return nil, err
		}
		if d, err = NewDialed(ctx, log, endpoint, keptDialer(log, argv, cfg.Keeper)); err != nil {
			return nil, err
		}
	default:
		opts := []client.Opt{client.WithHost(cfg.Host)}
		if cfg.TLS != nil {
			opts = append(opts, client.WithTLSClientConfig(cfg.TLS.CA, cfg.TLS.Cert, cfg.TLS.Key))
		}
		counter := newCallCounter(log)
		opts = append(opts, client.WithHTTPRequestHook(counter.hook))
		cli, err := client.New(opts...)
		if err != nil {
			return nil, fmt.Errorf("configure the Docker engine client for %s: %w", endpoint, err)
		}
		subnets, err := newSubnetAllocator()
		if err != nil {
			return nil, err
		}
		d = &Driver{cli: cli, log: log, counter: counter, endpoint: endpoint, subnets: subnets}
	}
	d.engine = cfg.Name
	d.hostFiles = cfg.HostFiles
	if d.hostFiles != nil {
		d.hostFiles.init()
	}
	return d, nil
}

// Engine is the name of the declared engine the driver serves ("" for the
// local engine).
func (d *Driver) Engine() string { return d.engine }
