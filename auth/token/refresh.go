package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
)

// RefreshSecretBytes is the entropy of a refresh token: 256 bits from
// crypto/rand, so the token cannot be guessed and its SHA-256 digest can be
// stored without a salt or a slow hash.
const RefreshSecretBytes = 32

// refreshTokenLength is the exact length of the wire form:
// 36 (canonical UUID) + 1 (".") + 43 (unpadded base64url of 32 bytes).
const refreshTokenLength = 36 + 1 + 43

// ErrInvalidRefreshToken: the string is not a well-formed refresh token.
// Answer 401 invalid-token, exactly as for a wrong one.
var ErrInvalidRefreshToken = errors.New("token: malformed refresh token")

// RefreshToken is an opaque refresh token that names its session:
// "<session uuid>.<base64url secret>". The session id lets a refresh load
// the one session stream it concerns; only the token's SHA-256 digest is
// ever stored, and compared in constant time.
//
// String and LogValue redact the secret; only Encode reveals it, for the
// response body.
type RefreshToken struct {
	sessionID uuid.UUID
	secret    [RefreshSecretBytes]byte
}

// NewRefreshToken draws a fresh token for sessionID.
func NewRefreshToken(sessionID uuid.UUID) (RefreshToken, error) {
	if sessionID == uuid.Nil {
		return RefreshToken{}, errors.New("token: refresh token needs a session id")
	}
	t := RefreshToken{sessionID: sessionID}
	if _, err := rand.Read(t.secret[:]); err != nil {
		return RefreshToken{}, fmt.Errorf("token: refresh secret: %w", err)
	}
	return t, nil
}

var secretEncoding = base64.RawURLEncoding.Strict()

// ParseRefreshToken parses the wire form strictly: exact length, the
// canonical lower-case UUID, a dot, and exactly 32 bytes of unpadded
// base64url with no stray bits. Anything else is ErrInvalidRefreshToken,
// before any stream is read.
func ParseRefreshToken(s string) (RefreshToken, error) {
	if len(s) != refreshTokenLength || s[36] != '.' {
		return RefreshToken{}, ErrInvalidRefreshToken
	}
	id, err := uuid.Parse(s[:36])
	if err != nil || id == uuid.Nil || id.String() != s[:36] {
		return RefreshToken{}, ErrInvalidRefreshToken
	}
	raw, err := secretEncoding.DecodeString(s[37:])
	if err != nil || len(raw) != RefreshSecretBytes {
		return RefreshToken{}, ErrInvalidRefreshToken
	}
	t := RefreshToken{sessionID: id}
	copy(t.secret[:], raw)
	return t, nil
}

// SessionID is the session the token belongs to.
func (t RefreshToken) SessionID() uuid.UUID { return t.sessionID }

// Encode returns the wire form, the secret the client holds. Send it in the
// response body; never log it or put it in an event.
func (t RefreshToken) Encode() string {
	return t.sessionID.String() + "." + secretEncoding.EncodeToString(t.secret[:])
}

// Digest is the SHA-256 of the wire form: what the session stream stores.
// Convert it with session.Digest(t.Digest()).
func (t RefreshToken) Digest() [sha256.Size]byte { return sha256.Sum256([]byte(t.Encode())) }

// Matches reports, in constant time, whether the token's digest is d.
func (t RefreshToken) Matches(d [sha256.Size]byte) bool { return DigestEqual(t.Digest(), d) }

// String redacts the secret, so a token that reaches a log line or an
// error message leaks nothing.
func (t RefreshToken) String() string { return t.sessionID.String() + ".REDACTED" }

// LogValue redacts the secret for log/slog.
func (t RefreshToken) LogValue() slog.Value { return slog.StringValue(t.String()) }

// GoString redacts the secret for %#v.
func (t RefreshToken) GoString() string { return "token.RefreshToken{" + t.String() + "}" }

// DigestEqual compares two digests in constant time.
func DigestEqual(a, b [sha256.Size]byte) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }
