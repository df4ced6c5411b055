package manifests

// Manifests come from repositories and pull requests, so loading one must
// not be a way to take a machine down: MaxFileSize bounds the text, and this
// file bounds what the text can turn into.
//
// CUE computes: a few lines of references (x1: x0+x0, x2: x1+x1, ...), a
// builtin (strings.Repeat), a comprehension or a YAML alias can evaluate to
// gigabytes or run for minutes, and CUE's evaluator can be neither cancelled
// nor bounded in memory (cue-lang/cue#2489). Even its parser recurses without
// limit on long operator or selector chains and crashes the process with a
// stack overflow. So:
//
//   - A manifest written as plain data (fields, structs, lists, literals: no
//     references, operators, calls, comprehensions, imports, interpolations,
//     YAML aliases) cannot grow: its evaluation is linear in its size. It is
//     recognised from its tokens before it is parsed, checked against the
//     shape caps below (instances, fields per struct, list length, nesting,
//     string length) and loaded in-process as before. This is the fast path:
//     no extra process.
//   - Any other manifest is first parsed and evaluated in a child process, the
//     current binary re-executed with JACKIN_INTERNAL_EVAL_GATE=1 (see init),
//     under a time and a memory budget. The child checks the evaluated result
//     against the same caps plus MaxEvaluatedSize, and reports a verdict. Only
//     when it says the evaluation fits does the loader evaluate in-process as
//     before, so positions and messages stay the same. Over budget, the child
//     is killed (or dies: out of memory, out of stack) and the load fails with
//     a diagnostic naming the limit.
//   - Plain data that fails the schema is gated too, before its error pass:
//     CUE combines errors in quadratic time, so a large manifest that is wrong
//     everywhere can take minutes to report.
//
// Some shape caps exist because CUE itself is quadratic in the width of a
// struct or list (100,000 fields in one struct take 20 s to evaluate, even as
// plain data), so they bound the time of the fast path too.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/scanner"
	"cuelang.org/go/cue/token"
	cuejson "cuelang.org/go/encoding/json"
	"go.yaml.in/yaml/v3"

	"github.com/jackin-dev/jackin/schema"
)

// Caps on a manifest's shape, as written (plain data) or as evaluated
// (anything else). They are far above any real fleet's.
const (
	// MaxInstances bounds the instances of a fleet.
	MaxInstances = 10_000
	// MaxFields bounds the fields of one struct (an env, labels, defaults...);
	// the instances struct is bounded by MaxInstances instead.
	MaxFields = 1_000
	// MaxListLen bounds the elements of one list (command, mounts, ports...).
	MaxListLen = 1_000
	// MaxDepth bounds nesting: fields and lists within each other.
	MaxDepth = 64
	// MaxStringLen bounds one string value.
	MaxStringLen = 1 << 20
	// MaxEvaluatedSize bounds a computed manifest's evaluated form, as JSON.
	// A plain-data manifest is bounded by MaxFileSize instead.
	MaxEvaluatedSize = 16 << 20
)

// The evaluation budget of a manifest that computes: defaults, and the
// environment variables that override them.
const (
	DefaultEvalTimeout = 10 * time.Second
	DefaultEvalMemory  = 1 << 30
	EvalTimeoutEnv     = "JACKIN_EVAL_TIMEOUT"
	EvalMemoryEnv      = "JACKIN_EVAL_MEMORY"
)

// gateEnv, set to "1" in a process's environment, makes this package's init
// serve one evaluation request on stdin and exit: see serveGate.
const gateEnv = "JACKIN_INTERNAL_EVAL_GATE"

// Budget bounds the evaluation of a manifest that computes. A zero field
// takes its environment variable (EvalTimeoutEnv: a duration such as "30s";
// EvalMemoryEnv: a size such as "2Gi") or else its default.
type Budget struct {
	Timeout time.Duration
	Memory  int64
}

// gateRuns counts the evaluations run in a child process (for tests).
var gateRuns atomic.Int64

