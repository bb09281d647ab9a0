package projector

import (
	"context"
	"errors"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/outage"
)

// SideEffect is a policy that acts on events (appends commands, removes
// files, sends messages) and keeps no read model: run by a Runner like a
// projection, it has a checkpoint, resumes after a restart or an outage of
// any length, runs in one instance at a time and shows in status and
// readiness. Its effects are outside the checkpoint's transaction, so an
// event may be handled twice after a failure: Apply must be idempotent.
type SideEffect struct {
	// Name is the checkpoint name (renaming it replays the whole log).
	Name   string
	Filter eventstore.Filter
	// Apply performs the effect of one event. An outage or contention
	// (outage.Retryable), or ctx ending, is returned to the runtime, which
	// retries the event with backoff, forever. Any other error is this
	// event's alone: it is logged and the event passed over, so that one
	// bad event cannot stop the policy for everyone.
	Apply func(ctx context.Context, ev eventstore.RecordedEvent) error
	// Logger receives the passed-over events (discarded when nil).
	Logger *slog.Logger
}

// NewSideEffect returns s as a Projection.
func NewSideEffect(s SideEffect) (Projection, error) {
	if s.Name == "" || s.Apply == nil {
		return nil, errors.New("projections: a side effect needs a Name and an Apply")
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	return &sideEffect{s}, nil
}

type sideEffect struct{ s SideEffect }

func (p *sideEffect) Name() string              { return p.s.Name }
func (p *sideEffect) Filter() eventstore.Filter { return p.s.Filter }

// Tables: a side effect keeps no table.
func (*sideEffect) Tables() []string                                   { return nil }
func (*sideEffect) CreateTables(context.Context, pgx.Tx, Tables) error { return nil }

// Begin writes nothing but the checkpoint: a transaction that had written
// would hold every subscriber of the PostgreSQL store back while the
// effect runs.
func (p *sideEffect) Begin(context.Context, pgx.Tx, Tables) (Batch, error) { return p, nil }

// Apply implements Batch.
func (p *sideEffect) Apply(ctx context.Context, ev eventstore.RecordedEvent) error {
	err := p.s.Apply(ctx, ev)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil || outage.Retryable(err):
		return err
	}
	p.s.Logger.Warn("side effect not applied to an event; passed over", slog.String("policy", p.s.Name),
		slog.String("event_id", ev.ID.String()), slog.String("event_type", ev.Type), slog.String("error", err.Error()))
	return nil
}

// Flush implements Batch.
func (*sideEffect) Flush(context.Context) error { return nil }

// Descriptor is a projection as `projections status` reads it: its name
// and filter only. It cannot run.
func Descriptor(name string, f eventstore.Filter) Projection {
	return &sideEffect{SideEffect{Name: name, Filter: f}}
}
