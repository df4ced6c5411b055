package reconciler_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/drivers"
	"github.com/jackin-dev/jackin/drivers/fake"
	"github.com/jackin-dev/jackin/reconciler"
	"github.com/jackin-dev/jackin/schema"
)

// TestMain keeps tests that apply without a state dir of their own (the
// golden plans) out of the operator's real one.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "jackin-reconciler-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("JACKIN_HOME", dir)
	// No container runs the supervisor against the in-memory driver.
	reconciler.InstallSupervisorBinary = func(string) (func() error, error) { return func() error { return nil }, nil }
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func privateDocker(privilege string) func(*schema.Instance) {
	return func(in *schema.Instance) {
		in.Docker = schema.DockerPrivate
		in.DockerDaemon = &schema.DockerDaemon{Image: "docker:dind", Privilege: privilege}
	}
}

// privateSetup is base with a privileged private daemon on instance web,
// a state dir of the test's own, and a backend holding the daemon image.
func privateSetup(t *testing.T, base *schema.Fleet) (*fake.Driver, *schema.Fleet) {
	t.Helper()
	f := with(base, "web", privateDocker(schema.DaemonPrivileged))
	f.StateDir = t.TempDir()
	drv := newDriver()
	drv.AddImage("docker:dind", "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd")
	return drv, f
}

func TestDesiredPrivateDocker(t *testing.T) {
	f := with(with(fleetOf(), "web", allowlisted), "web", privateDocker(schema.DaemonPrivileged))
	f.StateDir = t.TempDir()
	in := desired(t, f).Instance("web")
	var order []string
	for _, r := range in.Resources {
		order = append(order, string(r.Kind)+" "+r.Name)
	}
	want := []string{"network jk-demo-web", "network jk-demo-web-out", "volume jk-demo-web-home", "volume jk-demo-web-dind-data", "container jk-demo-web-dind", "container jk-demo-web", "container jk-demo-web-egress"}
	if !slices.Equal(order, want) {
		t.Fatalf("resources: got %v, want %v", order, want)
	}
	rs := resources(in)
	vol := rs["volume jk-demo-web-dind-data"]
	if vol.Component != drivers.ComponentDockerData || vol.Labels[drivers.LabelSpecHash] != "" {
		t.Errorf("data volume: component %q, labels %v (no spec hash: it outlives recreates)", vol.Component, vol.Labels)
	}
	if home := rs["volume jk-demo-web-home"]; home.Component != drivers.ComponentHome || home.Labels[drivers.LabelSpecHash] != "" {
		t.Errorf("runtime-home volume: component %q, labels %v (no spec hash: it outlives recreates)", home.Component, home.Labels)
	}
	side := rs["container jk-demo-web-dind"].Container
	if !side.Privileged || len(side.CapAdd) != 0 {
		t.Errorf("privileged daemon: privileged %v, capAdd %v", side.Privileged, side.CapAdd)
	}
	if !slices.Equal(side.Networks, []string{"jk-demo-web"}) || !slices.Equal(side.Aliases["jk-demo-web"], []string{"docker"}) {
		t.Errorf("the daemon must sit on the instance's network only, as docker: %v %v", side.Networks, side.Aliases)
	}
	if len(side.Ports) != 0 {
		t.Errorf("the daemon publishes nothing: %v", side.Ports)
	}
	cmd := strings.Join(side.Command, " ")
	for _, flag := range []string{"--host=tcp://0.0.0.0:2376", "--tlsverify", "--tlscacert=", "--tlscert=", "--tlskey="} {
		if !strings.Contains(cmd, flag) {
			t.Errorf("daemon command %q lacks %s", cmd, flag)
		}
	}
	if strings.Contains(cmd, "unix://") || strings.Contains(cmd, ":2375") {
		t.Errorf("the daemon must serve TLS only: %q", cmd)
	}
	if side.Ready == nil || side.Ready.Timeout <= 0 || !slices.Contains(side.Ready.Exec, "--tlsverify") {
		t.Errorf("the daemon needs a TLS readiness probe: %+v", side.Ready)
	}
	if side.Env["HTTPS_PROXY"] != "http://egress:3128" {
		t.Errorf("under an allowlist the daemon pulls through the proxy: %v", side.Env)
	}
	tlsDir := filepath.Join(f.StateDir, "docker", "demo", "web")
	if in.DockerTLS == nil || in.DockerTLS.Dir != tlsDir {
		t.Fatalf("DockerTLS = %+v, want dir %s", in.DockerTLS, tlsDir)
	}
	var dataMount, serverMount bool
	for _, m := range side.Mounts {
		dataMount = dataMount || (m.Type == "volume" && m.Source == "jk-demo-web-dind-data" && m.Target == "/var/lib/docker")
		serverMount = serverMount || (m.Source == filepath.Join(tlsDir, "server") && m.ReadOnly)
	}
	if !dataMount || !serverMount {
		t.Errorf("daemon mounts: %+v", side.Mounts)
	}

	agent := rs["container jk-demo-web"].Container
	wantEnv := map[string]string{
		"DOCKER_HOST": "tcp://docker:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/run/jackin/docker",
		"TESTCONTAINERS_HOST_OVERRIDE": "docker", "NO_PROXY": "localhost,127.0.0.1,docker",
	}
	for k, v := range wantEnv {
		if agent.Env[k] != v {
			t.Errorf("agent env %s = %q, want %q", k, agent.Env[k], v)
		}
	}
	var clientMount bool
	for _, m := range agent.Mounts {
		if m.Target == "/run/jackin/docker" {
			clientMount = m.Source == filepath.Join(tlsDir, "client") && m.ReadOnly
		}
		if strings.Contains(m.Source, "docker.sock") || m.Source == filepath.Join(tlsDir, "server") {
			t.Errorf("agent mounts %s", m.Source)
		}
	}
	if !clientMount {
		t.Errorf("the agent must get the client directory read-only: %+v", agent.Mounts)
	}
}

