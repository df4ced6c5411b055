package reconciler

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/jackin-dev/jackin/credentials"
	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/egress"
	"github.com/jackin-dev/jackin/pki"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/workspace"
)

// Where credentials appear inside containers.
const (
	// ProxyCredentialsMountDir is where the egress sidecar sees the
	// instance's proxy credentials, TLS key pair and upstream roots.
	ProxyCredentialsMountDir = "/run/jackin-egress-credentials"
	// AgentCAMountDir is where the agent sees the egress CA (ca.pem) and
	// the bundle of it with the host's system roots (bundle.pem).
	AgentCAMountDir = "/run/jackin-ca"
	// UpstreamCAEnv names a PEM file whose certificates the egress proxy
	// also trusts for the upstreams it injects credentials for (tests).
	UpstreamCAEnv = "JACKIN_EGRESS_UPSTREAM_CA"
)

// SystemBundlePaths are where images keep their system bundle of trusted
// roots (Debian, Ubuntu and Alpine; Fedora and RHEL). Under proxy
// delivery the agent's bundle (the host's roots plus the instance's CA)
// is mounted over them: roots an image added to its own bundle are not in
// it.
var SystemBundlePaths = []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"}

// CAEnv are the variables that point the agent's TLS clients at the
// egress CA, with the file each names.
var CAEnv = [][2]string{
	{"SSL_CERT_FILE", AgentCAMountDir + "/bundle.pem"},
	{"REQUESTS_CA_BUNDLE", AgentCAMountDir + "/bundle.pem"},
	{"CURL_CA_BUNDLE", AgentCAMountDir + "/bundle.pem"},
	{"GIT_SSL_CAINFO", AgentCAMountDir + "/bundle.pem"},
	{"NODE_EXTRA_CA_CERTS", AgentCAMountDir + "/ca.pem"},
}

// SecretsBase is the host tmpfs directory credentials are written under.
// Tests replace it to keep golden plans stable.
var SecretsBase = credentials.Base

// SystemRoots lists the host files one of which holds the system's trusted
// roots (the first that exists is used).
var SystemRoots = []string{
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/ca-bundle.pem",
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
	"/etc/ssl/cert.pem",
}

// SpecCredential is a credential in canonical form: where it is delivered,
// and for env delivery the keyed digest of its value (a changed value
// recreates the container). Never the value; file and proxy deliveries
// carry no digest, as a new value is written without a recreate.
type SpecCredential struct {
	Name     string `json:"name"`
	Delivery string `json:"delivery"`
	// Target is the env name, the file path, or the proxy's host.
	Target string `json:"target"`
	// HostDir (file) is the host tmpfs directory mounted at the file's
	// directory.
	HostDir string `json:"hostDir,omitempty"`
	// Placeholder (proxy) is the env var the agent gets instead.
	Placeholder string `json:"placeholder,omitempty"`
	Digest      string `json:"digest,omitempty"`
}

// CredentialPlan is where an instance's credentials go on the host.
type CredentialPlan struct {
	// Dir is the instance's directory on the host tmpfs.
	Dir string
	// FileDirs maps each container directory holding file credentials to
	// the host tmpfs directory mounted there.
	FileDirs map[string]string
	// FileOwner owns the files (jackin as root and a numeric agent user);
	// nil keeps jackin's user.
	FileOwner *credentials.Owner
	// ProxyDir (proxy delivery) is the host tmpfs directory the egress
	// sidecar mounts; CADir the egress CA's directory (state dir, 0700);
	// AgentCADir the public CA files the agent mounts (state dir).
	ProxyDir, CADir, AgentCADir string
	// ProxyOwner owns the proxy's files (nobody, 65534, when jackin is root).
	ProxyOwner *credentials.Owner
	// Values are the resolved values, by credential name: set by
	// ResolveCredentials, in memory only.
	Values map[string][]byte
}

