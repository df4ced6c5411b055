package docker

import (
	"slices"
	"strings"
	"testing"
)

// TestSSHCommand: an ssh:// engine is reached by the operator's ssh (or
// JACKIN_SSH_COMMAND's program) running docker system dial-stdio, with
// the user and port as ssh options and the host after "--"; addresses ssh
// could take for options, passwords and paths are refused.
func TestSSHCommand(t *testing.T) {
	t.Setenv(SSHCommandEnv, "")
	argv, err := SSHCommand("ssh://jackin@build1.example:2222")
	if err != nil {
		t.Fatal(err)
	}
	if argv[0] != "ssh" || !slices.Contains(argv, "BatchMode=yes") {
		t.Errorf("argv %q: want the operator's ssh in batch mode", argv)
	}
	tail := strings.Join(argv[len(argv)-5:], " ")
	if tail != "-- build1.example docker system dial-stdio" {
		t.Errorf("argv ends %q", tail)
	}
	if i := slices.Index(argv, "-l"); i < 0 || argv[i+1] != "jackin" {
		t.Errorf("argv %q: no -l jackin", argv)
	}
	if i := slices.Index(argv, "-p"); i < 0 || argv[i+1] != "2222" {
		t.Errorf("argv %q: no -p 2222", argv)
	}

	t.Setenv(SSHCommandEnv, "ssh -F /tmp/test/ssh_config")
	argv, err = SSHCommand("ssh://r1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(argv[:3], " ") != "ssh -F /tmp/test/ssh_config" || slices.Contains(argv, "-l") {
		t.Errorf("with %s: argv %q", SSHCommandEnv, argv)
	}

	for host, want := range map[string]string{
		"ssh://u:secret@h":       "a password in the address is refused",
		"ssh://-oProxyCommand=x": "names no host",
		"ssh://-l@h":             "is not a user name",
		"ssh://h/path":           "no path, query or fragment",
		"ssh://h:99999":          "is not a port number",
		"tcp://h:2376":           "is not an ssh:// address",
	} {
		_, err := SSHCommand(host)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", host, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error repeats the password: %v", host, err)
		}
	}
}

// TestCheckEngineHost: tcp:// needs TLS, TLS is for tcp:// only, unix://
// needs an absolute path, other schemes are refused.
func TestCheckEngineHost(t *testing.T) {
	for _, c := range []struct {
		host string
		tls  bool
		want string
	}{
		{"tcp://10.0.0.5:2375", false, "requires tls"},
		{"tcp://10.0.0.5", true, "is not host:port"},
		{"ssh://h", true, "tls applies to tcp:// engines only"},
		{"unix://run/d.sock", false, "not an absolute socket path"},
		{"http://h", false, "the scheme must be"},
		{"tcp://10.0.0.5:2376", true, ""},
		{"unix:///run/d.sock", false, ""},
		{"ssh://u@h:22", false, ""},
	} {
		err := CheckEngineHost(c.host, c.tls)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s tls=%v: %v, want %q", c.host, c.tls, err, c.want)
		}
	}
}