// budget resolves opts.Budget against the environment and the defaults.
func (l *loader) budget() (Budget, error) {
	b := l.opts.Budget
	if b.Timeout <= 0 {
		b.Timeout = DefaultEvalTimeout
		if v := strings.TrimSpace(os.Getenv(EvalTimeoutEnv)); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				if n, err2 := strconv.ParseFloat(v, 64); err2 == nil {
					d, err = time.Duration(n*float64(time.Second)), nil
				}
			}
			if err != nil || d <= 0 {
				return b, Diagnostics{{Msg: fmt.Sprintf("%s=%q is not a duration: use one such as \"30s\" or \"2m\"", EvalTimeoutEnv, v), Severity: schema.SeverityError}}
			}
			b.Timeout = d
		}
	}
	if b.Memory <= 0 {
		b.Memory = DefaultEvalMemory
		if v := strings.TrimSpace(os.Getenv(EvalMemoryEnv)); v != "" {
			n, err := schema.ParseSize(v)
			if err != nil {
				return b, Diagnostics{{Msg: fmt.Sprintf("%s: %v", EvalMemoryEnv, err), Severity: schema.SeverityError}}
			}
			b.Memory = n
		}
	}
	return b, nil
}

// ---- the fast path: recognising plain data ----

// screen decides, before anything is parsed, which sources the loader may
// parse itself. It returns the name of the first source that must be parsed
// and evaluated under the budget ("" when none), and records a diagnostic
// for a source that nests deeper than MaxDepth.
func (l *loader) screen(srcs []source) string {
	computed := ""
	for _, s := range srcs {
		switch s.kind {
		case "cue":
			if !l.scanData(s) && computed == "" {
				computed = s.name
			}
		case "yaml":
			// CUE's YAML decoder expands aliases as it parses; merge keys
			// (<<: *a) escape its own bound and grow exponentially.
			if yamlHasAliases(normalizeNewlines(s.data)) && computed == "" {
				computed = s.name
			}
		}
		// JSON has no references and its parser bounds nesting.
	}
	return computed
}

// scanData reads a CUE source's tokens. It reports whether they are plain
// data (so parsing it is linear and safe), and records a diagnostic when it
// nests deeper than MaxDepth. Anything it does not recognise is not data:
// such a file is parsed only in the child, where a crash costs nothing.
func (l *loader) scanData(s source) bool {
	// Cheap bound first: every label of a chain is a ':'.
	if bytes.Count(s.data, []byte(":")) <= MaxDepth {
		return tokensAreData(s.name, s.data, nil)
	}
	return tokensAreData(s.name, s.data, func(pos token.Pos) {
		l.errAtPos(pos, "", fmt.Sprintf("the manifest nests more than %d levels deep, the limit", MaxDepth))
	})
}

