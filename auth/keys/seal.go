package keys

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// MasterKeySize is the master key length: 32 bytes, for AES-256.
const MasterKeySize = 32

// MasterKey seals and opens private keys (AES-256-GCM). It comes from
// configuration (a file or a base64 value), never from the log or the
// database: whoever has the database but not the master key has no
// signing key.
type MasterKey struct {
	aead cipher.AEAD
	id   string
	// secret is kept only to derive purpose-bound keys (DeriveKey).
	secret []byte
}

// NewMasterKey wraps 32 bytes of key material.
func NewMasterKey(b []byte) (*MasterKey, error) {
	if len(b) != MasterKeySize {
		return nil, fmt.Errorf("keys: master key must be %d bytes, got %d", MasterKeySize, len(b))
	}
	block, err := aes.NewCipher(b)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	m := hmac.New(sha256.New, b)
	m.Write([]byte("authledger master key id v1"))
	return &MasterKey{aead: aead, id: hex.EncodeToString(m.Sum(nil)[:8]), secret: bytes.Clone(b)}, nil
}

// DeriveKey returns a 32-byte key for one purpose (HKDF-SHA256 with the
// purpose as info), so that one configured secret serves several uses
// without any two sharing a key. The same master key and purpose always
// give the same key: the email-reservation key must stay stable for the
// reservation streams to be found again.
func (m *MasterKey) DeriveKey(purpose string) ([]byte, error) {
	if purpose == "" {
		return nil, errors.New("keys: DeriveKey needs a purpose")
	}
	k, err := hkdf.Key(sha256.New, m.secret, nil, "authledger "+purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("keys: derive %s: %w", purpose, err)
	}
	return k, nil
}

// DeriveAEAD returns AES-256-GCM under DeriveKey(purpose): the one way
// a store seals rows under the master key (the vault, the second
// factors' secrets, the users' data keys), so none builds its own cipher
// from a derived key. The derived bytes are cleared once the cipher holds
// them.
func (m *MasterKey) DeriveAEAD(purpose string) (cipher.AEAD, error) {
	k, err := m.DeriveKey(purpose)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	return aead, nil
}

// ID identifies the master key without revealing it (16 hex digits of an
// HMAC under it). Sealed keys record it, so opening with the wrong master
// key fails with a clear ErrWrongMasterKey instead of an opaque GCM error.
func (m *MasterKey) ID() string { return m.id }

// String never prints the key.
func (m *MasterKey) String() string { return "master key " + m.id }

// ParseMasterKey decodes a base64 value (standard or URL alphabet, padded
// or not; surrounding white space ignored), as found in an environment
// variable or a key file.
func ParseMasterKey(s string) (*MasterKey, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.Strict().DecodeString(s); err == nil {
			return NewMasterKey(b)
		}
	}
	return nil, errors.New("keys: master key is not base64")
}

// LoadMasterKeyFile reads a key file written by CreateDevMasterKeyFile (or
// by hand: 32 random bytes in base64). It refuses a file that other users
// can read.
func LoadMasterKeyFile(path string) (*MasterKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("keys: master key file: %w", err)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("keys: master key file %s is readable by every user (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: master key file: %w", err)
	}
	k, err := ParseMasterKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("keys: master key file %s: %w", path, err)
	}
	return k, nil
}

