//go:build linux || darwin

package hostpath

import (
	"net"
	"time"
)

// SocketPeer connects to the Unix socket at p and returns the process ID of
// the process that serves it (peerPID: the system's own way to ask), or
// false when nobody answers within timeout. It sends nothing: the
// connection is closed at once.
func SocketPeer(p string, timeout time.Duration) (int, bool) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("unix", p)
	if err != nil {
		return 0, false
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0, false
	}
	pid := 0
	cerr := raw.Control(func(fd uintptr) { pid = peerPID(int(fd)) })
	return pid, cerr == nil && pid > 0
}
