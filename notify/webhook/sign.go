// Package webhook sends webhook deliveries: the Standard Webhooks
// signature (https://www.standardwebhooks.com) under secrets derived
// from the master key, and an HTTP client that refuses private,
// loopback and link-local addresses after DNS resolution (SSRF) unless
// an allowlist names them.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// SecretPrefix starts a secret as shown to its owner (the Standard
// Webhooks form: whsec_ + the base64 of the key bytes).
const SecretPrefix = "whsec_"

// Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// MinKeyBytes is the shortest key a Secrets accepts.
const MinKeyBytes = 32

// Secrets derives endpoints' secrets under one key (derived from the
// master key by cmd/): HMAC-SHA256 of a purpose label, the endpoint id
// and the secret version. The same arguments give the same secret, so no
// secret is stored anywhere; whoever holds the master key can make them.
type Secrets struct{ key []byte }

// NewSecrets returns a Secrets keyed by key (at least MinKeyBytes).
func NewSecrets(key []byte) (*Secrets, error) {
	if len(key) < MinKeyBytes {
		return nil, errors.New("webhook: the secret key must be at least 32 bytes")
	}
	return &Secrets{key: append([]byte(nil), key...)}, nil
}

// Secret is an endpoint's signing key (32 bytes when derived here; a
// receiver's parsed one may have 24 to 64, as the specification allows).
// The zero value signs with an empty key: never use it.
type Secret struct{ key string }

// Derive is the secret of endpoint id at version.
func (s *Secrets) Derive(id uuid.UUID, version int) Secret {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte("webhook secret v1\x00"))
	mac.Write(id[:])
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(max(version, 0))) //nolint:gosec // max(...,0) is never negative
	mac.Write(v[:])
	return Secret{key: string(mac.Sum(nil))}
}

// String is the secret as shown once to its owner: whsec_<base64>.
func (s Secret) String() string {
	return SecretPrefix + base64.StdEncoding.EncodeToString([]byte(s.key))
}

// ParseSecret reads a whsec_ secret (what a receiver configures): 24 to
// 64 bytes.
func ParseSecret(s string) (Secret, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
	if err != nil || len(b) < 24 || len(b) > 64 {
		return Secret{}, errors.New("webhook: not a whsec_ secret of 24 to 64 bytes")
	}
	return Secret{key: string(b)}, nil
}

// Sign is the webhook-signature value of one delivery: "v1," + the
// base64 HMAC-SHA256 under the secret of "id.timestamp.body".
func (s Secret) Sign(id string, at time.Time, body []byte) string {
	mac := hmac.New(sha256.New, []byte(s.key))
	mac.Write([]byte(id + "." + strconv.FormatInt(at.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ErrSignature: a delivery's signature or timestamp does not check.
var ErrSignature = errors.New("webhook: signature does not verify")

// Verify checks a delivery as a receiver must: the timestamp within
// tolerance of now (replays of old deliveries refused), and one of the
// space-separated v1 signatures equal to ours, compared in constant time.
func (s Secret) Verify(id, timestamp, signatures string, body []byte, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrSignature
	}
	at := time.Unix(sec, 0)
	if d := now.Sub(at); d > tolerance || d < -tolerance {
		return ErrSignature
	}
	want := []byte(s.Sign(id, at, body))
	for sig := range strings.FieldsSeq(signatures) {
		if hmac.Equal([]byte(sig), want) {
			return nil
		}
	}
	return ErrSignature
}
