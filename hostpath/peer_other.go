//go:build !linux && !darwin

package hostpath

import "time"

// SocketPeer is not available on this platform: sockets are compared by
// identity only.
func SocketPeer(string, time.Duration) (int, bool) { return 0, false }
