package manifests

import (
	"path/filepath"
	"testing"

	"github.com/jackin-dev/jackin/schema"
)

const workHead = fleetHead + "instances: a: role: image: \"x\"\n"

func TestWorkToolsLoad(t *testing.T) {
	fx := newFixture(t, map[string]string{
		"token": "t0k",
		"f.cue": workHead +
			"github: {token: {file: \"token\"}, apiURL: \"https://ghe.example.com/api/v3/\"}\n" +
			"tools: {\n" +
			"  summary: {key: \"s\", prompt: \"Summarize what you did.\"}\n" +
			"  open: {key: \"1\", exec: [\"sh\", \"-c\", \"echo $JACKIN_INSTANCE\"]}\n" +
			"}\n" +
			"handlers: {review: [\"sh\", \"-c\", \"code {path}\"], web: [\"sh\", \"-c\", \"echo {url}\"]}\n",
	})
	f := fx.mustLoad(t, "f.cue")
	if f.GitHub == nil || f.GitHub.APIURL != "https://ghe.example.com/api/v3/" || f.GitHub.Token.Kind != schema.SourceFile || f.GitHub.Token.File != filepath.Join(fx.dir, "token") {
		t.Fatalf("github %+v", f.GitHub)
	}
	if s := f.Tools["summary"]; s.Prompt != "Summarize what you did." || s.Key != "s" || s.Exec != nil {
		t.Errorf("summary %+v", s)
	}
	if o := f.Tools["open"]; len(o.Exec) != 3 || o.Exec[0] != "sh" || o.Key != "1" {
		t.Errorf("open %+v", o)
	}
	if len(f.Handlers.Review) != 3 || len(f.Handlers.Web) != 3 {
		t.Errorf("handlers %+v", f.Handlers)
	}
}

func TestWorkToolsRefusals(t *testing.T) {
	runRejects(t, []rejectCase{
		{name: "literal token", src: workHead + "github: «token: \"ghp_abc\"\n",
			path: "github.token", msg: "is a literal value: name where the token is read instead"},
		{name: "two sources", src: workHead + "github: «token: {env: \"A\", file: \"/x\"}\n",
			path: "github.token", msg: "must name exactly one source kind"},
		{name: "token file missing", src: workHead + "github: token: «file: \"nope\"\n",
			path: "github.token.file", msg: "does not exist"},
		{name: "token command missing", src: workHead + "github: token: command: [«\"no-such-jackin-cmd\"]\n",
			path: "github.token.command[0]", msg: `the command "no-such-jackin-cmd" is not found`},
		{name: "http api off loopback", src: workHead + "github: {token: env: \"T\", «apiURL: \"http://ghe.example.com/api/v3/\"}\n",
			path: "github.apiURL", msg: "http:// would send the token in clear"},
		{name: "exec and prompt", src: workHead + "tools: «t: {exec: [\"sh\"], prompt: \"hi\"}\n",
			path: "tools.t", msg: "sets both exec and prompt"},
		{name: "neither", src: workHead + "tools: «t: {key: \"t\"}\n",
			path: "tools.t", msg: "sets neither exec nor prompt"},
		{name: "console key", src: workHead + "tools: t: {«key: \"a\", prompt: \"hi\"}\n",
			path: "tools.t.key", msg: `key "a" is one the console uses itself`},
		{name: "same key", src: workHead + "tools: {t: {key: \"x\", prompt: \"hi\"}, u: {«key: \"x\", prompt: \"ho\"}}\n",
			path: "tools.u.key", msg: `tools t and u both take key "x"`},
		{name: "exec not found", src: workHead + "tools: t: exec: [«\"no-such-jackin-cmd\"]\n",
			path: "tools.t.exec[0]", msg: "is not found"},
		{name: "web without url", src: workHead + "handlers: «web: [\"sh\", \"-c\", \"true\"]\n",
			path: "handlers.web", msg: "handlers.web never names {url}"},
		{name: "unknown tool field", src: workHead + "tools: t: {prompt: \"x\", «shell: true}\n",
			path: "tools.t.shell", msg: `field "shell" is not allowed here`},
	})
}
