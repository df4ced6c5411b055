package credentials

import "syscall"

// tmpfsMagic is TMPFS_MAGIC from linux/magic.h.
const tmpfsMagic = 0x01021994

// memoryChecked: on Linux a tmpfs can be told by its filesystem type (a
// variable so that tests can take the other systems' path).
var memoryChecked = true

func isTmpfs(dir string) (bool, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false, err
	}
	return int64(st.Type) == tmpfsMagic, nil
}
