package commands

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/eventstore"
)

// RevokeSessionsBefore ends every session started before Before:
// everyone's, or one user's (UserID), or those of the holders of Role.
// A force logout is one with UserID and Before now.
type RevokeSessionsBefore struct {
	Before time.Time
	UserID uuid.UUID
	Role   string
	Reason string
	Meta   Meta
}

// RevokeSessionsBeforeHandler appends the cutoff to the one cutoff
// stream; every instance's token check refuses the sessions' access
// tokens once its follower has it (well under a second), and their
// refreshes are refused and revoke them.
type RevokeSessionsBeforeHandler struct {
	Cutoffs *Repository[*session.Cutoffs]
	Now     func() time.Time
}

// Handle appends the cutoff.
func (h *RevokeSessionsBeforeHandler) Handle(ctx context.Context, cmd RevokeSessionsBefore) (eventstore.AppendResult, error) {
	now := h.Now()
	return h.Cutoffs.Update(ctx, session.CutoffStream, cmd.Meta, func(c *session.Cutoffs) error {
		return c.RevokeBefore(cmd.Before, cmd.UserID, cmd.Role, cmd.Reason, now)
	})
}
