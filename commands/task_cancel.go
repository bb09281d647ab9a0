package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
)

// CancelTask withdraws a queued task of the requester's before a worker
// takes it.
type CancelTask struct {
	TaskID uuid.UUID
	// UserID is the authenticated requester; only the owner may cancel.
	UserID uuid.UUID
	Meta   Meta
}

// CancelTaskHandler appends task.cancelled.v1, then releases the task's
// active quota slot (its files stay stored until deleted or expired).
type CancelTaskHandler struct{ TaskCommon }

// Handle cancels. Another user's, missing or gone task: audited
// task.ErrNotFound. A task no longer queued: task.ErrInvalidTransition.
func (h *CancelTaskHandler) Handle(ctx context.Context, cmd CancelTask) (TaskResult, error) {
	if err := requireID("task_id", cmd.TaskID); err != nil {
		return TaskResult{}, err
	}
	now := h.now()
	t, pos, err := h.update(ctx, cmd.TaskID, cmd.Meta, func(t *task.Task) error {
		if err := guard(t, cmd.UserID, false); err != nil {
			return err
		}
		return t.Cancel(cmd.UserID, now)
	})
	if err != nil {
		return TaskResult{}, h.audited(ctx, cmd.Meta, cmd.UserID, cmd.TaskID, err, now)
	}
	qpos, err := h.release(ctx, cmd.Meta, t.Owner(), t.ID(), true, false, now)
	if err != nil {
		return TaskResult{}, err
	}
	return resultOf(t, later(pos, qpos)), nil
}
