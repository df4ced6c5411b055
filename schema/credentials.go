package schema

import (
	"path"
	"regexp"
	"sort"
	"strings"
)

// secretWords are the words that make a name secret-shaped when one is a
// whole underscore-separated segment of it, anywhere (API_TOKEN,
// SECRET_KEY_BASE, APP_SECRETS).
var secretWords = map[string]bool{"TOKEN": true, "TOKENS": true, "KEY": true, "KEYS": true, "APIKEY": true, "APIKEYS": true,
	"SECRET": true, "SECRETS": true, "PASSWORD": true, "PASSWORDS": true, "PASSWD": true, "PASSPHRASE": true,
	"CREDENTIAL": true, "CREDENTIALS": true, "CREDS": true, "PRIVATEKEY": true}

// lastOnlyWords make a name secret-shaped only as its last segment (PASS
// and PAT are too often parts of other words: PASS_THROUGH).
var lastOnlyWords = map[string]bool{"PASS": true, "PAT": true}

// gluedSecret matches a segment that ends in a secret word without an
// underscore before it (GITHUBTOKEN, OPENAIAPIKEY, DBPASSWORD). KEY and PASS
// alone are left out: MONKEY, TURKEY and BYPASS are not secrets.
var gluedSecret = regexp.MustCompile(`(TOKENS?|SECRETS?|PASSWORDS?|PASSWD|PASSPHRASE|CREDENTIALS?|(API|PRIVATE|SECRET|ACCESS|SIGNING)KEYS?)$`)

// metaSuffixes, as a name's last segment, say it holds something about a
// secret, not the secret: where it is (GH_TOKEN_FILE, SSH_KEY_PATH,
// TOKEN_URL) or what it is called (API_KEY_ID, TOKEN_TYPE).
var metaSuffixes = map[string]bool{"FILE": true, "PATH": true, "DIR": true, "URL": true, "URI": true, "ENDPOINT": true,
	"HOST": true, "ID": true, "NAME": true, "TYPE": true, "HEADER": true, "ENV": true, "VAR": true}

// SecretShaped reports whether an env or credential name looks like it
// holds a secret: a literal value for such a name is refused. It does when
// an underscore-separated segment is a secret word (TOKEN, KEY, SECRET,
// PASSWORD, CREDENTIALS, plurals too; PASS and PAT only last) or ends in
// one (GITHUBTOKEN, APIKEY), unless the last segment says the name holds
// a path, URL or name of a secret (GH_TOKEN_FILE, TOKEN_URL, KEY_ID).
// Case does not matter.
func SecretShaped(name string) bool {
	segs := strings.Split(strings.ToUpper(name), "_")
	last := len(segs) - 1
	for last > 0 && segs[last] == "" {
		last--
	}
	if metaSuffixes[segs[last]] {
		return false
	}
	for i, s := range segs[:last+1] {
		if secretWords[s] || i == last && lastOnlyWords[s] || gluedSecret.MatchString(s) {
			return true
		}
	}
	return false
}

// valueShape is a recognizable kind of secret value.
type valueShape struct {
	kind string
	re   *regexp.Regexp
	// ok, when set, confirms a match (a test RE2 cannot express).
	ok func(match string) bool
	// keep, when set, is how much of a match is not secret (a URL's scheme).
	keep func(match string) string
}