func TestDesiredPrivateDockerCapabilitiesAndNoEgress(t *testing.T) {
	f := with(fleetOf(), "web", func(in *schema.Instance) {
		privateDocker(schema.DaemonCapabilities)(in)
		in.Network.Egress = schema.EgressNone
	})
	f.StateDir = t.TempDir()
	in := desired(t, f).Instance("web")
	rs := resources(in)
	side := rs["container jk-demo-web-dind"].Container
	if side.Privileged {
		t.Error("privilege capabilities must not be --privileged")
	}
	if !slices.Equal(side.CapDrop, []string{"ALL"}) || !slices.Equal(side.CapAdd, schema.DaemonCapabilitySet) {
		t.Errorf("caps: drop %v add %v", side.CapDrop, side.CapAdd)
	}
	for _, c := range []string{"SYS_MODULE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME", "SYS_BOOT"} {
		if slices.Contains(side.CapAdd, c) {
			t.Errorf("the capability set must not hold %s", c)
		}
	}
	if !slices.Equal(side.SecurityOpt, []string{"seccomp=unconfined", "apparmor=unconfined"}) || !slices.Equal(side.DeviceCgroupRules, []string{"a *:* rwm"}) ||
		side.Sysctls["net.ipv4.ip_forward"] != "1" {
		t.Errorf("security: %v devices %v sysctls %v", side.SecurityOpt, side.DeviceCgroupRules, side.Sysctls)
	}
	if side.Env["HTTPS_PROXY"] != "" {
		t.Errorf("no proxy without an allowlist: %v", side.Env)
	}
	// egress none: the agent joins the internal network, shared only with the daemon.
	agent := rs["container jk-demo-web"].Container
	if agent.NoNetwork || !slices.Equal(agent.Networks, []string{"jk-demo-web"}) {
		t.Errorf("agent networks %v (none %v)", agent.Networks, agent.NoNetwork)
	}
	if n := rs["network jk-demo-web"]; !n.Network.Internal {
		t.Error("egress none: the network the daemon shares must be internal")
	}
	for k := range rs {
		if strings.HasSuffix(k, "-egress") || strings.HasSuffix(k, "-out") {
			t.Errorf("egress none with no ports needs no proxy: %s", k)
		}
	}
}

