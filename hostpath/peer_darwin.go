//go:build darwin

package hostpath

import "syscall"

// From macOS's <sys/un.h>: the socket option level of local sockets and
// the option that reads the peer's process ID.
const (
	solLocal     = 0
	localPeerPID = 0x002
)

// peerPID is the socket peer's process ID (LOCAL_PEERPID: on macOS an
// engine's socket is served by its helper on the Mac, whatever the socket
// is called), 0 if unknown.
func peerPID(fd int) int {
	v, err := syscall.GetsockoptInt(fd, solLocal, localPeerPID)
	if err != nil {
		return 0
	}
	return v
}
