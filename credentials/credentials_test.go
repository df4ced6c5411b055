package credentials

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackin-dev/jackin/schema"
)

const canary = "jkcanaryUNIT0123456789abcdef"

func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolveSources(t *testing.T) {
	r := &Resolver{Key: make([]byte, 32), Getenv: func(k string) (string, bool) {
		if k == "SET" {
			return canary, true
		}
		return "", false
	}}
	file := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(file, []byte(canary+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		src  schema.CredentialSource
	}{
		{"env", schema.CredentialSource{Kind: schema.SourceEnv, Env: "SET"}},
		{"file", schema.CredentialSource{Kind: schema.SourceFile, File: file}},
		{"command", schema.CredentialSource{Kind: schema.SourceCommand, Command: []string{script(t, "echo "+canary)}}},
		{"op", schema.CredentialSource{Kind: schema.SourceOnePass, Command: []string{script(t, `[ "$1" = read ] && echo `+canary), "read", "op://v/i/f"}}},
		{"literal", schema.CredentialSource{Kind: schema.SourceLiteral, Literal: canary}},
	} {
		v, err := r.Resolve(context.Background(), tc.src)
		if err != nil || string(v) != canary {
			t.Errorf("%s: got %q, %v", tc.name, v, err)
		}
	}
}

// A source that cannot be read is an error that never holds the value:
// not the command's stdout, and not its stderr.
func TestResolveFailsClosedWithoutOutput(t *testing.T) {
	r := &Resolver{Key: make([]byte, 32), Timeout: 500 * time.Millisecond, Getenv: func(string) (string, bool) { return "", false }}
	for _, tc := range []struct {
		name string
		src  schema.CredentialSource
		want string
	}{
		{"unset env", schema.CredentialSource{Kind: schema.SourceEnv, Env: "NOPE"}, "NOPE is not set"},
		{"missing file", schema.CredentialSource{Kind: schema.SourceFile, File: "/nonexistent/tok"}, "no such file"},
		{"failing command", schema.CredentialSource{Kind: schema.SourceCommand, Command: []string{script(t, "echo "+canary+"; echo \"sealed: "+canary+" and ghp_abcdefghijklmnopqrstuvwxyz012345\" >&2; exit 4")}},
			"failed (exit status 4); its stderr is not shown nor kept"},
		{"empty output", schema.CredentialSource{Kind: schema.SourceCommand, Command: []string{script(t, "true")}}, "empty"},
		{"timeout", schema.CredentialSource{Kind: schema.SourceCommand, Command: []string{script(t, "echo "+canary+"; sleep 5")}}, "timed out"},
		{"not found", schema.CredentialSource{Kind: schema.SourceCommand, Command: []string{"/nonexistent/cmd"}}, "no such file"},
	} {
		_, err := r.Resolve(context.Background(), tc.src)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q lacks %q", tc.name, err, tc.want)
		}
		if strings.Contains(err.Error(), canary) || strings.Contains(err.Error(), "ghp_") {
			t.Errorf("%s: error leaks a secret: %q", tc.name, err)
		}
	}
}

func TestRedact(t *testing.T) {
	got := Redact([]byte("line one short\nvalue is hunter2\n\n3\n4\n"), []byte("hunter2"))
	if got != "line one short / value is [REDACTED] / 3" {
		t.Fatalf("Redact: %q", got)
	}
	if got := Redact([]byte(strings.Repeat("word ", 100))); len(got) > 210 {
		t.Fatalf("Redact does not cut: %d", len(got))
	}
	if got := Redact([]byte("a\x1b[31mb")); strings.ContainsRune(got, 0x1b) {
		t.Fatalf("Redact keeps control characters: %q", got)
	}
}

