package manifests

import (
	"path/filepath"
	"testing"
)

// engineHead declares an ssh engine and a tcp one with TLS files the
// fixture writes (tls/ca.pem, tls/cert.pem, tls/key.pem).
const engineHead = fleetHead + "engines: {\n" +
	"  build1: host: \"ssh://jackin@build1.example:2222\"\n" +
	"  sock: host: \"unix:///run/other/docker.sock\"\n" +
	"}\n"

// TestEnginesPlaceInstances: an instance (or defaults) names a declared
// engine; no engine is the local one; a remote instance's host paths are
// the remote host's, taken as written and never looked up here.
func TestEnginesPlaceInstances(t *testing.T) {
	fx := newFixture(t, map[string]string{
		"tls/ca.pem": "ca", "tls/cert.pem": "cert", "tls/key.pem": "key",
		"f.cue": fleetHead + "engines: {\n" +
			"  build1: host: \"ssh://jackin@build1.example:2222\"\n" +
			"  tls1: {host: \"tcp://10.0.0.5:2376\", tls: {ca: \"tls/ca.pem\", cert: \"tls/cert.pem\", key: \"tls/key.pem\"}}\n" +
			"}\n" +
			"defaults: engine: \"build1\"\n" +
			"instances: {\n" +
			"  a: {role: image: \"x\", network: egress: \"none\", mounts: [{src: \"/srv/only/on/build1\", dst: \"/w\", mode: \"rw\"}]}\n" +
			"  b: {role: image: \"x\", engine: \"tls1\", mounts: [{src: \"https://git.example/app.git\", dst: \"/src\", mode: \"clone\", ref: \"main\"}]}\n" +
			"}\n",
	})
	f := fx.mustLoad(t, "f.cue")
	a, b := f.Instances["a"], f.Instances["b"]
	if a.Engine != "build1" || a.EngineSpec == nil || a.EngineSpec.Host != "ssh://jackin@build1.example:2222" {
		t.Fatalf("a: engine %q spec %+v, want build1 from defaults", a.Engine, a.EngineSpec)
	}
	if len(a.Mounts) != 1 || a.Mounts[0].Src != "/srv/only/on/build1" {
		t.Errorf("a: mounts %+v, want the remote path as written", a.Mounts)
	}
	if len(b.Mounts) != 1 || b.Mounts[0].Src != "https://git.example/app.git" || b.Mounts[0].Ref != "main" {
		t.Errorf("b: mounts %+v, want the git URL cloned on the engine", b.Mounts)
	}
	if b.Engine != "tls1" || b.EngineSpec.TLS == nil || b.EngineSpec.TLS.CA != filepath.Join(fx.dir, "tls/ca.pem") {
		t.Errorf("b: engine %q spec %+v, want tls1 with its files resolved against the manifest", b.Engine, b.EngineSpec)
	}
	if len(f.Engines) != 2 {
		t.Errorf("engines %+v, want 2", f.Engines)
	}

	fx = newFixture(t, map[string]string{"f.cue": engineHead + "instances: c: {role: image: \"x\"}\n"})
	c := fx.mustLoad(t, "f.cue").Instances["c"]
	if c.Engine != "" || c.EngineSpec != nil {
		t.Errorf("c: engine %q, want the local engine (none)", c.Engine)
	}
}

