// Package supervisor is the in-container side of an agent: what runs as
// PID 1 of the agent container (jackin's own static binary, mounted
// read-only). It runs the runtime's command on a pseudo-terminal, reaps
// orphans, forwards signals, keeps the recent screen, serves attach
// clients and state queries on a socket only the container can reach,
// installs the runtime's status hooks, and derives the agent's state
// (agentstate) from them, or from terminal activity when a runtime has no
// hooks. client.go is the host's side of the same protocol.
package supervisor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/jackin-dev/jackin/agentstate"
	"github.com/jackin-dev/jackin/runtimes"
)

// Config is what the supervisor runs.
type Config struct {
	Runtime runtimes.Runtime
	// Command is the runtime's argv; with LoginShell, the arguments of
	// the agent user's login shell.
	Command    []string
	LoginShell bool
	// Homes are paths under HOME kept in HomeStore (the runtime's).
	Homes []string
	// AgentDir and HomeStore default to the container paths.
	AgentDir, HomeStore string
	// History is how many lines of output are kept for attach (2000).
	History int
	// Out receives the agent's terminal output (the container's log);
	// Log the supervisor's own messages.
	Out, Log io.Writer
	// Socket is the listening address (SocketName).
	Socket string
	// Quiet is how long the terminal must be still before a runtime
	// without hooks counts as idle (2s).
	Quiet time.Duration

	// reapOwnOnly: wait for the agent alone, not every child. Set by
	// tests, where several supervisors share one process that is not
	// PID 1 and one must never reap another's agent.
	reapOwnOnly bool
}

// DefaultHistory is how many lines of output attach replays.
const DefaultHistory = 2000

