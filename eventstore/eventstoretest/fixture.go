// Package eventstoretest is the conformance suite of the eventstore port.
// Every adapter runs it from its own tests:
//
//	eventstoretest.Run(t, func(t *testing.T) eventstoretest.Fixture { ... })
//
// It holds adapters to EventStoreDB's semantics: expected revisions,
// idempotent re-append, stream reads both ways, $all order, catch-up from a
// checkpoint, live delivery, filters, and exactly-once, in-order delivery
// under concurrent writers.
package eventstoretest

import (
	"context"

	"github.com/authledger/authledger/eventstore"
)

// Fixture is what the suite needs of an adapter: a store over an empty log,
// plus optional hooks for what only some backends can do.
type Fixture struct {
	// Store is a store over an empty log. The suite closes it.
	Store eventstore.Store

	// Begin, when not nil, opens a transaction whose commit the test
	// controls, so the concurrency test can delay commits, roll back, write
	// an unrelated table first and hold a transaction open. Backends without
	// client-side transactions (EventStoreDB) leave it nil and the test uses
	// plain appends with random delays between them.
	Begin func(ctx context.Context) (Tx, error)

	// Reopen, when not nil, opens a second, independent store over the same
	// log (another process's view), used to check that a subscriber of one
	// store sees appends made through the other. The hook closes the store
	// it returns (t.Cleanup); the suite does not.
	Reopen func(t TB) eventstore.Store
}

// TB is the part of testing.TB the fixture hooks use.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Tx is an append inside a transaction held by the test.
type Tx interface {
	// TouchUnrelated writes a row of a table outside the log, so the
	// transaction holds a transaction id before it appends.
	TouchUnrelated(ctx context.Context) error
	// Append appends inside the transaction. It may fail with an error for
	// which errors.Is(err, eventstore.ErrRetryInNewTransaction) holds (the per-stream
	// guard); the caller then rolls back and tries again.
	Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error)
	// Commit commits; subscribers of the store must then see the events
	// without waiting for a poll (the hook wakes them if the adapter needs it).
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}
