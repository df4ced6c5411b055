package reconciler

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackin-dev/jackin/credentials"
	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/pki"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/supervisor"
)

// Private Docker daemon (docker "private") constants.
const (
	// DockerAlias is the daemon sidecar's name on the instance's network.
	DockerAlias = "docker"
	// DockerPort is where it serves the Docker API, TLS only.
	DockerPort = 2376
	// DockerClientDir is where the agent finds its client certificate
	// (ca.pem, cert.pem, key.pem) and Docker client config (read-only).
	DockerClientDir = "/run/jackin/docker"
	// DockerReadyTimeout bounds apply's wait for the daemon to answer.
	DockerReadyTimeout = 90 * time.Second

	dockerServerMount = "/run/jackin/docker-server"
	dockerClientMount = "/run/jackin/docker-client"
	dockerDataDir     = "/var/lib/docker"
)

// DockerSidecarName is the name of an instance's private daemon sidecar.
func DockerSidecarName(fleet, instance string) string {
	return ResourceName(fleet, instance) + "-dind"
}

// DockerVolumeName is the volume holding the private daemon's data.
func DockerVolumeName(fleet, instance string) string {
	return ResourceName(fleet, instance) + "-dind-data"
}

// DockerTLSDir is the host directory (0700) holding an instance's daemon
// CA, keys and certificates (files 0600): the CA and leaves at its top,
// the copies the sidecar mounts under server/, the agent's under client/.
func DockerTLSDir(stateDir, fleet, instance string) string {
	return filepath.Join(stateDir, "docker", fleet, instance)
}

// DockerTLS is what apply writes on the host for an instance's private
// daemon before its containers are created.
type DockerTLS struct {
	Dir string
	// ClientOwner is the user the client files are handed to when jackin
	// runs as root and the agent runs as another numeric user, so the
	// agent can read its key; empty leaves them to the operator.
	ClientOwner *credentials.Owner
}

