package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// ErrInvalidToken is the one answer to a refresh token that is malformed,
// unknown, expired, revoked or reused.
var ErrInvalidToken = errors.New("commands: invalid token")

// Refresh presents a refresh token for a new pair.
type Refresh struct {
	RefreshToken string
	Meta         Meta
}

// RefreshHandler loads the one session the token names (strongly
// consistent), rotates the token, and appends. A reused token records
// ReuseDetected and Revoked, which are appended before the refusal, so the
// token issued in its place stops working too. The access token takes its
// name and roles from the session's claims, which the sessionclaims policy
// keeps current (ADR 0006); only a session started before sessions carried
// claims has its user stream read.
type RefreshHandler struct {
	Sessions      *Repository[*session.Session]
	Users         *Repository[*user.User]
	Issuer        *token.Issuer
	SessionPolicy session.Policy
	// Cutoffs, when set, refuse the refresh of a session a bulk revocation
	// ended (session.RevokedBefore), and revoke it.
	Cutoffs SessionCutoffs
	Now     func() time.Time
}

// SessionCutoffs tells whether a bulk revocation ended a session of a
// user that started at started (httpapi/authn.Cutoffs).
type SessionCutoffs interface {
	Ended(ctx context.Context, userID uuid.UUID, started time.Time) (bool, error)
}

// resume loads the session from its stream's last event (session.Resume),
// so that a refresh reads one event however many rotations the session has
// been through; a stream whose last event does not carry the session is
// folded whole.
func (h *RefreshHandler) resume(ctx context.Context, stream string) (*session.Session, error) {
	last, version, err := h.Sessions.Last(ctx, stream)
	if err != nil {
		return nil, err
	}
	if last == nil {
		return session.FromHistory(nil)
	}
	if s, ok := session.Resume(last, version); ok {
		return s, nil
	}
	return h.Sessions.Load(ctx, stream)
}

// Handle refreshes. Every refusal is ErrInvalidToken.
func (h *RefreshHandler) Handle(ctx context.Context, cmd Refresh) (LoginResult, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	presented, err := token.ParseRefreshToken(cmd.RefreshToken)
	if err != nil {
		return LoginResult{}, ErrInvalidToken
	}
	sid := presented.SessionID()
	next, err := token.NewRefreshToken(sid)
	if err != nil {
		return LoginResult{}, err
	}
	stream := session.StreamName(sid)
	params := session.RefreshParams{
		Presented: session.Digest(presented.Digest()), Next: session.Digest(next.Digest()),
		IP: cmd.Meta.ClientIP, UserAgent: cmd.Meta.UserAgent,
	}
	for range 5 {
		s, err := h.resume(ctx, stream)
		if err != nil {
			return LoginResult{}, err
		}
		decideErr := s.Refresh(params, now, h.SessionPolicy)
		if errors.Is(decideErr, session.ErrHistoryNeeded) {
			// Reuse or a token never issued: only every digest rotated
			// out tells which.
			if s, err = h.Sessions.Load(ctx, stream); err != nil {
				return LoginResult{}, err
			}
			decideErr = s.Refresh(params, now, h.SessionPolicy)
		}
		version := s.Version()
		if version == 0 {
			return LoginResult{}, ErrInvalidToken
		}
		if decideErr == nil && h.Cutoffs != nil {
			ended, err := h.Cutoffs.Ended(ctx, s.UserID(), s.StartedAt())
			if err != nil {
				return LoginResult{}, err
			}
			if ended {
				// Drop the rotation; revoke instead, so the session shows
				// as ended everywhere.
				if s, err = h.Sessions.Load(ctx, stream); err != nil {
					return LoginResult{}, err
				}
				if err := s.Revoke(session.ReasonRevokedBefore, now); err != nil {
					return LoginResult{}, err
				}
				if _, err := h.Sessions.Append(ctx, stream, s.Version(), cmd.Meta, s.Changes()); errors.Is(err, eventstore.ErrWrongExpectedVersion) {
					continue
				} else if err != nil {
					return LoginResult{}, err
				}
				return LoginResult{}, fmt.Errorf("%w: %w", ErrInvalidToken, session.ErrRevoked)
			}
		}
		var claims session.Claims
		var signed <-chan issued
		if decideErr == nil {
			var ok bool
			if claims, ok = s.Claims(); !ok {
				u, err := h.Users.Load(ctx, user.StreamName(s.UserID()))
				if err != nil {
					return LoginResult{}, err
				}
				claims = *accountClaims(u)
			}
			signed = signAsync(h.Issuer, token.Subject{UserID: s.UserID(), SessionID: sid, Name: claims.Name, AMR: s.AMR(), Roles: claims.Roles, AuthTime: s.StartedAt(), EmailVerified: claims.EmailVerified}, now)
		}
		ar, err := h.Sessions.Append(ctx, stream, version, cmd.Meta, s.Changes())
		if errors.Is(err, eventstore.ErrWrongExpectedVersion) {
			continue
		}
		if err != nil {
			return LoginResult{}, err
		}
		if decideErr != nil {
			return LoginResult{}, fmt.Errorf("%w: %w", ErrInvalidToken, decideErr)
		}
		i := <-signed
		if i.err != nil {
			return LoginResult{}, i.err
		}
		return LoginResult{User: Account{ID: s.UserID(), Email: claims.Email, DisplayName: claims.Name}, SessionID: sid,
			AccessToken: i.access, Claims: i.claims, RefreshToken: next.Encode(), Position: ar.Position}, nil
	}
	return LoginResult{}, fmt.Errorf("%w: %s", ErrConflict, stream)
}
