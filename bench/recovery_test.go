package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/recovery"
)

// BenchmarkSnapshot1GiB: snapshots of a 1 GiB tree of 20,000 files (the
// recovery repository's git objects), the first and a second one of the
// unchanged tree, beside a plain tar of the same tree to a file, in the
// same run. Target: the second snapshot at most 0.1x tar's time (it reads
// stat data only: the per-target index says nothing changed).
func BenchmarkSnapshot1GiB(b *testing.B) {
	const files, total = 20000, 1 << 30
	dir := b.TempDir()
	tree := filepath.Join(dir, "tree")
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, total/files)
	for i := 0; i < files; i++ {
		sub := filepath.Join(tree, fmt.Sprintf("d%03d", i%200))
		if i < 200 {
			must(b, os.MkdirAll(sub, 0o755))
		}
		for j := range buf {
			buf[j] = byte(rng.Uint32())
		}
		must(b, os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%05d", i)), buf, 0o644))
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := filepath.Join(dir, "tree.tar")
		start := time.Now()
		if o, err := exec.Command("tar", "-cf", out, "-C", tree, ".").CombinedOutput(); err != nil {
			b.Fatalf("tar: %v\n%s", err, o)
		}
		tarTime := time.Since(start)
		must(b, os.Remove(out))

		state := filepath.Join(dir, fmt.Sprintf("state%d", i))
		repo, err := recovery.Open(ctx, state, "bench")
		must(b, err)
		targets := []recovery.Target{{Name: "rw-tree", Kind: recovery.KindRW, Dst: "/tree", Path: tree}}
		start = time.Now()
		if _, err := repo.Create(ctx, "a", recovery.TriggerManual, targets); err != nil {
			b.Fatal(err)
		}
		first := time.Since(start)
		size1, _ := repo.Size()
		start = time.Now()
		if _, err := repo.Create(ctx, "a", recovery.TriggerManual, targets); err != nil {
			b.Fatal(err)
		}
		second := time.Since(start)
		size2, _ := repo.Size()
		ratio := second.Seconds() / tarTime.Seconds()
		b.ReportMetric(tarTime.Seconds(), "s/tar")
		b.ReportMetric(first.Seconds(), "s/first-snapshot")
		b.ReportMetric(second.Seconds(), "s/second-snapshot")
		b.ReportMetric(ratio, "second/tar")
		b.ReportMetric(float64(size2-size1), "bytes-added-by-second")
		b.Logf("1 GiB, %d files: tar %v; first snapshot %v (%.2fx tar, repository %d MiB); second, unchanged %v (%.3fx tar, +%d bytes); target second <= 0.1x tar: %v",
			files, tarTime.Round(time.Millisecond), first.Round(time.Millisecond), first.Seconds()/tarTime.Seconds(), size1>>20, second.Round(time.Millisecond), ratio, size2-size1, ratio <= 0.1)
		if ratio > 0.1 {
			b.Logf("TARGET MISSED: the second snapshot of an unchanged tree took %.3fx tar's time (target <= 0.1x)", ratio)
		}
		must(b, os.RemoveAll(state))
	}
}
