package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
)

// SyncSessionClaims gives sessions of a user the user's current claims
// (email, display name, roles): the sessionclaims policy sends it after a
// change to the user and after each login.
type SyncSessionClaims struct {
	UserID   uuid.UUID
	Sessions []uuid.UUID
	Meta     Meta
}

// SyncSessionClaimsHandler reads the user stream once, then for each named
// session lets session.UpdateClaims decide and appends at the revision it
// loaded (ClaimsUpdated, when the session's claims differ and it is still
// open). A stream with no session, or a session of another user, is
// skipped. Sending the same command twice appends nothing the second time.
type SyncSessionClaimsHandler struct {
	Users    *Repository[*user.User]
	Sessions *Repository[*session.Session]
	Now      func() time.Time
}

var errNotTheUsersSession = errors.New("commands: not a session of this user")

// Handle syncs and returns how many sessions it updated.
func (h *SyncSessionClaimsHandler) Handle(ctx context.Context, cmd SyncSessionClaims) (int, error) {
	if len(cmd.Sessions) == 0 {
		return 0, nil
	}
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	u, err := h.Users.Load(ctx, user.StreamName(cmd.UserID))
	if err != nil {
		return 0, err
	}
	if !u.Registered() {
		return 0, nil
	}
	claims := *accountClaims(u)
	updated := 0
	for _, sid := range cmd.Sessions {
		res, err := h.Sessions.Update(ctx, session.StreamName(sid), cmd.Meta, func(s *session.Session) error {
			if s.Version() == 0 || s.UserID() != cmd.UserID {
				return errNotTheUsersSession
			}
			return s.UpdateClaims(claims, now)
		})
		switch {
		case errors.Is(err, errNotTheUsersSession):
		case err != nil:
			return updated, fmt.Errorf("commands: claims of session %s: %w", sid, err)
		case !res.Position.IsZero():
			updated++
		}
	}
	return updated, nil
}
