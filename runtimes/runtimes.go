// Package runtimes is what jackin knows about each agent runtime an
// instance can run (the manifest's agent field): the credentials it reads,
// the API hosts @agent allows, and where it keeps its login and settings
// under the home directory. It is the one place for that knowledge: the
// manifest schema's enum (schema/fleet.cue, checked against Names by a
// test), credential warnings, sensitive mounts and the egress presets all
// read this table, and whatever else jackin learns about a runtime is a
// field of Runtime here, set for every runtime.
package runtimes

import (
	"maps"
	"slices"
)

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

	// Command is what runs when the instance sets no command: the
	// runtime's interactive CLI with its documented flag for running
	// without permission prompts (the container is the sandbox). Empty for
	// shell, which runs the agent user's login shell.
	Command []string
	// Env is set in the agent container unless the instance sets the
	// same name (OpenCode takes its allow-everything permission this way).
	Env map[string]string
	// State is how the supervisor learns what the agent is doing.
	State StateSource
	// Transcripts is where the runtime writes its session transcripts,
	// relative to the home directory ("" when it writes none jackin
	// reads).
	Transcripts string
	// Custom is a runtime the fleet declares (runtimes: NAME: {...}).
	Custom bool
}

// StateSource is how an agent's state is learned.
type StateSource string

// The state sources.
const (
	// StateHooks: the runtime calls jackin's hook command from its
	// settings (Claude Code, Gemini CLI).
	StateHooks StateSource = "hooks"
	// StateNotify: the runtime runs a notify program when a turn ends
	// (Codex); the start of a turn is seen from terminal activity.
	StateNotify StateSource = "notify"
	// StateServer: the runtime serves its events over HTTP (OpenCode's
	// server, /event).
	StateServer StateSource = "server"
	// StateTerminal: terminal activity (output and CPU) only.
	StateTerminal StateSource = "terminal"
)

// OpenCodePort is where the supervisor starts OpenCode's server inside the
// container (loopback only) and reads its events from.
const OpenCodePort = "4096"

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
		Command:     []string{"claude", "--dangerously-skip-permissions"},
		State:       StateHooks,
		Transcripts: ".claude/projects",
	},
	{
		Name:        Codex,
		Credentials: []string{"OPENAI_API_KEY"},
		APIHosts:    []string{"api.openai.com", "auth.openai.com", "chatgpt.com"},
		Home:        []HomePath{{".codex", "Codex login"}},
		Command:     []string{"codex", "--dangerously-bypass-approvals-and-sandbox"},
		State:       StateNotify,
		Transcripts: ".codex/sessions",
	},
	{
		Name:        Amp,
		Credentials: []string{"AMP_API_KEY"},
		APIHosts:    []string{"ampcode.com", "*.ampcode.com"},
		Home:        []HomePath{{".local/share/amp", "Amp login"}, {".config/amp", "Amp settings"}},
		Command:     []string{"amp", "--dangerously-allow-all"},
		State:       StateTerminal,
	},
	{
		Name:     OpenCode,
		APIHosts: []string{"opencode.ai", "api.anthropic.com", "api.openai.com"},
		Home:     []HomePath{{".config/opencode", "OpenCode settings"}, {".local/share/opencode", "OpenCode login"}},
		Command:  []string{"opencode", "--port", OpenCodePort, "--hostname", "127.0.0.1"},
		// OpenCode's documented inline config, highest precedence: every
		// permission allowed, as the other runtimes' flags do.
		Env:         map[string]string{"OPENCODE_CONFIG_CONTENT": `{"permission":"allow"}`},
		State:       StateServer,
		Transcripts: ".local/share/opencode/storage",
	},
	{
		Name:        Gemini,
		Credentials: []string{"GEMINI_API_KEY"},
		APIHosts:    []string{"generativelanguage.googleapis.com", "cloudcode-pa.googleapis.com", "oauth2.googleapis.com"},
		Home:        []HomePath{{".gemini", "Gemini CLI login"}},
		Command:     []string{"gemini", "--approval-mode=yolo"},
		State:       StateHooks,
		Transcripts: ".gemini/tmp",
	},
	{
		// A plain shell: no runtime of its own, nothing to reach or sign
		// in to.
		Name:  Shell,
		State: StateTerminal,
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
	r.Command = slices.Clone(r.Command)
	r.Env = maps.Clone(r.Env)
	return r
}

// NewCustom is a runtime a fleet declares: its command, the home paths it
// keeps (persisted like a built-in runtime's), the credentials it reads and
// the hosts @agent allows. Its state is learned from terminal activity.
func NewCustom(name string, command, homes, credentials, hosts []string) Runtime {
	r := Runtime{
		Name:        name,
		Command:     slices.Clone(command),
		Credentials: slices.Clone(credentials),
		APIHosts:    slices.Clone(hosts),
		State:       StateTerminal,
		Custom:      true,
	}
	for _, h := range homes {
		r.Home = append(r.Home, HomePath{Rel: h, What: name + " home"})
	}
	return r
}

// IsBuiltin reports whether name is one of the table's runtimes.
func IsBuiltin(name string) bool {
	_, ok := Get(name)
	return ok
}

// HomeRels are the runtime's home paths, relative to the home directory.
func (r Runtime) HomeRels() []string {
	out := make([]string, len(r.Home))
	for i, h := range r.Home {
		out[i] = h.Rel
	}
	return out
}
