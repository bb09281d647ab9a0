package commands

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
)

// ExpireTask ends a task past retention (the scheduled retention sweep,
// which finds candidates in the read model; the cut-off is re-checked here
// on the stream).
type ExpireTask struct {
	TaskID uuid.UUID
	// CreatedBefore is the retention cut-off: only a task created strictly
	// before it expires. Per-user retention is the caller's choice of
	// cut-off.
	CreatedBefore time.Time
	Meta          Meta
}

// ExpireTaskHandler appends task.expired.v1, then releases the task on its
// owner's quota. As with DeleteTask, the caller removes the blobs
// afterwards (the result lists the files).
type ExpireTaskHandler struct{ TaskCommon }

// Handle expires. A task created at or after the cut-off, or being
// processed, is task.ErrInvalidTransition (the next sweep retries the
// latter); a missing or already gone task is task.ErrNotFound (not
// audited: the sweep is no requester).
func (h *ExpireTaskHandler) Handle(ctx context.Context, cmd ExpireTask) (TaskResult, error) {
	if err := requireID("task_id", cmd.TaskID); err != nil {
		return TaskResult{}, err
	}
	now := h.now()
	wasActive := false
	t, pos, err := h.update(ctx, cmd.TaskID, cmd.Meta, func(t *task.Task) error {
		wasActive = t.Active()
		return t.Expire(cmd.CreatedBefore, now)
	})
	if err != nil {
		return TaskResult{}, err
	}
	qpos, err := h.release(ctx, cmd.Meta, t.Owner(), t.ID(), wasActive, true, now)
	if err != nil {
		return TaskResult{}, err
	}
	return resultOf(t, later(pos, qpos)), nil
}
