// Package credentials reads an instance's secrets from their host sources
// (an env var, a file, a command, a 1Password reference) at apply and
// watch time, computes the keyed digests that stand for them in spec
// hashes, and writes the values where a delivery needs them: a directory
// on a host tmpfs, never the state dir. Nothing here logs or formats a
// value, and a command's stderr is never read (only passed to the
// operator's terminal when they ask for it): errors never carry a
// command's output.
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

	"github.com/jackin-dev/jackin/hostpath"
	"github.com/jackin-dev/jackin/schema"
)

// DefaultTimeout bounds reading a source: a command, or a file.
const DefaultTimeout = 10 * time.Second

// maxValue bounds a value read from any source.
const maxValue = 1 << 20

// StderrHint is how a failing command's error says to see its stderr,
// when the resolver has no StderrHint of its own. The CLI sets it, before
// any source is read, to name its own -f.
var StderrHint = "to see it on your terminal, run jackin credentials check with the same -f"

// Resolver reads credential values and digests them with a key.
type Resolver struct {
	// Key keys the digests (see LoadKey).
	Key []byte
	// Timeout bounds reading each source (a command, a file); 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// Getenv reads host variables; nil means os.LookupEnv.
	Getenv func(string) (string, bool)
	// Stderr receives a source command's stderr, unread by jackin: set
	// only when the operator asked to see it (jackin credentials check),
	// and then to their terminal. nil discards it (/dev/null): a command's
	// stderr may hold a secret of any shape, so it is never shown, kept
	// or recorded otherwise.
	Stderr io.Writer
	// StderrHint says, in a failing command's error, how to see its
	// stderr on request; "" means the package's StderrHint.
	StderrHint string
}

// timeout is the bound of one source's read.
func (r *Resolver) timeout() time.Duration {
	if r.Timeout <= 0 {
		return DefaultTimeout
	}
	return r.Timeout
}

// Resolve reads one source's value. A missing variable, an unreadable,
// empty or non-regular file, a read or a command that fails, times out or
// prints nothing are all errors: a credential is never silently empty. The
// error never holds the value, nor a command's output (see run).
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
		b, err := r.readFile(ctx, src.File)
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

// readSource reads a file source (readRegular; tests replace it).
var readSource = readRegular

// readFile reads a file source under the same deadline as a command: the
// read runs on its own, and is abandoned when the timeout runs out or ctx
// is cancelled, so a file on a network filesystem that stopped answering
// holds neither apply nor a watch pass.
func (r *Resolver) readFile(ctx context.Context, path string) ([]byte, error) {
	timeout := r.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type read struct {
		b   []byte
		err error
	}
	done := make(chan read, 1)
	readPath := readSource
	go func() {
		b, err := readPath(path)
		done <- read{b, err}
	}()
	select {
	case rd := <-done:
		return rd.b, rd.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("reading %s timed out after %s (a network filesystem that does not answer?)", path, timeout)
		}
		return nil, fmt.Errorf("reading %s was cancelled: %w", path, ctx.Err())
	}
}

// readRegular reads a regular file of at most maxValue bytes. Anything
// else (a FIFO, a socket, a device, a directory) is refused before it is
// opened, and again after (an fstat of what was opened, which a swap
// between the two cannot fool); it is opened non-blocking, as open(2)
// of a FIFO without a writer would block for ever. Symlinks are followed:
// what counts is the file they lead to.
func readRegular(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, errors.Unwrap(err))
	}
	if !st.Mode().IsRegular() {
		return nil, notRegular(path, st.Mode())
	}
	f, err := os.OpenFile(path, os.O_RDONLY|nonBlock, 0)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, errors.Unwrap(err))
	}
	if !st.Mode().IsRegular() {
		return nil, notRegular(path, st.Mode())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxValue+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxValue {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxValue)
	}
	return b, nil
}

// notRegular is the error for a file source that is not a regular file.
func notRegular(path string, m os.FileMode) error {
	return fmt.Errorf("%s is not a regular file (%s): a file source must be a regular file (or a symlink to one)", path, fileKind(m))
}

// fileKind names the kind of a file for a message (hostpath.KindOf).
func fileKind(m os.FileMode) string { return hostpath.KindOf(m) }

