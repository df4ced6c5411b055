package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ErrLockTimeout is returned when another writer holds a fleet's lock for
// longer than the caller would wait.
var ErrLockTimeout = errors.New("timed out waiting for the fleet lock")

// Holder says who holds a fleet lock.
type Holder struct {
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	Verb  string    `json:"verb"`
	Since time.Time `json:"since"`
}

func (h Holder) String() string {
	if h.PID == 0 {
		return "another jackin (holder not recorded yet)"
	}
	return fmt.Sprintf("jackin %s (pid %d on %s) since %s", h.Verb, h.PID, h.Host, h.Since.Local().Format(time.RFC3339))
}

// Lock is a held per-fleet writer lock. It is a kernel file lock, so the
// kernel releases it when the holder dies, even by SIGKILL.
type Lock struct {
	f *os.File
}

// lockPoll is how often a waiter retries the lock.
const lockPoll = 100 * time.Millisecond

// AcquireLock takes the writer lock of fleet, a file lock on
// dir/locks/<fleet>.lock, waiting up to timeout (<= 0: try once). onWait, if
// not nil, is called with the holder when waiting starts and whenever the
// holder changes while waiting. Past the timeout the error wraps
// ErrLockTimeout and names the holder; ctx ends the wait early.
//
// The lock belongs to the open file, not the process: a second AcquireLock
// in the same process waits like any other writer. The kernel drops it when
// the holder exits or dies, so a killed writer never leaves it stale.
func AcquireLock(ctx context.Context, dir, fleet, verb string, timeout time.Duration, onWait func(Holder)) (*Lock, error) {
	if !validFleetName(fleet) {
		return nil, fmt.Errorf("invalid fleet name %q: a lowercase DNS label is expected", fleet)
	}
	lockDir := filepath.Join(dir, "locks")
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return nil, fmt.Errorf("create lock dir: %w", err)
	}
	path := filepath.Join(lockDir, fleet+".lock")
	// Go opens files close-on-exec: processes jackin starts never inherit the lock.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	deadline := time.Now().Add(timeout)
	var last Holder
	waiting := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// A holder between taking the lock and writing its record reads
		// as unknown: report that only if there is nothing better yet.
		holder, ok := readHolder(f)
		if !ok && waiting {
			holder = last
		}
		if onWait != nil && (!waiting || holder != last) {
			onWait(holder)
		}
		waiting, last = true, holder
		remaining := time.Until(deadline)
		if remaining <= 0 {
			_ = f.Close()
			return nil, fmt.Errorf("%w: fleet %q is locked by %s; waited %s", ErrLockTimeout, fleet, holder, timeout)
		}
		t := time.NewTimer(min(lockPoll, remaining))
		select {
		case <-ctx.Done():
			t.Stop()
			_ = f.Close()
			return nil, fmt.Errorf("waiting for the lock of fleet %q (held by %s): %w", fleet, holder, ctx.Err())
		case <-t.C:
		}
	}
	host, _ := os.Hostname()
	b, err := json.Marshal(Holder{PID: os.Getpid(), Host: host, Verb: verb, Since: time.Now().UTC()})
	if err == nil {
		err = f.Truncate(0)
	}
	if err == nil {
		_, err = f.WriteAt(b, 0)
	}
	if err != nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
		return nil, fmt.Errorf("record the holder of %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

func validFleetName(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// readHolder reads the holder record; ok is false while there is none (the
// holder has not written it yet, or is releasing).
func readHolder(f *os.File) (h Holder, ok bool) {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 4096))
	if err != nil || json.Unmarshal(b, &h) != nil || h.PID == 0 {
		return Holder{Verb: "(unknown)", Host: "?"}, false
	}
	return h, true
}

// Release clears the holder record and unlocks. The file stays: removing it
// would let a waiter lock an unlinked inode while a newcomer locks a new one.
// Releasing twice, or a nil Lock, is a no-op.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if err != nil {
		return fmt.Errorf("release fleet lock: %w", err)
	}
	return nil
}
