package manifests

import (
	"fmt"

	"cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"

	"github.com/jackin-dev/jackin/schema"
)

// structDefs names the definition of each struct-valued field; listDefs
// those of list fields whose elements are structs.
var (
	structDefs = map[string]string{"role": "#Role", "build": "#Build", "resources": "#Resources", "network": "#Network"}
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