// tokensAreData scans src. Nesting of fields is counted as the parser will
// build it: each label of a field chain (a: b: c: 1) opens a level, which
// the parser does not bound; a comma (written, or at the end of a line)
// closes a chain, a closing bracket its level. Brackets are left to the
// parser's own bound (10,000), and the shape check after it (MaxDepth).
// tooDeep, when set, is called once at the first label deeper than MaxDepth.
func tokensAreData(name string, src []byte, tooDeep func(token.Pos)) bool {
	var sc scanner.Scanner
	bad := false
	sc.Init(token.NewFile(name, -1, len(src)), src, func(token.Pos, string, []any) { bad = true }, 0)
	type tok struct {
		pos token.Pos
		t   token.Token
		lit string
	}
	var ahead []tok // look-ahead: at most two tokens
	peek := func(i int) token.Token {
		for len(ahead) <= i {
			p, t, lit := sc.Scan()
			ahead = append(ahead, tok{p, t, lit})
		}
		return ahead[i].t
	}
	next := func() tok {
		peek(0)
		t := ahead[0]
		ahead = append(ahead[:0], ahead[1:]...)
		return t
	}
	// isLabel: the token just read is followed by ":" (or "?:", "!:").
	isLabel := func() bool {
		switch peek(0) {
		case token.COLON:
			return true
		case token.OPTION, token.NOT:
			return peek(1) == token.COLON
		}
		return false
	}
	type level struct {
		run  int // labels of the field chain open at this level
		list bool
	}
	stack := []level{{}}
	depth := 0 // the levels open at this point
	deeper := func(pos token.Pos) {
		depth++
		if depth == MaxDepth+1 && tooDeep != nil {
			tooDeep(pos)
			tooDeep = nil
		}
	}
	for first := true; ; first = false {
		t := next()
		if bad {
			return false
		}
		switch t.t {
		case token.EOF:
			return true
		case token.COMMA:
			top := &stack[len(stack)-1]
			depth -= top.run
			top.run = 0
		case token.COLON:
			stack[len(stack)-1].run++
			deeper(t.pos)
		case token.OPTION, token.NOT: // only a?: and a!:
			if peek(0) != token.COLON {
				return false
			}
		case token.LBRACE:
			stack = append(stack, level{})
		case token.LBRACK:
			stack = append(stack, level{list: true})
		case token.RBRACE, token.RBRACK:
			top := stack[len(stack)-1]
			if len(stack) == 1 || top.list != (t.t == token.RBRACK) {
				return false // unbalanced: the parser in the child will say so
			}
			depth -= top.run
			stack = stack[:len(stack)-1]
		case token.STRING, token.INT, token.FLOAT, token.NULL, token.TRUE, token.FALSE, token.ATTRIBUTE:
			// a value, or (a string) a label
		case token.SUB:
			if n := peek(0); n != token.INT && n != token.FLOAT {
				return false
			}
		case token.IDENT:
			switch {
			case isLabel():
			case first && t.lit == "package" && peek(0) == token.IDENT:
				next() // the package clause
			default:
				return false // a reference, or an import
			}
		default:
			if t.t.IsKeyword() && isLabel() {
				break // if: 1, for: 2 are fields
			}
			return false // an operator, a comprehension, an interpolation...
		}
	}
}

// yamlHasAliases reports whether a YAML text uses an alias (*name), or may:
// a text the YAML parser refuses counts as aliased, so it is parsed only in
// the child.
func yamlHasAliases(data []byte) bool {
	if bytes.IndexByte(data, '*') < 0 {
		return false
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			return !errors.Is(err, io.EOF)
		}
		found := false
		var walk func(n *yaml.Node)
		walk = func(n *yaml.Node) {
			if found || n == nil {
				return
			}
			if n.Kind == yaml.AliasNode {
				found = true
				return
			}
			for _, c := range n.Content {
				walk(c)
			}
		}
		walk(&doc)
		if found {
			return true
		}
	}
}

// computation returns the first node of files that computes, or nil when
// they are plain data: fields with literal labels, structs, lists, literals.
func computation(files []*ast.File) ast.Node {
	for _, f := range files {
		for _, d := range f.Decls {
			if n := declComputes(d); n != nil {
				return n
			}
		}
	}
	return nil
}

func declComputes(d ast.Decl) ast.Node {
	switch d := d.(type) {
	case *ast.Package, *ast.CommentGroup, *ast.Attribute:
		return nil
	case *ast.Field:
		switch lab := d.Label.(type) {
		case *ast.Ident:
		case *ast.BasicLit:
			if lab.Kind != token.STRING {
				return lab
			}
		default:
			return d.Label // an alias, a pattern, a dynamic or interpolated label
		}
		if d.Value == nil {
			return d
		}
		return exprComputes(d.Value)
	case *ast.EmbedDecl:
		return exprComputes(d.Expr)
	}
	return d // import, let, comprehension, ellipsis...
}

func exprComputes(e ast.Expr) ast.Node {
	switch e := e.(type) {
	case *ast.BasicLit:
		return nil
	case *ast.StructLit:
		for _, d := range e.Elts {
			if n := declComputes(d); n != nil {
				return n
			}
		}
		return nil
	case *ast.ListLit:
		for _, x := range e.Elts {
			if n := exprComputes(x); n != nil {
				return n
			}
		}
		return nil
	case *ast.UnaryExpr:
		if lit, ok := e.X.(*ast.BasicLit); ok && e.Op == token.SUB && (lit.Kind == token.INT || lit.Kind == token.FLOAT) {
			return nil // a negative number, as JSON and YAML write them
		}
	case *ast.BinaryExpr:
		if isEmptyYAML(e) {
			return nil
		}
	}
	return e
}

