//go:build !linux && !darwin

package orbstack

// freeSpace cannot be read here: the spool is tried, and a full disk
// falls back to streaming.
func freeSpace(string) (uint64, bool) { return 0, false }
