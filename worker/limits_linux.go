package worker

import (
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// canLimitMemory: prlimit(2) sets RLIMIT_AS on a child.
const canLimitMemory = true

// ownProcessGroup starts cmd in a process group of its own and makes the
// context's cancellation kill the whole group, so that nothing tesseract
// might start outlives the attempt.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group's id is the child's pid (Setpgid with Pgid 0).
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// limitProcess sets the address-space limit (unless memory <= 0) and the
// CPU-time limit of a running process with prlimit(2): the caller's own
// child, so no privilege is needed. Soft and hard limits are equal: the
// child cannot raise them.
func limitProcess(pid int, memory int64, cpu time.Duration) error {
	if memory > 0 {
		lim := unix.Rlimit{Cur: uint64(memory), Max: uint64(memory)}
		if err := unix.Prlimit(pid, unix.RLIMIT_AS, &lim, nil); err != nil {
			return fmt.Errorf("RLIMIT_AS: %w", err)
		}
	}
	secs := uint64((cpu + time.Second - 1) / time.Second)
	lim := unix.Rlimit{Cur: secs, Max: secs}
	if err := unix.Prlimit(pid, unix.RLIMIT_CPU, &lim, nil); err != nil {
		return fmt.Errorf("RLIMIT_CPU: %w", err)
	}
	return nil
}

// exitSignal names the signal that ended the process, or "".
func exitSignal(e *exec.ExitError) string {
	if ws, ok := e.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "signal: " + ws.Signal().String()
	}
	return ""
}
