package manifests

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackin-dev/jackin/schema"
)

// Tests for the containment holes of issue 22 that validation closes: a
// source inside a directory an agent can write (item 1), hard links and
// engine sockets under other names (item 3), jackin's own state (item 7)
// and the sensitive-path gaps (item 8). Each case is the attack's manifest.

// guardOpts are the fixture's options with jackin's state, its secrets and
// the "engine" socket inside the fixture, so the tests touch no real one.
func guardOpts(fx fixture) Options {
	o := fx.opts()
	o.StateDir = filepath.Join(fx.dir, "state")
	o.SecretsDir = filepath.Join(fx.dir, "shm", "jackin-0")
	o.EngineSockets = []string{filepath.Join(fx.dir, "engine.sock")}
	return o
}

func mkdirs(t *testing.T, fx fixture, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(fx.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, fx fixture, name, content string) {
	t.Helper()
	p := filepath.Join(fx.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func link(t *testing.T, fx fixture, target, name string) {
	t.Helper()
	if err := os.Link(filepath.Join(fx.dir, target), filepath.Join(fx.dir, name)); err != nil {
		t.Fatal(err)
	}
}

// engine listens on the fixture's engine socket: the test process plays
// the Docker engine, so any other socket it serves is "the engine's".
func engine(t *testing.T, fx fixture, name string) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(fx.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
}

type guardCase struct {
	name  string
	src   string // f.cue; « marks the expected position
	setup func(t *testing.T, fx fixture)
	path  string
	msg   string // "" means the manifest must load
}

func runGuardCases(t *testing.T, cases []guardCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fx := newFixture(t, map[string]string{"f.cue": c.src, "home/": "", "state/": "", "shm/jackin-0/": ""})
			engine(t, fx, "engine.sock")
			if c.setup != nil {
				c.setup(t, fx)
			}
			_, diags := fx.load(t, guardOpts(fx), "f.cue")
			if c.msg == "" {
				if diags != nil {
					t.Fatalf("want the manifest to load, got:\n%s", dump(diags))
				}
				return
			}
			if diags == nil {
				t.Fatal("the manifest was accepted")
			}
			expect(t, diags, fx.where, c.path, fx.expand(c.msg))
		})
	}
}

