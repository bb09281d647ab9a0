package session

import (
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/events"
)

// Event names: data in the log, never renamed.
const (
	EventStarted       = "session.started.v1"
	EventRefreshed     = "session.refreshed.v1"
	EventReuseDetected = "session.reuse_detected.v1"
	EventRevoked       = "session.revoked.v1"
	EventClaimsUpdated = "session.claims_updated.v1"
	// EventExternalTokensStored follows Started for an external login.
	EventExternalTokensStored = "session.external_tokens_stored.v1"
	// EventExternalTokensRefreshed records each renewal by the vault's
	// refresher.
	EventExternalTokensRefreshed = "session.external_tokens_refreshed.v1"
)

// Started opens a session at a successful login; it is also the record of
// that login (the user stream does not have one). RefreshDigest is the
// SHA-256 of the refresh token handed out, never the token.
type Started struct {
	SessionID uuid.UUID `json:"session_id"`
	UserID    uuid.UUID `json:"user_id"`
	// Method is how the user logged in ("password", later "oidc", ...).
	Method string `json:"method"`
	// AMR are the RFC 8176 authentication method references ("pwd").
	AMR           []string  `json:"amr"`
	IP            string    `json:"ip,omitempty"`
	UserAgent     string    `json:"user_agent,omitempty"`
	RefreshDigest Digest    `json:"refresh_digest"`
	StartedAt     time.Time `json:"started_at"`
	// IdleExpiresAt: the session ends unless refreshed before this.
	IdleExpiresAt time.Time `json:"idle_expires_at"`
	// ExpiresAt: the absolute end, whatever the refreshes.
	ExpiresAt time.Time `json:"expires_at"`
	// Claims are the user's, as read at the login: the access tokens of
	// the session carry them. Absent in events recorded before sessions
	// carried them; a refresh of such a session reads the user stream.
	Claims *Claims `json:"claims,omitempty"`
	// DeviceDigest is the SHA-256 of the known-device token handed out
	// with this login (token.DeviceToken), never the token: presenting it
	// at a later login of the same user proves a device that logged in
	// before (docs/login-throttling.md). Absent when none was issued.
	DeviceDigest *Digest `json:"device_digest,omitempty"`
}

// Refreshed rotates the refresh token. PreviousDigest is the digest that
// was presented (the one rotated out), kept for reuse detection.
type Refreshed struct {
	SessionID      uuid.UUID `json:"session_id"`
	RefreshDigest  Digest    `json:"refresh_digest"`
	PreviousDigest Digest    `json:"previous_digest"`
	// Generation counts rotations: 1 for the first refresh.
	Generation    int       `json:"generation"`
	RefreshedAt   time.Time `json:"refreshed_at"`
	IdleExpiresAt time.Time `json:"idle_expires_at"`
	// Grace is true when the token presented was the immediately previous
	// one, accepted once more inside the grace period (a client that lost
	// the response to its last refresh).
	Grace     bool   `json:"grace,omitempty"`
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
	// Terms repeats what the session was started with, so that the
	// stream's last event is enough to decide the next refresh (Resume):
	// a refresh then reads one event, not every rotation of a session
	// that may live for weeks. Absent in events recorded before it was
	// added; such a session is folded whole.
	Terms *Terms `json:"terms,omitempty"`
	// Claims repeats the session's claims for the same reason (absent
	// when the session has none, see Started.Claims).
	Claims *Claims `json:"claims,omitempty"`
}

