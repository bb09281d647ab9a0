// Package session is the session aggregate: one stream ("session-<id>")
// per login, holding the rotation of its opaque refresh token.
//
// The session is the refresh-token family of RFC 9700: every token it ever
// issued is known by its SHA-256 digest, so presenting an old one is
// recognised as reuse (and revokes the session), while a token that was
// never issued is merely invalid (and revokes nothing: knowing a session id,
// which is in every access token's sid claim, must not let anyone end
// someone else's session).
//
// The package is pure: digests are computed outside (auth/token), time is
// passed in.
package session

import (
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/events"
)

// StreamPrefix starts every session stream name.
const StreamPrefix = "session-"

// StreamName is the session's stream.
func StreamName(id uuid.UUID) string { return StreamPrefix + id.String() }

// Digest is the SHA-256 of a refresh token. It is stored; the token is not.
// It marshals as lower-case hex.
type Digest [32]byte

// MarshalText implements encoding.TextMarshaler.
func (d Digest) MarshalText() ([]byte, error) {
	b := make([]byte, hex.EncodedLen(len(d)))
	hex.Encode(b, d[:])
	return b, nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Digest) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(d) {
		return errors.New("session: digest must be 64 hex digits")
	}
	_, err := hex.Decode(d[:], b)
	return err
}

// Equal compares in constant time.
func (d Digest) Equal(o Digest) bool { return subtle.ConstantTimeCompare(d[:], o[:]) == 1 }

// IsZero reports an unset digest.
func (d Digest) IsZero() bool { return d == Digest{} }

// Reason says why a session was revoked. Values are stable (they are in the
// log).
type Reason string

const (
	ReasonLogout           Reason = "logout"
	ReasonDeleted          Reason = "deleted"        // DELETE /v1/auth/sessions/{id}
	ReasonLimitExceeded    Reason = "limit_exceeded" // the user's oldest beyond the concurrent limit
	ReasonIdleTimeout      Reason = "idle_timeout"
	ReasonAbsoluteLifetime Reason = "absolute_lifetime"
	ReasonReuseDetected    Reason = "reuse_detected"
	ReasonPasswordChanged  Reason = "password_changed"
	ReasonAdmin            Reason = "admin"
	// ReasonExternalTokensNotStored: an external login whose provider
	// tokens could not be stored; the login failed after its session
	// started, and the session is ended at once.
	ReasonExternalTokensNotStored Reason = "external_tokens_not_stored"
	// ReasonExternalRefreshFailed: the provider's tokens of an external
	// session could not be renewed (the vault's refresher gave up).
	ReasonExternalRefreshFailed Reason = "external_refresh_failed"
	// ReasonRevokedBefore: a refresh of a session a bulk revocation
	// (RevokedBefore) had ended.
	ReasonRevokedBefore Reason = "revoked_before"
	// ReasonTokenRevoked: a service revoked one of the session's tokens
	// (POST /oauth2/revoke, RFC 7009).
	ReasonTokenRevoked Reason = "token_revoked"
)

var knownReasons = []Reason{ReasonLogout, ReasonDeleted, ReasonLimitExceeded, ReasonIdleTimeout,
	ReasonAbsoluteLifetime, ReasonReuseDetected, ReasonPasswordChanged, ReasonAdmin, ReasonExternalTokensNotStored, ReasonExternalRefreshFailed, ReasonRevokedBefore, ReasonTokenRevoked}

// Policy holds the session timing rules. A session takes its absolute end
// from the policy at start; each refresh takes the idle timeout in force.
type Policy struct {
	// IdleTimeout ends a session not refreshed for this long (default 7 days).
	IdleTimeout time.Duration
	// AbsoluteLifetime ends a session this long after login, however often
	// it is refreshed (default 30 days).
	AbsoluteLifetime time.Duration
	// RefreshGrace lets the immediately previous refresh token be used once
	// more within this period after its rotation (default 0: never).
	RefreshGrace time.Duration
	// MaxPerUser caps a user's concurrent sessions; starting one more
	// revokes the oldest (default 0: no cap). Enforced by the command layer
	// with OldestBeyondLimit.
	MaxPerUser int
}