// CreateDevMasterKeyFile loads the key file at path, or, when there is none,
// creates one (mode 0600, parent directories 0700) with 32 random bytes and
// reports created = true, so that `make run` can say it did. It is meant
// for development: a production deployment configures its key.
func CreateDevMasterKeyFile(path string) (key *MasterKey, created bool, err error) {
	k, err := LoadMasterKeyFile(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	var b [MasterKeySize]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, false, fmt.Errorf("keys: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("keys: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) { // another process won the race
			k, err := LoadMasterKeyFile(path)
			return k, false, err
		}
		return nil, false, fmt.Errorf("keys: %w", err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(b[:]) + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, false, fmt.Errorf("keys: write %s: %w", path, werr)
	}
	k, err = NewMasterKey(b[:])
	return k, err == nil, err
}

// SealedKey is a private key encrypted under the master key: the row the
// key table stores. Nothing in it is secret without the master key.
type SealedKey struct {
	// ID is the key id (kid).
	ID string
	// Algorithm is the JWS algorithm ("ES256", "RS256", "EdDSA").
	Algorithm string
	// MasterKeyID names the master key that sealed it.
	MasterKeyID string
	// Nonce is the 12-byte GCM nonce, random per seal.
	Nonce []byte
	// Ciphertext is the sealed private JWK JSON with the GCM tag.
	Ciphertext []byte
	// CreatedAt is when the key was sealed.
	CreatedAt time.Time
}

var (
	// ErrWrongMasterKey: the key was sealed under another master key.
	ErrWrongMasterKey = errors.New("keys: sealed under a different master key")
	// ErrCorrupt: the sealed key fails authentication or does not match its
	// id and algorithm (a tampered or swapped row).
	ErrCorrupt = errors.New("keys: sealed key is corrupt or was tampered with")
)

// additionalData binds a ciphertext to its row: a sealed key copied under
// another id or algorithm does not open.
func additionalData(id, alg string) []byte {
	return []byte("authledger/signing-key/v1\x00" + id + "\x00" + alg)
}

// Seal encrypts k's private key. The nonce is random (96 bits), so sealing
// the same key twice gives two different rows; at the handful of keys a
// server ever makes, random nonces are far from GCM's collision bound.
func (m *MasterKey) Seal(k *SigningKey, now time.Time) (SealedKey, error) {
	plain, err := json.Marshal(k.private)
	if err != nil {
		return SealedKey{}, fmt.Errorf("keys: marshal private key: %w", err)
	}
	defer clear(plain)
	nonce := make([]byte, m.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return SealedKey{}, fmt.Errorf("keys: nonce: %w", err)
	}
	return SealedKey{
		ID: k.id, Algorithm: k.alg.String(), MasterKeyID: m.id, Nonce: nonce,
		Ciphertext: m.aead.Seal(nil, nonce, plain, additionalData(k.id, k.alg.String())),
		CreatedAt:  now.UTC(),
	}, nil
}

// Open decrypts a sealed key and checks that it is what its row says: its
// thumbprint is its id and its type fits its algorithm.
func (m *MasterKey) Open(s SealedKey) (*SigningKey, error) {
	if s.MasterKeyID != "" && s.MasterKeyID != m.id {
		return nil, fmt.Errorf("%w: key %s was sealed under master key %s, configured is %s", ErrWrongMasterKey, s.ID, s.MasterKeyID, m.id)
	}
	if len(s.Nonce) != m.aead.NonceSize() {
		return nil, fmt.Errorf("%w: key %s has a bad nonce", ErrCorrupt, s.ID)
	}
	plain, err := m.aead.Open(nil, s.Nonce, s.Ciphertext, additionalData(s.ID, s.Algorithm))
	if err != nil {
		return nil, fmt.Errorf("%w: key %s", ErrCorrupt, s.ID)
	}
	defer clear(plain)
	priv, err := jwk.ParseKey(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: key %s: %v", ErrCorrupt, s.ID, err)
	}
	alg, err := ParseAlgorithm(s.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("%w: key %s: %v", ErrCorrupt, s.ID, err)
	}
	k, err := fromPrivate(priv, alg)
	if err != nil {
		return nil, fmt.Errorf("%w: key %s: %v", ErrCorrupt, s.ID, err)
	}
	if k.id != s.ID {
		return nil, fmt.Errorf("%w: key %s opens to key %s", ErrCorrupt, s.ID, k.id)
	}
	return k, nil
}

// Store is the port of the encrypted key table. Adapters (PostgreSQL)
// implement it; MemoryStore is the reference.
type Store interface {
	// SaveSealed inserts a sealed key. Saving an id that exists fails with
	// ErrKeyExists (keys are immutable; a retry after a crash reads back).
	SaveSealed(ctx context.Context, k SealedKey) error
	// LoadSealed returns every sealed key, in any order.
	LoadSealed(ctx context.Context) ([]SealedKey, error)
}

// ErrKeyExists: a sealed key with that id is already stored.
var ErrKeyExists = errors.New("keys: key id already stored")