// CredentialDirs are the host paths of an instance's credentials.
func CredentialDirs(stateDir, fleet, instance string) (tmpfsDir, caDir, agentCADir string) {
	return credentials.InstanceDir(SecretsBase(), fleet, instance),
		filepath.Join(stateDir, "pki", fleet, instance, "egress"),
		filepath.Join(stateDir, "credentials", fleet, instance, "ca")
}

// specCredentials is the canonical form of an instance's credentials, by name.
func specCredentials(fleet string, inst schema.Instance) []SpecCredential {
	if len(inst.Credentials) == 0 {
		return nil
	}
	dir, _, _ := CredentialDirs("", fleet, inst.Name)
	var out []SpecCredential
	for _, n := range inst.CredentialNames() {
		c := inst.Credentials[n]
		sc := SpecCredential{Name: n, Delivery: c.Deliver.Kind}
		switch c.Deliver.Kind {
		case schema.DeliverEnv:
			sc.Target = c.Deliver.Env
		case schema.DeliverFile:
			sc.Target = c.FileTarget()
			sc.HostDir = fileHostDir(dir, path.Dir(sc.Target))
		case schema.DeliverProxy:
			sc.Target = c.Deliver.Proxy.Host
			sc.Placeholder = c.Deliver.Proxy.Placeholder
		}
		out = append(out, sc)
	}
	return out
}

func fileHostDir(instDir, containerDir string) string {
	return filepath.Join(instDir, "files", workspace.Slug(containerDir))
}

// agentOwner is the numeric user:group the agent runs as, when known.
func agentOwner(sb *SpecSandbox) *credentials.Owner {
	if sb == nil {
		return nil
	}
	return numericOwner(sb.User)
}

// numericOwner parses a container user "uid" or "uid:gid" (gid 0 when
// absent, as the engine does without a passwd entry); nil when it is
// empty or names a user.
func numericOwner(user string) *credentials.Owner {
	if user == "" {
		return nil
	}
	u, g, hasG := strings.Cut(user, ":")
	uid, err := strconv.Atoi(u)
	if err != nil {
		return nil
	}
	gid := 0
	if hasG {
		if gid, err = strconv.Atoi(g); err != nil {
			return nil
		}
	}
	return &credentials.Owner{UID: uid, GID: gid}
}

// renderCredentials adds an instance's credential deliveries to its
// containers: a read-only mount of a host tmpfs directory at each file
// credential's directory; for proxy delivery the placeholders, the egress
// CA (mounted, and named by SSL_CERT_FILE and friends) and, in the egress
// sidecar, a read-only mount of the proxy's credentials. Values are not
// known here: env values are added by ResolveCredentials.
func renderCredentials(fleet, name string, inst schema.Instance, spec Spec, ctr *drivers.ContainerSpec, sidecars []drivers.Resource, stateDir string) (*CredentialPlan, error) {
	if len(spec.Credentials) == 0 {
		return nil, nil
	}
	dir, caDir, agentCADir := CredentialDirs(stateDir, fleet, name)
	cp := &CredentialPlan{Dir: dir, FileDirs: map[string]string{}, FileOwner: agentOwner(spec.Sandbox)}
	proxy := false
	for _, sc := range spec.Credentials {
		switch sc.Delivery {
		case schema.DeliverFile:
			cdir := path.Dir(sc.Target)
			if _, ok := cp.FileDirs[cdir]; !ok {
				cp.FileDirs[cdir] = sc.HostDir
			}
		case schema.DeliverProxy:
			proxy = true
			if sc.Placeholder != "" {
				ctr.Env[sc.Placeholder] = schema.PlaceholderValue
			}
		}
	}
	for _, cdir := range slices.Sorted(maps.Keys(cp.FileDirs)) {
		ctr.Mounts = append(ctr.Mounts, drivers.MountSpec{Type: "bind", Source: cp.FileDirs[cdir], Target: cdir, ReadOnly: true})
	}
	if !proxy {
		return cp, nil
	}
	var side *drivers.ContainerSpec
	for _, r := range sidecars {
		if r.Component == drivers.ComponentEgress && r.Container != nil {
			side = r.Container
		}
	}
	if side == nil {
		return nil, errors.New("credentials: proxy delivery needs the egress proxy (network.egress \"allowlist\")")
	}
	cp.ProxyDir, cp.CADir, cp.AgentCADir = filepath.Join(dir, "egress"), caDir, agentCADir
	if os.Geteuid() == 0 {
		cp.ProxyOwner = &credentials.Owner{UID: 65534, GID: 65534}
	} else {
		// The proxy must read files only jackin's user can: it runs as
		// that user (still with no capabilities).
		side.User = strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid())
	}
	side.Mounts = append(side.Mounts, drivers.MountSpec{Type: "bind", Source: cp.ProxyDir, Target: ProxyCredentialsMountDir, ReadOnly: true})
	side.Command = append(side.Command, "--credentials-dir", ProxyCredentialsMountDir)
	ctr.Mounts = append(ctr.Mounts, drivers.MountSpec{Type: "bind", Source: agentCADir, Target: AgentCAMountDir, ReadOnly: true})
	// Tools that read only the system bundle (not SSL_CERT_FILE) trust the
	// CA too: the bundle is mounted over the usual system paths, unless
	// the manifest mounts something there.
	mounted := map[string]bool{}
	for _, m := range ctr.Mounts {
		mounted[m.Target] = true
	}
	for _, p := range SystemBundlePaths {
		if !mounted[p] && !mounted[path.Dir(p)] {
			ctr.Mounts = append(ctr.Mounts, drivers.MountSpec{Type: "bind", Source: filepath.Join(agentCADir, "bundle.pem"), Target: p, ReadOnly: true})
		}
	}
	for _, kv := range CAEnv {
		if _, set := inst.Env[kv[0]]; !set {
			ctr.Env[kv[0]] = kv[1]
		}
	}
	return cp, nil
}