// Run supervises the command until it exits and returns the exit status
// the container should end with: the agent's own, or 128+signal.
func Run(ctx context.Context, cfg Config) int {
	if cfg.AgentDir == "" {
		cfg.AgentDir = AgentDir
	}
	if cfg.HomeStore == "" {
		cfg.HomeStore = HomeKept
	}
	if cfg.History <= 0 {
		cfg.History = DefaultHistory
	}
	if cfg.Socket == "" {
		cfg.Socket = SocketName
	}
	if cfg.Quiet <= 0 {
		cfg.Quiet = 2 * time.Second
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.Log == nil {
		cfg.Log = os.Stderr
	}
	// The supervisor lives as long as the agent: keep it small.
	debug.SetGCPercent(50)
	s := newSupervisor(cfg)
	code, err := s.run(ctx)
	if err != nil {
		s.logf("%v", err)
	}
	return code
}

type client struct {
	out  chan []byte
	done chan struct{}
	once sync.Once
	// written is closed when the client's writer has returned: finish
	// waits for it, so the exit frame is on its way before PID 1 exits.
	written chan struct{}
}

func (c *client) close() { c.once.Do(func() { close(c.done) }) }

type supervisor struct {
	cfg  Config
	boot string

	mu        sync.Mutex
	screen    *Screen
	clients   map[*client]bool
	watchers  map[chan Status]bool
	ptmx      *os.File
	status    Status
	warnings  []string
	lastInput time.Time
	// pendingEcho are the keystrokes the terminal has not echoed yet.
	pendingEcho []byte
	// lastActivity is the last output that was not an echo, or CPU use.
	lastActivity time.Time
	quietSent    bool
	exited       bool
	// terminal: state comes from terminal activity (a runtime without
	// hooks, or one whose hooks could not be installed); otherwise
	// output moves nothing.
	terminal bool

	events chan agentstate.Event
	// machMu guards machine: consume feeds it, finish ends it.
	machMu  sync.Mutex
	machine *agentstate.Machine
	pub     *publisher
	// links collects the work links the agent reports; terminalLinks:
	// from the terminal (no transcripts read).
	links         *linkWatch
	terminalLinks bool
}

func newSupervisor(cfg Config) *supervisor {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	now := time.Now()
	s := &supervisor{
		cfg:          cfg,
		boot:         hex.EncodeToString(b),
		screen:       NewScreen(cfg.History),
		clients:      map[*client]bool{},
		watchers:     map[chan Status]bool{},
		events:       make(chan agentstate.Event, 256),
		machine:      agentstate.NewMachine(now),
		lastActivity: now,
	}
	if cfg.Runtime.State == runtimes.StateNotify {
		s.machine.OpenTurnsOnOutput()
	}
	s.pub = newPublisher(cfg.AgentDir, s.logf)
	s.links = newLinkWatch(cfg.AgentDir, s.logf)
	s.status = s.snapshotLocked(s.machine.State(), 0)
	return s
}

func (s *supervisor) logf(format string, args ...any) {
	fmt.Fprintf(s.cfg.Log, "jackin supervisor: "+format+"\n", args...)
}

func (s *supervisor) warn(msg string) {
	s.logf("warning: %s", msg)
	s.mu.Lock()
	s.warnings = append(s.warnings, msg)
	s.mu.Unlock()
}

func (s *supervisor) run(ctx context.Context) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Signals first: as PID 1 nothing is delivered that is not handled.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGCHLD)
	defer signal.Stop(sigs)

	home := os.Getenv("HOME")
	var storeErr error
	if os.Geteuid() == 0 {
		storeErr = openStore(s.cfg.HomeStore)
	}
	if storeErr != nil {
		s.warn(storeErr.Error() + ": the runtime's homes are not kept across recreates")
	} else {
		for _, w := range linkHomes(home, s.cfg.HomeStore, s.cfg.Homes) {
			s.warn(w)
		}
	}
	_, warns := s.cfg.Runtime.InstallHooks(home, os.Getenv)
	for _, w := range warns {
		s.warn(w)
	}
	switch s.cfg.Runtime.State {
	case runtimes.StateTerminal, runtimes.StateNotify:
		s.terminal = true
	case runtimes.StateHooks:
		s.terminal = len(warns) > 0 // no hooks: the fallback
	}

	cmd, err := s.command()
	if err != nil {
		s.finish(127)
		return 127, err
	}
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		s.finish(code)
		return code, fmt.Errorf("start %s: %w", strings.Join(cmd.Args, " "), err)
	}
	s.mu.Lock()
	s.ptmx = ptmx
	s.mu.Unlock()
	child := cmd.Process.Pid

	ln, err := net.Listen("unix", s.cfg.Socket)
	if err != nil {
		s.warn(fmt.Sprintf("cannot serve attach and status (%v): jackin attach will not reach this agent", err))
	} else {
		go s.serve(ctx, ln)
		defer ln.Close()
	}

	go s.consume(ctx)
	stopUsage := s.watchUsage(ctx, home) // token usage and transcript links: usage.go
	linksCtx, stopLinks := context.WithCancel(context.Background())
	linksDone := make(chan struct{})
	go func() {
		defer close(linksDone)
		s.links.run(linksCtx)
	}()
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		s.readOutput(ptmx)
	}()
	if s.cfg.Runtime.State == runtimes.StateServer {
		go s.cfg.Runtime.WatchServer(ctx, s.emit)
	}
	if s.terminal {
		go s.watchActivity(ctx, child)
	}
	go func() {
		// Once the agent runs: the start-up's pages are not needed again.
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
			debug.FreeOSMemory()
			trimText()
		}
	}()

	code := -1
	for code < 0 {
		sig := <-sigs
		if sig != syscall.SIGCHLD {
			// To the agent's whole process group: the runtime and its
			// tools.
			_ = syscall.Kill(-child, sig.(syscall.Signal))
			if sig == syscall.SIGTERM {
				// An interactive shell ignores SIGTERM; a terminal that
				// goes away is a hangup, which it does not.
				time.AfterFunc(time.Second, func() { _ = syscall.Kill(-child, syscall.SIGHUP) })
			}
			continue
		}
		if s.cfg.reapOwnOnly {
			code = reapOne(child)
		} else {
			code = reap(child)
		}
	}
	// The output the agent wrote last, then the end.
	select {
	case <-outDone:
	case <-time.After(500 * time.Millisecond):
	}
	ptmx.Close()
	stopUsage() // the last turn's usage, published before the container ends
	stopLinks()
	<-linksDone
	for _, w := range relinkHomes(home, s.cfg.HomeStore, s.cfg.Homes) {
		s.logf("%s", w)
	}
	s.finish(code)
	return code, nil
}

// reap collects every exited process (PID 1 adopts the orphans) and
// returns the child's exit status once it is among them, else -1.
func reap(child int) int {
	code := -1
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return code
		}
		if pid == child {
			switch {
			case ws.Exited():
				code = ws.ExitStatus()
			case ws.Signaled():
				code = 128 + int(ws.Signal())
			default:
				code = 1
			}
		}
	}
}

