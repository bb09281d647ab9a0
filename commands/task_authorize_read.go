package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/eventstore"
)

// AuthorizeTaskRead checks that a requester may read a task
// (GET /v1/tasks/{id}) and audits what needs auditing.
type AuthorizeTaskRead struct {
	UserID  uuid.UUID
	TaskID  uuid.UUID
	AsAdmin bool
	Meta    Meta
}

// AuthorizeTaskReadHandler reads the task stream: the owner passes with
// nothing appended; an administrator reading another user's task passes
// with task.viewed.v1 appended to the administrator's access stream; anyone
// else (and a missing, deleted or expired task) gets task.ErrNotFound with
// access.denied.v1 appended. The HTTP layer calls it before (or, for a
// plain user, only when the scoped read model finds nothing) answering
// from the read model, so that every refused id is audited.
type AuthorizeTaskReadHandler struct{ TaskCommon }

// Handle authorises. The position is that of the appended event, zero when
// none was.
func (h *AuthorizeTaskReadHandler) Handle(ctx context.Context, cmd AuthorizeTaskRead) (eventstore.Position, error) {
	if err := requireID("user_id", cmd.UserID); err != nil {
		return eventstore.Position{}, err
	}
	now := h.now()
	t, err := h.Tasks.Load(ctx, task.StreamName(cmd.TaskID))
	if err != nil {
		return eventstore.Position{}, err
	}
	if reason := t.DenyReason(cmd.UserID, cmd.AsAdmin); reason != "" {
		return eventstore.Position{}, h.deny(ctx, cmd.Meta, cmd.UserID, task.ResourceKindTask, cmd.TaskID, cmd.TaskID, reason, now)
	}
	if t.Owner() == cmd.UserID {
		return eventstore.Position{}, nil
	}
	return h.access(ctx, cmd.Meta, cmd.UserID, task.Viewed{
		UserID: cmd.UserID, OwnerID: t.Owner(), TaskID: t.ID(),
		IP: cmd.Meta.ClientIP, RequestID: cmd.Meta.CorrelationID, AsAdmin: true, ViewedAt: now.UTC(),
	}, now)
}