// DefaultPolicy: idle 7 days, absolute 30 days, no grace, no cap.
func DefaultPolicy() Policy {
	return Policy{IdleTimeout: 7 * 24 * time.Hour, AbsoluteLifetime: 30 * 24 * time.Hour}
}

// Validate reports every problem at once.
func (p Policy) Validate() error {
	var errs []error
	if p.IdleTimeout <= 0 {
		errs = append(errs, errors.New("session: idle timeout must be positive"))
	}
	if p.AbsoluteLifetime < p.IdleTimeout {
		errs = append(errs, errors.New("session: absolute lifetime must be at least the idle timeout"))
	}
	if p.RefreshGrace < 0 || p.RefreshGrace > time.Minute {
		errs = append(errs, errors.New("session: refresh grace must be between 0 and 1 minute"))
	}
	if p.MaxPerUser < 0 {
		errs = append(errs, errors.New("session: max sessions per user must not be negative"))
	}
	return errors.Join(errs...)
}

var (
	// ErrInvalidInput: a Start parameter is missing or malformed.
	ErrInvalidInput = errors.New("session: invalid input")
	// ErrInvalidToken: the presented digest was never issued by this
	// session. Nothing is recorded. Answer 401 invalid-token.
	ErrInvalidToken = errors.New("session: invalid refresh token")
	// ErrReuseDetected: an already rotated token was presented; the
	// session has recorded ReuseDetected and Revoked, which must be
	// appended. Answer 401 invalid-token.
	ErrReuseDetected = errors.New("session: refresh token reuse detected")
	// ErrRevoked: the session was revoked earlier. Answer 401.
	ErrRevoked = errors.New("session: revoked")
	// ErrExpired: the session passed its idle timeout or absolute lifetime;
	// Refresh has recorded Revoked, which must be appended. Answer 401.
	ErrExpired = errors.New("session: expired")
	// ErrNotStarted: a command on an empty stream.
	ErrNotStarted = errors.New("session: not started")
	// ErrAlreadyStarted: Started folded onto a started session.
	ErrAlreadyStarted = errors.New("session: already started")
	// ErrHistoryNeeded: a session built by Resume cannot tell a rotated-out
	// token from an unknown one; fold the whole stream and decide again.
	ErrHistoryNeeded = errors.New("session: the whole stream is needed to decide")
)

// Session is the aggregate.
type Session struct {
	id, userID    uuid.UUID
	started       bool
	method        string
	amr           []string
	ip, userAgent string
	startedAt     time.Time
	lastUsedAt    time.Time
	idleExpiresAt time.Time
	expiresAt     time.Time
	current       Digest
	previous      Digest    // the digest rotated out last
	previousUntil time.Time // rotation time of previous, for the grace period
	graceUsed     bool
	generation    int
	retired       []Digest // every digest ever rotated out, oldest first
	revoked       bool
	revokedReason Reason
	revokedAt     time.Time
	claims        *Claims // nil: started before sessions carried claims
	// resumed: built by Resume from the last event, so retired (and, after
	// a grace refresh, previous) are unknown.
	resumed bool

	version int
	changes []events.Event
}

// FromHistory folds a session stream, oldest first.
func FromHistory(history []events.Event) (*Session, error) {
	s := &Session{}
	for _, e := range history {
		if err := s.apply(e); err != nil {
			return nil, err
		}
		s.version++
	}
	return s, nil
}

// Login methods and their RFC 8176 authentication method references.
const (
	// MethodPassword is a login with email and password.
	MethodPassword = "password"
	// AMRPassword is the amr value of a password login.
	AMRPassword = "pwd"
	// MethodExternal is a login with email and password checked by the
	// external auth API (its amr is still "pwd": a password was shown).
	MethodExternal = "external"
	// MethodUpstream is a sign-in through an upstream provider (OIDC or
	// GitHub, docs/oidc-providers.md); its amr names the provider.
	MethodUpstream = "upstream"
)

