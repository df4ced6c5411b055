package schema

import (
	"strings"
	"testing"
)

// The ssh control directory moves to /tmp where a control socket's path
// under $TMPDIR would not fit a unix socket address (macOS's /var/folders).
func TestSSHControlDirFitsASocketPath(t *testing.T) {
	t.Setenv("TMPDIR", "/tmp")
	if got := SSHControlDir(); !strings.HasPrefix(got, "/tmp/jackin-ssh-") {
		t.Errorf("short TMPDIR: %s", got)
	}
	long := "/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T"
	t.Setenv("TMPDIR", long)
	got := SSHControlDir()
	if strings.HasPrefix(got, long) || len(got)+sshSocketTail >= maxSocketPath {
		t.Errorf("macOS-length TMPDIR: %s (%d with the socket's name)", got, len(got)+sshSocketTail)
	}
}
