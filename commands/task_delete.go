package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
)

// DeleteTask removes a task's files at once (DELETE /v1/tasks/{id}); the
// history keeps the record.
type DeleteTask struct {
	TaskID uuid.UUID
	// UserID is the authenticated requester.
	UserID uuid.UUID
	// AsAdmin lets the requester delete another user's task. The HTTP layer
	// sets it from the access token's roles (events.Actor carries none);
	// the event records it when the task was not the requester's own.
	AsAdmin bool
	Meta    Meta
}

// DeleteTaskHandler appends task.deleted.v1, then releases the task on its
// owner's quota (active, if it still was, and stored). Removing the blobs
// is the caller's job after the command succeeds (the result lists the
// files; a blob may be shared with another live task, so remove it only
// when no live task references it, or leave it to the garbage collector).
type DeleteTaskHandler struct{ TaskCommon }

// Handle deletes. Another user's task (without AsAdmin), a missing one and
// an already deleted or expired one are task.ErrNotFound, audited with
// access.denied.v1 on the requester's access stream.
func (h *DeleteTaskHandler) Handle(ctx context.Context, cmd DeleteTask) (TaskResult, error) {
	if err := requireID("task_id", cmd.TaskID); err != nil {
		return TaskResult{}, err
	}
	now := h.now()
	wasActive := false
	t, pos, err := h.update(ctx, cmd.TaskID, cmd.Meta, func(t *task.Task) error {
		if err := guard(t, cmd.UserID, cmd.AsAdmin); err != nil {
			return err
		}
		wasActive = t.Active()
		return t.Delete(cmd.UserID, cmd.AsAdmin && t.Owner() != cmd.UserID, now)
	})
	if err != nil {
		return TaskResult{}, h.audited(ctx, cmd.Meta, cmd.UserID, cmd.TaskID, err, now)
	}
	qpos, err := h.release(ctx, cmd.Meta, t.Owner(), t.ID(), wasActive, true, now)
	if err != nil {
		return TaskResult{}, err
	}
	return resultOf(t, later(pos, qpos)), nil
}
