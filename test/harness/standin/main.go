// Command standin stands in for the coding-agent CLIs jackin runs (Claude
// Code, Codex, Gemini CLI, OpenCode, Amp) in end-to-end tests, where the real
// ones cannot be installed. One binary behaves as the runtime named by the
// base name of argv[0] (claude, codex, gemini, opencode, amp; STANDIN_RUNTIME
// when run under another name), in a minimal way faithful to that runtime's
// documentation: it is an interactive terminal program that reads prompts
// line by line and, for each one, fires the runtime's status hooks (settings
// hooks, Codex's notify program, OpenCode's SSE events) in the documented
// order with the documented JSON.
//
// Lines it understands, for every runtime:
//
//	exit [N]        end the session (runtime end hooks first) with status N
//	... perm ...    a prompt with the word "perm" asks for a permission,
//	                answered by a line "y" or "n" ("n" interrupts the turn)
//	work N          the turn keeps working for N seconds, printing each second
//	subagent-late   (claude) Stop, then a late SubagentStop and PostToolUse
//	anything else   one turn: a Bash tool call echoing the line, "reply: <line>"
//
// A bracketed paste (ESC[200~ ... ESC[201~, how jackin types a multi-line
// prompt) is one prompt: its lines joined with spaces.
//
// Environment:
//
//	STANDIN_LOG               append one JSON line per hook run / event to this file
//	STANDIN_TURN_MS           thinking time per turn (default 300)
//	STANDIN_IDLE_PROMPT_SECS  (claude) fire Notification idle_prompt after this
//	                          many idle seconds following a turn (0: never)
//	STANDIN_LATE_MS           (claude) delay of the late SubagentStop (default 200)
//	STANDIN_SESSION_ID        fixed session id instead of a random one
//	STANDIN_RESPECT_BYPASS    1: a runtime started with its "allow everything"
//	                          flag or config does not ask on "perm" lines
//	STANDIN_OPENCODE_LEGACY   1: OpenCode emits permission.updated (pre-1.1 shape)
//	                          instead of permission.asked
//	STANDIN_MODEL             the model the usage records name (default: the
//	                          runtime's "<runtime>-standin", which no price
//	                          table knows)
//	STANDIN_GEMINI_LEGACY     1: Gemini CLI writes its chat as one JSON document
//	                          (session-*.json, releases before April 2026)
//	                          instead of JSON Lines (session-*.jsonl)
//
// Usage records, as each runtime documents them: Claude Code's transcript
// lines with message.usage (one response as several lines repeating it),
// Codex's token_count events (cumulative totals), Gemini CLI's messages
// with tokens, OpenCode's message.updated events with tokens; Amp records
// none.
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

const version = "0.0.0-standin"

var runtimeNames = []string{"claude", "codex", "gemini", "opencode", "amp"}

// runtime is one stand-in personality.
type runtime interface {
	// banner is the line printed after the argument line.
	banner() string
	// start runs once before the first prompt (session-start hooks).
	start()
	// turn handles one prompt line; it reports whether the turn completed
	// (ended with the runtime's end-of-turn signal).
	turn(line string) bool
	// end runs before the process exits; why is "exit", "eof" or "signal".
	end(why string)
}

// idler is a runtime that does something after it has been idle a while.
type idler interface {
	idleAfter() time.Duration
	onIdle()
}

type app struct {
	name      string
	args      []string
	cwd       string
	home      string
	session   string
	out       *term
	log       *eventLog
	input     chan string
	turnDelay time.Duration
	rt        runtime
	exitMu    sync.Mutex
}

func main() {
	name := filepath.Base(os.Args[0])
	if !isRuntime(name) {
		name = os.Getenv("STANDIN_RUNTIME")
	}
	if !isRuntime(name) {
		fmt.Fprintf(os.Stderr, "standin: run me as one of %s (argv[0] %q)\n", strings.Join(runtimeNames, ", "), os.Args[0])
		os.Exit(2)
	}
	args := os.Args[1:]
	for _, a := range args {
		switch a {
		case "--version":
			fmt.Printf("%s (%s stand-in)\n", version, name)
			return
		case "--help", "-h":
			fmt.Printf("standin %s args=%v\nusage: %s [flags]; an interactive stand-in for %s (see test/harness/standin)\n", name, args, name, name)
			return
		}
	}
	a := newApp(name, args)
	a.run()
}