func TestSourcesInsideAgentWritableDirectoriesAreRefused(t *testing.T) {
	work := func(t *testing.T, fx fixture) { mkdirs(t, fx, "work/cache", "workshop", "work/ctx") }
	runGuardCases(t, []guardCase{
		{name: "same instance: ./work rw and ./work/cache", setup: work,
			src:  fleetHead + `instances: a: {role: image: "x", mounts: [{src: "./work", dst: "/w", mode: "rw"}, {«src: "./work/cache", dst: "/cache", mode: "rw"}]}` + "\n",
			path: "instances.a.mounts[1].src", msg: `$DIR/work/cache lies inside $DIR/work, which instance "a" can write (mounts[0] (read-write))`},
		{name: "cross instance: another agent's rw mount holds the source", setup: work,
			src: fleetHead + `instances: {
	a: {role: image: "x", mounts: [{src: "./work", dst: "/w", mode: "rw"}]}
	b: {role: image: "x", mounts: [{«src: "./work/cache", dst: "/cache", mode: "ro"}]}
}` + "\n",
			path: "instances.b.mounts[0].src", msg: `lies inside $DIR/work, which instance "a" can write`},
		{name: "cross instance through a symlink to the inner path", setup: func(t *testing.T, fx fixture) {
			work(t, fx)
			fx.symlink(t, "innocent", "$DIR/work/cache")
		},
			src: fleetHead + `instances: {
	a: {role: image: "x", mounts: [{src: "./work", dst: "/w", mode: "rw"}]}
	b: {role: image: "x", mounts: [{«src: "./innocent", dst: "/cache", mode: "ro"}]}
}` + "\n",
			path: "instances.b.mounts[0].src", msg: `lies inside $DIR/work`},
		{name: "an ephemeral seed inside a writable directory", setup: work,
			src: fleetHead + `instances: {
	a: {role: image: "x", mounts: [{src: "./work", dst: "/w", mode: "rw"}]}
	b: {role: image: "x", mounts: [{«src: "./work/cache", dst: "/seed", mode: "ephemeral"}]}
}` + "\n",
			path: "instances.b.mounts[0].src", msg: `lies inside $DIR/work`},
		{name: "a build context inside a writable directory", setup: func(t *testing.T, fx fixture) {
			work(t, fx)
			writeFile(t, fx, "work/ctx/Dockerfile", "FROM scratch\n")
		},
			src: fleetHead + `instances: {
	a: {role: image: "x", mounts: [{src: "./work", dst: "/w", mode: "rw"}]}
	b: {role: build: «context: "./work/ctx"}
}` + "\n",
			path: "instances.b.role.build.context", msg: `the build context $DIR/work/ctx lies inside $DIR/work`},
		{name: "a credential file inside a writable directory", setup: func(t *testing.T, fx fixture) {
			work(t, fx)
			writeFile(t, fx, "work/token", "t0ken-value-1\n")
		},
			src: fleetHead + `instances: {
	a: {role: image: "x", mounts: [{src: "./work", dst: "/w", mode: "rw"}]}
	b: {role: image: "x", credentials: API_TOKEN: from: «file: "./work/token"}
}` + "\n",
			path: "instances.b.credentials.API_TOKEN.from.file", msg: `the credential file $DIR/work/token lies inside $DIR/work`},
		{name: "a credential command inside a writable directory", setup: func(t *testing.T, fx fixture) {
			work(t, fx)
			writeFile(t, fx, "work/get-token", "#!/bin/sh\necho t0ken\n")
			if err := os.Chmod(filepath.Join(fx.dir, "work", "get-token"), 0o755); err != nil {
				t.Fatal(err)
			}
		},
			src: fleetHead + `instances: {
	a: {role: image: "x", mounts: [{src: "./work", dst: "/w", mode: "rw"}]}
	b: {role: image: "x", credentials: API_TOKEN: from: command: [«"./work/get-token"]}
}` + "\n",
			path: "instances.b.credentials.API_TOKEN.from.command[0]", msg: `the credential command $DIR/work/get-token lies inside $DIR/work, which instance "a" can write`},
		{name: "the same directory read-only elsewhere is fine", setup: work,
			src: fleetHead + `instances: {
	a: {role: image: "x", mounts: [{src: "./work", dst: "/w", mode: "rw"}]}
	b: {role: image: "x", mounts: [{src: "./work", dst: "/w", mode: "ro"}, {src: "./workshop", dst: "/s", mode: "ro"}]}
}` + "\n"},
		{name: "a source inside a read-only mount is fine", setup: work,
			src: fleetHead + `instances: a: {role: image: "x", mounts: [{src: "./work", dst: "/w", mode: "ro"}, {src: "./work/cache", dst: "/cache", mode: "rw"}]}` + "\n"},
	})
}

