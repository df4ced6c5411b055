//go:build !linux && !darwin

package recovery

import "io/fs"

// keyOf is an entry's stat data. Without a ctime every entry is racy, so
// every snapshot takes git's index path.
func keyOf(fi fs.FileInfo) statKey {
	return statKey{Mode: uint32(fi.Mode()), Size: fi.Size(), Mtime: fi.ModTime().UnixNano()}
}