func isRuntime(name string) bool {
	for _, n := range runtimeNames {
		if n == name {
			return true
		}
	}
	return false
}

func newApp(name string, args []string) *app {
	cwd, _ := os.Getwd()
	home := os.Getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	session := os.Getenv("STANDIN_SESSION_ID")
	if session == "" {
		session = newUUID()
	}
	a := &app{
		name:      name,
		args:      args,
		cwd:       cwd,
		home:      home,
		session:   session,
		out:       &term{w: os.Stdout},
		log:       &eventLog{path: os.Getenv("STANDIN_LOG"), runtime: name},
		input:     make(chan string, 64),
		turnDelay: envDuration("STANDIN_TURN_MS", time.Millisecond, 300*time.Millisecond),
	}
	switch name {
	case "claude":
		a.rt = newClaude(a)
	case "codex":
		a.rt = newCodex(a)
	case "gemini":
		a.rt = newGemini(a)
	case "opencode":
		a.rt = newOpencode(a)
	case "amp":
		a.rt = newAmp(a)
	}
	return a
}

func (a *app) run() {
	// The first line names the runtime and its flags, so tests can check
	// the command jackin started.
	a.out.println(fmt.Sprintf("standin %s args=%v", a.name, a.args))
	a.out.println(a.rt.banner())
	a.log.record(map[string]any{"kind": "start", "args": a.args, "session_id": a.session, "cwd": a.cwd, "pid": os.Getpid()})
	go a.readInput(os.Stdin)
	a.handleSignals()
	a.rt.start()

	idle, _ := a.rt.(idler)
	armed := false
	a.out.prompt()
	for {
		var idleC <-chan time.Time
		var timer *time.Timer
		if armed && idle != nil && idle.idleAfter() > 0 {
			timer = time.NewTimer(idle.idleAfter())
			idleC = timer.C
		}
		select {
		case line, ok := <-a.input:
			if !ok {
				a.exit("eof", 0)
			}
			line = strings.TrimSpace(line)
			if line == "" {
				a.out.prompt()
				continue
			}
			if code, ok := parseExit(line); ok {
				a.exit("exit", code)
			}
			a.log.record(map[string]any{"kind": "turn", "phase": "start", "prompt": line})
			done := a.rt.turn(line)
			a.log.record(map[string]any{"kind": "turn", "phase": "end", "prompt": line, "completed": done})
			armed = done
			a.out.prompt()
		case <-idleC:
			armed = false
			idle.onIdle()
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// Bracketed paste's markers: a terminal wraps pasted text (and jackin's
// supervisor a multi-line prompt) in them.
const (
	pasteStart = "\x1b[200~"
	pasteEnd   = "\x1b[201~"
)

// readInput sends each line of r to a.input and closes it at EOF. A
// bracketed paste is one prompt, as the runtimes take it: its lines are
// joined with spaces into one line, without the markers.
func (a *app) readInput(r io.Reader) {
	br := bufio.NewReader(r)
	var paste []string
	pasting := false
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			line = strings.TrimRight(line, "\r\n")
			if rest, ok := strings.CutPrefix(line, pasteStart); ok && !pasting {
				pasting, line = true, rest
			}
			if pasting {
				body, end := strings.CutSuffix(line, pasteEnd)
				if !end {
					if i := strings.Index(line, pasteEnd); i >= 0 {
						body, end = line[:i]+line[i+len(pasteEnd):], true
					}
				}
				if body = strings.TrimSpace(body); body != "" {
					paste = append(paste, body)
				}
				if !end {
					if err != nil {
						close(a.input)
						return
					}
					continue
				}
				pasting, line = false, strings.Join(paste, " ")
				paste = nil
			}
			a.input <- line
		}
		if err != nil {
			close(a.input)
			return
		}
	}
}

// ask prints question and waits for a line "y" or "n" (also yes/no). At
// the end of input the session ends.
func (a *app) ask(question string) bool {
	a.out.print(question + " [y/n] ")
	for {
		line, ok := <-a.input
		if !ok {
			a.exit("eof", 0)
		}
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "y", "yes":
			return true
		case "n", "no":
			return false
		}
		a.out.print("please answer y or n [y/n] ")
	}
}

