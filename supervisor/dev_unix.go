//go:build unix

package supervisor

import (
	"io/fs"
	"syscall"
)

func devOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev)
	}
	return 0
}
