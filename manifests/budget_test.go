package manifests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"
)

// loadBounded loads the files (name -> text) and fails the test if Load has
// not returned within limit. It returns Load's error (nil when it loaded).
func loadBounded(t *testing.T, limit time.Duration, files map[string]string) (*Result, error, time.Duration) {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	type res struct {
		r   *Result
		err error
	}
	done := make(chan res, 1)
	start := time.Now()
	go func() {
		r, err := Load(context.Background(), paths, Options{Home: dir, WorkDir: dir, HostCPUs: 2})
		done <- res{r, err}
	}()
	select {
	case got := <-done:
		return got.r, got.err, time.Since(start)
	case <-time.After(limit):
		t.Fatalf("Load has not returned after %s", limit)
		return nil, nil, 0
	}
}

// repeatAttack is the issue's: 180 bytes that ask for a 1 GB string.
const repeatAttack = "import \"strings\"\n" + fleetHead +
	"instances: a: {role: image: \"x\", description: strings.Repeat(strings.Repeat(\"A\", 10000), 100000)}\n"

// doubling is n lines that double a value n times, with plain references.
func doubling(n int, step string) string {
	var b strings.Builder
	b.WriteString(fleetHead + "x0: \"AAAAAAAAAAAAAAAA\"\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "x%d: %s\n", i, strings.ReplaceAll(step, "X", fmt.Sprintf("x%d", i-1)))
	}
	return b.String()
}

// comprehension generates n instances.
func comprehension(n int) string {
	return "import \"list\"\n" + fleetHead + fmt.Sprintf("instances: {for i in list.Range(0, %d, 1) {\"a\\(i)\": role: image: \"x\"}}\n", n)
}

