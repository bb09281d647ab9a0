package commands

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/eventstore"
)

// ErrSessionNotFound: no such session, or another user's. The two are not
// told apart.
var ErrSessionNotFound = errors.New("commands: session not found")

// RevokeSession ends a session: logout (its own) or DELETE
// /v1/auth/sessions/{id} (any of the user's).
type RevokeSession struct {
	SessionID uuid.UUID
	// UserID is the authenticated caller; a session of anyone else is
	// ErrSessionNotFound.
	UserID uuid.UUID
	Reason session.Reason
	Meta   Meta
}

// RevokeSessionHandler appends Revoked to the session stream. Revoking an
// already revoked session succeeds and appends nothing.
type RevokeSessionHandler struct {
	Sessions *Repository[*session.Session]
	Now      func() time.Time
}

// Handle revokes. The result's Position is zero when nothing was appended.
func (h *RevokeSessionHandler) Handle(ctx context.Context, cmd RevokeSession) (eventstore.AppendResult, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	return h.Sessions.Update(ctx, session.StreamName(cmd.SessionID), cmd.Meta, func(s *session.Session) error {
		if s.Version() == 0 || s.UserID() != cmd.UserID {
			return ErrSessionNotFound
		}
		return s.Revoke(cmd.Reason, now)
	})
}
