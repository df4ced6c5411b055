//go:build linux

package hostpath

import "syscall"

// peerPID is the socket peer's process ID (SO_PEERCRED), 0 if unknown.
func peerPID(fd int) int {
	cred, err := syscall.GetsockoptUcred(fd, syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	if err != nil {
		return 0
	}
	return int(cred.Pid)
}
