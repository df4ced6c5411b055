package manifests

import (
	"strings"
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
			path: "instances.a.credentials.GH_TOKEN.from", msg: `a literal secret in the manifest is refused (the name GH_TOKEN looks like a secret; it would sit in the repository and in every review): read it from a source instead: credentials: GH_TOKEN: {from: {env: "HOST_VAR"}} (or {file: "~/path"}, {command: ["gh", "auth", "token"]}, "op://vault/item/field")`},
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
		{name: "env jackin sets", src: inst(`docker: "private", credentials: GH_TOKEN: {from: {env: "A"}, deliver: «env: "DOCKER_HOST"}`),
			path: "instances.a.credentials.GH_TOKEN.deliver.env", msg: "which jackin sets itself"},
		{name: "placeholder jackin sets", src: inst(`network: {egress: "allowlist", allow: ["api.example.com"]}, credentials: API_TOKEN: {from: {env: "A"}, deliver: proxy: {host: "api.example.com", «placeholder: "HTTPS_PROXY"}}`),
			path: "instances.a.credentials.API_TOKEN.deliver.proxy.placeholder", msg: "is a variable jackin sets itself"},
		{name: "file where jackin mounts", src: inst(`credentials: GH_TOKEN: {from: {env: "A"}, «deliver: file: "/run/jackin/docker/token"}`),
			path: "instances.a.credentials.GH_TOKEN.deliver", msg: "where jackin mounts its own files"},
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

// Fake secrets of every recognizable shape, assembled so that no secret
// scanner mistakes this file for a leak.
var (
	fakeGHP     = "gh" + "p_jackinTestNotReal0"
	fakeGHO     = "gh" + "o_jackinTestNotReal1"
	fakeGHS     = "gh" + "s_jackinTestNotReal2"
	fakeGHPAT   = "github" + "_pat_jackin_TestNotReal3"
	fakeSK      = "sk" + "-jackinTestNotReal4abcdefghij"
	fakeSKProj  = "sk" + "-proj-jackinTest5"
	fakeSKLive  = "sk" + "_live_jackinTest6"
	fakeSKAnt   = "sk" + "-ant-api03-jackinTest7"
	fakeAKIA    = "AK" + "IAJACKINTESTNOTREA"
	fakeXoxb    = "xo" + "xb-1234-jackin-test"
	fakePrivKey = "-----BEGIN OPENSSH PRIVATE" + " KEY-----\\nb3BlbnNzaC1rZXktdjE\\n-----END OPENSSH PRIVATE KEY-----"
	fakeURLPass = "postgres://app:Hunter2pw" + "@db.example.com:5432/app"
)