// isEmptyYAML is `*null | _`, what CUE's YAML decoder makes of an empty file.
func isEmptyYAML(e *ast.BinaryExpr) bool {
	u, ok := e.X.(*ast.UnaryExpr)
	if !ok || e.Op != token.OR || u.Op != token.MUL {
		return false
	}
	lit, ok := u.X.(*ast.BasicLit)
	id, ok2 := e.Y.(*ast.Ident)
	return ok && ok2 && lit.Kind == token.NULL && id.Name == "_"
}

// ---- shape caps ----

// shapeNode is one struct or list of the manifest, merged across the places
// that write it (a: b: 1 and a: c: 2 are one struct a with two fields).
type shapeNode struct {
	names    []string       // its fields
	kids     []*shapeNode   // theirs, for fields that are structs or lists
	index    map[string]int // names' indexes, once there are many
	elems    []*shapeNode   // a list's elements that are structs or lists
	reported bool
}

// field returns the index of the field name, adding it if new.
func (n *shapeNode) field(name string) (i int, added bool) {
	if n.index != nil {
		if i, ok := n.index[name]; ok {
			return i, false
		}
	} else {
		for i, x := range n.names {
			if x == name {
				return i, false
			}
		}
	}
	n.names, n.kids = append(n.names, name), append(n.kids, nil)
	i = len(n.names) - 1
	switch {
	case n.index != nil:
		n.index[name] = i
	case len(n.names) > 16:
		n.index = make(map[string]int, 2*len(n.names))
		for j, x := range n.names {
			n.index[x] = j
		}
	}
	return i, true
}

// shape checks plain-data syntax against the caps, merging structs by path
// as CUE will. Violations are reported through report, with the position of
// the syntax that crosses the limit.
type shape struct {
	root      shapeNode
	instances *shapeNode // root's instances
	report    func(pos token.Pos, path []string, msg string)
	deep      bool // the depth limit was reported (once is enough)
	path      []string
}

func (s *shape) file(f *ast.File) {
	for _, d := range f.Decls {
		s.decl(&s.root, d, 0)
	}
}

func (s *shape) decl(n *shapeNode, d ast.Decl, depth int) {
	switch d := d.(type) {
	case *ast.Field:
		name, _, err := ast.LabelName(d.Label)
		if err != nil {
			return
		}
		i, added := n.field(name)
		if added && !n.reported {
			if n == s.instances && len(n.names) > MaxInstances {
				n.reported = true
				s.report(d.Label.Pos(), s.path, fmt.Sprintf("the fleet has more than %d instances, the limit", MaxInstances))
			} else if n != s.instances && len(n.names) > MaxFields {
				n.reported = true
				s.report(d.Label.Pos(), s.path, fmt.Sprintf("more than %d fields in one struct, the limit", MaxFields))
			}
		}
		s.path = append(s.path, name)
		s.value(n, i, d.Value, depth+1)
		s.path = s.path[:len(s.path)-1]
	case *ast.EmbedDecl:
		s.embed(n, d.Expr, depth)
	}
}

// embed merges an embedded value into n itself.
func (s *shape) embed(n *shapeNode, e ast.Expr, depth int) {
	switch e := e.(type) {
	case *ast.StructLit:
		for _, d := range e.Elts {
			s.decl(n, d, depth)
		}
	case *ast.ListLit:
		s.list(n, e, depth)
	case *ast.BasicLit:
		s.str(e)
	}
}

