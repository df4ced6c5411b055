package schema

import (
	_ "embed"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"

	"cuelang.org/go/cue"
)

// Source is the embedded CUE schema.
//
//go:embed fleet.cue
var Source []byte

// SourceName is the file name the schema's positions carry; positions in it
// are never shown to a user as the place of their mistake.
const SourceName = "jackin:schema/fleet.cue"

// Compile compiles the embedded schema in ctx and returns #Fleet. A CUE
// value belongs to its context, so each context compiles its own copy.
func Compile(ctx *cue.Context) (cue.Value, error) {
	v := ctx.CompileBytes(Source, cue.Filename(SourceName))
	if err := v.Err(); err != nil {
		return cue.Value{}, fmt.Errorf("compile embedded schema: %w", err)
	}
	return v.LookupPath(cue.ParsePath("#Fleet")), nil
}

var (
	fieldsOnce  sync.Once
	fieldsByDef map[string][]string
)

// Fields returns the field names a schema definition allows (for example
// "#Instance"), sorted; nil for an unknown definition.
func Fields(def string) []string {
	fieldsOnce.Do(func() {
		fieldsByDef = map[string][]string{}
		ctx := cueContext()
		root := ctx.CompileBytes(Source, cue.Filename(SourceName))
		for _, d := range []string{"#Fleet", "#Instance", "#Role", "#Build", "#Mount", "#Resources", "#Network", "#Port", "#Credential", "#Source", "#Delivery", "#ProxyDelivery"} {
			it, err := root.LookupPath(cue.ParsePath(d)).Fields(cue.Optional(true))
			if err != nil {
				continue
			}
			var names []string
			for it.Next() {
				names = append(names, it.Selector().Unquoted())
			}
			sort.Strings(names)
			fieldsByDef[d] = names
		}
	})
	return fieldsByDef[def]
}

// Quote renders values as "a", "b", "c" for messages.
func Quote(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}

// ParseSize parses a size such as "512Mi", "2G", "1.5Gi", "64k" or "1024"
// (bytes). Binary suffixes (Ki, Mi, Gi, Ti) are powers of 1024; decimal ones
// (k/K, M, G, T) powers of 1000. An optional trailing "B" is accepted.
func ParseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty size")
	}
	num := in
	mult := 1.0
	suffixes := []struct {
		s string
		m float64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
		{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	}
	trimmed := strings.TrimSuffix(num, "B")
	if trimmed != num && trimmed != "" && !strings.ContainsAny(trimmed[len(trimmed)-1:], "0123456789.") {
		num = trimmed // "512MiB", "2GB"
	}
	for _, sfx := range suffixes {
		if strings.HasSuffix(num, sfx.s) {
			num, mult = strings.TrimSuffix(num, sfx.s), sfx.m
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || strings.ContainsAny(num, "eExXpP_+") {
		return 0, fmt.Errorf("%q is not a size: use a number with an optional unit, such as \"512Mi\", \"2G\" or \"1024\"", s)
	}
	if f <= 0 {
		return 0, fmt.Errorf("size %q must be positive", s)
	}
	bytes := f * mult
	if bytes > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	if bytes < 1 {
		return 0, fmt.Errorf("size %q is less than one byte", s)
	}
	return int64(bytes), nil
}

// FormatSize renders bytes in the largest binary unit that divides them.
func FormatSize(b int64) string {
	units := []struct {
		s string
		n int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}}
	for _, u := range units {
		if b >= u.n && b%u.n == 0 {
			return fmt.Sprintf("%d%s", b/u.n, u.s)
		}
	}
	return strconv.FormatInt(b, 10)
}
