package commands

import (
	"context"
	"errors"
	"fmt"
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
	// Vault, when set, loses the session's provider tokens once it is
	// revoked (an external login's). The vault policy on session.revoked
	// does the same for revocations made elsewhere; this is so that a
	// logout has them gone when it answers.
	Vault TokenVault
	Now   func() time.Time
}

// Handle revokes. The result's Position is zero when nothing was appended.
func (h *RevokeSessionHandler) Handle(ctx context.Context, cmd RevokeSession) (eventstore.AppendResult, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	res, err := h.Sessions.Update(ctx, session.StreamName(cmd.SessionID), cmd.Meta, func(s *session.Session) error {
		if s.Version() == 0 || s.UserID() != cmd.UserID {
			return ErrSessionNotFound
		}
		return s.Revoke(cmd.Reason, now)
	})
	if err != nil || h.Vault == nil {
		return res, err
	}
	// Also after a revocation that appended nothing (a second logout): a
	// retry completes a deletion that failed the first time.
	if _, err := h.Vault.Delete(ctx, cmd.SessionID); err != nil {
		return res, fmt.Errorf("commands: delete the session's provider tokens: %w", err)
	}
	return res, nil
}
