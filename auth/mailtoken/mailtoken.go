// Package mailtoken makes the single-use tokens mailed to a user (email
// verification, password reset) and reads them back.
//
// A token names its user and its id and carries a 256-bit secret:
// HMAC-SHA256 under a key derived from the master key, of the purpose, the
// user id and the token id. The command that asks for a token records
// only the id and the SHA-256 digest of the secret in the log; the
// outgoing-message reactor, which holds the same key, derives the secret
// again from the id to put it in the mail. So the token is in no event
// and no table, a retried mail carries the same token, and checking a
// token needs no key (the digest in the user stream is compared).
package mailtoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// Purpose separates the tokens of different flows: a verification token
// never works as a reset token. Never change a value (outstanding tokens
// would stop working).
type Purpose string

// The purposes.
const (
	EmailVerification Purpose = "email verification v1"
	PasswordReset     Purpose = "password reset v1"
	// MFACode is a second factor's emailed code (Token.Code).
	MFACode Purpose = "mfa code v1"
)

// MinKeyBytes is the shortest key a Minter accepts.
const MinKeyBytes = 32

// ErrMalformed: the string is not a token of this package.
var ErrMalformed = errors.New("mailtoken: malformed token")

// Minter derives tokens under one key.
type Minter struct{ key []byte }

// NewMinter returns a Minter keyed by key (at least MinKeyBytes).
func NewMinter(key []byte) (*Minter, error) {
	if len(key) < MinKeyBytes {
		return nil, errors.New("mailtoken: the key must be at least 32 bytes")
	}
	return &Minter{key: append([]byte(nil), key...)}, nil
}

// Token is a decoded or minted token.
type Token struct {
	UserID  uuid.UUID
	TokenID uuid.UUID
	secret  [32]byte
}

// Mint derives the token of purpose for userID's token tokenID: the same
// arguments give the same token.
func (m *Minter) Mint(p Purpose, userID, tokenID uuid.UUID) Token {
	mac := hmac.New(sha256.New, m.key)
	mac.Write([]byte(p))
	mac.Write([]byte{0})
	mac.Write(userID[:])
	mac.Write(tokenID[:])
	t := Token{UserID: userID, TokenID: tokenID}
	copy(t.secret[:], mac.Sum(nil))
	return t
}

// Digest is the SHA-256 of the secret: what the log holds.
func (t Token) Digest() [32]byte { return sha256.Sum256(t.secret[:]) }

// Code is the token's secret as a 6-digit code, for a message a person
// types from (an emailed second factor): 64 bits of the secret reduced
// mod 10^6, a bias below 10^-13. A code is checked by deriving it again
// (Minter.Mint), never by a digest: a digest of 10^6 values is no
// secret.
func (t Token) Code() string {
	n := binary.BigEndian.Uint64(t.secret[:8]) % 1_000_000
	return fmt.Sprintf("%06d", n)
}

// Encode is the token as it goes in a link: 64 bytes in unpadded
// base64url (86 characters).
func (t Token) Encode() string {
	b := make([]byte, 0, 64)
	b = append(b, t.UserID[:]...)
	b = append(b, t.TokenID[:]...)
	b = append(b, t.secret[:]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Parse decodes an encoded token. It checks the shape only: whether the
// token is valid is the user stream's to say (its digest).
func Parse(s string) (Token, error) {
	if len(s) != base64.RawURLEncoding.EncodedLen(64) {
		return Token{}, ErrMalformed
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 64 {
		return Token{}, ErrMalformed
	}
	var t Token
	copy(t.UserID[:], b[:16])
	copy(t.TokenID[:], b[16:32])
	copy(t.secret[:], b[32:])
	if t.UserID == uuid.Nil || t.TokenID == uuid.Nil {
		return Token{}, ErrMalformed
	}
	return t, nil
}
