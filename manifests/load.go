// Package manifests loads fleet manifests (CUE, YAML, JSON; files,
// directories, stdin), validates them against the embedded CUE schema,
// merges defaults, resolves paths and runs the policy checks, reporting every
// problem at the file, line and column of the user's own text.
package manifests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
	cuejson "cuelang.org/go/encoding/json"
	cueyaml "cuelang.org/go/encoding/yaml"
	"go.yaml.in/yaml/v3"

	"github.com/jackin-dev/jackin/hostpath"
	"github.com/jackin-dev/jackin/integrations"
	"github.com/jackin-dev/jackin/runtimes"
	"github.com/jackin-dev/jackin/schema"
)

// Diagnostic and Diagnostics are the schema package's, re-exported for callers.
type (
	Diagnostic  = schema.Diagnostic
	Diagnostics = schema.Diagnostics
)

// MaxFileSize bounds one manifest file; larger input is refused, not parsed.
const MaxFileSize = 4 << 20

// StdinName is how diagnostics name manifest text read from stdin.
const StdinName = "<stdin>"

// Options tune Load.
type Options struct {
	// Stdin is read for the path "-".
	Stdin io.Reader
	// Home replaces a leading ~ (default: the user's home directory).
	Home string
	// WorkDir is the base of relative paths in stdin (default: the current directory).
	WorkDir string
	// HostCPUs bounds resources.cpus (default: runtime.NumCPU()).
	HostCPUs int
	// HostUser is the operator's "uid:gid", the user hardened and locked
	// profiles run agents as (default: this process's UID and GID).
	HostUser string
	// StateDir and SecretsDir are where jackin keeps its state (keys,
	// policies, history) and credential values (defaults: $JACKIN_HOME or
	// ~/.local/state/jackin, and $JACKIN_SECRETS_DIR or
	// /dev/shm/jackin-<uid>): never mount sources.
	StateDir   string
	SecretsDir string
	// EngineSockets are the Docker engine's sockets, refused as mount
	// sources under any name (default: schema.HostDockerSockets).
	EngineSockets []string
	// Budget bounds the evaluation of a manifest that computes (defaults:
	// $JACKIN_EVAL_TIMEOUT or 10s, $JACKIN_EVAL_MEMORY or 1Gi); see budget.go.
	Budget Budget
}

// Result is a loaded, valid fleet and any warnings.
type Result struct {
	Fleet    *schema.Fleet
	Warnings []Diagnostic
}

// source is one manifest file's text.
type source struct {
	name string // as shown in diagnostics
	dir  string // absolute base for relative paths in it
	data []byte
	kind string // "cue", "yaml" or "json"
}

