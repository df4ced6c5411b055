package manifests

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// gateExecutable is the running binary itself, even if the file it was
// started from has since been replaced (an upgrade during `jackin watch`).
func gateExecutable() (string, error) {
	if _, err := os.Stat("/proc/self/exe"); err == nil {
		return "/proc/self/exe", nil
	}
	return os.Executable()
}

// limitAddressSpace caps the evaluating process's address space at what it
// maps now plus twice the budget: a backstop to the heap watch, so that one
// allocation far over the budget fails at once (the runtime then dies with
// "out of memory") rather than being committed.
func limitAddressSpace(budget int64) {
	now := vmSize()
	if now <= 0 {
		return
	}
	limit := uint64(now) + 2*uint64(budget)
	var cur syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &cur); err != nil || (cur.Max != ^uint64(0) && cur.Max < limit) {
		return
	}
	syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: limit, Max: cur.Max})
}

// vmSize is this process's mapped address space, from /proc/self/status.
func vmSize() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmSize:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
