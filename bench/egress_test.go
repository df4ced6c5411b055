package bench

import (
	"bufio"
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
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/egress"
	"github.com/jackin-dev/jackin/test/harness"
)

// The egress benchmarks run the proxy as the sidecar does (`jackin
// egress-proxy`, the real binary, as its own process) on loopback, without a
// container in between: what they measure is the proxy's own cost. The
// upstream is an in-process HTTPS server; direct and proxied runs
// alternate in the same run.

// egressProxy starts `jackin egress-proxy` allowing upstream and returns its
// address and process.
func egressProxy(b *testing.B, upstream *url.URL) (string, *exec.Cmd) {
	b.Helper()
	dir := b.TempDir()
	bin, err := harness.BuildJackin(dir)
	if err != nil {
		b.Fatal(err)
	}
	host, p, _ := net.SplitHostPort(upstream.Host)
	port, _ := strconv.Atoi(p)
	pol, _ := json.Marshal(egress.Policy{Instance: "bench", Rules: []egress.Rule{{Host: host, Port: port, From: host}}})
	policy := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policy, pol, 0o644); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "egress-proxy", "--policy", policy, "--listen", addr)
	cmd.Stdout = io.Discard // the decision lines are written, as in the sidecar
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		b.Fatal("the proxy did not start")
	}
	return addr, cmd
}

func upstreamServer(b *testing.B) *httptest.Server {
	b.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n, ok := strings.CutPrefix(r.URL.Path, "/bytes/"); ok {
			size, _ := strconv.ParseInt(n, 10, 64)
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
			buf := make([]byte, 256<<10)
			for size > 0 {
				k := min(size, int64(len(buf)))
				if _, err := w.Write(buf[:k]); err != nil {
					return
				}
				size -= k
			}
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	}))
	srv.EnableHTTP2 = false
	srv.StartTLS()
	b.Cleanup(srv.Close)
	return srv
}

func egressClient(proxy string, keepAlive bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 4} //nolint:gosec // a test server
	if proxy != "" {
		tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: proxy})
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

func getOnce(b *testing.B, c *http.Client, u string) int64 {
	resp, err := c.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
	}
	return n
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

// BenchmarkEgressSmallRequests: 1,000 small HTTPS requests, direct and
// through the proxy, alternating; each on a new connection (CONNECT, TLS
// handshake, request) and again over a kept-alive connection. Target: at
// most 2 ms added p50 latency per request.
func BenchmarkEgressSmallRequests(b *testing.B) {
	up := upstreamServer(b)
	u, _ := url.Parse(up.URL)
	proxy, _ := egressProxy(b, u)
	const n = 1000
	for _, keep := range []bool{false, true} {
		direct, via := egressClient("", keep), egressClient(proxy, keep)
		getOnce(b, direct, up.URL+"/")
		getOnce(b, via, up.URL+"/")
		var dd, pd []time.Duration
		for i := 0; i < n; i++ {
			t0 := time.Now()
			getOnce(b, direct, up.URL+"/")
			t1 := time.Now()
			getOnce(b, via, up.URL+"/")
			dd, pd = append(dd, t1.Sub(t0)), append(pd, time.Since(t1))
		}
		what := "new-conn"
		if keep {
			what = "keepalive"
		}
		added := pct(pd, 0.5) - pct(dd, 0.5)
		b.ReportMetric(float64(added.Microseconds())/1000, what+"-added-p50-ms")
		b.Logf("%d HTTPS requests (%s): direct p50 %v p95 %v; through the proxy p50 %v p95 %v; added p50 %v (target <= 2ms)",
			n, what, pct(dd, 0.5), pct(dd, 0.95), pct(pd, 0.5), pct(pd, 0.95), added)
	}
}

// BenchmarkEgressDownload: one 100 MB HTTPS download, direct and through
// the proxy (three of each, alternating; the best of each counts). Target:
// at most 10% throughput loss.
func BenchmarkEgressDownload(b *testing.B) {
	up := upstreamServer(b)
	u, _ := url.Parse(up.URL)
	proxy, _ := egressProxy(b, u)
	const size = 100 << 20
	target := up.URL + "/bytes/" + strconv.Itoa(size)
	best := func(c *http.Client) time.Duration {
		t0 := time.Now()
		if n := getOnce(b, c, target); n != size {
			b.Fatalf("got %d bytes", n)
		}
		return time.Since(t0)
	}
	var d, p time.Duration
	for i := 0; i < 3; i++ {
		if x := best(egressClient("", false)); d == 0 || x < d {
			d = x
		}
		if x := best(egressClient(proxy, false)); p == 0 || x < p {
			p = x
		}
	}
	mbps := func(t time.Duration) float64 { return float64(size) / (1 << 20) / t.Seconds() }
	ratio := mbps(p) / mbps(d)
	b.ReportMetric(mbps(d), "direct-MiB/s")
	b.ReportMetric(mbps(p), "proxy-MiB/s")
	b.ReportMetric(ratio, "throughput-ratio")
	b.Logf("100 MiB over HTTPS: direct %v (%.0f MiB/s), through the proxy %v (%.0f MiB/s): %.1f%% of direct (target >= 90%%)", d.Round(time.Millisecond), mbps(d), p.Round(time.Millisecond), mbps(p), ratio*100)
}

// BenchmarkEgressProxyMemory: the proxy process's resident memory idle and
// with 100 concurrent HTTPS connections open through it, each downloading
// slowly.
func BenchmarkEgressProxyMemory(b *testing.B) {
	up := upstreamServer(b)
	u, _ := url.Parse(up.URL)
	proxy, cmd := egressProxy(b, u)
	rss := func() int64 {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				return kb << 10
			}
		}
		return 0
	}
	idle := rss()
	const conns = 100
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var opened sync.WaitGroup
	opened.Add(conns)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := egressClient(proxy, false)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, up.URL+"/bytes/"+strconv.Itoa(1<<30), nil)
			resp, err := c.Do(req)
			if err != nil {
				opened.Done()
				return
			}
			defer resp.Body.Close()
			buf := make([]byte, 4096)
			_, _ = io.ReadFull(resp.Body, buf)
			opened.Done()
			for ctx.Err() == nil {
				if _, err := resp.Body.Read(buf); err != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	opened.Wait()
	time.Sleep(500 * time.Millisecond)
	var peak int64
	for i := 0; i < 10; i++ {
		peak = max(peak, rss())
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	b.ReportMetric(float64(idle)/(1<<20), "idle-RSS-MiB")
	b.ReportMetric(float64(peak)/(1<<20), "100conn-RSS-MiB")
	b.Logf("proxy RSS: idle %.1f MiB, with %d concurrent HTTPS connections %.1f MiB", float64(idle)/(1<<20), conns, float64(peak)/(1<<20))
}
