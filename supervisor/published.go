package supervisor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode"

	"github.com/jackin-dev/jackin/agentstate"
)

// HostDir is an instance's agent directory on the host, under jackin's
// state dir: mounted read-write at AgentDir in the agent container.
func HostDir(stateDir, fleet, instance string) string {
	return filepath.Join(stateDir, "agents", fleet, instance)
}

// maxPublished bounds a published file jackin reads.
const maxPublished = 64 << 10

// ReadPublished reads the state an agent's supervisor published in dir
// on the host. Everything in dir is the agent's to write: the file is
// opened without following links or blocking, must be a small regular
// file, and every field is checked and cleaned before anyone sees it.
// A missing file is os.ErrNotExist.
func ReadPublished(dir string) (Status, error) {
	b, err := readHostile(filepath.Join(dir, StateFile), maxPublished)
	if err != nil {
		return Status{}, err
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return Status{}, fmt.Errorf("%s: %w", StateFile, err)
	}
	return Clean(st), nil
}

// ReadEvents returns the state changes published in dir, oldest first
// (the rotated file, then the current one), each cleaned. Lines that do
// not parse are skipped.
func ReadEvents(dir string) ([]Status, error) {
	var out []Status
	for _, name := range []string{EventsFile + ".1", EventsFile} {
		b, err := readHostile(filepath.Join(dir, name), 2*maxEvents)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return out, err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 64<<10), maxPublished)
		for sc.Scan() {
			var st Status
			if json.Unmarshal(sc.Bytes(), &st) == nil {
				out = append(out, Clean(st))
			}
		}
	}
	return out, nil
}

func readHostile(path string, limit int64) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil, os.ErrNotExist
		}
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", filepath.Base(path))
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", filepath.Base(path), limit)
	}
	return io.ReadAll(io.LimitReader(f, limit))
}

// Clean keeps a status the agent could have written fit to show: a known
// state, short printable text, no terminal escapes.
func Clean(st Status) Status {
	if !knownState(st.State) {
		st.State = string(agentstate.StateUnknown)
	}
	st.Runtime = printable(st.Runtime, 40)
	st.Detail = printable(st.Detail, 64)
	st.Source = printable(st.Source, 16)
	st.Boot = printable(st.Boot, 32)
	if len(st.Warnings) > 10 {
		st.Warnings = st.Warnings[:10]
	}
	for i, w := range st.Warnings {
		st.Warnings[i] = printable(w, 300)
	}
	if st.Clients < 0 {
		st.Clients = 0
	}
	return st
}

func knownState(s string) bool {
	switch agentstate.State(s) {
	case agentstate.StateStarting, agentstate.StateIdle, agentstate.StateWorking, agentstate.StateBlocked,
		agentstate.StateDone, agentstate.StateExited, agentstate.StateUnknown:
		return true
	}
	return false
}

func printable(s string, max int) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= max {
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}
