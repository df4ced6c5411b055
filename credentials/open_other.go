//go:build !unix

package credentials

// nonBlock is unneeded here: no FIFO blocks an open.
const nonBlock = 0
