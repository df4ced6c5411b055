// Command orb is a stand-in for OrbStack's orb CLI on Linux, for tests
// only (OrbStack runs only on macOS). It follows OrbStack's documentation
// of the commands jackin uses:
//
//	orb version
//	orb list [-f json]                 [{id, name, image: {distro, version, arch, variant},
//	                                     config: {isolated, default_username}, builtin, state}]
//	orb info NAME [-f json]            {record, disk_size, ip4, ip6}
//	orb create [--isolated] [--isolate-network] [--forward-ssh-agent]
//	           [--mount SRC[:DEST]]... [-c|--user-data FILE] DISTRO[:VERSION] NAME
//	orb start|stop NAME, orb delete [-f] NAME
//	orb -m NAME [-u USER] CMD...        (and orb run -m NAME CMD...)
//
// with its documented errors ("machine not found: NAME", "mount source
// must be an absolute path"). A machine is a container of the local Docker
// engine named orbsim-NAME, running its own dockerd from ORB_SIM_IMAGE
// (default the e2e private-daemon image); a --mount is a bind of exactly
// that path; a machine that is not --isolated gets ORB_SIM_MAC (default a
// directory under the system temp dir) at /mnt/mac; --isolate-network puts
// it on an internal network of its own; `-m NAME CMD` is a docker exec, as
// the machine's default user unless -u names another: OrbStack makes that
// user from the Mac's username (uid 501, not root, not in the docker group
// that the distro's docker.io makes), so the machine's Docker socket is
// root's and the docker group's only, as it is in a real machine. The
// stand-in takes the name from create's -u, else $USER unless it is root,
// else "orbuser".
// Cloud-init user data is applied in part, by one script in the machine as
// cloud-init works through it in one program: write_files and runcmd
// (systemctl lines are skipped: dockerd is the machine's first process),
// and packages are checked, not installed (nothing is downloaded here).
//
// Every invocation is appended to ORB_SIM_LOG (one JSON line: the
// arguments) so tests can count calls. ORB_SIM_VERSION sets the version
// reported (default 2.2.0; before 2.1.0 --isolated is an unknown flag);
// ORB_SIM_REFUSE_ISOLATE_NETWORK=1 refuses --isolate-network as an older
// OrbStack would.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"
	"sigs.k8s.io/yaml"
)

const (
	labelMachine  = "dev.jackin.orbsim.machine"
	labelDistro   = "dev.jackin.orbsim.distro"
	labelIsolated = "dev.jackin.orbsim.isolated"
	labelNetBlock = "dev.jackin.orbsim.isolate-network"
	labelSSHAgent = "dev.jackin.orbsim.forward-ssh-agent"
	labelUser     = "dev.jackin.orbsim.default-user"
	prefix        = "orbsim-"
)

// capabilities are what dockerd in a container needs on an engine that
// refuses --privileged (the same set as jackin's private daemon).
var capabilities = []string{
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER",
	"KILL", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "SETFCAP", "SETGID",
	"SETPCAP", "SETUID", "SYS_ADMIN", "SYS_CHROOT", "SYS_NICE", "SYS_PTRACE",
}

func main() {
	logCall(os.Args[1:])
	os.Exit(run(os.Args[1:]))
}

func logCall(args []string) {
	path := os.Getenv("ORB_SIM_LOG")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	b, _ := json.Marshal(map[string]any{"time": time.Now().UTC().Format(time.RFC3339Nano), "args": args})
	_, _ = f.Write(append(b, '\n'))
}

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	return 1
}

func version() string {
	if v := os.Getenv("ORB_SIM_VERSION"); v != "" {
		return v
	}
	return "2.2.0"
}

func versionAtLeast(maj, min int) bool {
	parts := strings.SplitN(version(), ".", 3)
	a, _ := strconv.Atoi(parts[0])
	b := 0
	if len(parts) > 1 {
		b, _ = strconv.Atoi(parts[1])
	}
	return a > maj || (a == maj && b >= min)
}

