// Package runtime runs projections: read models in PostgreSQL built from the
// event log, exactly-once in effect (ARCHITECTURE.md rule 5).
//
// Each projection runs as one store subscription of $all from its
// checkpoint (one subscription and one checkpoint per projection). The
// runtime reads what the subscription delivers in batches, applies each
// batch in one PostgreSQL transaction by calling the projection's Batch,
// and commits the read-model rows and the checkpoint together, in that one
// transaction (docs/adr/0018: no Watermill router in between). While
// catching up, several events share a transaction (Config.BatchSize events
// or Config.BatchTimeout, whichever comes first); as soon as no event is
// pending the batch commits, so live latency stays low. Live, commits are
// at least Config.CommitInterval apart while events keep coming: the
// events that arrive sooner are gathered first (outside any transaction)
// and applied together. Batches commit without waiting for the WAL flush
// (synchronous_commit off): the log is the durable record, and a crash
// that loses a batch's commit loses its checkpoint with it.
//
// Failure policy: an error (or a panic) of Apply, Flush or the commit
// rolls the whole open batch back and the subscription resumes from the
// last committed checkpoint, with backoff, committing one event per
// transaction until it is past the failing event. After Config.MaxAttempts
// failures of the same event the projection stops: its state becomes
// StateFailed (Runner.Ready reports it, the checkpoint row says it, a
// metric counts it, an error log names the projection, the event id and
// type, and the error). The event is never skipped, nor parked aside; a
// restarted runner resumes from the checkpoint. An outage (the database or
// the store away) is retried forever and does not count as an attempt.
//
// Read models are versioned: a projection's tables are created per
// generation (audit_log_g1, audit_log_g2, ...) and queries go through views
// named after the base tables (audit_log), so Rebuild can build generation
// N+1 from the start of the log while generation N keeps serving, and swap
// the views and the checkpoint in one transaction.
package projector

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/eventstore"
)

// Projection is a read model built from the log.
type Projection interface {
	// Name identifies the projection's checkpoint. Renaming a projection
	// rebuilds it from the start of the log under the new name.
	Name() string
	// Filter selects the events the projection receives. The checkpoint
	// still advances through filtered-out events when the store reports it.
	Filter() eventstore.Filter
	// Tables are the base names of the read-model tables. Each generation
	// has its own physical tables (see Tables.Name); a view named after each
	// base name points at the serving generation, and queries use the views.
	Tables() []string
	// CreateTables creates the physical tables of one generation (every
	// name in Tables, via t.Name) and their indexes and triggers. It runs
	// in a transaction; the tables must not exist yet.
	CreateTables(ctx context.Context, tx pgx.Tx, t Tables) error
	// Begin starts applying events inside tx, the transaction that will
	// also hold the checkpoint. The returned Batch lives for that
	// transaction only.
	Begin(ctx context.Context, tx pgx.Tx, t Tables) (Batch, error)
}

// Indexer is implemented by a projection whose secondary indexes are
// cheaper to build after a bulk load: a rebuild calls CreateIndexes once it
// has caught up, before the swap; a first generation gets them at once.
type Indexer interface {
	CreateIndexes(ctx context.Context, tx pgx.Tx, t Tables) error
}

// Preparer is implemented by a projection that can do part of an event's
// work (decoding, summarising) without the transaction or the previous
// events. Prepare runs on the subscription's goroutine, ahead of and in
// parallel with Apply; Apply finds the result in Delivery.Prepared
// (DeliveryFrom(ctx)). Prepare must be a pure function of the event.
type Preparer interface {
	Prepare(ev eventstore.RecordedEvent) any
}

// Batch applies events inside one transaction of a projection.
type Batch interface {
	// Apply applies one event. It may write at once or buffer rows until
	// Flush. An error rolls back the whole transaction.
	Apply(ctx context.Context, ev eventstore.RecordedEvent) error
	// Flush writes whatever Apply buffered. It is called once, just before
	// the checkpoint is written and the transaction commits.
	Flush(ctx context.Context) error
}

// Tables names the physical tables of one generation of a projection.
type Tables struct {
	Generation int
}

// Name is the physical table of base in this generation: base_g<N>. It is
// a plain identifier (base names are lower-case constants), safe to
// interpolate into SQL.
func (t Tables) Name(base string) string { return fmt.Sprintf("%s_g%d", base, t.Generation) }

// Ident is Name quoted as an SQL identifier.
func (t Tables) Ident(base string) string { return pgx.Identifier{t.Name(base)}.Sanitize() }

// Func adapts a function that writes directly to the transaction (no
// buffering) into a Projection. It suits small read models; high-volume
// ones implement Batch to write with COPY.
type Func struct {
	ProjectionName string
	EventFilter    eventstore.Filter
	BaseTables     []string
	Create         func(ctx context.Context, tx pgx.Tx, t Tables) error
	ApplyEvent     func(ctx context.Context, tx pgx.Tx, t Tables, ev eventstore.RecordedEvent) error
}

var _ Projection = (*Func)(nil)

// Name implements Projection.
func (f *Func) Name() string { return f.ProjectionName }

// Filter implements Projection.
func (f *Func) Filter() eventstore.Filter { return f.EventFilter }

// Tables implements Projection.
func (f *Func) Tables() []string { return f.BaseTables }

// CreateTables implements Projection.
func (f *Func) CreateTables(ctx context.Context, tx pgx.Tx, t Tables) error {
	return f.Create(ctx, tx, t)
}

// Begin implements Projection.
func (f *Func) Begin(_ context.Context, tx pgx.Tx, t Tables) (Batch, error) {
	return funcBatch{f: f, tx: tx, t: t}, nil
}

type funcBatch struct {
	f  *Func
	tx pgx.Tx
	t  Tables
}

func (b funcBatch) Apply(ctx context.Context, ev eventstore.RecordedEvent) error {
	return b.f.ApplyEvent(ctx, b.tx, b.t, ev)
}

func (funcBatch) Flush(context.Context) error { return nil }

// Delivery is what a projection's Batch.Apply finds in its context
// (DeliveryFrom): the event being applied, the batch's open transaction,
// its tables and the projection's batch. It is valid during that Apply
// only (the runtime reuses it for the batch's next event).
type Delivery struct {
	Event  eventstore.RecordedEvent
	Tx     pgx.Tx
	Tables Tables
	Batch  Batch
	// Prepared is the projection's Prepare result for Event, when it is a
	// Preparer.
	Prepared any
}

type deliveryKey struct{}

// DeliveryFrom returns the delivery in the context of a Batch.Apply call
// made by the runtime.
func DeliveryFrom(ctx context.Context) (*Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(*Delivery)
	return d, ok
}

// TxFrom returns the projection's open transaction from the context of a
// Batch.Apply call made by the runtime.
func TxFrom(ctx context.Context) (pgx.Tx, bool) {
	d, ok := DeliveryFrom(ctx)
	if !ok {
		return nil, false
	}
	return d.Tx, true
}
