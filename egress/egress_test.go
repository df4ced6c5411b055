package egress

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseEntryRejectsBadInput(t *testing.T) {
	for entry, want := range map[string]string{
		"":                    "empty host",
		"exa mple.com":        "not allowed in a host name",
		"api.*.github.com":    "wildcard is allowed only as the whole first label",
		"*github.com":         "wildcard is allowed only as the whole first label",
		"*.com":               "at least two labels",
		"-bad.example.com":    "cannot start or end",
		"example.com:0":       "from 1 to 65535",
		"example.com:70000":   "from 1 to 65535",
		"example.com:https":   "from 1 to 65535",
		"example.com:":        "from 1 to 65535",
		"a..example.com":      "1 to 63 characters",
		"under_score.example": "not allowed in a host name",
	} {
		if _, err := ParseEntry(entry); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseEntry(%q) = %v, want an error containing %q", entry, err, want)
		}
	}
	for _, ok := range []string{"api.github.com", "*.githubusercontent.com", "example.com:8443", "10.1.2.3", "[::1]:443", "Example.COM."} {
		if _, err := ParseEntry(ok); err != nil {
			t.Errorf("ParseEntry(%q): %v", ok, err)
		}
	}
}

func TestExpandPresets(t *testing.T) {
	rules, err := Expand([]string{"@agent", "@github", "example.com:8443", "api.github.com"}, rt("claude"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rules {
		got = append(got, r.String()+"<"+r.From)
	}
	joined := strings.Join(got, " ")
	for _, want := range []string{"api.anthropic.com<@agent", "*.githubusercontent.com<@github", "example.com:8443<example.com:8443"} {
		if !strings.Contains(joined, want) {
			t.Errorf("expansion %v lacks %s", got, want)
		}
	}
	if strings.Count(joined, "api.github.com<") != 1 {
		t.Errorf("duplicate kept: %v", got)
	}
	if _, err := Expand([]string{"@nope"}, rt("claude")); err == nil || !strings.Contains(err.Error(), "unknown preset") {
		t.Errorf("unknown preset: %v", err)
	}
}

func TestDecide(t *testing.T) {
	rules, err := Expand([]string{"*.example.com", "api.github.com", "db.internal:5432"}, rt("shell"))
	if err != nil {
		t.Fatal(err)
	}
	p := &Policy{Instance: "a", Rules: rules}
	for _, c := range []struct {
		host string
		port int
		ok   bool
	}{
		{"a.example.com", 443, true}, {"a.b.example.com", 80, true}, {"example.com", 443, false},
		{"evil-example.com", 443, false}, {"a.example.com", 22, false}, {"API.GitHub.com.", 443, true},
		{"db.internal", 5432, true}, {"db.internal", 443, false}, {"github.com", 443, false},
	} {
		if ok, rule := p.Decide(c.host, c.port); ok != c.ok {
			t.Errorf("Decide(%s, %d) = %v (%s), want %v", c.host, c.port, ok, rule, c.ok)
		}
	}
}

// proxyFor starts the proxy on a free port with rules for the given entries;
// every dial goes to the test server at target, whatever the name.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func (l *logBuf) decisions() []Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Decision
	for _, line := range strings.Split(l.b.String(), "\n") {
		if d, ok := ParseDecision(line); ok {
			out = append(out, d)
		}
	}
	return out
}

func startProxy(t *testing.T, allow []string, target string) (*Proxy, *url.URL, *logBuf) {
	t.Helper()
	rules, err := Expand(allow, rt("shell"))
	if err != nil {
		t.Fatal(err)
	}
	log := &logBuf{}
	px := NewProxy(&Policy{Instance: "a", Rules: rules}, log)
	px.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, target)
	}
	srv := httptest.NewServer(px)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return px, u, log
}