// trimNewline drops one trailing line break, as files and commands end.
func trimNewline(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// pipeDrain bounds how long output is still read after a command's own
// process has ended and its process group has been killed: only a
// process that left the group can hold a pipe that long.
const pipeDrain = 500 * time.Millisecond

// run runs argv without a shell, with a timeout, and returns its stdout.
// The command runs in a process group of its own: when it exits, times out
// or is cancelled, the whole group is killed, so a child it left behind
// holding stdout neither outlives it nor turns its success into a timeout.
//
// Its stderr is never read: it goes to r.Stderr when the operator asked to
// see it, else to /dev/null. What a failing command prints may be a secret
// of any shape (a password it echoes, a value it was given), which no
// redaction can recognise; so the error names the command, its exit
// status or timeout, and how to see the output on request.
func (r *Resolver) run(ctx context.Context, argv []string) ([]byte, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("no command given")
	}
	timeout := r.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	name := filepath.Base(argv[0])
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	ownProcessGroup(cmd)
	cmd.WaitDelay = pipeDrain
	cmd.Stdin = nil
	cmd.Stderr = r.Stderr
	// A pipe of our own for stdout, not exec's copying: Wait returns when
	// the command exits, whoever else holds the write end, and the group
	// is killed before what is left in the pipe is read.
	var stdout limitedBuffer
	stdout.max = maxValue
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("command %s: %w", name, err)
	}
	cmd.Stdout = outW
	err = cmd.Start()
	outW.Close()
	if err != nil {
		outR.Close()
		return nil, fmt.Errorf("command %s: %w", name, err)
	}
	drained := make(chan struct{})
	go func() {
		_, _ = io.Copy(&stdout, outR)
		close(drained)
	}()
	err = cmd.Wait()
	killProcessGroup(cmd)
	select {
	case <-drained:
	case <-time.After(pipeDrain):
		// A process that left the group holds the pipe: stop reading.
		outR.Close()
		select {
		case <-drained:
		case <-time.After(pipeDrain):
			return nil, fmt.Errorf("command %s: a process it started holds its output open", name)
		}
	}
	outR.Close()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, fmt.Errorf("command %s timed out after %s%s", name, timeout, r.stderrNote())
	case ctx.Err() != nil:
		return nil, fmt.Errorf("command %s was cancelled: %w", name, ctx.Err())
	case err != nil:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("command %s failed (%s)%s", name, ee.ProcessState.String(), r.stderrNote())
		}
		return nil, fmt.Errorf("command %s: %w", name, err)
	case stdout.over:
		return nil, fmt.Errorf("command %s printed more than %d bytes", name, maxValue)
	}
	return stdout.Bytes(), nil
}

// stderrNote ends a failing command's error: where its stderr went.
func (r *Resolver) stderrNote() string {
	if r.Stderr != nil {
		return " (its stderr is shown above)"
	}
	hint := r.StderrHint
	if hint == "" {
		hint = StderrHint
	}
	return "; its stderr is not shown nor kept, as it may hold a secret: " + hint
}

// redacted replaces what Redact hides.
const redacted = "[REDACTED]"

// tokenLike is a run of characters a secret is made of, long enough to be one.
var tokenLike = regexp.MustCompile(`[A-Za-z0-9+/=_\-.~:]{16,}`)

// markedWord is a word after a word that announces a secret: an auth
// scheme (Bearer, Basic) or a secret's name (token, password).
var markedWord = regexp.MustCompile(`(?i)\b(bearer|basic|token|password|passwd|passphrase|secret)(\s+)(\S+)`)

// keyAssign is the key= or key: of a key=value (quotes allowed); the value
// after it is hidden when the key looks like a secret's name. The value is
// not part of the match, so it may hold the next key ("error: pw=...").
var keyAssign = regexp.MustCompile(`([A-Za-z][A-Za-z0-9_.\-]*)"?\s*[=:]\s*`)

// assignedValue is the value after a keyAssign: quoted, or up to a space
// or a separator.
var assignedValue = regexp.MustCompile(`^(?:"[^"\n]*"|'[^'\n]*'|[^\s,;&]+)`)

// redactAssigned hides the values of key=value pairs whose key names a
// secret ("pw=...", "api_key: ...", "password": "..."), leaving an auth
// scheme ("Authorization: Bearer") to markedWord.
func redactAssigned(s string) string {
	var b strings.Builder
	last := 0
	for _, m := range keyAssign.FindAllStringSubmatchIndex(s, -1) {
		if m[0] < last || !secretKey(s[m[2]:m[3]]) {
			continue
		}
		v := assignedValue.FindString(s[m[1]:])
		if v == "" || strings.HasPrefix(v, redacted) || strings.EqualFold(v, "bearer") || strings.EqualFold(v, "basic") {
			continue
		}
		b.WriteString(s[last:m[1]])
		b.WriteString(redacted)
		last = m[1] + len(v)
	}
	b.WriteString(s[last:])
	return b.String()
}

