package main

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/auth/datakeys"
	"github.com/authledger/authledger/config"
	domaintask "github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/eventstore/sealed"
)

// sealedStore is the configured event store behind eventstore/sealed:
// every process (serve, worker, the administrative commands) appends and
// reads the log through it, so personal data is sealed under its
// subject's data key before it reaches the log, and opened on the way
// back (ADR 0034). The audit trail reads the log's own bytes through
// RecordedEvent.AsLogged.
type sealedStore struct {
	*sealed.Store
	keys *datakeys.Keyring
	pool *pgxpool.Pool
}

// Close closes the store, then the data keys' pool.
func (s *sealedStore) Close() error {
	err := s.Store.Close()
	s.pool.Close()
	return err
}

// openEventStore opens the configured store (openLogStore) with the data
// keys in DATABASE_URL (their own small pool, created at start-up when
// missing) under the master key the servers use.
func openEventStore(ctx context.Context, cfg config.Config) (*sealedStore, error) {
	master, err := cliMasterKey(cfg)
	if err != nil {
		return nil, err
	}
	pool, err := openReadModelPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	if err := datakeys.EnsureTable(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	ring, err := datakeys.New(datakeys.Config{Pool: pool, MasterKey: master})
	if err != nil {
		pool.Close()
		return nil, err
	}
	reg, err := newRegistry()
	if err == nil {
		err = domaintask.RegisterEvents(reg)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	raw, err := openLogStore(ctx, cfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s, err := sealed.New(raw, ring, reg)
	if err != nil {
		pool.Close()
		return nil, errors.Join(err, raw.Close())
	}
	return &sealedStore{Store: s, keys: ring, pool: pool}, nil
}
