//go:build !linux

package worker

import (
	"errors"
	"os/exec"
	"time"
)

// canLimitMemory: without prlimit(2), NewTesseract refuses a memory limit.
const canLimitMemory = false

// ownProcessGroup: elsewhere than Linux the child is killed alone.
func ownProcessGroup(*exec.Cmd) {}

// limitProcess: prlimit(2) is Linux's. Without it a memory limit cannot be
// kept, so asking for one is an error rather than a silent no-op.
func limitProcess(_ int, memory int64, _ time.Duration) error {
	if memory > 0 {
		return errors.New("a memory limit needs Linux (prlimit(2))")
	}
	return nil
}

func exitSignal(*exec.ExitError) string { return "" }
