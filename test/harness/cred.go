package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// CredImage is the credential tests' agent and upstream (test/harness/credtest),
// under a tag of its own.
const CredImage = "jackin-e2e-cred:v1"

// BuildCredImage builds CredImage, using dir as scratch space.
func BuildCredImage(dir string) error {
	ctxDir := filepath.Join(dir, "cred-image")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		return err
	}
	if err := GoBuild(filepath.Join(ctxDir, "credtest"), "./test/harness/credtest"); err != nil {
		return err
	}
	df := "FROM scratch\nCOPY credtest /credtest\nENTRYPOINT [\"/credtest\"]\nCMD [\"idle\"]\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("docker", "build", "-q", "-t", CredImage, ctxDir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker build %s: %v\n%s", CredImage, err, b)
	}
	return nil
}

// TestCA writes a CA (ca.pem) and a server certificate for names
// (cert.pem, key.pem) signed by it into dir.
func TestCA(dir string, names ...string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "jackin e2e test upstream CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.pem":   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}),
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// StartCredUpstreams creates network (labelled with label) and one
// CredImage upstream per name, serving certDir's cert.pem for it.
func StartCredUpstreams(network, label, certDir string, names ...string) error {
	if out, err := exec.Command("docker", "network", "create", "--label", label, network).CombinedOutput(); err != nil {
		return fmt.Errorf("docker network create %s: %v: %s", network, err, out)
	}
	for _, n := range names {
		cname := network + "-" + n
		out, err := exec.Command("docker", "run", "-d", "--name", cname, "--label", label, "--network", network,
			"--network-alias", n, "-v", certDir+":/certs:ro", CredImage, "upstream", n).CombinedOutput()
		if err != nil {
			return fmt.Errorf("docker run %s: %v: %s", cname, err, out)
		}
	}
	return nil
}
