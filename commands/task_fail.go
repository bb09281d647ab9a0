package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
)

// FailTask records a worker's failure of the current attempt.
type FailTask struct {
	TaskID   uuid.UUID
	WorkerID string
	// Error is the processor's message, shown to the task's owner: it must
	// not carry internals the owner should not see.
	Error string
	Meta  Meta
}

// FailTaskHandler appends task.failed.v1. A failure on the last allowed
// attempt is final and releases the task's active quota slot; an earlier
// one keeps it (the owner may retry without asking the quota again).
type FailTaskHandler struct{ TaskCommon }

// Handle fails the attempt. A worker that no longer holds the claim gets
// task.ErrLeaseLost.
func (h *FailTaskHandler) Handle(ctx context.Context, cmd FailTask) (TaskResult, error) {
	if err := requireID("task_id", cmd.TaskID); err != nil {
		return TaskResult{}, err
	}
	now := h.now()
	t, pos, err := h.update(ctx, cmd.TaskID, cmd.Meta, func(t *task.Task) error { return t.Fail(cmd.WorkerID, logText(cmd.Error), now) })
	if err != nil {
		return TaskResult{}, err
	}
	if !t.Active() {
		qpos, err := h.release(ctx, cmd.Meta, t.Owner(), t.ID(), true, false, now)
		if err != nil {
			return TaskResult{}, err
		}
		pos = later(pos, qpos)
	}
	return resultOf(t, pos), nil
}