// TestEngineRefusals: what cannot work is refused at file:line with the
// reason: an undeclared engine, tcp without TLS, TLS off tcp, a bad
// address, and for an instance on another machine the features that need
// this machine's files.
func TestEngineRefusals(t *testing.T) {
	remote := func(body string) string {
		return engineHead + "instances: a: {role: image: \"x\", engine: \"build1\", " + body + "}\n"
	}
	runRejects(t, []rejectCase{
		{name: "undeclared engine", src: engineHead + "instances: a: {role: image: \"x\", «engine: \"build9\"}\n",
			path: "instances.a.engine", msg: `engine "build9" is not declared under engines (the fleet declares build1, sock)`},
		{name: "no engines at all", src: inst("«engine: \"build1\""),
			path: "instances.a.engine", msg: `the fleet declares none`},
		{name: "tcp without tls", src: fleetHead + "engines: e: «host: \"tcp://10.0.0.5:2375\"\n",
			path: "engines.e.host", msg: "a tcp:// engine requires tls {ca, cert, key}"},
		{name: "tls on ssh", src: fleetHead + "engines: e: {host: \"ssh://h\", «tls: {ca: \"/dev/null\", cert: \"/dev/null\", key: \"/dev/null\"}}\n",
			path: "engines.e.tls", msg: "tls applies to tcp:// engines only"},
		{name: "tls file missing", src: fleetHead + "engines: e: {host: \"tcp://h:2376\", tls: {«ca: \"nope.pem\", cert: \"/dev/null\", key: \"/dev/null\"}}\n",
			path: "engines.e.tls.ca", msg: "cannot be read on this machine"},
		{name: "password in ssh address", src: fleetHead + "engines: e: «host: \"ssh://u:pw@h\"\n",
			path: "engines.e.host", msg: "a password in the address is refused"},
		{name: "ssh host as an option", src: fleetHead + "engines: e: «host: \"ssh://-oProxyCommand=x\"\n",
			path: "engines.e.host", msg: "names no host"},
		{name: "relative unix socket", src: fleetHead + "engines: e: «host: \"unix://run/d.sock\"\n",
			path: "engines.e.host", msg: "not an absolute socket path"},
		{name: "engine on orbstack", src: engineHead + "instances: a: {role: image: \"x\", backend: \"orbstack-isolated\", «engine: \"build1\"}\n",
			path: "instances.a.engine", msg: `this instance has backend: "orbstack-isolated"`},
		{name: "worktree of a path on a remote engine", src: remote("mounts: [{«src: \"/r\", dst: \"/w\", mode: \"worktree\"}]"),
			path: "instances.a.mounts[0].src", msg: `on engine build1 (ssh://jackin@build1.example:2222) a worktree mount clones a git URL into a volume there, before the agent starts`},
		{name: "clone without a network on a remote engine", src: remote("network: egress: \"none\", mounts: [{«src: \"https://git.example/r.git\", dst: \"/w\", mode: \"clone\"}]"),
			path: "instances.a.mounts[0].src", msg: `the instance clones https://git.example/r.git, and egress "none" gives it no network`},
		{name: "relative path on a remote engine", src: remote("mounts: [{«src: \"~/code\", dst: \"/w\", mode: \"rw\"}]"),
			path: "instances.a.mounts[0].src", msg: "give it as an absolute path there"},
		{name: "remote docker socket", src: remote("mounts: [{«src: \"/var/run\", dst: \"/w\", mode: \"ro\"}]"),
			path: "instances.a.mounts[0].src", msg: "the Docker socket of engine build1"},
		{name: "seeded ephemeral on a remote engine", src: remote("mounts: [{«src: \"/seed\", dst: \"/w\", mode: \"ephemeral\"}]"),
			path: "instances.a.mounts[0].src", msg: "copied from this machine into the volume"},
		{name: "allowlist on a remote engine", src: remote("network: «egress: \"allowlist\""),
			path: "instances.a.network.egress", msg: `egress "allowlist" is not available on engine build1`},
		{name: "integrations on a remote engine", src: remote("«integrations: [\"go\"]"),
			path: "instances.a.integrations", msg: "integrations mount this machine's toolchains"},
		{name: "snapshots on a remote engine", src: remote("recovery: «snapshot: \"before-start\""),
			path: "instances.a.recovery.snapshot", msg: "recovery snapshots are taken of this machine's paths"},
		{name: "idle cleanup on a remote engine", src: remote("«idle: {after: \"5m\", action: \"stop\"}"),
			path: "instances.a.idle", msg: "idle cleanup is not available on engine build1 (ssh://jackin@build1.example:2222) yet"},
	})
}