// mixedAlnum reports whether s has a letter and a digit.
func mixedAlnum(s string) bool {
	return strings.ContainsAny(s, "0123456789") && strings.IndexFunc(s, func(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' }) >= 0
}

// valueShapes are the secret values recognizable by their text.
var valueShapes = []valueShape{
	{kind: "GitHub token", re: regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{4,}|github_pat_[A-Za-z0-9_]{4,})`)},
	{kind: "Anthropic API key", re: regexp.MustCompile(`\bsk-ant-[A-Za-z0-9_\-]{4,}`)},
	{kind: "Stripe secret key", re: regexp.MustCompile(`\b[sr]k_(?:live|test)_[A-Za-z0-9]{4,}`)},
	{kind: "OpenAI API key", re: regexp.MustCompile(`\bsk-(?:proj-|svcacct-|admin-)[A-Za-z0-9_\-]{3,}`)},
	{kind: "API key (sk-...)", re: regexp.MustCompile(`\bsk-[A-Za-z0-9_\-]{20,}`), ok: mixedAlnum},
	{kind: "AWS access key ID", re: regexp.MustCompile(`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`)},
	{kind: "Slack token", re: regexp.MustCompile(`\bxox[bpars]-[A-Za-z0-9\-]{4,}`)},
	{kind: "private key", re: regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----(?s:.*?-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----)?`)},
	// A password in a URL's userinfo; one that starts with $ is a
	// reference, not a value.
	{kind: "URL with a password", re: regexp.MustCompile(`\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*:[^\s/?#@$][^\s/?#@]*@`),
		keep: func(m string) string { return m[:strings.Index(m, "://")+3] }},
}

// SecretValueShape returns the kind of secret value s holds, recognized by
// its text ("GitHub token", "URL with a password", ...), or "" when none.
// The kind never quotes the value, so it can go in an error.
func SecretValueShape(s string) string {
	for _, sh := range valueShapes {
		for _, m := range sh.re.FindAllString(s, -1) {
			if sh.ok == nil || sh.ok(m) {
				return sh.kind
			}
		}
	}
	return ""
}

// RedactSecretValues replaces every recognizable secret value in s (see
// SecretValueShape) with repl; a URL keeps its scheme.
func RedactSecretValues(s, repl string) string {
	for _, sh := range valueShapes {
		s = sh.re.ReplaceAllStringFunc(s, func(m string) string {
			if sh.ok != nil && !sh.ok(m) {
				return m
			}
			if sh.keep != nil {
				return sh.keep(m) + repl + "@"
			}
			return repl
		})
	}
	return s
}

// OnePasswordPrefix starts a 1Password secret reference, which a
// credential's from may be as a string: shorthand for
// {command: ["op", "read", REF]}.
const OnePasswordPrefix = "op://"

// GitHubCredentials are the usual env names of a GitHub token (gh, git
// credential helpers); listed in the README's table, never required.
var GitHubCredentials = []string{"GH_TOKEN"}

// MissingRuntimeCredentials returns the credential names the instance's
// agent runtime expects (runtimes.Runtime.Credentials, by their usual env
// names: one of them is enough) when the instance delivers none of them (as
// a credential name, an env delivery or a proxy placeholder), else nil.
// validate warns about such an instance.
func MissingRuntimeCredentials(inst Instance) []string {
	want := inst.Runtime().Credentials
	if len(want) == 0 {
		return nil
	}
	have := map[string]bool{}
	for name, c := range inst.Credentials {
		have[name] = true
		if c.Deliver.Env != "" {
			have[c.Deliver.Env] = true
		}
		if p := c.Deliver.Proxy; p != nil && p.Placeholder != "" {
			have[p.Placeholder] = true
		}
	}
	for _, n := range want {
		if have[n] {
			return nil
		}
	}
	return want
}

// CredentialNames returns an instance's credential names, sorted.
func (inst Instance) CredentialNames() []string {
	names := make([]string, 0, len(inst.Credentials))
	for n := range inst.Credentials {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// FileTarget is where a file-delivered credential appears in the container.
func (c Credential) FileTarget() string {
	if c.Deliver.File != "" {
		return path.Clean(c.Deliver.File)
	}
	return DefaultSecretsDir + "/" + c.Name
}

// SourceText describes a source without revealing a value: "env HOST_VAR",
// "file /home/ann/.token", "command gh auth token", "1Password op://...",
// "literal".
func (s CredentialSource) SourceText() string {
	switch s.Kind {
	case SourceEnv:
		return "env " + s.Env
	case SourceFile:
		return "file " + s.File
	case SourceCommand:
		return "command " + strings.Join(s.Command, " ")
	case SourceOnePass:
		if len(s.Command) == 3 {
			return "1Password " + s.Command[2]
		}
		return "1Password"
	case SourceLiteral:
		return "literal (the manifest's text)"
	}
	return s.Kind
}
