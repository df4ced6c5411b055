package manifests

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"

	"github.com/jackin-dev/jackin/egress"
	"github.com/jackin-dev/jackin/schema"
)

// rawCredential is one entry of credentials as written. from is a string
// (op:// or a literal) or a source struct.
type rawCredential struct {
	From    json.RawMessage `json:"from"`
	Deliver *rawDelivery    `json:"deliver"`
}

type rawSource struct {
	Env     *string   `json:"env"`
	File    *string   `json:"file"`
	Command *[]string `json:"command"`
}

type rawDelivery struct {
	Env   *string   `json:"env"`
	File  *string   `json:"file"`
	Proxy *rawProxy `json:"proxy"`
}

type rawProxy struct {
	Host        string  `json:"host"`
	Header      *string `json:"header"`
	Format      *string `json:"format"`
	Placeholder *string `json:"placeholder"`
}

func mergeCredentials(d, in map[string]rawCredential) map[string]rawCredential {
	if len(d) == 0 {
		return in
	}
	out := maps.Clone(d)
	maps.Copy(out, in)
	return out
}

// sourceHint says how to read a value from a source instead of writing it
// in env.
func sourceHint(name string) string {
	return fmt.Sprintf(`read it from a source instead: credentials: %s: {from: {env: "HOST_VAR"}} (or {file: "~/path"}, {command: ["gh", "auth", "token"]}, "op://vault/item/field"), delivered as a file by default or with deliver: {env: %q}`, name, name)
}

// credentialSourceHint says how to read a credential's value from a source
// instead of writing it.
func credentialSourceHint(name string) string {
	return fmt.Sprintf(`read it from a source instead: credentials: %s: {from: {env: "HOST_VAR"}} (or {file: "~/path"}, {command: ["gh", "auth", "token"]}, "op://vault/item/field"), keeping its deliver`, name)
}

// literalEnv refuses a literal value for a secret-shaped env name, and a
// value that looks like a secret (a token's prefix, a private key, a URL
// with a password) whatever its name. The message names the kind of value,
// never the value.
func (c *instanceChecker) literalEnv(env map[string]string) {
	for _, k := range sortedKeys(env) {
		v := env[k]
		if v == "" {
			continue
		}
		if schema.SecretShaped(k) {
			c.errorf([]any{"env", k}, "env %s looks like a secret, and a literal secret in the manifest is refused (it would sit in the repository, the store and docker inspect); %s", k, sourceHint(k))
		} else if kind := schema.SecretValueShape(v); kind != "" {
			c.errorf([]any{"env", k}, "env %s: its value looks like a %s, and a literal secret in the manifest is refused (it would sit in the repository, the store and docker inspect); %s", k, kind, sourceHint(k))
		}
	}
}

// literalSecret says why a literal from value must not be written in the
// manifest, or returns "": the credential's name or the env name it is
// delivered as looks like a secret, it is delivered by the proxy (as a
// request header, whose value authenticates by definition), or the value
// has a secret's shape. The reason never quotes the value.
func literalSecret(name, value string, d *rawDelivery) string {
	switch {
	case schema.SecretShaped(name):
		return fmt.Sprintf("the name %s looks like a secret", name)
	case d != nil && d.Proxy != nil:
		return "it is delivered by the proxy as a request header, which is there to authenticate"
	case d != nil && d.Env != nil && schema.SecretShaped(*d.Env):
		return fmt.Sprintf("it is delivered as env %s, which looks like a secret", *d.Env)
	}
	if kind := schema.SecretValueShape(value); kind != "" {
		return "its value looks like a " + kind
	}
	return ""
}

// systemDirs must not be a file credential's directory: the directory is
// replaced by a read-only mount holding only credential files.
var systemDirs = map[string]bool{"/": true, "/bin": true, "/boot": true, "/dev": true, "/etc": true, "/home": true, "/lib": true,
	"/lib64": true, "/proc": true, "/root": true, "/run": true, "/sbin": true, "/sys": true, "/tmp": true, "/usr": true, "/var": true}

