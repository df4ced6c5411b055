// Package integrations holds jackin's stack integrations (node, go, python,
// rust, java): hints that make a toolchain easy inside an agent without
// becoming policy. An integration may only add read-only host mounts of
// toolchain caches, ephemeral cache volumes, env names from a fixed
// allowlist (passed through from the host, or set to one of its own
// container paths), snapshot excludes and warnings. It can never add a
// writable host path, a credential, an egress rule, a port, Docker access
// or a command to run: the definition loader refuses any such field, at
// file:line, and every field it does not know.
//
// A repository may recommend integrations by name in .jackin/integrations.cue
// (or .yaml, .yml), at most 8 KB, names only. A recommendation is active
// only once the operator approved that file (jackin approve), keyed by its
// path and SHA-256: a changed file is inactive until approved again.
//
// Definitions and recommendations are read as literal CUE or YAML syntax
// (parsed, never evaluated): nothing in them computes.
package integrations

import (
	"embed"
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
	cueyaml "cuelang.org/go/encoding/yaml"
)

// Names are the built-in integrations, sorted.
var Names = []string{"go", "java", "node", "python", "rust"}

// EnvAllowlist are the only env names an integration may pass through or
// set: toolchain tuning and cache locations, none of which carries a
// credential or points a tool at a host outside the egress policy.
var EnvAllowlist = []string{
	"CARGO_HOME", "CARGO_TERM_COLOR", "GOCACHE", "GOFLAGS", "GOMODCACHE", "GOPROXY", "GOTOOLCHAIN",
	"GRADLE_USER_HOME", "NODE_ENV", "NODE_OPTIONS", "PIP_CACHE_DIR", "PYTHONDONTWRITEBYTECODE",
	"PYTHONUNBUFFERED", "RUSTFLAGS", "RUST_BACKTRACE", "npm_config_cache",
}

// Mount is a read-only host mount: Src (~ is the operator's home) at Dst.
type Mount struct {
	Src string `json:"src"`
	Dst string `json:"dst"`
}

// Def is one integration's definition.
type Def struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Mounts are read-only, always; a missing Src is left out.
	Mounts []Mount `json:"mounts,omitempty"`
	// Caches are container paths given an ephemeral volume each.
	Caches []string `json:"caches,omitempty"`
	// Env are names passed through from the host's environment when set.
	Env []string `json:"env,omitempty"`
	// SetEnv are names set to one of the integration's own container
	// paths (a file:// URL of one for GOPROXY, with "off" or "direct").
	SetEnv map[string]string `json:"setEnv,omitempty"`
	// SnapshotExcludes are left out of snapshots and left alone by restores.
	SnapshotExcludes []string `json:"snapshotExcludes,omitempty"`
	Warnings         []string `json:"warnings,omitempty"`
}

// Error is a refused definition or recommendation, at file:line:col.
type Error struct {
	File      string
	Line, Col int
	Field     string
	Msg       string
}

func (e *Error) Error() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Col)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", where, e.Field, e.Msg)
	}
	return where + ": " + e.Msg
}

func errAt(file string, n ast.Node, field, format string, args ...any) *Error {
	e := &Error{File: file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		if p := n.Pos(); p.IsValid() {
			e.Line, e.Col = p.Line(), p.Column()
		}
	}
	return e
}

// forbidden are the fields that would widen trust, with what each would
// add: refused by name, whatever their value.
var forbidden = map[string]string{
	"credentials": "a credential", "credential": "a credential", "secrets": "a credential", "secret": "a credential",
	"network": "an egress rule", "egress": "an egress rule", "allow": "an egress rule", "hosts": "an egress rule",
	"ports": "a port", "port": "a port", "publish": "a port",
	"docker": "Docker access", "dockerDaemon": "Docker access", "dockerSocket": "Docker access",
	"command": "a command to run", "args": "a command to run", "run": "a command to run", "exec": "a command to run",
	"entrypoint": "a command to run", "hooks": "a command to run", "postCreate": "a command to run", "setup": "a command to run",
	"rw": "a writable host path", "writable": "a writable host path", "mode": "a writable host path",
	"privileged": "a privilege", "capAdd": "a privilege", "security": "a privilege",
}

