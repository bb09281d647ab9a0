package commands

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
)

// RenewClaim is a worker's heartbeat.
type RenewClaim struct {
	TaskID   uuid.UUID
	WorkerID string
	// Lease overrides the handler's lease; 0 means the handler's.
	Lease time.Duration
	Meta  Meta
}

// RenewClaimHandler extends a lease. A worker that gets task.ErrLeaseLost
// must stop: its claim was released (or the task deleted or expired), and
// completing it would be refused anyway.
type RenewClaimHandler struct {
	TaskCommon
	Lease time.Duration
}

// Handle renews the lease to now+Lease.
func (h *RenewClaimHandler) Handle(ctx context.Context, cmd RenewClaim) (TaskResult, error) {
	if err := requireID("task_id", cmd.TaskID); err != nil {
		return TaskResult{}, err
	}
	now := h.now()
	lease := cmd.Lease
	if lease <= 0 {
		lease = h.Lease
	}
	t, pos, err := h.update(ctx, cmd.TaskID, cmd.Meta, func(t *task.Task) error { return t.RenewClaim(cmd.WorkerID, now.Add(lease), now) })
	if err != nil {
		return TaskResult{}, err
	}
	return resultOf(t, pos), nil
}