// CredentialResolver reads credential values and digests them.
type CredentialResolver interface {
	Resolve(ctx context.Context, src schema.CredentialSource) ([]byte, error)
	Digest(fleet, instance, name string, value []byte) string
}

// ResolveCredentials reads the credentials of every instance that has any,
// and returns desired state with the values in memory (CredentialPlan.Values),
// env-delivered values in the agent's env, and their keyed digests in the
// spec and its hash. d is not changed. An instance whose source cannot be
// read gets CredentialErr: its action fails, the others go on.
func ResolveCredentials(ctx context.Context, d *Desired, r CredentialResolver) *Desired {
	out := *d
	out.Instances = slices.Clone(d.Instances)
	for i := range out.Instances {
		in := &out.Instances[i]
		if in.Credentials == nil {
			continue
		}
		values := map[string][]byte{}
		var failed error
		for _, n := range in.Instance.CredentialNames() {
			src := in.Instance.Credentials[n].From
			v, err := r.Resolve(ctx, src)
			if err != nil {
				failed = fmt.Errorf("credential %s (from %s) cannot be read: %w", n, src.SourceText(), err)
				break
			}
			if why := unfitValue(in.Instance.Credentials[n].Deliver.Kind, v); why != "" {
				failed = fmt.Errorf("credential %s (from %s): its value %s", n, src.SourceText(), why)
				break
			}
			values[n] = v
		}
		if failed != nil {
			in.CredentialErr = failed
			continue
		}
		cp := *in.Credentials
		cp.Values = values
		in.Credentials = &cp
		spec := in.Spec
		spec.Credentials = slices.Clone(spec.Credentials)
		envs := map[string]string{}
		for j := range spec.Credentials {
			sc := &spec.Credentials[j]
			if sc.Delivery == schema.DeliverEnv {
				sc.Digest = r.Digest(out.Fleet, in.Name, sc.Name, values[sc.Name])
				envs[sc.Target] = string(values[sc.Name])
			}
		}
		hash, err := HashSpec(spec)
		if err != nil {
			in.CredentialErr = err
			continue
		}
		in.Spec, in.Hash = spec, hash
		in.Resources = slices.Clone(in.Resources)
		for k := range in.Resources {
			res := &in.Resources[k]
			if _, ok := res.Labels[drivers.LabelSpecHash]; ok {
				res.Labels = maps.Clone(res.Labels)
				res.Labels[drivers.LabelSpecHash] = hash
			}
			if res.Kind == drivers.KindContainer && res.Component == drivers.ComponentAgent && res.Container != nil && len(envs) > 0 {
				c := *res.Container
				c.Env = maps.Clone(c.Env)
				if c.Env == nil {
					c.Env = map[string]string{}
				}
				maps.Copy(c.Env, envs)
				res.Container = &c
			}
		}
	}
	return &out
}