// Load reads, validates and resolves the manifests at paths. Invalid input
// returns Diagnostics listing every problem found.
func Load(ctx context.Context, paths []string, opts Options) (res *Result, err error) {
	defer func() {
		// CUE is a large dependency: if it ever panics on odd input, report
		// it as an error rather than crash the operator's command.
		if r := recover(); r != nil {
			res, err = nil, Diagnostics{{Msg: fmt.Sprintf("internal error while evaluating the manifest (please report this): %v", r), Severity: schema.SeverityError}}
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.Home == "" {
		opts.Home, _ = os.UserHomeDir()
	}
	if opts.WorkDir == "" {
		opts.WorkDir, _ = os.Getwd()
	}
	if opts.HostCPUs <= 0 {
		opts.HostCPUs = runtime.NumCPU()
	}
	if opts.HostUser == "" {
		opts.HostUser = schema.HostUser(os.Getuid(), os.Getgid())
	}
	if len(paths) == 0 {
		return nil, Diagnostics{{Msg: "no manifest given", Severity: schema.SeverityError}}
	}
	srcs, diags := collect(paths, opts)
	if len(diags) > 0 {
		return nil, diags
	}
	l := &loader{ctx: ctx, opts: opts, dirs: map[string]string{}, cctx: cuecontext.New(), guard: newGuard(opts), pins: map[string]*hostpath.Pin{}}
	return l.load(srcs)
}

// collect reads the files named by paths: files, directories (their
// manifest files, not recursively) and "-" for stdin.
func collect(paths []string, opts Options) ([]source, Diagnostics) {
	var srcs []source
	var diags Diagnostics
	seen := map[string]bool{}
	add := func(name string, abs string, kind string) {
		if seen[abs] {
			return
		}
		seen[abs] = true
		data, err := readLimited(name, func() (io.ReadCloser, error) { return openRegular(abs) })
		if err != nil {
			diags = append(diags, Diagnostic{File: name, Msg: err.Error(), Severity: schema.SeverityError})
			return
		}
		srcs = append(srcs, source{name: name, dir: filepath.Dir(abs), data: data, kind: kind})
	}
	for _, p := range paths {
		if p == "-" {
			if opts.Stdin == nil {
				diags = append(diags, Diagnostic{File: StdinName, Msg: "no standard input to read", Severity: schema.SeverityError})
				continue
			}
			data, err := readLimited(StdinName, func() (io.ReadCloser, error) { return io.NopCloser(opts.Stdin), nil })
			if err != nil {
				diags = append(diags, Diagnostic{File: StdinName, Msg: err.Error(), Severity: schema.SeverityError})
				continue
			}
			srcs = append(srcs, source{name: StdinName, dir: opts.WorkDir, data: data, kind: sniffKind(data)})
			continue
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			diags = append(diags, Diagnostic{File: p, Msg: err.Error(), Severity: schema.SeverityError})
			continue
		}
		st, err := os.Stat(abs)
		if err != nil {
			diags = append(diags, Diagnostic{File: p, Msg: "cannot read manifest: " + plainFSError(err), Severity: schema.SeverityError})
			continue
		}
		if !st.IsDir() {
			if !st.Mode().IsRegular() {
				// A FIFO would block the read for ever: refused unopened.
				diags = append(diags, Diagnostic{File: p, Msg: (&notRegularError{fileKind(st.Mode())}).Error(), Severity: schema.SeverityError})
				continue
			}
			kind := kindOf(p)
			if kind == "" {
				diags = append(diags, Diagnostic{File: p, Msg: "unknown manifest type: use a .cue, .yaml, .yml or .json file", Severity: schema.SeverityError})
				continue
			}
			add(p, abs, kind)
			continue
		}
		entries, err := os.ReadDir(abs)
		if err != nil {
			diags = append(diags, Diagnostic{File: p, Msg: "cannot read directory: " + plainFSError(err), Severity: schema.SeverityError})
			continue
		}
		found := 0
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if kind := kindOf(e.Name()); kind != "" {
				add(filepath.Join(p, e.Name()), filepath.Join(abs, e.Name()), kind)
				found++
			}
		}
		if found == 0 {
			diags = append(diags, Diagnostic{File: p, Msg: "the directory holds no manifest files (.cue, .yaml, .yml, .json)", Severity: schema.SeverityError})
		}
	}
	return srcs, diags
}

func readLimited(name string, open func() (io.ReadCloser, error)) ([]byte, error) {
	r, err := open()
	if err != nil {
		var nr *notRegularError
		if errors.As(err, &nr) {
			return nil, err
		}
		return nil, fmt.Errorf("cannot read manifest: %s", plainFSError(err))
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read manifest: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("manifest is larger than %d MiB", MaxFileSize>>20)
	}
	return data, nil
}

func plainFSError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func kindOf(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".cue":
		return "cue"
	case ".yaml", ".yml":
		return "yaml"
	case ".json":
		return "json"
	}
	return ""
}

// sniffKind picks stdin's format: YAML when it parses as a YAML mapping
// (plain `key: value` text is both; they mean the same), else CUE, which
// also covers JSON.
func sniffKind(data []byte) string {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		return "cue"
	}
	// A node tree, not values: aliases stay aliases (a merge-key bomb on
	// stdin must not expand before the budget applies).
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(normalizeNewlines(data))).Decode(&doc); err != nil {
		return "cue"
	}
	if len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode && len(doc.Content[0].Content) > 0 {
		return "yaml"
	}
	return "cue"
}

