package manifests

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"

	"github.com/jackin-dev/jackin/schema"
)

// structDefs names the definition of each struct-valued field; listDefs
// those of list fields whose elements are structs.
var (
	structDefs = map[string]string{"role": "#Role", "build": "#Build", "resources": "#Resources", "network": "#Network", "dockerDaemon": "#DockerDaemon", "security": "#Security", "recovery": "#Recovery"}
	listDefs   = map[string]string{"mounts": "#Mount", "ports": "#Port"}
)

// fieldErrors re-validates a manifest that failed the schema, one field at
// a time. CUE stops reporting a struct's other errors once one field
// conflicts; checking each field on its own reports them all. It runs only
// on invalid input, so a valid manifest pays nothing for it.
func (l *loader) fieldErrors(root cue.Value) {
	fleet := root.LookupPath(cue.ParsePath("#Fleet"))
	inst := root.LookupPath(cue.ParsePath("#Instance"))
	it, err := l.data.Fields()
	if err != nil {
		l.addCUEErrors(fleet.Unify(l.data).Validate(cue.Concrete(true)))
		return
	}
	for it.Next() {
		name := it.Selector().Unquoted()
		switch name {
		case "defaults":
			l.checkStruct(root, inst, it.Value(), []string{"defaults"})
		case "instances":
			insts, err := it.Value().Fields()
			if err != nil {
				l.checkField(fleet, it.Selector(), it.Value(), nil)
				continue
			}
			for insts.Next() {
				n := insts.Selector().Unquoted()
				if !validName(n) {
					path := []string{"instances", n}
					l.errAtPos(l.posOfPath(path), formatPath(path), l.notAllowed(n, path[:1]))
					continue
				}
				l.checkStruct(root, inst, insts.Value(), []string{"instances", n})
			}
		default:
			l.checkField(fleet, it.Selector(), it.Value(), nil)
		}
	}
	l.checkRequired(fleet, l.data, nil)
}

// checkStruct validates data against def field by field, recursing into
// struct and list-of-struct fields with their own definitions.
func (l *loader) checkStruct(root, def, data cue.Value, prefix []string) {
	it, err := data.Fields()
	if err != nil {
		// Not a struct: let the parent's type error say so.
		l.addCUEErrorsAt(def.Unify(data).Validate(cue.Concrete(true)), prefix)
		return
	}
	for it.Next() {
		name := it.Selector().Unquoted()
		v := it.Value()
		path := append(append([]string(nil), prefix...), name)
		if d, ok := structDefs[name]; ok && v.Kind() == cue.StructKind && hasField(def, name) {
			l.checkStruct(root, root.LookupPath(cue.ParsePath(d)), v, path)
			continue
		}
		if d, ok := listDefs[name]; ok && v.Kind() == cue.ListKind && hasField(def, name) {
			elems, _ := v.List()
			for i := 0; elems.Next(); i++ {
				ep := append(append([]string(nil), path...), fmt.Sprint(i))
				if elems.Value().Kind() == cue.StructKind {
					l.checkStruct(root, root.LookupPath(cue.ParsePath(d)), elems.Value(), ep)
				} else {
					l.addCUEErrorsAt(root.LookupPath(cue.ParsePath(d)).Unify(elems.Value()).Validate(cue.Concrete(true)), ep)
				}
			}
			continue
		}
		l.checkField(def, it.Selector(), v, prefix)
	}
	l.checkRequired(def, data, prefix)
}

// checkField validates one field by filling it alone into its definition.
// Only errors under that field count: the definition's other required
// fields are incomplete here by construction (checkRequired covers them).
func (l *loader) checkField(def cue.Value, sel cue.Selector, v cue.Value, prefix []string) {
	err := def.FillPath(cue.MakePath(sel), v).Validate(cue.Concrete(true))
	if err == nil {
		return
	}
	name := sel.Unquoted()
	for _, e := range cueerrors.Errors(err) {
		rel := userPath(e.Path())
		if len(rel) == 0 || rel[0] != name {
			continue
		}
		l.addCUEError(e, append(append([]string(nil), prefix...), rel...))
	}
}

// checkRequired reports required fields of def that data lacks.
func (l *loader) checkRequired(def, data cue.Value, prefix []string) {
	it, err := def.Fields()
	if err != nil {
		return
	}
	for it.Next() {
		name := it.Selector().Unquoted()
		if data.LookupPath(cue.MakePath(it.Selector())).Exists() {
			continue
		}
		path := append(append([]string(nil), prefix...), name)
		l.errAtPos(l.posOfPath(prefix), formatPath(path), fmt.Sprintf("required field %q is missing", name))
	}
}

func hasField(def cue.Value, name string) bool {
	for _, f := range schema.Fields(defName(def)) {
		if f == name {
			return true
		}
	}
	return false
}

// defName recovers a definition's name from its path ("#Instance").
func defName(def cue.Value) string {
	sels := def.Path().Selectors()
	if len(sels) == 0 {
		return ""
	}
	return sels[len(sels)-1].String()
}

// addCUEErrorsAt adds errors whose paths are relative to a definition,
// re-rooted at prefix in the manifest.
func (l *loader) addCUEErrorsAt(err error, prefix []string) {
	if err == nil {
		return
	}
	for _, e := range cueerrors.Errors(err) {
		rel := userPath(e.Path())
		path := append(append([]string(nil), prefix...), rel...)
		l.addCUEError(e, path)
	}
}

