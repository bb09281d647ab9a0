package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/eventstore"
)

// AccessFile asks to download one file of a task
// (GET /v1/tasks/{id}/files/{file_id}).
type AccessFile struct {
	// UserID is the authenticated requester.
	UserID uuid.UUID
	TaskID uuid.UUID
	FileID uuid.UUID
	// AsAdmin lets the requester read another user's file (set by the HTTP
	// layer from the token's roles); the access is recorded with as_admin.
	AsAdmin bool
	// Meta's CorrelationID (the request id) and ClientIP go into the event.
	Meta Meta
}

// AccessFileResult is the file to send and the position of the audit
// event.
type AccessFileResult struct {
	File     task.File
	OwnerID  uuid.UUID
	Position eventstore.Position
}

// AccessFileHandler checks ownership on the task stream (never a read
// model) and appends, to the requester's access-<user> stream with Any,
// either task.file_accessed.v1 (before a byte is sent) or
// access.denied.v1. It never writes the task stream, so downloads do not
// conflict with the lifecycle, and an unknown id creates no stream.
type AccessFileHandler struct{ TaskCommon }

// Handle authorises the download. Another user's task or file, a missing
// one, and a deleted or expired task's file are all task.ErrNotFound, the
// same error, after access.denied.v1 is appended. When the audit event
// cannot be appended the download must not happen: Handle returns that
// error.
func (h *AccessFileHandler) Handle(ctx context.Context, cmd AccessFile) (AccessFileResult, error) {
	if err := requireID("user_id", cmd.UserID); err != nil {
		return AccessFileResult{}, err
	}
	now := h.now()
	t, err := h.Tasks.Load(ctx, task.StreamName(cmd.TaskID))
	if err != nil {
		return AccessFileResult{}, err
	}
	reason := t.DenyReason(cmd.UserID, cmd.AsAdmin)
	f, ok := t.File(cmd.FileID)
	if reason == "" && !ok {
		reason = task.DenyMissing
	}
	if reason != "" {
		return AccessFileResult{}, h.deny(ctx, cmd.Meta, cmd.UserID, task.ResourceKindFile, cmd.FileID, cmd.TaskID, reason, now)
	}
	pos, err := h.access(ctx, cmd.Meta, cmd.UserID, task.FileAccessed{
		UserID: cmd.UserID, OwnerID: t.Owner(), TaskID: t.ID(), FileID: f.ID,
		IP: cmd.Meta.ClientIP, RequestID: cmd.Meta.CorrelationID,
		AsAdmin: cmd.AsAdmin && t.Owner() != cmd.UserID, AccessedAt: now.UTC(),
	}, now)
	if err != nil {
		return AccessFileResult{}, err
	}
	return AccessFileResult{File: f, OwnerID: t.Owner(), Position: pos}, nil
}
