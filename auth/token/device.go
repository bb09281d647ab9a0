package token

import (
	"crypto/sha256"
	"errors"
	"log/slog"
	"strings"

	"github.com/google/uuid"
)

// devicePrefix starts the wire form of a device token, so that a device
// token and a refresh token (same secret, same session naming) can never be
// taken for one another: each parser refuses the other's form outright.
const devicePrefix = "dev_"

// ErrInvalidDeviceToken: the string is not a well-formed device token. A
// login treats it as no device at all.
var ErrInvalidDeviceToken = errors.New("token: malformed device token")

// DeviceToken marks a device that logged in before: "dev_<session
// uuid>.<base64url secret>", drawn at a successful login and named after
// the session that login started, whose session.started.v1 holds its
// SHA-256 digest (never the token). A later login of the same user that
// presents it is from a known device (docs/login-throttling.md).
//
// String and LogValue redact the secret; only Encode reveals it.
type DeviceToken struct{ t RefreshToken }

// NewDeviceToken draws a fresh token for the session a login starts.
func NewDeviceToken(sessionID uuid.UUID) (DeviceToken, error) {
	t, err := NewRefreshToken(sessionID)
	return DeviceToken{t}, err
}

// ParseDeviceToken parses the wire form strictly, before any stream is
// read; anything else is ErrInvalidDeviceToken.
func ParseDeviceToken(s string) (DeviceToken, error) {
	rest, ok := strings.CutPrefix(s, devicePrefix)
	if !ok {
		return DeviceToken{}, ErrInvalidDeviceToken
	}
	t, err := ParseRefreshToken(rest)
	if err != nil {
		return DeviceToken{}, ErrInvalidDeviceToken
	}
	return DeviceToken{t}, nil
}

// SessionID is the session whose login issued the token.
func (d DeviceToken) SessionID() uuid.UUID { return d.t.SessionID() }

// Encode returns the wire form, the secret the client keeps (a cookie, or
// the device_token of the login body). Never log it or put it in an event.
func (d DeviceToken) Encode() string { return devicePrefix + d.t.Encode() }

// Digest is the SHA-256 of the wire form: what the session stream stores.
func (d DeviceToken) Digest() [sha256.Size]byte { return sha256.Sum256([]byte(d.Encode())) }

// Matches reports, in constant time, whether the token's digest is dg.
func (d DeviceToken) Matches(dg [sha256.Size]byte) bool { return DigestEqual(d.Digest(), dg) }

// String redacts the secret.
func (d DeviceToken) String() string { return devicePrefix + d.t.String() }

// LogValue redacts the secret for log/slog.
func (d DeviceToken) LogValue() slog.Value { return slog.StringValue(d.String()) }

// GoString redacts the secret for %#v.
func (d DeviceToken) GoString() string { return "token.DeviceToken{" + d.String() + "}" }
