package commands

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/domain/session"
)

// RefreshTokenState is what introspection tells of a refresh token: its
// session while the token is that session's current one and the session
// can be refreshed now.
type RefreshTokenState struct {
	Active    bool
	UserID    uuid.UUID
	SessionID uuid.UUID
	// ExpiresAt is when the token stops working unless used: the idle
	// timeout or the session's absolute end, whichever comes first.
	ExpiresAt time.Time
	StartedAt time.Time
}

// InspectRefreshTokenHandler answers introspection (RFC 7662) for a
// refresh token from its session's stream, read in full (a refresh
// token is checked only by that stream; no follower holds digests). It
// appends nothing.
type InspectRefreshTokenHandler struct {
	Sessions *Repository[*session.Session]
	Now      func() time.Time
}

// Handle inspects raw: a malformed token, one never issued or rotated
// out, or a session revoked or expired is inactive, with no error.
func (h *InspectRefreshTokenHandler) Handle(ctx context.Context, raw string) (RefreshTokenState, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	presented, err := token.ParseRefreshToken(raw)
	if err != nil {
		return RefreshTokenState{}, nil
	}
	s, err := h.Sessions.Load(ctx, session.StreamName(presented.SessionID()))
	if err != nil {
		return RefreshTokenState{}, err
	}
	if !s.HoldsRefreshToken(session.Digest(presented.Digest())) || s.CheckActive(now) != nil {
		return RefreshTokenState{}, nil
	}
	exp := s.ExpiresAt()
	if idle := s.IdleExpiresAt(); !idle.IsZero() && idle.Before(exp) {
		exp = idle
	}
	return RefreshTokenState{Active: true, UserID: s.UserID(), SessionID: s.ID(), ExpiresAt: exp, StartedAt: s.StartedAt()}, nil
}
