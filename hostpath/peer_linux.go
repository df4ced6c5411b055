//go:build linux

package hostpath

import (
	"net"
	"syscall"
	"time"
)

// SocketPeer connects to the Unix socket at p and returns the process ID of
// the process that serves it (SO_PEERCRED), or false when nobody answers
// within timeout. It sends nothing: the connection is closed at once.
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
	cerr := raw.Control(func(fd uintptr) {
		if cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid, cerr == nil && pid > 0
}
