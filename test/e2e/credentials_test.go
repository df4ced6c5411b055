package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/test/harness"
)

var (
	credImageOnce sync.Once
	credImageErr  error
)

func credImage(t *testing.T) {
	t.Helper()
	credImageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jackin-e2e-cred-")
		if err != nil {
			credImageErr = err
			return
		}
		defer os.RemoveAll(dir)
		credImageErr = harness.BuildCredImage(dir)
	})
	if credImageErr != nil {
		t.Fatalf("build credential test image: %v", credImageErr)
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// credFixture is the host side of the canary test: sources of every kind
// and the test upstreams.
type credFixture struct {
	canary  string // every value starts with it
	binDir  string // on PATH: printcanary, op, failcmd
	valDir  string // what the commands print, and the file source
	certDir string
	network string
}

// value is the canary variant of one source at one rotation.
func (f *credFixture) value(kind string, gen int) string {
	return fmt.Sprintf("%s-%s-%d", f.canary, kind, gen)
}

// setValues makes every source yield generation gen.
func (f *credFixture) setValues(t *testing.T, gen int) {
	t.Helper()
	for _, kind := range []string{"file", "cmd", "op"} {
		if err := os.WriteFile(filepath.Join(f.valDir, kind), []byte(f.value(kind, gen)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// env is the jackin environment for generation gen: PATH with the fake
// commands, the env sources, and the test upstream CA.
func (f *credFixture) env(gen int) []string {
	return []string{
		"PATH=" + f.binDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"CRED_ENV_SOURCE=" + f.value("env", gen),
		"CRED_PROXY_SOURCE=" + f.value("proxy", gen),
		"JACKIN_EGRESS_UPSTREAM_CA=" + filepath.Join(f.certDir, "ca.pem"),
	}
}

func newCredFixture(t *testing.T, e *env) *credFixture {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	f := &credFixture{canary: "jkcanary" + hex.EncodeToString(b), binDir: t.TempDir(), valDir: t.TempDir(), certDir: t.TempDir(),
		network: "jk-" + e.fleet + "-inet"}
	scripts := map[string]string{
		"printcanary": "#!/bin/sh\nexec cat " + filepath.Join(f.valDir, "cmd") + "\n",
		"op":          "#!/bin/sh\n[ \"$1\" = read ] && [ \"$2\" = op://e2e/cred/value ] || { echo \"op: bad arguments $*\" >&2; exit 2; }\nexec cat " + filepath.Join(f.valDir, "op") + "\n",
		// A source that fails after printing a canary on both streams:
		// neither may reach an error message.
		"failcmd": "#!/bin/sh\necho " + f.canary + "-failout\necho \"failcmd: vault sealed, token " + f.canary + "-failerr\" >&2\nexit 3\n",
	}
	for n, s := range scripts {
		if err := os.WriteFile(filepath.Join(f.binDir, n), []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.setValues(t, 1)
	if err := harness.TestCA(f.certDir, "api.cred.test", "other.cred.test"); err != nil {
		t.Fatal(err)
	}
	label := "jackin.e2e.cred=" + e.fleet
	t.Cleanup(func() {
		harness.RemoveFleetObjects(e.fleet)
		harness.RemoveLabelled(label)
		// What apply wrote on the host tmpfs, when the test failed before delete.
		_ = os.RemoveAll(fmt.Sprintf("/dev/shm/jackin-%d/%s", os.Getuid(), e.fleet))
	})
	if err := harness.StartCredUpstreams(f.network, label, f.certDir, "api.cred.test", "other.cred.test"); err != nil {
		t.Fatal(err)
	}
	return f
}

func credManifest(e *env, f *credFixture, broken bool) string {
	brokenInst := ""
	if broken {
		brokenInst = `	broken: credentials: FAIL_TOKEN: {from: {command: ["failcmd"]}}`
	}
	return e.manifest(fmt.Sprintf(`defaults: role: image: %q
// A runtime that reads Claude's credential, running the test image's
// program (a built-in claude would need the Claude Code CLI in the image).
runtimes: credrt: {command: ["idle"], credentials: ["ANTHROPIC_API_KEY"]}
instances: {
	files: {
		agent: "credrt"
		credentials: {
			ANTHROPIC_API_KEY: {from: {file: %q}}
			CMD_TOKEN: {from: {command: ["printcanary"]}, deliver: file: "/run/creds/cmd"}
			OP_TOKEN: {from: "op://e2e/cred/value"}
		}
	}
	envs: credentials: ENV_TOKEN: {from: {env: "CRED_ENV_SOURCE"}, deliver: env: "ENV_TOKEN"}
	proxied: {
		network: {egress: "allowlist", allow: ["api.cred.test", "other.cred.test"], egressNetwork: %q}
		credentials: API_TOKEN: {from: {env: "CRED_PROXY_SOURCE"}, deliver: proxy: {host: "api.cred.test", placeholder: "API_TOKEN"}}
	}
%s
}`, harness.CredImage, filepath.Join(f.valDir, "file"), f.network, brokenInst))
}

func containerID(t *testing.T, name string) string {
	t.Helper()
	return docker(t, "inspect", "-f", "{{.Id}}", name)
}

func execOut(t *testing.T, container string, args ...string) string {
	t.Helper()
	out, err := execDocker(append([]string{"exec", container, "/credtest"}, args...)...)
	if err != nil {
		t.Fatalf("docker exec %s %v: %v\n%s", container, args, err, out)
	}
	return out
}

// TestCredentialsCanary uses a canary value for every source kind (env,
// file, command, op://) and delivery kind (file, env, proxy), runs apply,
// explain, diff, get, history, a rotation, watch and a failing source, and
// then searches everything jackin wrote or printed for the canary: it may
// appear only where the contract says the value is visible.
func TestCredentialsCanary(t *testing.T) {
	e := newEnv(t)
	credImage(t)
	f := newCredFixture(t, e)
	var outputs []string // every stdout and stderr jackin printed
	run := func(gen int, args ...string) result {
		t.Helper()
		r := e.jackinEnv(f.env(gen), append([]string{"-v", "9"}, args...)...)
		outputs = append(outputs, strings.Join(args, " ")+"\n"+r.stdout+r.stderr)
		return r
	}
	path := credManifest(e, f, true)

	r := run(1, "validate", "-f", path)
	mustCode(t, r, 0, "validate")
	if r.stderr != "" && strings.Contains(r.stderr, "instance files runs agent credrt") {
		t.Fatalf("validate warns about an instance whose runtime reads ANTHROPIC_API_KEY and has it:\n%s", r)
	}

	explainJSON := run(1, "explain", "-f", path, "-o", "json")
	mustCode(t, explainJSON, 0, "explain -o json")
	for _, want := range []string{`"inContainer": "file"`, `"inContainer": "env"`, `"inContainer": "nowhere"`, "/dev/shm/jackin-", `"source": "op"`} {
		if !strings.Contains(explainJSON.stdout, want) {
			t.Errorf("explain -o json lacks %s", want)
		}
	}
	mustCode(t, run(1, "explain", "-f", path), 0, "explain")

	// The failing source stops only its own instance.
	r = run(1, "apply", "-f", path)
	mustCode(t, r, 1, "apply with a failing source")
	if !strings.Contains(r.stdout, "credential FAIL_TOKEN (from command failcmd) cannot be read") || !strings.Contains(r.stdout, "failed (exit status 3); its stderr is not shown nor kept") {
		t.Fatalf("apply does not say why broken failed:\n%s", r)
	}
	if _, ok := e.containers()[e.name("broken")]; ok {
		t.Fatalf("broken was created although its credential cannot be read")
	}
	for _, n := range []string{"files", "envs", "proxied"} {
		e.waitState(n, "running", 30*time.Second)
	}

	// File delivery: each value in its file, 0400.
	files := e.name("files")
	for file, kind := range map[string]string{"/run/secrets/ANTHROPIC_API_KEY": "file", "/run/creds/cmd": "cmd", "/run/secrets/OP_TOKEN": "op"} {
		if got := execOut(t, files, "cat", file); got != f.value(kind, 1) {
			t.Errorf("%s holds %q, want the %s source's value", file, got, kind)
		}
	}
	if got := docker(t, "exec", files, "/credtest", "find", f.canary); strings.Contains(got, "env:") {
		t.Errorf("file delivery put a value in the env:\n%s", got)
	}
	// Env delivery.
	if got := execOut(t, e.name("envs"), "env"); !strings.Contains(got, "ENV_TOKEN="+f.value("env", 1)) {
		t.Errorf("envs lacks ENV_TOKEN:\n%s", got)
	}
	// Proxy delivery: the upstream that needs the header gets it; the agent
	// holds no canary; another allowed host gets no header.
	proxied := e.name("proxied")
	var got string
	if !eventually(20*time.Second, func() bool {
		got, _ = execDocker("exec", proxied, "/credtest", "get", "-auth", "API_TOKEN", "https://api.cred.test/")
		return strings.Contains(got, "auth=")
	}) {
		t.Fatalf("request to api.cred.test through the proxy: %s", got)
	}
	if want := "auth=" + sha("Bearer "+f.value("proxy", 1)); !strings.Contains(got, want) {
		t.Fatalf("api.cred.test got another Authorization header than the credential's: %s", got)
	}
	got = execOut(t, proxied, "get", "-insecure", "-auth", "API_TOKEN", "https://other.cred.test/")
	if want := "auth=" + sha("Bearer jackin-placeholder"); !strings.Contains(got, want) {
		t.Fatalf("other.cred.test must get the agent's own placeholder header, not the credential: %s", got)
	}
	if got := execOut(t, proxied, "find", f.canary); strings.TrimSpace(got) != "" {
		t.Fatalf("the proxied agent holds the canary:\n%s", got)
	}
	// Tools that read only the system bundle trust the instance's CA too.
	ca := execOut(t, proxied, "cat", "/run/jackin-ca/ca.pem")
	for _, p := range []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"} {
		if got := execOut(t, proxied, "cat", p); !strings.Contains(got, strings.TrimSpace(ca)) {
			t.Errorf("%s lacks the instance's CA", p)
		}
	}

	mustCode(t, run(1, "diff", "-f", path), 2, "diff with a failing source")
	mustCode(t, run(1, "get", "-f", path), 0, "get")

	// Rotation: file and proxy update in place, env recreates.
	ids := map[string]string{}
	for _, n := range []string{"files", "envs", "proxied"} {
		ids[n] = containerID(t, e.name(n))
	}
	f.setValues(t, 2)
	path = credManifest(e, f, false) // and the failing instance goes
	r = run(2, "diff", "-f", path)
	mustCode(t, r, 1, "diff after rotation")
	for _, want := range []string{"credential ANTHROPIC_API_KEY changed (the file /run/secrets/ANTHROPIC_API_KEY is rewritten in place)", "credential ENV_TOKEN changed", "credential API_TOKEN changed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("diff after rotation lacks %q:\n%s", want, r.stdout)
		}
	}
	r = run(2, "apply", "-f", path)
	mustCode(t, r, 0, "apply after rotation")
	if !strings.Contains(r.stdout, "-/+ envs") || !strings.Contains(r.stdout, "credential ENV_TOKEN changed") {
		t.Fatalf("apply does not recreate envs with the redacted reason:\n%s", r.stdout)
	}
	e.waitState("envs", "running", 30*time.Second)
	for _, n := range []string{"files", "proxied"} {
		if id := containerID(t, e.name(n)); id != ids[n] {
			t.Errorf("%s was recreated by a credential rotation", n)
		}
	}
	if containerID(t, e.name("envs")) == ids["envs"] {
		t.Errorf("envs was not recreated")
	}
	if got := execOut(t, files, "cat", "/run/secrets/ANTHROPIC_API_KEY"); got != f.value("file", 2) {
		t.Errorf("the file credential was not rotated: %q", got)
	}
	if !eventually(10*time.Second, func() bool {
		got, _ = execDocker("exec", proxied, "/credtest", "get", "-auth", "API_TOKEN", "https://api.cred.test/")
		return strings.Contains(got, "auth="+sha("Bearer "+f.value("proxy", 2)))
	}) {
		t.Fatalf("the proxy does not use the rotated value: %s", got)
	}
	if got := execOut(t, e.name("envs"), "env"); !strings.Contains(got, "ENV_TOKEN="+f.value("env", 2)) {
		t.Errorf("envs was not recreated with the rotated value")
	}

	// Watch heals the next rotation of a file credential in place.
	f.setValues(t, 3)
	w := e.startWatch(f.env(3), "-v", "9", "-f", path, "--resync", "1s")
	if !eventually(20*time.Second, func() bool {
		got, _ = execDocker("exec", files, "/credtest", "cat", "/run/creds/cmd")
		return got == f.value("cmd", 3)
	}) {
		t.Fatalf("watch did not refresh the command credential: %q", got)
	}
	w.stop()
	outputs = append(outputs, w.dump()+w.stderr.String())
	if id := containerID(t, files); id != ids["files"] {
		t.Errorf("watch recreated files for a credential rotation")
	}
	mustCode(t, run(3, "history", "-f", path, "-o", "json"), 0, "history")
	if r := run(3, "diff", "-f", path, "-o", "json"); r.code == 2 {
		t.Fatalf("diff -o json after watch: %s", r)
	}

	// The search. Every output of jackin, and the state dir (the store
	// included): no canary at all.
	for _, o := range outputs {
		if strings.Contains(o, f.canary) {
			t.Errorf("jackin printed a canary:\n%s", o)
		}
	}
	_ = filepath.WalkDir(e.stateDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), f.canary) {
				t.Errorf("the state dir file %s holds a canary", p)
			}
		}
		return nil
	})
	// Every labelled object: only the env-delivered value, only in the
	// agent container of envs (its config, as the contract says).
	for _, kind := range []string{"container", "network", "volume"} {
		list := "ls"
		if kind == "container" {
			list = "ls -a"
		}
		for _, id := range dockerLines(t, append([]string{kind}, append(strings.Fields(list), "-q", "--filter", "label=dev.jackin.fleet="+e.fleet)...)...) {
			out := docker(t, kind, "inspect", id)
			name := docker(t, kind, "inspect", "-f", "{{.Name}}", id)
			allowed := kind == "container" && strings.TrimPrefix(name, "/") == e.name("envs")
			rest := out
			if allowed {
				// Watch ran with generation 3 and may have recreated envs.
				rest = strings.ReplaceAll(strings.ReplaceAll(out, f.value("env", 2), ""), f.value("env", 3), "")
				if rest == out {
					t.Errorf("docker inspect of envs does not show the env-delivered value, as its contract says it does")
				}
			}
			if strings.Contains(rest, f.canary) {
				t.Errorf("docker inspect of %s %s holds a canary", kind, name)
			}
		}
	}
	// The file-delivered values are on the host only on the tmpfs the
	// contract names.
	shm := fmt.Sprintf("/dev/shm/jackin-%d/%s/files/files/run-secrets/ANTHROPIC_API_KEY", os.Getuid(), e.fleet)
	if b, err := os.ReadFile(shm); err != nil || string(b) != f.value("file", 3) {
		t.Errorf("%s: %q, %v", shm, b, err)
	}

	// Deleting the instances removes their credential files.
	mustCode(t, run(3, "delete", "-f", path), 0, "delete")
	if _, err := os.Stat(fmt.Sprintf("/dev/shm/jackin-%d/%s", os.Getuid(), e.fleet)); !os.IsNotExist(err) {
		t.Errorf("the fleet's credential files outlive its deletion: %v", err)
	}
}
