package manifests

import (
	"testing"

	"github.com/jackin-dev/jackin/schema"
)

func TestLoadRejectsBadEgress(t *testing.T) {
	al := func(body string) string {
		return inst("network: {egress: \"allowlist\", " + body + "}")
	}
	runRejects(t, []rejectCase{
		{name: "malformed host", src: al("allow: [\"api.github.com\", «\"bad_host.com\"]"),
			path: "instances.a.network.allow[1]", msg: `allow entry "bad_host.com" is not a valid host name: '_' is not allowed in a host name`},
		{name: "empty label", src: al("allow: [«\"a..b\"]"),
			path: "instances.a.network.allow[0]", msg: `is not a valid host name`},
		{name: "wildcard in the middle", src: al("allow: [«\"api.*.github.com\"]"),
			path: "instances.a.network.allow[0]", msg: `a wildcard is allowed only as the whole first label`},
		{name: "wildcard too wide", src: al("allow: [«\"*.com\"]"),
			path: "instances.a.network.allow[0]", msg: `a wildcard must leave at least two labels`},
		{name: "unknown preset", src: al("allow: [«\"@pip\"]"),
			path: "instances.a.network.allow[0]", msg: `unknown preset "@pip": use one of @agent, @debian, @github, @go, @npm, @pypi`},
		{name: "port out of range", src: al("allow: [«\"example.com:70000\"]"),
			path: "instances.a.network.allow[0]", msg: `port "70000" is not a number from 1 to 65535`},
		{name: "port zero", src: al("allow: [«\"example.com:0\"]"),
			path: "instances.a.network.allow[0]", msg: `port "0" is not a number from 1 to 65535`},
		{name: "empty entry", src: al("allow: [«\"\"]"),
			path: "instances.a.network.allow[0]", msg: `the value must not be empty`},
		{name: "allow without allowlist", src: inst("network: {egress: \"open\", «allow: [\"example.com\"]}"),
			path: "instances.a.network.allow", msg: `allow applies to egress "allowlist" only, and egress is "open"`},
		{name: "allow with the default egress", src: inst("network: «allow: [\"example.com\"]"),
			path: "instances.a.network.allow", msg: `allow applies to egress "allowlist" only`},
		{name: "egressNetwork without allowlist", src: inst("network: {egress: \"none\", «egressNetwork: \"corp\"}"),
			path: "instances.a.network.egressNetwork", msg: `egressNetwork applies to egress "allowlist" only, and egress is "none"`},
		{name: "upstreamProxy without allowlist", src: inst("network: {«upstreamProxy: \"http://proxy:3128\"}"),
			path: "instances.a.network.upstreamProxy", msg: `upstreamProxy applies to egress "allowlist" only`},
		{name: "upstreamProxy not http", src: al("«upstreamProxy: \"https://proxy:3128\""),
			path: "instances.a.network.upstreamProxy", msg: `upstreamProxy "https://proxy:3128" must be http://host:port`},
		{name: "upstreamProxy without port", src: al("«upstreamProxy: \"http://proxy\""),
			path: "instances.a.network.upstreamProxy", msg: `must be http://host:port, with the port`},
		{name: "upstreamProxy with credentials", src: al("«upstreamProxy: \"http://u:p@proxy:3128\""),
			path: "instances.a.network.upstreamProxy", msg: `must be http://host:port`},
		{name: "udp port behind the forwarder", src: al("ports: [{container: 53, «protocol: \"udp\"}]"),
			path: "instances.a.network.ports[0].protocol", msg: `relays tcp only`},
		{name: "bad entry in defaults", src: fleetHead + "defaults: network: {egress: \"allowlist\", allow: [«\"x*.example.com\"]}\ninstances: a: role: image: \"x\"\n",
			path: "defaults.network.allow[0]", msg: `a wildcard is allowed only as the whole first label`},
		{name: "duplicate host port across egress modes", src: fleetHead + "instances: {\n\ta: {role: image: \"x\", network: {egress: \"none\", ports: [{container: 80, host: 8080}]}}\n\tb: {role: image: \"x\", network: {egress: \"allowlist\", ports: [{container: 80, «host: 8080}]}}\n}\n",
			path: "instances.b.network.ports[0].host", msg: `host port 127.0.0.1:8080/tcp is already published by instance "a" (network.ports[0])`},
		{name: "unknown egress mode", src: inst("network: «egress: \"proxy\""),
			path: "instances.a.network.egress", msg: `egress must be one of "open", "none", "allowlist"`},
	})
}

func TestLoadMergesEgressDefaults(t *testing.T) {
	src := fleetHead + `defaults: network: {egress: "allowlist", allow: ["@github"], egressNetwork: "corp", upstreamProxy: "http://proxy.corp:3128"}
instances: {
	a: {role: image: "x", agent: "claude", network: allow: ["@agent", "example.com:8443"]}
	b: {role: image: "x"}
	c: {role: image: "x", network: egress: "none"}
}
`
	fx := newFixture(t, map[string]string{"f.cue": src})
	res, diags := fx.load(t, fx.opts(), "f.cue")
	if diags != nil {
		t.Fatalf("rejected:\n%s", dump(diags))
	}
	a, b := res.Fleet.Instances["a"].Network, res.Fleet.Instances["b"].Network
	want := schema.Network{Egress: "allowlist", Allow: []string{"@agent", "example.com:8443"}, EgressNetwork: "corp", UpstreamProxy: "http://proxy.corp:3128"}
	if a.Egress != want.Egress || len(a.Allow) != 2 || a.Allow[0] != "@agent" || a.EgressNetwork != "corp" || a.UpstreamProxy != want.UpstreamProxy {
		t.Errorf("a: got %+v, want %+v", a, want)
	}
	if len(b.Allow) != 1 || b.Allow[0] != "@github" || b.EgressNetwork != "corp" {
		t.Errorf("b: got %+v", b)
	}
	// An instance that sets its own mode drops the inherited allowlist fields.
	if c := res.Fleet.Instances["c"].Network; c.Egress != "none" || c.Allow != nil || c.EgressNetwork != "" || c.UpstreamProxy != "" {
		t.Errorf("c: got %+v", c)
	}
}
