package manifests

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/jackin-dev/jackin/schema"
)

// rawWorkTools are the fleet-level fields of work items: github, tools
// and handlers.
type rawWorkTools struct {
	GitHub *struct {
		Token  json.RawMessage `json:"token"`
		APIURL string          `json:"apiURL"`
	} `json:"github"`
	Tools map[string]struct {
		Key    string   `json:"key"`
		Exec   []string `json:"exec"`
		Prompt *string  `json:"prompt"`
	} `json:"tools"`
	Handlers struct {
		Review []string `json:"review"`
		Web    []string `json:"web"`
	} `json:"handlers"`
}

// workTools decodes and checks the fleet's github, tools and handlers
// from the exported manifest b: the token's source (never a literal), an
// API URL that is https (http only on loopback, where a test stand-in
// listens: the token must not cross a network in clear), each tool
// exactly one of exec and prompt with a key of its own that the console
// does not use, and commands that can be found.
func (l *loader) workTools(b []byte, fleet *schema.Fleet) {
	var raw rawWorkTools
	_ = json.Unmarshal(b, &raw) // a mistyped part stays zero; the schema pass reported it
	errAt := func(p []string, format string, args ...any) {
		l.errAtPos(l.posOfPath(p), formatPath(p), fmt.Sprintf(format, args...))
	}
	if g := raw.GitHub; g != nil {
		gh := &schema.GitHub{APIURL: g.APIURL}
		if g.APIURL != "" {
			if err := checkAPIURL(g.APIURL); err != nil {
				errAt([]string{"github", "apiURL"}, "%v", err)
			}
		}
		if src, ok := l.fleetSource(g.Token, []string{"github", "token"}, errAt); ok {
			gh.Token = src
		}
		fleet.GitHub = gh
	}
	keys := map[string]string{}
	for _, name := range sortedKeys(raw.Tools) {
		t := raw.Tools[name]
		at := func(f ...string) []string { return append([]string{"tools", name}, f...) }
		tool := schema.Tool{Name: name, Key: t.Key}
		switch {
		case len(t.Exec) > 0 && t.Prompt != nil:
			errAt(at(), "tool %s sets both exec and prompt: a tool either runs a command on the host or types a prompt into the agent", name)
		case len(t.Exec) == 0 && t.Prompt == nil:
			errAt(at(), "tool %s sets neither exec nor prompt", name)
		case t.Prompt != nil:
			tool.Prompt = *t.Prompt
			if len(tool.Prompt) > schema.MaxPrompt {
				errAt(at("prompt"), "tool %s: a prompt of %d bytes is longer than %d", name, len(tool.Prompt), schema.MaxPrompt)
			}
		default:
			argv, ok := l.fleetCommand(t.Exec, at("exec", "0"), errAt)
			if !ok {
				continue
			}
			tool.Exec = argv
		}
		if t.Key != "" {
			switch other, dup := keys[t.Key]; {
			case strings.Contains(schema.ConsoleKeys, t.Key):
				errAt(at("key"), "tool %s: key %q is one the console uses itself (%s): choose another", name, t.Key, strings.Join(strings.Split(schema.ConsoleKeys, ""), " "))
			case dup:
				errAt(at("key"), "tools %s and %s both take key %q", other, name, t.Key)
			}
			keys[t.Key] = name
		}
		if fleet.Tools == nil {
			fleet.Tools = map[string]schema.Tool{}
		}
		fleet.Tools[name] = tool
	}
	for _, h := range []struct {
		field string
		argv  []string
		dst   *[]string
		want  string
	}{{"review", raw.Handlers.Review, &fleet.Handlers.Review, "{path}"}, {"web", raw.Handlers.Web, &fleet.Handlers.Web, "{url}"}} {
		if len(h.argv) == 0 {
			continue
		}
		p := []string{"handlers", h.field}
		argv, ok := l.fleetCommand(h.argv, append(p, "0"), errAt)
		if !ok {
			continue
		}
		has := false
		for _, a := range argv[1:] {
			has = has || strings.Contains(a, h.want)
		}
		if !has {
			errAt(p, "handlers.%s never names %s: the %s would not reach the command (e.g. [\"code\", %q])", h.field, h.want, strings.Trim(h.want, "{}"), h.want)
			continue
		}
		*h.dst = argv
	}
}