func TestProxyHTTPAndCONNECT(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello "+r.Host) }))
	defer up.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "plain "+r.Host) }))
	defer plain.Close()

	_, purl, log := startProxy(t, []string{"allowed.test"}, strings.TrimPrefix(up.URL, "https://"))
	tlsClient := &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyURL(purl),
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "allowed.test"},
	}}
	resp, err := tlsClient.Get("https://allowed.test/")
	if err != nil {
		t.Fatalf("allowed HTTPS through CONNECT: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "hello allowed.test") {
		t.Fatalf("body %q", body)
	}
	// A tunnel is logged when it closes, with its byte counts.
	tlsClient.CloseIdleConnections()
	for i := 0; i < 200 && len(log.decisions()) == 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}

	// Denied: a clear 403 naming the host and the instance.
	_, err = tlsClient.Get("https://denied.test/")
	if err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Fatalf("denied CONNECT: %v", err)
	}

	// SNI of another name through an allowed CONNECT: cut.
	sneaky := &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyURL(purl),
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "evil.test"},
	}}
	if _, err := sneaky.Get("https://allowed.test/"); err == nil {
		t.Fatal("a ClientHello for evil.test went through a CONNECT to allowed.test")
	}

	// Plain HTTP forwarding: allowed and denied.
	_, purl2, log2 := startProxy(t, []string{"allowed.test"}, strings.TrimPrefix(plain.URL, "http://"))
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(purl2)}}
	resp, err = hc.Get("http://allowed.test/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "plain allowed.test") {
		t.Fatalf("forwarded GET: %d %q", resp.StatusCode, body)
	}
	resp, err = hc.Get("http://denied.test/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "denied.test:80 denied for instance a") {
		t.Fatalf("denied GET: %d %q", resp.StatusCode, body)
	}

	ds := log.decisions()
	if len(ds) != 3 || !ds[0].Allowed || ds[0].Method != "CONNECT" || ds[0].BytesDown == 0 || ds[1].Allowed || ds[2].Allowed ||
		!strings.Contains(ds[2].Rule, "TLS server name evil.test") {
		t.Fatalf("decisions %+v", ds)
	}
	ds2 := log2.decisions()
	if len(ds2) != 2 || !ds2[0].Allowed || ds2[0].Method != "GET" || ds2[1].Allowed || !strings.Contains(ds2[1].Rule, "no rule allows denied.test:80") {
		t.Fatalf("decisions %+v", ds2)
	}
}

func TestServerFirstProtocolIsNotHeld(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			fmt.Fprint(c, "SSH-2.0-test\r\n")
			time.Sleep(100 * time.Millisecond)
			c.Close()
		}
	}()
	_, purl, _ := startProxy(t, []string{"git.test:22"}, ln.Addr().String())
	c, err := net.Dial("tcp", purl.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "CONNECT git.test:22 HTTP/1.1\r\nHost: git.test:22\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	banner, err := br.ReadString('\n')
	if err != nil || banner != "SSH-2.0-test\r\n" {
		t.Fatalf("the server's banner did not come through before the client spoke: %q %v", banner, err)
	}
}

func TestWatchPolicyReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	write := func(allow ...string) {
		rules, err := Expand(allow, rt("shell"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(Policy{Instance: "a", Rules: rules})
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("one.test")
	px := NewProxy(&Policy{Instance: "a"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan *Policy, 4)
	go px.WatchPolicy(ctx, path, 10*time.Millisecond, func(p *Policy) { changed <- p }, nil)
	<-changed
	if ok, _ := px.Policy().Decide("one.test", 443); !ok {
		t.Fatal("initial policy not loaded")
	}
	write("two.test")
	<-changed
	if ok, _ := px.Policy().Decide("one.test", 443); ok {
		t.Fatal("old rule still in force after reload")
	}
	if ok, _ := px.Policy().Decide("two.test", 443); !ok {
		t.Fatal("new rule not in force after reload")
	}
	// A broken file keeps the policy in force.
	if err := os.WriteFile(path, []byte("{broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if ok, _ := px.Policy().Decide("two.test", 443); !ok {
		t.Fatal("a broken policy file dropped the policy in force")
	}
}

func TestForward(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "agent") }))
	defer target.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = Forward(ctx, addr, strings.TrimPrefix(target.URL, "http://")) }()
	var body []byte
	for i := 0; i < 100; i++ {
		resp, err := http.Get("http://" + addr)
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if string(body) != "agent" {
		t.Fatalf("forwarded body %q", body)
	}
}

func TestServerNameCheckFailsClosed(t *testing.T) {
	rules, _ := Expand([]string{"allowed.test", "10.0.0.1"}, rt("shell"))
	p := &Policy{Instance: "a", Rules: rules}
	px := NewProxy(p, nil)
	for _, c := range []struct {
		host, sni string
		ok        bool
	}{
		{"allowed.test", "allowed.test", true},
		{"allowed.test", "ALLOWED.test.", true},
		{"allowed.test", "evil.test", false},
		{"allowed.test", "evil.test.", false},
		{"allowed.test", "", false}, // unreadable or absent name: could be any host
		{"10.0.0.1", "", true},      // an IP literal: clients send no name
	} {
		if why := px.checkServerName(p, c.host, c.sni, 443); (why == "") != c.ok {
			t.Errorf("CONNECT %s with server name %q: %q, want allowed=%v", c.host, c.sni, why, c.ok)
		}
	}
}