// unfitValue says why a value cannot be delivered the given way (without
// quoting it), or "". A header or an environment variable cannot hold a
// line break or another control character, and would fail at every
// request or at create instead of at apply with the credential named.
func unfitValue(delivery string, v []byte) string {
	if delivery == schema.DeliverFile {
		return ""
	}
	if len(v) == 0 {
		return "is empty"
	}
	for _, c := range v {
		if c < 0x20 && c != '\t' || c == 0x7f {
			where := "an HTTP header"
			if delivery == schema.DeliverEnv {
				where = "an environment variable"
			}
			return "holds a line break or another control character, which " + where + " cannot carry"
		}
	}
	return ""
}

// proxyCredentialsFile is the proxy's view of its credentials.
func (in *DesiredInstance) proxyCredentials() *egress.Credentials {
	pc := &egress.Credentials{Instance: in.Name}
	for _, n := range in.Instance.CredentialNames() {
		c := in.Instance.Credentials[n]
		if c.Deliver.Kind != schema.DeliverProxy {
			continue
		}
		p := c.Deliver.Proxy
		pc.Hosts = append(pc.Hosts, egress.HostCredential{Name: n, Host: p.Host, Header: p.Header,
			Value: strings.Replace(p.Format, "{{value}}", string(in.Credentials.Values[n]), 1)})
	}
	return pc
}

func (in *DesiredInstance) proxyHosts() []string {
	seen := map[string]bool{}
	var hosts []string
	for _, c := range in.Instance.Credentials {
		if c.Deliver.Kind == schema.DeliverProxy && !seen[c.Deliver.Proxy.Host] {
			seen[c.Deliver.Proxy.Host] = true
			hosts = append(hosts, c.Deliver.Proxy.Host)
		}
	}
	sort.Strings(hosts)
	return hosts
}

// CredentialsPending lists the file and proxy credentials of a resolved
// instance whose delivered value differs from the source's (a refresh
// that apply does by rewriting a file, with no recreate).
func (in *DesiredInstance) CredentialsPending() []string {
	cp := in.Credentials
	if cp == nil || cp.Values == nil || in.CredentialErr != nil {
		return nil
	}
	var proxied map[string]string
	var pending []string
	for _, n := range in.Instance.CredentialNames() {
		c := in.Instance.Credentials[n]
		switch c.Deliver.Kind {
		case schema.DeliverFile:
			t := c.FileTarget()
			if !credentials.Holds(filepath.Join(cp.FileDirs[path.Dir(t)], path.Base(t)), cp.Values[n]) {
				pending = append(pending, n)
			}
		case schema.DeliverProxy:
			if proxied == nil {
				proxied = map[string]string{}
				if b, err := os.ReadFile(filepath.Join(cp.ProxyDir, egress.CredentialsFile)); err == nil {
					var have egress.Credentials
					if json.Unmarshal(b, &have) == nil {
						for _, h := range have.Hosts {
							proxied[h.Name] = h.Value
						}
					}
				}
			}
			want := strings.Replace(c.Deliver.Proxy.Format, "{{value}}", string(cp.Values[n]), 1)
			if subtle.ConstantTimeCompare([]byte(proxied[n]), []byte(want)) != 1 {
				pending = append(pending, n)
			}
		}
	}
	return pending
}

