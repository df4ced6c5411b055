//go:build darwin

package credentials

import "syscall"

// memoryChecked: on macOS a RAM disk has the same filesystem types as a
// disk, so jackin cannot tell one: it asks for BaseEnv to be set and
// trusts the operator's choice.
var memoryChecked = false

// isTmpfs refuses a volume that ignores ownership (where a 0700 directory
// keeps no other user out); anything else is the operator's word.
func isTmpfs(dir string) (bool, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false, err
	}
	if err := ownershipHonoured(st.Flags, dir); err != nil {
		return false, err
	}
	return true, nil
}