// renderDocker adds the private daemon to an instance: the sidecar on the
// instance's network only (alias "docker"), its data volume, and in the
// agent the client certificate (read-only) and DOCKER_HOST,
// DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and
// TESTCONTAINERS_HOST_OVERRIDE.
func renderDocker(fleet, name string, inst schema.Instance, ctr *drivers.ContainerSpec, base func(string) map[string]string, stateDir string) (sidecar, volume drivers.Resource, tls *DockerTLS) {
	dd := inst.DockerDaemon
	if dd == nil {
		dd = &schema.DockerDaemon{Image: schema.DefaultDaemonImage, Privilege: schema.DaemonPrivileged}
	}
	rname := ResourceName(fleet, name)
	dir := DockerTLSDir(stateDir, fleet, name)
	tls = &DockerTLS{Dir: dir}

	vname := DockerVolumeName(fleet, name)
	vlabels := base(drivers.ComponentDockerData)
	delete(vlabels, drivers.LabelSpecHash) // it outlives recreates
	volume = drivers.Resource{Kind: drivers.KindVolume, Name: vname, Component: drivers.ComponentDockerData, Labels: vlabels, Volume: &drivers.VolumeSpec{}}

	env := map[string]string{
		// The official image makes its own certificates when this is set;
		// jackin brings its own.
		"DOCKER_TLS_CERTDIR": "",
	}
	if ctr.Env["HTTP_PROXY"] != "" {
		// Allowlist: the daemon's own pulls go through the proxy.
		for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
			env[k] = ctr.Env[k]
		}
		env["NO_PROXY"], env["no_proxy"] = "localhost,127.0.0.1", "localhost,127.0.0.1"
	}
	side := &drivers.ContainerSpec{
		Image: drivers.ImageSpec{Ref: dd.Image},
		Command: []string{"dockerd",
			"--host=tcp://0.0.0.0:" + strconv.Itoa(DockerPort),
			"--tlsverify",
			"--tlscacert=" + dockerServerMount + "/ca.pem",
			"--tlscert=" + dockerServerMount + "/cert.pem",
			"--tlskey=" + dockerServerMount + "/key.pem",
		},
		Env:      env,
		Networks: []string{rname},
		Aliases:  map[string][]string{rname: {DockerAlias}},
		Hostname: DockerAlias,
		Mounts: []drivers.MountSpec{
			{Type: "volume", Source: vname, Target: dockerDataDir},
			// Runtime state (dockerd's pid file, containerd's sockets) on a
			// tmpfs: a daemon killed uncleanly leaves a pid file behind, and
			// dockerd refuses to start again over it.
			{Type: "tmpfs", Target: "/run"},
			{Type: "bind", Source: filepath.Join(dir, "server"), Target: dockerServerMount, ReadOnly: true},
			// The readiness probe is a TLS client too.
			{Type: "bind", Source: filepath.Join(dir, "client"), Target: dockerClientMount, ReadOnly: true},
		},
		Running: ctr.Running,
		Ready: &drivers.ReadyProbe{
			Exec: []string{"docker", "--host=tcp://127.0.0.1:" + strconv.Itoa(DockerPort), "--tlsverify",
				"--tlscacert=" + dockerClientMount + "/ca.pem", "--tlscert=" + dockerClientMount + "/cert.pem", "--tlskey=" + dockerClientMount + "/key.pem",
				"version", "--format", "{{.Server.Version}}"},
			Timeout:  DockerReadyTimeout,
			What:     "the private Docker daemon " + DockerSidecarName(fleet, name),
			Hint:     "check its log (docker logs " + DockerSidecarName(fleet, name) + "); the image must have dockerd and the docker CLI on PATH; on a host that refuses --privileged set dockerDaemon.privilege: \"capabilities\"",
			QuoteLog: true,
		},
	}
	switch dd.Privilege {
	case schema.DaemonCapabilities:
		side.CapDrop = []string{"ALL"}
		side.CapAdd = append([]string(nil), schema.DaemonCapabilitySet...)
		side.SecurityOpt = []string{"seccomp=unconfined", "apparmor=unconfined"}
		// /proc/sys stays read-only (masked paths too): the one setting
		// dockerd needs there, forwarding for its containers' NAT, is set
		// for the sidecar's network namespace at create.
		side.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
		side.DeviceCgroupRules = []string{"a *:* rwm"}
		side.Mounts = append(side.Mounts, drivers.MountSpec{Type: "bind", Source: "/sys/fs/cgroup", Target: "/sys/fs/cgroup"})
	default:
		side.Privileged = true
	}
	labels := base(drivers.ComponentDocker)
	labels[drivers.LabelImage] = dd.Image
	sidecar = drivers.Resource{Kind: drivers.KindContainer, Name: DockerSidecarName(fleet, name), Component: drivers.ComponentDocker, Labels: labels, Container: side}

	// The agent: on the same network (for egress "none" an internal network
	// that only it and the daemon join), with the client side.
	if ctr.NoNetwork {
		ctr.NoNetwork, ctr.Networks = false, []string{rname}
	}
	if ctr.Env == nil {
		ctr.Env = map[string]string{}
	}
	ctr.Env["DOCKER_HOST"] = "tcp://" + DockerAlias + ":" + strconv.Itoa(DockerPort)
	ctr.Env["DOCKER_TLS_VERIFY"] = "1"
	ctr.Env["DOCKER_CERT_PATH"] = DockerClientDir
	ctr.Env["TESTCONTAINERS_HOST_OVERRIDE"] = DockerAlias
	for _, k := range []string{"NO_PROXY", "no_proxy"} {
		if v, ok := ctr.Env[k]; ok {
			// The Docker client honours the proxy variables for a tcp://
			// host: the daemon is reached directly.
			ctr.Env[k] = v + "," + DockerAlias
		}
	}
	ctr.Mounts = append(ctr.Mounts, drivers.MountSpec{Type: "bind", Source: filepath.Join(dir, "client"), Target: DockerClientDir, ReadOnly: true})
	if o := numericOwner(ctr.User); os.Geteuid() == 0 && o != nil && o.UID != 0 {
		tls.ClientOwner = o
	}
	return sidecar, volume, tls
}

