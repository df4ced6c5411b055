package reconciler

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/egress"
	"github.com/jackin-dev/jackin/linuxexe"
	"github.com/jackin-dev/jackin/schema"
)

// Egress sidecar constants.
const (
	// SidecarImageRepo is the repository of the egress sidecar image, built
	// from jackin's own executable; the tag is a hash of that executable.
	SidecarImageRepo = "jackin-sidecar"
	// ProxyPort is where the allowlist proxy listens, on the instance's
	// internal network, under the alias ProxyAlias.
	ProxyPort  = 3128
	ProxyAlias = "egress"
	// PolicyMountDir is where the sidecar sees the instance's policy
	// directory (read-only).
	PolicyMountDir = "/run/jackin-egress"
	// forwardPortBase is the first port the sidecar's forwarders listen
	// on, one per published port of the agent, in order.
	forwardPortBase = 40000
)

// SidecarName is the name of an instance's egress sidecar container.
func SidecarName(fleet, instance string) string { return ResourceName(fleet, instance) + "-egress" }

// OutNetworkName is the bridge the sidecar's outbound side joins when no
// egressNetwork is given.
func OutNetworkName(fleet, instance string) string { return ResourceName(fleet, instance) + "-out" }

// PolicyDir is the host directory holding an instance's policy file.
func PolicyDir(stateDir, fleet, instance string) string {
	return filepath.Join(stateDir, "egress", fleet, instance)
}

// SidecarImage returns the egress sidecar image for the running
// executable. Tests replace it to keep golden plans stable.
var SidecarImage = func(stateDir string) (drivers.ImageSpec, error) { return sidecarImage(stateDir) }

var exeHash struct {
	sync.Mutex
	key  string // path, size and mtime
	hash string
}

