package mfa

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"

	"github.com/google/uuid"
)

// ErrMalformedToken: the string is not an mfa_token.
var ErrMalformedToken = errors.New("mfa: malformed mfa_token")

// tokenPrefix marks an mfa_token, so that it is never mistaken for (or
// accepted as) an access or refresh token.
const tokenPrefix = "mfa_"

// ChallengeToken is an mfa_token: it names its user and challenge and
// carries a 256-bit secret whose digest the challenge's event holds.
type ChallengeToken struct {
	UserID      uuid.UUID
	ChallengeID uuid.UUID
	secret      [32]byte
}

// NewChallengeToken makes a token for challenge id of user.
func NewChallengeToken(user, id uuid.UUID) (ChallengeToken, error) {
	t := ChallengeToken{UserID: user, ChallengeID: id}
	if _, err := rand.Read(t.secret[:]); err != nil {
		return ChallengeToken{}, err
	}
	return t, nil
}

// Digest is the hex SHA-256 of the secret: what the log holds.
func (t ChallengeToken) Digest() string {
	sum := sha256.Sum256(t.secret[:])
	return hex.EncodeToString(sum[:])
}

// Encode is the token as the client gets it.
func (t ChallengeToken) Encode() string {
	b := make([]byte, 0, 64)
	b = append(b, t.UserID[:]...)
	b = append(b, t.ChallengeID[:]...)
	b = append(b, t.secret[:]...)
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseChallengeToken decodes Encode's output.
func ParseChallengeToken(s string) (ChallengeToken, error) {
	if len(s) != len(tokenPrefix)+86 || s[:len(tokenPrefix)] != tokenPrefix {
		return ChallengeToken{}, ErrMalformedToken
	}
	b, err := base64.RawURLEncoding.DecodeString(s[len(tokenPrefix):])
	if err != nil || len(b) != 64 {
		return ChallengeToken{}, ErrMalformedToken
	}
	var t ChallengeToken
	copy(t.UserID[:], b[:16])
	copy(t.ChallengeID[:], b[16:32])
	copy(t.secret[:], b[32:])
	return t, nil
}
