// Package credentials reads an instance's secrets from their host sources
// (an env var, a file, a command, a 1Password reference) at apply and
// watch time, computes the keyed digests that stand for them in spec
// hashes, and writes the values where a delivery needs them: a directory
// on a host tmpfs, never the state dir. Nothing here logs or formats a
// value; errors from a command carry its redacted stderr, never its stdout.
package credentials

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackin-dev/jackin/schema"
)

// DefaultTimeout bounds a source command.
const DefaultTimeout = 10 * time.Second

// maxValue bounds a value read from any source.
const maxValue = 1 << 20

// Resolver reads credential values and digests them with a key.
type Resolver struct {
	// Key keys the digests (see LoadKey).
	Key []byte
	// Timeout bounds each source command; 0 means DefaultTimeout.
	Timeout time.Duration
	// Getenv reads host variables; nil means os.LookupEnv.
	Getenv func(string) (string, bool)
}

// Resolve reads one source's value. A missing variable, an unreadable or
// empty file, a command that fails, times out or prints nothing are all
// errors: a credential is never silently empty. The error never holds the
// value; a command's stderr is redacted (see Redact).
func (r *Resolver) Resolve(ctx context.Context, src schema.CredentialSource) ([]byte, error) {
	var v []byte
	switch src.Kind {
	case schema.SourceEnv:
		get := r.Getenv
		if get == nil {
			get = os.LookupEnv
		}
		s, ok := get(src.Env)
		if !ok {
			return nil, fmt.Errorf("host environment variable %s is not set", src.Env)
		}
		v = []byte(s)
	case schema.SourceFile:
		b, err := readFile(src.File)
		if err != nil {
			return nil, err
		}
		v = trimNewline(b)
	case schema.SourceCommand, schema.SourceOnePass:
		b, err := r.run(ctx, src.Command)
		if err != nil {
			return nil, err
		}
		v = trimNewline(b)
	case schema.SourceLiteral:
		v = []byte(src.Literal)
	default:
		return nil, fmt.Errorf("unknown source kind %q", src.Kind)
	}
	if len(bytes.TrimSpace(v)) == 0 {
		return nil, errors.New("the value is empty")
	}
	return v, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxValue+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxValue {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxValue)
	}
	return b, nil
}

// trimNewline drops one trailing line break, as files and commands end.
func trimNewline(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// run runs argv without a shell, with a timeout, and returns its stdout.
func (r *Resolver) run(ctx context.Context, argv []string) ([]byte, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("no command given")
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = time.Second
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxValue, 64<<10
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Stdin = nil
	err := cmd.Run()
	name := filepath.Base(argv[0])
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return nil, fmt.Errorf("command %s timed out after %s%s", name, timeout, stderrText(stderr.Bytes(), stdout.Bytes()))
	case err != nil:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("command %s failed (%s)%s", name, ee.ProcessState.String(), stderrText(stderr.Bytes(), stdout.Bytes()))
		}
		return nil, fmt.Errorf("command %s: %w", name, err)
	case stdout.over:
		return nil, fmt.Errorf("command %s printed more than %d bytes", name, maxValue)
	}
	return stdout.Bytes(), nil
}

func stderrText(stderr, stdout []byte) string {
	s := Redact(stderr, stdout)
	if s == "" {
		return ""
	}
	return ": stderr (redacted): " + s
}

// tokenLike is a run of characters a secret is made of, long enough to be one.
var tokenLike = regexp.MustCompile(`[A-Za-z0-9+/=_\-.~:]{16,}`)

// Redact makes a command's stderr safe for an error message: anything the
// command printed on stdout (the value, whole or in lines) is removed,
// every token-like word of 16 or more characters becomes [REDACTED], and
// the text is cut to three lines of at most 200 characters in all.
func Redact(stderr []byte, secrets ...[]byte) string {
	s := string(stderr)
	for _, sec := range secrets {
		for _, part := range append([][]byte{sec}, bytes.Split(sec, []byte("\n"))...) {
			if p := strings.TrimSpace(string(part)); len(p) >= 4 {
				s = strings.ReplaceAll(s, p, "[REDACTED]")
			}
		}
	}
	s = tokenLike.ReplaceAllString(s, "[REDACTED]")
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	var kept []string
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			kept = append(kept, l)
		}
		if len(kept) == 3 {
			break
		}
	}
	out := strings.Join(kept, " / ")
	if r := []rune(out); len(r) > 200 {
		out = string(r[:200]) + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, out)
}

// limitedBuffer keeps at most max bytes and notes an overflow.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room < len(p) {
		b.over = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// KeyFile is the digest key's file under the state dir (mode 0600).
const KeyFile = "credential-digest.key"

// LoadKey returns the state dir's digest key. With create it makes one (32
// random bytes, 0600) when there is none; without, a missing key gives a
// random key for this process only (a read-only command must not create
// state, and no digest made with another key can match it anyway).
func LoadKey(stateDir string, create bool) ([]byte, error) {
	path := filepath.Join(stateDir, KeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < 32 {
			return nil, fmt.Errorf("the credential digest key %s is damaged (%d bytes): remove it, and the next apply makes a new one (env-delivered credentials are then recreated once)", path, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read the credential digest key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("make a credential digest key: %w", err)
	}
	if !create {
		return key, nil
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("make a credential digest key: %w", err)
	}
	f, err := os.CreateTemp(stateDir, ".key-")
	if err != nil {
		return nil, fmt.Errorf("make a credential digest key: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err == nil {
		_, err = f.Write(key)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("make a credential digest key: %w", err)
	}
	// A link, not a rename: two processes making the key at once agree on
	// the first.
	if err := os.Link(f.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("make a credential digest key: %w", err)
	}
	return LoadKey(stateDir, false)
}

// Digest is the keyed digest that stands for a value in spec hashes,
// labels and the store: "hmac-sha256:" and 32 hex digits of an HMAC over
// the fleet, instance, name and value. Without the key (0600 in the state
// dir) it cannot be used to test guesses of the value.
func (r *Resolver) Digest(fleet, instance, name string, value []byte) string {
	m := hmac.New(sha256.New, r.Key)
	for _, s := range []string{"jackin credential v1", fleet, instance, name} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	m.Write(value)
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))[:32]
}
