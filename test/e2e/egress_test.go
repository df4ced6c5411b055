package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/test/harness"
)

var (
	egressImagesOnce sync.Once
	egressImagesErr  error
)

// egressImages builds the egress tests' own agent image (with the network
// probes) and the test internet's upstream image, once.
func egressImages(t *testing.T) {
	t.Helper()
	egressImagesOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jackin-e2e-egress-")
		if err != nil {
			egressImagesErr = err
			return
		}
		defer os.RemoveAll(dir)
		if egressImagesErr = harness.BuildEgressAgentImage(dir); egressImagesErr == nil {
			egressImagesErr = harness.BuildUpstreamImage(dir)
		}
	})
	if egressImagesErr != nil {
		t.Fatalf("build egress test images: %v", egressImagesErr)
	}
}

// testInternet starts the test internet for e: a network holding the
// upstreams allowed.test and denied.test, removed when the test ends.
func testInternet(t *testing.T, e *env) *harness.TestInternet {
	t.Helper()
	label := "jackin.e2e.egress=" + e.fleet
	t.Cleanup(func() {
		// The fleet's proxies are attached to the test internet: remove
		// them first (the env's own cleanup runs after this one).
		harness.RemoveFleetObjects(e.fleet)
		harness.RemoveLabelled(label)
	})
	ti, err := harness.StartTestInternet("jk-"+e.fleet+"-inet", label, "allowed.test", "denied.test")
	if err != nil {
		t.Fatal(err)
	}
	if ti.IPs["allowed.test"] == "" {
		t.Fatalf("no address for allowed.test: %v", ti.IPs)
	}
	return ti
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// probe runs the demo agent's network probe inside a container.
func probe(t *testing.T, container string, args ...string) (string, int) {
	t.Helper()
	cmd := append([]string{"exec", container, "/agent"}, args...)
	out, err := execDocker(cmd...)
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(interface{ ExitCode() int }); ok {
			code = ee.ExitCode()
		}
	}
	return out, code
}

func execDocker(args ...string) (string, error) {
	b, err := exec.Command("docker", args...).CombinedOutput()
	return string(b), err
}

