package reconciler_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/egress"
	"github.com/jackin-dev/jackin/pki"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// proxied is instance a with one credential delivered by the proxy to each
// of hosts, and a file credential.
func proxied(stateDir string, hosts ...string) *schema.Fleet {
	f := with(fleetOf("a"), "a", func(in *schema.Instance) {
		in.Agent = schema.AgentClaude
		in.Network = schema.Network{Egress: schema.EgressAllowlist, Allow: append([]string{"@agent"}, hosts...)}
		in.Credentials = map[string]schema.Credential{
			"FILE_TOKEN": {Name: "FILE_TOKEN", From: schema.CredentialSource{Kind: schema.SourceEnv, Env: "F"}, Deliver: schema.CredentialDelivery{Kind: schema.DeliverFile}},
		}
		for i, h := range hosts {
			n := "PROXY_TOKEN_" + string(rune('A'+i))
			in.Credentials[n] = schema.Credential{Name: n, From: schema.CredentialSource{Kind: schema.SourceEnv, Env: "P"},
				Deliver: schema.CredentialDelivery{Kind: schema.DeliverProxy, Proxy: &schema.ProxyDelivery{Host: h, Header: "Authorization", Format: "Bearer {{value}}"}}}
		}
	})
	f.StateDir = stateDir
	return f
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s is not PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// forge signs a server leaf for host with the CA key in caDir, as whoever
// stole it would.
func forge(t *testing.T, caDir string, ca *x509.Certificate, host string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(caDir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, key.Public(), k.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// verifyAs checks leaf for host as the agent does: against the CA it was
// given (ca.pem, which bundle.pem also holds).
func verifyAs(agentCA *x509.Certificate, leaf *x509.Certificate, host string) error {
	roots := x509.NewCertPool()
	roots.AddCert(agentCA)
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// The egress CA signs for the proxy hosts and nothing else: one from an
// older jackin (no name constraints) is reissued, and so is one whose
// hosts changed, and a running agent is given the new CA in the very files
// it mounts; once no credential is proxied, the CA's key goes.
func TestEgressCAIsConstrainedToTheProxyHosts(t *testing.T) {
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skip("no /dev/shm")
	}
	base, err := os.MkdirTemp("/dev/shm", "jackin-test-ca-")
	if err != nil {
		t.Fatal(err)
	}
	was := reconciler.SecretsBase
	reconciler.SecretsBase = func() string { return base }
	t.Cleanup(func() { reconciler.SecretsBase = was; os.RemoveAll(base) })
	stateDir := t.TempDir()
	_, caDir, agentCADir := reconciler.CredentialDirs(stateDir, "demo", "a")
	values := fakeResolver{"F": "file-secret", "P": "proxy-secret"}
	write := func(f *schema.Fleet) *reconciler.Desired {
		t.Helper()
		d := reconciler.ResolveCredentials(t.Context(), desired(t, f), values)
		if _, failed := reconciler.WriteCredentials(d); len(failed) > 0 {
			t.Fatal(failed)
		}
		return d
	}
	proxyLeaf := func() *x509.Certificate {
		return readCert(t, filepath.Join(base, "demo", "a", "egress", egress.TLSCertFile))
	}

	// What an older jackin left: an unconstrained CA, and the agent's
	// files holding it.
	old, err := pki.LoadOrCreate(caDir, "jackin egress CA demo/a")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(agentCADir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"ca.pem", "bundle.pem"} {
		if err := os.WriteFile(filepath.Join(agentCADir, n), old.CertPEM, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	caIno, bundleIno := inode(t, filepath.Join(agentCADir, "ca.pem")), inode(t, filepath.Join(agentCADir, "bundle.pem"))

	d1 := write(proxied(stateDir, "api.example.com"))
	ca := readCert(t, filepath.Join(agentCADir, "ca.pem"))
	if ca.Equal(old.Cert) || ca.PublicKey.(*ecdsa.PublicKey).Equal(old.Cert.PublicKey) {
		t.Fatal("the unconstrained CA of an older jackin (or its key) was kept")
	}
	if !ca.PermittedDNSDomainsCritical || !slices.Equal(ca.PermittedDNSDomains, []string{"api.example.com"}) {
		t.Errorf("the egress CA permits %q (critical %v), want exactly the proxy host", ca.PermittedDNSDomains, ca.PermittedDNSDomainsCritical)
	}
	if got := readCert(t, filepath.Join(caDir, pki.CACertFile)); !got.Equal(ca) {
		t.Error("the agent's ca.pem is not the egress CA")
	}
	bundle, _ := os.ReadFile(filepath.Join(agentCADir, "bundle.pem"))
	if !slices.Contains(splitPEM(bundle), string(ca.Raw)) || slices.Contains(splitPEM(bundle), string(old.Cert.Raw)) {
		t.Error("the agent's bundle does not hold the new CA instead of the old")
	}
	// Rewritten in place: a running agent's mounts of them see the new CA.
	if inode(t, filepath.Join(agentCADir, "ca.pem")) != caIno || inode(t, filepath.Join(agentCADir, "bundle.pem")) != bundleIno {
		t.Error("the agent's CA files were replaced, not rewritten: its mounts keep the old CA")
	}
	if err := verifyAs(ca, proxyLeaf(), "api.example.com"); err != nil {
		t.Errorf("the proxy's leaf does not verify for its host: %v", err)
	}
	for _, h := range []string{"github.com", "evil.api.example.com", "api.anthropic.com"} {
		if err := verifyAs(ca, forge(t, caDir, ca, h), h); err == nil {
			t.Errorf("a leaf for %s signed with the egress CA's key verifies", h)
		}
	}
	// The same hosts again: nothing changes.
	write(proxied(stateDir, "api.example.com"))
	if again := readCert(t, filepath.Join(agentCADir, "ca.pem")); !again.Equal(ca) {
		t.Error("the CA was reissued for the same hosts")
	}

	// Another proxy host on the live instance: the spec changes (the
	// agent is recreated, trusting the new CA), and the CA is reissued for
	// the new set of hosts before that.
	d2 := write(proxied(stateDir, "api.example.com", "uploads.example.org"))
	if d1.Instance("a").Hash == d2.Instance("a").Hash {
		t.Error("a new proxy host leaves the spec hash as it was: the agent would not be recreated to trust the new CA")
	}
	ca2 := readCert(t, filepath.Join(agentCADir, "ca.pem"))
	if ca2.Equal(ca) || !slices.Equal(ca2.PermittedDNSDomains, []string{"api.example.com", "uploads.example.org"}) {
		t.Errorf("the CA for two proxy hosts permits %q", ca2.PermittedDNSDomains)
	}
	for _, h := range []string{"api.example.com", "uploads.example.org"} {
		if err := verifyAs(ca2, proxyLeaf(), h); err != nil {
			t.Errorf("the proxy's leaf does not verify for %s: %v", h, err)
		}
	}
	if err := verifyAs(ca2, forge(t, caDir, ca2, "github.com"), "github.com"); err == nil {
		t.Error("the reissued CA's key signs for any host")
	}

	// No credential proxied any more: the CA signs nothing, its key goes.
	g := with(proxied(stateDir), "a", func(in *schema.Instance) { in.Network = schema.Network{Egress: schema.EgressOpen} })
	g.StateDir = stateDir
	write(g)
	if _, err := os.Stat(caDir); !os.IsNotExist(err) {
		t.Errorf("the egress CA's directory is still there with nothing proxied: %v", err)
	}
	if _, err := os.Stat(filepath.Join(base, "demo", "a", "files")); err != nil {
		t.Errorf("the file credential went with the CA: %v", err)
	}
}

func splitPEM(b []byte) []string {
	var out []string
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		out = append(out, string(blk.Bytes))
	}
}
