package orbstack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/go-logr/logr"
)

// orbCLI runs OrbStack's orb command. Every call is counted and logged at
// verbosity 2.
type orbCLI struct {
	path  string
	log   logr.Logger
	calls atomic.Int64
}

// machine is one entry of `orb list -f json`.
type machine struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Image struct {
		Distro  string `json:"distro"`
		Version string `json:"version"`
		Arch    string `json:"arch"`
		Variant string `json:"variant"`
	} `json:"image"`
	Config struct {
		Isolated        bool   `json:"isolated"`
		DefaultUsername string `json:"default_username"`
	} `json:"config"`
	Builtin bool   `json:"builtin"`
	State   string `json:"state"`
}

// Machine states `orb list` reports.
const (
	stateRunning = "running"
	stateStopped = "stopped"
)

// errMachineNotFound is orb's "machine not found: NAME".
var errMachineNotFound = errors.New("machine not found")

// orbError is a failed orb command: its arguments and what it said.
type orbError struct {
	args   []string
	stderr string
	err    error
}

func (e *orbError) Error() string {
	msg := strings.TrimSpace(e.stderr)
	if msg == "" {
		msg = e.err.Error()
	}
	return "orb " + strings.Join(e.args, " ") + ": " + msg
}

func (e *orbError) Unwrap() []error {
	if strings.Contains(e.stderr, "machine not found") {
		return []error{e.err, errMachineNotFound}
	}
	return []error{e.err}
}

// run runs orb with args, stdin (may be nil) as its input, and returns
// its stdout.
func (o *orbCLI) run(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	o.calls.Add(1)
	cmd := exec.CommandContext(ctx, o.path, args...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	o.log.V(3).Info("orb", "args", args, "error", errString(err))
	if err != nil {
		return out.Bytes(), &orbError{args: args, stderr: errb.String(), err: err}
	}
	return out.Bytes(), nil
}

// list is `orb list -f json`.
func (o *orbCLI) list(ctx context.Context) ([]machine, error) {
	out, err := o.run(ctx, nil, "list", "-f", "json")
	if err != nil {
		return nil, err
	}
	var ms []machine
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(out, &ms); err != nil {
		return nil, fmt.Errorf("read `orb list -f json`: %w", err)
	}
	return ms, nil
}

// version is the OrbStack version `orb version` prints ("Version: 2.1.0 (...)").
func (o *orbCLI) version(ctx context.Context) (semver, string, error) {
	out, err := o.run(ctx, nil, "version")
	if err != nil {
		return semver{}, "", err
	}
	text := strings.TrimSpace(string(out))
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "Version" {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			break
		}
		sv, ok := parseSemver(fields[0])
		if ok {
			return sv, fields[0], nil
		}
	}
	return semver{}, "", fmt.Errorf("cannot read the OrbStack version from `orb version`: %q", firstLine(text))
}

// semver is a major.minor.patch version.
type semver [3]int

func parseSemver(s string) (semver, bool) {
	s = strings.TrimPrefix(s, "v")
	parts := strings.SplitN(s, ".", 3)
	var v semver
	for i, p := range parts {
		// "2.1.0-rc1": the digits before anything else.
		end := 0
		for end < len(p) && p[end] >= '0' && p[end] <= '9' {
			end++
		}
		n, err := strconv.Atoi(p[:end])
		if err != nil {
			return v, false
		}
		v[i] = n
	}
	return v, len(parts) >= 2
}

func (v semver) less(w semver) bool {
	for i := range v {
		if v[i] != w[i] {
			return v[i] < w[i]
		}
	}
	return false
}

func (v semver) String() string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
