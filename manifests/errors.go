package manifests

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"

	"github.com/jackin-dev/jackin/schema"
)

// addCUEErrors turns CUE's errors into diagnostics placed in the user's text
// and worded for an operator: the field path and what is allowed.
func (l *loader) addCUEErrors(err error) {
	for _, e := range cueerrors.Errors(err) {
		path := userPath(e.Path())
		if len(path) >= 2 && path[0] == "instances" && !validName(path[1]) {
			// Everything under a badly named instance fails; say it once, at the name.
			path = path[:2]
			l.errAtPos(l.posOfPath(path), formatPath(path), l.notAllowed(path[1], path[:1]))
			continue
		}
		l.addCUEError(e, path)
	}
}

// addCUEError adds one CUE error at path in the manifest.
func (l *loader) addCUEError(e cueerrors.Error, path []string) {
	if strings.Contains(errMsg(e), "empty disjunction") && len(cueerrors.Errors(e)) <= 1 {
		// The summary line of a disjunction; its branches say more.
		if enumAt(path) == nil {
			return
		}
	}
	if n := len(path); n >= 3 && path[n-1] == "from" && path[n-3] == "credentials" && strings.Contains(errMsg(e), "mismatched types") && l.valueKind(path) == "struct" {
		// The string branch of from's disjunction; the struct branch says more.
		return
	}
	l.errAtPos(l.userPos(e, path), formatPath(path), l.reword(path, errMsg(e)))
}

func lastOf(path []string) string {
	if len(path) == 0 {
		return ""
	}
	return path[len(path)-1]
}

// userPath drops the schema's definition name and unquotes labels, so a
// path reads as the manifest spells it.
func userPath(path []string) []string {
	out := make([]string, 0, len(path))
	for i, s := range path {
		if i == 0 && strings.HasPrefix(s, "#") {
			continue
		}
		if u, err := strconv.Unquote(s); err == nil {
			s = u
		}
		out = append(out, s)
	}
	return out
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func validName(s string) bool { return len(s) <= 30 && nameRE.MatchString(s) }

// userPos places an error in the user's text: at the user's value for the
// path when it exists, else at the first position CUE gives in a user file,
// else at the nearest parent value.
func (l *loader) userPos(e cueerrors.Error, path []string) token.Pos {
	if v := l.data.LookupPath(selectorPath(path)); l.data.Exists() && v.Exists() {
		if p := v.Pos(); p.IsValid() && l.isUserFile(p.Filename()) {
			return p
		}
	}
	for _, p := range cueerrors.Positions(e) {
		if l.isUserFile(p.Filename()) {
			return p
		}
	}
	return l.posOfPath(path)
}

func (l *loader) isUserFile(name string) bool {
	_, ok := l.dirs[name]
	return ok
}

// posOfPath is the position of the user's value at path, or of its nearest
// ancestor present.
func (l *loader) posOfPath(path []string) token.Pos {
	if !l.data.Exists() {
		return token.NoPos
	}
	for n := len(path); n >= 0; n-- {
		v := l.data.LookupPath(selectorPath(path[:n]))
		if !v.Exists() {
			continue
		}
		if p := v.Pos(); p.IsValid() && l.isUserFile(p.Filename()) {
			return p
		}
	}
	return token.NoPos
}

func selectorPath(path []string) cue.Path {
	sels := make([]cue.Selector, 0, len(path))
	for _, s := range path {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			sels = append(sels, cue.Index(n))
			continue
		}
		sels = append(sels, cue.Str(s))
	}
	return cue.MakePath(sels...)
}

