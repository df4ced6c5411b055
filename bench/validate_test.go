package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/manifests"
)

// generatedFleet writes an n-instance manifest using every common field.
func generatedFleet(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	must(b, os.MkdirAll(filepath.Join(dir, "work"), 0o755))
	var s strings.Builder
	s.WriteString("apiVersion: \"jackin.dev/v1alpha1\"\nkind: \"Fleet\"\nname: \"big\"\n")
	s.WriteString("defaults: {agent: \"shell\", env: {TZ: \"UTC\"}, resources: {memory: \"512Mi\", pids: 256}}\ninstances: {\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&s, "\t\"a%04d\": {\n\t\trole: image: \"example.com/agent:%d\"\n\t\tcommand: [\"agent\", \"--id\", \"%d\"]\n", i, i%7, i)
		fmt.Fprintf(&s, "\t\tenv: {ID: \"%d\", MODE: \"bench\"}\n\t\tlabels: team: \"t%d\"\n", i, i%10)
		s.WriteString("\t\tmounts: [{src: \"./work\", dst: \"/work\", mode: \"rw\"}, {dst: \"/tmp\", mode: \"tmpfs\", size: \"64Mi\"}]\n")
		fmt.Fprintf(&s, "\t\tresources: {cpus: 0.5, memoryReservation: \"128Mi\"}\n\t\tnetwork: ports: [{container: 8080, host: %d}]\n\t}\n", 20000+i)
	}
	s.WriteString("}\n")
	path := filepath.Join(dir, "fleet.cue")
	must(b, os.WriteFile(path, []byte(s.String()), 0o644))
	return path
}

// BenchmarkValidate1000 loads and validates a generated 1000-instance
// manifest: parse, schema, defaults, paths and policy. Target: under 300 ms.
func BenchmarkValidate1000(b *testing.B) {
	path := generatedFleet(b, 1000)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		res, err := manifests.Load(ctx, []string{path}, manifests.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Fleet.Instances) != 1000 {
			b.Fatalf("got %d instances", len(res.Fleet.Instances))
		}
	}
	per := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(per.Milliseconds()), "ms/validate")
	if b.N > 1 {
		b.Logf("validate 1000 instances: %v per run (target < 300ms)", per)
	}
}