// reapOne collects the child alone, if it exited.
func reapOne(child int) int {
	var ws syscall.WaitStatus
	pid, err := syscall.Wait4(child, &ws, syscall.WNOHANG, nil)
	if pid != child || err != nil {
		return -1
	}
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 1
}

// command is the process the supervisor starts.
func (s *supervisor) command() (*exec.Cmd, error) {
	if s.cfg.LoginShell {
		shell := loginShell()
		cmd := exec.Command(shell, s.cfg.Command...)
		cmd.Args[0] = "-" + filepath.Base(shell) // a login shell, as login(1) starts it
		return cmd, nil
	}
	if len(s.cfg.Command) == 0 {
		return nil, errors.New("no command to run")
	}
	path, err := exec.LookPath(s.cfg.Command[0])
	if err != nil {
		return nil, fmt.Errorf("%s: not found in the image (PATH=%s): the role image must contain the runtime's CLI; jackin installs nothing into it", s.cfg.Command[0], os.Getenv("PATH"))
	}
	cmd := exec.Command(path, s.cfg.Command[1:]...)
	cmd.Args[0] = s.cfg.Command[0]
	return cmd, nil
}

// loginShell is the current user's shell from /etc/passwd, else /bin/sh.
func loginShell() string {
	b, err := os.ReadFile("/etc/passwd")
	if err == nil {
		uid := fmt.Sprint(os.Getuid())
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Split(line, ":")
			if len(f) >= 7 && f[2] == uid && f[6] != "" {
				if _, err := os.Stat(f[6]); err == nil {
					return f[6]
				}
			}
		}
	}
	return "/bin/sh"
}

// finish records the exit, tells every client and watcher, and publishes.
func (s *supervisor) finish(code int) {
	s.machMu.Lock()
	snap := s.machine.Apply(agentstate.Event{Kind: agentstate.EventExit, Time: time.Now(), Status: code})
	s.machMu.Unlock()
	s.mu.Lock()
	s.exited = true
	s.status = s.snapshotLocked(snap, s.status.Seq+1)
	st := s.status
	clients := s.clients
	s.clients = map[*client]bool{}
	for w := range s.watchers {
		select {
		case w <- st:
		default:
		}
	}
	s.mu.Unlock()
	s.pub.publish(st)
	// Each attached client gets the exit frame, and the supervisor waits
	// (a little) for it to be written: returning ends PID 1, and with it
	// the container and the client's stream.
	// Each on its own, so a stalled client delays none of the others.
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			limit, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			select {
			case c.out <- exitFrame(st):
			case <-limit.Done():
			}
			c.close()
			select {
			case <-c.written:
			case <-limit.Done():
			}
		}()
	}
	wg.Wait()
}

// emit queues an event for the state machine.
func (s *supervisor) emit(ev agentstate.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	select {
	case s.events <- ev:
	default: // a flood of hooks: the machine is behind; drop, never block a hook
	}
}

// consume feeds the machine and publishes each change.
func (s *supervisor) consume(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-s.events:
			s.machMu.Lock()
			before := s.machine.State()
			after := s.machine.Apply(ev)
			s.machMu.Unlock()
			if after == before {
				continue
			}
			s.mu.Lock()
			if s.exited {
				s.mu.Unlock()
				return
			}
			s.status = s.snapshotLocked(after, s.status.Seq+1)
			st := s.status
			for w := range s.watchers {
				select {
				case w <- st:
				default:
				}
			}
			s.mu.Unlock()
			s.pub.publish(st)
		}
	}
}

func (s *supervisor) snapshotLocked(snap agentstate.Snapshot, seq int64) Status {
	return Status{
		V:          ProtocolVersion,
		Runtime:    s.cfg.Runtime.Name,
		State:      string(snap.State),
		Since:      snap.Since,
		Detail:     snap.Detail,
		ExitStatus: snap.Status,
		Source:     string(s.cfg.Runtime.State),
		Clients:    len(s.clients),
		Warnings:   append([]string(nil), s.warnings...),
		Seq:        seq,
		Boot:       s.boot,
		Updated:    time.Now(),
	}
}

// currentStatus is the status with the live client count.
func (s *supervisor) currentStatus() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Clients = len(s.clients)
	st.Warnings = append([]string(nil), s.warnings...)
	return st
}

