// Package apikey is the service side of API keys: the key's format (al_,
// key id, 256-bit secret from crypto/rand) and its digest, the
// instance's view of every key fed by the log (Keys), and the last-used
// times kept in memory and written to a read-model table now and then
// (Usage), never as an event or a commit per request.
package apikey

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/google/uuid"

	domain "github.com/authledger/authledger/domain/apikey"
)

// Prefix starts every API key, so that the authentication middleware
// tells a key from a JWT without parsing it and secret scanners find
// leaked ones.
const Prefix = "al_"

// secretBytes is the secret's size: 256 bits from crypto/rand.
const secretBytes = 32

// encodedLen is the length of an encoded key: prefix, 32 hex digits of
// the key id, "_", the secret in unpadded base64url.
var encodedLen = len(Prefix) + 32 + 1 + base64.RawURLEncoding.EncodedLen(secretBytes)

// Secret is an API key as its owner holds it. Its String and GoString
// redact the secret.
type Secret struct {
	id     uuid.UUID
	secret [secretBytes]byte
}

// NewSecret makes a key with a new random id and secret.
func NewSecret() (Secret, error) {
	var s Secret
	id, err := uuid.NewRandom()
	if err != nil {
		return s, err
	}
	s.id = id
	if _, err := rand.Read(s.secret[:]); err != nil {
		return s, err
	}
	return s, nil
}

// IsKey reports whether raw has the shape of a key (the prefix): the
// authentication middleware sends it here rather than to the JWT check.
func IsKey(raw string) bool { return strings.HasPrefix(raw, Prefix) }

// ParseSecret reads an encoded key; any deviation from the one format is
// domain.ErrInvalid.
func ParseSecret(raw string) (Secret, error) {
	var s Secret
	if len(raw) != encodedLen || !IsKey(raw) || raw[len(Prefix)+32] != '_' {
		return s, domain.ErrInvalid
	}
	idHex := raw[len(Prefix) : len(Prefix)+32]
	var idb [16]byte
	if n, err := hex.Decode(idb[:], []byte(idHex)); err != nil || n != 16 || strings.ToLower(idHex) != idHex {
		return s, domain.ErrInvalid
	}
	sec, err := base64.RawURLEncoding.Strict().DecodeString(raw[len(Prefix)+33:])
	if err != nil || len(sec) != secretBytes {
		return s, domain.ErrInvalid
	}
	s.id = uuid.UUID(idb)
	copy(s.secret[:], sec)
	return s, nil
}

// ID is the key id (public: it names the key in lists and URLs).
func (s Secret) ID() uuid.UUID { return s.id }

// Encode is the key as shown once to its owner.
func (s Secret) Encode() string {
	return Prefix + hex.EncodeToString(s.id[:]) + "_" + base64.RawURLEncoding.EncodeToString(s.secret[:])
}

// Digest is the hex HMAC-SHA-256 of the encoded key under key (the
// instance's digest key, derived from the master key): what the log
// stores. A keyed hash, not a password hash: the secret has 256 bits of
// entropy, so no guessing is feasible that a slow hash would slow down
// (docs/adr/0029); the key makes a copy of the log alone useless for
// checking a candidate.
func (s Secret) Digest(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s.Encode()))
	return hex.EncodeToString(m.Sum(nil))
}

// Matches compares s's digest with a stored one in constant time.
func (s Secret) Matches(key []byte, digest string) bool {
	return hmac.Equal([]byte(s.Digest(key)), []byte(digest))
}

// String redacts the secret.
func (s Secret) String() string { return Prefix + hex.EncodeToString(s.id[:]) + "_REDACTED" }

// GoString redacts the secret.
func (s Secret) GoString() string { return "apikey.Secret{" + s.String() + "}" }