// value records the value e of parent's field i.
func (s *shape) value(parent *shapeNode, i int, e ast.Expr, depth int) {
	if depth > MaxDepth {
		s.tooDeep(e.Pos())
		return
	}
	switch e := e.(type) {
	case *ast.StructLit, *ast.ListLit:
		child := parent.kids[i]
		if child == nil {
			child = &shapeNode{}
			parent.kids[i] = child
			if parent == &s.root && parent.names[i] == "instances" {
				s.instances = child
			}
		}
		s.embed(child, e, depth)
	case *ast.BasicLit:
		s.str(e)
	}
}

func (s *shape) tooDeep(pos token.Pos) {
	if !s.deep {
		s.deep = true
		s.report(pos, shortPath(s.path), fmt.Sprintf("the manifest nests more than %d levels deep, the limit", MaxDepth))
	}
}

func (s *shape) list(n *shapeNode, l *ast.ListLit, depth int) {
	if len(l.Elts) > MaxListLen {
		if !n.reported {
			n.reported = true
			s.report(l.Elts[MaxListLen].Pos(), s.path, fmt.Sprintf("a list of more than %d elements, the limit", MaxListLen))
		}
		return
	}
	if depth+1 > MaxDepth {
		s.tooDeep(l.Pos())
		return
	}
	for i, x := range l.Elts {
		for len(n.elems) <= i {
			n.elems = append(n.elems, nil)
		}
		switch x := x.(type) {
		case *ast.StructLit, *ast.ListLit:
			if n.elems[i] == nil {
				n.elems[i] = &shapeNode{}
			}
			s.path = append(s.path, strconv.Itoa(i))
			s.embed(n.elems[i], x, depth+1)
			s.path = s.path[:len(s.path)-1]
		case *ast.BasicLit:
			s.str(x)
		}
	}
}

// str checks a string literal's length (its text is never shorter than its value).
func (s *shape) str(lit *ast.BasicLit) {
	if lit.Kind != token.STRING || len(lit.Value) <= MaxStringLen {
		return
	}
	v, err := literal.Unquote(lit.Value)
	if err != nil || len(v) <= MaxStringLen {
		return
	}
	s.report(lit.Pos(), s.path, fmt.Sprintf("a string of %d bytes, longer than the %s limit", len(v), byteSize(MaxStringLen)))
}

// shortPath keeps a deep path readable: where the deep part starts.
func shortPath(p []string) []string {
	return p[:min(len(p), 8)]
}

// checkShape reports the caps plain-data files break.
func (l *loader) checkShape(files []*ast.File) {
	s := &shape{report: func(pos token.Pos, path []string, msg string) {
		l.errAtPos(pos, formatPath(path), msg)
	}}
	for _, f := range files {
		s.file(f)
	}
}

// ---- the gate: evaluating in a child process under the budget ----

type gateSource struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	Data []byte `json:"data"`
}

type gateRequest struct {
	Memory  int64         `json:"memory"`
	Timeout time.Duration `json:"timeout"`
	Sources []gateSource  `json:"sources"`
}

// gateVerdict is the child's answer: the caps the evaluated manifest breaks,
// or that it went over the memory budget.
type gateVerdict struct {
	Diagnostics Diagnostics `json:"diagnostics,omitempty"`
	Memory      bool        `json:"memory,omitempty"`
}

