package egress

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Decision is one connection attempt and what the policy said, as the proxy
// logs it (one JSON line each) and the store keeps it.
type Decision struct {
	Time       time.Time `json:"time"`
	Instance   string    `json:"instance"`
	Host       string    `json:"host"`
	Port       int       `json:"port"`
	Method     string    `json:"method"`
	Allowed    bool      `json:"allowed"`
	Rule       string    `json:"rule"`
	BytesUp    int64     `json:"bytesUp"`
	BytesDown  int64     `json:"bytesDown"`
	DurationMs int64     `json:"durationMs"`
	Error      string    `json:"error,omitempty"`
}

// DecisionMarker starts every decision line, so a reader can tell them from
// other output of the proxy container.
const DecisionMarker = `{"jackinEgress":1,`

// Proxy is an HTTP forward proxy (absolute-form requests and CONNECT) that
// lets through only what its policy allows, and logs every decision.
type Proxy struct {
	policy atomic.Pointer[Policy]
	// Upstream, when set, is a corporate HTTP proxy every allowed
	// connection goes through.
	Upstream *url.URL
	// Dial opens upstream connections; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	logMu sync.Mutex
	log   io.Writer
	tr    *http.Transport

	// injector (nil without proxy-delivered credentials) terminates TLS
	// for the credential hosts and sets their headers.
	injector      atomic.Pointer[injector]
	prevTransport atomic.Pointer[http.Transport]
}

// NewProxy returns a proxy enforcing p and logging decisions to log.
func NewProxy(p *Policy, log io.Writer) *Proxy {
	px := &Proxy{log: log}
	px.SetPolicy(p)
	return px
}

// SetPolicy replaces the policy; connections already open keep going.
func (px *Proxy) SetPolicy(p *Policy) { px.policy.Store(p) }

// Policy returns the policy in force.
func (px *Proxy) Policy() *Policy { return px.policy.Load() }