func run(args []string) int {
	var machine, user string
	for len(args) > 0 {
		switch a := args[0]; {
		case a == "-m" || a == "--machine":
			if len(args) < 2 {
				return fail("flag needs an argument: %s", a)
			}
			machine, args = args[1], args[2:]
		case a == "-u" || a == "--user":
			if len(args) < 2 {
				return fail("flag needs an argument: %s", a)
			}
			user, args = args[1], args[2:]
		case strings.HasPrefix(a, "-"):
			return fail("unknown flag: %s", a)
		default:
			goto parsed
		}
	}
parsed:
	if machine != "" {
		if len(args) > 0 && args[0] == "run" {
			args = args[1:]
		}
		return execIn(machine, user, args)
	}
	if len(args) == 0 {
		return fail("usage: orb [-m MACHINE] [-u USER] COMMAND... | orb create|list|info|start|stop|delete|version")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version":
		fmt.Printf("Version: %s (orb stand-in)\nCommit: 0000000000000000000000000000000000000000 (jackin test harness)\n", version())
		return 0
	case "list", "ls":
		return list(rest)
	case "info":
		return info(rest)
	case "create":
		return create(rest)
	case "delete", "rm":
		return del(rest)
	case "start", "stop":
		return startStop(cmd, rest)
	case "run":
		m, u, cmdArgs := "", "", rest
		for len(cmdArgs) > 1 && (cmdArgs[0] == "-m" || cmdArgs[0] == "-u") {
			if cmdArgs[0] == "-m" {
				m = cmdArgs[1]
			} else {
				u = cmdArgs[1]
			}
			cmdArgs = cmdArgs[2:]
		}
		if m == "" {
			return fail("no default machine in the stand-in: use -m NAME")
		}
		return execIn(m, u, cmdArgs)
	}
	return fail("unknown command %q for \"orb\"", cmd)
}

// record is one machine as `orb list -f json` prints it.
type record struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Image struct {
		Distro  string `json:"distro"`
		Version string `json:"version"`
		Arch    string `json:"arch"`
		Variant string `json:"variant"`
	} `json:"image"`
	Config struct {
		Isolated        bool   `json:"isolated"`
		DefaultUsername string `json:"default_username"`
	} `json:"config"`
	Builtin bool   `json:"builtin"`
	State   string `json:"state"`
}

type inspected struct {
	ID              string
	Name            string
	Config          struct{ Labels map[string]string }
	State           struct{ Running bool }
	NetworkSettings struct {
		Networks map[string]struct {
			IPAddress         string
			GlobalIPv6Address string
		}
	}
}

func docker(args ...string) ([]byte, error) {
	cmd := exec.Command("docker", args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("docker %s: %v: %s", args[0], err, strings.TrimSpace(errb.String()))
	}
	return out, nil
}

func machines() ([]inspected, error) {
	out, err := docker("ps", "-aq", "--filter", "label="+labelMachine)
	if err != nil {
		return nil, err
	}
	ids := strings.Fields(string(out))
	if len(ids) == 0 {
		return nil, nil
	}
	// A machine removed between the two calls is left out (inspect
	// still prints the others).
	out, err = docker(append([]string{"inspect"}, ids...)...)
	var ins []inspected
	if jerr := json.Unmarshal(out, &ins); jerr != nil {
		if err != nil {
			return nil, err
		}
		return nil, jerr
	}
	return ins, nil
}

func find(name string) (*inspected, error) {
	ms, err := machines()
	if err != nil {
		return nil, err
	}
	for i := range ms {
		if ms[i].Config.Labels[labelMachine] == name {
			return &ms[i], nil
		}
	}
	return nil, nil
}

func toRecord(in inspected) record {
	var r record
	r.ID = in.ID[:26]
	r.Name = in.Config.Labels[labelMachine]
	distro := in.Config.Labels[labelDistro]
	r.Image.Distro, r.Image.Version, _ = strings.Cut(distro, ":")
	if r.Image.Version == "" {
		r.Image.Version = "current"
	}
	r.Image.Arch = "amd64"
	r.Image.Variant = "default"
	r.Config.Isolated = in.Config.Labels[labelIsolated] == "true"
	r.Config.DefaultUsername = in.Config.Labels[labelUser]
	r.State = "stopped"
	if in.State.Running {
		r.State = "running"
	}
	return r
}