// yamlMergeBomb nests YAML merge keys: each level holds ten copies of the
// one below, and CUE's YAML decoder expands merge keys without bound.
func yamlMergeBomb(levels int) string {
	var b strings.Builder
	b.WriteString("l0: &l0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "l%d: &l%d {", i, i)
		for j := 0; j < 10; j++ {
			fmt.Fprintf(&b, "k%d: {<<: *l%d}, ", j, i-1)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// yamlAliasBomb is the classic one ("billion laughs"), with plain aliases.
func yamlAliasBomb(levels int) string {
	var b strings.Builder
	b.WriteString("l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 10), ", "))
	}
	return b.String()
}

// chain repeats unit n times after prefix, on one line.
func chain(prefix, unit string, n int) string {
	return prefix + strings.Repeat(unit, n) + "\n"
}

type attack struct {
	name  string
	files map[string]string
	want  []string // the error contains one of these
}

// attacks are manifests that grow far beyond their size when evaluated, or
// take a parser or evaluator down; each must be refused, quickly, with a
// diagnostic naming the limit. Budgets are set small to keep them cheap.
// (A function: a test binary evaluating in a child process must start fast.)
func attacks() []attack {
	return []attack{
		{"nested strings.Repeat", map[string]string{"f.cue": repeatAttack}, []string{"memory budget"}},
		{"string multiplication over CUE's own limit", map[string]string{"f.cue": fleetHead + "instances: a: {role: image: \"x\", description: \"A\" * 100000000}\n"},
			[]string{"string multiplication count 100000000 exceeds limit"}},
		{"string multiplication of a long string", map[string]string{"f.cue": fleetHead + "instances: a: {role: image: \"x\", description: (\"A\" * 1000000) * 1000}\n"},
			[]string{"memory budget"}},
		{"doubling chain of references", map[string]string{"f.cue": doubling(30, "X+X") + "instances: a: {role: image: \"x\", description: x30}\n"},
			[]string{"memory budget"}},
		{"doubling chain of lists", map[string]string{"f.cue": doubling(30, "[X, X]")}, []string{"memory budget", "time budget"}},
		{"comprehension of 200,000 instances", map[string]string{"f.cue": comprehension(200_000)}, []string{"time budget", "memory budget", "more than 10000 instances"}},
		{"comprehension of 10,001 instances", map[string]string{"f.cue": comprehension(MaxInstances + 1)}, []string{"more than 10000 instances"}},
		{"computed string over the string cap", map[string]string{"f.cue": fleetHead + "instances: a: {role: image: \"x\", description: (\"A\" * 1000) * 1100}\n"},
			[]string{"a string of 1100000 bytes, longer than the 1 MiB limit"}},
		{"computed result over the size cap", map[string]string{"f.cue": fleetHead + "_s: \"A\" * 1000000\ninstances: {for i in [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16] {\"a\\(i)\": {role: image: \"x\", description: _s}}}\n"},
			[]string{"evaluates to 16.2 MiB of JSON, more than the 16 MiB limit"}},
		{"YAML merge-key bomb", map[string]string{"f.yaml": yamlMergeBomb(9)}, []string{"memory budget", "time budget"}},
		{"YAML alias bomb", map[string]string{"f.yaml": yamlAliasBomb(9)}, []string{"aliases expand to more than 50000 nodes"}},
		{"YAML alias of a long string", map[string]string{"f.yaml": "a: &a " + strings.Repeat("A", 1<<20) + "\nb: [" + strings.Repeat("*a, ", 2000) + "]\n"},
			[]string{"memory budget", "time budget"}},
		{"selector chain that crashes CUE's parser", map[string]string{"f.cue": chain("x: a", ".b", 1_000_000)}, []string{"ran out of stack"}},
		{"operator chain that crashes CUE's parser", map[string]string{"f.cue": chain("x: 1", "+1", 1_500_000)}, []string{"ran out of stack"}},
		{"label chain that crashes CUE's parser", map[string]string{"f.cue": chain(fleetHead, "a: ", 1_000_000) + "1\n"}, []string{"nests more than 64 levels deep"}},
		{"plain data, 100,000 fields in one struct", map[string]string{"f.cue": fleetHead + "instances: a: {role: image: \"x\", env: {" + fieldsText(100_000) + "}}\n"},
			[]string{"instances.a.env: more than 1000 fields in one struct"}},
		{"plain data, 10,001 instances", map[string]string{"f.json": jsonInstances(MaxInstances + 1)}, []string{"instances: the fleet has more than 10000 instances"}},
		{"plain data, a list of 200,000 elements", map[string]string{"f.cue": fleetHead + "instances: a: {role: image: \"x\", command: [" + strings.Repeat("\"a\",", 200_000) + "]}\n"},
			[]string{"instances.a.command: a list of more than 1000 elements"}},
		{"plain data, lists nested 9,000 deep", map[string]string{"f.json": strings.Repeat("[", 9000) + strings.Repeat("]", 9000)}, []string{"nests more than 64 levels deep"}},
		{"plain data, invalid in 300,000 places", map[string]string{"f.cue": manyErrors(300)}, []string{"the manifest is invalid, and checking it exceeded the 4s time budget"}},
		{"plain data, a 2 MiB string", map[string]string{"f.yaml": yamlHead + "instances:\n  a:\n    role: {image: x}\n    description: " + strings.Repeat("A", 2<<20) + "\n"},
			[]string{"instances.a.description: a string of 2097152 bytes, longer than the 1 MiB limit"}},
	}
}

// manyErrors is n instances whose command lists hold 1000 numbers each,
// not strings: CUE combines those errors in quadratic time.
func manyErrors(n int) string {
	var b strings.Builder
	b.WriteString(fleetHead + "instances: {\n")
	list := "[" + strings.TrimSuffix(strings.Repeat("1,", 1000), ",") + "]"
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "a%d: {role: image: \"x\", command: %s}\n", i, list)
	}
	b.WriteString("}\n")
	return b.String()
}

func fieldsText(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "E%d: \"x\", ", i)
	}
	return b.String()
}

func jsonInstances(n int) string {
	var b strings.Builder
	b.WriteString(`{"apiVersion": "jackin.dev/v1alpha1", "kind": "Fleet", "name": "t", "instances": {`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\"a%d\": {\"role\": {\"image\": \"x\"}}", i)
	}
	b.WriteString("}}\n")
	return b.String()
}