// credentials resolves and checks the credentials block: one source and
// one delivery each, no literal secret, sources that exist (a regular
// file, a command on PATH), proxy delivery only through an allowlist that allows
// its host, and no two deliveries to one place.
func (c *instanceChecker) credentials(raw map[string]rawCredential, inst *schema.Instance) {
	if len(raw) == 0 {
		return
	}
	inst.Credentials = map[string]schema.Credential{}
	envs := map[string]string{}    // env name -> credential
	files := map[string]string{}   // target -> credential
	headers := map[string]string{} // host + header -> credential
	for _, name := range sortedKeys(raw) {
		r := raw[name]
		cred := schema.Credential{Name: name}
		at := func(rel ...any) []any { return append([]any{"credentials", name}, rel...) }
		okSource := c.credentialSource(name, r.From, &cred.From, at)
		if okSource && cred.From.Kind == schema.SourceLiteral {
			if why := literalSecret(name, cred.From.Literal, r.Deliver); why != "" {
				c.errorf(at("from"), "credential %s: a literal secret in the manifest is refused (%s; it would sit in the repository and in every review): %s", name, why, credentialSourceHint(name))
				okSource = false
			}
		}
		okDeliver := c.credentialDelivery(name, r.Deliver, inst, &cred.Deliver, at)
		if !okSource || !okDeliver {
			continue
		}
		switch d := cred.Deliver; d.Kind {
		case schema.DeliverEnv:
			if slices.Contains(schema.JackinEnv, d.Env) {
				c.errorf(at("deliver", "env"), "credential %s is delivered as env %s, which jackin sets itself (its Docker client, proxy or CA settings): choose another name", name, d.Env)
			} else if _, set := inst.Env[d.Env]; set {
				c.errorf(at("deliver", "env"), "credential %s is delivered as env %s, which env also sets: remove one", name, d.Env)
			} else if other, dup := envs[d.Env]; dup {
				c.errorf(at("deliver", "env"), "credentials %s and %s are both delivered as env %s", other, name, d.Env)
			}
			envs[d.Env] = name
		case schema.DeliverFile:
			t := cred.FileTarget()
			if other, dup := files[t]; dup {
				c.errorf(at("deliver"), "credentials %s and %s are both delivered to the file %s", other, name, t)
			}
			files[t] = name
		case schema.DeliverProxy:
			key := strings.ToLower(d.Proxy.Host) + " " + strings.ToLower(d.Proxy.Header)
			if other, dup := headers[key]; dup {
				c.errorf(at("deliver", "proxy"), "credentials %s and %s both set header %s for %s", other, name, d.Proxy.Header, d.Proxy.Host)
			}
			headers[key] = name
			if p := d.Proxy.Placeholder; p != "" {
				if slices.Contains(schema.JackinEnv, p) {
					c.errorf(at("deliver", "proxy", "placeholder"), "placeholder %s is a variable jackin sets itself (its Docker client, proxy or CA settings): choose another name", p)
				} else if _, set := inst.Env[p]; set {
					c.errorf(at("deliver", "proxy", "placeholder"), "placeholder %s is also set by env: remove one", p)
				} else if other, dup := envs[p]; dup {
					c.errorf(at("deliver", "proxy", "placeholder"), "credentials %s and %s both set env %s", other, name, p)
				}
				envs[p] = name
			}
		}
		inst.Credentials[name] = cred
	}
	// A file credential's directory is a mount of its own: it must not
	// lie in another mount (the engine would create it in the host
	// directory behind that mount) nor hold one.
	for t, name := range files {
		dir := path.Dir(t)
		for _, j := range schema.JackinMountTargets {
			if dir == j || strings.HasPrefix(dir+"/", j+"/") || strings.HasPrefix(j, dir+"/") {
				c.errorf([]any{"credentials", name, "deliver"}, "credential %s is delivered in %s, which overlaps %s, where jackin mounts its own files: choose another path", name, dir, j)
			}
		}
		for _, m := range inst.Mounts {
			if m.Dst == dir || strings.HasPrefix(dir+"/", strings.TrimSuffix(m.Dst, "/")+"/") || strings.HasPrefix(m.Dst, dir+"/") {
				c.errorf([]any{"credentials", name, "deliver"}, "credential %s is delivered in %s, which overlaps the mount at %s: a file credential's directory is a read-only mount of its own; choose another path", name, dir, m.Dst)
				break
			}
		}
	}
}

