// Package pki issues the small private certificate authorities jackin keeps
// per instance: one for the TLS between an agent and its private Docker
// daemon, one for the egress proxy's TLS termination. Keys and
// certificates live in files of mode 0600 under a directory of mode 0700;
// keys never leave the host except as the one leaf a container needs. An
// authority made for a set of hosts (LoadOrCreateFor) carries X.509 name
// constraints: its key can sign for those hosts and nothing else.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Lifetimes. Leaves live as long as their CA: a daemon loads its
// certificate once at start, and an instance can run for years without a
// recreate, so a short leaf would expire under a running daemon. Ensure
// reissues one with less than renewBefore left (at the next create).
const (
	caLifetime   = 10 * 365 * 24 * time.Hour
	leafLifetime = caLifetime
	renewBefore  = 30 * 24 * time.Hour
)

// File names inside an authority's directory.
const (
	CACertFile = "ca.pem"
	caKeyFile  = "ca-key.pem"
)

// CA is a certificate authority whose files live in Dir.
type CA struct {
	Dir     string
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer
}

// LoadOrCreate opens the authority in dir, creating it (and dir, 0700)
// when it does not exist yet. name goes into the CA's subject, so an
// operator can tell whose CA a certificate chains to. The authority can
// sign for any name: LoadOrCreateFor makes one that cannot.
func LoadOrCreate(dir, name string) (*CA, error) {
	return loadOrCreate(dir, name, nil)
}

// LoadOrCreateFor is LoadOrCreate for an authority that signs leaves for
// hosts only (DNS names, *.wildcards or IP addresses; at least one). Its
// certificate carries critical X.509 name constraints permitting exactly
// those names (not their subdomains, unless another of the hosts is one)
// and addresses, and no other name or address: a leaf for anything else
// fails verification against it, even one signed with its key.
//
// An authority in dir whose constraints are not those (one from an older
// jackin, which had none, or one made for other hosts) is replaced, with a
// new key, as one near its end is: whoever trusts the old certificate must
// be given the new one, and leaves of the old one are reissued by Ensure.
func LoadOrCreateFor(dir, name string, hosts []string) (*CA, error) {
	nc, err := constraintsFor(hosts)
	if err != nil {
		return nil, err
	}
	return loadOrCreate(dir, name, nc)
}

func loadOrCreate(dir, name string, nc *constraints) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	certPEM, errC := os.ReadFile(filepath.Join(dir, CACertFile))
	keyPEM, errK := os.ReadFile(filepath.Join(dir, caKeyFile))
	if errC == nil && errK == nil {
		ca, err := parseCA(dir, certPEM, keyPEM)
		if err == nil && time.Until(ca.Cert.NotAfter) > renewBefore && nc.of(ca.Cert) {
			return ca, nil
		}
	} else if !errors.Is(errC, os.ErrNotExist) && errC != nil {
		return nil, fmt.Errorf("pki: read CA certificate: %w", errC)
	} else if !errors.Is(errK, os.ErrNotExist) && errK != nil {
		return nil, fmt.Errorf("pki: read CA key: %w", errK)
	}
	// Missing, unreadable as a CA, near its end or constrained otherwise: a
	// new CA, with a new key (a copy of the old certificate somewhere still
	// trusted must not verify anything signed from now on). Leaves issued
	// by the old one no longer verify and are reissued by their callers.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"jackin"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	nc.apply(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})
	if err := WriteFile(filepath.Join(dir, caKeyFile), keyPEM); err != nil {
		return nil, err
	}
	if err := WriteFile(filepath.Join(dir, CACertFile), certPEM); err != nil {
		return nil, err
	}
	return parseCA(dir, certPEM, keyPEM)
}

func parseCA(dir string, certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, err
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("pki: CA key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok || !cert.IsCA {
		return nil, errors.New("pki: not a CA")
	}
	return &CA{Dir: dir, Cert: cert, CertPEM: certPEM, key: signer}, nil
}

func parseCert(certPEM []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("pki: certificate is not PEM")
	}
	return x509.ParseCertificate(b.Bytes)
}

// Usage is what a leaf certificate is for.
type Usage int

const (
	Server Usage = iota
	Client
)

// Leaf names the files of an issued certificate and its key.
type Leaf struct {
	CertFile, KeyFile string
}

