package supervisor

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// trimText drops from this process's resident set the pages of its own
// executable it mapped read-only (code and constant data). jackin is one
// binary for every verb; starting it touches far more of it than the
// supervisor's loop ever runs again. The pages stay in the page cache,
// shared by every supervisor on the host (they run the same file), and
// fault back in if they are used. Writable mappings are never touched:
// dropping those would lose their contents.
func trimText() {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// address perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED)
	}
}
