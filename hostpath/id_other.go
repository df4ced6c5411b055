//go:build !unix

package hostpath

import "io/fs"

func idOf(fs.FileInfo) (ID, bool) { return ID{}, false }

// Nlink is the number of hard links to fi (1 when the platform does not say).
func Nlink(fs.FileInfo) uint64 { return 1 }