func formatJSON(args []string) (bool, []string) {
	var rest []string
	js := false
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case (a == "-f" || a == "--format") && i+1 < len(args):
			js = args[i+1] == "json"
			i++
		case a == "-f=json" || a == "--format=json":
			js = true
		default:
			rest = append(rest, a)
		}
	}
	return js, rest
}

func list(args []string) int {
	js, _ := formatJSON(args)
	ms, err := machines()
	if err != nil {
		return fail("%v", err)
	}
	recs := []record{}
	for _, m := range ms {
		recs = append(recs, toRecord(m))
	}
	if js {
		b, _ := json.Marshal(recs)
		fmt.Println(string(b))
		return 0
	}
	fmt.Printf("%-24s %-8s %-8s %-10s %s\n", "NAME", "STATE", "DISTRO", "VERSION", "ARCH")
	for _, r := range recs {
		fmt.Printf("%-24s %-8s %-8s %-10s %s\n", r.Name, r.State, r.Image.Distro, r.Image.Version, r.Image.Arch)
	}
	return 0
}

func info(args []string) int {
	js, rest := formatJSON(args)
	if len(rest) != 1 {
		return fail("usage: orb info NAME [-f json]")
	}
	m, err := find(rest[0])
	if err != nil {
		return fail("%v", err)
	}
	if m == nil {
		return fail("machine not found: %s", rest[0])
	}
	var ip4, ip6 string
	for _, n := range m.NetworkSettings.Networks {
		ip4, ip6 = n.IPAddress, n.GlobalIPv6Address
	}
	doc := map[string]any{"record": toRecord(*m), "disk_size": 0, "ip4": ip4, "ip6": ip6}
	if js {
		b, _ := json.Marshal(doc)
		fmt.Println(string(b))
		return 0
	}
	r := toRecord(*m)
	fmt.Printf("Name: %s\nState: %s\nDistro: %s %s\nIsolated: %v\nIP: %s\n", r.Name, r.State, r.Image.Distro, r.Image.Version, r.Config.Isolated, ip4)
	return 0
}

