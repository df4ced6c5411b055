// Command agent is the offline demo agent: a tiny static program that stands
// in for a coding agent in the examples, tests and benchmarks, so everything
// runs on a bare engine with no registry.
//
//	agent [idle]       print "jackin demo agent <hostname> ready" and wait for SIGTERM or SIGINT
//	agent exit N       exit with code N at once (crash-loop tests)
//	agent serve :PORT  answer every HTTP request with 200 "ok <hostname>" until SIGTERM or SIGINT
//	agent probe [DIR...] print a JSON report of the sandbox as seen from inside (see probe)
//	agent alloc MiB    allocate and touch MiB of memory, then wait (OOM tests)
//	agent write PATH TEXT  write TEXT to the file PATH (ownership tests)
//	agent fetch [-k] URL, dial HOST:PORT, resolve NAME, ifaces: network probes (see net.go)
//
// The image's entrypoint is /agent, so a manifest command that repeats it
// ("/agent", "idle") works too: a leading argument naming the program is skipped.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args))
}

func run(argv []string) int {
	args := argv[1:]
	// "/agent idle" as CMD after ENTRYPOINT ["/agent"] arrives as "/agent /agent idle".
	if len(args) > 0 && filepath.Base(args[0]) == filepath.Base(argv[0]) {
		args = args[1:]
	}
	host, _ := os.Hostname()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if len(args) == 0 {
		args = []string{"idle"}
	}
	switch args[0] {
	case "idle":
		fmt.Printf("jackin demo agent %s ready\n", host)
		<-ctx.Done()
		fmt.Printf("jackin demo agent %s stopping\n", host)
		return 0
	case "exit":
		if len(args) != 2 {
			return usage()
		}
		code, err := strconv.Atoi(args[1])
		if err != nil {
			return usage()
		}
		fmt.Printf("jackin demo agent %s exiting with %d\n", host, code)
		return code
	case "serve":
		if len(args) != 2 {
			return usage()
		}
		return serve(ctx, args[1], host)
	case "probe":
		return probe(args[1:])
	case "write":
		if len(args) != 3 {
			return usage()
		}
		if err := os.WriteFile(args[1], []byte(args[2]), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "agent: write: %v\n", err)
			return 1
		}
		return 0
	case "alloc":
		if len(args) != 2 {
			return usage()
		}
		mib, err := strconv.Atoi(args[1])
		if err != nil || mib <= 0 {
			return usage()
		}
		return alloc(ctx, mib, host)
	default:
		if code, ok := netCommand(args); ok {
			return code
		}
		return usage()
	}
}

func serve(ctx context.Context, addr, host string) int {
	srv := &http.Server{
		Addr:              addr,
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "ok %s\n", host)
		}),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Printf("jackin demo agent %s serving on %s\n", host, addr)
	select {
	case err := <-errc:
		fmt.Fprintf(os.Stderr, "agent: serve %s: %v\n", addr, err)
		return 1
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "agent: shutdown: %v\n", err)
		return 1
	}
	return 0
}

// alloc allocates mib MiB one MiB at a time, writing every page so the
// memory is really used, then waits: past the memory limit the kernel's OOM
// killer ends it first.
func alloc(ctx context.Context, mib int, host string) int {
	fmt.Printf("jackin demo agent %s allocating %d MiB\n", host, mib)
	held := make([][]byte, 0, mib)
	for i := 0; i < mib; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		held = append(held, b)
	}
	fmt.Printf("jackin demo agent %s holds %d MiB\n", host, len(held))
	<-ctx.Done()
	return 0
}

func usage() int {
	fmt.Fprintln(os.Stderr, "usage: agent [idle] | agent exit N | agent serve :PORT | agent probe [DIR...] | agent alloc MiB | agent write PATH TEXT | agent fetch [-k] URL | agent dial HOST:PORT | agent resolve NAME | agent ifaces")
	return 2
}

