package egress

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Files of a proxy's credentials directory (written by jackin on the host,
// mounted read-only into the sidecar).
const (
	CredentialsFile = "credentials.json" // Credentials: the headers to set, by host
	TLSCertFile     = "tls.pem"          // a leaf for exactly the credential hosts
	TLSKeyFile      = "tls-key.pem"
	RootsFile       = "roots.pem" // the roots upstream servers are verified with
)

// Credentials are the headers a proxy sets on requests to some hosts.
type Credentials struct {
	Instance string           `json:"instance"`
	Hosts    []HostCredential `json:"hosts"`
}

// HostCredential is one header set on every request to Host. Value is the
// whole header value (the format applied): a secret, never logged.
type HostCredential struct {
	Name   string `json:"name"`
	Host   string `json:"host"`
	Header string `json:"header"`
	Value  string `json:"value"`
}

// injector is what the proxy needs to terminate TLS for credential hosts.
type injector struct {
	hosts map[string][]HostCredential // lower-case host -> headers
	cert  tls.Certificate
	tr    *http.Transport
}

// loadInjector reads a credentials directory (see CredentialsFile) and
// returns it with its raw content, to tell a change.
func (px *Proxy) loadInjector(dir string) (*injector, []byte, error) {
	raw, err := os.ReadFile(filepath.Join(dir, CredentialsFile))
	if err != nil {
		return nil, nil, err
	}
	var c Credentials
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, nil, fmt.Errorf("%s: not valid JSON", CredentialsFile) // never echo the content
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, TLSCertFile))
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, TLSKeyFile))
	if err != nil {
		return nil, nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("proxy TLS key pair: %w", err)
	}
	rootsPEM, err := os.ReadFile(filepath.Join(dir, RootsFile))
	if err != nil {
		return nil, nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootsPEM) // no roots: every upstream fails verification (closed)
	inj := &injector{hosts: map[string][]HostCredential{}, cert: cert}
	for _, h := range c.Hosts {
		k := normHost(h.Host)
		inj.hosts[k] = append(inj.hosts[k], h)
	}
	inj.tr = &http.Transport{
		DialContext:           func(ctx context.Context, _, addr string) (net.Conn, error) { return px.dial(ctx, addr) },
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 5 * time.Minute,
	}
	sum := append(append(append(raw, certPEM...), keyPEM...), rootsPEM...)
	return inj, sum, nil
}

func normHost(h string) string { return strings.ToLower(strings.TrimSuffix(h, ".")) }

// SetCredentialsDir loads a credentials directory now: the proxy then
// terminates TLS for its hosts and sets their headers.
func (px *Proxy) SetCredentialsDir(dir string) error {
	inj, _, err := px.loadInjector(dir)
	if err != nil {
		return err
	}
	px.injector.Store(inj)
	if old := px.prevTransport.Swap(inj.tr); old != nil {
		old.CloseIdleConnections()
	}
	return nil
}

