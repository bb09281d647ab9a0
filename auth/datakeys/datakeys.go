// Package datakeys holds each user's data key: the AES-256 key that seals
// the user's personal data in the log (eventstore/sealed), kept outside the
// log in the table user_data_keys, each key sealed (AES-256-GCM) under a
// key derived from the master key. Erase destroys a user's key for good:
// from then on the sealed fields of that user's events are unreadable
// (crypto-shredding; docs/adr/0034-gdpr-erasure-by-crypto-shredding.md).
//
// The table is created at start-up (EnsureTable), like the API keys' usage
// table: it is not the log, and a row is only ever inserted or emptied.
package datakeys

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/auth/keys"
)

// Table holds one row per user that ever had personal data sealed:
// the sealed key, or, once erased, no key and the erasure time.
const Table = "user_data_keys"

// purpose is the HKDF info of the key that seals the data keys. Changing
// it makes every data key unreadable, which erases everyone.
const purpose = "user data keys v1"

var (
	// ErrErased: the user's data key was destroyed (Erase). Nothing sealed
	// for the user opens any more, and nothing new is sealed for them.
	ErrErased = errors.New("datakeys: the user's data key was erased")
	// ErrUnknownMasterKey: the key was sealed under a master key that is
	// not the configured one.
	ErrUnknownMasterKey = errors.New("datakeys: data key sealed under another master key")
	// ErrNoKey: the user has no data key row, yet something sealed for
	// them is being opened (a database restored without its key table).
	ErrNoKey = errors.New("datakeys: no data key for the user")
)

