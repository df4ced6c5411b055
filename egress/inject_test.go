package egress

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackin-dev/jackin/pki"
)

const injectCanary = "jkcanaryPROXY0123456789"

// injectSetup runs one TLS upstream (serving api.test and other.test with
// a certificate of its own CA) behind a proxy that holds a credential for
// api.test. It returns an agent-side client trusting the proxy's CA (and,
// for the pass-through host, the upstream's), the credentials directory,
// what the upstream saw, and the proxy's log.
func injectSetup(t *testing.T, extraAllow ...string) (*http.Client, *Proxy, string, func() []string, *logBuf) {
	t.Helper()
	upCA, err := pki.LoadOrCreate(t.TempDir(), "upstream CA")
	if err != nil {
		t.Fatal(err)
	}
	upLeaf, err := upCA.Ensure("up", pki.Server, "api.test", "other.test")
	if err != nil {
		t.Fatal(err)
	}
	upCert, err := tls.LoadX509KeyPair(upLeaf.CertFile, upLeaf.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Host+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		if r.Header.Get("Upgrade") == "echo" {
			// A protocol upgrade (as WebSockets do): then echo lines.
			conn, brw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			_ = brw.Flush()
			for {
				line, err := brw.ReadString('\n')
				if err != nil {
					return
				}
				_, _ = brw.WriteString("echo " + line)
				_ = brw.Flush()
			}
		}
		fmt.Fprint(w, "ok")
	}))
	up.TLS = &tls.Config{Certificates: []tls.Certificate{upCert}}
	up.StartTLS()
	t.Cleanup(up.Close)

	px, pu, log := startProxy(t, append([]string{"api.test", "other.test"}, extraAllow...), up.Listener.Addr().String())
	agentCA, err := pki.LoadOrCreate(t.TempDir(), "agent CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := agentCA.Ensure("proxy-tls", pki.Server, "api.test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPEM, _ := os.ReadFile(leaf.CertFile)
	keyPEM, _ := os.ReadFile(leaf.KeyFile)
	writeCreds(t, dir, "Bearer "+injectCanary)
	for n, b := range map[string][]byte{TLSCertFile: certPEM, TLSKeyFile: keyPEM, RootsFile: upCA.CertPEM} {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := px.SetCredentialsDir(dir); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(agentCA.CertPEM)
	roots.AppendCertsFromPEM(upCA.CertPEM)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: roots}}}
	return client, px, dir, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }, log
}

func writeCreds(t *testing.T, dir, value string) {
	t.Helper()
	b, _ := json.Marshal(Credentials{Instance: "a", Hosts: []HostCredential{{Name: "API_TOKEN", Host: "api.test", Header: "Authorization", Value: value}}})
	if err := os.WriteFile(filepath.Join(dir, CredentialsFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, c *http.Client, url, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The proxy terminates TLS for the credential host only, sets the header
// there (over the agent's placeholder), and leaves other hosts end to end.
func TestProxyInjectsCredentialForItsHostOnly(t *testing.T) {
	client, px, dir, seen, log := injectSetup(t)
	if code, body := get(t, client, "https://api.test/v1", "Bearer jackin-placeholder"); code != 200 {
		t.Fatalf("api.test: %d %s", code, body)
	}
	if code, body := get(t, client, "https://other.test/", "Bearer jackin-placeholder"); code != 200 {
		t.Fatalf("other.test: %d %s", code, body)
	}
	got := seen()
	if len(got) != 2 || got[0] != "api.test Bearer "+injectCanary || got[1] != "other.test Bearer jackin-placeholder" {
		t.Fatalf("upstream saw %q", got)
	}
	// Rotation: a new value from the next request on, no restart.
	writeCreds(t, dir, "Bearer "+injectCanary+"-2")
	if err := px.SetCredentialsDir(dir); err != nil {
		t.Fatal(err)
	}
	client.CloseIdleConnections()
	get(t, client, "https://api.test/v1", "")
	if got := seen(); got[len(got)-1] != "api.test Bearer "+injectCanary+"-2" {
		t.Fatalf("after rotation the upstream saw %q", got[len(got)-1])
	}
	if strings.Contains(log.String(), injectCanary) {
		t.Fatalf("the proxy logged the value:\n%s", log.String())
	}
	var injected bool
	for _, d := range log.decisions() {
		if d.Host == "api.test" && d.Method == http.MethodGet && strings.Contains(d.Rule, "credential API_TOKEN set by the proxy") {
			injected = true
		}
	}
	if !injected {
		t.Fatalf("no logged decision says the credential was set:\n%s", log.String())
	}
}

// A TLS session whose server name is not the credential host is refused,
// and an upstream the roots do not vouch for gets nothing.
func TestProxyInjectionFailsClosed(t *testing.T) {
	client, px, dir, seen, _ := injectSetup(t)
	tr := client.Transport.(*http.Transport)
	// CONNECT api.test, then a hello for other.test (from a client that
	// verifies nothing): the proxy refuses the handshake itself.
	tr.TLSClientConfig.ServerName, tr.TLSClientConfig.InsecureSkipVerify = "other.test", true
	if code, _ := get(t, client, "https://api.test/", ""); code == 200 {
		t.Fatal("a hello for another name was served")
	}
	tr.TLSClientConfig.ServerName, tr.TLSClientConfig.InsecureSkipVerify = "", false
	client.CloseIdleConnections()
	if err := os.WriteFile(filepath.Join(dir, RootsFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := px.SetCredentialsDir(dir); err != nil {
		t.Fatal(err)
	}
	client.CloseIdleConnections()
	if code, _ := get(t, client, "https://api.test/", ""); code != http.StatusBadGateway {
		t.Fatalf("an unverified upstream: %d, want 502", code)
	}
	if got := seen(); len(got) != 0 {
		t.Fatalf("the upstream was reached: %q", got)
	}
}

// The credential goes only to its host's HTTPS port: a CONNECT to another
// allowed port of the same host passes through untouched.
func TestProxyInjectsOnlyOnPort443(t *testing.T) {
	client, _, _, seen, _ := injectSetup(t, "api.test:8443")
	if code, body := get(t, client, "https://api.test:8443/x", "Bearer jackin-placeholder"); code != 200 {
		t.Fatalf("api.test:8443: %d %s", code, body)
	}
	for _, s := range seen() {
		if strings.Contains(s, injectCanary) {
			t.Fatalf("the credential reached port 8443: %q", s)
		}
	}
}

// A protocol upgrade to a credential host (WebSockets) gets the header on
// its request and then stays open both ways.
func TestProxyKeepsUpgradedConnectionsOpen(t *testing.T) {
	client, _, _, seen, _ := injectSetup(t)
	req, _ := http.NewRequest(http.MethodGet, "https://api.test/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("the upgraded body is not writable: %T", resp.Body)
	}
	br := bufio.NewReader(rwc)
	for _, msg := range []string{"one", "two"} {
		if _, err := io.WriteString(rwc, msg+"\n"); err != nil {
			t.Fatalf("write %s: %v", msg, err)
		}
		line, err := br.ReadString('\n')
		if err != nil || line != "echo "+msg+"\n" {
			t.Fatalf("read after %s: %q %v", msg, line, err)
		}
	}
	if got := seen(); len(got) != 1 || got[0] != "api.test Bearer "+injectCanary {
		t.Errorf("upstream saw %q", got)
	}
}
