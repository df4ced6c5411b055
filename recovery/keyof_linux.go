package recovery

import (
	"io/fs"
	"syscall"
)

// keyOf is an entry's stat data.
func keyOf(fi fs.FileInfo) statKey {
	k := statKey{Mode: uint32(fi.Mode()), Size: fi.Size(), Mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.Ctime = st.Ctim.Nano()
		k.Ino = uint64(st.Ino)
		k.Dev = uint64(st.Dev)
	}
	return k
}