// httpGet fetches a URL from the host.
func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// eventually retries fn for up to d.
func eventually(d time.Duration, fn func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if fn() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestEgressModes(t *testing.T) {
	e := newEnv(t)
	egressImages(t)
	ti := testInternet(t, e)
	ports := freePorts(t, 3)
	manifest := func(allow string) string {
		return e.manifest(fmt.Sprintf(`defaults: {role: image: %q, command: ["serve", ":8080"]}
instances: {
	al: network: {
		egress:        "allowlist"
		allow:         [%s]
		egressNetwork: %q
		ports: [{container: 8080, host: %d}]
	}
	peer: {}
	no: network: {egress: "none", ports: [{container: 8080, host: %d}]}
	bare: {command: ["idle"], network: egress: "none"}
	op: network: ports: [{container: 8080, host: %d}]
}`, harness.EgressAgentImage, allow, ti.Network, ports[0], ports[1], ports[2]))
	}
	m := manifest(`"allowed.test"`)
	r := e.jackin("apply", "-f", m)
	mustCode(t, r, 0, "apply")
	got := e.containers()
	for _, c := range []string{"al", "al-egress", "peer", "no", "no-egress", "bare", "op"} {
		if got[e.name(c)] != "running" {
			t.Fatalf("container %s is not running: %v\n%s", e.name(c), got, r)
		}
	}
	if _, ok := got[e.name("bare-egress")]; ok {
		t.Errorf("none without ports needs no sidecar: %v", got)
	}
	al, op := e.name("al"), e.name("op")
	if internal := docker(t, "network", "inspect", "-f", "{{.Internal}}", al); internal != "true" {
		t.Errorf("network %s internal=%s", al, internal)
	}
	if mounts := docker(t, "inspect", "-f", "{{json .Mounts}}", al+"-egress"); strings.Contains(mounts, "docker.sock") {
		t.Fatalf("the proxy mounts the Docker socket: %s", mounts)
	}

	t.Run("allowlist reaches an allowed host over HTTP and HTTPS", func(t *testing.T) {
		out, code := probe(t, al, "fetch", "http://allowed.test/x")
		if code != 0 || !strings.Contains(out, "upstream allowed.test /x") {
			t.Errorf("HTTP to an allowed host: exit %d: %s", code, out)
		}
		out, code = probe(t, al, "fetch", "-k", "https://allowed.test/y")
		if code != 0 || !strings.Contains(out, "upstream allowed.test /y") {
			t.Errorf("HTTPS (CONNECT) to an allowed host: exit %d: %s", code, out)
		}
	})
	t.Run("allowlist denies another host clearly", func(t *testing.T) {
		out, code := probe(t, al, "fetch", "http://denied.test/")
		if code != 3 || !strings.Contains(out, "status 403") || !strings.Contains(out, "denied for instance al: no rule allows denied.test:80") {
			t.Errorf("HTTP to a denied host: exit %d: %s", code, out)
		}
		out, code = probe(t, al, "fetch", "-k", "https://denied.test/")
		if code == 0 || !strings.Contains(out, "Forbidden") {
			t.Errorf("HTTPS to a denied host: exit %d: %s", code, out)
		}
	})
	t.Run("allowlist: raw TCP to an upstream's IP fails", func(t *testing.T) {
		for _, addr := range []string{ti.IPs["allowed.test"] + ":80", ti.IPs["allowed.test"] + ":443", ti.IPs["denied.test"] + ":80"} {
			if out, code := probe(t, al, "dial", addr); code == 0 {
				t.Errorf("raw TCP to %s connected: %s", addr, out)
			}
		}
		// Names outside the instance do not resolve either.
		if out, code := probe(t, al, "resolve", "allowed.test"); code == 0 {
			t.Errorf("the agent resolved an outside name: %s", out)
		}
	})
	t.Run("allowlist: other instances are unreachable", func(t *testing.T) {
		peerIP := docker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", e.name("peer"))
		if out, code := probe(t, op, "dial", e.name("peer")+":8080"); code == 0 {
			t.Logf("(open instances are on their own bridges too: %s)", out)
		}
		for _, addr := range []string{peerIP + ":8080", e.name("peer") + ":8080"} {
			if out, code := probe(t, al, "dial", addr); code == 0 {
				t.Errorf("the allowlist agent reached instance peer at %s: %s", addr, out)
			}
		}
		if out, code := probe(t, al, "fetch", "http://"+peerIP+":8080/"); code == 0 {
			t.Errorf("the proxy let the agent reach instance peer: %s", out)
		}
	})
	t.Run("allowlist and none: the host is unreachable", func(t *testing.T) {
		// A host service listening on every interface, and an upstream
		// published on the host at the gateway of op's network.
		ln, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		hostPort := ln.Addr().(*net.TCPAddr).Port
		// jackin gives the engine a subnet and no gateway: the engine takes
		// the subnet's first address.
		subnet := docker(t, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", op)
		prefix, err := netip.ParsePrefix(subnet)
		if err != nil {
			t.Fatalf("subnet of %s: %q: %v", op, subnet, err)
		}
		gw := prefix.Masked().Addr().Next().String()
		pubPort := freePorts(t, 1)[0]
		docker(t, "run", "-d", "--name", "jk-"+e.fleet+"-pub", "--label", "jackin.e2e.egress="+e.fleet,
			"-p", fmt.Sprintf("%s:%d:80", gw, pubPort), harness.UpstreamImage, "published.test")
		// Controls: the open instance reaches both, so the probes can succeed.
		if !eventually(5*time.Second, func() bool {
			out, code := probe(t, op, "fetch", fmt.Sprintf("http://%s:%d/", gw, pubPort))
			return code == 0 && strings.Contains(out, "upstream published.test")
		}) {
			t.Fatalf("control: the open instance cannot reach the upstream published on the host at %s:%d", gw, pubPort)
		}
		if out, code := probe(t, op, "dial", fmt.Sprintf("%s:%d", gw, hostPort)); code != 0 {
			t.Fatalf("control: the open instance cannot reach a host listener: %s", out)
		}
		var hostIPs []string
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
				hostIPs = append(hostIPs, ipn.IP.String())
			}
		}
		// Every probe times out after 3 s when it fails: run them together.
		var wg sync.WaitGroup
		try := func(c, addr, what string) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if out, code := probe(t, c, "dial", addr); code == 0 {
					t.Errorf("%s reached %s at %s: %s", c, what, addr, out)
				}
			}()
		}
		for _, c := range []string{al, e.name("no")} {
			try(c, fmt.Sprintf("%s:%d", gw, pubPort), "a port published on the host")
			for _, ip := range hostIPs {
				try(c, fmt.Sprintf("%s:%d", ip, hostPort), "a host listener")
			}
		}
		wg.Wait()
	})
	t.Run("none: loopback only", func(t *testing.T) {
		out, code := probe(t, e.name("bare"), "ifaces")
		if code != 0 || strings.TrimSpace(out) != "lo" {
			t.Errorf("egress none without ports: interfaces %q (exit %d), want only lo", out, code)
		}
		if out, code := probe(t, e.name("no"), "dial", ti.IPs["allowed.test"]+":80"); code == 0 {
			t.Errorf("egress none with ports reached an upstream: %s", out)
		}
	})
	t.Run("open reaches the test upstream through the engine host", func(t *testing.T) {
		// Covered by the control above (an open instance fetches from an
		// upstream the host publishes); here the proxy env must be absent.
		env := docker(t, "inspect", "-f", "{{json .Config.Env}}", op)
		if strings.Contains(env, "HTTP_PROXY") {
			t.Errorf("an open instance has proxy env: %s", env)
		}
		env = docker(t, "inspect", "-f", "{{json .Config.Env}}", al)
		if !strings.Contains(env, "HTTPS_PROXY=http://egress:3128") || !strings.Contains(env, "NO_PROXY=localhost,127.0.0.1") {
			t.Errorf("the allowlist agent lacks the proxy env: %s", env)
		}
	})
	t.Run("a published port answers on 127.0.0.1 in every mode", func(t *testing.T) {
		for i, inst := range []string{"al", "no", "op"} {
			url := fmt.Sprintf("http://127.0.0.1:%d/", ports[i])
			var body string
			if !eventually(5*time.Second, func() bool {
				b, err := httpGet(url)
				body = b
				return err == nil && strings.Contains(b, "ok "+inst)
			}) {
				t.Errorf("%s: %s answered %q", inst, url, body)
			}
		}
		for _, c := range []string{al + "-egress", e.name("no") + "-egress", op} {
			if b := docker(t, "port", c); !strings.Contains(b, "127.0.0.1:") || strings.Contains(b, "0.0.0.0") {
				t.Errorf("%s publishes %q, want 127.0.0.1 only", c, b)
			}
		}
	})
	t.Run("denials are logged with the rule", func(t *testing.T) {
		r := e.jackin("egress", "log", "-f", m, "al", "--denied", "-o", "json")
		mustCode(t, r, 0, "egress log")
		var doc struct {
			Kind  string
			Items []struct {
				Instance, Host, Method, Rule string
				Port                         int
				Allowed                      bool
			}
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("egress log -o json: %v\n%s", err, r)
		}
		found := false
		for _, d := range doc.Items {
			if d.Allowed {
				t.Errorf("--denied listed an allowed decision: %+v", d)
			}
			if d.Instance == "al" && d.Host == "denied.test" && d.Port == 80 && d.Method == "GET" && d.Rule == "no rule allows denied.test:80" {
				found = true
			}
		}
		if !found {
			t.Errorf("the denied GET to denied.test is not in the log:\n%s", r)
		}
		// --follow prints new decisions as they come, one JSON line each.
		follow := exec.Command(jackinBin, "--state-dir", e.stateDir, "egress", "log", "--fleet", e.fleet, "--follow", "--denied", "-o", "json", "--limit", "1")
		stdout, err := follow.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := follow.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = follow.Process.Kill(); _ = follow.Wait() }()
		lines := make(chan string, 16)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		<-lines // the newest one already stored
		probe(t, al, "fetch", "http://denied.test/followed")
		select {
		case l := <-lines:
			if !strings.Contains(l, `"host":"denied.test"`) || !strings.Contains(l, `"allowed":false`) {
				t.Errorf("--follow printed %s", l)
			}
		case <-time.After(5 * time.Second):
			t.Error("--follow printed nothing within 5 s of a denied request")
		}
		r = e.jackin("egress", "log", "-f", m)
		mustCode(t, r, 0, "egress log text")
		if !regexp.MustCompile(`al\s+allowed\s+CONNECT\s+allowed\.test:443\s+allowed\.test \(allowed\.test\)`).MatchString(r.stdout) {
			t.Errorf("the allowed CONNECT is not in the log:\n%s", r)
		}
	})
	t.Run("an allowlist change takes effect without recreating the agent", func(t *testing.T) {
		before := docker(t, "inspect", "-f", "{{.Id}}", al)
		proxyBefore := docker(t, "inspect", "-f", "{{.Id}}", al+"-egress")
		m := manifest(`"allowed.test", "denied.test"`)
		r := e.jackin("diff", "-f", m)
		mustCode(t, r, 1, "diff with a changed allowlist")
		if !strings.Contains(r.stdout, "~ al: egress allowlist changed") {
			t.Errorf("diff does not report the allowlist change:\n%s", r)
		}
		r = e.jackin("apply", "-f", m)
		mustCode(t, r, 0, "apply the allowlist change")
		var out string
		if !eventually(5*time.Second, func() bool {
			var code int
			out, code = probe(t, al, "fetch", "http://denied.test/now")
			return code == 0 && strings.Contains(out, "upstream denied.test /now")
		}) {
			t.Errorf("the new allowlist is not in force: %s", out)
		}
		if after := docker(t, "inspect", "-f", "{{.Id}}", al); after != before {
			t.Errorf("the agent was recreated (%s -> %s)", before, after)
		}
		if after := docker(t, "inspect", "-f", "{{.Id}}", al+"-egress"); after != proxyBefore {
			t.Errorf("the proxy was recreated (%s -> %s):\n%s", proxyBefore, after, r)
		}
		mustCode(t, e.jackin("diff", "-f", m), 0, "diff after the allowlist change")
	})
	t.Run("a removed proxy is recreated alone", func(t *testing.T) {
		before := docker(t, "inspect", "-f", "{{.Id}}", al)
		docker(t, "rm", "-f", al+"-egress")
		r := e.jackin("apply", "-f", manifest(`"allowed.test", "denied.test"`))
		mustCode(t, r, 0, "apply after removing the proxy")
		if after := docker(t, "inspect", "-f", "{{.Id}}", al); after != before {
			t.Errorf("the agent was recreated (%s -> %s)", before, after)
		}
		if !eventually(5*time.Second, func() bool {
			_, code := probe(t, al, "fetch", "http://allowed.test/")
			return code == 0
		}) {
			t.Error("the agent cannot reach an allowed host through the new proxy")
		}
	})
	t.Run("delete removes every object but the egress network", func(t *testing.T) {
		gets := func() int {
			r := e.jackin("egress", "log", "--fleet", e.fleet, "al", "-o", "json")
			mustCode(t, r, 0, "egress log")
			return strings.Count(r.stdout, `"host": "allowed.test",`+"\n"+`      "port": 80,`+"\n"+`      "method": "GET"`)
		}
		before := gets()
		if _, code := probe(t, al, "fetch", "http://allowed.test/last-words"); code != 0 {
			t.Fatal("fetch before delete failed")
		}
		r := e.jackin("delete", "--fleet", e.fleet)
		mustCode(t, r, 0, "delete")
		// The proxy's last decision was pulled before it was removed.
		if after := gets(); after != before+1 {
			t.Errorf("allowed GETs to allowed.test in the log: %d before the last fetch, %d after the delete; want one more", before, after)
		}
		if got := e.containers(); len(got) != 0 {
			t.Errorf("containers left: %v", got)
		}
		if nets := e.networks(); len(nets) != 0 {
			t.Errorf("networks left: %v", nets)
		}
		if name := docker(t, "network", "inspect", "-f", "{{.Name}}", ti.Network); name != ti.Network {
			t.Errorf("the egress network %s was removed", ti.Network)
		}
	})
}