// Resume rebuilds a session from the last event of its stream alone;
// version is the number of events in the stream. It reports false when
// that event does not carry enough (a Refreshed recorded before Terms, a
// ReuseDetected, a ClaimsUpdated); fold the whole stream then. A resumed session decides a
// refresh exactly as the folded one would, except that a token which is
// neither the current one nor the previous one within grace, the only
// case that needs every rotated-out digest, returns ErrHistoryNeeded
// and records nothing.
func Resume(last events.Event, version int) (*Session, bool) {
	s := &Session{}
	switch e := last.(type) {
	case Started:
		if err := s.apply(e); err != nil {
			return nil, false
		}
	case Refreshed:
		if e.Terms == nil {
			return nil, false
		}
		t := e.Terms
		s.started, s.resumed = true, true
		s.id, s.userID, s.method, s.amr = e.SessionID, t.UserID, t.Method, slices.Clone(t.AMR)
		s.startedAt, s.expiresAt = t.StartedAt, t.ExpiresAt
		s.ip, s.userAgent = e.IP, e.UserAgent
		s.current, s.generation = e.RefreshDigest, e.Generation
		s.lastUsedAt, s.idleExpiresAt = e.RefreshedAt, e.IdleExpiresAt
		if e.Claims != nil {
			s.claims = e.Claims.clone()
		}
		// After a grace refresh the digest rotated out is not the one
		// presented, and is not in the event; it can only be reuse
		// now (grace is used), which Refresh sends to the full fold.
		s.graceUsed = e.Grace
		if !e.Grace {
			s.previous, s.previousUntil = e.PreviousDigest, e.RefreshedAt
		}
	case Revoked:
		s.started, s.resumed = true, true
		s.id, s.userID = e.SessionID, e.UserID
		s.revoked, s.revokedReason, s.revokedAt = true, e.Reason, e.RevokedAt
	default:
		return nil, false
	}
	s.version = version
	return s, true
}

// StartParams describes a login.
type StartParams struct {
	SessionID     uuid.UUID
	UserID        uuid.UUID
	Method        string
	AMR           []string
	IP            string
	UserAgent     string
	RefreshDigest Digest
	// Claims are the user's at login (see Started.Claims).
	Claims *Claims
	// DeviceDigest is the digest of the known-device token issued with
	// the login, zero for none (see Started.DeviceDigest).
	DeviceDigest Digest
}

// MaxUserAgentLength bounds the user agent kept (longer ones are cut).
const MaxUserAgentLength = events.MaxUserAgentBytes

func optionalDigest(d Digest) *Digest {
	if d.IsZero() {
		return nil
	}
	return &d
}