// schemaNode is what the schema allows at one place of a manifest, read
// from the embedded schema itself so messages cannot drift from it. A
// struct has fields (sorted), the allowed values of its enumerated fields
// (in the schema's order) and the nodes of its struct-valued fields; a
// list or a map has the node of its elements.
type schemaNode struct {
	fields []string
	enums  map[string][]string
	kids   map[string]*schemaNode
	// elem is the node of a list's elements (list) or a map's values.
	elem *schemaNode
	list bool
}

var (
	schemaTreeOnce sync.Once
	schemaTree     *schemaNode
)

// schemaRoot is the node of #Fleet, the manifest's top level. It is built
// once, from the embedded schema, into plain Go values: CUE values are not
// safe to share between goroutines.
func schemaRoot() *schemaNode {
	schemaTreeOnce.Do(func() {
		root := cuecontext.New().CompileBytes(schema.Source, cue.Filename(schema.SourceName))
		schemaTree = newSchemaNode(root.LookupPath(cue.ParsePath("#Fleet")), 0)
	})
	return schemaTree
}

// newSchemaNode reads the node of v: a struct, a list of structs or a map
// of structs; nil for anything else (a scalar, a list of strings, ...).
func newSchemaNode(v cue.Value, depth int) *schemaNode {
	if depth > 16 || !v.Exists() {
		return nil // the schema is not recursive; this only guards against a change that makes it so
	}
	if op, args := v.Expr(); op == cue.OrOp {
		// A field that is a string or a struct (credentials' from): the
		// struct branch says what a struct may hold.
		for _, a := range args {
			if a.IncompleteKind() == cue.StructKind {
				return newSchemaNode(a, depth+1)
			}
		}
		return nil
	}
	switch v.IncompleteKind() {
	case cue.ListKind:
		if elem := newSchemaNode(v.LookupPath(cue.MakePath(cue.AnyIndex)), depth+1); elem != nil {
			return &schemaNode{elem: elem, list: true}
		}
		return nil
	case cue.StructKind:
	default:
		return nil
	}
	it, err := v.Fields(cue.Optional(true), cue.Patterns(true))
	if err != nil {
		return nil
	}
	n := &schemaNode{enums: map[string][]string{}, kids: map[string]*schemaNode{}}
	for it.Next() {
		sel, f := it.Selector(), it.Value()
		if sel.ConstraintType() == cue.PatternConstraint {
			// [#Name]: #Instance: a map whose values are structs.
			n.elem = newSchemaNode(f, depth+1)
			continue
		}
		name := sel.Unquoted()
		n.fields = append(n.fields, name)
		if values := enumValues(f); values != nil {
			n.enums[name] = values
		}
		if kid := newSchemaNode(f, depth+1); kid != nil {
			n.kids[name] = kid
		}
	}
	if len(n.fields) == 0 && n.elem == nil {
		return nil
	}
	sort.Strings(n.fields)
	return n
}

// enumValues lists the strings a field allows when it allows only fixed
// strings ("rw" | "ro" | ...; a single "docker"), in the schema's order,
// each once; nil otherwise.
func enumValues(v cue.Value) []string {
	args := []cue.Value{v}
	if op, a := v.Expr(); op == cue.OrOp {
		args = a
	}
	var out []string
	seen := map[string]bool{}
	for _, a := range args {
		if a.IncompleteKind() != cue.StringKind || !a.IsConcrete() {
			return nil
		}
		s, err := a.String()
		if err != nil {
			return nil
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// schemaAt is the node of the struct at path in the manifest (path as
// userPath spells it: field names, map keys and list indexes), or nil when
// the schema has none there.
func schemaAt(path []string) *schemaNode {
	n := schemaRoot()
	for _, s := range path {
		if n == nil {
			return nil
		}
		switch kid, ok := n.kids[s]; {
		case n.list:
			if !isIndex(s) {
				return nil
			}
			n = n.elem
		case ok:
			n = kid
		default:
			n = n.elem // a map key; nil when this is not a map
		}
	}
	return n
}

// enumAt lists the values the enumerated field at path allows, or nil when
// the field is not an enum.
func enumAt(path []string) []string {
	if len(path) == 0 || isIndex(lastOf(path)) {
		return nil
	}
	n := schemaAt(path[:len(path)-1])
	if n == nil {
		return nil
	}
	return n.enums[lastOf(path)]
}

// fieldsAt lists the fields the struct at path allows, sorted; nil when
// the schema has no struct there.
func fieldsAt(path []string) []string {
	if n := schemaAt(path); n != nil && !n.list {
		return n.fields
	}
	return nil
}

// nearest is the candidate closest to s, when it is close enough to be a
// misspelling of it: at most two edits, and at most a third of s's length
// (one for short names), ignoring case. Ties are all returned.
func nearest(s string, candidates []string) []string {
	limit := max(1, min(2, len([]rune(s))/3))
	best, out := limit+1, []string(nil)
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		switch {
		case d < best:
			best, out = d, []string{c}
		case d == best:
			out = append(out, c)
		}
	}
	return out
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of adjacent characters
// each count one ("memroy" is one edit from "memory").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