// loader holds one Load's state.
type loader struct {
	// ctx bounds the git calls that check worktree and clone sources.
	ctx   context.Context
	opts  Options
	cctx  *cue.Context
	dirs  map[string]string // file name -> base dir
	data  cue.Value         // the user's manifests, unified
	diags Diagnostics
	names []string // file names, in load order
	// guard checks mount sources against the host's sensitive paths, by
	// spelling and by identity.
	guard *schema.HostGuard
	// pins are the identities of host sources, by path, shared by every
	// instance that names the same path.
	pins map[string]*hostpath.Pin
	// warnings are said with a valid result; they refuse nothing.
	warnings Diagnostics
	// boundErrors, when set, runs before the field-by-field error pass:
	// on plain data, which was not evaluated under the budget, that pass
	// can be slow (CUE combines errors in quadratic time). See load.
	boundErrors func() error
	// runtimes are the fleet's own agent runtimes, by name.
	runtimes map[string]runtimes.Runtime
	// engines are the fleet's declared Docker engines, by name.
	engines map[string]schema.Engine
	// integrationApprovals are the operator's approvals of integration
	// recommendations, read once (see approvals).
	integrationApprovals integrations.Approvals
}

func (l *loader) load(srcs []source) (*Result, error) {
	// Bound the work before doing it (budget.go): plain data is parsed and
	// checked against the shape caps here; anything that computes is first
	// parsed and evaluated in a child process under the budget.
	gated := false
	computed := l.screen(srcs)
	if len(l.diags) > 0 {
		return nil, l.sorted()
	}
	if computed != "" {
		if err := l.gate(srcs, computed, false); err != nil {
			return nil, err
		}
		gated = true
	}
	files := l.parse(srcs)
	if len(l.diags) > 0 {
		return nil, l.sorted()
	}
	if !gated {
		if n := computation(files); n != nil {
			first := n.Pos().Filename()
			if first == "" {
				first = srcs[0].name
			}
			if err := l.gate(srcs, first, false); err != nil {
				return nil, err
			}
		} else if l.checkShape(files); len(l.diags) > 0 {
			return nil, l.sorted()
		} else {
			// Valid plain data loads in linear time; an invalid one's error
			// pass is bounded like a computation.
			l.boundErrors = func() error { return l.gate(srcs, srcs[0].name, true) }
		}
	}
	if err := l.evaluate(files); err != nil {
		return nil, err
	}
	fleet := l.resolve()
	if len(l.diags) > 0 {
		return nil, l.sorted()
	}
	fleet.Sources = l.names
	return &Result{Fleet: fleet, Warnings: l.warnings}, nil
}

// evaluate builds the parsed files and checks them against the schema:
// all of the loader's CUE work but resolve's export. The evaluation gate's
// child runs it too, under the budget. It returns Diagnostics when the
// manifests cannot be built; schema errors are left in l.diags.
func (l *loader) evaluate(files []*ast.File) error {
	inst := build.NewContext().NewInstance("", nil)
	for _, f := range files {
		if err := inst.AddSyntax(f); err != nil {
			l.addCUEErrors(err)
		}
	}
	if len(l.diags) > 0 {
		return l.sorted()
	}
	l.checkDuplicateInstances(files)
	l.data = l.cctx.BuildInstance(inst)
	if err := l.data.Err(); err != nil {
		l.addCUEErrors(err)
		return l.sorted()
	}
	def, err := schema.Compile(l.cctx)
	if err != nil {
		return err
	}
	// Fast path: subsumption answers "is this an instance of #Fleet" several
	// times faster than unifying, and is stricter (a missing apiVersion is
	// not filled in from the schema). Only on failure do we pay for the
	// field-by-field pass that places and words every error.
	if def.Subsume(l.data, cue.Final()) != nil {
		if l.boundErrors != nil {
			if err := l.boundErrors(); err != nil {
				return err
			}
		}
		l.fieldErrors(l.cctx.CompileBytes(schema.Source, cue.Filename(schema.SourceName)))
		if len(l.diags) == 0 {
			if err := def.Unify(l.data).Validate(cue.Concrete(true)); err != nil {
				l.addCUEErrors(err) // the per-field pass found nothing: keep CUE's own words
			}
		}
	}
	return nil // schema errors are in l.diags: resolve adds its own to them
}

