package manifests

import (
	"testing"

	"github.com/jackin-dev/jackin/schema"
)

// Bad credentials are rejected at the field that is wrong, file:line:col.
func TestLoadRejectsBadCredentials(t *testing.T) {
	runRejects(t, []rejectCase{
		{name: "unknown source kind", src: inst(`credentials: GH_TOKEN: from: {«vault: "x"}`),
			path: "instances.a.credentials.GH_TOKEN.from.vault", msg: `unknown credential source kind "vault": from is {env: "HOST_VAR"}`},
		{name: "two source kinds", src: inst(`credentials: GH_TOKEN: «from: {env: "A", file: "/etc/hostname"}`),
			path: "instances.a.credentials.GH_TOKEN.from", msg: "from must name exactly one source kind (env, file or command)"},
		{name: "literal secret", src: inst(`credentials: GH_TOKEN: «from: "ghp_literal"`),
			path: "instances.a.credentials.GH_TOKEN.from", msg: `a literal secret in the manifest is refused (it would sit in the repository and in every review); read it from a source instead: credentials: GH_TOKEN: {from: {env: "HOST_VAR"}}`},
		{name: "literal secret in env", src: inst(`env: «DB_PASSWORD: "hunter2"`),
			path: "instances.a.env.DB_PASSWORD", msg: "env DB_PASSWORD looks like a secret, and a literal secret in the manifest is refused"},
		{name: "literal secret in defaults env", src: fleetHead + "defaults: env: «OPENAI_API_KEY: \"sk-x\"\ninstances: a: role: image: \"x\"\n",
			path: "defaults.env.OPENAI_API_KEY", msg: "looks like a secret"},
		{name: "proxy without allowlist", src: inst(`credentials: API_TOKEN: {from: {env: "A"}, deliver: «proxy: host: "api.example.com"}`),
			path: "instances.a.credentials.API_TOKEN.deliver.proxy", msg: `proxy delivery needs network.egress "allowlist"`},
		{name: "proxy host not allowed", src: inst(`network: {egress: "allowlist", allow: ["other.example"]}, credentials: API_TOKEN: {from: {env: "A"}, deliver: proxy: «host: "api.example.com"}`),
			path: "instances.a.credentials.API_TOKEN.deliver.proxy.host", msg: `proxy host api.example.com is not allowed by network.allow`},
		{name: "missing file", src: inst(`credentials: GH_TOKEN: from: «file: "./nope"`),
			path: "instances.a.credentials.GH_TOKEN.from.file", msg: "the file source $DIR/nope does not exist"},
		{name: "command not found", src: inst(`credentials: GH_TOKEN: from: command: [«"jackin-no-such-command", "x"]`),
			path: "instances.a.credentials.GH_TOKEN.from.command[0]", msg: `the command "jackin-no-such-command" is not found`},
		{name: "unknown delivery", src: inst(`credentials: GH_TOKEN: {from: {env: "A"}, deliver: {«mail: "x"}}`),
			path: "instances.a.credentials.GH_TOKEN.deliver.mail", msg: `unknown credential delivery "mail"`},
		{name: "file over a system directory", src: inst(`credentials: GH_TOKEN: {from: {env: "A"}, deliver: «file: "/etc/gh"}`),
			path: "instances.a.credentials.GH_TOKEN.deliver.file", msg: "would replace the container's /etc"},
		{name: "env collides with env", src: inst(`env: GH_USER: "x", credentials: GH_TOKEN: {from: {env: "A"}, deliver: «env: "GH_USER"}`),
			path: "instances.a.credentials.GH_TOKEN.deliver.env", msg: "which env also sets"},
	})
}

func TestLoadCredentials(t *testing.T) {
	fx := newFixture(t, map[string]string{"tok": "x", "f.cue": fleetHead + `defaults: credentials: GH_TOKEN: from: {file: "tok"}
instances: a: {role: image: "x", agent: "claude", network: {egress: "allowlist", allow: ["api.anthropic.com"]}
	credentials: {
		ANTHROPIC_API_KEY: {from: {env: "KEY"}, deliver: proxy: {host: "api.anthropic.com", header: "x-api-key", format: "{{value}}"}}
		NOTE: {from: "not a secret"}
	}}
`})
	f := fx.mustLoad(t, "f.cue")
	c := f.Instances["a"].Credentials
	if len(c) != 3 {
		t.Fatalf("credentials: %+v", c)
	}
	if g := c["GH_TOKEN"]; g.From.Kind != schema.SourceFile || g.From.File != fx.dir+"/tok" || g.Deliver.Kind != schema.DeliverFile || g.FileTarget() != "/run/secrets/GH_TOKEN" {
		t.Errorf("GH_TOKEN (from defaults): %+v", g)
	}
	if p := c["ANTHROPIC_API_KEY"].Deliver.Proxy; p == nil || p.Header != "x-api-key" || p.Format != "{{value}}" {
		t.Errorf("ANTHROPIC_API_KEY: %+v", c["ANTHROPIC_API_KEY"])
	}
	if n := c["NOTE"]; n.From.Kind != schema.SourceLiteral || n.From.Literal != "not a secret" {
		t.Errorf("NOTE: %+v", n)
	}
	if missing := schema.MissingRuntimeCredentials(f.Instances["a"]); missing != nil {
		t.Errorf("claude with ANTHROPIC_API_KEY: missing %v", missing)
	}
	if missing := schema.MissingRuntimeCredentials(schema.Instance{Agent: schema.AgentCodex}); len(missing) != 1 || missing[0] != "OPENAI_API_KEY" {
		t.Errorf("codex without credentials: %v", missing)
	}
}