// longWord is a whitespace-separated word that may be a password.
var longWord = regexp.MustCompile(`\S{8,}`)

// plainWords may follow "token" or "password" in an error message without
// being one: "token expired", "password incorrect".
var plainWords = map[string]bool{"is": true, "was": true, "for": true, "not": true, "expired": true, "invalid": true, "incorrect": true,
	"required": true, "missing": true, "the": true, "a": true, "an": true, "has": true, "had": true, "have": true, "must": true, "and": true,
	"or": true, "to": true, "of": true, "in": true, "from": true, "with": true, "failed": true, "rejected": true, "denied": true, "empty": true,
	"too": true, "cannot": true, "could": true, "does": true, "did": true, "should": true, "will": true, "mismatch": true, "error": true,
	"found": true, "given": true, "provided": true, "set": true, "unset": true, "revoked": true, "needed": true, "file": true, "value": true,
	"length": true, "format": true, "field": true, "please": true, "may": true, "can": true, "auth": true, "authentication": true}

// secretKey reports whether the key of key=value names a secret.
func secretKey(k string) bool {
	k = strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToUpper(k))
	switch k {
	case "PW", "PWD", "PIN", "AUTH", "AUTHORIZATION", "SIG", "SIGNATURE":
		return true
	}
	return schema.SecretShaped(k)
}

// edgePunct is punctuation that ends a word in prose, not part of it.
const edgePunct = `"'()[]{}<>,.;:!?`

// passwordLike reports whether a word of 8 or more characters (edge
// punctuation aside) mixes at least two of letters, digits and symbols,
// as a password does ("P@ss!w0rd", "hunter22x"). Hyphens, dots, slashes,
// colons and underscores are not counted as symbols: they join words,
// paths and versions.
func passwordLike(w string) bool {
	core := strings.Trim(w, edgePunct)
	if len(core) < 8 || strings.Contains(w, redacted) {
		return false
	}
	var letter, digit, symbol bool
	for _, c := range core {
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c > 127:
			letter = true
		case c >= '0' && c <= '9':
			digit = true
		case strings.ContainsRune(`!@#$%^&*+=~|\<>?`, c):
			symbol = true
		}
	}
	n := 0
	for _, b := range []bool{letter, digit, symbol} {
		if b {
			n++
		}
	}
	return n >= 2
}

// Redact hides what looks like a secret in text (reconciler uses it to pick
// a container's log line safe to show). Removed, in order: anything in
// secrets (known values; whole or in lines), values of a known shape (see
// schema.SecretValueShape), the word after "Bearer", "token", "password"
// (unless it is a plain word such as "expired"), the value of a key=value
// whose key names a secret ("pw=...", "api_key: ..."), every token-like
// word of 16 or more characters, and every word of 8 or more that mixes
// letters, digits and symbols. Each becomes [REDACTED]; the text is then
// cut to three lines of at most 200 characters in all. A secret with no
// shape (a plain word) that is not in secrets passes: this is why a source
// command's stderr is never shown at all (see run).
func Redact(text []byte, secrets ...[]byte) string {
	s := string(text)
	for _, sec := range secrets {
		for _, part := range append([][]byte{sec}, bytes.Split(sec, []byte("\n"))...) {
			if p := strings.TrimSpace(string(part)); len(p) >= 4 {
				s = strings.ReplaceAll(s, p, redacted)
			}
		}
	}
	s = schema.RedactSecretValues(s, redacted)
	s = markedWord.ReplaceAllStringFunc(s, func(m string) string {
		sub := markedWord.FindStringSubmatch(m)
		word := sub[3]
		if strings.HasPrefix(word, redacted) || !strings.EqualFold(sub[1], "bearer") && plainWords[strings.ToLower(strings.TrimRight(word, edgePunct))] {
			return m
		}
		return sub[1] + sub[2] + redacted
	})
	s = redactAssigned(s)
	s = tokenLike.ReplaceAllString(s, redacted)
	s = longWord.ReplaceAllStringFunc(s, func(w string) string {
		if passwordLike(w) {
			return redacted
		}
		return w
	})
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
