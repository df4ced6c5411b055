//go:build linux || darwin

package reconciler

import (
	"io/fs"
	"syscall"
)

// fileID is a file's inode number and status-change time in nanoseconds:
// unlike the modification time, no one can set the change time back.
func fileID(fi fs.FileInfo) (ino uint64, ctime int64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino), ctimeOf(st)
	}
	return 0, 0
}
