// Package pgstore is the PostgreSQL keys.Store: the table of sealed signing
// keys created by migration 004. It never sees a private key in clear.
package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/auth/keys"
)

// Store implements keys.Store on a pool whose database is migrated.
type Store struct{ pool *pgxpool.Pool }

var _ keys.Store = (*Store)(nil)

// New returns a Store on pool.
func New(pool *pgxpool.Pool) (*Store, error) {
	if pool == nil {
		return nil, errors.New("pgstore: nil pool")
	}
	return &Store{pool: pool}, nil
}

// SaveSealed inserts k; an existing id is keys.ErrKeyExists.
func (s *Store) SaveSealed(ctx context.Context, k keys.SealedKey) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO signing_keys (id, algorithm, master_key_id, nonce, ciphertext, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, k.ID, k.Algorithm, k.MasterKeyID, k.Nonce, k.Ciphertext, k.CreatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("%w: %s", keys.ErrKeyExists, k.ID)
	}
	if err != nil {
		return fmt.Errorf("pgstore: save %s: %w", k.ID, err)
	}
	return nil
}

// LoadSealed returns every sealed key, oldest first.
func (s *Store) LoadSealed(ctx context.Context) ([]keys.SealedKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, algorithm, master_key_id, nonce, ciphertext, created_at FROM signing_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: load: %w", err)
	}
	defer rows.Close()
	var out []keys.SealedKey
	for rows.Next() {
		var k keys.SealedKey
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.MasterKeyID, &k.Nonce, &k.Ciphertext, &k.CreatedAt); err != nil {
			return nil, fmt.Errorf("pgstore: scan: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: load: %w", err)
	}
	return out, nil
}
