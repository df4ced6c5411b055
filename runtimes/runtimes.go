// Package runtimes is what jackin knows about each agent runtime an
// instance can run (the manifest's agent field): the credentials it reads,
// the API hosts @agent allows, and where it keeps its login and settings
// under the home directory. It is the one place for that knowledge: the
// manifest schema's enum (schema/fleet.cue, checked against Names by a
// test), credential warnings, sensitive mounts and the egress presets all
// read this table, and whatever else jackin learns about a runtime is a
// field of Runtime here, set for every runtime.
package runtimes

import "slices"

// The runtimes' names, as the manifest's agent field spells them.
const (
	Claude   = "claude"
	Codex    = "codex"
	Amp      = "amp"
	OpenCode = "opencode"
	Gemini   = "gemini"
	Shell    = "shell"
)

// Runtime is one agent runtime.
type Runtime struct {
	// Name is the manifest's value of agent.
	Name string
	// Credentials are the environment variable names of the credentials
	// the runtime reads to authenticate, any one of which is enough
	// (validate warns about an instance that delivers none). Empty when no
	// one credential is required: shell needs none, and opencode uses
	// whichever provider it is set up for.
	Credentials []string
	// APIHosts are the hosts the runtime needs to work: what @agent
	// allows in an allowlist. Exact names or wildcards (*.example.com),
	// as an allowlist entry is written.
	APIHosts []string
	// Home are where the runtime keeps its login and settings under the
	// home directory (the operator's on the host, HOME in the container).
	// Each holds the runtime's login: a bind mount of one is refused as
	// sensitive unless allowSensitive says otherwise.
	Home []HomePath
}

// HomePath is a file or directory under the home directory.
type HomePath struct {
	Rel  string // relative to the home directory, slash-separated
	What string // what it holds ("Claude Code login")
}

// table is every runtime, in the order the schema's enum lists them.
var table = []Runtime{
	{
		Name:        Claude,
		Credentials: []string{"ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"},
		APIHosts:    []string{"api.anthropic.com", "statsig.anthropic.com", "console.anthropic.com"},
		Home:        []HomePath{{".claude", "Claude Code login"}, {".claude.json", "Claude Code account"}},
	},
	{
		Name:        Codex,
		Credentials: []string{"OPENAI_API_KEY"},
		APIHosts:    []string{"api.openai.com", "auth.openai.com", "chatgpt.com"},
		Home:        []HomePath{{".codex", "Codex login"}},
	},
	{
		Name:        Amp,
		Credentials: []string{"AMP_API_KEY"},
		APIHosts:    []string{"ampcode.com", "*.ampcode.com"},
		Home:        []HomePath{{".local/share/amp", "Amp login"}},
	},
	{
		Name:     OpenCode,
		APIHosts: []string{"opencode.ai", "api.anthropic.com", "api.openai.com"},
		Home:     []HomePath{{".local/share/opencode", "OpenCode login"}},
	},
	{
		Name:        Gemini,
		Credentials: []string{"GEMINI_API_KEY"},
		APIHosts:    []string{"generativelanguage.googleapis.com", "cloudcode-pa.googleapis.com", "oauth2.googleapis.com"},
		Home:        []HomePath{{".gemini", "Gemini CLI login"}},
	},
	{
		// A plain shell: no runtime of its own, nothing to reach or sign
		// in to.
		Name: Shell,
	},
}

// All returns every runtime, in the schema's order. The result is a copy:
// changing it changes nothing here.
func All() []Runtime {
	out := make([]Runtime, len(table))
	for i, r := range table {
		out[i] = r.clone()
	}
	return out
}

// Names returns the runtimes' names, in the schema's order.
func Names() []string {
	out := make([]string, len(table))
	for i, r := range table {
		out[i] = r.Name
	}
	return out
}

// Get returns the runtime called name (a copy), and whether there is one.
func Get(name string) (Runtime, bool) {
	for _, r := range table {
		if r.Name == name {
			return r.clone(), true
		}
	}
	return Runtime{}, false
}

func (r Runtime) clone() Runtime {
	r.Credentials = slices.Clone(r.Credentials)
	r.APIHosts = slices.Clone(r.APIHosts)
	r.Home = slices.Clone(r.Home)
	return r
}