// probeReport is what `agent probe` prints: facts the session contract
// claims, as seen from inside the container.
type probeReport struct {
	UID    int    `json:"uid"`
	Cgroup string `json:"cgroup"` // v1, v2 or unknown
	// MemoryLimit and PidsMax are the raw cgroup values; the parsed forms
	// are -1 when unlimited and -2 when unreadable.
	MemoryLimit      string `json:"memoryLimit"`
	MemoryLimitBytes int64  `json:"memoryLimitBytes"`
	PidsMax          string `json:"pidsMax"`
	PidsLimit        int64  `json:"pidsLimit"`
	// GID, CapEff (hex, from /proc/self/status), NoNewPrivs (0 or 1) and
	// the open-files limit (RLIMIT_NOFILE) of the probe process.
	GID        int         `json:"gid"`
	CapEff     string      `json:"capEff"`
	CapBnd     string      `json:"capBnd"`
	NoNewPrivs int         `json:"noNewPrivs"`
	NofileSoft uint64      `json:"nofileSoft"`
	NofileHard uint64      `json:"nofileHard"`
	Paths      []probePath `json:"paths"`
	// DockerSockets are docker.sock files found: the well-known paths and
	// any unix socket named docker.sock under /run, /var/run and /tmp.
	DockerSockets []string `json:"dockerSockets"`
	// UnixSockets are every unix socket under /run, /var/run and /tmp.
	UnixSockets []string `json:"unixSockets"`
}

// probePath says whether a directory can be written, and its filesystem size.
type probePath struct {
	Path      string `json:"path"`
	Writable  bool   `json:"writable"`
	Error     string `json:"error,omitempty"`
	SizeBytes int64  `json:"sizeBytes"`
}

// probe prints a probeReport; each DIR is tested for writability by creating
// (and removing) a file in it. cgroup v1 (memory/memory.limit_in_bytes,
// pids/pids.max) and v2 (memory.max, pids.max) are both read.
func probe(dirs []string) int {
	r := probeReport{UID: os.Getuid(), Cgroup: "unknown", Paths: []probePath{}, DockerSockets: []string{}, UnixSockets: []string{}}
	const root = "/sys/fs/cgroup/"
	memFile, pidsFile := root+"memory.max", root+"pids.max"
	if _, err := os.Stat(root + "memory/memory.limit_in_bytes"); err == nil {
		r.Cgroup = "v1"
		memFile, pidsFile = root+"memory/memory.limit_in_bytes", root+"pids/pids.max"
	} else if _, err := os.Stat(root + "cgroup.controllers"); err == nil {
		r.Cgroup = "v2"
	}
	r.MemoryLimit, r.MemoryLimitBytes = readLimit(memFile)
	r.PidsMax, r.PidsLimit = readLimit(pidsFile)
	r.GID, r.NoNewPrivs = os.Getgid(), -1
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(l, ":")
			v = strings.TrimSpace(v)
			switch k {
			case "CapEff":
				r.CapEff = v
			case "CapBnd":
				r.CapBnd = v
			case "NoNewPrivs":
				r.NoNewPrivs, _ = strconv.Atoi(v)
			}
		}
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		r.NofileSoft, r.NofileHard = rl.Cur, rl.Max
	}

	for _, d := range dirs {
		p := probePath{Path: d}
		if f, err := os.CreateTemp(d, ".agent-probe-*"); err != nil {
			p.Error = err.Error()
		} else {
			p.Writable = true
			name := f.Name()
			_ = f.Close()
			_ = os.Remove(name)
		}
		var st syscall.Statfs_t
		if err := syscall.Statfs(d, &st); err == nil {
			p.SizeBytes = int64(st.Blocks) * int64(st.Bsize)
		}
		r.Paths = append(r.Paths, p)
	}

	seen := map[string]bool{}
	for _, s := range []string{"/var/run/docker.sock", "/run/docker.sock"} {
		if _, err := os.Lstat(s); err == nil && !seen[s] {
			seen[s] = true
			r.DockerSockets = append(r.DockerSockets, s)
		}
	}
	for _, top := range []string{"/run", "/var/run", "/tmp"} {
		start, err := filepath.EvalSymlinks(top)
		if err != nil {
			continue
		}
		_ = filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSocket == 0 {
				return nil
			}
			r.UnixSockets = append(r.UnixSockets, p)
			if d.Name() == "docker.sock" && !seen[p] {
				seen[p] = true
				r.DockerSockets = append(r.DockerSockets, p)
			}
			return nil
		})
	}

	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		fmt.Fprintf(os.Stderr, "agent: probe: %v\n", err)
		return 1
	}
	return 0
}

// readLimit reads a cgroup limit file: -1 for "max" or the cgroup v1
// "unlimited" value (near the largest int64), -2 when unreadable.
func readLimit(path string) (string, int64) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", -2
	}
	raw := strings.TrimSpace(string(b))
	if raw == "max" {
		return raw, -1
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return raw, -2
	}
	if n >= 1<<62 {
		return raw, -1
	}
	return raw, n
}