func TestHardLinksAndEngineSocketsAreRefused(t *testing.T) {
	sshKey := func(t *testing.T, fx fixture) {
		writeFile(t, fx, "home/.ssh/id_rsa", "-----BEGIN OPENSSH PRIVATE KEY-----\n")
		mkdirs(t, fx, "d")
	}
	runGuardCases(t, []guardCase{
		{name: "ln docker.sock ./hs", setup: func(t *testing.T, fx fixture) { link(t, fx, "engine.sock", "hs") },
			src:  inst(`mounts: [{«src: "./hs", dst: "/hs", mode: "rw", allowSensitive: true}]`),
			path: "instances.a.mounts[0].src", msg: "is the Docker socket $DIR/engine.sock (the same file under another name"},
		{name: "a directory holding a hard link to the socket", setup: func(t *testing.T, fx fixture) {
			mkdirs(t, fx, "d/deep")
			link(t, fx, "engine.sock", "d/deep/hs")
		},
			src:  inst(`mounts: [{«src: "./d", dst: "/d", mode: "ro"}]`),
			path: "instances.a.mounts[0].src", msg: "contains deep/hs, which is the Docker socket $DIR/engine.sock under another name"},
		{name: "a socket the engine's process serves under another name", setup: func(t *testing.T, fx fixture) {
			mkdirs(t, fx, "d")
			engine(t, fx, "d/api.sock")
		},
			src:  inst(`mounts: [{«src: "./d", dst: "/d", mode: "ro", allowSensitive: true}]`),
			path: "instances.a.mounts[0].src", msg: "contains the socket api.sock, served by the Docker engine's process"},
		{name: "that socket mounted by itself", setup: func(t *testing.T, fx fixture) { engine(t, fx, "api.sock") },
			src:  inst(`mounts: [{«src: "./api.sock", dst: "/api.sock", mode: "rw"}]`),
			path: "instances.a.mounts[0].src", msg: "is a socket served by the Docker engine's process"},
		{name: "ln ~/.ssh/id_rsa ./k", setup: func(t *testing.T, fx fixture) {
			sshKey(t, fx)
			link(t, fx, "home/.ssh/id_rsa", "k")
		},
			src:  inst(`mounts: [{«src: "./k", dst: "/k", mode: "ro"}]`),
			path: "instances.a.mounts[0].src", msg: "is ~/.ssh (SSH keys)'s id_rsa (a hard link to it)"},
		{name: "a directory holding a hard link to ~/.ssh/id_rsa", setup: func(t *testing.T, fx fixture) {
			sshKey(t, fx)
			link(t, fx, "home/.ssh/id_rsa", "d/k")
		},
			src:  inst(`mounts: [{«src: "./d", dst: "/d", mode: "ro"}]`),
			path: "instances.a.mounts[0].src", msg: "contains k, which is ~/.ssh (SSH keys)'s id_rsa under another name"},
		{name: "allowSensitive lets the operator mount the linked key", setup: func(t *testing.T, fx fixture) {
			sshKey(t, fx)
			link(t, fx, "home/.ssh/id_rsa", "k")
		},
			src: inst(`mounts: [{src: "./k", dst: "/k", mode: "ro", allowSensitive: true}]`)},
		{name: "a plain socket of someone else is fine", setup: func(t *testing.T, fx fixture) {
			mkdirs(t, fx, "d")
			// Not served by this process: a socket file nobody listens on.
			ln, err := net.Listen("unix", filepath.Join(fx.dir, "d", "x.sock"))
			if err != nil {
				t.Fatal(err)
			}
			ln.(*net.UnixListener).SetUnlinkOnClose(false)
			ln.Close()
		},
			src: inst(`mounts: [{src: "./d", dst: "/d", mode: "ro"}]`)},
	})
}

func TestJackinStateIsNeverAMountSource(t *testing.T) {
	key := func(t *testing.T, fx fixture) {
		writeFile(t, fx, "state/egress/t/a/ca-key.pem", "-----BEGIN EC PRIVATE KEY-----\n")
		writeFile(t, fx, "state/egress/t/a/policy.json", "{}\n")
		mkdirs(t, fx, "d")
	}
	never := "allowSensitive does not change that"
	runGuardCases(t, []guardCase{
		{name: "the state dir", setup: key,
			src:  inst(`mounts: [{«src: "./state", dst: "/s", mode: "rw", allowSensitive: true}]`),
			path: "instances.a.mounts[0].src", msg: "exposes $DIR/state (jackin's state"},
		{name: "a policy directory inside it", setup: key,
			src:  inst(`mounts: [{«src: "./state/egress/t/a", dst: "/p", mode: "rw", allowSensitive: true}]`),
			path: "instances.a.mounts[0].src", msg: never},
		{name: "a parent of it", setup: key,
			src:  inst(`mounts: [{«src: "$DIR", dst: "/all", mode: "ro", allowSensitive: true}]`),
			path: "instances.a.mounts[0].src", msg: "exposes $DIR/state (jackin's state: keys, certificates, egress policies and history), which it contains"},
		{name: "a symlink to it", setup: func(t *testing.T, fx fixture) {
			key(t, fx)
			fx.symlink(t, "innocent", "$DIR/state/egress")
		},
			src:  inst(`mounts: [{«src: "./innocent", dst: "/p", mode: "rw", allowSensitive: true}]`),
			path: "instances.a.mounts[0].src", msg: never},
		{name: "a hard link to a key in it", setup: func(t *testing.T, fx fixture) {
			key(t, fx)
			link(t, fx, "state/egress/t/a/ca-key.pem", "d/k.pem")
		},
			src:  inst(`mounts: [{«src: "./d", dst: "/d", mode: "ro", allowSensitive: true}]`),
			path: "instances.a.mounts[0].src", msg: "contains k.pem, which is $DIR/state (jackin's state"},
		{name: "the secrets base", setup: key,
			src:  inst(`mounts: [{«src: "./shm/jackin-0", dst: "/s", mode: "ro", allowSensitive: true}]`),
			path: "instances.a.mounts[0].src", msg: "exposes $DIR/shm/jackin-0 (jackin's credential values)"},
		{name: "the shared-memory directory that holds it", setup: key,
			src:  inst(`mounts: [{«src: "./shm", dst: "/s", mode: "rw", allowSensitive: true}]`),
			path: "instances.a.mounts[0].src", msg: "exposes $DIR/shm/jackin-0 (jackin's credential values), which it contains"},
	})
}