// parse turns each source into CUE syntax, keeping positions.
func (l *loader) parse(srcs []source) []*ast.File {
	var files []*ast.File
	pkg, pkgFile := "", ""
	for _, s := range srcs {
		l.dirs[s.name] = s.dir
		l.names = append(l.names, s.name)
		var f *ast.File
		var err error
		switch s.kind {
		case "cue":
			f, err = parser.ParseFile(s.name, s.data, parser.ParseComments)
		case "yaml":
			// YAML reads a bare CR as a line break; the YAML decoder CUE uses
			// mishandles it, so hand it plain newlines (lines stay the same).
			f, err = cueyaml.Extract(s.name, normalizeNewlines(s.data))
		case "json":
			var expr ast.Expr
			expr, err = cuejson.Extract(s.name, s.data)
			if err == nil {
				f = &ast.File{Filename: s.name, Decls: []ast.Decl{&ast.EmbedDecl{Expr: expr}}}
			}
		}
		if err != nil {
			l.addParseError(s.name, err)
			continue
		}
		if f == nil {
			continue
		}
		// The files form one package. Different package names are a mistake
		// worth saying; files without a clause join the declared package
		// below, so hidden fields (package-scoped) resolve across files.
		for _, d := range f.Decls {
			p, ok := d.(*ast.Package)
			if !ok {
				continue
			}
			name := p.Name.Name
			if pkg != "" && name != pkg {
				l.errAtPos(p.Pos(), "", fmt.Sprintf("package %q differs from package %q in %s: manifest files load as one package", name, pkg, pkgFile))
				continue
			}
			pkg, pkgFile = name, s.name
		}
		files = append(files, f)
	}
	if pkg != "" {
		for _, f := range files {
			if f.PackageName() == "" {
				f.Decls = append([]ast.Decl{&ast.Package{Name: ast.NewIdent(pkg)}}, f.Decls...)
			}
		}
	}
	return files
}

func (l *loader) addParseError(name string, err error) {
	var cerr cueerrors.Error
	if !errors.As(err, &cerr) {
		l.diags = append(l.diags, plainParseError(name, err))
		return
	}
	for _, e := range cueerrors.Errors(err) {
		msg := errMsg(e)
		if cause := errors.Unwrap(e); cause != nil && !strings.Contains(msg, cause.Error()) {
			msg += ": " + cause.Error() // JSON's: what is wrong, not only where
		}
		d := Diagnostic{File: name, Msg: "syntax error: " + msg, Severity: schema.SeverityError}
		if p := e.Position(); p.IsValid() {
			d.Line, d.Col = p.Line(), p.Column()
			if fn := p.Filename(); fn != "" {
				d.File = fn
			}
		}
		l.diags = append(l.diags, d)
	}
}

// plainParseError places an error that carries its place only in its text,
// as YAML's do ("f.yaml:7: message", or "f.yaml: message"): at the start of
// the line it names, as YAML gives no column.
func plainParseError(name string, err error) Diagnostic {
	d := Diagnostic{File: name, Severity: schema.SeverityError}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, name+":"); ok {
		msg = rest
		if num, after, ok := strings.Cut(rest, ":"); ok {
			if n, err := strconv.Atoi(num); err == nil && n > 0 {
				d.Line, d.Col, msg = n, 1, after
			}
		}
	}
	d.Msg = "syntax error: " + strings.TrimSpace(msg)
	return d
}

