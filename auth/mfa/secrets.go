package mfa

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/auth/keys"
)

// SecretsTable holds the sealed TOTP secrets, one row per method. It is
// not a read model (the log cannot rebuild it: the secrets are in no
// event), so no projection owns it and a rebuild leaves it alone.
const SecretsTable = "mfa_secrets"

// secretsPurpose is the HKDF info of the table's key. Changing it makes
// every stored secret unreadable.
const secretsPurpose = "mfa secrets v1" //nolint:gosec // a derivation label, not a credential

var (
	// ErrSecretNotFound: no secret is stored for the method.
	ErrSecretNotFound = errors.New("mfa: no secret for this method")
	// ErrSecretCorrupt: the row does not open (tampered with, moved to
	// another method or user, or sealed under a key not configured).
	ErrSecretCorrupt = errors.New("mfa: sealed secret is corrupt or sealed under another key")
)

// Secrets is the sealed secret table. Safe for concurrent use.
type Secrets struct {
	pool    *pgxpool.Pool
	current sealer
	sealers map[string]sealer
}

type sealer struct {
	id   string
	aead cipher.AEAD
}

// NewSecrets returns the table's store; master seals every write, old
// keys still open rows sealed under them (master key rotation).
func NewSecrets(pool *pgxpool.Pool, master *keys.MasterKey, old ...*keys.MasterKey) (*Secrets, error) {
	if pool == nil || master == nil {
		return nil, errors.New("mfa: secrets need a pool and a master key")
	}
	s := &Secrets{pool: pool, sealers: map[string]sealer{}}
	for i, mk := range append([]*keys.MasterKey{master}, old...) {
		aead, err := mk.DeriveAEAD(secretsPurpose)
		if err != nil {
			return nil, fmt.Errorf("mfa: %w", err)
		}
		sl := sealer{id: mk.ID(), aead: aead}
		if i == 0 {
			s.current = sl
		}
		if _, dup := s.sealers[sl.id]; !dup {
			s.sealers[sl.id] = sl
		}
	}
	return s, nil
}

// Setup creates SecretsTable when it does not exist.
func (s *Secrets) Setup(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+SecretsTable+` (
		method_id  uuid PRIMARY KEY,
		user_id    uuid NOT NULL,
		key_id     text NOT NULL,
		nonce      bytea NOT NULL,
		ciphertext bytea NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now())`)
	if err != nil {
		return fmt.Errorf("mfa: create %s: %w", SecretsTable, err)
	}
	return nil
}

// additionalData binds a ciphertext to its row: a secret copied to
// another method or user, or relabelled with another key id, does not
// open.
func additionalData(method, user uuid.UUID, keyID string) []byte {
	return []byte("authledger/mfa-secrets/v1\x00" + method.String() + "\x00" + user.String() + "\x00" + keyID)
}

// Put seals secret as method's of user. A method's secret is written once
// (a new app is a new method): writing it again is refused.
func (s *Secrets) Put(ctx context.Context, method, user uuid.UUID, secret string) error {
	nonce := make([]byte, s.current.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("mfa: nonce: %w", err)
	}
	ct := s.current.aead.Seal(nil, nonce, []byte(secret), additionalData(method, user, s.current.id))
	_, err := s.pool.Exec(ctx, `INSERT INTO `+SecretsTable+` (method_id, user_id, key_id, nonce, ciphertext) VALUES ($1, $2, $3, $4, $5)`,
		method, user, s.current.id, nonce, ct)
	if err != nil {
		return fmt.Errorf("mfa: store secret: %w", err)
	}
	return nil
}

// Get opens the secret of user's method.
func (s *Secrets) Get(ctx context.Context, method, user uuid.UUID) (string, error) {
	var keyID string
	var nonce, ct []byte
	err := s.pool.QueryRow(ctx, `SELECT key_id, nonce, ciphertext FROM `+SecretsTable+` WHERE method_id = $1 AND user_id = $2`, method, user).
		Scan(&keyID, &nonce, &ct)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrSecretNotFound
	}
	if err != nil {
		return "", fmt.Errorf("mfa: read secret: %w", err)
	}
	sl, ok := s.sealers[keyID]
	if !ok || len(nonce) != sl.aead.NonceSize() {
		return "", ErrSecretCorrupt
	}
	b, err := sl.aead.Open(nil, nonce, ct, additionalData(method, user, keyID))
	if err != nil {
		return "", ErrSecretCorrupt
	}
	return string(b), nil
}

// Delete forgets method's secret (removed methods); a missing row is not
// an error.
func (s *Secrets) Delete(ctx context.Context, method uuid.UUID) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM `+SecretsTable+` WHERE method_id = $1`, method); err != nil {
		return fmt.Errorf("mfa: delete secret: %w", err)
	}
	return nil
}