func create(args []string) int {
	var isolated, isolateNet, sshAgent bool
	var mounts []string
	user := defaultUser()
	var userData string
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() (string, bool) {
			if i+1 >= len(args) {
				return "", false
			}
			i++
			return args[i], true
		}
		switch a {
		case "--isolated":
			if !versionAtLeast(2, 1) {
				return fail("unknown flag: --isolated")
			}
			isolated = true
		case "--isolate-network":
			if !versionAtLeast(2, 1) || os.Getenv("ORB_SIM_REFUSE_ISOLATE_NETWORK") == "1" {
				return fail("unknown flag: --isolate-network")
			}
			isolateNet = true
		case "--forward-ssh-agent":
			sshAgent = true
		case "--mount":
			v, ok := next()
			if !ok {
				return fail("flag needs an argument: --mount")
			}
			mounts = append(mounts, v)
		case "-c", "--user-data":
			v, ok := next()
			if !ok {
				return fail("flag needs an argument: %s", a)
			}
			userData = v
		case "-u", "--user":
			v, ok := next()
			if !ok {
				return fail("flag needs an argument: %s", a)
			}
			user = v
		case "-a", "--arch", "-p", "--set-password":
			if _, ok := next(); !ok {
				return fail("flag needs an argument: %s", a)
			}
		default:
			if strings.HasPrefix(a, "-") {
				return fail("unknown flag: %s", a)
			}
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return fail("usage: orb create [flags] DISTRO[:VERSION] NAME")
	}
	distro, name := pos[0], pos[1]
	// OrbStack makes one machine of a name at a time; two stand-in
	// processes would otherwise both find no machine and make two
	// networks of one name (an apply killed mid-create, and the next).
	unlock, err := lockName(name)
	if err != nil {
		return fail("%v", err)
	}
	defer unlock()
	if m, err := find(name); err != nil {
		return fail("%v", err)
	} else if m != nil {
		return fail("machine already exists: %s", name)
	}
	run := []string{"run", "-d", "--name", prefix + name, "--hostname", name,
		"--label", labelMachine + "=" + name, "--label", labelDistro + "=" + distro,
		"--label", labelIsolated + "=" + strconv.FormatBool(isolated),
		"--label", labelNetBlock + "=" + strconv.FormatBool(isolateNet),
		"--label", labelSSHAgent + "=" + strconv.FormatBool(sshAgent),
		"--label", labelUser + "=" + user,
		"--cap-drop", "ALL", "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
		"--device-cgroup-rule", "a *:* rwm", "--sysctl", "net.ipv4.ip_forward=1",
		"-v", "/sys/fs/cgroup:/sys/fs/cgroup", "--tmpfs", "/run", "-v", "/var/lib/docker"}
	for _, c := range capabilities {
		run = append(run, "--cap-add", c)
	}
	for _, m := range mounts {
		src, dst, ok := strings.Cut(m, ":")
		if !ok {
			dst = src
		}
		if !filepath.IsAbs(src) {
			return fail("mount source must be an absolute path")
		}
		if !filepath.IsAbs(dst) {
			return fail("mount destination must be an absolute path")
		}
		run = append(run, "-v", src+":"+dst)
	}
	if !isolated {
		mac := os.Getenv("ORB_SIM_MAC")
		if mac == "" {
			mac = filepath.Join(os.TempDir(), "orbsim-mac")
			_ = os.MkdirAll(mac, 0o755)
		}
		run = append(run, "-v", mac+":/mnt/mac")
	}
	if isolateNet {
		net := prefix + "net-" + name
		if _, err := docker("network", "inspect", net); err != nil {
			if _, err := docker("network", "create", "--internal", "--label", labelMachine+"="+name, net); err != nil {
				return fail("%v", err)
			}
		}
		run = append(run, "--network", net)
	}
	image := os.Getenv("ORB_SIM_IMAGE")
	if image == "" {
		image = "jackin-e2e-dind:bookworm"
	}
	// The default user is made as the machine starts, before its dockerd
	// (the machine's first process); again on a restart, which keeps it.
	run = append(run, image, "sh", "-c", `id -u "$1" >/dev/null 2>&1 || useradd -m -u 501 -N -g users -s /bin/sh "$1" || { echo "orb stand-in: cannot make the default user $1" >&2; exit 1; }; exec dockerd`, "sh", user)
	if _, err := docker(run...); err != nil {
		if strings.Contains(err.Error(), "is already in use") {
			return fail("machine already exists: %s", name)
		}
		return fail("create machine %s: %v", name, err)
	}
	if userData != "" {
		if err := applyUserData(name, userData); err != nil {
			return fail("cloud-init: %v", err)
		}
	}
	return 0
}

