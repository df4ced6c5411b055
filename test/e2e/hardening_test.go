package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/contract"
	"github.com/jackin-dev/jackin/schema"
	"github.com/jackin-dev/jackin/store"
)

// hardeningProbe is the part of `/agent probe` these tests read.
type hardeningProbe struct {
	UID              int    `json:"uid"`
	GID              int    `json:"gid"`
	CapEff           string `json:"capEff"`
	CapBnd           string `json:"capBnd"`
	NoNewPrivs       int    `json:"noNewPrivs"`
	NofileSoft       uint64 `json:"nofileSoft"`
	NofileHard       uint64 `json:"nofileHard"`
	MemoryLimitBytes int64  `json:"memoryLimitBytes"`
	PidsLimit        int64  `json:"pidsLimit"`
	Paths            []struct {
		Path     string `json:"path"`
		Writable bool   `json:"writable"`
		Error    string `json:"error"`
	} `json:"paths"`
}

func (e *env) hardeningProbe(instance string, dirs ...string) hardeningProbe {
	e.t.Helper()
	out := docker(e.t, append([]string{"exec", e.name(instance), "/agent", "probe"}, dirs...)...)
	var p hardeningProbe
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		e.t.Fatalf("probe output: %v\n%s", err, out)
	}
	e.t.Logf("probe %s: %s", instance, out)
	return p
}

// TestHardeningNofileLimit: resources.nofile is the open-files limit of the
// agent's processes (soft and hard), as the contract says, next to the
// memory and pids limits; an instance without it keeps the engine's default.
func TestHardeningNofileLimit(t *testing.T) {
	e := newEnv(t)
	m := e.manifest(fmt.Sprintf(`instances: {
	limited: {
		role: image: %[1]q
		command: ["/agent", "idle"]
		resources: {memory: "64Mi", pids: 40, nofile: 2048}
	}
	plain: {
		role: image: %[1]q
		command: ["/agent", "idle"]
	}
}
`, agentImage))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")

	doc, r := e.explainDoc("-f", m, "limited")
	if len(doc.Instances) != 1 {
		t.Fatalf("want one contract:\n%s", r)
	}
	c := doc.Instances[0]
	if c.Resources.Nofile.Value != 2048 || c.Resources.Nofile.Unlimited || c.Resources.Nofile.Unit != "files" {
		t.Fatalf("contract nofile: %+v", c.Resources.Nofile)
	}
	p := e.hardeningProbe("limited")
	if p.NofileSoft != uint64(c.Resources.Nofile.Value) || p.NofileHard != uint64(c.Resources.Nofile.Value) {
		t.Errorf("nofile: contract %+v, in force soft %d hard %d", c.Resources.Nofile, p.NofileSoft, p.NofileHard)
	}
	if p.MemoryLimitBytes != c.Resources.Memory.Value || p.PidsLimit != c.Resources.Pids.Value {
		t.Errorf("limits: contract memory %+v pids %+v, in force %d and %d", c.Resources.Memory, c.Resources.Pids, p.MemoryLimitBytes, p.PidsLimit)
	}
	if got := docker(t, "inspect", "--format", "{{json .HostConfig.Ulimits}}", e.name("limited")); !strings.Contains(got, `"Name":"nofile","Hard":2048,"Soft":2048`) {
		t.Errorf("engine ulimits: %s", got)
	}

	plainDoc, _ := e.explainDoc("-f", m, "plain")
	if n := plainDoc.Instances[0].Resources.Nofile; !n.Unlimited || !strings.Contains(n.Text, "engine default") {
		t.Errorf("plain contract nofile: %+v", n)
	}
	if pp := e.hardeningProbe("plain"); pp.NofileSoft == 2048 {
		t.Errorf("an instance without nofile got the limit of another: %+v", pp)
	}

	// Raising the limit recreates with the field as the reason.
	m = e.manifest(fmt.Sprintf(`instances: {
	limited: {
		role: image: %[1]q
		command: ["/agent", "idle"]
		resources: {memory: "64Mi", pids: 40, nofile: 4096}
	}
	plain: {
		role: image: %[1]q
		command: ["/agent", "idle"]
	}
}
`, agentImage))
	d := e.jackin("diff", "-f", m)
	mustCode(t, d, 1, "diff after raising nofile")
	if !strings.Contains(d.stdout, "resources changed: nofile 2048 → 4096") || strings.Contains(d.stdout, "-/+ plain") || !strings.Contains(d.stdout, "-/+ limited") {
		t.Errorf("diff should recreate only limited, for nofile 2048 → 4096:\n%s", d)
	}
}