// WriteCredentials writes the file and proxy deliveries of every resolved
// instance (those with a CredentialErr are left as they were): each
// value to the instance's directory on the host tmpfs, replaced
// atomically so a running agent or proxy sees the new value at once; for
// proxy delivery also the egress CA, the proxy's TLS key pair for exactly
// the proxy hosts, and the CA files the agent trusts. It returns, by
// instance, the credentials whose delivered value changed, and the
// instances whose credentials could not be written.
func WriteCredentials(d *Desired) (changed map[string][]string, failed map[string]error) {
	changed, failed = map[string][]string{}, map[string]error{}
	for i := range d.Instances {
		in := &d.Instances[i]
		if in.Credentials == nil {
			// Credentials removed from a live instance: their values go
			// now, not at its delete.
			if dir, _, _ := CredentialDirs(d.StateDir, d.Fleet, in.Name); d.StateDir != "" {
				if _, err := os.Stat(dir); err == nil {
					if err := RemoveCredentials(d.StateDir, d.Fleet, in.Name); err != nil {
						failed[in.Name] = fmt.Errorf("remove credentials no longer declared: %w", err)
					}
				}
			}
			continue
		}
		if in.Credentials.Values == nil || in.CredentialErr != nil {
			continue
		}
		var pending []string
		if _, err := os.Stat(in.Credentials.Dir); err == nil {
			pending = in.CredentialsPending() // a first write is no refresh
		}
		if err := in.writeCredentials(d.StateDir, d.Fleet); err != nil {
			failed[in.Name] = fmt.Errorf("write credentials: %w", err)
			continue
		}
		if len(pending) > 0 {
			changed[in.Name] = pending
		}
	}
	return changed, failed
}

func (in *DesiredInstance) writeCredentials(stateDir, fleet string) error {
	cp := in.Credentials
	base := SecretsBase()
	files := map[string]map[string][]byte{} // host dir -> name -> value
	for _, n := range in.Instance.CredentialNames() {
		c := in.Instance.Credentials[n]
		if c.Deliver.Kind != schema.DeliverFile {
			continue
		}
		t := c.FileTarget()
		hd := cp.FileDirs[path.Dir(t)]
		if files[hd] == nil {
			files[hd] = map[string][]byte{}
		}
		files[hd][path.Base(t)] = cp.Values[n]
	}
	dirMode := os.FileMode(0o700)
	if cp.FileOwner != nil && os.Geteuid() == 0 && cp.FileOwner.UID != 0 {
		dirMode = 0o500
	}
	keep := map[string]bool{}
	for hd, fs := range files {
		keep[filepath.Base(hd)] = true
		if _, err := credentials.WriteDir(base, hd, fs, 0o400, dirMode, cp.FileOwner); err != nil {
			return err
		}
	}
	// Directories of file credentials no longer delivered there.
	if entries, err := os.ReadDir(filepath.Join(cp.Dir, "files")); err == nil {
		for _, e := range entries {
			if !keep[e.Name()] {
				_ = os.RemoveAll(filepath.Join(cp.Dir, "files", e.Name()))
			}
		}
	}
	if cp.ProxyDir == "" {
		if err := os.RemoveAll(filepath.Join(cp.Dir, "egress")); err != nil {
			return fmt.Errorf("remove the proxy's credentials, no longer delivered: %w", err)
		}
		// The egress CA signs nothing any more: its key goes too. (The
		// CA files the agent mounts stay until its recreate or delete.)
		if stateDir != "" {
			_, caDir, _ := CredentialDirs(stateDir, fleet, in.Name)
			if err := os.RemoveAll(caDir); err != nil {
				return fmt.Errorf("remove the egress CA, no longer used: %w", err)
			}
		}
		return nil
	}
	// The CA can sign for the proxy hosts and nothing else (X.509 name
	// constraints): a leaked key cannot impersonate any other host to the
	// agent. Other proxy hosts than its own (or none, from an older jackin)
	// replace it, with a new key. The agent trusts the new CA once its CA
	// files are rewritten below; a change of proxy hosts also changes the
	// spec, which recreates the agent after this write.
	ca, err := pki.LoadOrCreateFor(cp.CADir, "jackin egress CA "+fleet+"/"+in.Name, in.proxyHosts())
	if err != nil {
		return err
	}
	leaf, err := ca.Ensure("proxy-tls", pki.Server, in.proxyHosts()...)
	if err != nil {
		return err
	}
	certPEM, err := os.ReadFile(leaf.CertFile)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(leaf.KeyFile)
	if err != nil {
		return err
	}
	system := systemRoots()
	roots := append([]byte(nil), system...)
	if extra := os.Getenv(UpstreamCAEnv); extra != "" {
		b, err := os.ReadFile(extra)
		if err != nil {
			return fmt.Errorf("%s: %w", UpstreamCAEnv, err)
		}
		roots = append(append(roots, '\n'), b...)
	}
	pc, err := json.MarshalIndent(in.proxyCredentials(), "", "  ")
	if err != nil {
		return err
	}
	if _, err := credentials.WriteDir(base, cp.ProxyDir, map[string][]byte{
		egress.CredentialsFile: pc,
		egress.TLSCertFile:     certPEM,
		egress.TLSKeyFile:      keyPEM,
		egress.RootsFile:       roots,
	}, 0o400, proxyDirMode(), cp.ProxyOwner); err != nil {
		return err
	}
	// The agent's trust: public, so in the state dir, readable by any user.
	bundle := append(append(append([]byte(nil), system...), '\n'), ca.CertPEM...)
	return writePublic(cp.AgentCADir, map[string][]byte{"ca.pem": ca.CertPEM, "bundle.pem": bundle})
}