// gate parses and evaluates srcs in a child process under the budget, first
// being the file that computes. It returns nil when the evaluation fits (the
// loader then evaluates in-process), Diagnostics when it does not, or the
// context's error. errorPass says the manifest is plain data known to be
// invalid, gated for its error pass only (see loader.boundErrors).
func (l *loader) gate(srcs []source, first string, errorPass bool) error {
	gateRuns.Add(1)
	b, err := l.budget()
	if err != nil {
		return err
	}
	req := gateRequest{Memory: b.Memory, Timeout: b.Timeout}
	for _, s := range srcs {
		req.Sources = append(req.Sources, gateSource{Name: s.name, Kind: s.kind, Data: s.data})
	}
	in, err := json.Marshal(req)
	if err != nil {
		return err
	}
	what := "evaluating the manifest"
	if errorPass {
		what = "the manifest is invalid, and checking it"
	}
	fail := func(msg string) error {
		return Diagnostics{{File: first, Msg: msg, Severity: schema.SeverityError}}
	}
	exe, err := gateExecutable()
	if err != nil {
		return fail(fmt.Sprintf("cannot evaluate the manifest: cannot start a process to evaluate it in: %v", err))
	}
	ctx, cancel := context.WithTimeout(l.ctx, b.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	// GOTRACEBACK=none: a fatal error prints its cause, not every goroutine.
	cmd.Env = append(os.Environ(), gateEnv+"=1", "GOTRACEBACK=none")
	cmd.Stdin = bytes.NewReader(in)
	stdout, stderr := &capped{max: 1 << 20}, &capped{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second
	runErr := cmd.Run()
	if err := l.ctx.Err(); err != nil {
		return err
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		why := "it computes too much"
		if errorPass {
			why = "it has too many errors to report"
		}
		return fail(fmt.Sprintf("%s exceeded the %s time budget (%s): %s; if the manifest is trusted, raise the budget with %s", what, b.Timeout, EvalTimeoutEnv, why, EvalTimeoutEnv))
	}
	why := "it computes values too large"
	if errorPass {
		why = "it has too many errors to report"
	}
	memory := fmt.Sprintf("%s exceeded the %s memory budget (%s): %s; if the manifest is trusted, raise the budget with %s", what, byteSize(b.Memory), EvalMemoryEnv, why, EvalMemoryEnv)
	var v gateVerdict
	out := bytes.TrimSpace(stdout.Bytes())
	if i := bytes.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:] // the verdict is the last line
	}
	if runErr == nil && json.Unmarshal(out, &v) == nil {
		if v.Memory {
			return fail(memory)
		}
		if len(v.Diagnostics) > 0 {
			return v.Diagnostics
		}
		return nil
	}
	// The child died: the runtime's out-of-memory or stack-overflow death,
	// or the kernel's OOM killer.
	tail := stderr.String()
	var ee *exec.ExitError
	switch {
	case strings.Contains(tail, "out of memory") || strings.Contains(tail, "cannot allocate memory"):
		return fail(memory)
	case strings.Contains(tail, "stack overflow") || strings.Contains(tail, "stack exceeds"):
		return fail(what + " ran out of stack: it nests too deeply")
	case errors.As(runErr, &ee) && ee.ProcessState != nil && killedBySignal(ee.ProcessState):
		return fail(memory + " (the evaluating process was killed)")
	}
	line := strings.TrimSpace(tail)
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	if runErr == nil {
		runErr = errors.New("no verdict")
	}
	return fail(fmt.Sprintf("cannot evaluate the manifest: the evaluating process failed: %v %s", runErr, line))
}

func killedBySignal(ps *os.ProcessState) bool {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// capped keeps the first max bytes written to it.
type capped struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

func (c *capped) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.buf...)
}

func (c *capped) String() string { return string(c.Bytes()) }

func init() {
	if os.Getenv(gateEnv) != "1" {
		return
	}
	os.Exit(serveGate(os.Stdin, os.Stdout))
}

// serveGate is the child's side of gate: it reads a request, evaluates it
// as the loader does, watching its own memory, and writes a verdict.
func serveGate(r io.Reader, w io.Writer) int {
	var req gateRequest
	if err := json.NewDecoder(r).Decode(&req); err != nil || req.Memory <= 0 || req.Timeout <= 0 {
		fmt.Fprintf(os.Stderr, "%s is set: this process only evaluates a manifest sent by jackin on stdin (%v)\n", gateEnv, err)
		return 2
	}
	var once sync.Mutex
	answer := func(v gateVerdict) {
		once.Lock() // never unlocked: one answer, then exit
		b, _ := json.Marshal(v)
		w.Write(append(b, '\n'))
	}
	limitMemory(req.Memory)
	go watchMemory(req.Memory, req.Timeout, func() {
		answer(gateVerdict{Memory: true})
		os.Exit(0)
	})
	answer(evaluateForGate(req.Sources))
	return 0
}

