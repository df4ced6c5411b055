package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/test/harness"
)

// The OrbStack backend against the orb stand-in (test/harness/orb): a
// machine is a container of the local engine running its own dockerd.

var (
	orbOnce sync.Once
	orbDir  string
	orbErr  error
)

// orbEnv builds the stand-in (once) and the private-daemon image its
// machines run, and returns the environment that puts it on PATH with a
// call log of this test's own.
func orbEnv(t *testing.T, e *env) (extra []string, logPath string) {
	t.Helper()
	orbOnce.Do(func() {
		if orbErr = harness.BuildDindImage(); orbErr != nil {
			return
		}
		if orbDir, orbErr = os.MkdirTemp("", "jackin-orb-"); orbErr != nil {
			return
		}
		_, orbErr = harness.BuildOrb(orbDir)
	})
	if orbErr != nil {
		t.Fatalf("orb stand-in: %v", orbErr)
	}
	t.Cleanup(func() { harness.RemoveOrbMachines("jk-" + e.fleet + "-") })
	logPath = filepath.Join(e.dir, "orb.log")
	mac := filepath.Join(e.dir, "mac")
	if err := os.MkdirAll(mac, 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{"PATH=" + orbDir + string(os.PathListSeparator) + os.Getenv("PATH"), "ORB_SIM_LOG=" + logPath, "ORB_SIM_MAC=" + mac}, logPath
}

// inMachine runs a docker command against a machine's own engine.
func inMachine(machine string, args ...string) (string, error) {
	out, err := exec.Command("docker", append([]string{"exec", harness.OrbMachineContainer(machine), "docker"}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestOrbStackFleet: one fleet with a Docker instance and an OrbStack
// instance. The OrbStack agent runs in its machine's engine, not the
// host's; the machine shares exactly the instance's mount sources (ro
// enforced inside, rw visible on the host); a second apply creates and
// imports nothing; exec and logs go through the machine; a machine
// deleted out of band is repaired; delete removes the machine.
func TestOrbStackFleet(t *testing.T) {
	e := newEnv(t)
	extra, logPath := orbEnv(t, e)
	img := gitImage(t)
	ro, rw := filepath.Join(e.dir, "ro"), filepath.Join(e.dir, "rw")
	for _, d := range []string{ro, rw} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(ro, "seen"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := e.manifest(`instances: {
	d: role: image: "` + agentImage + `"
	o: {
		backend: "orbstack-isolated"
		role: image: "` + img + `"
		mounts: [{src: "` + ro + `", dst: "/ro", mode: "ro"}, {src: "` + rw + `", dst: "/rw", mode: "rw"}]
	}
}`)
	machine := e.name("o")

	r := e.jackinEnv(extra, "apply", "-f", m, "-v", "2")
	mustCode(t, r, 0, "first apply")
	for _, want := range []string{`"creating machine"`, `"shares":`, `"enforcement":"guest-enforced"`, `"image transferred"`, `"machine docker ready"`, `"orbstack version probe"`,
		// A new machine's image is exported while the machine is made,
		// and the transfer reads that export.
		`"image export started beside the machine's making"`, `"exportStartedMsBefore"`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("-v 2 log lacks %s", want)
		}
	}

	// The Docker instance on the host, the OrbStack agent only in its machine.
	host := e.containers()
	if host[e.name("d")] != "running" {
		t.Fatalf("docker instance on the host: %v", host)
	}
	if _, ok := host[machine]; ok {
		t.Fatalf("the OrbStack agent %s runs on the host engine: %v", machine, host)
	}
	if got := harness.OrbMachines("jk-" + e.fleet + "-"); !slices.Equal(got, []string{machine}) {
		t.Fatalf("machines %v, want [%s]", got, machine)
	}
	if out, err := inMachine(machine, "ps", "--filter", "name="+machine, "--format", "{{.Names}} {{.State}}"); err != nil || out != machine+" running" {
		t.Fatalf("agent in the machine's engine: %q %v", out, err)
	}
	// orb runs a command as the machine's default user (the Mac's user,
	// not in the docker group), whom the machine's Docker refuses: jackin
	// reaches that engine as root, and every one of its dials says so.
	orbCmd := exec.Command(filepath.Join(orbDir, "orb"), "-m", machine, "docker", "version")
	orbCmd.Env = append(os.Environ(), extra...)
	if out, err := orbCmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "permission denied") {
		t.Errorf("the stand-in's default user reached the machine's Docker (want permission denied, as in a real machine): %v\n%s", err, out)
	}
	for _, args := range harness.OrbCalls(logPath) {
		if slices.Contains(args, "dial-stdio") && !slices.Equal(args, []string{"-m", machine, "-u", "root", "docker", "system", "dial-stdio"}) {
			t.Errorf("jackin dialled the machine's engine with orb %v, want -u root", args)
		}
	}
	defer func() {
		// Checked at the end: the marker is read when a later apply
		// adopts the machine.
		n := 0
		for _, args := range harness.OrbCalls(logPath) {
			if slices.Contains(args, "/jackin/machine.json") {
				n++
				if !slices.Equal(args, []string{"-m", machine, "-u", "root", "cat", "/jackin/machine.json"}) {
					t.Errorf("jackin read the machine's marker with orb %v, want -u root", args)
				}
			}
		}
		if n == 0 {
			t.Errorf("no marker read in the log: the check above proves nothing")
		}
	}()

	// Shares: the mount sources and jackin's own directories of this
	// instance alone (never one another instance's containers use, such as
	// the supervisor every Docker agent runs: a share is writable from
	// inside the machine), never a parent of them, and no /mnt/mac.
	binds := dockerLines(t, "inspect", "--format", `{{range .Mounts}}{{if eq .Type "bind"}}{{.Source}}{{"\n"}}{{end}}{{end}}`, harness.OrbMachineContainer(machine))
	for _, want := range []string{ro, rw} {
		if !slices.Contains(binds, want) {
			t.Errorf("machine shares %v, want %s among them", binds, want)
		}
	}
	for _, b := range binds {
		switch {
		case b == ro || b == rw || b == "/sys/fs/cgroup": // the stand-in's own cgroup bind
		case strings.HasPrefix(b, e.stateDir+"/") && strings.Contains(b+"/", "/"+e.fleet+"/o/"):
		default:
			t.Errorf("machine shares %s: not one of the instance's mount sources", b)
		}
		if b == e.dir || b == e.stateDir {
			t.Errorf("machine shares the parent directory %s", b)
		}
	}
	if out, err := exec.Command("docker", "exec", harness.OrbMachineContainer(machine), "ls", "/mnt/mac").CombinedOutput(); err == nil {
		t.Errorf("an isolated machine has /mnt/mac: %s", out)
	}

	// ro enforced by the machine's Docker, rw visible on the host, through jackin exec.
	r = e.jackinEnv(extra, "exec", "-f", m, "o", "--", "sh", "-c", "cat /ro/seen && echo x > /ro/new")
	if r.code == 0 || !strings.Contains(r.stdout, "from the host") {
		t.Errorf("write to the ro share: want the file read and the write refused, got:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(ro, "new")); err == nil {
		t.Errorf("a write to the ro share reached the host")
	}
	mustCode(t, e.jackinEnv(extra, "exec", "-f", m, "o", "--", "sh", "-c", "echo agent-wrote > /rw/out"), 0, "write to the rw share")
	if b, err := os.ReadFile(filepath.Join(rw, "out")); err != nil || string(b) != "agent-wrote\n" {
		t.Errorf("rw share on the host: %q %v", b, err)
	}
	r = e.jackinEnv(extra, "logs", "-f", m, "o")
	mustCode(t, r, 0, "logs through the machine")

	// Converged: no machine made, no image imported, diff exits 0.
	creates, loads := harness.CountOrbCalls(logPath, "create"), harness.OrbImageLoads(machine)
	if creates != 1 || loads != 1 {
		t.Errorf("first apply: %d creates, %d loads, want 1 and 1", creates, loads)
	}
	r = e.jackinEnv(extra, "apply", "-f", m)
	mustCode(t, r, 0, "second apply")
	if !strings.Contains(r.stdout, "No changes") {
		t.Errorf("second apply changed something:\n%s", r)
	}
	mustCode(t, e.jackinEnv(extra, "diff", "-f", m), 0, "converged diff")
	if c, l := harness.CountOrbCalls(logPath, "create"), harness.OrbImageLoads(machine); c != creates || l != loads {
		t.Errorf("converged apply and diff: creates %d→%d, loads %d→%d, want none", creates, c, loads, l)
	}

	// Out of band: the machine deleted with orb is seen and repaired.
	orb := exec.Command(filepath.Join(orbDir, "orb"), "delete", "-f", machine)
	orb.Env = append(os.Environ(), extra...)
	if out, err := orb.CombinedOutput(); err != nil {
		t.Fatalf("orb delete: %v %s", err, out)
	}
	mustCode(t, e.jackinEnv(extra, "diff", "-f", m), 1, "diff after orb delete")
	mustCode(t, e.jackinEnv(extra, "apply", "-f", m), 0, "repairing apply")
	if out, err := inMachine(machine, "ps", "--filter", "name="+machine, "--format", "{{.State}}"); err != nil || out != "running" {
		t.Fatalf("agent after the repair: %q %v", out, err)
	}

	// orb missing from PATH: a clear error, the Docker instance untouched.
	r = e.jackinEnv([]string{"PATH=" + filepath.Dir(jackinBin) + ":/usr/local/bin:/usr/bin:/bin"}, "apply", "-f", m)
	if r.code != 2 || !strings.Contains(r.stderr, "orb command") || !strings.Contains(r.stderr, "install OrbStack") {
		t.Errorf("apply without orb: want exit 2 naming the orb command, got:\n%s", r)
	}
	if e.containers()[e.name("d")] != "running" {
		t.Errorf("the docker instance after a failed apply: %v", e.containers())
	}
	mustCode(t, e.jackinEnv([]string{"PATH=/usr/bin:/bin"}, "explain", "-f", m, "o"), 0, "explain without orb")

	// Delete removes the machine, its supervisor copy on the host, and
	// the Docker instance.
	machineFiles := filepath.Join(e.stateDir, "machines", e.fleet)
	if _, err := os.Stat(filepath.Join(machineFiles, "o", "supervisor", "jackin")); err != nil {
		t.Errorf("the machine's own supervisor copy: %v", err)
	}
	mustCode(t, e.jackinEnv(extra, "delete", "-f", m), 0, "delete")
	if got := harness.OrbMachines("jk-" + e.fleet + "-"); len(got) != 0 {
		t.Errorf("machines after delete: %v", got)
	}
	if _, err := os.Stat(machineFiles); !os.IsNotExist(err) {
		t.Errorf("the machine's files on the host after delete: %v", err)
	}
	if len(e.containers()) != 0 {
		t.Errorf("containers after delete: %v", e.containers())
	}
}

// TestOrbStackOrphanAndInterrupt: an apply killed while it provisions the
// machine converges on the next apply with one machine; an instance
// removed from the manifest has its machine collected.
func TestOrbStackOrphanAndInterrupt(t *testing.T) {
	e := newEnv(t)
	extra, logPath := orbEnv(t, e)
	m := e.manifest(`instances: {
	a: {backend: "orbstack-isolated", role: image: "` + agentImage + `"}
	b: {backend: "orbstack-isolated", role: image: "` + agentImage + `"}
}`)
	cmd := exec.Command(jackinBin, "--state-dir", e.stateDir, "apply", "-f", m)
	cmd.Env = append(os.Environ(), extra...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for harness.CountOrbCalls(logPath, "create") == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if harness.CountOrbCalls(logPath, "create") == 0 {
		t.Fatal("the apply made no machine before the deadline")
	}

	mustCode(t, e.jackinEnv(extra, "apply", "-f", m), 0, "apply after the kill")
	want := []string{e.name("a"), e.name("b")}
	got := harness.OrbMachines("jk-" + e.fleet + "-")
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("machines after the kill and a second apply: %v, want %v", got, want)
	}
	for _, name := range want {
		if out, err := inMachine(name, "ps", "-a", "--filter", "label=dev.jackin.fleet="+e.fleet, "--format", "{{.Names}} {{.State}}"); err != nil || out != name+" running" {
			t.Errorf("machine %s holds %q (%v), want one running agent", name, out, err)
		}
	}
	mustCode(t, e.jackinEnv(extra, "diff", "-f", m), 0, "converged after the kill")

	// b leaves the manifest: its machine goes, a's stays.
	e.manifest(`instances: a: {backend: "orbstack-isolated", role: image: "` + agentImage + `"}`)
	mustCode(t, e.jackinEnv(extra, "apply", "-f", m), 0, "apply without b")
	if got := harness.OrbMachines("jk-" + e.fleet + "-"); !slices.Equal(got, []string{e.name("a")}) {
		t.Errorf("machines after b left: %v, want [%s]", got, e.name("a"))
	}
}

// TestOrbStackFailsClosed: an OrbStack that refuses --isolate-network is
// an error when the instance asks for the host network blocked (the
// default), never a machine with the host network open.
func TestOrbStackFailsClosed(t *testing.T) {
	e := newEnv(t)
	extra, _ := orbEnv(t, e)
	extra = append(extra, "ORB_SIM_REFUSE_ISOLATE_NETWORK=1")
	m := e.manifest(`instances: o: {backend: "orbstack-isolated", role: image: "` + agentImage + `"}`)
	r := e.jackinEnv(extra, "apply", "-f", m)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "cannot block the host network") {
		t.Errorf("apply on an OrbStack without --isolate-network: want a failure naming it, got:\n%s", r)
	}
	if got := harness.OrbMachines("jk-" + e.fleet + "-"); len(got) != 0 {
		t.Errorf("machines made anyway: %v", got)
	}
	// Too old for isolated machines at all: refused when the backend opens.
	r = e.jackinEnv(append(extra, "ORB_SIM_VERSION=2.0.5"), "apply", "-f", m)
	if r.code != 2 || !strings.Contains(r.stderr, "has no isolated machines") {
		t.Errorf("apply on OrbStack 2.0.5: want exit 2, got:\n%s", r)
	}
}

// TestOrbStackAttach: attach reaches an agent in its machine through a
// real pseudo-terminal (the reply, detach keys), exec and the agent's
// state go through the machine too, and a change of the machine's
// settings is planned and refused rather than applied to the machine
// that has the old ones.
func TestOrbStackAttach(t *testing.T) {
	e := newEnv(t)
	extra, _ := orbEnv(t, e)
	img := agtRuntimeImage(t)
	m := e.manifest(`instances: o: {backend: "orbstack-isolated", agent: "claude", role: image: "` + img + `"}`)
	mustCode(t, e.jackinEnv(extra, "apply", "-f", m), 0, "apply")

	p := e.agtAttachEnv(t, extra, "o")
	p.waitText("standin claude", 30*time.Second)
	p.send("hello machine\r")
	p.waitText("reply: hello machine", 10*time.Second)
	p.send("\x10\x11") // ctrl-p ctrl-q
	if code := p.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("detach: exit %d\n%s", code, p)
	}
	if out, err := inMachine(e.name("o"), "inspect", "--format", "{{.State.Status}}", e.name("o")); err != nil || out != "running" {
		t.Errorf("the agent after detach: %q %v", out, err)
	}
	r := e.jackinEnv(extra, "exec", "-f", m, "o", "--", "sh", "-c", "echo in-machine")
	mustCode(t, r, 0, "exec")
	if !strings.Contains(r.stdout, "in-machine") {
		t.Errorf("exec output: %s", r)
	}

	// The machine's settings are fixed when it is made: a change shows in
	// diff and apply refuses it, naming both, never reusing the machine.
	e.manifest(`instances: o: {backend: "orbstack-isolated", agent: "claude", role: image: "` + img + `", orbstack: sshAgent: "on"}`)
	r = e.jackinEnv(extra, "diff", "-f", m)
	if r.code != 1 || !strings.Contains(r.stdout, "orbstack machine settings changed") {
		t.Errorf("diff after an orbstack settings change: want exit 1 naming it, got:\n%s", r)
	}
	r = e.jackinEnv(extra, "apply", "-f", m)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "settings are fixed when it is made") {
		t.Errorf("apply with other machine settings: want a refusal, got:\n%s", r)
	}
	// Refused before anything was stopped: the agent still runs.
	if out, err := inMachine(e.name("o"), "inspect", "--format", "{{.State.Status}}", e.name("o")); err != nil || out != "running" {
		t.Errorf("the agent after the refused recreate: %q %v, want it left running", out, err)
	}
}
