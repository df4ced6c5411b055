//go:build unix

package credentials

import (
	"os"
	"os/exec"
	"syscall"
)

// ownProcessGroup makes cmd the leader of a process group of its own, and
// its cancellation (a timeout) kill that whole group.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		killProcessGroup(cmd)
		return nil
	}
}

// killProcessGroup kills every process left in cmd's process group (its
// id is the started command's pid).
func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process == nil || cmd.Process.Pid <= 0 {
		return
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		// No group (already gone): the process itself, if it is still there.
		_ = cmd.Process.Signal(os.Kill)
	}
}