func TestBudgetRefusesManifestsThatGrow(t *testing.T) {
	t.Setenv("JACKIN_EVAL_MEMORY", "256Mi")
	t.Setenv("JACKIN_EVAL_TIMEOUT", "4s")
	for _, a := range attacks() {
		t.Run(a.name, func(t *testing.T) {
			_, err, took := loadBounded(t, 30*time.Second, a.files)
			var diags Diagnostics
			if !errors.As(err, &diags) {
				t.Fatalf("want Diagnostics, got %T %v", err, err)
			}
			ok := false
			// On a loaded machine (tests of other packages run beside
			// these) the time budget can run out before the limit the
			// attack aims at: refused, bounded and said, which is what
			// matters.
			for _, w := range append(a.want, "exceeded the 4s time budget") {
				ok = ok || strings.Contains(diags.Error(), w)
			}
			if !ok {
				t.Errorf("want an error containing one of %q, got:\n%s", a.want, diags.Error())
			}
			t.Logf("refused in %v: %s", took.Round(time.Millisecond), firstLine(diags.Error()))
		})
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// The default budget refuses the attack too, in bounded time.
func TestBudgetDefaultRefusesTheRepeatAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("lets the child use up to the default 1 GiB")
	}
	t.Setenv(EvalMemoryEnv, "")
	t.Setenv(EvalTimeoutEnv, "")
	_, err, took := loadBounded(t, 60*time.Second, map[string]string{"fleet.cue": repeatAttack})
	want := "fleet.cue: evaluating the manifest exceeded the 1 GiB memory budget (JACKIN_EVAL_MEMORY)"
	// Under load the 10s time budget can run out first: refused and
	// bounded all the same.
	orTime := "fleet.cue: evaluating the manifest exceeded the 10s time budget (JACKIN_EVAL_TIMEOUT)"
	if err == nil || !(strings.Contains(err.Error(), want) || strings.Contains(err.Error(), orTime)) {
		t.Fatalf("want %q, got %v", want, err)
	}
	t.Logf("refused in %v", took.Round(time.Millisecond))
}

// The error names the limit, its value and how to raise it.
func TestBudgetErrorNamesTheLimit(t *testing.T) {
	t.Setenv(EvalTimeoutEnv, "1500ms")
	_, err, _ := loadBounded(t, 30*time.Second, map[string]string{"fleet.cue": comprehension(200_000)})
	var diags Diagnostics
	if !errors.As(err, &diags) || len(diags) != 1 {
		t.Fatalf("want one diagnostic, got %v", err)
	}
	d := diags[0]
	if filepath.Base(d.File) != "fleet.cue" || !strings.Contains(d.Msg, "exceeded the 1.5s time budget (JACKIN_EVAL_TIMEOUT)") || !strings.Contains(d.Msg, "raise the budget with JACKIN_EVAL_TIMEOUT") {
		t.Errorf("got %v", d)
	}

	t.Setenv(EvalTimeoutEnv, "soon")
	_, err, _ = loadBounded(t, 30*time.Second, map[string]string{"fleet.cue": comprehension(2)})
	if err == nil || !strings.Contains(err.Error(), `JACKIN_EVAL_TIMEOUT="soon" is not a duration`) {
		t.Errorf("a bad budget: %v", err)
	}
	t.Setenv(EvalTimeoutEnv, "")
	t.Setenv(EvalMemoryEnv, "lots")
	_, err, _ = loadBounded(t, 30*time.Second, map[string]string{"fleet.cue": comprehension(2)})
	if err == nil || !strings.Contains(err.Error(), "JACKIN_EVAL_MEMORY: \"lots\" is not a size") {
		t.Errorf("a bad budget: %v", err)
	}
}

