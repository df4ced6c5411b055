package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// runInProcess runs the jackin command line in this process, as main does,
// with its own state dir, and returns stdout, stderr and the exit code.
func runInProcess(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRootCommand(strings.NewReader(stdin), &stdout, &stderr)
	root.SetArgs(append([]string{"--state-dir", t.TempDir()}, args...))
	err := root.ExecuteContext(context.Background())
	code := exitOK
	if err != nil {
		code = exitInvalid
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
			if ee.err != nil && !ee.reported {
				stderr.WriteString("Error: " + ee.err.Error() + "\n")
			}
		} else {
			stderr.WriteString("Error: " + err.Error() + "\n")
		}
	}
	return stdout.String(), stderr.String(), code
}