// think is the model working on line: the thinking delay, and for
// "work N" a turn that keeps printing for N seconds.
func (a *app) think(line string) {
	a.out.println("thinking...")
	time.Sleep(a.turnDelay)
	f := strings.Fields(line)
	if len(f) == 2 && f[0] == "work" {
		if n, err := strconv.Atoi(f[1]); err == nil {
			for i := 1; i <= n; i++ {
				time.Sleep(time.Second)
				a.out.println(fmt.Sprintf("working %d/%d", i, n))
			}
		}
	}
}

// exit ends the session once: the runtime's end hooks, then the status.
func (a *app) exit(why string, code int) {
	a.exitMu.Lock() // held until os.Exit: a second caller never returns
	a.log.record(map[string]any{"kind": "exit", "why": why, "code": code})
	a.rt.end(why)
	os.Exit(code)
}

func (a *app) handleSignals() {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, syscall.SIGWINCH, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT)
	go func() {
		var lastInt time.Time
		for s := range ch {
			switch s {
			case syscall.SIGWINCH:
				rows, cols, err := winsize()
				if err != nil {
					a.out.println("resized ?x?")
				} else {
					a.out.println(fmt.Sprintf("resized %dx%d", rows, cols))
				}
				a.log.record(map[string]any{"kind": "signal", "signal": "SIGWINCH", "rows": rows, "cols": cols})
			case syscall.SIGINT:
				// Like the real TUIs: a second Ctrl-C within 2 s quits.
				if time.Since(lastInt) < 2*time.Second {
					a.exit("signal", 130)
				}
				lastInt = time.Now()
				a.out.println("(press Ctrl-C again to exit)")
			default:
				n := 0
				if sig, ok := s.(syscall.Signal); ok {
					n = int(sig)
				}
				a.exit("signal", 128+n)
			}
		}
	}()
}

// winsize is the terminal size of stdin (or stdout) by TIOCGWINSZ.
func winsize() (rows, cols int, err error) {
	var ws struct{ Row, Col, X, Y uint16 }
	for _, fd := range []uintptr{0, 1} {
		_, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, uintptr(syscall.TIOCGWINSZ), uintptr(unsafe.Pointer(&ws)))
		if e == 0 {
			return int(ws.Row), int(ws.Col), nil
		}
		err = e
	}
	return 0, 0, err
}

var exitLine = regexp.MustCompile(`^exit(?:\s+(-?\d+))?$`)

// parseExit recognises "exit" and "exit N".
func parseExit(line string) (int, bool) {
	m := exitLine.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	if m[1] == "" {
		return 0, true
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, false
	}
	return n & 0xff, true
}

var permWord = regexp.MustCompile(`\bperm\b`)

// wantsPermission reports whether a prompt asks the stand-in for a
// permission prompt.
func wantsPermission(line string) bool { return permWord.MatchString(line) }

func hasArg(args []string, names ...string) bool {
	for _, a := range args {
		for _, n := range names {
			if a == n || strings.HasPrefix(a, n+"=") {
				return true
			}
		}
	}
	return false
}

// argValue is the value of flag name ("--name v" or "--name=v").
func argValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// standinModel is the model the usage records name.
func standinModel(def string) string {
	if m := os.Getenv("STANDIN_MODEL"); m != "" {
		return m
	}
	return def
}

func respectBypass() bool { return os.Getenv("STANDIN_RESPECT_BYPASS") == "1" }

// term serialises writes to the terminal.
type term struct {
	mu sync.Mutex
	w  io.Writer
}

func (t *term) print(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	io.WriteString(t.w, s)
}

func (t *term) println(s string) { t.print(s + "\n") }
func (t *term) prompt()          { t.print("> ") }

// eventLog appends JSON lines to $STANDIN_LOG.
type eventLog struct {
	mu      sync.Mutex
	path    string
	runtime string
}

func (l *eventLog) record(m map[string]any) {
	if l.path == "" {
		return
	}
	m["ts"] = time.Now().UTC().Format(time.RFC3339Nano)
	m["runtime"] = l.runtime
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "standin: log: %v\n", err)
		return
	}
	defer f.Close()
	f.Write(append(b, '\n'))
}

// jsonl appends JSON lines to a file, creating its directory.
type jsonl struct {
	mu   sync.Mutex
	path string
}

func (j *jsonl) write(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return
	}
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	f.Write(append(b, '\n'))
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// newID is prefix followed by random hex.
func newID(prefix string, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func envDuration(name string, unit, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || n < 0 {
		return def
	}
	return time.Duration(n * float64(unit))
}

func nowISO() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
