package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
)

// ReleaseStaleClaim takes a task back from a worker whose lease ended
// (found by the worker's sweep in the read model, re-checked here on the
// stream).
type ReleaseStaleClaim struct {
	TaskID uuid.UUID
	Meta   Meta
}

// ReleaseStaleClaimHandler queues the task again, or fails it for good on
// its last allowed attempt (and then releases its active quota slot).
type ReleaseStaleClaimHandler struct{ TaskCommon }

// Handle releases. A lease still running (renewed since the read model saw
// it) is task.ErrClaimNotStale; a task no longer processing,
// task.ErrInvalidTransition.
func (h *ReleaseStaleClaimHandler) Handle(ctx context.Context, cmd ReleaseStaleClaim) (TaskResult, error) {
	if err := requireID("task_id", cmd.TaskID); err != nil {
		return TaskResult{}, err
	}
	now := h.now()
	t, pos, err := h.update(ctx, cmd.TaskID, cmd.Meta, func(t *task.Task) error { return t.ReleaseStaleClaim(now) })
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