func (c *instanceChecker) credentialSource(name string, raw json.RawMessage, out *schema.CredentialSource, at func(...any) []any) bool {
	if len(raw) == 0 {
		return false // the schema reports the missing field
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if ref, ok := strings.CutPrefix(s, schema.OnePasswordPrefix); ok && ref != "" {
			*out = schema.CredentialSource{Kind: schema.SourceOnePass, Command: []string{"op", "read", s}}
			return c.commandOnPath(name, out.Command, at("from"))
		}
		// A literal secret is refused by the caller, which knows the delivery.
		*out = schema.CredentialSource{Kind: schema.SourceLiteral, Literal: s}
		return true
	}
	var r rawSource
	if err := json.Unmarshal(raw, &r); err != nil {
		return false // the schema reports the type
	}
	n := 0
	for _, set := range []bool{r.Env != nil, r.File != nil, r.Command != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		if c.reported(at("from")) {
			return false
		}
		c.errorf(at("from"), "credential %s: from must name exactly one source kind (env, file or command), or be an \"op://...\" reference; it names %d", name, n)
		return false
	}
	switch {
	case r.Env != nil:
		*out = schema.CredentialSource{Kind: schema.SourceEnv, Env: *r.Env}
	case r.File != nil:
		p, ok := c.hostPath(*r.File, at("from", "file")...)
		if !ok {
			return false
		}
		*out = schema.CredentialSource{Kind: schema.SourceFile, File: p}
		st, err := os.Stat(p)
		switch {
		case err != nil:
			c.errorf(at("from", "file"), "credential %s: the file source %s does not exist (or cannot be read): %v", name, p, plainErr(err))
			return false
		case st.IsDir():
			c.errorf(at("from", "file"), "credential %s: the file source %s is a directory, not a file", name, p)
			return false
		case !st.Mode().IsRegular():
			// Reading a FIFO (or a device) at apply would block for ever.
			c.errorf(at("from", "file"), "credential %s: the file source %s is not a regular file (%s): a file source must be a regular file (or a symlink to one)", name, p, fileKind(st.Mode()))
			return false
		}
	case r.Command != nil:
		argv := append([]string(nil), (*r.Command)...)
		if len(argv) == 0 || argv[0] == "" {
			return false // the schema reports it
		}
		if strings.Contains(argv[0], "/") {
			p, ok := c.hostPath(argv[0], at("from", "command", 0)...)
			if !ok {
				return false
			}
			argv[0] = p
		}
		*out = schema.CredentialSource{Kind: schema.SourceCommand, Command: argv}
		return c.commandOnPath(name, argv, at("from", "command", 0))
	}
	return true
}

// commandOnPath checks that a source command can be found.
func (c *instanceChecker) commandOnPath(name string, argv []string, rel []any) bool {
	if _, err := exec.LookPath(argv[0]); err != nil {
		c.errorf(rel, "credential %s: the command %q is not found (not on PATH, or not executable): install it or name it by its full path", name, argv[0])
		return false
	}
	return true
}

// reported reports whether the schema pass already put an error at or
// under rel (an unknown field), so a second message would only repeat it.
func (c *instanceChecker) reported(rel []any) bool {
	_, p := c.at(rel...)
	for _, d := range c.l.diags {
		if d.Path == p || strings.HasPrefix(d.Path, p+".") || strings.HasPrefix(d.Path, p+"[") {
			return true
		}
	}
	return false
}