func TestPrivateDockerSpecHash(t *testing.T) {
	base := with(fleetOf(), "web", func(in *schema.Instance) {})
	priv := with(base, "web", privateDocker(schema.DaemonPrivileged))
	caps := with(base, "web", privateDocker(schema.DaemonCapabilities))
	h := func(f *schema.Fleet) string { return desired(t, f).Instance("web").Hash }
	if h(base) == h(priv) || h(priv) == h(caps) {
		t.Error("docker and dockerDaemon.privilege must be in the spec hash")
	}
}

// The daemon starts, and answers, before the agent; an agent is never
// started against a daemon that did not come up.
func TestExecuteStartsTheAgentAfterTheDaemonAnswers(t *testing.T) {
	drv, f := privateSetup(t, fleetOf())
	_, results := execute(t, drv, f, nil, reconciler.ExecOptions{StateDir: f.StateDir})
	if o := outcomes(results)["web"]; o != reconciler.OutcomeSucceeded {
		t.Fatalf("outcome %s: %v", o, results[0].Err)
	}
	log := drv.CallLog()
	idx := func(entry string) int {
		i := slices.Index(log, entry)
		if i < 0 {
			t.Fatalf("call log lacks %q: %v", entry, log)
		}
		return i
	}
	if !(idx("Start container jk-demo-web-dind") < idx("WaitReady container jk-demo-web-dind") &&
		idx("WaitReady container jk-demo-web-dind") < idx("Start container jk-demo-web")) {
		t.Errorf("order: %v", log)
	}
	// The certificates: 0600 files in a 0700 directory.
	dir := filepath.Join(f.StateDir, "docker", "demo", "web")
	for _, p := range []string{"ca-key.pem", "server/key.pem", "client/key.pem", "client/cert.pem", "client/ca.pem", "server/cert.pem"} {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", p, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: mode %v", dir, fi.Mode().Perm())
	}

	// A stopped daemon and agent: the daemon starts and answers first.
	mustDo(t, drv.Kill(name("web")+"-dind"))
	mustDo(t, drv.Kill(name("web")))
	drv.ResetCalls()
	_, results = execute(t, drv, f, nil, reconciler.ExecOptions{StateDir: f.StateDir})
	if o := outcomes(results)["web"]; o != reconciler.OutcomeSucceeded {
		t.Fatalf("start: %s: %v", o, results[0].Err)
	}
	log = drv.CallLog()
	if !(idx("Start container jk-demo-web-dind") < idx("WaitReady container jk-demo-web-dind") &&
		idx("WaitReady container jk-demo-web-dind") < idx("Start container jk-demo-web")) {
		t.Errorf("start order: %v", log)
	}

	// A recreate (the agent's env changed): the same order.
	g := with(f, "web", func(in *schema.Instance) { in.Env = map[string]string{"A": "1"} })
	drv.ResetCalls()
	_, results = execute(t, drv, g, nil, reconciler.ExecOptions{StateDir: f.StateDir})
	if o := outcomes(results)["web"]; o != reconciler.OutcomeSucceeded || results[0].Action.Type != reconciler.ActionRecreate {
		t.Fatalf("recreate: %s %s: %v", results[0].Action.Type, o, results[0].Err)
	}
	log = drv.CallLog()
	if !(idx("Start container jk-demo-web-dind") < idx("WaitReady container jk-demo-web-dind") &&
		idx("WaitReady container jk-demo-web-dind") < idx("Start container jk-demo-web")) {
		t.Errorf("recreate order: %v", log)
	}

	// Delete: the sidecar, the data volume and the certificates go.
	drv.ResetCalls()
	_, results = execute(t, drv, fleetOf(), nil, reconciler.ExecOptions{StateDir: f.StateDir})
	if o := outcomes(results)["web"]; o != reconciler.OutcomeSucceeded {
		t.Fatalf("delete: %s", o)
	}
	if _, ok := drv.Object(drivers.KindVolume, "jk-demo-web-dind-data"); ok {
		t.Error("the daemon's data volume outlived its instance")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the certificates outlived their instance: %v", err)
	}
}

