//go:build unix

package reconciler

import (
	"io/fs"
	"syscall"
)

// inodeOf is a file's inode number (0 where the system reports none).
func inodeOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
