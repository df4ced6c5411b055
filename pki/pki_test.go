package pki

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func TestCAIssuesLeavesThatVerifyAndKeepsFilesPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := LoadOrCreate(dir, "jackin test")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Ensure("server", Server, "dind", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ca.Ensure("client", Client, "agent")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	for _, c := range []struct {
		leaf  Leaf
		usage x509.ExtKeyUsage
		name  string
	}{{srv, x509.ExtKeyUsageServerAuth, "dind"}, {cli, x509.ExtKeyUsageClientAuth, ""}} {
		pair, err := tls.LoadX509KeyPair(c.leaf.CertFile, c.leaf.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(pair.Certificate[0])
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: c.name, KeyUsages: []x509.ExtKeyUsage{c.usage}}); err != nil {
			t.Errorf("%s does not verify: %v", c.leaf.CertFile, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 6 {
		t.Errorf("files: %v", entries)
	}
	for _, e := range entries {
		fi, _ := e.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v", fi.Mode().Perm())
	}

	// Reopening keeps the CA and the leaves; new names reissue.
	before, _ := os.ReadFile(srv.CertFile)
	ca2, err := LoadOrCreate(dir, "jackin test")
	if err != nil {
		t.Fatal(err)
	}
	if !ca2.Cert.Equal(ca.Cert) {
		t.Error("CA replaced on reopen")
	}
	if _, err := ca2.Ensure("server", Server, "127.0.0.1", "dind"); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(srv.CertFile); string(after) != string(before) {
		t.Error("unchanged leaf reissued")
	}
	if _, err := ca2.Ensure("server", Server, "dind2"); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(srv.CertFile); string(after) == string(before) {
		t.Error("leaf for new hosts not reissued")
	}

	// A key that does not match its certificate (a crash between the two
	// writes) is reissued.
	otherKey, _ := other0(t).Ensure("x", Client, "x")
	kb, _ := os.ReadFile(otherKey.KeyFile)
	if err := WriteFile(srv.KeyFile, kb); err != nil {
		t.Fatal(err)
	}
	if ca2.current(srv, Server, []string{"dind2"}) {
		t.Error("a mismatched key pair counted as current")
	}
	if _, err := ca2.Ensure("server", Server, "dind2"); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(srv.CertFile, srv.KeyFile); err != nil {
		t.Errorf("not reissued: %v", err)
	}

	// A leaf of another CA is replaced.
	other, _ := LoadOrCreate(filepath.Join(t.TempDir(), "other"), "other")
	l, _ := other.Ensure("server", Server, "dind2")
	b, _ := os.ReadFile(l.CertFile)
	if err := WriteFile(srv.CertFile, b); err != nil {
		t.Fatal(err)
	}
	if ca2.current(srv, Server, []string{"dind2"}) {
		t.Error("a leaf of another CA counted as current")
	}
}

func other0(t *testing.T) *CA {
	ca, err := LoadOrCreate(filepath.Join(t.TempDir(), "o"), "o")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}