// TestHardeningOOMKilled: an agent that allocates past its memory limit is
// killed by the kernel; `jackin get` shows it as oom-killed (not merely
// stopped) and the store keeps one oom-killed event for the kill, which a
// later apply (restarting the container, which clears the engine's flag)
// does not lose.
func TestHardeningOOMKilled(t *testing.T) {
	e := newEnv(t)
	m := e.manifest(fmt.Sprintf(`instances: {
	hog: {
		role: image: %[1]q
		command: ["/agent", "alloc", "256"]
		resources: {memory: "32Mi"}
	}
	fine: {
		role: image: %[1]q
		command: ["/agent", "exit", "0"]
	}
}
`, agentImage))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := e.containers()
		if st[e.name("hog")] == "exited" && st[e.name("fine")] == "exited" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containers did not exit: %v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := docker(t, "inspect", "--format", "{{.State.OOMKilled}} {{.State.ExitCode}}", e.name("hog")); got != "true 137" {
		t.Fatalf("the engine does not report an OOM kill: %q", got)
	}

	r := e.jackin("get", "-f", m, "-o", "json")
	mustCode(t, r, 0, "get")
	var list struct {
		Items []struct {
			Instance string `json:"instance"`
			Observed string `json:"observed"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("get -o json: %v\n%s", err, r)
	}
	observed := map[string]string{}
	for _, it := range list.Items {
		observed[it.Instance] = it.Observed
	}
	if observed["hog"] != "oom-killed" || observed["fine"] != "stopped" {
		t.Fatalf("get observed %v, want hog oom-killed and fine stopped\n%s", observed, r)
	}
	table := e.jackin("get", "-f", m)
	mustCode(t, table, 0, "get (table)")
	if !strings.Contains(table.stdout, "oom-killed") {
		t.Errorf("get table does not show oom-killed:\n%s", table)
	}

	// get again and apply (which restarts hog): still one event for the kill.
	mustCode(t, e.jackin("get", "-f", m), 0, "get again")
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply restarts")
	st, err := store.Open(context.Background(), e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.Events(context.Background(), e.fleet, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ooms []store.Event
	for _, ev := range evs {
		if ev.Kind == "oom-killed" {
			ooms = append(ooms, ev)
		}
	}
	if len(ooms) < 1 || ooms[len(ooms)-1].Instance != "hog" || !strings.Contains(ooms[len(ooms)-1].Message, "OOM killer") {
		t.Fatalf("store events: want an oom-killed event for hog, got %+v", evs)
	}
	for _, ev := range ooms {
		if ev.Instance != "hog" {
			t.Errorf("oom-killed event for %s: %+v", ev.Instance, ev)
		}
	}
	// The first kill is recorded once however often it was observed (a
	// second kill after the restart may add one more).
	seen := map[string]int{}
	for _, ev := range ooms {
		seen[ev.Message]++
		if seen[ev.Message] > 1 {
			t.Errorf("the same kill recorded twice: %+v", ooms)
		}
	}
}

// capBits are the capability numbers (linux/capability.h) of the engine's
// default set, to turn a contract's list into /proc/self/status's mask.
var capBits = map[string]uint{
	"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6, "SETUID": 7,
	"SETPCAP": 8, "NET_BIND_SERVICE": 10, "NET_RAW": 13, "SYS_CHROOT": 18, "MKNOD": 27, "AUDIT_WRITE": 29, "SETFCAP": 31,
}

func capMask(t *testing.T, names []string) uint64 {
	t.Helper()
	var m uint64
	for _, n := range names {
		b, ok := capBits[n]
		if !ok {
			t.Fatalf("capability %s has no known bit", n)
		}
		m |= 1 << b
	}
	return m
}

// TestHardeningProfiles: for each profile, what the contract promises is
// what the running container shows from inside: the capability bounding
// and effective sets, no_new_privs, a read-only root (with /tmp and HOME
// writable), the uid and gid, and the cgroup and open-files limits; the
// engine's host config agrees (CPUs, seccomp left at the default). A field
// the manifest sets overrides the profile, and the contract says which
// value came from where.
func TestHardeningProfiles(t *testing.T) {
	e := newEnv(t)
	m := e.manifest(fmt.Sprintf(`defaults: {
	role: image: %[1]q
	command: ["/agent", "idle"]
}
instances: {
	locked: profile: "locked"
	hardened: {
		profile: "hardened"
		resources: {memory: "96Mi", cpus: 1}
	}
	standard: {}
	tuned: {
		profile: "locked"
		resources: pids: 64
		security: {readOnlyRoot: false, user: "1234:5678"}
	}
}
`, agentImage))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	hostUser := schema.HostUser(os.Getuid(), os.Getgid())

	for _, name := range []string{"locked", "hardened", "standard", "tuned"} {
		t.Run(name, func(t *testing.T) {
			doc, r := e.explainDoc("-f", m, name)
			if len(doc.Instances) != 1 {
				t.Fatalf("want one contract:\n%s", r)
			}
			c := doc.Instances[0]
			p := e.hardeningProbe(name, "/", "/tmp", schema.HomeDir)
			checkProfileInContainer(t, e, name, c, p)

			switch name {
			case "locked":
				if c.Sandbox.Profile != "locked" || c.Sandbox.User != hostUser+" (from profile locked): not root" {
					t.Errorf("locked sandbox: %+v", c.Sandbox)
				}
				if c.Filesystem.RootFS.Writable || c.Resources.Memory.Value != 2<<30 || c.Resources.Nofile.Value != 4096 || c.Resources.Pids.Value != 256 ||
					c.Resources.Memory.Source != "profile locked" || c.Resources.CPUs.Value != 1e9 {
					t.Errorf("locked contract: rootfs %+v resources %+v", c.Filesystem.RootFS, c.Resources)
				}
				if p.CapBnd != "0000000000000000" || p.CapEff != "0000000000000000" {
					t.Errorf("locked caps inside: bnd %s eff %s", p.CapBnd, p.CapEff)
				}
			case "hardened":
				if c.Resources.Memory.Value != 96<<20 || c.Resources.Memory.Source != "manifest" || c.Resources.Pids.Source != "profile hardened" ||
					c.Resources.CPUs.Source != "manifest" || c.Resources.MemoryReservation.Value != 96<<20 || c.Resources.MemoryReservation.Source != "profile hardened (capped at resources.memory)" {
					t.Errorf("hardened overrides: %+v", c.Resources)
				}
				if !c.Filesystem.RootFS.Writable || c.Sandbox.Sources["security.capabilities"] != "profile hardened" {
					t.Errorf("hardened sandbox: %+v rootfs %+v", c.Sandbox, c.Filesystem.RootFS)
				}
			case "standard":
				if c.Sandbox.Profile != "standard" || p.UID != 0 || p.NoNewPrivs != 0 || !c.Resources.Memory.Unlimited {
					t.Errorf("standard: sandbox %+v probe %+v", c.Sandbox, p)
				}
			case "tuned":
				if p.UID != 1234 || p.GID != 5678 || c.Sandbox.Sources["security.user"] != "manifest" || c.Sandbox.Sources["security.readOnlyRoot"] != "manifest" ||
					!c.Filesystem.RootFS.Writable || c.Resources.Pids.Value != 64 || c.Resources.Pids.Source != "manifest" || c.Resources.Nofile.Source != "profile locked" {
					t.Errorf("tuned: sandbox %+v rootfs %+v resources %+v probe %+v", c.Sandbox, c.Filesystem.RootFS, c.Resources, p)
				}
			}
		})
	}
}

// checkProfileInContainer compares one contract with what the container
// shows from inside and with the engine's host config.
func checkProfileInContainer(t *testing.T, e *env, name string, c contract.Contract, p hardeningProbe) {
	t.Helper()
	// User.
	wantUID, wantGID := 0, 0
	if u, _, _ := strings.Cut(c.Sandbox.User, " "); u != "" && !strings.HasPrefix(c.Sandbox.User, "image default") {
		uid, gid, _ := strings.Cut(strings.TrimSuffix(u, ":"), ":")
		wantUID, _ = strconv.Atoi(uid)
		wantGID, _ = strconv.Atoi(gid)
	}
	if p.UID != wantUID || p.GID != wantGID {
		t.Errorf("%s: contract user %q, inside uid %d gid %d", name, c.Sandbox.User, p.UID, p.GID)
	}
	// Capabilities: the bounding set is the contract's set; a non-root
	// user holds none of it effectively.
	bnd, err1 := strconv.ParseUint(p.CapBnd, 16, 64)
	eff, err2 := strconv.ParseUint(p.CapEff, 16, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("%s: caps inside: %+v", name, p)
	}
	if want := capMask(t, c.Sandbox.Capabilities.Effective); bnd != want {
		t.Errorf("%s: contract capabilities %v (mask %x), bounding set inside %x", name, c.Sandbox.Capabilities.Effective, want, bnd)
	}
	if wantEff := map[bool]uint64{true: bnd, false: 0}[p.UID == 0]; eff != wantEff {
		t.Errorf("%s: effective caps inside %x, want %x (uid %d)", name, eff, wantEff, p.UID)
	}
	// no_new_privs.
	if (p.NoNewPrivs == 1) != c.Sandbox.NoNewPrivileges {
		t.Errorf("%s: contract no-new-privileges %v, inside NoNewPrivs %d", name, c.Sandbox.NoNewPrivileges, p.NoNewPrivs)
	}
	// Root filesystem, /tmp and HOME.
	for _, pp := range p.Paths {
		switch pp.Path {
		case "/":
			// A writable root still refuses a non-root user the image's
			// root-owned directories: permission denied, not read-only.
			readOnly := !pp.Writable && strings.Contains(pp.Error, "read-only file system")
			if readOnly == c.Filesystem.RootFS.Writable || (c.Filesystem.RootFS.Writable && !pp.Writable && p.UID == 0) {
				t.Errorf("%s: contract root writable=%v, inside: %+v", name, c.Filesystem.RootFS.Writable, pp)
			}
		case "/tmp", schema.HomeDir:
			if !c.Filesystem.RootFS.Writable && !pp.Writable {
				t.Errorf("%s: read-only root, but %s is not writable: %+v", name, pp.Path, pp)
			}
		}
	}
	// Limits.
	lim := func(q contract.Quantity) int64 {
		if q.Unlimited {
			return -1
		}
		return q.Value
	}
	if p.MemoryLimitBytes != lim(c.Resources.Memory) || p.PidsLimit != lim(c.Resources.Pids) {
		t.Errorf("%s: contract memory %+v pids %+v, inside %d and %d", name, c.Resources.Memory, c.Resources.Pids, p.MemoryLimitBytes, p.PidsLimit)
	}
	if !c.Resources.Nofile.Unlimited && (p.NofileSoft != uint64(c.Resources.Nofile.Value) || p.NofileHard != uint64(c.Resources.Nofile.Value)) {
		t.Errorf("%s: contract nofile %+v, inside %d/%d", name, c.Resources.Nofile, p.NofileSoft, p.NofileHard)
	}
	var hc struct {
		NanoCpus          int64
		MemoryReservation int64
		SecurityOpt       []string
	}
	if err := json.Unmarshal([]byte(docker(t, "inspect", "--format", "{{json .HostConfig}}", e.name(name))), &hc); err != nil {
		t.Fatal(err)
	}
	if hc.NanoCpus != c.Resources.CPUs.Value || hc.MemoryReservation != c.Resources.MemoryReservation.Value {
		t.Errorf("%s: contract cpus %+v reservation %+v, engine %d and %d", name, c.Resources.CPUs, c.Resources.MemoryReservation, hc.NanoCpus, hc.MemoryReservation)
	}
	for _, o := range hc.SecurityOpt {
		if strings.HasPrefix(o, "seccomp") {
			t.Errorf("%s: seccomp is not the engine default: %v", name, hc.SecurityOpt)
		}
	}
}

// TestHardeningUserOwnsWrites: under a profile the agent runs as the
// user the contract names, so what it writes to a read-write mount is
// owned by that UID:GID on the host (the operator's, with user "host" or a
// hardened or locked profile run by a non-root operator).
func TestHardeningUserOwnsWrites(t *testing.T) {
	e := newEnv(t)
	work := e.dir + "/work"
	if err := os.MkdirAll(work, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(work, 0o777); err != nil {
		t.Fatal(err)
	}
	m := e.manifest(fmt.Sprintf(`instances: owner: {
	role: image: %q
	command: ["/agent", "idle"]
	profile: "locked"
	security: user: "1234:5678"
	mounts: [{src: "./work", dst: "/work", mode: "rw"}]
}
`, agentImage))
	mustCode(t, e.jackin("apply", "-f", m), 0, "apply")
	docker(t, "exec", e.name("owner"), "/agent", "write", "/work/out.txt", "hello")
	fi, err := os.Stat(work + "/out.txt")
	if err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid != 1234 || st.Gid != 5678 {
		t.Fatalf("file written by the agent: %+v, want owned by 1234:5678", fi.Sys())
	}
	// The read-only root refuses the same write outside the mounts.
	if out, err := exec.Command("docker", "exec", e.name("owner"), "/agent", "write", "/out.txt", "x").CombinedOutput(); err == nil || !strings.Contains(string(out), "read-only file system") {
		t.Errorf("a write to / under the locked profile: err %v, %s", err, out)
	}
}

// A read-only root with a role that writes to / fails apply with the reason,
// instead of leaving an agent that died at once.
func TestReadOnlyRootWithARoleThatWritesToRootFailsClearly(t *testing.T) {
	e := newEnv(t)
	m := e.manifest(fmt.Sprintf(`instances: {
	writer: {role: image: %[1]q, profile: "locked", command: ["write", "/state", "x"]}
	fine: {role: image: %[1]q, profile: "locked"}
}`, agentImage))
	r := e.jackin("apply", "-f", m)
	if r.code == 0 {
		t.Fatalf("apply succeeded although the agent cannot write its root:\n%s", r)
	}
	out := r.stdout + r.stderr
	for _, want := range []string{"the agent container " + e.name("writer") + " exited with status 1 right after it started", `its log says "read-only file system"`, "profile locked", "security.readOnlyRoot: false"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, r)
		}
	}
	if strings.Contains(out, "agent: write: open /state") {
		t.Errorf("the agent's own log is quoted (it may hold secrets):\n%s", r)
	}
	if got := e.containers(); got[e.name("fine")] != "running" {
		t.Errorf("the other instance did not proceed: %v", got)
	}
}