func TestMoreSensitivePathsAreRefused(t *testing.T) {
	homeFiles := func(t *testing.T, fx fixture) {
		mkdirs(t, fx, "home/Library/Keychains", "home/.orbstack", "home/.claude", "home/.codex", "home/.local/share/amp", "home/.local/share/opencode", "home/.gemini", "home/.config/nvim", "home/src")
		writeFile(t, fx, "home/.pgpass", "*:*:*:*:pw\n")
	}
	var cases []guardCase
	for _, c := range []struct{ src, msg string }{
		{"~/.claude", "exposes ~/.claude (Claude Code login)"},
		{"~/.codex", "exposes ~/.codex (Codex login)"},
		{"~/.local/share/amp", "exposes ~/.local/share/amp (Amp login)"},
		{"~/.local/share/opencode", "exposes ~/.local/share/opencode (OpenCode login)"},
		{"~/.gemini", "exposes ~/.gemini (Gemini CLI login)"},
		{"~/.pgpass", "exposes ~/.pgpass (PostgreSQL passwords)"},
		{"~/.local", "exposes ~/.local/share/amp (Amp login), which it contains"},
		{"~/.config", "exposes ~/.config/gh (GitHub CLI token), which it contains"},
		{"/proc", "exposes /proc (the host's processes"},
		{"/sys", "exposes /sys (the host's kernel"},
		{"/etc", "exposes /etc (the host's configuration)"},
		{"/etc/ssh", "exposes /etc/ssh (the host's SSH keys)"},
		{"/boot", "exposes /boot"},
		{"/var/lib/docker", "exposes /var/lib/docker (the Docker engine's data"},
		{"/home", "exposes every user's home directory under /home"},
		{"/home/someone-else", "exposes /home/someone-else, another user's home directory"},
		{"/root", "exposes /root, the root user's home directory"},
		// macOS.
		{"/Users", "exposes every user's home directory under /Users"},
		{"/Users/someone-else", "exposes /Users/someone-else, another user's home directory"},
		{"/Library/Keychains", "exposes /Library/Keychains (the system's keychains)"},
		{"~/Library/Keychains", "exposes ~/Library/Keychains (macOS keychains)"},
		{"~/.orbstack", "exposes ~/.orbstack (OrbStack's engine socket and its SSH key into the machines)"},
	} {
		cases = append(cases, guardCase{name: c.src, setup: homeFiles,
			src:  inst(`mounts: [{«src: "` + c.src + `", dst: "/x", mode: "ro"}]`),
			path: "instances.a.mounts[0].src", msg: c.msg})
	}
	// With allowSensitive they load (and explain warns); the Docker socket
	// and jackin's own state under /run, /dev and / stay refused.
	for _, src := range []string{"~/.claude", "~/.pgpass", "/etc", "/proc", "/home", "/root"} {
		cases = append(cases, guardCase{name: src + " with allowSensitive", setup: homeFiles,
			src: inst(`mounts: [{src: "` + src + `", dst: "/x", mode: "ro", allowSensitive: true}]`)})
	}
	for _, src := range []string{"/run", "/var/run", "/"} {
		cases = append(cases, guardCase{name: src + " with allowSensitive", setup: homeFiles,
			src:  inst(`mounts: [{«src: "` + src + `", dst: "/x", mode: "ro", allowSensitive: true}]`),
			path: "instances.a.mounts[0].src", msg: "would expose the host Docker socket"})
	}
	// Harmless neighbours still load.
	for _, src := range []string{"~/src", "~/.config/nvim", "/etc/ssl"} {
		cases = append(cases, guardCase{name: src, setup: homeFiles,
			src: inst(`mounts: [{src: "` + src + `", dst: "/x", mode: "ro"}]`)})
	}
	runGuardCases(t, cases)
}