// A literal secret is refused wherever it shows: by the credential's name,
// by the env name or proxy header it is delivered as, by its value's shape
// (in credentials and in plain env), in CUE, YAML and JSON alike. The
// error is at the literal's field and never holds the value.
func TestLoadRejectsLiteralSecrets(t *testing.T) {
	allow := `network: {egress: "allowlist", allow: ["api.example.com"]}, `
	type secretCase struct {
		name   string
		file   string // "f.cue" unless set
		src    string
		secret string // the value the error must not hold
		path   string
		msg    string
		count  int
	}
	cases := []secretCase{
		{name: "delivered as a secret-shaped env", src: inst(`credentials: FOO: {«from: "plainvalue1", deliver: env: "GH_TOKEN"}`), secret: "plainvalue1",
			path: "instances.a.credentials.FOO.from", msg: `credential FOO: a literal secret in the manifest is refused (it is delivered as env GH_TOKEN, which looks like a secret; it would sit in the repository and in every review): read it from a source instead: credentials: FOO: {from: {env: "HOST_VAR"}} (or {file: "~/path"}, {command: ["gh", "auth", "token"]}, "op://vault/item/field")`},
		{name: "delivered by proxy", src: inst(allow + `credentials: AUTH_HDR: {«from: "plainvalue2", deliver: proxy: host: "api.example.com"}`), secret: "plainvalue2",
			path: "instances.a.credentials.AUTH_HDR.from", msg: "(it is delivered by the proxy as a request header, which is there to authenticate; "},
		{name: "delivered by proxy with a secret-shaped placeholder", src: inst(allow + `credentials: HDR: {«from: "plainvalue3", deliver: proxy: {host: "api.example.com", placeholder: "API_TOKEN"}}`), secret: "plainvalue3",
			path: "instances.a.credentials.HDR.from", msg: "delivered by the proxy"},
		{name: "delivered by proxy without an allowlist too", src: inst(`credentials: HDR: {«from: "plainvalue4", deliver: proxy: host: "api.example.com"}`), secret: "plainvalue4",
			path: "instances.a.credentials.HDR.from", msg: "delivered by the proxy", count: 2},
		{name: "plural secret word", src: inst(`credentials: APP_SECRETS: «from: "plainvalue5"`), secret: "plainvalue5",
			path: "instances.a.credentials.APP_SECRETS.from", msg: "the name APP_SECRETS looks like a secret"},
		{name: "secret word inside", src: inst(`credentials: SECRET_KEY_BASE: «from: "plainvalue6"`), secret: "plainvalue6",
			path: "instances.a.credentials.SECRET_KEY_BASE.from", msg: "the name SECRET_KEY_BASE looks like a secret"},
		{name: "glued secret word", src: inst(`credentials: GITHUBTOKEN: «from: "plainvalue7"`), secret: "plainvalue7",
			path: "instances.a.credentials.GITHUBTOKEN.from", msg: "the name GITHUBTOKEN looks like a secret"},
		{name: "env APIKEY", src: inst(`env: «APIKEY: "plainvalue8"`), secret: "plainvalue8",
			path: "instances.a.env.APIKEY", msg: "env APIKEY looks like a secret"},
		{name: "env secret word inside", src: inst(`env: «SECRET_KEY_BASE: "plainvalue9"`), secret: "plainvalue9",
			path: "instances.a.env.SECRET_KEY_BASE", msg: "env SECRET_KEY_BASE looks like a secret"},
	}
	for _, v := range []struct{ value, kind string }{
		{fakeGHP, "GitHub token"}, {fakeGHO, "GitHub token"}, {fakeGHS, "GitHub token"}, {fakeGHPAT, "GitHub token"},
		{fakeSK, "API key (sk-...)"}, {fakeSKProj, "OpenAI API key"}, {fakeSKLive, "Stripe secret key"}, {fakeSKAnt, "Anthropic API key"},
		{fakeAKIA, "AWS access key ID"}, {fakeXoxb, "Slack token"}, {fakePrivKey, "private key"}, {fakeURLPass, "URL with a password"},
		{"see " + fakeGHP + " here", "GitHub token"},
	} {
		secret := strings.ReplaceAll(v.value, `\\n`, "\n")
		cases = append(cases,
			secretCase{name: "credential value " + v.kind, src: inst(`credentials: NOTE: «from: "` + v.value + `"`), secret: secret,
				path: "instances.a.credentials.NOTE.from", msg: "credential NOTE: a literal secret in the manifest is refused (its value looks like a " + v.kind + ";"},
			secretCase{name: "env value " + v.kind, src: inst(`env: «NOTE: "` + v.value + `"`), secret: secret,
				path: "instances.a.env.NOTE", msg: "env NOTE: its value looks like a " + v.kind + ", and a literal secret in the manifest is refused"},
		)
	}
	cases = append(cases,
		secretCase{name: "yaml env value", file: "f.yaml", src: yamlHead + "instances:\n  a:\n    role: {image: x}\n    env:\n      «DATABASE_URL: \"" + fakeURLPass + "\"\n",
			secret: fakeURLPass, path: "instances.a.env.DATABASE_URL", msg: "env DATABASE_URL: its value looks like a URL with a password"},
		secretCase{name: "yaml credential delivered as a secret env", file: "f.yaml", src: yamlHead + "instances:\n  a:\n    role: {image: x}\n    credentials:\n      FOO:\n        «from: plainvalueY\n        deliver: {env: OPENAI_API_KEY}\n",
			secret: "plainvalueY", path: "instances.a.credentials.FOO.from", msg: "it is delivered as env OPENAI_API_KEY, which looks like a secret"},
		secretCase{name: "json credential value", file: "f.json", src: "{\"apiVersion\": \"jackin.dev/v1alpha1\", \"kind\": \"Fleet\", \"name\": \"t\",\n\"instances\": {\"a\": {\"role\": {\"image\": \"x\"},\n  \"credentials\": {\"NOTE\": {\"«from\": \"" + fakeXoxb + "\"}}}}}\n",
			secret: fakeXoxb, path: "instances.a.credentials.NOTE.from", msg: "its value looks like a Slack token"},
		secretCase{name: "json env name", file: "f.json", src: "{\"apiVersion\": \"jackin.dev/v1alpha1\", \"kind\": \"Fleet\", \"name\": \"t\",\n\"instances\": {\"a\": {\"role\": {\"image\": \"x\"},\n  \"env\": {\"«MY_TOKENS\": \"plainvalueJ\"}}}}\n",
			secret: "plainvalueJ", path: "instances.a.env.MY_TOKENS", msg: "env MY_TOKENS looks like a secret"},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := tc.file
			if file == "" {
				file = "f.cue"
			}
			fx := newFixture(t, map[string]string{file: tc.src})
			if fx.where == "" {
				t.Fatal("the case has no mark")
			}
			_, diags := fx.load(t, fx.opts(), file)
			if diags == nil {
				t.Fatal("the manifest was accepted")
			}
			expect(t, diags, fx.where, tc.path, tc.msg)
			want := max(tc.count, 1)
			if len(diags) != want {
				t.Errorf("want %d diagnostic(s), got %d:\n%s", want, len(diags), dump(diags))
			}
			for _, d := range diags {
				for _, part := range strings.Split(tc.secret, "\n") {
					if strings.Contains(d.String(), part) {
						t.Errorf("the diagnostic holds the value (%q): %s", part, d)
					}
				}
			}
		})
	}
}

