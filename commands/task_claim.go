package commands

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
)

// ClaimTask asks for a queued task on behalf of a worker.
type ClaimTask struct {
	TaskID   uuid.UUID
	WorkerID string
	// Lease overrides the handler's lease; 0 means the handler's.
	Lease time.Duration
	Meta  Meta
}

// ClaimTaskHandler appends task.claimed.v1 at the revision it loaded, so of
// two workers claiming one task exactly one succeeds; the other reloads
// and gets task.ErrAlreadyClaimed.
type ClaimTaskHandler struct {
	TaskCommon
	Lease time.Duration
}

// Handle claims. The result carries the attempt, the lease and the files
// the worker must process. A missing task is task.ErrNotFound; one that is
// not queued, task.ErrAlreadyClaimed or task.ErrInvalidTransition.
func (h *ClaimTaskHandler) Handle(ctx context.Context, cmd ClaimTask) (TaskResult, error) {
	if err := requireID("task_id", cmd.TaskID); err != nil {
		return TaskResult{}, err
	}
	now := h.now()
	lease := cmd.Lease
	if lease <= 0 {
		lease = h.Lease
	}
	t, pos, err := h.update(ctx, cmd.TaskID, cmd.Meta, func(t *task.Task) error { return t.Claim(cmd.WorkerID, now.Add(lease), now) })
	if err != nil {
		if errors.Is(err, ErrConflict) {
			return TaskResult{}, task.ErrAlreadyClaimed
		}
		return TaskResult{}, err
	}
	return resultOf(t, pos), nil
}