// Passwords, auth headers, key=value secrets and known token shapes are
// redacted from stderr even when the command did not print them on stdout;
// plain error messages stay readable.
func TestRedactStderr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// Words that mix letters, digits and symbols.
		{"bad password P@ss!w0rd#2024", "bad password [REDACTED]"},
		{"login failed for hunter22x.", "login failed for [REDACTED]"},
		{"rejected Tr0ub4dor&3 again", "rejected [REDACTED] again"},
		// After a marker, whatever its length.
		{"Authorization: Bearer sk" + "-proj-abc", "Authorization: Bearer [REDACTED]"},
		{"sent bearer abc", "sent bearer [REDACTED]"},
		{"pw=Sh0rt!pw rejected", "pw=[REDACTED] rejected"},
		{"pw=short", "pw=[REDACTED]"},
		{"api_key=abc and x-api-key: def", "api_key=[REDACTED] and x-api-key: [REDACTED]"},
		{`{"password": "two words"}`, `{"password": [REDACTED]}`},
		{"the password letmein is wrong", "the password [REDACTED] is wrong"},
		{"token abc", "token [REDACTED]"},
		{"error: pw=abc", "error: pw=[REDACTED]"},
		{"error: token: abc", "error: token: [REDACTED]"},
		{"Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [REDACTED]"},
		// Known shapes.
		{"got gh" + "p_abcdef here", "got [REDACTED] here"},
		{"key AK" + "IAJACKINTESTNOTREA denied", "key [REDACTED] denied"},
		{"slack xo" + "xb-1-a failed", "slack [REDACTED] failed"},
		{"clone https://ann:pw" + "@example.com failed", "clone https://[REDACTED]@example.com failed"},
		{"-----BEGIN OPENSSH PRIVATE" + " KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\nbad key", "[REDACTED] / bad key"},
		// Plain messages stay as they are.
		{"op: not signed in", "op: not signed in"},
		{"error: item not found", "error: item not found"},
		{"[ERROR] 2024/01/02 10:11:12 \"vault\" isn't a vault in this account.", "[ERROR] 2024/01/02 10:11:12 \"vault\" isn't a vault in this account."},
		{"token expired; password incorrect", "token expired; password incorrect"},
		{"gh: To get started with GitHub CLI, please run:  gh auth login", "gh: To get started with GitHub CLI, please run:  gh auth login"},
		{"permission denied (exit status 1)", "permission denied (exit status 1)"},
	} {
		if got := Redact([]byte(tc.in)); got != tc.want {
			t.Errorf("Redact(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

// The digest is keyed: another key, instance or name gives another digest,
// and it is neither the value nor its plain hash.
func TestDigestKeyed(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadKey(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	k1again, _ := LoadKey(dir, true)
	if string(k1) != string(k1again) {
		t.Fatal("LoadKey made a second key")
	}
	k2, _ := LoadKey(t.TempDir(), false)
	if _, err := os.Stat(filepath.Join(dir, "nothere")); err == nil {
		t.Fatal("?")
	}
	r1, r2 := &Resolver{Key: k1}, &Resolver{Key: k2}
	d := r1.Digest("f", "i", "N", []byte(canary))
	if d != r1.Digest("f", "i", "N", []byte(canary)) {
		t.Fatal("digest is not stable")
	}
	for _, other := range []string{r2.Digest("f", "i", "N", []byte(canary)), r1.Digest("f", "j", "N", []byte(canary)), r1.Digest("f", "i", "M", []byte(canary)), r1.Digest("f", "i", "N", []byte(canary+"x"))} {
		if other == d {
			t.Fatal("digest does not depend on key, instance, name and value")
		}
	}
	if strings.Contains(d, canary) || !strings.HasPrefix(d, "hmac-sha256:") {
		t.Fatalf("digest %q", d)
	}
	ro := t.TempDir()
	if _, err := LoadKey(ro, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(ro, KeyFile)); err == nil {
		t.Fatal("a read-only LoadKey created the key file")
	}
}

func TestWriteDirAtomicAndExact(t *testing.T) {
	base := filepath.Join("/dev/shm", "jackin-unit-"+strings.ReplaceAll(t.Name(), "/", "-"))
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skip("no /dev/shm")
	}
	defer os.RemoveAll(base)
	dir := filepath.Join(base, "f", "i", "files", "run-secrets")
	if _, err := WriteDir(base, dir, map[string][]byte{"A": []byte("1"), "B": []byte("2")}, 0o400, 0o700, nil); err != nil {
		t.Fatal(err)
	}
	changed, err := WriteDir(base, dir, map[string][]byte{"A": []byte("1x")}, 0o400, 0o700, nil)
	if err != nil || len(changed) != 1 || changed[0] != "A" {
		t.Fatalf("changed %v, %v", changed, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "A" {
		t.Fatalf("dir holds %v, want A only", entries)
	}
	fi, _ := os.Stat(filepath.Join(dir, "A"))
	if fi.Mode().Perm() != 0o400 {
		t.Fatalf("mode %v", fi.Mode())
	}
	bi, _ := os.Stat(base)
	if bi.Mode().Perm() != 0o700 {
		t.Fatalf("base mode %v", bi.Mode())
	}
	// Not a tmpfs: refused, so a value never reaches a disk.
	disk := t.TempDir()
	if ok, _ := isTmpfs(disk); !ok {
		if _, err := WriteDir(disk, filepath.Join(disk, "x"), map[string][]byte{"A": []byte("1")}, 0o400, 0o700, nil); err == nil || !strings.Contains(err.Error(), "not on a tmpfs") {
			t.Fatalf("WriteDir on disk: %v", err)
		}
	}
}

// Where jackin cannot tell a memory-backed directory (macOS), it writes no
// value until the operator names one: never a silent default on a disk.
func TestBaseMustBeNamedWhereMemoryCannotBeChecked(t *testing.T) {
	orig := memoryChecked
	memoryChecked = false
	t.Cleanup(func() { memoryChecked = orig })
	base := filepath.Join(t.TempDir(), "secrets")
	t.Setenv(BaseEnv, "")
	_, err := WriteDir(base, filepath.Join(base, "x"), map[string][]byte{"A": []byte("1")}, 0o400, 0o700, nil)
	if err == nil || !strings.Contains(err.Error(), BaseEnv) || !strings.Contains(err.Error(), "RAM disk") {
		t.Fatalf("no %s where memory cannot be checked: %v", BaseEnv, err)
	}
	if _, statErr := os.Stat(base); !os.IsNotExist(statErr) {
		t.Errorf("the refused base was made: %v", statErr)
	}
	// Named, it is taken (on this Linux test host the tmpfs check itself
	// still runs after).
	t.Setenv(BaseEnv, base)
	if _, err := WriteDir(base, filepath.Join(base, "x"), map[string][]byte{"A": []byte("1")}, 0o400, 0o700, nil); err != nil && strings.Contains(err.Error(), "RAM disk") {
		t.Fatalf("with %s named: %v", BaseEnv, err)
	}
}

// A macOS volume that ignores ownership (a RAM disk as /Volumes mounts it
// by default) is refused, with the command that fixes it.
func TestVolumeIgnoringOwnershipIsRefused(t *testing.T) {
	if err := ownershipHonoured(0x00001000, "/Volumes/s/jackin"); err != nil {
		t.Errorf("a volume that honours ownership: %v", err)
	}
	err := ownershipHonoured(0x00001000|mntIgnoreOwnership, "/Volumes/s/jackin")
	if err == nil || !strings.Contains(err.Error(), "diskutil enableOwnership") {
		t.Errorf("a volume that ignores ownership: %v", err)
	}
}
