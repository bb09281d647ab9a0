package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
)

// CompleteTask records a worker's result.
type CompleteTask struct {
	TaskID   uuid.UUID
	WorkerID string
	Result   string
	Meta     Meta
}

// CompleteTaskHandler appends task.completed.v1, then releases the task's
// active quota slot (its bytes stay counted until it is deleted or
// expires).
type CompleteTaskHandler struct{ TaskCommon }

// Handle completes. A worker that no longer holds the claim gets
// task.ErrLeaseLost and must discard its result.
func (h *CompleteTaskHandler) Handle(ctx context.Context, cmd CompleteTask) (TaskResult, error) {
	if err := requireID("task_id", cmd.TaskID); err != nil {
		return TaskResult{}, err
	}
	now := h.now()
	t, pos, err := h.update(ctx, cmd.TaskID, cmd.Meta, func(t *task.Task) error { return t.Complete(cmd.WorkerID, logText(cmd.Result), now) })
	if err != nil {
		return TaskResult{}, err
	}
	qpos, err := h.release(ctx, cmd.Meta, t.Owner(), t.ID(), true, false, now)
	if err != nil {
		return TaskResult{}, err
	}
	return resultOf(t, later(pos, qpos)), nil
}
