//go:build unix

package manifests

import "syscall"

// nonBlock opens without waiting: open(2) of a FIFO with no writer
// returns at once instead of blocking until one comes.
const nonBlock = syscall.O_NONBLOCK