// Ensure returns the leaf called name (files name.pem and name-key.pem in
// the CA's directory), issuing it when it is missing, was issued by another
// CA, is near its end, or does not cover hosts exactly. hosts are DNS names
// or IP addresses (server certificates); a client certificate uses the
// first as its common name.
func (ca *CA) Ensure(name string, usage Usage, hosts ...string) (Leaf, error) {
	leaf := Leaf{CertFile: filepath.Join(ca.Dir, name+".pem"), KeyFile: filepath.Join(ca.Dir, name+"-key.pem")}
	if ca.current(leaf, usage, hosts) {
		return leaf, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return leaf, fmt.Errorf("pki: generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if len(hosts) > 0 {
		tmpl.Subject.CommonName = hosts[0]
	}
	switch usage {
	case Server:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	case Client:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return leaf, fmt.Errorf("pki: issue %s: %w", name, err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return leaf, fmt.Errorf("pki: %w", err)
	}
	if err := WriteFile(leaf.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})); err != nil {
		return leaf, err
	}
	return leaf, WriteFile(leaf.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// current reports whether leaf exists, matches its key (a crash between
// the two writes leaves a pair that does not), verifies against ca (its
// name constraints included) for its usage, has time left and names
// exactly hosts.
func (ca *CA) current(leaf Leaf, usage Usage, hosts []string) bool {
	certPEM, err := os.ReadFile(leaf.CertFile)
	if err != nil {
		return false
	}
	if _, err := tls.LoadX509KeyPair(leaf.CertFile, leaf.KeyFile); err != nil {
		return false
	}
	cert, err := parseCert(certPEM)
	if err != nil || time.Until(cert.NotAfter) < renewBefore {
		return false
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	eku := x509.ExtKeyUsageServerAuth
	if usage == Client {
		eku = x509.ExtKeyUsageClientAuth
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
		return false
	}
	if usage == Client {
		return len(hosts) == 0 || cert.Subject.CommonName == hosts[0]
	}
	var have []string
	have = append(have, cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		have = append(have, ip.String())
	}
	want := slices.Clone(hosts)
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(have, want)
}

// constraints are the X.509 name constraints of an authority made for a
// set of hosts. Every list is sorted, so two sets of the same hosts compare
// equal, whatever their order.
type constraints struct {
	permittedDNS, excludedDNS []string
	permittedIP, excludedIP   []*net.IPNet
}

// noDNSName is permitted when the hosts hold no DNS name, so that none is:
// the name constraints extension permits every name of a kind it lists
// nothing for. "invalid" is reserved (RFC 6761): no host is ever called
// that, or anything under it.
const noDNSName = "invalid"

// constraintsFor returns the name constraints that permit exactly hosts:
// each DNS name but not its subdomains (the name permitted, "." and the
// name excluded: a leading "." means subdomains only to Go, OpenSSL 3, NSS,
// SChannel and webpki), unless another of the hosts is one of them; each
// *.wildcard's subdomains; each IP address alone. A kind of name the hosts hold none of is shut out entirely (all
// IPv4 and IPv6 addresses excluded, or only noDNSName permitted).
func constraintsFor(hosts []string) (*constraints, error) {
	if len(hosts) == 0 {
		return nil, errors.New("pki: a constrained CA needs at least one host")
	}
	nc := &constraints{}
	var names []string
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if ip := net.ParseIP(h); ip != nil {
			bits := 128
			if ip4 := ip.To4(); ip4 != nil {
				ip, bits = ip4, 32
			}
			nc.permittedIP = append(nc.permittedIP, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		if h == "" || strings.Contains(strings.TrimPrefix(h, "*."), "*") {
			return nil, fmt.Errorf("pki: %q is not a host name a CA can be constrained to", h)
		}
		names = append(names, h)
	}
	for _, h := range names {
		if d, ok := strings.CutPrefix(h, "*."); ok {
			nc.permittedDNS = append(nc.permittedDNS, "."+d)
			continue
		}
		nc.permittedDNS = append(nc.permittedDNS, h)
		under := false
		for _, o := range names {
			under = under || strings.HasSuffix(strings.TrimPrefix(o, "*"), "."+h)
		}
		if !under {
			nc.excludedDNS = append(nc.excludedDNS, "."+h)
		}
	}
	if len(names) == 0 {
		nc.permittedDNS = []string{noDNSName}
	}
	if len(nc.permittedIP) == 0 {
		nc.excludedIP = []*net.IPNet{
			{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		}
	}
	nc.permittedDNS = sortedUniq(nc.permittedDNS)
	nc.excludedDNS = sortedUniq(nc.excludedDNS)
	slices.SortFunc(nc.permittedIP, func(a, b *net.IPNet) int { return strings.Compare(a.String(), b.String()) })
	nc.permittedIP = slices.CompactFunc(nc.permittedIP, func(a, b *net.IPNet) bool { return a.String() == b.String() })
	return nc, nil
}

// apply puts the constraints, critical, in a CA's template; nil leaves it
// unconstrained.
func (nc *constraints) apply(tmpl *x509.Certificate) {
	if nc == nil {
		return
	}
	tmpl.PermittedDNSDomainsCritical = true
	tmpl.PermittedDNSDomains = nc.permittedDNS
	tmpl.ExcludedDNSDomains = nc.excludedDNS
	tmpl.PermittedIPRanges = nc.permittedIP
	tmpl.ExcludedIPRanges = nc.excludedIP
}

// of reports whether cert carries exactly these constraints, critical, and
// no others; for nil (an unconstrained CA) it reports true whatever cert
// carries.
func (nc *constraints) of(cert *x509.Certificate) bool {
	if nc == nil {
		return true
	}
	return cert.PermittedDNSDomainsCritical &&
		slices.Equal(sortedUniq(cert.PermittedDNSDomains), nc.permittedDNS) &&
		slices.Equal(sortedUniq(cert.ExcludedDNSDomains), nc.excludedDNS) &&
		slices.Equal(netStrings(cert.PermittedIPRanges), netStrings(nc.permittedIP)) &&
		slices.Equal(netStrings(cert.ExcludedIPRanges), netStrings(nc.excludedIP)) &&
		len(cert.PermittedEmailAddresses)+len(cert.ExcludedEmailAddresses)+len(cert.PermittedURIDomains)+len(cert.ExcludedURIDomains) == 0
}

func sortedUniq(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

func netStrings(nets []*net.IPNet) []string {
	out := make([]string, len(nets))
	for i, n := range nets {
		out[i] = n.String()
	}
	slices.Sort(out)
	return out
}

// WriteFile writes b to path with mode 0600, atomically (a temporary file
// renamed over it), so a reader sees the old content or the new, never a
// part. It leaves the file as it was when the content is unchanged.
func WriteFile(path string, b []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return os.Chmod(path, 0o600)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".pki-")
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand does not fail on Linux; a fixed serial would still
		// give a valid (if less unique) certificate.
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}
