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
	return fmt.Sprintf("jackin %s (pid %d on %s) since %s", h.Verb, h.PID, h.Host, h.Since.Local().Format(time.RFC3339))
}

// Lock is a held per-fleet writer lock. It is a kernel file lock, so the
// kernel releases it when the holder dies, even by SIGKILL.
type Lock struct {
	f *os.File
}

const lockPoll = 50 * time.Millisecond

// AcquireLock takes the writer lock of fleet under dir/locks, waiting up to
// timeout. onWait is called when waiting starts and whenever the holder
// changes while waiting.
func AcquireLock(ctx context.Context, dir, fleet, verb string, timeout time.Duration, onWait func(Holder)) (*Lock, error) {
	if !validFleetName(fleet) {
		return nil, fmt.Errorf("invalid fleet name %q: a lowercase DNS label is expected", fleet)
	}
	lockDir := filepath.Join(dir, "locks")
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return nil, fmt.Errorf("create lock dir: %w", err)
	}
	path := filepath.Join(lockDir, fleet+".lock")
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
		holder := readHolder(f)
		if (!waiting || holder != last) && onWait != nil {
			onWait(holder)
		}
		waiting, last = true, holder
		if !time.Now().Before(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("%w: fleet %q is locked by %s; waited %s", ErrLockTimeout, fleet, holder, timeout)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("waiting for the lock of fleet %q: %w", fleet, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
	host, _ := os.Hostname()
	b, _ := json.Marshal(Holder{PID: os.Getpid(), Host: host, Verb: verb, Since: time.Now().UTC()})
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt(b, 0)
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

// readHolder reads the holder record; a holder still writing it reads as unknown.
func readHolder(f *os.File) Holder {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 4096))
	var h Holder
	if err != nil || json.Unmarshal(b, &h) != nil {
		return Holder{Verb: "(unknown)", Host: "?"}
	}
	return h
}

// Release clears the holder record and unlocks. The file stays: removing it
// would let a waiter lock an unlinked inode while a newcomer locks a new one.
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
	return err
}