func refusal(file string, f *ast.Field, name string) *Error {
	return errAt(file, f.Label, name, "an integration can never add %s (integrations add read-only mounts, cache volumes, allowlisted env names, snapshot excludes and warnings only)", forbidden[name])
}

// parse reads filename as literal CUE (or YAML by its extension) syntax.
func parse(filename string, src []byte) (*ast.File, error) {
	var f *ast.File
	var err error
	switch strings.ToLower(path.Ext(filename)) {
	case ".yaml", ".yml":
		f, err = cueyaml.Extract(filename, src)
	default:
		f, err = parser.ParseFile(filename, src)
	}
	if err != nil {
		return nil, &Error{File: filename, Msg: "not valid syntax: " + firstLine(err.Error())}
	}
	return f, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// fields are a struct's literal fields; anything else (an embedding, a
// comprehension, a definition) is refused.
func fields(file string, decls []ast.Decl, where string) ([]*ast.Field, error) {
	var out []*ast.Field
	seen := map[string]bool{}
	for _, d := range decls {
		switch d := d.(type) {
		case *ast.Field:
			name, _, err := ast.LabelName(d.Label)
			if err != nil || strings.HasPrefix(name, "#") || d.Constraint != token.ILLEGAL {
				return nil, errAt(file, d, where, "only plain fields are allowed here")
			}
			if seen[name] {
				return nil, errAt(file, d.Label, name, "given twice")
			}
			seen[name] = true
			out = append(out, d)
		case *ast.Package, *ast.ImportDecl, *ast.Attribute, *ast.CommentGroup:
			if _, ok := d.(*ast.ImportDecl); ok {
				return nil, errAt(file, d, where, "imports are not allowed")
			}
		default:
			return nil, errAt(file, d, where, "only plain fields are allowed here")
		}
	}
	return out, nil
}

func label(f *ast.Field) string {
	n, _, _ := ast.LabelName(f.Label)
	return n
}

func stringLit(file string, e ast.Expr, field string) (string, error) {
	if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.STRING {
		s, err := strconv.Unquote(b.Value)
		if err != nil {
			// Multi-line or raw CUE strings.
			s, err = literalString(b.Value)
		}
		if err == nil {
			return s, nil
		}
	}
	return "", errAt(file, e, field, "must be a string literal")
}

func literalString(v string) (string, error) {
	for _, q := range []string{`"""`, `'''`, `"`, `'`} {
		if strings.HasPrefix(v, q) && strings.HasSuffix(v, q) && len(v) >= 2*len(q) {
			return v[len(q) : len(v)-len(q)], nil
		}
	}
	return "", fmt.Errorf("unquote %s", v)
}

func stringList(file string, e ast.Expr, field string) ([]string, error) {
	l, ok := e.(*ast.ListLit)
	if !ok {
		return nil, errAt(file, e, field, "must be a list of string literals")
	}
	var out []string
	for i, el := range l.Elts {
		s, err := stringLit(file, el, fmt.Sprintf("%s[%d]", field, i))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func structLit(file string, e ast.Expr, field string) (*ast.StructLit, error) {
	s, ok := e.(*ast.StructLit)
	if !ok {
		return nil, errAt(file, e, field, "must be a struct")
	}
	return s, nil
}

// LoadDefinition reads one integration definition (literal CUE or YAML).
// Every field it does not know is refused, and each that would widen
// trust is refused naming what it would add; an env name outside
// EnvAllowlist, a mount with a mode, and a set value that is not one of
// the integration's own container paths are refused too.
func LoadDefinition(filename string, src []byte) (*Def, error) {
	f, err := parse(filename, src)
	if err != nil {
		return nil, err
	}
	top, err := fields(filename, f.Decls, "")
	if err != nil {
		return nil, err
	}
	d := &Def{}
	for _, fl := range top {
		name := label(fl)
		if _, bad := forbidden[name]; bad {
			return nil, refusal(filename, fl, name)
		}
		switch name {
		case "name":
			d.Name, err = stringLit(filename, fl.Value, name)
		case "description":
			d.Description, err = stringLit(filename, fl.Value, name)
		case "mounts":
			d.Mounts, err = mounts(filename, fl.Value)
		case "caches":
			d.Caches, err = stringList(filename, fl.Value, name)
		case "env":
			if _, isStruct := fl.Value.(*ast.StructLit); isStruct {
				return nil, errAt(filename, fl.Value, name, "env lists names only (passed through from the host when set); setEnv sets a name to one of the integration's own container paths")
			}
			d.Env, err = stringList(filename, fl.Value, name)
		case "setEnv":
			d.SetEnv, err = setEnv(filename, fl.Value)
		case "snapshotExcludes":
			d.SnapshotExcludes, err = stringList(filename, fl.Value, name)
		case "warnings":
			d.Warnings, err = stringList(filename, fl.Value, name)
		default:
			return nil, errAt(filename, fl.Label, name, "field %q is not allowed in an integration; allowed fields: caches, description, env, mounts, name, setEnv, snapshotExcludes, warnings", name)
		}
		if err != nil {
			return nil, err
		}
	}
	if d.Name == "" {
		return nil, &Error{File: filename, Line: 1, Col: 1, Field: "name", Msg: "an integration needs a name"}
	}
	return d, check(filename, f, d)
}

func mounts(file string, e ast.Expr) ([]Mount, error) {
	l, ok := e.(*ast.ListLit)
	if !ok {
		return nil, errAt(file, e, "mounts", "must be a list of {src, dst}")
	}
	var out []Mount
	for i, el := range l.Elts {
		where := fmt.Sprintf("mounts[%d]", i)
		s, err := structLit(file, el, where)
		if err != nil {
			return nil, err
		}
		fs, err := fields(file, s.Elts, where)
		if err != nil {
			return nil, err
		}
		var m Mount
		for _, fl := range fs {
			name := label(fl)
			switch name {
			case "src":
				m.Src, err = stringLit(file, fl.Value, where+".src")
			case "dst":
				m.Dst, err = stringLit(file, fl.Value, where+".dst")
			case "mode", "readOnly", "rw", "writable":
				return nil, errAt(file, fl.Label, where+"."+name, "an integration can never add a writable host path: its mounts are read-only, always, and take no mode")
			default:
				if _, bad := forbidden[name]; bad {
					return nil, refusal(file, fl, where+"."+name)
				}
				return nil, errAt(file, fl.Label, where+"."+name, "field %q is not allowed in an integration mount; allowed fields: dst, src", name)
			}
			if err != nil {
				return nil, err
			}
		}
		if m.Src == "" || m.Dst == "" {
			return nil, errAt(file, el, where, "a mount needs src and dst")
		}
		out = append(out, m)
	}
	return out, nil
}

func setEnv(file string, e ast.Expr) (map[string]string, error) {
	s, err := structLit(file, e, "setEnv")
	if err != nil {
		return nil, err
	}
	fs, err := fields(file, s.Elts, "setEnv")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, fl := range fs {
		v, err := stringLit(file, fl.Value, "setEnv."+label(fl))
		if err != nil {
			return nil, err
		}
		out[label(fl)] = v
	}
	return out, nil
}

// check applies the rules that span fields: allowlisted env names,
// absolute container paths, host sources under the home directory, set
// values that name the integration's own paths.
func check(file string, f *ast.File, d *Def) error {
	at := func(field string) ast.Node { return findField(f, field) }
	for _, n := range d.Env {
		if !slices.Contains(EnvAllowlist, n) {
			return errAt(file, at("env"), "env", "%s is not in the integrations' env allowlist (%s): an integration passes no other variable", n, strings.Join(EnvAllowlist, ", "))
		}
	}
	var own []string
	for i, m := range d.Mounts {
		if !strings.HasPrefix(m.Src, "~/") || strings.Contains(m.Src, "..") {
			return errAt(file, at("mounts"), fmt.Sprintf("mounts[%d].src", i), "%q: an integration mounts a toolchain cache under the home directory (~/...), nothing else", m.Src)
		}
		if !path.IsAbs(m.Dst) || path.Clean(m.Dst) != m.Dst {
			return errAt(file, at("mounts"), fmt.Sprintf("mounts[%d].dst", i), "%q must be a clean absolute container path", m.Dst)
		}
		own = append(own, m.Dst)
	}
	for i, c := range d.Caches {
		if !path.IsAbs(c) || path.Clean(c) != c {
			return errAt(file, at("caches"), fmt.Sprintf("caches[%d]", i), "%q must be a clean absolute container path", c)
		}
		own = append(own, c)
	}
	names := make([]string, 0, len(d.SetEnv))
	for n := range d.SetEnv {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !slices.Contains(EnvAllowlist, n) {
			return errAt(file, at("setEnv"), "setEnv."+n, "%s is not in the integrations' env allowlist (%s)", n, strings.Join(EnvAllowlist, ", "))
		}
		for _, part := range strings.Split(d.SetEnv[n], ",") {
			if part == "off" || part == "direct" {
				continue
			}
			p := strings.TrimPrefix(part, "file://")
			ok := false
			for _, o := range own {
				if p == o || strings.HasPrefix(p, o+"/") {
					ok = true
				}
			}
			if !ok {
				return errAt(file, at("setEnv"), "setEnv."+n, "%q: a set value names one of the integration's own mount or cache paths (%s), nothing else", d.SetEnv[n], strings.Join(own, ", "))
			}
		}
	}
	for i, x := range d.SnapshotExcludes {
		if x == "" || strings.Contains(x, "..") {
			return errAt(file, at("snapshotExcludes"), fmt.Sprintf("snapshotExcludes[%d]", i), "%q is not a path pattern", x)
		}
	}
	return nil
}

func findField(f *ast.File, name string) ast.Node {
	for _, d := range f.Decls {
		if fl, ok := d.(*ast.Field); ok && label(fl) == name {
			return fl
		}
	}
	return nil
}

//go:embed builtin/*.cue
var builtinFS embed.FS

var builtins = func() map[string]*Def {
	out := map[string]*Def{}
	for _, n := range Names {
		name := "builtin/" + n + ".cue"
		src, err := builtinFS.ReadFile(name)
		if err != nil {
			panic(err) // the binary was built without its definitions
		}
		d, err := LoadDefinition(name, src)
		if err != nil {
			panic(err) // TestBuiltinsLoad keeps this from shipping
		}
		out[n] = d
	}
	return out
}()

// Builtin is the built-in integration name (nil when there is none).
func Builtin(name string) *Def { return builtins[name] }

// Adds are what d adds, one line each, for people.
func (d *Def) Adds() []string {
	var out []string
	for _, m := range d.Mounts {
		out = append(out, "read-only mount "+m.Src+" at "+m.Dst+" (when it exists on the host)")
	}
	for _, c := range d.Caches {
		out = append(out, "ephemeral cache volume at "+c)
	}
	if len(d.Env) > 0 {
		out = append(out, "env passed through from the host when set: "+strings.Join(d.Env, ", "))
	}
	names := make([]string, 0, len(d.SetEnv))
	for n := range d.SetEnv {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, "env "+n+"="+d.SetEnv[n])
	}
	if len(d.SnapshotExcludes) > 0 {
		out = append(out, "snapshot excludes: "+strings.Join(d.SnapshotExcludes, ", "))
	}
	return out
}