func TestEgressBadInputHasFileLine(t *testing.T) {
	e := newEnv(t)
	m := e.manifest(`instances: {
	a: {
		role: image: "x"
		network: {
			egress: "allowlist"
			allow: ["ok.example", "api.*.example.com", "@nope", "example.com:99999"]
		}
	}
}`)
	r := e.jackin("validate", "-f", m)
	mustCode(t, r, 2, "validate")
	for _, want := range []string{
		"fleet.cue:9:26: instances.a.network.allow[1]: allow entry \"api.*.example.com\": a wildcard is allowed only as the whole first label",
		"fleet.cue:9:47: instances.a.network.allow[2]: allow entry \"@nope\": unknown preset",
		"fleet.cue:9:56: instances.a.network.allow[3]: allow entry \"example.com:99999\": port \"99999\"",
	} {
		if !strings.Contains(r.stderr+r.stdout, want) {
			t.Errorf("validate output lacks %q:\n%s", want, r)
		}
	}
}

func TestEgressWatchAndApproval(t *testing.T) {
	e := newEnv(t)
	egressImages(t)
	ti := testInternet(t, e)
	manifest := func(allow string) string {
		return e.manifest(fmt.Sprintf(`instances: al: {
	role: image: %q
	network: {egress: "allowlist", allow: [%s], egressNetwork: %q}
}`, harness.EgressAgentImage, allow, ti.Network))
	}
	m := manifest(`"allowed.test"`)
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	al := e.name("al")
	fetch := func(url string) bool {
		_, code := probe(t, al, "fetch", url)
		return code == 0
	}
	if !eventually(5*time.Second, func() bool { return fetch("http://allowed.test/") }) {
		t.Fatal("the allowed host is not reachable")
	}

	// An allowlist addition is a widening: refused without --approve.
	m = manifest(`"allowed.test", "denied.test"`)
	r := e.jackin("diff", "-f", m)
	mustCode(t, r, 1, "diff")
	if !strings.Contains(r.stdout, "~ al: egress allowlist changed: + denied.test") || !strings.Contains(r.stdout, "! widens access: the allowlist adds denied.test") {
		t.Errorf("diff does not show the allowlist widening:\n%s", r)
	}
	r = e.jackin("diff", "-f", m, "-o", "json")
	mustCode(t, r, 1, "diff -o json")
	var plan struct {
		EgressPolicies []struct {
			Instance       string
			Added, Removed []string
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil || len(plan.EgressPolicies) != 1 || plan.EgressPolicies[0].Instance != "al" ||
		len(plan.EgressPolicies[0].Added) != 1 || plan.EgressPolicies[0].Added[0] != "denied.test" {
		t.Errorf("diff -o json does not list the allowlist change (%v):\n%s", err, r)
	}
	r = e.jackin("apply", "-f", m, "--require-approval-for-widening")
	mustCode(t, r, 2, "apply of an allowlist widening without --approve")
	if !strings.Contains(r.stderr, "al (egress policy): the allowlist adds denied.test") {
		t.Errorf("the refusal does not name the allowlist addition:\n%s", r)
	}
	time.Sleep(1500 * time.Millisecond)
	if fetch("http://denied.test/") {
		t.Fatal("a refused apply changed the policy")
	}
	// A narrowing needs no approval.
	mustCode(t, e.jackin("apply", "-f", manifest(""), "--require-approval-for-widening"), 0, "apply of a narrowing")

	// watch: an allowlist edit reloads the proxy; an edited policy file and
	// a removed proxy are healed; the agent stays.
	mustCode(t, e.jackin("apply", "-f", manifest(`"allowed.test"`)), 0, "apply")
	agentID := docker(t, "inspect", "-f", "{{.Id}}", al)
	m = manifest(`"allowed.test", "denied.test"`)
	w := e.startWatch(nil, "-f", m, "--resync", "2s")
	defer w.stop()
	if !eventually(10*time.Second, func() bool { return fetch("http://denied.test/") }) {
		t.Fatal("watch did not apply the allowlist of the manifest it started with")
	}
	manifest(`"allowed.test"`)
	if !eventually(10*time.Second, func() bool { return !fetch("http://denied.test/") }) {
		t.Fatal("watch did not apply an allowlist edit")
	}
	policy := e.stateDir + "/egress/" + e.fleet + "/al/policy.json"
	if err := os.WriteFile(policy, []byte(`{"instance":"al","rules":[{"host":"denied.test","from":"tampered"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if !eventually(10*time.Second, func() bool {
		b, _ := os.ReadFile(policy)
		return !strings.Contains(string(b), "tampered") && fetch("http://allowed.test/") && !fetch("http://denied.test/")
	}) {
		t.Fatal("watch did not heal an edited policy file")
	}
	docker(t, "rm", "-f", al+"-egress")
	if !eventually(20*time.Second, func() bool { return e.containers()[al+"-egress"] == "running" && fetch("http://allowed.test/") }) {
		t.Fatal("watch did not heal a removed proxy")
	}
	if id := docker(t, "inspect", "-f", "{{.Id}}", al); id != agentID {
		t.Errorf("the agent was recreated (%s -> %s)", agentID, id)
	}
	if code := w.stop(); code != 0 {
		t.Errorf("watch exited %d", code)
	}
}

func TestEgressHostPortInUseIsRefusedAtPlanTime(t *testing.T) {
	e := newEnv(t)
	egressImages(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	for _, mode := range []string{"open", "allowlist", "none"} {
		m := e.manifest(fmt.Sprintf(`instances: web: {role: image: %q, network: {egress: %q, ports: [{container: 8080, host: %d}]}}`, harness.EgressAgentImage, mode, port))
		r := e.jackin("apply", "-f", m)
		mustCode(t, r, 2, "apply with a busy host port ("+mode+")")
		if !strings.Contains(r.stderr, fmt.Sprintf("web: host port 127.0.0.1:%d/tcp is already in use on this host", port)) {
			t.Errorf("%s: no clear error:\n%s", mode, r)
		}
		if got := e.containers(); len(got) != 0 {
			t.Fatalf("%s: a refused apply created %v", mode, got)
		}
		r = e.jackin("diff", "-f", m)
		if !strings.Contains(r.stderr, "already in use") {
			t.Errorf("%s: diff does not warn:\n%s", mode, r)
		}
	}
}

func TestEgressUpstreamProxy(t *testing.T) {
	e := newEnv(t)
	egressImages(t)
	ti := testInternet(t, e)
	m := e.manifest(fmt.Sprintf(`instances: al: {
	role: image: %q
	network: {egress: "allowlist", allow: ["allowed.test", "denied.test"], egressNetwork: %q, upstreamProxy: "http://corp.test:3128"}
}`, harness.EgressAgentImage, ti.Network))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	al := e.name("al")
	// The corporate proxy: another jackin egress proxy on the test
	// internet, allowing only allowed.test.
	image := docker(t, "inspect", "-f", "{{.Config.Image}}", al+"-egress")
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/policy.json", []byte(`{"instance":"corp","rules":[{"host":"allowed.test","from":"corp"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	corp := "jk-" + e.fleet + "-corp"
	docker(t, "run", "-d", "--name", corp, "--label", "jackin.e2e.egress="+e.fleet, "--network", ti.Network, "--network-alias", "corp.test",
		"-v", dir+":/run/p:ro", image, "egress-proxy", "--policy", "/run/p/policy.json", "--listen", ":3128")
	var out string
	if !eventually(10*time.Second, func() bool {
		var code int
		out, code = probe(t, al, "fetch", "http://allowed.test/via")
		return code == 0 && strings.Contains(out, "upstream allowed.test /via")
	}) {
		t.Fatalf("HTTP through the upstream proxy: %s", out)
	}
	if out, code := probe(t, al, "fetch", "-k", "https://allowed.test/tls"); code != 0 || !strings.Contains(out, "upstream allowed.test /tls") {
		t.Errorf("HTTPS through the upstream proxy: exit %d: %s", code, out)
	}
	// Allowed by the instance, refused by the corporate proxy.
	out, code := probe(t, al, "fetch", "http://denied.test/")
	if code == 0 || !strings.Contains(out, "upstream proxy corp.test:3128 refused CONNECT denied.test:80") {
		t.Errorf("the upstream's refusal is not reported: exit %d: %s", code, out)
	}
	// A tunnel is logged when it closes: the HTTPS one has.
	logs := docker(t, "logs", corp)
	if !strings.Contains(logs, `"host":"allowed.test","port":443,"method":"CONNECT","allowed":true`) {
		t.Errorf("the HTTPS connection did not go through the upstream proxy; its log:\n%s", logs)
	}
	// Without the upstream proxy nothing gets through, though the
	// instance's proxy could reach allowed.test itself.
	docker(t, "rm", "-f", corp)
	if out, code := probe(t, al, "fetch", "http://allowed.test/direct"); code == 0 {
		t.Errorf("a fetch succeeded with the upstream proxy gone: %s", out)
	}
}