// sidecarImage hashes the Linux build of jackin (linuxexe) into the tag.
// The build context is prepared under the state dir only when the image is
// built: planning and explaining work with any build of jackin, and the
// lack of a Linux build is reported then.
func sidecarImage(stateDir string) (drivers.ImageSpec, error) {
	exe, findErr := linuxexe.Path()
	if findErr != nil {
		// Tagged by the running executable, so the plan still names one
		// image per build; Prepare refuses it.
		var err error
		if exe, err = os.Executable(); err != nil {
			return drivers.ImageSpec{}, fmt.Errorf("egress sidecar: find jackin's executable: %w", err)
		}
	}
	fi, err := os.Stat(exe)
	if err != nil {
		return drivers.ImageSpec{}, fmt.Errorf("egress sidecar: %w", err)
	}
	key := exe + "\x00" + strconv.FormatInt(fi.Size(), 10) + "\x00" + fi.ModTime().String()
	exeHash.Lock()
	defer exeHash.Unlock()
	if exeHash.key != key {
		f, err := os.Open(exe)
		if err != nil {
			return drivers.ImageSpec{}, fmt.Errorf("egress sidecar: %w", err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return drivers.ImageSpec{}, fmt.Errorf("egress sidecar: hash %s: %w", exe, err)
		}
		exeHash.key, exeHash.hash = key, hex.EncodeToString(h.Sum(nil))[:16]
	}
	hash := exeHash.hash
	dir := filepath.Join(stateDir, "images", "sidecar-"+hash)
	return drivers.ImageSpec{Ref: SidecarImageRepo + ":" + hash, Build: &drivers.BuildSpec{
		Context:    dir,
		Dockerfile: "Dockerfile",
		Prepare: func() error {
			if findErr != nil {
				return fmt.Errorf("egress sidecar: %w", findErr)
			}
			return prepareSidecarContext(dir, exe)
		},
	}}, nil
}

const sidecarDockerfile = "FROM scratch\nCOPY jackin /jackin\nENTRYPOINT [\"/jackin\"]\n"

// prepareSidecarContext writes the build context: a copy of the executable
// named jackin and the Dockerfile. It is written to a temporary directory
// and renamed into place, so a crash leaves no half-written context.
func prepareSidecarContext(dir, exe string) error {
	if b, err := os.ReadFile(filepath.Join(dir, "Dockerfile")); err == nil && string(b) == sidecarDockerfile {
		if _, err := os.Stat(filepath.Join(dir, "jackin")); err == nil {
			return nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("egress sidecar context: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".sidecar-")
	if err != nil {
		return fmt.Errorf("egress sidecar context: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := copyFile(exe, filepath.Join(tmp, "jackin"), 0o755); err != nil {
		return fmt.Errorf("egress sidecar context: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "Dockerfile"), []byte(sidecarDockerfile), 0o644); err != nil {
		return fmt.Errorf("egress sidecar context: %w", err)
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("egress sidecar context: %w", err)
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// renderedEgress is what an internal egress mode adds to an instance.
type renderedEgress struct {
	networks   []drivers.Resource
	containers []drivers.Resource
	policy     *egress.Policy
	policyFile string
}

// renderEgress puts the agent on its internal network only, and adds the
// sidecar: in "allowlist" the proxy (alias "egress" on the internal network,
// the outbound side on jk-<fleet>-<instance>-out or egressNetwork), in
// "none" a forwarder only when the agent publishes ports. Published ports
// move from the agent to the sidecar, which relays them to the agent's
// container port over the internal network.
func renderEgress(fleet, name string, inst schema.Instance, spec Spec, ctr *drivers.ContainerSpec, base func(string) map[string]string, stateDir string) (renderedEgress, error) {
	var out renderedEgress
	rname := ResourceName(fleet, name)
	ports := ctr.Ports
	ctr.Ports = nil
	allowlist := spec.Network.Egress == schema.EgressAllowlist
	if !allowlist && len(ports) == 0 {
		// Loopback only; a private Docker daemon then joins the agent on
		// the internal network (renderDocker), which has no way out.
		ctr.Networks, ctr.NoNetwork = nil, true
		return out, nil
	}
	img, err := SidecarImage(stateDir)
	if err != nil {
		return out, err
	}
	outNet := spec.Network.EgressNetwork
	if outNet == "" {
		outNet = OutNetworkName(fleet, name)
		out.networks = append(out.networks, drivers.Resource{Kind: drivers.KindNetwork, Name: outNet, Component: drivers.ComponentNetwork,
			Labels: base(drivers.ComponentNetwork), Network: &drivers.NetworkSpec{}})
	}
	cmd := []string{"egress-proxy"}
	side := &drivers.ContainerSpec{
		Image: img,
		// The outbound network first: the engine publishes ports from the
		// network that has the default route.
		Networks:  []string{outNet, rname},
		Aliases:   map[string][]string{rname: {ProxyAlias}},
		Hostname:  ProxyAlias,
		Memory:    128 << 20,
		PidsLimit: 256,
		Running:   ctr.Running,
		// The proxy parses what the agent sends: it runs unprivileged,
		// with no capabilities, on a read-only root.
		User:            "65534:65534",
		CapDrop:         []string{"ALL"},
		NoNewPrivileges: true,
		ReadOnlyRoot:    true,
	}
	if allowlist {
		rules, err := egress.Expand(inst.Network.Allow, inst.Runtime())
		if err != nil {
			return out, fmt.Errorf("network.allow: %w", err)
		}
		if rules == nil {
			rules = []egress.Rule{}
		}
		out.policy = &egress.Policy{Instance: name, Rules: rules}
		dir := PolicyDir(stateDir, fleet, name)
		out.policyFile = filepath.Join(dir, "policy.json")
		cmd = append(cmd, "--policy", PolicyMountDir+"/policy.json", "--listen", ":"+strconv.Itoa(ProxyPort))
		if spec.Network.UpstreamProxy != "" {
			cmd = append(cmd, "--upstream", spec.Network.UpstreamProxy)
		}
		side.Mounts = []drivers.MountSpec{{Type: "bind", Source: dir, Target: PolicyMountDir, ReadOnly: true}}
		proxy := "http://" + ProxyAlias + ":" + strconv.Itoa(ProxyPort)
		for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
			ctr.Env[k] = proxy
		}
		ctr.Env["NO_PROXY"], ctr.Env["no_proxy"] = "localhost,127.0.0.1", "localhost,127.0.0.1"
	}
	for i, p := range ports {
		listen := forwardPortBase + i
		cmd = append(cmd, "--forward", fmt.Sprintf(":%d=%s:%d", listen, rname, p.ContainerPort))
		side.Ports = append(side.Ports, drivers.PortSpec{ContainerPort: listen, HostPort: p.HostPort, HostIP: p.HostIP, Protocol: "tcp"})
	}
	side.Command = cmd
	sname := SidecarName(fleet, name)
	labels := base(drivers.ComponentEgress)
	labels[drivers.LabelImage] = img.Ref
	out.containers = append(out.containers, drivers.Resource{Kind: drivers.KindContainer, Name: sname, Component: drivers.ComponentEgress,
		Labels: labels, Container: side})
	return out, nil
}

// PolicyBytes is the policy file's content for an instance.
func (in *DesiredInstance) PolicyBytes() ([]byte, error) {
	if in.Policy == nil {
		return nil, nil
	}
	b, err := json.MarshalIndent(in.Policy, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// PolicyPending reports whether the instance's policy file differs from
// what the manifest says (a reload of the proxy that apply would cause).
func (in *DesiredInstance) PolicyPending() bool {
	want, err := in.PolicyBytes()
	if err != nil || want == nil {
		return false
	}
	got, err := os.ReadFile(in.PolicyFile)
	return err != nil || !bytes.Equal(got, want)
}

// WritePolicies writes the policy file of every allowlist instance,
// atomically (a temporary file renamed over it), so a running proxy reloads
// a whole policy or none. It returns the instances whose policy changed.
func WritePolicies(d *Desired) ([]string, error) {
	var changed []string
	var errs []error
	for i := range d.Instances {
		in := &d.Instances[i]
		if in.Policy == nil || !in.PolicyPending() {
			continue
		}
		b, err := in.PolicyBytes()
		if err == nil {
			err = writeAtomic(in.PolicyFile, b)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("instance %s: write egress policy: %w", in.Name, err))
			continue
		}
		changed = append(changed, in.Name)
	}
	return changed, errors.Join(errs...)
}

func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// The proxy reads it as an unprivileged user, whatever the umask.
	if err := os.Chmod(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return replaceFile(path, b, 0o644)
}

// replaceFile writes b to a temporary file beside path, mode mode, and
// renames it into place: a reader sees the old content or the new.
func replaceFile(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".write-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// RealSidecarImage is the sidecar image of the running executable, whatever
// SidecarImage is set to (for tests).
func RealSidecarImage(stateDir string) (drivers.ImageSpec, error) { return sidecarImage(stateDir) }

// PolicyChange compares the instance's policy file with the manifest's
// allowlist: the rules (host or host:port) it would add and remove. pending
// is true when the file differs at all (or is missing).
func (in *DesiredInstance) PolicyChange() (added, removed []string, pending bool) {
	if in.Policy == nil || !in.PolicyPending() {
		return nil, nil, false
	}
	have := map[string]bool{}
	if old, err := egress.LoadPolicy(in.PolicyFile); err == nil {
		for _, r := range old.Rules {
			have[r.String()] = true
		}
	}
	want := map[string]bool{}
	for _, r := range in.Policy.Rules {
		want[r.String()] = true
		if !have[r.String()] {
			added = append(added, r.String())
		}
	}
	for r := range have {
		if !want[r] {
			removed = append(removed, r)
		}
	}
	sort.Strings(removed)
	return added, removed, true
}