func (px *Proxy) dial(ctx context.Context, addr string) (net.Conn, error) {
	if px.Upstream != nil {
		return px.dialViaUpstream(ctx, addr)
	}
	if px.Dial != nil {
		return px.Dial(ctx, "tcp", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// dialViaUpstream opens a tunnel to addr through the upstream proxy.
func (px *Proxy) dialViaUpstream(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", px.Upstream.Host)
	if err != nil {
		return nil, fmt.Errorf("upstream proxy %s: %w", px.Upstream.Host, err)
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", addr, addr)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("upstream proxy %s: %w", px.Upstream.Host, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, fmt.Errorf("upstream proxy %s refused CONNECT %s: %s", px.Upstream.Host, addr, resp.Status)
	}
	return withBuffered(c, br), nil
}

// ServeHTTP handles CONNECT tunnels and absolute-form HTTP requests.
func (px *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodConnect:
		px.connect(w, r)
	case r.URL.IsAbs() && r.URL.Host != "":
		px.forward(w, r)
	default:
		http.Error(w, "jackin egress proxy: send proxy requests (set HTTP_PROXY/HTTPS_PROXY)", http.StatusBadRequest)
	}
}

func splitHostPort(hostport string, defPort int) (string, int, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return hostport, defPort, nil
		}
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return host, port, nil
}

func (px *Proxy) deny(w http.ResponseWriter, d Decision) {
	px.record(d)
	msg := fmt.Sprintf("jackin egress proxy: %s to %s:%d denied for instance %s: %s\n", d.Method, d.Host, d.Port, d.Instance, d.Rule)
	http.Error(w, msg, http.StatusForbidden)
}

// admit checks hostport against the policy, filling in d; a request that is
// not allowed is answered (403) and logged here.
func (px *Proxy) admit(w http.ResponseWriter, d *Decision, pol *Policy, hostport string, defPort int) (string, int, bool) {
	host, port, err := splitHostPort(hostport, defPort)
	if err != nil {
		d.Host, d.Rule = hostport, "malformed destination "+strconv.Quote(hostport)
		px.deny(w, *d)
		return "", 0, false
	}
	d.Host, d.Port = host, port
	allowed, rule := pol.Decide(host, port)
	d.Rule = rule
	if !allowed {
		px.deny(w, *d)
		return "", 0, false
	}
	return host, port, true
}

func (px *Proxy) connect(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	pol := px.Policy()
	d := Decision{Time: start, Instance: pol.Instance, Method: http.MethodConnect}
	host, port, ok := px.admit(w, &d, pol, r.Host, 443)
	if !ok {
		return
	}
	// Only the host's HTTPS port: the credential is for that service, not
	// for whatever else the allowlist lets through on another port.
	if port == 443 && px.intercepts(host) {
		px.terminate(w, d, host, port)
		return
	}
	up, err := px.dial(r.Context(), net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		d.Allowed, d.Error = true, err.Error()
		px.record(d)
		http.Error(w, "jackin egress proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer up.Close()
	client, buf, ok := openTunnel(w)
	if !ok {
		return
	}
	defer client.Close()
	// The server's bytes flow at once (protocols where the server speaks
	// first must not wait); the client's first bytes are checked: for TLS,
	// the name in the ClientHello must be allowed too, so a CONNECT to an
	// allowed name cannot carry a session to another one.
	var down int64
	downDone := make(chan struct{})
	go func() {
		defer close(downDone)
		down, _ = io.Copy(client, up)
		_ = client.SetReadDeadline(time.Now()) // the server is done: stop reading the client
	}()
	in := io.Reader(buf.Reader)
	// A client gets helloTimeout to send its first bytes: none must hold a
	// tunnel (and a goroutine) open without saying where it goes.
	_ = client.SetReadDeadline(time.Now().Add(helloTimeout))
	sni, head, isTLS := peekSNI(buf.Reader)
	_ = client.SetReadDeadline(time.Time{})
	if isTLS || len(head) > 0 {
		in = io.MultiReader(bytes.NewReader(head), buf.Reader)
	}
	if isTLS {
		if why := px.checkServerName(pol, host, sni, port); why != "" {
			up.Close()
			<-downDone
			d.Rule = why
			d.DurationMs = time.Since(start).Milliseconds()
			px.record(d)
			return
		}
	}
	d.Allowed = true
	d.BytesUp, _ = io.Copy(up, in)
	if cw, ok := up.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	<-downDone
	d.BytesDown = down
	d.DurationMs = time.Since(start).Milliseconds()
	px.record(d)
}

// pipe copies both ways until either side is done and returns the bytes
// sent up (client to server) and down.
func pipe(client net.Conn, fromClient io.Reader, server net.Conn) (up, down int64) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		up, _ = io.Copy(server, fromClient)
		if cw, ok := server.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	down, _ = io.Copy(client, server)
	_ = client.SetReadDeadline(time.Now())
	wg.Wait()
	return up, down
}

// helloTimeout bounds the wait for a tunnel's first bytes.
const helloTimeout = 10 * time.Second

// checkServerName says why a TLS ClientHello may not go through a tunnel to
// host, or "" when it may. The name must be the tunnel's host or allowed
// itself. A hello whose name cannot be read (malformed, several names, a
// parser that refuses it) is refused unless the tunnel's host is an IP
// address, where clients send no name: it could name any host.
func (px *Proxy) checkServerName(pol *Policy, host, sni string, port int) string {
	name := strings.ToLower(strings.TrimSuffix(sni, "."))
	if name == "" {
		if net.ParseIP(host) != nil {
			return ""
		}
		return "TLS ClientHello to " + host + " without a readable server name"
	}
	if name == strings.ToLower(strings.TrimSuffix(host, ".")) {
		return ""
	}
	if ok, why := pol.Decide(name, port); !ok {
		return "TLS server name " + name + " differs from " + host + ": " + why
	}
	return ""
}

// peekSNI reads a TLS ClientHello from r, if the stream starts with one, and
// returns the server name and the bytes read (to replay upstream).
func peekSNI(r *bufio.Reader) (sni string, head []byte, isTLS bool) {
	first, err := r.Peek(1)
	if err != nil || first[0] != 0x16 { // not a TLS handshake record
		return "", nil, false
	}
	rec := &recordingReader{r: r}
	var name string
	errStop := errors.New("stop")
	_ = tls.Server(readOnlyConn{rec}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			name = h.ServerName
			return nil, errStop
		},
	}).Handshake()
	return name, rec.buf.Bytes(), true
}

// recordingReader keeps what it reads.
type recordingReader struct {
	r   io.Reader
	buf bytes.Buffer
}

func (rr *recordingReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	rr.buf.Write(p[:n])
	return n, err
}

// readOnlyConn lets crypto/tls read a ClientHello and drops its writes.
type readOnlyConn struct{ r io.Reader }

func (c readOnlyConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c readOnlyConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c readOnlyConn) Close() error                     { return nil }
func (c readOnlyConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c readOnlyConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c readOnlyConn) SetDeadline(time.Time) error      { return nil }
func (c readOnlyConn) SetReadDeadline(time.Time) error  { return nil }
func (c readOnlyConn) SetWriteDeadline(time.Time) error { return nil }