// Options.Budget overrides the environment.
func TestBudgetFromOptions(t *testing.T) {
	t.Setenv(EvalTimeoutEnv, "1h")
	dir := t.TempDir()
	p := filepath.Join(dir, "f.cue")
	if err := os.WriteFile(p, []byte(comprehension(200_000)), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := Load(context.Background(), []string{p}, Options{Budget: Budget{Timeout: time.Second}})
	if err == nil || !strings.Contains(err.Error(), "exceeded the 1s time budget") || time.Since(start) > 20*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
}

// Cancelling the context stops the evaluation: the child is killed.
func TestBudgetCancelKillsTheChild(t *testing.T) {
	t.Setenv(EvalTimeoutEnv, "1m")
	dir := t.TempDir()
	p := filepath.Join(dir, "f.cue")
	if err := os.WriteFile(p, []byte(comprehension(200_000)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Load(ctx, []string{p}, Options{})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
}

// A manifest that computes (references, a hidden field, a definition
// embedded for defaults, a comprehension, an import) still loads, through
// the gate, to the same fleet as the same manifest written as data, which
// loads without it.
func TestBudgetComputedManifestLoadsAsBefore(t *testing.T) {
	computed := "import \"strings\"\n" + fleetHead +
		"_img: \"ghcr.io/acme/agent:1\"\n" +
		"#Agent: {role: image: _img, agent: *\"claude\" | string, env: TEAM: strings.ToUpper(\"web\")}\n" +
		"instances: {\n\tfor n in [\"a\", \"b\"] {(n): {#Agent, labels: name: n}}\n\tc: #Agent & {agent: \"codex\"}\n}\n"
	data := fleetHead + "instances: {\n" +
		"\ta: {role: image: \"ghcr.io/acme/agent:1\", agent: \"claude\", env: TEAM: \"WEB\", labels: name: \"a\"}\n" +
		"\tb: {role: image: \"ghcr.io/acme/agent:1\", agent: \"claude\", env: TEAM: \"WEB\", labels: name: \"b\"}\n" +
		"\tc: {role: image: \"ghcr.io/acme/agent:1\", agent: \"codex\", env: TEAM: \"WEB\"}\n}\n"
	before := gateRuns.Load()
	want, err, _ := loadBounded(t, 30*time.Second, map[string]string{"f.cue": data})
	if err != nil {
		t.Fatal(err)
	}
	if n := gateRuns.Load() - before; n != 0 {
		t.Errorf("plain data went through the gate (%d)", n)
	}
	got, err, took := loadBounded(t, 30*time.Second, map[string]string{"f.cue": computed})
	if err != nil {
		t.Fatal(err)
	}
	if n := gateRuns.Load() - before; n != 1 {
		t.Errorf("the computed manifest went through the gate %d times, want 1", n)
	}
	t.Logf("computed manifest loaded in %v", took.Round(time.Millisecond))
	want.Fleet.Sources, got.Fleet.Sources = nil, nil
	if !reflect.DeepEqual(got.Fleet.Instances, want.Fleet.Instances) {
		t.Errorf("computed fleet differs:\n%s\nwant\n%s", js(got.Fleet.Instances), js(want.Fleet.Instances))
	}
}

// Errors in a computed manifest keep their places in the user's text.
func TestBudgetComputedManifestKeepsPositions(t *testing.T) {
	fx := newFixture(t, map[string]string{"f.cue": fleetHead + "_img: \"x\"\ninstances: a: {role: image: _img, «state: \"on\"}\n"})
	before := gateRuns.Load()
	_, diags := fx.load(t, fx.opts(), "f.cue")
	expect(t, diags, fx.where, "instances.a.state", "state must be one of")
	if gateRuns.Load() == before {
		t.Error("the gate did not run")
	}
}

// Invalid plain data is loaded in-process up to the schema check; its error
// pass runs under the budget first, and its errors keep their places.
func TestBudgetInvalidPlainDataBoundsTheErrorPass(t *testing.T) {
	fx := newFixture(t, map[string]string{"f.cue": fleetHead + "instances: a: {role: image: \"x\", «state: \"on\"}\n"})
	before := gateRuns.Load()
	_, diags := fx.load(t, fx.opts(), "f.cue")
	expect(t, diags, fx.where, "instances.a.state", "state must be one of")
	if n := gateRuns.Load() - before; n != 1 {
		t.Errorf("the error pass was gated %d times, want 1", n)
	}
}

// Plain data, the common case, spawns no process: the examples in every
// format and a generated fleet of 1000 instances.
func TestBudgetPlainDataSpawnsNoChild(t *testing.T) {
	var b strings.Builder
	b.WriteString(fleetHead + "defaults: {agent: \"shell\", env: {TZ: \"UTC\"}}\ninstances: {\n")
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&b, "\t\"a%04d\": {\n\t\trole: image: \"example.com/agent:%d\"\n\t\tcommand: [\"agent\", \"--id\", \"%d\"]\n\t\tenv: {ID: \"%d\"}\n\t\tresources: cpus: 0.5\n\t\tnetwork: ports: [{container: 8080, host: %d}]\n\t}\n", i, i%7, i, i, 20000+i)
	}
	b.WriteString("}\n")
	before := gateRuns.Load()
	res, err, _ := loadBounded(t, 60*time.Second, map[string]string{"fleet.cue": b.String()})
	if err != nil || len(res.Fleet.Instances) != 1000 {
		t.Fatalf("%v", err)
	}
	for _, p := range []string{"../examples/fleet.cue", "../examples/fleet.yaml", "../examples/fleet.json", "../examples/offline/fleet.cue"} {
		if _, err := Load(context.Background(), []string{p}, exampleOpts()); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if n := gateRuns.Load() - before; n != 0 {
		t.Errorf("plain data spawned %d evaluations", n)
	}
}

// YAML anchors and aliases still work, through the gate; a YAML text that
// merely contains a "*" (in a quoted string) does not need it.
func TestBudgetYAMLAliases(t *testing.T) {
	aliased := yamlHead + "x-common: &common\n  role: {image: busybox}\n  agent: codex\ninstances:\n  a: *common\n  b:\n    <<: *common\n    agent: shell\n"
	plain := yamlHead + "instances:\n  a:\n    role: {image: busybox}\n    agent: codex\n    network: {egress: allowlist, allow: [\"*.github.com\"]}\n"
	before := gateRuns.Load()
	res, err, _ := loadBounded(t, 30*time.Second, map[string]string{"f.yaml": plain})
	if err != nil || res.Fleet.Instances["a"].Agent != "codex" {
		t.Fatalf("%v", err)
	}
	if n := gateRuns.Load() - before; n != 0 {
		t.Errorf("a quoted * spawned %d evaluations", n)
	}
	_, err, _ = loadBounded(t, 30*time.Second, map[string]string{"f.yaml": aliased})
	if err == nil || !strings.Contains(err.Error(), "x-common") {
		t.Errorf("an unknown top-level field is still reported through the gate: %v", err)
	}
	if n := gateRuns.Load() - before; n != 1 {
		t.Errorf("aliases went through the gate %d times, want 1", n)
	}
	aliased = strings.Replace(aliased, "x-common: &common\n  role: {image: busybox}\n  agent: codex\n", "", 1)
	aliased = strings.Replace(aliased, "  a: *common\n", "  a: &common\n    role: {image: busybox}\n    agent: codex\n", 1)
	res, err, _ = loadBounded(t, 30*time.Second, map[string]string{"f.yaml": aliased})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := res.Fleet.Instances["a"], res.Fleet.Instances["b"]; a.Role.Image != "busybox" || b.Role.Image != "busybox" || a.Agent != "codex" || b.Agent != "shell" {
		t.Errorf("aliases: a %+v, b %+v", a, b)
	}
}

// The memory watch reads a metric this runtime has.
func TestBudgetHeapMetricExists(t *testing.T) {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[0].Value.Uint64() == 0 {
		t.Fatalf("%s: %v", heapMetric, s[0].Value.Kind())
	}
}

// What counts as plain data, from the tokens, before parsing.
func TestBudgetRecognisesPlainData(t *testing.T) {
	for src, data := range map[string]bool{
		"a: 1":                                 true,
		"package x\na: b: c: \"s\"":            true,
		"a?: 1, b!: [1, -2.5, true, null]":     true,
		"\"a b\": {c: 'bytes'}, @attr(x)":      true,
		"if: 1, for: {in: 2}":                  true,
		"{\"a\": [1, {\"b\": -1}]}":            true,
		"#Def: {a: 1}\n_hidden: 2":             true,
		"// only a comment\n":                  true,
		"a: b":                                 false,
		"a: 1 + 1":                             false,
		"a: -b":                                false,
		"import \"strings\"\na: 1":             false,
		"a: \"\\(b)\"":                         false,
		"a: [for x in [1] {x}]":                false,
		"a: string":                            false,
		"a: *1 | 2":                            false,
		"[string]: 1":                          false,
		"a: {...}":                             false,
		"let x = 1\na: x":                      false,
		"(\"a\"): 1":                           false,
		"a: 1 // then an unterminated \"str\n": true,
		"a: \"unterminated":                    false,
		"a: }":                                 false,
		"a: !true":                             false,
	} {
		if got := tokensAreData("f.cue", []byte(src), nil); got != data {
			t.Errorf("%q: data %v, want %v", src, got, data)
		}
	}
}

// BenchmarkPlainDataChecks is what the budget adds to loading plain data:
// the token scan, the check that the syntax is data, and the shape caps,
// on the 1000-instance fleet of bench/validate_test.go.
func BenchmarkPlainDataChecks(b *testing.B) {
	var s strings.Builder
	s.WriteString("apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: \"big\"\n")
	s.WriteString("defaults: {agent: \"shell\", env: {TZ: \"UTC\"}, resources: {memory: \"512Mi\", pids: 256}}\ninstances: {\n")
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&s, "\t\"a%04d\": {\n\t\trole: image: \"example.com/agent:%d\"\n\t\tcommand: [\"agent\", \"--id\", \"%d\"]\n", i, i%7, i)
		fmt.Fprintf(&s, "\t\tenv: {ID: \"%d\", MODE: \"bench\"}\n\t\tlabels: team: \"t%d\"\n", i, i%10)
		s.WriteString("\t\tmounts: [{src: \"./work\", dst: \"/work\", mode: \"rw\"}, {dst: \"/tmp\", mode: \"tmpfs\", size: \"64Mi\"}]\n")
		fmt.Fprintf(&s, "\t\tresources: {cpus: 0.5, memoryReservation: \"128Mi\"}\n\t\tnetwork: ports: [{container: 8080, host: %d}]\n\t}\n", 20000+i)
	}
	s.WriteString("}\n")
	srcs := []source{{name: "fleet.cue", kind: "cue", data: []byte(s.String())}}
	l := &loader{dirs: map[string]string{}}
	files := l.parse(srcs)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l := &loader{dirs: map[string]string{}}
		if l.screen(srcs) != "" || computation(files) != nil {
			b.Fatal("not plain data")
		}
		if l.checkShape(files); len(l.diags) > 0 {
			b.Fatal(l.diags)
		}
	}
}