// WatchCredentials reloads the credentials directory whenever its files
// change, checking every interval, until ctx ends, so a rotated value is
// used from the next request on. A directory that cannot be read keeps
// what is in force (reported through onError, without any content).
func (px *Proxy) WatchCredentials(ctx context.Context, dir string, interval time.Duration, onChange func(hosts int), onError func(error)) {
	var last []byte
	var lastErr string
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		inj, sum, err := px.loadInjector(dir)
		switch {
		case err != nil:
			if onError != nil && err.Error() != lastErr {
				onError(err)
			}
			lastErr = err.Error()
		case !bytes.Equal(sum, last):
			last, lastErr = sum, ""
			px.injector.Store(inj)
			if old := px.prevTransport.Swap(inj.tr); old != nil {
				old.CloseIdleConnections()
			}
			if onChange != nil {
				onChange(len(inj.hosts))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// intercepts reports whether CONNECTs to host are terminated here.
func (px *Proxy) intercepts(host string) bool {
	inj := px.injector.Load()
	return inj != nil && len(inj.hosts[normHost(host)]) > 0
}

// terminate serves a CONNECT to a credential host: the proxy is the TLS
// server (a leaf of the instance's CA, which the agent trusts, for exactly
// the credential hosts), sets the host's headers on every request, and
// sends it on to the real host over TLS verified with its roots. Every
// request is judged by the policy in force and logged, without values.
func (px *Proxy) terminate(w http.ResponseWriter, d Decision, host string, port int) {
	start := d.Time
	client, buf, ok := openTunnel(w)
	if !ok {
		return
	}
	defer client.Close()
	want := normHost(host)
	var sniErr string
	conf := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if normHost(h.ServerName) != want {
				sniErr = "TLS server name " + strconv.Quote(h.ServerName) + " differs from " + host
				return nil, errors.New(sniErr)
			}
			inj := px.injector.Load()
			if inj == nil {
				return nil, errors.New("no credentials in force")
			}
			return &inj.cert, nil
		},
	}
	_ = client.SetReadDeadline(time.Now().Add(helloTimeout))
	tc := tls.Server(withBuffered(client, buf.Reader), conf)
	if err := tc.Handshake(); err != nil {
		d.Rule = "TLS with the agent failed: " + err.Error()
		if sniErr != "" {
			d.Rule = sniErr
		}
		d.DurationMs = time.Since(start).Milliseconds()
		px.record(d)
		return
	}
	_ = client.SetReadDeadline(time.Time{})
	d.Allowed = true
	d.Rule += " (TLS terminated by the proxy: credentials set)"
	d.DurationMs = time.Since(start).Milliseconds()
	px.record(d)

	hostport := host
	if port != 443 {
		hostport = net.JoinHostPort(host, strconv.Itoa(port))
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "https", hostport, hostport
		},
		Transport: injectTransport{px: px, host: host, port: port},
		ErrorLog:  log.New(io.Discard, "", 0),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			var denied deniedError
			if errors.As(err, &denied) {
				http.Error(w, "jackin egress proxy: "+r.Method+" to "+hostport+" denied: "+string(denied), http.StatusForbidden)
				return
			}
			http.Error(w, "jackin egress proxy: "+err.Error(), http.StatusBadGateway)
		},
	}
	done := make(chan struct{})
	var closeOnce sync.Once
	// A handler that hijacks the connection (an upgrade) still uses it
	// until it returns: the tunnel ends then, not at the hijack.
	var handlers sync.WaitGroup
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			handlers.Add(1)
			defer handlers.Done()
			rp.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateClosed:
				closeOnce.Do(func() { close(done) })
			case http.StateHijacked:
				go func() {
					handlers.Wait()
					closeOnce.Do(func() { close(done) })
				}()
			}
		},
	}
	_ = srv.Serve(&oneConnListener{conn: tc, done: done})
	<-done
}

type deniedError string

func (e deniedError) Error() string { return string(e) }

// injectTransport sets the credential headers on each request (as in
// force when it is sent) after checking the policy, logs it, and sends it
// with the injector's transport.
type injectTransport struct {
	px   *Proxy
	host string
	port int
}

func (t injectTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	pol := t.px.Policy()
	d := Decision{Time: start, Instance: pol.Instance, Host: t.host, Port: t.port, Method: r.Method}
	allowed, rule := pol.Decide(t.host, t.port)
	d.Rule = rule
	inj := t.px.injector.Load()
	if !allowed || inj == nil || len(inj.hosts[normHost(t.host)]) == 0 {
		if allowed {
			d.Rule = "no credentials in force for " + t.host
		}
		t.px.record(d)
		return nil, deniedError(d.Rule)
	}
	var names []string
	for _, h := range inj.hosts[normHost(t.host)] {
		r.Header.Set(h.Header, h.Value)
		names = append(names, h.Name)
	}
	d.Rule += " (credential " + strings.Join(names, ", ") + " set by the proxy)"
	body := &countingReader{r: r.Body}
	if r.Body != nil {
		r.Body = body
	}
	resp, err := inj.tr.RoundTrip(r)
	d.Allowed = true
	d.BytesUp = body.n
	d.DurationMs = time.Since(start).Milliseconds()
	if err != nil {
		d.Error = err.Error()
		t.px.record(d)
		return nil, err
	}
	rec := &recordOnClose{ReadCloser: resp.Body, px: t.px, d: d, start: start}
	if rw, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		// An upgraded connection (WebSockets): the reverse proxy copies
		// both ways, so the body must stay writable.
		resp.Body = &recordOnCloseRW{recordOnClose: rec, w: rw}
		return resp, nil
	}
	resp.Body = rec
	return resp, nil
}

// recordOnCloseRW is a recordOnClose of an upgraded connection's body.
type recordOnCloseRW struct {
	*recordOnClose
	w io.Writer
}

func (r *recordOnCloseRW) Write(p []byte) (int, error) { return r.w.Write(p) }

// recordOnClose logs a request's decision once its response body is read.
type recordOnClose struct {
	io.ReadCloser
	px    *Proxy
	d     Decision
	start time.Time
	// n is atomic: an upgraded connection is closed while it is read.
	n    atomic.Int64
	once sync.Once
}

func (r *recordOnClose) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

func (r *recordOnClose) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(func() {
		r.d.BytesDown = r.n.Load()
		r.d.DurationMs = time.Since(r.start).Milliseconds()
		r.px.record(r.d)
	})
	return err
}

// oneConnListener hands out one connection, then waits until it is done.
type oneConnListener struct {
	conn net.Conn
	done chan struct{}
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.conn })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }
