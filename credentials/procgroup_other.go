//go:build !unix

package credentials

import "os/exec"

// ownProcessGroup is exec's default here: a timeout kills the command only.
func ownProcessGroup(*exec.Cmd) {}

// killProcessGroup kills the command, if it is still running.
func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}