// Config configures a Keyring.
type Config struct {
	Pool      *pgxpool.Pool
	MasterKey *keys.MasterKey
	// CacheFor is how long a process keeps a user's key in memory before
	// reading its row again (default 10s): an erasure by another instance
	// takes effect on this one's reads within it. An erasure by this
	// process takes effect at once.
	CacheFor time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Keyring hands out users' data keys as AEADs. Safe for concurrent use,
// and across instances sharing the database.
type Keyring struct {
	pool     *pgxpool.Pool
	wrap     cipher.AEAD
	masterID string
	cacheFor time.Duration
	now      func() time.Time

	mu    sync.Mutex
	cache map[uuid.UUID]cached
}

type cached struct {
	aead   cipher.AEAD // nil: erased
	loaded time.Time
}

// New returns a Keyring. It does not touch the database (EnsureTable does).
func New(cfg Config) (*Keyring, error) {
	var errs []error
	if cfg.Pool == nil {
		errs = append(errs, errors.New("datakeys: Pool is required"))
	}
	if cfg.MasterKey == nil {
		errs = append(errs, errors.New("datakeys: MasterKey is required"))
	}
	if cfg.CacheFor < 0 {
		errs = append(errs, fmt.Errorf("datakeys: CacheFor %s is negative", cfg.CacheFor))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.CacheFor == 0 {
		cfg.CacheFor = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	wrap, err := cfg.MasterKey.DeriveAEAD(purpose)
	if err != nil {
		return nil, fmt.Errorf("datakeys: %w", err)
	}
	return &Keyring{pool: cfg.Pool, wrap: wrap, masterID: cfg.MasterKey.ID(), cacheFor: cfg.CacheFor,
		now: cfg.Now, cache: map[uuid.UUID]cached{}}, nil
}

func newAEAD(k []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("datakeys: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("datakeys: %w", err)
	}
	return aead, nil
}

// EnsureTable creates the key table if it is missing. Every process that
// seals or opens calls it at start-up.
func EnsureTable(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+Table+` (
		user_id uuid PRIMARY KEY,
		master_key_id text NOT NULL,
		sealed_key bytea,
		created_at timestamptz NOT NULL,
		erased_at timestamptz,
		CHECK ((sealed_key IS NULL) = (erased_at IS NOT NULL))
	)`)
	if err != nil {
		return fmt.Errorf("datakeys: create %s: %w", Table, err)
	}
	return nil
}

// ForSealing returns the user's data key, creating it on first use. It
// fails with ErrErased for an erased user: nothing is sealed for them
// again (the caller drops the field instead).
func (k *Keyring) ForSealing(ctx context.Context, user uuid.UUID) (cipher.AEAD, error) {
	aead, err := k.load(ctx, user)
	if !errors.Is(err, ErrNoKey) {
		return aead, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("datakeys: %w", err)
	}
	defer clear(raw)
	sealed := k.wrapKey(user, raw)
	// Two first seals may race: the row that landed first wins, the other
	// reads it back.
	if _, err := k.pool.Exec(ctx, `INSERT INTO `+Table+` (user_id, master_key_id, sealed_key, created_at)
		VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING`, user, k.masterID, sealed, k.now().UTC()); err != nil {
		return nil, fmt.Errorf("datakeys: store the key of %s: %w", user, err)
	}
	k.forget(user)
	return k.load(ctx, user)
}

// ForOpening returns the user's data key: ErrErased once erased, ErrNoKey
// when the user never had one.
func (k *Keyring) ForOpening(ctx context.Context, user uuid.UUID) (cipher.AEAD, error) {
	return k.load(ctx, user)
}

// Erase destroys the user's data key (and records that it did, so that no
// new key is made for them). It is idempotent; a user who never had a key
// gets an erased row all the same.
func (k *Keyring) Erase(ctx context.Context, user uuid.UUID) error {
	now := k.now().UTC()
	_, err := k.pool.Exec(ctx, `INSERT INTO `+Table+` (user_id, master_key_id, sealed_key, created_at, erased_at)
		VALUES ($1, $2, NULL, $3, $3)
		ON CONFLICT (user_id) DO UPDATE SET sealed_key = NULL, erased_at = COALESCE(`+Table+`.erased_at, EXCLUDED.erased_at)`,
		user, k.masterID, now)
	if err != nil {
		return fmt.Errorf("datakeys: erase the key of %s: %w", user, err)
	}
	k.mu.Lock()
	k.cache[user] = cached{loaded: now}
	k.mu.Unlock()
	return nil
}

// Erased reports whether the user's key was erased.
func (k *Keyring) Erased(ctx context.Context, user uuid.UUID) (bool, error) {
	_, err := k.load(ctx, user)
	switch {
	case errors.Is(err, ErrErased):
		return true, nil
	case err == nil, errors.Is(err, ErrNoKey):
		return false, nil
	}
	return false, err
}

func (k *Keyring) forget(user uuid.UUID) {
	k.mu.Lock()
	delete(k.cache, user)
	k.mu.Unlock()
}

func (k *Keyring) load(ctx context.Context, user uuid.UUID) (cipher.AEAD, error) {
	now := k.now()
	k.mu.Lock()
	c, ok := k.cache[user]
	k.mu.Unlock()
	// An erasure is for good: an erased entry never expires.
	if ok && (c.aead == nil || now.Sub(c.loaded) < k.cacheFor) {
		if c.aead == nil {
			return nil, ErrErased
		}
		return c.aead, nil
	}
	var masterID string
	var sealed []byte
	err := k.pool.QueryRow(ctx, `SELECT master_key_id, sealed_key FROM `+Table+` WHERE user_id = $1`, user).Scan(&masterID, &sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNoKey
	}
	if err != nil {
		return nil, fmt.Errorf("datakeys: read the key of %s: %w", user, err)
	}
	if sealed == nil {
		k.mu.Lock()
		k.cache[user] = cached{loaded: now}
		k.mu.Unlock()
		return nil, ErrErased
	}
	if masterID != k.masterID {
		return nil, fmt.Errorf("%w (%s)", ErrUnknownMasterKey, masterID)
	}
	raw, err := k.unwrapKey(user, sealed)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	aead, err := newAEAD(raw)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.cache[user] = cached{aead: aead, loaded: now}
	k.mu.Unlock()
	return aead, nil
}

// wrapKey seals raw under the master-derived key, bound to the user id
// (additional data): a row moved to another user does not open.
func (k *Keyring) wrapKey(user uuid.UUID, raw []byte) []byte {
	nonce := make([]byte, k.wrap.NonceSize())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails (Go 1.24+)
	return k.wrap.Seal(nonce, nonce, raw, user[:])
}

func (k *Keyring) unwrapKey(user uuid.UUID, sealed []byte) ([]byte, error) {
	ns := k.wrap.NonceSize()
	if len(sealed) < ns {
		return nil, fmt.Errorf("datakeys: the key of %s is corrupt", user)
	}
	raw, err := k.wrap.Open(nil, sealed[:ns], sealed[ns:], user[:])
	if err != nil {
		return nil, fmt.Errorf("datakeys: the key of %s does not open: %w", user, err)
	}
	return raw, nil
}