// proxyDirMode is the mode of the directory the proxy reads its
// credentials from: read-only for its user when jackin is root (root
// writes it anyway); a non-root jackin owns it and must keep writing it.
func proxyDirMode() os.FileMode {
	if os.Geteuid() == 0 {
		return 0o500
	}
	return 0o700
}

// systemRoots is the host's bundle of trusted roots, or nothing.
func systemRoots() []byte {
	for _, p := range SystemRoots {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			return b
		}
	}
	return nil
}

// writePublic writes the agent's CA files (public: readable by any user)
// into dir. A file that is there already is rewritten in place, not
// replaced by another: the agent mounts bundle.pem by itself over its
// system bundle, and a bind mount of a file keeps the file it was made
// with, so a new CA (one for new proxy hosts, or one replacing a CA
// without name constraints) reaches a running agent only this way. A
// process that read its roots at start (NODE_EXTRA_CA_CERTS) keeps the
// old ones until it restarts.
func writePublic(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	for n, b := range files {
		p := filepath.Join(dir, n)
		if old, err := os.ReadFile(p); err == nil && string(old) == string(b) {
			continue
		}
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			if err := rewriteInPlace(p, b); err != nil {
				return err
			}
			continue
		}
		if err := writeAtomic(p, b); err != nil {
			return err
		}
	}
	return nil
}

// rewriteInPlace replaces the content of the regular file at p, keeping
// the file (its inode), so that bind mounts of it see the new content.
func rewriteInPlace(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(int64(len(b))); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// RemoveCredentials removes what an instance's credentials left on the
// host (its tmpfs directory, its egress CA and CA files), once the instance
// is deleted.
func RemoveCredentials(stateDir, fleet, instance string) error {
	_, caDir, agentCADir := CredentialDirs(stateDir, fleet, instance)
	errs := []error{credentials.RemoveInstance(SecretsBase(), fleet, instance)}
	for _, d := range []string{filepath.Dir(caDir), filepath.Dir(agentCADir)} {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// FailCredentials returns d with err as the CredentialErr of every instance
// that has credentials (when no credential can be read at all).
func FailCredentials(d *Desired, err error) *Desired {
	out := *d
	out.Instances = slices.Clone(d.Instances)
	for i := range out.Instances {
		if out.Instances[i].Credentials != nil {
			out.Instances[i].CredentialErr = err
		}
	}
	return &out
}