func plainErr(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

func (c *instanceChecker) credentialDelivery(name string, r *rawDelivery, inst *schema.Instance, out *schema.CredentialDelivery, at func(...any) []any) bool {
	if r == nil {
		*out = schema.CredentialDelivery{Kind: schema.DeliverFile}
		return true
	}
	n := 0
	for _, set := range []bool{r.Env != nil, r.File != nil, r.Proxy != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		if c.reported(at("deliver")) {
			return false
		}
		c.errorf(at("deliver"), "credential %s: deliver must name exactly one delivery (env, file or proxy); it names %d", name, n)
		return false
	}
	switch {
	case r.Env != nil:
		*out = schema.CredentialDelivery{Kind: schema.DeliverEnv, Env: *r.Env}
	case r.File != nil:
		f := *r.File
		clean := path.Clean(f)
		switch {
		case !path.IsAbs(f):
			c.errorf(at("deliver", "file"), "credential %s: deliver.file %q must be an absolute path in the container", name, f)
			return false
		case systemDirs[path.Dir(clean)]:
			c.errorf(at("deliver", "file"), "credential %s: deliver.file %s would replace the container's %s with a read-only directory of credentials: put it in a directory of its own, such as %s/%s", name, clean, path.Dir(clean), schema.DefaultSecretsDir, name)
			return false
		}
		*out = schema.CredentialDelivery{Kind: schema.DeliverFile, File: clean}
	case r.Proxy != nil:
		p := &schema.ProxyDelivery{Host: strings.ToLower(strings.TrimSuffix(r.Proxy.Host, ".")), Header: str(r.Proxy.Header, "Authorization"),
			Format: str(r.Proxy.Format, "Bearer {{value}}"), Placeholder: str(r.Proxy.Placeholder, "")}
		*out = schema.CredentialDelivery{Kind: schema.DeliverProxy, Proxy: p}
		ok := true
		if inst.Network.Egress != schema.EgressAllowlist {
			c.errorf(at("deliver", "proxy"), "credential %s: proxy delivery needs network.egress \"allowlist\" (the egress proxy is what adds the header), and egress is %q; set network: {egress: \"allowlist\", allow: [%q]}", name, inst.Network.Egress, p.Host)
			return false
		}
		if strings.ContainsAny(p.Host, ":/*@ ") || net.ParseIP(p.Host) != nil || p.Host == "" {
			c.errorf(at("deliver", "proxy", "host"), "credential %s: proxy host %q must be a DNS name (no port, scheme, path or wildcard)", name, r.Proxy.Host)
			return false
		}
		rules, err := egress.Expand(inst.Network.Allow, inst.Runtime())
		if err == nil {
			pol := egress.Policy{Rules: rules}
			if allowed, _ := pol.Decide(p.Host, 443); !allowed {
				c.errorf(at("deliver", "proxy", "host"), "credential %s: proxy host %s is not allowed by network.allow: add %q to it", name, p.Host, p.Host)
				ok = false
			}
		}
		if !validHeaderName(p.Header) {
			c.errorf(at("deliver", "proxy", "header"), "credential %s: %q is not an HTTP header name", name, p.Header)
			ok = false
		}
		if strings.Count(p.Format, "{{value}}") != 1 || strings.ContainsAny(p.Format, "\r\n") {
			c.errorf(at("deliver", "proxy", "format"), "credential %s: format %q must contain {{value}} exactly once and no line break", name, p.Format)
			ok = false
		}
		return ok
	}
	return true
}

func validHeaderName(h string) bool {
	if h == "" || strings.EqualFold(h, "Host") {
		return false
	}
	for _, r := range h {
		if r > 127 || !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return http.CanonicalHeaderKey(h) != ""
}
