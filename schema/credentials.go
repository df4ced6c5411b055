package schema

import (
	"path"
	"regexp"
	"sort"
	"strings"
)

// secretShaped matches names that usually hold a secret: a last
// underscore-separated word such as TOKEN, KEY, SECRET or PASSWORD.
var secretShaped = regexp.MustCompile(`(?i)(^|_)(TOKEN|KEY|APIKEY|SECRET|PASSWORD|PASSWD|PASS|CREDENTIAL|CREDENTIALS|PAT)$`)

// SecretShaped reports whether an env or credential name looks like it
// holds a secret (*_TOKEN, *_KEY, *_SECRET, *_PASSWORD, *_CREDENTIALS, ...):
// a literal value for such a name is refused.
func SecretShaped(name string) bool { return secretShaped.MatchString(name) }

// OnePasswordPrefix starts a 1Password secret reference, which a
// credential's from may be as a string: shorthand for
// {command: ["op", "read", REF]}.
const OnePasswordPrefix = "op://"

// RuntimeCredentials are the credentials each agent runtime needs, by their
// usual env names: one of them is enough. validate warns about an instance
// whose runtime has none.
var RuntimeCredentials = map[string][]string{
	AgentClaude: {"ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"},
	AgentCodex:  {"OPENAI_API_KEY"},
	AgentGemini: {"GEMINI_API_KEY"},
	AgentAmp:    {"AMP_API_KEY"},
}

// GitHubCredentials are the usual env names of a GitHub token (gh, git
// credential helpers); listed in the README's table, never required.
var GitHubCredentials = []string{"GH_TOKEN"}

// MissingRuntimeCredentials returns the credential names the instance's
// agent runtime expects when the instance delivers none of them (as a
// credential name, an env delivery or a proxy placeholder), else nil.
func MissingRuntimeCredentials(inst Instance) []string {
	want := RuntimeCredentials[inst.Agent]
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
	return append([]string(nil), want...)
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