// Terms are the parts of Started that stay fixed for the session's life.
type Terms struct {
	UserID    uuid.UUID `json:"user_id"`
	Method    string    `json:"method"`
	AMR       []string  `json:"amr"`
	StartedAt time.Time `json:"started_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Claims are what a session's access tokens say about its user beyond the
// ids. A session takes them from the user stream at login and keeps them
// current through ClaimsUpdated, so that a refresh need not read the user
// stream (ADR 0006).
type Claims struct {
	Email string   `json:"email"`
	Name  string   `json:"name"`
	Roles []string `json:"roles"`
	// EmailVerified: the user verified Email (absent in claims recorded
	// before verification existed: false).
	EmailVerified bool `json:"email_verified,omitempty"`
}

// Equal compares two sets of claims, roles in any order.
func (c Claims) Equal(o Claims) bool {
	if c.Email != o.Email || c.Name != o.Name || c.EmailVerified != o.EmailVerified || len(c.Roles) != len(o.Roles) {
		return false
	}
	a, b := slices.Clone(c.Roles), slices.Clone(o.Roles)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func (c Claims) clone() *Claims {
	c.Roles = slices.Clone(c.Roles)
	return &c
}

// ClaimsUpdated gives an open session its user's current claims, after a
// change to the user's roles or display name (or a login that read the user
// just before such a change). The sessionclaims policy appends it.
type ClaimsUpdated struct {
	SessionID uuid.UUID `json:"session_id"`
	UserID    uuid.UUID `json:"user_id"`
	Claims    Claims    `json:"claims"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ReuseDetected records that an already rotated refresh token was
// presented: it was stolen or replayed (RFC 9700 section 4.14). It is
// always appended together with Revoked.
type ReuseDetected struct {
	SessionID uuid.UUID `json:"session_id"`
	// UserID is the session's user, named so that the event's IP and user
	// agent are sealed under their key (ADR 0034); absent in events
	// recorded before, whose IP and user agent stay in clear.
	UserID          uuid.UUID `json:"user_id,omitempty"`
	PresentedDigest Digest    `json:"presented_digest"`
	// Generation of the presented token (0 is the token issued at start).
	Generation int       `json:"generation"`
	DetectedAt time.Time `json:"detected_at"`
	IP         string    `json:"ip,omitempty"`
	UserAgent  string    `json:"user_agent,omitempty"`
}

// Revoked ends a session: its refresh token stops working and its access
// tokens are rejected by the revocation set. UserID is repeated here so
// that consumers need not have seen Started.
type Revoked struct {
	SessionID uuid.UUID `json:"session_id"`
	UserID    uuid.UUID `json:"user_id"`
	Reason    Reason    `json:"reason"`
	RevokedAt time.Time `json:"revoked_at"`
}

// ExternalTokensStored records that the external provider's tokens of the
// session are in the vault (auth/vault): their SHA-256 fingerprints
// (external.Fingerprint) and the access token's expiry, never the tokens
// (ARCHITECTURE.md rule 4). IDFingerprint and RefreshFingerprint are
// absent when the provider sent no such token.
type ExternalTokensStored struct {
	SessionID          uuid.UUID `json:"session_id"`
	UserID             uuid.UUID `json:"user_id"`
	AccessFingerprint  string    `json:"access_fingerprint"`
	IDFingerprint      string    `json:"id_fingerprint,omitempty"`
	RefreshFingerprint string    `json:"refresh_fingerprint,omitempty"`
	ExpiresAt          time.Time `json:"expires_at"`
	StoredAt           time.Time `json:"stored_at"`
}

func (ExternalTokensStored) EventName() string { return EventExternalTokensStored }

// ExternalTokensRefreshed records that the vault's refresher renewed the
// session's provider tokens: the new fingerprints and expiry, as
// ExternalTokensStored. RefreshFingerprint is the refresh token kept,
// the old one when the provider sent none.
type ExternalTokensRefreshed struct {
	SessionID          uuid.UUID `json:"session_id"`
	UserID             uuid.UUID `json:"user_id"`
	AccessFingerprint  string    `json:"access_fingerprint"`
	IDFingerprint      string    `json:"id_fingerprint,omitempty"`
	RefreshFingerprint string    `json:"refresh_fingerprint,omitempty"`
	ExpiresAt          time.Time `json:"expires_at"`
	RefreshedAt        time.Time `json:"refreshed_at"`
}

func (ExternalTokensRefreshed) EventName() string { return EventExternalTokensRefreshed }

func (Started) EventName() string       { return EventStarted }
func (Refreshed) EventName() string     { return EventRefreshed }
func (ReuseDetected) EventName() string { return EventReuseDetected }
func (Revoked) EventName() string       { return EventRevoked }
func (ClaimsUpdated) EventName() string { return EventClaimsUpdated }

// AllEvents lists one zero value of every event type of this package.
func AllEvents() []events.Event {
	return []events.Event{Started{}, Refreshed{}, ReuseDetected{}, Revoked{}, ClaimsUpdated{}, ExternalTokensStored{}, ExternalTokensRefreshed{}, RevokedBefore{}}
}

// RegisterEvents adds the session events to r as value types.
func RegisterEvents(r *events.Registry) error { return r.Register(AllEvents()...) }