// applyUserData applies a cloud-config document's packages (checked),
// write_files and runcmd the way cloud-init does: one program inside the
// machine works through the whole document, in one exec, rather than a
// command started from outside per file or line (which would charge each a
// process start-up real cloud-init does not pay). Its report is appended to
// /var/log/cloud-init-output.log, as cloud-init's is.
func applyUserData(name, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc struct {
		Packages   []string `json:"packages"`
		WriteFiles []struct {
			Path        string `json:"path"`
			Content     string `json:"content"`
			Permissions string `json:"permissions"`
		} `json:"write_files"`
		Runcmd []any `json:"runcmd"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("user data %s: %w", path, err)
	}
	var sh strings.Builder
	sh.WriteString("mkdir -p /var/log\nexec 3>>/var/log/cloud-init-output.log\n")
	sh.WriteString("fail() { printf '%s\\n' \"$1\" >&2; printf '%s\\n' \"$1\" >&3; exit 1; }\n")
	for _, p := range doc.Packages {
		fmt.Fprintf(&sh, "if dpkg -s %[1]s >/dev/null 2>&1 </dev/null; then printf '%%s\\n' %[2]s >&3; else printf '%%s\\n' %[3]s >&3; fi\n",
			quote(p), quote("package "+p+": present"), quote("package "+p+": not in the image (the stand-in installs nothing)"))
	}
	for _, f := range doc.WriteFiles {
		perm := f.Permissions
		if perm == "" {
			perm = "0644"
		}
		fmt.Fprintf(&sh, "{ mkdir -p -- \"$(dirname -- %[1]s)\" && printf %%s %[2]s > %[1]s && chmod %[3]s -- %[1]s; } || fail %[4]s\n",
			quote(f.Path), quote(f.Content), quote(perm), quote("write_files "+f.Path))
	}
	for _, c := range doc.Runcmd {
		var argv []string
		switch v := c.(type) {
		case string:
			argv = []string{"sh", "-c", v}
		case []any:
			for _, a := range v {
				argv = append(argv, fmt.Sprint(a))
			}
		}
		if len(argv) == 0 {
			continue
		}
		if argv[0] == "systemctl" {
			fmt.Fprintf(&sh, "printf '%%s\\n' %s >&3\n", quote(fmt.Sprintf("runcmd %v: skipped (dockerd is the machine's first process)", argv)))
			continue
		}
		q := make([]string, len(argv))
		for i, a := range argv {
			q[i] = quote(a)
		}
		// </dev/null: the script itself is the shell's input.
		fmt.Fprintf(&sh, "%s </dev/null || fail %s\n", strings.Join(q, " "), quote(fmt.Sprintf("runcmd %v", argv)))
	}
	cmd := exec.Command("docker", "exec", "-i", prefix+name, "sh", "-s")
	cmd.Stdin = strings.NewReader(sh.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// quote is s as one single-quoted shell word.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func del(args []string) int {
	var names []string
	for _, a := range args {
		if a == "-f" || a == "--force" {
			continue
		}
		names = append(names, a)
	}
	if len(names) == 0 {
		return fail("usage: orb delete [-f] NAME")
	}
	for _, name := range names {
		m, err := find(name)
		if err != nil {
			return fail("%v", err)
		}
		if m == nil {
			return fail("machine not found: %s", name)
		}
		if _, err := docker("rm", "-f", "-v", m.ID); err != nil {
			return fail("%v", err)
		}
		_, _ = docker("network", "rm", prefix+"net-"+name)
	}
	return 0
}

func startStop(verb string, args []string) int {
	if len(args) != 1 {
		return fail("usage: orb %s NAME", verb)
	}
	m, err := find(args[0])
	if err != nil {
		return fail("%v", err)
	}
	if m == nil {
		return fail("machine not found: %s", args[0])
	}
	if _, err := docker(verb, m.ID); err != nil {
		return fail("%v", err)
	}
	return 0
}

// execIn runs a command in a machine (starting it first when stopped),
// its stdin, stdout and stderr streamed through, with a terminal when
// stdin is one; the command's exit status is orb's.
func execIn(name, user string, argv []string) int {
	m, err := find(name)
	if err != nil {
		return fail("%v", err)
	}
	if m == nil {
		return fail("machine not found: %s", name)
	}
	if !m.State.Running {
		if _, err := docker("start", m.ID); err != nil {
			return fail("%v", err)
		}
	}
	if len(argv) == 0 {
		argv = []string{"sh", "-l"}
	}
	args := []string{"exec", "-i"}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		args = append(args, "-t")
	}
	if user == "" {
		user = m.Config.Labels[labelUser]
	}
	if user != "" {
		args = append(args, "-u", user)
	}
	args = append(append(args, m.ID), argv...)
	cmd := exec.Command("docker", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		return fail("%v", err)
	}
	return 0
}

// defaultUser is the name a machine's default user gets when create's -u
// does not give one: OrbStack's is the Mac user's name, never root.
func defaultUser() string {
	u := os.Getenv("USER")
	if u == "" || u == "root" || strings.ContainsAny(u, ":/ \t") {
		return "orbuser"
	}
	return u
}

// lockName holds an exclusive lock on the machine name until unlock: a
// file lock, so a process that dies lets go of it.
func lockName(name string) (unlock func(), err error) {
	dir := filepath.Join(os.TempDir(), "orbsim-locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, name+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock machine name %s: %w", name, err)
	}
	return func() { f.Close() }, nil
}
