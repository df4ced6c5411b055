//go:build darwin

package hostpath

import (
	"net"
	"syscall"
	"time"
)

// From macOS's <sys/un.h>: the socket option level of local sockets and
// the option that reads the peer's process ID.
const (
	solLocal     = 0
	localPeerPID = 0x002
)

// SocketPeer connects to the Unix socket at p and returns the process ID of
// the process that serves it (LOCAL_PEERPID: on macOS an engine's socket is
// served by its helper on the Mac, whatever the socket is called), or false
// when nobody answers within timeout. It sends nothing.
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
		if v, err := syscall.GetsockoptInt(int(fd), solLocal, localPeerPID); err == nil {
			pid = v
		}
	})
	return pid, cerr == nil && pid > 0
}
