package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// signWithKey issues a server leaf for hosts with the CA's key directly, as
// whoever stole the key would: nothing but the CA's constraints stands in
// its way.
func signWithKey(t *testing.T, ca *CA, hosts ...string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// verify checks leaf against ca as the agent's TLS client does, for name.
func verify(ca *CA, leaf *x509.Certificate, name string) error {
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

func TestConstrainedCASignsOnlyForItsHosts(t *testing.T) {
	ca, err := LoadOrCreateFor(filepath.Join(t.TempDir(), "ca"), "jackin test", []string{"api.example.com", "Auth.Example.NET."})
	if err != nil {
		t.Fatal(err)
	}
	critical := false
	for _, e := range ca.Cert.Extensions {
		if e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 30}) {
			critical = e.Critical
		}
	}
	if !critical {
		t.Error("the CA's name constraints are missing or not critical")
	}

	// Its own leaf, for exactly its hosts, verifies for each.
	leaf, err := ca.Ensure("proxy-tls", Server, "api.example.com", "auth.example.net")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(leaf.CertFile)
	cert, err := parseCert(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"api.example.com", "auth.example.net"} {
		if err := verify(ca, cert, h); err != nil {
			t.Errorf("the proxy's leaf does not verify for %s: %v", h, err)
		}
	}
	if err := verify(ca, signWithKey(t, ca, "api.example.com"), "api.example.com"); err != nil {
		t.Errorf("a leaf for a served host does not verify: %v", err)
	}

	// With the key stolen, a leaf for any other name or address fails.
	for _, c := range []struct {
		name  string
		hosts []string
	}{
		{"github.com", []string{"github.com"}},
		{"evil.api.example.com", []string{"evil.api.example.com"}}, // a subdomain of a served host
		{"example.com", []string{"example.com"}},                   // its parent
		{"x.example.com", []string{"*.example.com"}},
		{"api.example.com", []string{"api.example.com", "github.com"}}, // one name too many spoils the leaf
		{"10.0.0.1", []string{"10.0.0.1"}},
		{"::1", []string{"::1"}},
	} {
		err := verify(ca, signWithKey(t, ca, c.hosts...), c.name)
		if _, ok := err.(x509.CertificateInvalidError); !ok || err.(x509.CertificateInvalidError).Reason != x509.CANotAuthorizedForThisName {
			t.Errorf("a leaf for %v signed with the CA's key: %v, want it refused as outside the CA's names", c.hosts, err)
		}
	}
}

// The hosts are matched as a set: the same hosts keep the CA, other hosts
// replace it (new key, new constraints), and a leaf of the old one is
// reissued.
func TestConstrainedCAIsReissuedForOtherHosts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := LoadOrCreateFor(dir, "jackin test", []string{"a.example", "b.example"})
	if err != nil {
		t.Fatal(err)
	}
	same, err := LoadOrCreateFor(dir, "jackin test", []string{"b.example", "a.example", "a.example"})
	if err != nil {
		t.Fatal(err)
	}
	if !same.Cert.Equal(ca.Cert) {
		t.Error("the CA was replaced for the same hosts")
	}
	if _, err := ca.Ensure("proxy-tls", Server, "a.example", "b.example"); err != nil {
		t.Fatal(err)
	}
	next, err := LoadOrCreateFor(dir, "jackin test", []string{"a.example", "c.example"})
	if err != nil {
		t.Fatal(err)
	}
	if next.Cert.Equal(ca.Cert) || next.Cert.PublicKey.(*ecdsa.PublicKey).Equal(ca.Cert.PublicKey) {
		t.Fatal("the CA (and its key) was kept for other hosts")
	}
	if err := verify(next, signWithKey(t, next, "b.example"), "b.example"); err == nil {
		t.Error("the new CA still signs for a host it no longer serves")
	}
	leaf, err := next.Ensure("proxy-tls", Server, "a.example", "c.example")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(leaf.CertFile)
	cert, _ := parseCert(b)
	if err := verify(next, cert, "c.example"); err != nil {
		t.Errorf("the reissued leaf does not verify: %v", err)
	}
}

