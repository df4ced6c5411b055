package usage

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The runtime stand-ins (test/harness/standin) write their usage records
// as the runtimes document them; each reader's totals match what the
// stand-in logged it wrote (STANDIN_LOG), each response once.
func TestReadersAgainstStandins(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the stand-in")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "standin"), "../test/harness/standin")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the stand-in: %v\n%s", err, out)
	}
	for _, rt := range []string{"claude", "codex", "gemini"} {
		os.Symlink(filepath.Join(bin, "standin"), filepath.Join(bin, rt))
	}
	run := func(t *testing.T, rt string, env ...string) (home string, log []map[string]any) {
		home = t.TempDir()
		logPath := filepath.Join(t.TempDir(), "log.jsonl")
		cmd := exec.Command(filepath.Join(bin, rt))
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), append([]string{"HOME=" + home, "STANDIN_LOG=" + logPath, "STANDIN_TURN_MS=5",
			"CLAUDE_CONFIG_DIR=", "CODEX_HOME=", "GEMINI_CLI_HOME="}, env...)...)
		cmd.Stdin = strings.NewReader("first\nsecond turn\nthird\nexit\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", rt, err, out)
		}
		f, err := os.Open(logPath)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["kind"] == "usage" {
				log = append(log, m)
			}
		}
		if len(log) == 0 {
			t.Fatalf("%s logged no usage", rt)
		}
		return home, log
	}
	n := func(m any, k string) int64 { f, _ := m.(map[string]any)[k].(float64); return int64(f) }
	one := func(t *testing.T, got Totals) (Key, Tokens) {
		t.Helper()
		if len(got) != 1 {
			t.Fatalf("want one session and model, got %+v", got)
		}
		for k, v := range got {
			return k, v
		}
		return Key{}, Tokens{}
	}

	t.Run("claude", func(t *testing.T) {
		home, log := run(t, "claude", "STANDIN_MODEL=claude-sonnet-4-5-20250929")
		var want Tokens
		for _, m := range log {
			u := m["usage"]
			want = want.Add(Tokens{Input: n(u, "input_tokens"), Output: n(u, "output_tokens"), CacheRead: n(u, "cache_read_input_tokens"), CacheWrite: n(u, "cache_creation_input_tokens")})
		}
		k, got := one(t, mustScan(ForRuntime("claude", home, nil, "b")))
		if got != want || k.Model != "claude-sonnet-4-5-20250929" {
			t.Errorf("%+v %+v, want %+v", k, got, want)
		}
		if _, ok := BuiltinPrices().Cost(k.Model, got); !ok {
			t.Error("STANDIN_MODEL's model has no price")
		}
	})
	t.Run("codex", func(t *testing.T) {
		home, log := run(t, "codex")
		last := log[len(log)-1]["total_token_usage"]
		want := Tokens{Input: n(last, "input_tokens") - n(last, "cached_input_tokens"), CacheRead: n(last, "cached_input_tokens"), Output: n(last, "output_tokens")}
		k, got := one(t, mustScan(ForRuntime("codex", home, nil, "b")))
		if got != want || k.Model != "gpt-standin" {
			t.Errorf("%+v %+v, want %+v", k, got, want)
		}
	})
	for _, legacy := range []string{"0", "1"} {
		t.Run("gemini-legacy-"+legacy, func(t *testing.T) {
			home, log := run(t, "gemini", "STANDIN_GEMINI_LEGACY="+legacy)
			var want Tokens
			for _, m := range log {
				tk := m["tokens"]
				want = want.Add(Tokens{Input: n(tk, "input") - n(tk, "cached") + n(tk, "tool"), Output: n(tk, "output") + n(tk, "thoughts"), CacheRead: n(tk, "cached")})
			}
			k, got := one(t, mustScan(ForRuntime("gemini", home, nil, "b")))
			if got != want || k.Model != "gemini-standin" {
				t.Errorf("%+v %+v, want %+v", k, got, want)
			}
		})
	}
}

func mustScan(r *Reader) Totals {
	t, _ := r.Scan()
	return t
}