// checkDuplicateInstances refuses an instance defined in more than one file:
// each instance lives in one file; shared settings go in defaults.
func (l *loader) checkDuplicateInstances(files []*ast.File) {
	if len(files) < 2 {
		return
	}
	first := map[string]token.Pos{}
	for _, f := range files {
		here := map[string]token.Pos{} // a file may name an instance twice (CUE merges them)
		for _, in := range l.fileInstances(f) {
			if _, ok := here[in.name]; ok {
				continue
			}
			here[in.name] = in.pos
			if prev, ok := first[in.name]; ok {
				l.errAtPos(in.pos, "instances."+in.name, fmt.Sprintf("instance %q is already defined at %s: instance names must be unique across the manifest files", in.name, posString(prev)))
			}
		}
		for name, pos := range here {
			if _, ok := first[name]; !ok {
				first[name] = pos
			}
		}
	}
}

type namedPos struct {
	name string
	pos  token.Pos
}

// fileInstances lists the instances one file defines. A file that stands
// alone is evaluated, so generated names count; one that needs its package
// siblings (a hidden field or definition from another file) is read as
// written: the fields of its top-level instances struct.
func (l *loader) fileInstances(f *ast.File) []namedPos {
	var out []namedPos
	if v := l.cctx.BuildFile(f); v.Err() == nil {
		it, err := v.LookupPath(cue.MakePath(cue.Str("instances"))).Fields()
		if err != nil {
			return nil
		}
		for it.Next() {
			out = append(out, namedPos{it.Selector().Unquoted(), it.Value().Pos()})
		}
		return out
	}
	var walk func(decls []ast.Decl)
	walk = func(decls []ast.Decl) {
		for _, d := range decls {
			switch d := d.(type) {
			case *ast.EmbedDecl: // a JSON document is one embedded struct
				if s, ok := d.Expr.(*ast.StructLit); ok {
					walk(s.Elts)
				}
			case *ast.Field:
				if name, _, err := ast.LabelName(d.Label); err != nil || name != "instances" {
					continue
				}
				s, ok := d.Value.(*ast.StructLit)
				if !ok {
					continue
				}
				for _, e := range s.Elts {
					if in, ok := e.(*ast.Field); ok {
						if name, _, err := ast.LabelName(in.Label); err == nil {
							out = append(out, namedPos{name, in.Label.Pos()})
						}
					}
				}
			}
		}
	}
	walk(f.Decls)
	return out
}

func posString(p token.Pos) string {
	if !p.IsValid() {
		return "another file"
	}
	return fmt.Sprintf("%s:%d:%d", p.Filename(), p.Line(), p.Column())
}

func errMsg(e cueerrors.Error) string {
	format, args := e.Msg()
	return fmt.Sprintf(format, args...)
}

// errAtPos records an error at a position in the user's text.
func (l *loader) errAtPos(p token.Pos, path, msg string) {
	d := Diagnostic{Path: path, Msg: msg, Severity: schema.SeverityError}
	if p.IsValid() {
		d.File, d.Line, d.Col = p.Filename(), p.Line(), p.Column()
	}
	l.diags = append(l.diags, d)
}

// sorted returns the diagnostics in file order, without duplicates.
func (l *loader) sorted() Diagnostics {
	order := map[string]int{}
	for i, n := range l.names {
		order[n] = i
	}
	sort.SliceStable(l.diags, func(i, j int) bool {
		a, b := l.diags[i], l.diags[j]
		if a.File != b.File {
			return order[a.File] < order[b.File]
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	var out Diagnostics
	seen := map[string]bool{}
	for _, d := range l.diags {
		if k := d.String(); !seen[k] {
			seen[k] = true
			out = append(out, d)
		}
	}
	return out
}

func normalizeNewlines(b []byte) []byte {
	if !bytes.Contains(b, []byte("\r")) {
		return b
	}
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\r"), []byte("\n"))
}

// hostUser is the operator's "uid:gid".
func (l *loader) hostUser() string { return l.opts.HostUser }