// Names and values that only look near a secret load: a path, URL or name
// of a secret, words that merely contain KEY or PASS, a URL without a
// password, and literals delivered to plain names.
func TestLoadAcceptsNonSecretLiterals(t *testing.T) {
	fx := newFixture(t, map[string]string{"f.cue": inst(`env: {
	TOKEN_URL: "https://auth.example.com/oauth/token"
	GH_TOKEN_FILE: "/run/secrets/GH_TOKEN"
	SSH_KEY_PATH: "/home/agent/.ssh/id_ed25519"
	API_KEY_ID: "key-1"
	KEYBOARD: "us"
	MONKEY: "banana"
	BYPASS: "1"
	PASS_THROUGH: "1"
	DATABASE_URL: "postgres://app@db.example.com:5432/app"
	REDIS_URL: "redis://app:$REDIS_PASSWORD@cache:6379"
	JOB: "disk-usage-report-for-every-volume-2024"
	ML: "sk-learn-is-a-python-library-for-ml-work"
	NOTE_TEXT: "ask the ghp team; the sk- prefix; xox is a game"
	SORT: "ACCESSKEYIDENTIFIERS"
}, credentials: {
	GREETING: {from: "hello there", deliver: env: "GREETING_TEXT"}
	CONFIG: {from: "{\"mode\": \"fast\"}", deliver: file: "/run/app/config.json"}
	TOKEN_ENDPOINT: {from: "https://auth.example.com/token", deliver: env: "AUTH_URL"}
}`)})
	f := fx.mustLoad(t, "f.cue")
	if c := f.Instances["a"].Credentials; len(c) != 3 || c["GREETING"].From.Literal != "hello there" {
		t.Fatalf("credentials: %+v", c)
	}
}