// BenchmarkSmallManifest loads a three-instance fleet written as data, and
// the same with one reference (a hidden field), which goes through the gate:
// the difference is the gate's cost.
func BenchmarkSmallManifest(b *testing.B) {
	data := fleetHead + "instances: {\n\ta: role: image: \"ghcr.io/acme/agent:1\"\n\tb: role: image: \"ghcr.io/acme/agent:1\"\n\tc: role: image: \"ghcr.io/acme/agent:1\"\n}\n"
	computed := fleetHead + "_img: \"ghcr.io/acme/agent:1\"\ninstances: {\n\ta: role: image: _img\n\tb: role: image: _img\n\tc: role: image: _img\n}\n"
	for _, bc := range []struct{ name, text string }{{"data", data}, {"computed", computed}} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			p := filepath.Join(dir, "f.cue")
			if err := os.WriteFile(p, []byte(bc.text), 0o644); err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				if _, err := Load(context.Background(), []string{p}, Options{Home: dir, WorkDir: dir, HostCPUs: 2}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestStdinMergeKeyBombIsBudgeted: stdin's format is told from a YAML node
// tree that keeps aliases as aliases; telling it with CUE's decoder
// expanded a merge-key bomb before any budget applied (6 levels: 26 s and
// 4.6 GB).
func TestStdinMergeKeyBombIsBudgeted(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Load(context.Background(), []string{"-"}, Options{Stdin: strings.NewReader(yamlMergeBomb(6)), Home: t.TempDir(), WorkDir: t.TempDir(), HostCPUs: 2,
		Budget: Budget{Timeout: 4 * time.Second, Memory: 256 << 20}})
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "budget") {
		t.Fatalf("want a budget error, got %v", err)
	}
	// The evaluation's memory is the child's; this process only reads
	// the text and its tokens.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<20 {
		t.Fatalf("loading the bomb allocated %d MiB in jackin itself: it was expanded outside the budget", grew>>20)
	}
}

func TestSniffKindKeepsAliases(t *testing.T) {
	for text, want := range map[string]string{
		"apiVersion: x\nkind: Fleet\n":     "yaml",
		"a: &a {b: 1}\nc: *a\n":            "yaml",
		"{\"a\": 1}":                       "cue",
		"package fleet\napiVersion: \"x\"": "cue",
		"- a\n- b\n":                       "cue",
	} {
		if got := sniffKind([]byte(text)); got != want {
			t.Errorf("sniffKind(%q) = %s, want %s", text, got, want)
		}
	}
}
