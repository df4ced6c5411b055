//go:build linux || darwin

package orbstack

import "syscall"

// freeSpace is the space left to an unprivileged writer in dir's file
// system; ok is false when it cannot be read.
func freeSpace(dir string) (free uint64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
