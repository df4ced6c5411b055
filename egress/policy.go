// Package egress is jackin's egress policy and the proxy that enforces it:
// an instance's allowlist (hosts, wildcards, ports, named presets), matched
// against every request, by a proxy that runs in its own container outside
// the agent's, so the agent cannot turn it off.
package egress

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/jackin-dev/jackin/runtimes"
)

// Presets are the named host sets an allowlist can use. They are defined
// here and nowhere else; the contract shows what each expands to.
var Presets = map[string][]string{
	"@github": {"github.com", "api.github.com", "codeload.github.com", "uploads.github.com",
		"*.githubusercontent.com", "ghcr.io", "pkg-containers.githubusercontent.com"},
	"@npm":    {"registry.npmjs.org", "registry.yarnpkg.com"},
	"@pypi":   {"pypi.org", "files.pythonhosted.org"},
	"@go":     {"proxy.golang.org", "sum.golang.org", "storage.googleapis.com"},
	"@debian": {"deb.debian.org", "security.debian.org"},
}

// Rule is one allowed destination.
type Rule struct {
	// Host is an exact name ("api.github.com"), a wildcard that matches
	// any subdomain ("*.githubusercontent.com"), or an IP address.
	Host string `json:"host"`
	// Port is the allowed port; 0 means 80 and 443.
	Port int `json:"port,omitempty"`
	// From is the allowlist entry the rule came from ("@github", or the
	// entry itself).
	From string `json:"from"`
}

func (r Rule) String() string {
	if r.Port == 0 {
		return r.Host
	}
	return r.Host + ":" + strconv.Itoa(r.Port)
}

// Policy is what the proxy of one instance enforces.
type Policy struct {
	Instance string `json:"instance"`
	Rules    []Rule `json:"rules"`
}

// ParseEntry checks one allowlist entry that is not a preset.
func ParseEntry(entry string) (Rule, error) {
	host, port := entry, 0
	if h, p, err := net.SplitHostPort(entry); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Rule{}, fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
		host, port = h, n
	} else if strings.Count(entry, ":") == 1 {
		return Rule{}, fmt.Errorf("%q: a port follows the host as host:PORT, with PORT from 1 to 65535", entry)
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if err := checkHost(host); err != nil {
		return Rule{}, err
	}
	return Rule{Host: host, Port: port, From: entry}, nil
}

func checkHost(host string) error {
	if host == "" {
		return errors.New("empty host")
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	name := host
	if strings.HasPrefix(host, "*.") {
		name = host[2:]
		if !strings.Contains(name, ".") {
			return fmt.Errorf("%q: a wildcard must leave at least two labels (*.example.com)", host)
		}
	}
	if strings.Contains(name, "*") {
		return fmt.Errorf("%q: a wildcard is allowed only as the whole first label (*.example.com)", host)
	}
	if len(name) > 253 {
		return fmt.Errorf("%q: a host name is at most 253 characters", host)
	}
	for _, label := range strings.Split(name, ".") {
		if err := checkLabel(label); err != nil {
			return fmt.Errorf("%q is not a valid host name: %w", host, err)
		}
	}
	return nil
}

func checkLabel(l string) error {
	if l == "" || len(l) > 63 {
		return errors.New("each label is 1 to 63 characters")
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return errors.New("a label cannot start or end with '-'")
	}
	for _, c := range l {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%q is not allowed in a host name", c)
		}
	}
	return nil
}

// Expand turns an allowlist into rules: presets are replaced by their hosts
// (@agent by those of the instance's agent runtime), duplicates dropped.
func Expand(allow []string, agent runtimes.Runtime) ([]Rule, error) {
	var out []Rule
	seen := map[string]bool{}
	add := func(r Rule) {
		if k := r.String(); !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	for _, entry := range allow {
		if strings.HasPrefix(entry, "@") {
			hosts, err := PresetHosts(entry, agent)
			if err != nil {
				return nil, err
			}
			for _, h := range hosts {
				r, err := ParseEntry(h)
				if err != nil {
					return nil, fmt.Errorf("preset %s: %w", entry, err)
				}
				r.From = entry
				add(r)
			}
			continue
		}
		r, err := ParseEntry(entry)
		if err != nil {
			return nil, err
		}
		add(r)
	}
	return out, nil
}

// PresetHosts returns what a preset expands to. @agent is the API hosts of
// the agent runtime (runtimes.Runtime.APIHosts); the other presets are
// Presets'.
func PresetHosts(name string, rt runtimes.Runtime) ([]string, error) {
	if name == "@agent" {
		if len(rt.APIHosts) == 0 && rt.Custom {
			return nil, fmt.Errorf("@agent: runtime %q declares no hosts (runtimes.%s.hosts)", rt.Name, rt.Name)
		}
		return rt.APIHosts, nil
	}
	hosts, ok := Presets[name]
	if !ok {
		return nil, fmt.Errorf("unknown preset %q: use one of %s", name, strings.Join(PresetNames(), ", "))
	}
	return hosts, nil
}

// PresetNames lists the presets, @agent first.
func PresetNames() []string {
	names := []string{"@agent"}
	for n := range Presets {
		names = append(names, n)
	}
	sort.Strings(names[1:])
	return names
}

// Decide says whether host:port may be reached, and by which rule.
func (p *Policy) Decide(host string, port int) (bool, string) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, r := range p.Rules {
		if !portMatches(r.Port, port) {
			continue
		}
		if hostMatches(r.Host, host) {
			return true, r.String() + " (" + r.From + ")"
		}
	}
	return false, "no rule allows " + net.JoinHostPort(host, strconv.Itoa(port))
}

func portMatches(rule, port int) bool {
	if rule == 0 {
		return port == 80 || port == 443
	}
	return rule == port
}

func hostMatches(pattern, host string) bool {
	if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
		return strings.HasSuffix(host, "."+suffix) && len(host) > len(suffix)+1
	}
	return pattern == host
}

// CheckUpstream checks an upstream proxy address: http://host:port, with
// nothing else (no credentials, path or query).
func CheckUpstream(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("upstreamProxy %q must be http://host:port", raw)
	}
	host, p, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return fmt.Errorf("upstreamProxy %q must be http://host:port, with the port", raw)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("upstreamProxy %q: port %q is not a number from 1 to 65535", raw, p)
	}
	return nil
}
