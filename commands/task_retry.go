package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
)

// RetryTask queues a failed task of the requester's again
// (POST /v1/tasks/{id}/retry).
type RetryTask struct {
	TaskID uuid.UUID
	// UserID is the authenticated requester; only the owner may retry.
	UserID uuid.UUID
	Meta   Meta
}

// RetryTaskHandler appends task.retried.v1 on the task stream only: a
// failed task that may be retried is still counted as active (task.Task.
// Active), so a retry never needs the quota stream.
type RetryTaskHandler struct{ TaskCommon }

// Handle retries. Another user's task, a missing one and a deleted or
// expired one are all task.ErrNotFound, with access.denied.v1 appended to
// the requester's access stream; a task that is not failed, or whose
// attempts are spent, is task.ErrNotRetryable (409).
func (h *RetryTaskHandler) Handle(ctx context.Context, cmd RetryTask) (TaskResult, error) {
	if err := requireID("task_id", cmd.TaskID); err != nil {
		return TaskResult{}, err
	}
	now := h.now()
	t, pos, err := h.update(ctx, cmd.TaskID, cmd.Meta, func(t *task.Task) error {
		if err := guard(t, cmd.UserID, false); err != nil {
			return err
		}
		return t.Retry(now)
	})
	if err != nil {
		return TaskResult{}, h.audited(ctx, cmd.Meta, cmd.UserID, cmd.TaskID, err, now)
	}
	return resultOf(t, pos), nil
}