// A CA from an older jackin (no name constraints) is replaced by a
// constrained one, with a new key; its leaf is reissued.
func TestUnconstrainedCAIsReissued(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	old, err := LoadOrCreate(dir, "jackin egress CA demo/a")
	if err != nil {
		t.Fatal(err)
	}
	if len(old.Cert.PermittedDNSDomains) > 0 {
		t.Fatal("LoadOrCreate made a constrained CA")
	}
	if _, err := old.Ensure("proxy-tls", Server, "api.example.com"); err != nil {
		t.Fatal(err)
	}
	if err := verify(old, signWithKey(t, old, "github.com"), "github.com"); err != nil {
		t.Fatalf("the unconstrained CA does not sign for any host (the test is wrong): %v", err)
	}
	ca, err := LoadOrCreateFor(dir, "jackin egress CA demo/a", []string{"api.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if ca.Cert.Equal(old.Cert) || ca.Cert.PublicKey.(*ecdsa.PublicKey).Equal(old.Cert.PublicKey) {
		t.Fatal("the unconstrained CA (or its key) was kept")
	}
	if err := verify(ca, signWithKey(t, ca, "github.com"), "github.com"); err == nil {
		t.Error("the reissued CA signs for any host")
	}
	onDisk, err := LoadOrCreateFor(dir, "jackin egress CA demo/a", []string{"api.example.com"})
	if err != nil || !onDisk.Cert.Equal(ca.Cert) {
		t.Fatalf("the reissued CA is not what is on disk: %v", err)
	}
	if ca.current(Leaf{CertFile: filepath.Join(dir, "proxy-tls.pem"), KeyFile: filepath.Join(dir, "proxy-tls-key.pem")}, Server, []string{"api.example.com"}) {
		t.Error("the old CA's leaf counts as current under the new CA")
	}
	leaf, err := ca.Ensure("proxy-tls", Server, "api.example.com")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(leaf.CertFile)
	cert, _ := parseCert(b)
	if err := verify(ca, cert, "api.example.com"); err != nil {
		t.Errorf("the reissued leaf does not verify: %v", err)
	}

	// And the other way: LoadOrCreate keeps a constrained CA (it asks for
	// nothing in particular).
	if again, err := LoadOrCreate(dir, "x"); err != nil || !again.Cert.Equal(ca.Cert) {
		t.Errorf("LoadOrCreate replaced a constrained CA: %v", err)
	}
}

func TestConstraintsFor(t *testing.T) {
	for _, c := range []struct {
		hosts                     []string
		pDNS, xDNS, pIP, xIP, bad string
	}{
		{hosts: []string{"b.example", "a.example"}, pDNS: "a.example b.example", xDNS: ".a.example .b.example", xIP: "0.0.0.0/0 ::/0"},
		// A host under another: the other's subdomains stay permitted.
		{hosts: []string{"example.com", "api.example.com"}, pDNS: "api.example.com example.com", xDNS: ".api.example.com", xIP: "0.0.0.0/0 ::/0"},
		{hosts: []string{"*.example.com"}, pDNS: ".example.com", xIP: "0.0.0.0/0 ::/0"},
		{hosts: []string{"example.com", "*.example.com"}, pDNS: ".example.com example.com", xIP: "0.0.0.0/0 ::/0"},
		{hosts: []string{"10.1.2.3", "::1"}, pDNS: noDNSName, pIP: "10.1.2.3/32 ::1/128"},
		{hosts: []string{"docker", "127.0.0.1"}, pDNS: "docker", xDNS: ".docker", pIP: "127.0.0.1/32"},
		{hosts: nil, bad: "at least one host"},
		{hosts: []string{"a.*.example"}, bad: "not a host name"},
	} {
		nc, err := constraintsFor(c.hosts)
		if c.bad != "" {
			if err == nil || !strings.Contains(err.Error(), c.bad) {
				t.Errorf("%q: %v, want an error containing %q", c.hosts, err, c.bad)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", c.hosts, err)
		}
		got := [4]string{strings.Join(nc.permittedDNS, " "), strings.Join(nc.excludedDNS, " "), strings.Join(netStrings(nc.permittedIP), " "), strings.Join(netStrings(nc.excludedIP), " ")}
		if want := [4]string{c.pDNS, c.xDNS, c.pIP, c.xIP}; got != want {
			t.Errorf("%q: constraints %q, want %q", c.hosts, got, want)
		}
	}
}

// An IP-only CA permits no DNS name, and a DNS-only one no address.
func TestConstrainedCAShutsOutKindsItHasNone(t *testing.T) {
	ipOnly, err := LoadOrCreateFor(filepath.Join(t.TempDir(), "ip"), "ip", []string{"10.1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(ipOnly, signWithKey(t, ipOnly, "10.1.2.3"), "10.1.2.3"); err != nil {
		t.Errorf("an IP-only CA's own address: %v", err)
	}
	if err := verify(ipOnly, signWithKey(t, ipOnly, "github.com"), "github.com"); err == nil {
		t.Error("an IP-only CA signs for a DNS name")
	}
	if err := verify(ipOnly, signWithKey(t, ipOnly, "10.1.2.4"), "10.1.2.4"); err == nil {
		t.Error("an IP-only CA signs for another address")
	}
}

// OpenSSL (what curl, git, Python and Node in an agent use) reads the
// constraints as Go does: the leading-dot exclusion of subdomains keeps the
// host itself.
func TestConstrainedCAWithOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("no openssl")
	}
	dir := t.TempDir()
	ca, err := LoadOrCreateFor(filepath.Join(dir, "ca"), "jackin test", []string{"api.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca", CACertFile)
	for _, c := range []struct {
		host string
		ok   bool
	}{{"api.example.com", true}, {"evil.api.example.com", false}, {"github.com", false}, {"10.0.0.1", false}} {
		leaf := filepath.Join(dir, c.host+".pem")
		if err := os.WriteFile(leaf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: signWithKey(t, ca, c.host).Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		check := "-verify_hostname"
		if net.ParseIP(c.host) != nil {
			check = "-verify_ip"
		}
		out, err := exec.Command(openssl, "verify", "-CAfile", caFile, "-purpose", "sslserver", check, c.host, leaf).CombinedOutput()
		if (err == nil) != c.ok {
			t.Errorf("openssl verify of a leaf for %s: %v, want ok=%v\n%s", c.host, err, c.ok, out)
		}
	}
}