func TestExecuteDaemonThatNeverAnswersFailsTheInstance(t *testing.T) {
	drv, f := privateSetup(t, fleetOf("other"))
	drv.FailOn(fake.MethodWaitReady, name("web")+"-dind", errors.New("did not answer within 90s"))
	_, results := execute(t, drv, f, nil, reconciler.ExecOptions{StateDir: f.StateDir})
	got := outcomes(results)
	if got["web"] != reconciler.OutcomeFailed || got["other"] != reconciler.OutcomeSucceeded {
		t.Fatalf("outcomes %v", got)
	}
	for _, r := range results {
		if r.Action.Instance == "web" && !strings.Contains(r.Err.Error(), "did not answer") {
			t.Errorf("error: %v", r.Err)
		}
	}
	if slices.Contains(drv.CallLog(), "Start container jk-demo-web") {
		t.Error("the agent was started although its daemon never answered")
	}
}

// The daemon and its data volume removed by hand: both come back, the
// volume before the sidecar that mounts it (or the engine would make an
// unlabelled one), and the agent keeps running.
func TestExecuteRecreatesTheDaemonAndItsVolume(t *testing.T) {
	drv, f := privateSetup(t, fleetOf())
	_, results := execute(t, drv, f, nil, reconciler.ExecOptions{StateDir: f.StateDir})
	if o := outcomes(results)["web"]; o != reconciler.OutcomeSucceeded {
		t.Fatalf("create: %s", o)
	}
	agentID := objectID(drv, name("web"))
	mustDo(t, drv.RemoveContainer(name("web")+"-dind"))
	mustDo(t, drv.Remove(t.Context(), drivers.KindVolume, objectIDOf(drv, drivers.KindVolume, "jk-demo-web-dind-data")))
	drv.ResetCalls()
	_, results = execute(t, drv, f, nil, reconciler.ExecOptions{StateDir: f.StateDir})
	if o := outcomes(results)["web"]; o != reconciler.OutcomeSucceeded {
		t.Fatalf("repair: %s: %v", o, results[0].Err)
	}
	log := drv.CallLog()
	vol, side := slices.Index(log, "Create volume jk-demo-web-dind-data"), slices.Index(log, "Create container jk-demo-web-dind")
	if vol < 0 || side < 0 || vol > side {
		t.Errorf("the volume must be created before the sidecar: %v", log)
	}
	if objectID(drv, name("web")) != agentID {
		t.Error("the agent was recreated for its daemon")
	}
}

func objectIDOf(drv *fake.Driver, kind drivers.Kind, name string) string {
	o, ok := drv.Object(kind, name)
	if !ok {
		return ""
	}
	return o.ID
}

// A daemon that never answered stays up (the engine runs it); the next
// pass that starts the agent asks it again instead of trusting it.
func TestExecuteAsksARunningDaemonBeforeStartingTheAgent(t *testing.T) {
	drv, f := privateSetup(t, fleetOf())
	drv.FailOn(fake.MethodWaitReady, name("web")+"-dind", errors.New("did not answer within 90s"))
	_, results := execute(t, drv, f, nil, reconciler.ExecOptions{StateDir: f.StateDir})
	if o := outcomes(results)["web"]; o != reconciler.OutcomeFailed {
		t.Fatalf("first pass: %s", o)
	}
	drv.ResetCalls()
	_, results = execute(t, drv, f, nil, reconciler.ExecOptions{StateDir: f.StateDir})
	if o := outcomes(results)["web"]; o != reconciler.OutcomeFailed {
		t.Errorf("second pass: %s (the daemon still does not answer)", o)
	}
	if slices.Contains(drv.CallLog(), "Start container jk-demo-web") {
		t.Errorf("the agent was started against a daemon that never answered: %v", drv.CallLog())
	}
	drv.FailOn(fake.MethodWaitReady, name("web")+"-dind", nil)
	drv.ResetCalls()
	_, results = execute(t, drv, f, nil, reconciler.ExecOptions{StateDir: f.StateDir})
	if o := outcomes(results)["web"]; o != reconciler.OutcomeSucceeded {
		t.Fatalf("once it answers: %s", o)
	}
	log := drv.CallLog()
	if w, s := slices.Index(log, "WaitReady container jk-demo-web-dind"), slices.Index(log, "Start container jk-demo-web"); w < 0 || s < w {
		t.Errorf("order: %v", log)
	}
}
