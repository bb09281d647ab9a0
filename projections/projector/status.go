package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/eventstore"
)

// LagCap is the most events Status counts when measuring lag through
// ReadAll (stores without EventCounter); a larger lag reports LagCap with
// LagEventsAtLeast set.
const LagCap = 10000

// EventCounter is an optional capability of an event store: counting the
// events after a position without reading them. Status uses it when the
// store has it.
type EventCounter interface {
	CountAfter(ctx context.Context, after eventstore.Position, f eventstore.Filter) (int64, error)
}

// ProjectionStatus is one projection's progress, as `authledger projections
// status` prints it.
type ProjectionStatus struct {
	Name       string
	Generation int
	// State is the state the owning runner recorded (StateRunning,
	// StateFailed, ...). A runner that died without stopping leaves
	// StateRunning; UpdatedAt tells how fresh it is.
	State         string
	Position      eventstore.Position
	EventsApplied int64
	// LagEvents is how many events of the projection's filter the log holds
	// after its checkpoint; LagEventsAtLeast marks a lower bound (LagCap).
	LagEvents        int64
	LagEventsAtLeast bool
	// LagSeconds is the age of the oldest event not yet applied (0 when
	// caught up).
	LagSeconds float64
	UpdatedAt  time.Time
	// LastError, FailedEventID and FailedEventType describe the event a
	// failed projection is stopped on.
	LastError       string
	FailedEventID   string
	FailedEventType string
	// Rebuild is set while a rebuild is in progress (or was abandoned).
	Rebuild *RebuildStatus
}

// RebuildStatus is a rebuild's progress as recorded in projection_rebuilds.
type RebuildStatus struct {
	Generation    int
	Position      eventstore.Position
	EventsApplied int64
	StartedAt     time.Time
	UpdatedAt     time.Time
}

// Status reports each projection's checkpoint, state and lag behind the
// store's head. Projections without a checkpoint row yet are reported idle
// at the start of the log.
func Status(ctx context.Context, pool *pgxpool.Pool, store eventstore.Store, ps ...Projection) ([]ProjectionStatus, error) {
	head, err := store.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("projections: head: %w", err)
	}
	out := make([]ProjectionStatus, 0, len(ps))
	for _, p := range ps {
		s := ProjectionStatus{Name: p.Name(), State: StateIdle}
		var pos string
		var lastErr, fid, ftype *string
		var rgen *int
		var rpos *string
		var rapplied *int64
		var rstart, rupd *time.Time
		err := pool.QueryRow(ctx, `SELECT c.generation, c.state, c.position, c.events_applied, c.updated_at, c.last_error,
				c.failed_event_id::text, c.failed_event_type, r.generation, r.position, r.events_applied, r.started_at, r.updated_at
			FROM projection_checkpoints c LEFT JOIN projection_rebuilds r ON r.name = c.name WHERE c.name = $1`, p.Name()).
			Scan(&s.Generation, &s.State, &pos, &s.EventsApplied, &s.UpdatedAt, &lastErr, &fid, &ftype, &rgen, &rpos, &rapplied, &rstart, &rupd)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return nil, fmt.Errorf("projections: status of %s: %w", p.Name(), err)
		default:
			if s.Position, err = eventstore.ParsePosition(pos); err != nil {
				return nil, fmt.Errorf("projections: status of %s: %w", p.Name(), err)
			}
			s.LastError, s.FailedEventID, s.FailedEventType = deref(lastErr), deref(fid), deref(ftype)
			if rgen != nil {
				rp, _ := eventstore.ParsePosition(deref(rpos))
				s.Rebuild = &RebuildStatus{Generation: *rgen, Position: rp, EventsApplied: *rapplied, StartedAt: *rstart, UpdatedAt: *rupd}
			}
		}
		if s.Position.Compare(head) < 0 {
			if err := lag(ctx, store, p.Filter(), &s); err != nil {
				return nil, err
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func lag(ctx context.Context, store eventstore.Store, f eventstore.Filter, s *ProjectionStatus) error {
	if c, ok := store.(EventCounter); ok {
		n, err := c.CountAfter(ctx, s.Position, f)
		// A decorator (eventstore/sealed) over a store that cannot count
		// says so; read instead.
		if errors.Is(err, errors.ErrUnsupported) {
			return lagByReading(ctx, store, f, s)
		}
		if err != nil {
			return fmt.Errorf("projections: lag of %s: %w", s.Name, err)
		}
		s.LagEvents = n
		first, err := store.ReadAll(ctx, eventstore.ReadAllOptions{After: s.Position, Limit: 1, Filter: f})
		if err != nil {
			return fmt.Errorf("projections: lag of %s: %w", s.Name, err)
		}
		if len(first) > 0 {
			s.LagSeconds = max(0, time.Since(first[0].RecordedAt).Seconds())
		}
		return nil
	}
	return lagByReading(ctx, store, f, s)
}

func lagByReading(ctx context.Context, store eventstore.Store, f eventstore.Filter, s *ProjectionStatus) error {
	evs, err := store.ReadAll(ctx, eventstore.ReadAllOptions{After: s.Position, Limit: LagCap + 1, Filter: f})
	if err != nil {
		return fmt.Errorf("projections: lag of %s: %w", s.Name, err)
	}
	s.LagEvents = int64(len(evs))
	if len(evs) > LagCap {
		s.LagEvents, s.LagEventsAtLeast = LagCap, true
	}
	if len(evs) > 0 {
		s.LagSeconds = max(0, time.Since(evs[0].RecordedAt).Seconds())
	}
	return nil
}

func deref[T any](p *T) T {
	var z T
	if p == nil {
		return z
	}
	return *p
}

var _ = uuid.Nil
