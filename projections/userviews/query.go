package userviews

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// ErrNotFound: no profile for the user id (not registered, or not yet
// projected).
var ErrNotFound = errors.New("identity: not found")

// Querier is what the queries need: a *pgxpool.Pool, a *pgx.Conn or a
// pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Profile is a user_profiles row.
type Profile struct {
	UserID      uuid.UUID
	Email       string
	DisplayName string
	Roles       []string
	CreatedAt   time.Time
	// LastLoginAt is nil until the first login is projected.
	LastLoginAt       *time.Time
	LastFailedLoginAt *time.Time
	// LockedUntil is the end of the last lockout, nil when never locked or
	// unlocked by an administrator; it may lie in the past.
	LockedUntil       *time.Time
	Lockouts          int
	PasswordChangedAt *time.Time
}

// GetProfile returns the profile of userID, or ErrNotFound.
func GetProfile(ctx context.Context, q Querier, userID uuid.UUID) (Profile, error) {
	var p Profile
	err := q.QueryRow(ctx, `SELECT user_id, email, display_name, roles, created_at, last_login_at,
			last_failed_login_at, locked_until, lockouts, password_changed_at
		FROM `+TableProfiles+` WHERE user_id = $1`, userID).
		Scan(&p.UserID, &p.Email, &p.DisplayName, &p.Roles, &p.CreatedAt, &p.LastLoginAt,
			&p.LastFailedLoginAt, &p.LockedUntil, &p.Lockouts, &p.PasswordChangedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Profile{}, ErrNotFound
	}
	if err != nil {
		return Profile{}, fmt.Errorf("identity: read profile: %w", err)
	}
	if p.Roles == nil {
		p.Roles = []string{}
	}
	return p, nil
}

// Session is a sessions row.
type Session struct {
	SessionID uuid.UUID
	UserID    uuid.UUID
	// Method is how the user logged in ("password"); AMR its RFC 8176
	// references ("pwd").
	Method string
	AMR    []string
	// IP and UserAgent are the latest the session was used from.
	IP              string
	UserAgent       string
	StartedAt       time.Time
	LastUsedAt      time.Time
	IdleExpiresAt   time.Time
	ExpiresAt       time.Time
	Refreshes       int
	ReuseDetectedAt *time.Time
	RevokedAt       *time.Time
	RevokeReason    *string
}

// Active reports whether the session can still be used at now: not
// revoked, and before both its absolute end and its idle end (the rule of
// session.Session.CheckActive).
func (s Session) Active(now time.Time) bool {
	return s.RevokedAt == nil && now.Before(s.ExpiresAt) && now.Before(s.IdleExpiresAt)
}

const sessionColumns = `session_id, user_id, method, amr, ip, user_agent, started_at, last_used_at,
	idle_expires_at, expires_at, refreshes, reuse_detected_at, revoked_at, revoke_reason`

func scanSession(row pgx.Row) (Session, error) {
	var s Session
	err := row.Scan(&s.SessionID, &s.UserID, &s.Method, &s.AMR, &s.IP, &s.UserAgent, &s.StartedAt, &s.LastUsedAt,
		&s.IdleExpiresAt, &s.ExpiresAt, &s.Refreshes, &s.ReuseDetectedAt, &s.RevokedAt, &s.RevokeReason)
	if s.AMR == nil {
		s.AMR = []string{}
	}
	return s, err
}

// ListActiveSessions returns one page (1-based) of userID's sessions that
// are active at now (see Session.Active), newest login first, and how many
// there are. A session that expired without a revocation event is left out
// here: expiry needs no event.
func ListActiveSessions(ctx context.Context, q Querier, userID uuid.UUID, now time.Time, page, pageSize int) ([]Session, int64, error) {
	const where = ` WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND idle_expires_at > $2`
	var total int64
	if err := q.QueryRow(ctx, `SELECT count(*) FROM `+TableSessions+where, userID, now.UTC()).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("identity: count sessions: %w", err)
	}
	out := []Session{}
	if total == 0 || int64(page-1)*int64(pageSize) >= total {
		return out, total, nil
	}
	rows, err := q.Query(ctx, `SELECT `+sessionColumns+` FROM `+TableSessions+where+`
		ORDER BY started_at DESC, session_id DESC LIMIT $3 OFFSET $4`,
		userID, now.UTC(), pageSize, (page-1)*pageSize)
	if err != nil {
		return nil, 0, fmt.Errorf("identity: list sessions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("identity: list sessions: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("identity: list sessions: %w", err)
	}
	return out, total, nil
}

// GetSession returns one session, revoked or not, or ErrNotFound.
func GetSession(ctx context.Context, q Querier, sessionID uuid.UUID) (Session, error) {
	s, err := scanSession(q.QueryRow(ctx, `SELECT `+sessionColumns+` FROM `+TableSessions+` WHERE session_id = $1`, sessionID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("identity: read session: %w", err)
	}
	return s, nil
}

// ListAllSessions returns every session of userID, ended ones included,
// newest login first (the data export, ADR 0034).
func ListAllSessions(ctx context.Context, q Querier, userID uuid.UUID) ([]Session, error) {
	rows, err := q.Query(ctx, `SELECT `+sessionColumns+` FROM `+TableSessions+` WHERE user_id = $1
		ORDER BY started_at DESC, session_id DESC`, userID)
	if err != nil {
		return nil, fmt.Errorf("identity: list sessions: %w", err)
	}
	defer rows.Close()
	out := []Session{}
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("identity: list sessions: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("identity: list sessions: %w", err)
	}
	return out, nil
}
