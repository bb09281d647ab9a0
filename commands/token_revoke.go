package commands

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/eventstore"
)

// RevokeRefreshToken ends the session of a refresh token another service
// presents (POST /oauth2/revoke, RFC 7009).
type RevokeRefreshToken struct {
	RefreshToken string
	Meta         Meta
}

// RevokeRefreshTokenHandler revokes the session whose current refresh
// token is presented (reason token_revoked). Anything else, a malformed
// token, one never issued, one rotated out, a session already ended, is
// not an error and ends nothing (RFC 7009 section 2.2: the answer is the
// same for an invalid token), so that the endpoint tells nothing.
type RevokeRefreshTokenHandler struct {
	Sessions *Repository[*session.Session]
	Now      func() time.Time
}

// RevokeRefreshTokenResult names the session ended (uuid.Nil when
// nothing was) and the position written.
type RevokeRefreshTokenResult struct {
	SessionID uuid.UUID
	RevokedAt time.Time
	Position  eventstore.Position
}

// Handle revokes.
func (h *RevokeRefreshTokenHandler) Handle(ctx context.Context, cmd RevokeRefreshToken) (RevokeRefreshTokenResult, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	presented, err := token.ParseRefreshToken(cmd.RefreshToken)
	if err != nil {
		return RevokeRefreshTokenResult{}, nil
	}
	res, err := h.Sessions.Update(ctx, session.StreamName(presented.SessionID()), cmd.Meta, func(s *session.Session) error {
		if !s.HoldsRefreshToken(session.Digest(presented.Digest())) {
			return errNothingToRevoke
		}
		return s.Revoke(session.ReasonTokenRevoked, now)
	})
	if errors.Is(err, errNothingToRevoke) {
		return RevokeRefreshTokenResult{}, nil
	}
	if err != nil {
		return RevokeRefreshTokenResult{}, err
	}
	return RevokeRefreshTokenResult{SessionID: presented.SessionID(), RevokedAt: now, Position: res.Position}, nil
}

var errNothingToRevoke = errors.New("commands: no session holds this refresh token")
