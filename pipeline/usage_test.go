package pipeline_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/jackin-dev/jackin/store"
	"github.com/jackin-dev/jackin/supervisor"
	"github.com/jackin-dev/jackin/usage"
)

func TestRecordUsage(t *testing.T) {
	env := newEnv(t, newBackend())
	ctx := t.Context()
	write := func(inst, body string) {
		dir := supervisor.HostDir(env.StateDir, "demo", inst)
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, usage.File), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := env.RecordUsage(ctx, "demo"); err != nil || n != 0 {
		t.Fatalf("no agents dir: %d %v", n, err)
	}
	write("web", `{"v":1,"runtime":"claude","entries":[{"session":"s1","model":"claude-opus-4-5","input":10,"output":5}]}`)
	write("api", `{"v":1,"runtime":"codex","entries":[{"session":"t1","model":"gpt-5-codex","input":7,"cacheRead":3}]}`)
	os.MkdirAll(supervisor.HostDir(env.StateDir, "demo", "idle"), 0o755) // nothing published yet
	write(".removed-old-1", `{"v":1,"entries":[{"session":"x","model":"m","input":1}]}`)
	if n, err := env.RecordUsage(ctx, "demo"); err != nil || n != 2 {
		t.Fatalf("first: %d %v", n, err)
	}
	// Re-read: nothing new.
	if n, err := env.RecordUsage(ctx, "demo"); err != nil || n != 0 {
		t.Fatalf("again: %d %v", n, err)
	}
	// A corrupt file is an error for that instance only.
	write("api", `{"v":1,`)
	write("web", `{"v":1,"runtime":"claude","entries":[{"session":"s1","model":"claude-opus-4-5","input":12,"output":5}]}`)
	if n, err := env.RecordUsage(ctx, "demo"); err == nil || n != 1 {
		t.Fatalf("corrupt: %d %v", n, err)
	}
	rows, err := env.Store.Usage(ctx, store.UsageQuery{Fleet: "demo"})
	if err != nil || len(rows) != 2 {
		t.Fatalf("%+v %v", rows, err)
	}
	if rows[1].Instance != "web" || rows[1].Input != 12 || rows[0].Instance != "api" || rows[0].CacheRead != 3 {
		t.Errorf("%+v", rows)
	}
}
