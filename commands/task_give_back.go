package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
)

// GiveBackTask is a worker returning its claim without an outcome, for a
// reason that is not the task's (task.ReleaseReasonStorageFull).
type GiveBackTask struct {
	TaskID   uuid.UUID
	WorkerID string
	Reason   string
	Meta     Meta
}

// GiveBackTaskHandler queues the task again without counting the attempt
// (task.Task.GiveBack); the task keeps its active quota slot.
type GiveBackTaskHandler struct{ TaskCommon }

// Handle gives the claim back. A worker that no longer holds the claim gets
// task.ErrLeaseLost.
func (h *GiveBackTaskHandler) Handle(ctx context.Context, cmd GiveBackTask) (TaskResult, error) {
	if err := requireID("task_id", cmd.TaskID); err != nil {
		return TaskResult{}, err
	}
	now := h.now()
	t, pos, err := h.update(ctx, cmd.TaskID, cmd.Meta, func(t *task.Task) error { return t.GiveBack(cmd.WorkerID, cmd.Reason, now) })
	if err != nil {
		return TaskResult{}, err
	}
	return resultOf(t, pos), nil
}