// echoWindow is how long typed bytes wait for their echo; after it, output
// is the agent's own.
const echoWindow = time.Second

// maxPendingEcho bounds the keystrokes kept for matching their echo.
const maxPendingEcho = 1024

// isEcho reports whether output p is only the terminal's echo of what was
// typed (the typed characters, in order, and line endings and control
// characters), consuming what it matched. Anything else the agent printed
// is its own activity. Called with s.mu held.
func (s *supervisor) isEcho(p []byte, now time.Time) bool {
	return s.echoPrefix(p, now) == len(p)
}

// echoPrefix is how many leading bytes of p are the echo of what was
// typed, consuming what it matched: an answer the agent printed in the
// same read as the echo starts after it. Called with s.mu held.
func (s *supervisor) echoPrefix(p []byte, now time.Time) int {
	if now.Sub(s.lastInput) > echoWindow {
		s.pendingEcho = s.pendingEcho[:0]
		return 0
	}
	pending := s.pendingEcho
	n := 0
	for _, b := range p {
		if b >= 0x20 && b != 0x7f { // CR, LF, backspace: how a terminal echoes typing
			i := bytes.IndexByte(pending, b)
			if i < 0 || i > 3 {
				break
			}
			pending = pending[i+1:]
		}
		n++
	}
	s.pendingEcho = append(s.pendingEcho[:0], pending...)
	return n
}

// readOutput copies the terminal's output to the log, the screen and the
// attached clients.
func (s *supervisor) readOutput(ptmx *os.File) {
	buf := make([]byte, 32<<10)
	for {
		n, err := ptmx.Read(buf)
		if n > 0 {
			p := buf[:n]
			_, _ = s.cfg.Out.Write(p)
			s.mu.Lock()
			_, _ = s.screen.Write(p)
			now := time.Now()
			echoed := s.echoPrefix(p, now)
			echo := echoed == len(p)
			if !echo {
				s.lastActivity = now
				s.quietSent = false
			}
			if len(s.clients) > 0 {
				frame := outputFrame(p)
				for c := range s.clients {
					select {
					case c.out <- frame:
					default:
						// A client that cannot keep up is let go, never
						// allowed to stall the agent.
						delete(s.clients, c)
						c.close()
					}
				}
			}
			s.mu.Unlock()
			if !echo && s.terminal {
				s.emit(agentstate.Event{Kind: agentstate.EventOutput, Time: now})
			}
			if !echo && s.terminalLinks {
				// Never the echo of the operator's typing, even when the
				// agent's answer came in the same read.
				s.links.terminal(p[echoed:])
			}
		}
		if err != nil {
			return // EIO once the agent and its children closed the terminal
		}
	}
}

// watchActivity turns silence into EventQuiet for runtimes without hooks:
// no output and next to no CPU for Quiet.
func (s *supervisor) watchActivity(ctx context.Context, child int) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var lastCPU uint64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			cpu := processCPU(child)
			busy := lastCPU != 0 && cpu-lastCPU > 5 // >10% of a core over the tick (100 ticks/s)
			lastCPU = cpu
			s.mu.Lock()
			if busy {
				s.lastActivity = now
				s.quietSent = false
			}
			quiet := !s.quietSent && now.Sub(s.lastActivity) >= s.cfg.Quiet
			if quiet {
				s.quietSent = true
			}
			s.mu.Unlock()
			switch {
			case busy:
				s.emit(agentstate.Event{Kind: agentstate.EventOutput, Time: now})
			case quiet:
				s.emit(agentstate.Event{Kind: agentstate.EventQuiet, Time: now})
			}
		}
	}
}

// processCPU sums the CPU ticks of the agent's processes: those of the
// terminal session the supervisor started it in (its tools included).
func processCPU(session int) uint64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self := os.Getpid()
	var total uint64
	for _, e := range ents {
		pid := 0
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces).
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		if f[3] != strconv.Itoa(session) {
			continue
		}
		var ut, st uint64
		fmt.Sscan(f[11], &ut)
		fmt.Sscan(f[12], &st)
		total += ut + st
	}
	return total
}

func outputFrame(p []byte) []byte {
	f := make([]byte, 5+len(p))
	f[0] = FrameOutput
	putLen(f[1:5], len(p))
	copy(f[5:], p)
	return f
}

func putLen(b []byte, n int) {
	b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
}
