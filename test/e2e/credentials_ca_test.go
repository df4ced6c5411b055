package e2e

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/pki"
	"github.com/jackin-dev/jackin/test/harness"
)

// TestCredentialProxyCAIsConstrainedToItsHosts: the egress CA the agent
// trusts can sign for the proxy hosts only; a new proxy host on a live
// instance reissues it and recreates the agent, which then reaches both
// hosts with their credentials; and an unconstrained CA left by an older
// jackin is reissued by the next apply, which a running agent (not
// recreated) trusts at once, its system bundle included.
func TestCredentialProxyCAIsConstrainedToItsHosts(t *testing.T) {
	e := newEnv(t)
	credImage(t)
	f := newCredFixture(t, e)
	manifest := func(hosts ...string) string {
		var creds []string
		for i, h := range hosts {
			creds = append(creds, fmt.Sprintf(`TOKEN_%d: {from: {env: "CRED_PROXY_SOURCE"}, deliver: proxy: {host: %q, placeholder: "TOKEN_%d"}}`, i, h, i))
		}
		return e.manifest(fmt.Sprintf(`defaults: role: image: %q
instances: proxied: {
	network: {egress: "allowlist", allow: ["api.cred.test", "other.cred.test"], egressNetwork: %q}
	credentials: {
		%s
	}
}`, harness.CredImage, f.network, strings.Join(creds, "\n\t\t")))
	}
	apply := func(path string) {
		t.Helper()
		mustCode(t, e.jackinEnv(f.env(1), "apply", "-f", path), 0, "apply")
		e.waitState("proxied", "running", 30*time.Second)
	}
	proxied := e.name("proxied")
	// reaches checks that a request from the agent to host gets the
	// credential set by the proxy (TLS verified by the agent against the
	// roots it was given).
	reaches := func(host, placeholder string) {
		t.Helper()
		var got string
		if !eventually(20*time.Second, func() bool {
			got, _ = execDocker("exec", proxied, "/credtest", "get", "-auth", placeholder, "https://"+host+"/")
			return strings.Contains(got, "auth="+sha("Bearer "+f.value("proxy", 1)))
		}) {
			t.Fatalf("a request to %s through the proxy does not get the credential: %s", host, got)
		}
	}
	agentCA := func() (*x509.Certificate, string) {
		t.Helper()
		text := execOut(t, proxied, "cat", "/run/jackin-ca/ca.pem")
		b, _ := pem.Decode([]byte(text))
		if b == nil {
			t.Fatalf("/run/jackin-ca/ca.pem is not PEM: %q", text)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c, strings.TrimSpace(text)
	}
	permits := func(ca *x509.Certificate, hosts ...string) {
		t.Helper()
		if !ca.PermittedDNSDomainsCritical || !slices.Equal(ca.PermittedDNSDomains, hosts) || len(ca.ExcludedIPRanges) == 0 {
			t.Fatalf("the agent's CA permits %q (critical %v, excluded IPs %v), want exactly %q", ca.PermittedDNSDomains, ca.PermittedDNSDomainsCritical, ca.ExcludedIPRanges, hosts)
		}
	}

	apply(manifest("api.cred.test"))
	reaches("api.cred.test", "TOKEN_0")
	ca1, _ := agentCA()
	permits(ca1, "api.cred.test")

	// A second proxy host: the CA is reissued for both, the agent
	// recreated to trust it.
	id := containerID(t, proxied)
	apply(manifest("api.cred.test", "other.cred.test"))
	if containerID(t, proxied) == id {
		t.Fatal("a new proxy host did not recreate the agent")
	}
	reaches("api.cred.test", "TOKEN_0")
	reaches("other.cred.test", "TOKEN_1")
	ca2, _ := agentCA()
	if ca2.Equal(ca1) {
		t.Fatal("the CA was not reissued for the new host")
	}
	permits(ca2, "api.cred.test", "other.cred.test")

	// An older jackin's CA (no name constraints) in the state dir: the
	// next apply reissues it; the running agent is not recreated and
	// trusts the new CA at once, through every file it was given.
	caDir := filepath.Join(e.stateDir, "pki", e.fleet, "proxied", "egress")
	if err := os.RemoveAll(caDir); err != nil {
		t.Fatal(err)
	}
	old, err := pki.LoadOrCreate(caDir, "jackin egress CA (older jackin)")
	if err != nil {
		t.Fatal(err)
	}
	id = containerID(t, proxied)
	apply(manifest("api.cred.test", "other.cred.test"))
	if containerID(t, proxied) != id {
		t.Error("reissuing the CA recreated the agent")
	}
	ca3, text := agentCA()
	if ca3.Equal(old.Cert) || ca3.Equal(ca2) {
		t.Fatal("the unconstrained CA was not reissued")
	}
	permits(ca3, "api.cred.test", "other.cred.test")
	for _, p := range []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"} {
		if got := execOut(t, proxied, "cat", p); !strings.Contains(got, text) {
			t.Errorf("the running agent's %s lacks the reissued CA", p)
		}
	}
	reaches("api.cred.test", "TOKEN_0")
	reaches("other.cred.test", "TOKEN_1")
}