// limitMemory makes the runtime collect hard near the budget, bounds the
// stack, and (where the system allows) caps the address space, so that one
// huge allocation fails at once instead of being committed.
func limitMemory(budget int64) {
	debug.SetMemoryLimit(budget)
	debug.SetMaxStack(int(min(budget/4, 256<<20)))
	limitAddressSpace(budget)
}

// heapMetric is the memory that evaluation holds: live and not yet swept
// heap objects. A single large allocation counts at once.
const heapMetric = "/memory/classes/heap/objects:bytes"

// watchMemory polls the heap; over budget (or long past the deadline, in
// case the parent is gone) it calls over.
func watchMemory(budget int64, timeout time.Duration, over func()) {
	samples := []metrics.Sample{{Name: heapMetric}}
	deadline := time.Now().Add(timeout + 2*time.Second)
	for {
		time.Sleep(2 * time.Millisecond)
		metrics.Read(samples)
		if samples[0].Value.Kind() == metrics.KindUint64 && samples[0].Value.Uint64() > uint64(budget) {
			over()
			return
		}
		if time.Now().After(deadline) {
			os.Exit(3)
		}
	}
}

// evaluateForGate does the loader's CUE work (parse, build, schema, export)
// and checks the result against the caps. A manifest that is merely invalid
// passes: the loader will report it, having the same work to do.
func evaluateForGate(srcs []gateSource) (v gateVerdict) {
	defer func() {
		if recover() != nil {
			v = gateVerdict{} // the loader recovers the same panic and reports it
		}
	}()
	l := &loader{ctx: context.Background(), dirs: map[string]string{}, cctx: cuecontext.New()}
	ss := make([]source, len(srcs))
	for i, s := range srcs {
		ss[i] = source{name: s.Name, kind: s.Kind, data: s.Data}
	}
	files := l.parse(ss)
	if len(l.diags) > 0 {
		return v
	}
	if l.evaluate(files) != nil {
		return v // it does not build: the loader will say why
	}
	b, err := l.data.MarshalJSON()
	if err != nil {
		return v
	}
	first := ""
	if len(srcs) > 0 {
		first = srcs[0].Name
	}
	if len(b) > MaxEvaluatedSize {
		v.Diagnostics = Diagnostics{{File: first, Msg: fmt.Sprintf("the manifest evaluates to %s of JSON, more than the %s limit", byteSize(int64(len(b))), byteSize(MaxEvaluatedSize)), Severity: schema.SeverityError}}
		return v
	}
	expr, err := cuejson.Extract("evaluated", b)
	if err != nil {
		return v
	}
	s := &shape{report: func(_ token.Pos, path []string, msg string) {
		if len(v.Diagnostics) >= 20 {
			return
		}
		d := Diagnostic{File: first, Path: formatPath(path), Msg: msg, Severity: schema.SeverityError}
		if p := l.data.LookupPath(jsonPath(path)).Pos(); p.IsValid() {
			d.File, d.Line, d.Col = p.Filename(), p.Line(), p.Column()
		}
		v.Diagnostics = append(v.Diagnostics, d)
	}}
	s.file(&ast.File{Decls: []ast.Decl{&ast.EmbedDecl{Expr: expr}}})
	return v
}

// jsonPath is the CUE path of a path in the exported JSON (where every
// field is a regular one).
func jsonPath(path []string) cue.Path {
	sels := make([]cue.Selector, 0, len(path))
	for _, s := range path {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 && strconv.Itoa(n) == s {
			sels = append(sels, cue.Index(n))
			continue
		}
		sels = append(sels, cue.Str(s))
	}
	return cue.MakePath(sels...)
}

// byteSize renders a size for messages: "1 GiB", "16 MiB", "1234 bytes".
func byteSize(n int64) string {
	for _, u := range []struct {
		s string
		n int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.n {
			if n%u.n == 0 {
				return fmt.Sprintf("%d %s", n/u.n, u.s)
			}
			return fmt.Sprintf("%.1f %s", float64(n)/float64(u.n), u.s)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