func TestScanCapIsAWarning(t *testing.T) {
	fx := newFixture(t, map[string]string{"f.cue": inst(`mounts: [{src: "./big", dst: "/b", mode: "ro"}]`), "home/": ""})
	mkdirs(t, fx, "big")
	for i := 0; i < 10010; i++ {
		if err := os.WriteFile(filepath.Join(fx.dir, "big", "f"+strconv.Itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, diags := fx.load(t, guardOpts(fx), "f.cue")
	if diags != nil {
		t.Fatalf("want the manifest to load, got:\n%s", dump(diags))
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0].Msg, "only the first 10000 entries") || res.Warnings[0].Path != "instances.a.mounts[0].src" {
		t.Fatalf("want one warning about the scan cap at the src, got %v", res.Warnings)
	}
}

// The engine sockets in a user's own directories (OrbStack's, Docker
// Desktop's on macOS) are guarded by default, whichever engine jackin
// talks to: their directories are never mount sources.
func TestUserEngineSocketsAreGuardedByDefault(t *testing.T) {
	for _, rel := range []string{".orbstack/run/docker.sock", ".docker/run/docker.sock"} {
		t.Run(rel, func(t *testing.T) {
			top := strings.SplitN(rel, "/", 2)[0]
			fx := newFixture(t, map[string]string{"f.cue": inst(`mounts: [{«src: "./home/` + top + `", dst: "/x", mode: "ro", allowSensitive: true}]`), "home/": "", "state/": "", "shm/jackin-0/": ""})
			// A file stands for the socket (a socket path this long is
			// too long to bind): the guard knows it by identity.
			writeFile(t, fx, "home/"+rel, "")
			o := fx.opts()
			o.StateDir = filepath.Join(fx.dir, "state")
			o.SecretsDir = filepath.Join(fx.dir, "shm", "jackin-0")
			o.Home = filepath.Join(fx.dir, "home")
			_, diags := fx.load(t, o, "f.cue")
			if diags == nil {
				t.Fatalf("a mount of ~/%s was accepted", top)
			}
			expect(t, diags, fx.where, "instances.a.mounts[0].src", "the Docker socket "+filepath.Join(fx.dir, "home", rel))
		})
	}
	// OrbStack installed but stopped: its socket is absent, its directory
	// is there, and the socket comes back when OrbStack starts.
	fx := newFixture(t, map[string]string{"f.cue": inst(`mounts: [{«src: "./home/.orbstack", dst: "/x", mode: "ro", allowSensitive: true}]`), "home/": "", "state/": "", "shm/jackin-0/": ""})
	mkdirs(t, fx, "home/.orbstack/run")
	o := fx.opts()
	o.StateDir, o.SecretsDir, o.Home = filepath.Join(fx.dir, "state"), filepath.Join(fx.dir, "shm", "jackin-0"), filepath.Join(fx.dir, "home")
	if _, diags := fx.load(t, o, "f.cue"); diags == nil {
		t.Error("a mount of a stopped OrbStack's directory was accepted")
	} else {
		expect(t, diags, fx.where, "instances.a.mounts[0].src", "would expose the host Docker socket "+filepath.Join(fx.dir, "home", ".orbstack", "run", "docker.sock"))
	}
	if got := userEngineSockets("/h", "/run/user/1000"); !strings.Contains(strings.Join(got, " "), "/h/.orbstack/run/docker.sock") || !strings.Contains(strings.Join(got, " "), "/run/user/1000/docker.sock") {
		t.Errorf("user engine sockets %v", got)
	}
}

// jackin's ssh control sockets (each the operator's access to a remote
// engine's host) are never a mount source, nor is a directory holding them.
func TestSSHControlDirIsNeverAMountSource(t *testing.T) {
	t.Setenv("TMPDIR", "/tmp")
	dir := schema.SSHControlDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{dir, filepath.Dir(dir)} {
		fx := newFixture(t, map[string]string{"f.cue": inst(`mounts: [{«src: "` + src + `", dst: "/x", mode: "ro", allowSensitive: true}]`), "home/": "", "state/": "", "shm/jackin-0/": ""})
		_, diags := fx.load(t, guardOpts(fx), "f.cue")
		if diags == nil {
			t.Fatalf("a mount of %s was accepted", src)
		}
		expect(t, diags, fx.where, "instances.a.mounts[0].src", dir+" (jackin's ssh control sockets")
	}
}
