//go:build !unix

package manifests

// nonBlock is unneeded here: no FIFO blocks an open.
const nonBlock = 0