// Prepare makes (or keeps) the instance's daemon CA, the server
// certificate (for "docker", "localhost" and 127.0.0.1) and the client
// certificate, and the copies the sidecar and agent mount. It is
// idempotent: unchanged files are left alone.
func (t *DockerTLS) Prepare() error {
	if err := t.prepare(); err != nil {
		return err
	}
	return nil
}

func (t *DockerTLS) prepare() error {
	ca, err := pki.LoadOrCreate(t.Dir, "jackin private Docker daemon CA")
	if err != nil {
		return err
	}
	srv, err := ca.Ensure("server", pki.Server, DockerAlias, "localhost", "127.0.0.1")
	if err != nil {
		return err
	}
	cli, err := ca.Ensure("client", pki.Client, "agent")
	if err != nil {
		return err
	}
	copies := []struct {
		sub   string
		files map[string]string // name in sub -> source path
	}{
		{"server", map[string]string{"ca.pem": filepath.Join(t.Dir, pki.CACertFile), "cert.pem": srv.CertFile, "key.pem": srv.KeyFile}},
		{"client", map[string]string{"ca.pem": filepath.Join(t.Dir, pki.CACertFile), "cert.pem": cli.CertFile, "key.pem": cli.KeyFile}},
	}
	for _, c := range copies {
		sub := filepath.Join(t.Dir, c.sub)
		if err := os.MkdirAll(sub, 0o700); err != nil {
			return err
		}
		for name, src := range c.files {
			b, err := os.ReadFile(src)
			if err != nil {
				return err
			}
			if err := pki.WriteFile(filepath.Join(sub, name), b); err != nil {
				return err
			}
		}
	}
	if o := t.ClientOwner; o != nil {
		sub := filepath.Join(t.Dir, "client")
		for _, p := range []string{sub, filepath.Join(sub, "ca.pem"), filepath.Join(sub, "cert.pem"), filepath.Join(sub, "key.pem")} {
			if err := os.Lchown(p, o.UID, o.GID); err != nil {
				return fmt.Errorf("hand %s to the agent's user %d:%d: %w", p, o.UID, o.GID, err)
			}
		}
	}
	return nil
}

// RemoveInstanceFiles removes what jackin keeps on the host for a deleted
// instance outside its checkouts: the private daemon's CA, keys and
// certificates, the credentials' values, CA and CA files, and the egress
// policy. It is the one cleanup of them (delete and purge both use it).
func RemoveInstanceFiles(stateDir, fleet, instance string) error {
	errs := []error{RemoveCredentials(stateDir, fleet, instance)}
	for _, dir := range []string{DockerTLSDir(stateDir, fleet, instance), PolicyDir(stateDir, fleet, instance)} {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	removeAgentDir(supervisor.HostDir(stateDir, fleet, instance))
	return errors.Join(errs...)
}

// RemoveMachineFiles removes what jackin kept on the host for an
// instance's OrbStack machine (its supervisor copy), once the machine is
// gone: before, the machine could still write into it. What an earlier
// removal left behind is swept too.
func RemoveMachineFiles(stateDir, fleet, instance string) {
	dir := MachineDir(stateDir, fleet, instance)
	removeAgentDir(dir)
	parent := filepath.Dir(dir)
	if entries, err := os.ReadDir(parent); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".removed-"+instance+"-") {
				_ = os.RemoveAll(filepath.Join(parent, e.Name()))
			}
		}
	}
	_ = os.Remove(parent) // the fleet's directory, when it was the last
}

// removeAgentDir removes an instance's agent directory. The agent could
// write it, so it may hold what jackin cannot remove (a directory of the
// agent's user without permissions): it is first moved aside, so an
// instance of the same name starts with a directory of its own, and what
// cannot be removed is left there rather than failing the delete.
func removeAgentDir(dir string) {
	if _, err := os.Lstat(dir); err != nil {
		return
	}
	aside := filepath.Join(filepath.Dir(dir), ".removed-"+filepath.Base(dir)+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Rename(dir, aside); err != nil {
		aside = dir
	}
	_ = os.RemoveAll(aside)
}