// checkAPIURL refuses an API URL the token should not be sent to.
func checkAPIURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("apiURL %q: not a base URL (https://HOST/api/v3/)", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("apiURL %q: http:// would send the token in clear; only https:// is accepted (http:// on loopback only)", s)
		}
	default:
		return fmt.Errorf("apiURL %q: not an http(s) URL", s)
	}
	return nil
}

// fleetSource reads a fleet-level credential source: env, file, command
// or op://; a literal value is refused (a token does not belong in a
// reviewed manifest).
func (l *loader) fleetSource(raw json.RawMessage, p []string, errAt func([]string, string, ...any)) (schema.CredentialSource, bool) {
	if len(raw) == 0 {
		return schema.CredentialSource{}, false // the schema reports it
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if ref, ok := strings.CutPrefix(s, schema.OnePasswordPrefix); ok && ref != "" {
			argv, ok := l.fleetCommand([]string{"op", "read", s}, p, errAt)
			return schema.CredentialSource{Kind: schema.SourceOnePass, Command: argv}, ok
		}
		errAt(p, "%s is a literal value: name where the token is read instead ({env: \"GITHUB_TOKEN\"}, {file: \"~/.config/jackin/github-token\"}, {command: [\"gh\", \"auth\", \"token\"]} or \"op://vault/item/field\")", formatPath(p))
		return schema.CredentialSource{}, false
	}
	var r rawSource
	if err := json.Unmarshal(raw, &r); err != nil {
		return schema.CredentialSource{}, false
	}
	n := 0
	for _, set := range []bool{r.Env != nil, r.File != nil, r.Command != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		errAt(p, "%s must name exactly one source kind (env, file or command), or be an \"op://...\" reference; it names %d", formatPath(p), n)
		return schema.CredentialSource{}, false
	}
	switch {
	case r.Env != nil:
		return schema.CredentialSource{Kind: schema.SourceEnv, Env: *r.Env}, true
	case r.File != nil:
		fp := append(append([]string(nil), p...), "file")
		path, ok := l.fleetPath(*r.File, fp, errAt)
		if !ok {
			return schema.CredentialSource{}, false
		}
		st, err := os.Stat(path)
		switch {
		case err != nil:
			errAt(fp, "the file source %s does not exist (or cannot be read): %v", path, plainErr(err))
			return schema.CredentialSource{}, false
		case !st.Mode().IsRegular():
			errAt(fp, "the file source %s is not a regular file", path)
			return schema.CredentialSource{}, false
		}
		return schema.CredentialSource{Kind: schema.SourceFile, File: path}, true
	}
	argv, ok := l.fleetCommand(*r.Command, append(append([]string(nil), p...), "command", "0"), errAt)
	return schema.CredentialSource{Kind: schema.SourceCommand, Command: argv}, ok
}

// fleetCommand resolves a command's program: a path (~ and relative to
// the manifest's directory) or a name found on PATH.
func (l *loader) fleetCommand(argv []string, p []string, errAt func([]string, string, ...any)) ([]string, bool) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, false // the schema reports it
	}
	argv = append([]string(nil), argv...)
	if strings.Contains(argv[0], "/") {
		path, ok := l.fleetPath(argv[0], p, errAt)
		if !ok {
			return nil, false
		}
		argv[0] = path
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		errAt(p, "the command %q is not found (not on PATH, or not executable): install it or name it by its full path", argv[0])
		return nil, false
	}
	return argv, true
}

// fleetPath makes a host path absolute: ~ is the home directory, a
// relative path is relative to the manifest that names it.
func (l *loader) fleetPath(v string, p []string, errAt func([]string, string, ...any)) (string, bool) {
	expanded, ok := schema.ExpandHome(v, l.opts.Home)
	if !ok {
		errAt(p, "%q: only ~ and ~/ are expanded (to your home directory), not ~user", v)
		return "", false
	}
	if !filepath.IsAbs(expanded) {
		base := l.opts.WorkDir
		if pos := l.posOfPath(p); pos.IsValid() {
			if d, ok := l.dirs[pos.Filename()]; ok {
				base = d
			}
		}
		expanded = filepath.Join(base, expanded)
	}
	return filepath.Clean(expanded), true
}