// formatPath renders instances.web.mounts[1].dst.
func formatPath(path []string) string {
	var b strings.Builder
	for _, s := range path {
		if _, err := strconv.Atoi(s); err == nil {
			b.WriteString("[" + s + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		if strings.ContainsAny(s, ". ") {
			s = strconv.Quote(s)
		}
		b.WriteString(s)
	}
	return b.String()
}

var (
	outOfBound = regexp.MustCompile(`invalid value (\S+) \(out of bound ([<>]=?)(\S+)\)`)
	mismatched = regexp.MustCompile(`mismatched types (\w+) and (\w+)`)
)

// reword says what is wrong and what is allowed, in the manifest's terms.
func (l *loader) reword(path []string, msg string) string {
	field, parent := "", []string(nil)
	if len(path) > 0 {
		field, parent = path[len(path)-1], path[:len(path)-1]
	}
	got := l.valueText(path)
	switch {
	case strings.Contains(msg, "field not allowed"):
		return l.notAllowed(field, parent)
	case len(path) == 1 && field == "apiVersion":
		return fmt.Sprintf("apiVersion must be %q%s", schema.APIVersion, gotSuffix(got))
	case len(path) == 1 && field == "kind":
		return fmt.Sprintf("kind must be %q%s", schema.KindFleet, gotSuffix(got))
	case len(path) == 1 && field == "name" && got != "":
		return "fleet name must be a lowercase DNS label (a-z, 0-9 and '-', starting and ending with a letter or digit) of at most 30 characters" + gotSuffix(got)
	case strings.Contains(msg, "incomplete value") || strings.Contains(msg, "required but not present"):
		if !l.data.LookupPath(selectorPath(path)).Exists() {
			return fmt.Sprintf("required field %q is missing", field)
		}
	}
	if values := enumAt(path); values != nil {
		return fmt.Sprintf("%s must be one of %s%s", field, schema.Quote(values), gotSuffix(got))
	}
	if m := outOfBound.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s is out of range: it must be %s %s", m[1], boundWord(m[2]), m[3])
	}
	if m := mismatched.FindStringSubmatch(msg); m != nil {
		want, have := m[1], m[2]
		if l.valueKind(path) == want {
			want, have = have, want
		}
		return fmt.Sprintf("%s must be %s, not %s%s", fieldWord(field), article(want), article(have), gotSuffix(got))
	}
	if strings.Contains(msg, "invalid value") && strings.Contains(msg, "!=\"\"") {
		return fmt.Sprintf("%s must not be empty", fieldWord(field))
	}
	if field == "cpus" || field == "pids" || field == "nofile" {
		return fmt.Sprintf("%s must be greater than 0%s", field, gotSuffix(got))
	}
	return msg
}

func (l *loader) notAllowed(field string, parent []string) string {
	if len(parent) == 1 && parent[0] == "instances" {
		return fmt.Sprintf("instance name %q is not valid: use a lowercase DNS label (a-z, 0-9 and '-', starting and ending with a letter or digit) of at most 30 characters", field)
	}
	if n := len(parent); n > 0 && parent[n-1] == "env" {
		return fmt.Sprintf("env name %q is not a valid variable name: use letters, digits and '_', not starting with a digit", field)
	}
	if n := len(parent); n > 0 && parent[n-1] == "labels" {
		return fmt.Sprintf("label %q is reserved: keys under dev.jackin. are set by jackin", field)
	}
	if n := len(parent); n >= 3 && parent[n-1] == "from" && parent[n-3] == "credentials" {
		return fmt.Sprintf("unknown credential source kind %q: from is {env: \"HOST_VAR\"}, {file: \"~/path\"}, {command: [\"prog\", \"arg\"]} or an \"op://vault/item/field\" string", field)
	}
	if n := len(parent); n >= 3 && parent[n-1] == "deliver" && parent[n-3] == "credentials" {
		return fmt.Sprintf("unknown credential delivery %q: deliver is {env: \"NAME\"}, {file: \"/run/secrets/NAME\"} or {proxy: {host, header?, format?, placeholder?}}", field)
	}
	allowed := fieldsAt(parent)
	if len(allowed) == 0 {
		return fmt.Sprintf("field %q is not allowed here", field)
	}
	msg := fmt.Sprintf("field %q is not allowed here; allowed fields: %s", field, strings.Join(allowed, ", "))
	if near := nearest(field, allowed); len(near) > 0 {
		msg += "; did you mean " + orList(near) + "?"
	}
	return msg
}

// orList renders "a", "a" or "b", "a", "b" or "c".
func orList(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = strconv.Quote(v)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func isIndex(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

// valueText is the user's value at path, as CUE text, or "".
func (l *loader) valueText(path []string) string {
	v := l.data.LookupPath(selectorPath(path))
	if !v.Exists() || !v.IsConcrete() {
		return ""
	}
	switch v.Kind() {
	case cue.StringKind, cue.IntKind, cue.FloatKind, cue.NumberKind, cue.BoolKind:
		return fmt.Sprint(v)
	}
	return ""
}

func (l *loader) valueKind(path []string) string {
	v := l.data.LookupPath(selectorPath(path))
	if !v.Exists() {
		return ""
	}
	return v.IncompleteKind().String()
}

func gotSuffix(got string) string {
	if got == "" {
		return ""
	}
	if len(got) > 80 {
		got = got[:77] + "..."
	}
	return " (got " + got + ")"
}

func boundWord(op string) string {
	switch op {
	case "<=":
		return "at most"
	case "<":
		return "less than"
	case ">=":
		return "at least"
	}
	return "greater than"
}

func fieldWord(field string) string {
	if field == "" || isIndex(field) {
		return "the value"
	}
	return field
}

func article(kind string) string {
	switch kind {
	case "int":
		return "an integer"
	case "string":
		return "a string"
	case "struct":
		return "a struct ({...})"
	case "list":
		return "a list ([...])"
	case "bool":
		return "a boolean"
	case "float", "number":
		return "a number"
	case "null":
		return "null"
	}
	return kind
}