// hopHeaders are not forwarded (RFC 9110 section 7.6.1).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func (px *Proxy) transport() *http.Transport {
	px.logMu.Lock()
	defer px.logMu.Unlock()
	if px.tr == nil {
		px.tr = &http.Transport{
			DialContext:         func(ctx context.Context, _, addr string) (net.Conn, error) { return px.dial(ctx, addr) },
			MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
		}
	}
	return px.tr
}

func (px *Proxy) forward(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	pol := px.Policy()
	d := Decision{Time: start, Instance: pol.Instance, Method: r.Method}
	if r.URL.Scheme != "http" {
		d.Host, d.Rule = r.URL.Host, "only http:// is forwarded; use CONNECT (HTTPS_PROXY) for "+r.URL.Scheme
		px.deny(w, d)
		return
	}
	if _, _, ok := px.admit(w, &d, pol, r.URL.Host, 80); !ok {
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	body := &countingReader{r: r.Body}
	out.Body = body
	resp, err := px.transport().RoundTrip(out)
	if err != nil {
		d.Allowed, d.Error = true, err.Error()
		d.DurationMs = time.Since(start).Milliseconds()
		px.record(d)
		http.Error(w, "jackin egress proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for _, h := range hopHeaders {
		resp.Header.Del(h)
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	n, _ := io.Copy(w, resp.Body)
	d.Allowed, d.BytesUp, d.BytesDown = true, body.n, n
	d.DurationMs = time.Since(start).Milliseconds()
	px.record(d)
}

type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.r == nil {
		return 0, io.EOF
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error {
	if c.r == nil {
		return nil
	}
	return c.r.Close()
}

// record writes a decision as one JSON line.
func (px *Proxy) record(d Decision) {
	if px.log == nil {
		return
	}
	b, err := json.Marshal(d)
	if err != nil {
		return
	}
	px.logMu.Lock()
	defer px.logMu.Unlock()
	fmt.Fprintf(px.log, "%s%s\n", DecisionMarker, b[1:])
}

// ParseDecision reads a decision line written by the proxy; ok is false for
// any other line.
func ParseDecision(line string) (Decision, bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(line), DecisionMarker)
	if !found {
		return Decision{}, false
	}
	var d Decision
	if err := json.Unmarshal([]byte("{"+rest), &d); err != nil {
		return Decision{}, false
	}
	return d, true
}

// prefixedConn reads buffered bytes before the connection's own.
// openTunnel takes over a CONNECT's connection and tells the client the
// tunnel is open. ok is false when there is nothing to serve (the
// connection cannot be taken over, or the client is gone); the caller
// closes the connection otherwise.
func openTunnel(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, bool) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "jackin egress proxy: cannot tunnel", http.StatusInternalServerError)
		return nil, nil, false
	}
	client, buf, err := hj.Hijack()
	if err != nil {
		return nil, nil, false
	}
	if _, err := client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		client.Close()
		return nil, nil, false
	}
	return client, buf, true
}

type prefixedConn struct {
	net.Conn
	prefix io.Reader
}

// withBuffered is c with the bytes br has already read from it in front.
// Only those bytes: br reads on from c itself, where deadlines and errors
// must reach the reader unchanged (an HTTP server aborts a read with a
// deadline when a handler hijacks the connection).
func withBuffered(c net.Conn, br *bufio.Reader) net.Conn {
	n := br.Buffered()
	if n == 0 {
		return c
	}
	b, _ := br.Peek(n)
	return &prefixedConn{Conn: c, prefix: bytes.NewReader(bytes.Clone(b))}
}

func (c *prefixedConn) Read(p []byte) (int, error) {
	if c.prefix != nil {
		n, err := c.prefix.Read(p)
		if n > 0 {
			return n, nil
		}
		if !errors.Is(err, io.EOF) {
			return 0, err
		}
		c.prefix = nil
	}
	return c.Conn.Read(p)
}

// LoadPolicy reads a policy file.
func LoadPolicy(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p Policy
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return &p, nil
}

// WatchPolicy reloads the policy from path whenever its contents change,
// checking every interval, until ctx ends. A file that cannot be read or
// parsed keeps the policy in force (and is reported through onError).
func (px *Proxy) WatchPolicy(ctx context.Context, path string, interval time.Duration, onChange func(*Policy), onError func(error)) {
	var last []byte
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil && !bytes.Equal(b, last) {
			var p Policy
			if err := json.Unmarshal(b, &p); err != nil {
				if onError != nil {
					onError(fmt.Errorf("policy %s: %w", path, err))
				}
			} else {
				last = b
				px.SetPolicy(&p)
				if onChange != nil {
					onChange(&p)
				}
			}
		} else if err != nil && onError != nil && !errors.Is(err, os.ErrNotExist) {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