// Start opens a session at now under policy p.
func Start(sp StartParams, now time.Time, p Policy) (*Session, error) {
	var errs []error
	if sp.SessionID == uuid.Nil || sp.UserID == uuid.Nil {
		errs = append(errs, fmt.Errorf("%w: session and user ids are required", ErrInvalidInput))
	}
	if sp.Method == "" {
		errs = append(errs, fmt.Errorf("%w: method is required", ErrInvalidInput))
	}
	if sp.RefreshDigest.IsZero() {
		errs = append(errs, fmt.Errorf("%w: refresh digest is required", ErrInvalidInput))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	now = now.UTC()
	var claims *Claims
	if sp.Claims != nil {
		claims = sp.Claims.clone()
	}
	s := &Session{}
	s.record(Started{
		SessionID: sp.SessionID, UserID: sp.UserID, Method: sp.Method, AMR: slices.Clone(sp.AMR),
		IP: sp.IP, UserAgent: events.Truncate(sp.UserAgent, MaxUserAgentLength), RefreshDigest: sp.RefreshDigest,
		StartedAt: now, IdleExpiresAt: minTime(now.Add(p.IdleTimeout), now.Add(p.AbsoluteLifetime)),
		ExpiresAt: now.Add(p.AbsoluteLifetime), Claims: claims, DeviceDigest: optionalDigest(sp.DeviceDigest),
	})
	return s, nil
}

// RefreshParams is one refresh request.
type RefreshParams struct {
	// Presented is the digest of the token the client sent.
	Presented Digest
	// Next is the digest of the token to hand out in its place.
	Next      Digest
	IP        string
	UserAgent string
}

// Refresh rotates the refresh token. Outcomes, in order of precedence:
//
//   - revoked session: ErrRevoked, nothing recorded;
//   - past the absolute lifetime or the idle timeout: Revoked with that
//     reason is recorded, ErrExpired;
//   - Presented is the current token: Refreshed;
//   - Presented is the immediately previous token, within p.RefreshGrace of
//     its rotation and the grace not yet used for it: Refreshed with Grace;
//   - Presented is any other token this session issued: ReuseDetected and
//     Revoked(reuse_detected) are recorded, ErrReuseDetected;
//   - otherwise: ErrInvalidToken, nothing recorded.
//
// Recorded events must be appended even when an error is returned.
func (s *Session) Refresh(rp RefreshParams, now time.Time, p Policy) error {
	if !s.started {
		return ErrNotStarted
	}
	if s.revoked {
		return ErrRevoked
	}
	now = now.UTC()
	if r, expired := s.expiry(now); expired {
		s.record(Revoked{SessionID: s.id, UserID: s.userID, Reason: r, RevokedAt: now})
		return ErrExpired
	}
	if rp.Next.IsZero() || rp.Next.Equal(rp.Presented) {
		return fmt.Errorf("%w: the next digest must be new", ErrInvalidInput)
	}
	ua := events.Truncate(rp.UserAgent, MaxUserAgentLength)
	refreshed := Refreshed{
		SessionID: s.id, RefreshDigest: rp.Next, PreviousDigest: rp.Presented, Generation: s.generation + 1,
		RefreshedAt: now, IdleExpiresAt: minTime(now.Add(p.IdleTimeout), s.expiresAt), IP: rp.IP, UserAgent: ua,
		Terms: &Terms{UserID: s.userID, Method: s.method, AMR: slices.Clone(s.amr), StartedAt: s.startedAt, ExpiresAt: s.expiresAt},
	}
	if s.claims != nil {
		refreshed.Claims = s.claims.clone()
	}
	isCurrent := rp.Presented.Equal(s.current)
	isPrevious := !s.previous.IsZero() && rp.Presented.Equal(s.previous)
	switch {
	case isCurrent:
		s.record(refreshed)
		return nil
	case isPrevious && !s.graceUsed && p.RefreshGrace > 0 && now.Sub(s.previousUntil) <= p.RefreshGrace:
		refreshed.Grace = true
		s.record(refreshed)
		return nil
	}
	if s.resumed {
		return ErrHistoryNeeded
	}
	if gen, ok := s.issued(rp.Presented); ok {
		s.record(ReuseDetected{SessionID: s.id, UserID: s.userID, PresentedDigest: rp.Presented, Generation: gen, DetectedAt: now, IP: rp.IP, UserAgent: ua})
		s.record(Revoked{SessionID: s.id, UserID: s.userID, Reason: ReasonReuseDetected, RevokedAt: now})
		return ErrReuseDetected
	}
	return ErrInvalidToken
}

// issued finds d among the rotated-out digests, comparing each in constant
// time, and returns its generation.
func (s *Session) issued(d Digest) (int, bool) {
	gen, found := 0, false
	for i, r := range s.retired {
		if r.Equal(d) {
			gen, found = i, true
		}
	}
	return gen, found
}

// HoldsRefreshToken reports whether d is the digest of the session's
// current refresh token (constant-time), the token a revocation request
// must present to end the session: an older one, or one never issued,
// ends nothing.
func (s *Session) HoldsRefreshToken(d Digest) bool {
	return s.started && !s.current.IsZero() && d.Equal(s.current)
}

// Revoke ends the session for reason. Revoking a revoked session records
// nothing and succeeds (logout twice is not an error).
func (s *Session) Revoke(reason Reason, now time.Time) error {
	if !s.started {
		return ErrNotStarted
	}
	if !slices.Contains(knownReasons, reason) {
		return fmt.Errorf("%w: unknown revocation reason %q", ErrInvalidInput, reason)
	}
	if s.revoked {
		return nil
	}
	s.record(Revoked{SessionID: s.id, UserID: s.userID, Reason: reason, RevokedAt: now.UTC()})
	return nil
}

// UpdateClaims gives the session the user's current claims c. It records
// ClaimsUpdated only when they differ from the session's and the session
// can still be refreshed at now: a revoked or expired session issues no
// more tokens, so it is left as it is (and nil is returned).
func (s *Session) UpdateClaims(c Claims, now time.Time) error {
	if err := s.CheckActive(now); err != nil {
		if errors.Is(err, ErrNotStarted) {
			return err
		}
		return nil
	}
	if s.claims != nil && s.claims.Equal(c) {
		return nil
	}
	s.record(ClaimsUpdated{SessionID: s.id, UserID: s.userID, Claims: *c.clone(), UpdatedAt: now.UTC()})
	return nil
}

// ExternalTokens are the fingerprints and expiry of the provider tokens
// the vault keeps for a session (never the tokens).
type ExternalTokens struct {
	AccessFingerprint  string
	IDFingerprint      string
	RefreshFingerprint string
	ExpiresAt          time.Time
}

// RecordExternalTokens records that the provider's tokens of an external
// login are stored, by fingerprint. A revoked session records nothing
// more and answers ErrRevoked.
func (s *Session) RecordExternalTokens(t ExternalTokens, now time.Time) error {
	if !s.started {
		return ErrNotStarted
	}
	if s.revoked {
		return ErrRevoked
	}
	if t.AccessFingerprint == "" {
		return fmt.Errorf("%w: the access token's fingerprint is required", ErrInvalidInput)
	}
	s.record(ExternalTokensStored{
		SessionID: s.id, UserID: s.userID, AccessFingerprint: t.AccessFingerprint, IDFingerprint: t.IDFingerprint,
		RefreshFingerprint: t.RefreshFingerprint, ExpiresAt: t.ExpiresAt.UTC(), StoredAt: now.UTC(),
	})
	return nil
}

// RecordExternalTokensRefreshed records a renewal of the provider's
// tokens at refreshedAt. A revoked session records nothing and answers
// ErrRevoked (its tokens are being deleted).
func (s *Session) RecordExternalTokensRefreshed(t ExternalTokens, refreshedAt time.Time) error {
	if !s.started {
		return ErrNotStarted
	}
	if s.revoked {
		return ErrRevoked
	}
	if t.AccessFingerprint == "" {
		return fmt.Errorf("%w: the access token's fingerprint is required", ErrInvalidInput)
	}
	s.record(ExternalTokensRefreshed{
		SessionID: s.id, UserID: s.userID, AccessFingerprint: t.AccessFingerprint, IDFingerprint: t.IDFingerprint,
		RefreshFingerprint: t.RefreshFingerprint, ExpiresAt: t.ExpiresAt.UTC(), RefreshedAt: refreshedAt.UTC(),
	})
	return nil
}

// CheckActive returns nil for a session that can be used at now:
// ErrRevoked, ErrExpired or ErrNotStarted otherwise. It records nothing
// (a read-side check, for example before issuing an access token).
func (s *Session) CheckActive(now time.Time) error {
	if !s.started {
		return ErrNotStarted
	}
	if s.revoked {
		return ErrRevoked
	}
	if _, expired := s.expiry(now); expired {
		return ErrExpired
	}
	return nil
}

// ExpireIfDue records Revoked with the idle or absolute reason when the
// session is past either at now (a sweeper's command); otherwise nothing.
func (s *Session) ExpireIfDue(now time.Time) error {
	if !s.started {
		return ErrNotStarted
	}
	if s.revoked {
		return nil
	}
	if r, expired := s.expiry(now); expired {
		s.record(Revoked{SessionID: s.id, UserID: s.userID, Reason: r, RevokedAt: now.UTC()})
	}
	return nil
}

func (s *Session) expiry(now time.Time) (Reason, bool) {
	switch {
	case !now.Before(s.expiresAt):
		return ReasonAbsoluteLifetime, true
	case !now.Before(s.idleExpiresAt):
		return ReasonIdleTimeout, true
	}
	return "", false
}

// ID is the session id.
func (s *Session) ID() uuid.UUID { return s.id }

// UserID is the owner.
func (s *Session) UserID() uuid.UUID { return s.userID }

// Method is the login method.
func (s *Session) Method() string { return s.method }

// AMR returns a copy of the authentication method references.
func (s *Session) AMR() []string { return slices.Clone(s.amr) }

// Claims are what the session's access tokens say about the user; false
// for a session started before sessions carried claims (read the user
// stream for those).
func (s *Session) Claims() (Claims, bool) {
	if s.claims == nil {
		return Claims{}, false
	}
	return *s.claims.clone(), true
}

// StartedAt is the login time.
func (s *Session) StartedAt() time.Time { return s.startedAt }

// LastUsedAt is the last refresh (or the start).
func (s *Session) LastUsedAt() time.Time { return s.lastUsedAt }

// ExpiresAt is the absolute end.
func (s *Session) ExpiresAt() time.Time { return s.expiresAt }

// IdleExpiresAt is when the session ends unless refreshed.
func (s *Session) IdleExpiresAt() time.Time { return s.idleExpiresAt }

// Generation counts rotations so far.
func (s *Session) Generation() int { return s.generation }

// Revoked reports whether, why and when the session was revoked.
func (s *Session) Revoked() (Reason, time.Time, bool) { return s.revokedReason, s.revokedAt, s.revoked }

// Version is the number of events folded; append Changes at Version()-1
// (NoStream for a new session).
func (s *Session) Version() int { return s.version }

// Changes are the events to append.
func (s *Session) Changes() []events.Event { return slices.Clone(s.changes) }

func (s *Session) record(e events.Event) {
	if err := s.apply(e); err != nil {
		panic(err) // only this aggregate's own, valid events reach here
	}
	s.changes = append(s.changes, e)
}

func (s *Session) apply(e events.Event) error {
	switch e := e.(type) {
	case Started:
		if s.started {
			return ErrAlreadyStarted
		}
		s.started = true
		s.id, s.userID, s.method, s.amr = e.SessionID, e.UserID, e.Method, e.AMR
		s.ip, s.userAgent = e.IP, e.UserAgent
		s.startedAt, s.lastUsedAt = e.StartedAt, e.StartedAt
		s.idleExpiresAt, s.expiresAt = e.IdleExpiresAt, e.ExpiresAt
		s.current = e.RefreshDigest
		if e.Claims != nil {
			s.claims = e.Claims.clone()
		}
	case Refreshed:
		if e.Grace {
			// The previous token was used up; the current one (never
			// received by the client, or received by a thief) is rotated
			// out and becomes the previous.
			s.graceUsed = true
		} else {
			s.graceUsed = false
		}
		s.retired = append(s.retired, s.current)
		s.previous, s.previousUntil = s.current, e.RefreshedAt
		s.current = e.RefreshDigest
		s.generation = e.Generation
		s.lastUsedAt, s.idleExpiresAt = e.RefreshedAt, e.IdleExpiresAt
		if e.IP != "" {
			s.ip = e.IP
		}
		if e.UserAgent != "" {
			s.userAgent = e.UserAgent
		}
		if e.Claims != nil {
			s.claims = e.Claims.clone()
		}
	case ClaimsUpdated:
		s.claims = e.Claims.clone()
	case ExternalTokensStored, ExternalTokensRefreshed:
		// The vault holds the tokens; nothing here decides on them.
	case ReuseDetected:
		// Revoked follows in the same append.
	case Revoked:
		s.revoked, s.revokedReason, s.revokedAt = true, e.Reason, e.RevokedAt
	default:
		return fmt.Errorf("session: unexpected event %T on a session stream", e)
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
