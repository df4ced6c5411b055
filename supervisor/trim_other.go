//go:build !linux

package supervisor

// trimText does nothing off Linux: the supervisor runs as PID 1 of a Linux
// container only, and this build of jackin is the host's.
func trimText() {}
