// Package commands holds the command handlers: each loads one stream from
// the event store, lets a pure aggregate decide, and appends the events it
// recorded at the expected revision. Handlers read only the event store,
// never read models (ARCHITECTURE.md rule 2).
package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
)

// ErrConflict is returned when a stream kept changing under a command for
// every attempt the repository allows.
var ErrConflict = errors.New("commands: conflict: the stream kept changing")

// Aggregate is what the repository needs from a domain aggregate: the number
// of events folded from the stream and the events recorded since.
type Aggregate interface {
	Version() int
	Changes() []events.Event
}

// Meta is the request-scoped part of every event's metadata. The repository
// fills in the event id and occurred-at for each event.
type Meta struct {
	CorrelationID string
	CausationID   string
	Actor         events.Actor
	ClientIP      string
	UserAgent     string
}

// Repository loads, decides and appends for one aggregate type. Conflicts
// (another writer appended first) are retried by reloading and deciding
// again, at most MaxAttempts times.
type Repository[A Aggregate] struct {
	store    eventstore.Store
	registry *events.Registry
	// foldFrom folds a stream's events from revision base on.
	foldFrom func(base int, history []events.Event) (A, error)
	// summaryType, when set, names the event type a load may start at
	// (NewSummarizedRepository).
	summaryType string
	// MaxAttempts bounds the retries on conflict; 0 means 5.
	MaxAttempts int
	// Now is the clock for occurred-at; nil means time.Now.
	Now func() time.Time
}

// NewRepository returns a repository folding streams with fold (the
// aggregate's FromHistory). registry must know every event the stream holds.
func NewRepository[A Aggregate](store eventstore.Store, registry *events.Registry, fold func([]events.Event) (A, error)) (*Repository[A], error) {
	if store == nil || registry == nil || fold == nil {
		return nil, errors.New("commands: NewRepository needs a store, a registry and a fold function")
	}
	return &Repository[A]{store: store, registry: registry,
		foldFrom: func(_ int, history []events.Event) (A, error) { return fold(history) }}, nil
}

// NewSummarizedRepository returns a repository for streams that restate
// their aggregate now and then in an event of summaryType (task.Quota's
// QuotaSummarized): Load reads such a stream backwards to its last summary
// and calls foldFrom with that event's revision and the events from it on
// (base 0 and the whole stream when it has none), so that a load costs
// what the aggregate holds, not the stream's whole history.
func NewSummarizedRepository[A Aggregate](store eventstore.Store, registry *events.Registry, summaryType string,
	foldFrom func(base int, history []events.Event) (A, error)) (*Repository[A], error) {
	if store == nil || registry == nil || foldFrom == nil || summaryType == "" {
		return nil, errors.New("commands: NewSummarizedRepository needs a store, a registry, a summary type and a fold function")
	}
	return &Repository[A]{store: store, registry: registry, foldFrom: foldFrom, summaryType: summaryType}, nil
}

// A summarized load reads backwards in pages that double from
// firstSummaryPage events up to maxSummaryPage, so that a stream written
// before its first summary takes a few reads, not one per page.
const (
	firstSummaryPage = 256
	maxSummaryPage   = 16384
)

// Load folds a stream. A stream with no event folds to the aggregate's zero
// state (fold(nil)).
func (r *Repository[A]) Load(ctx context.Context, stream string) (A, error) {
	var recs []eventstore.RecordedEvent
	var err error
	if r.summaryType != "" {
		recs, err = r.readSinceSummary(ctx, stream)
	} else {
		recs, err = r.store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{})
	}
	if err != nil && !errors.Is(err, eventstore.ErrStreamNotFound) {
		var zero A
		return zero, fmt.Errorf("commands: read %s: %w", stream, err)
	}
	base := 0
	if len(recs) > 0 {
		base = int(recs[0].Revision)
	}
	history := make([]events.Event, 0, len(recs))
	for _, rec := range recs {
		e, err := r.registry.Decode(rec.Type, rec.Data)
		if err != nil {
			var zero A
			return zero, fmt.Errorf("commands: decode %s@%d: %w", stream, rec.Revision, err)
		}
		history = append(history, e)
	}
	a, err := r.foldFrom(base, history)
	if err != nil {
		var zero A
		return zero, fmt.Errorf("commands: fold %s: %w", stream, err)
	}
	return a, nil
}

// readSinceSummary reads stream from its last event of r.summaryType on
// (the whole stream when it has none), oldest first, paging backwards.
func (r *Repository[A]) readSinceSummary(ctx context.Context, stream string) ([]eventstore.RecordedEvent, error) {
	var newestFirst []eventstore.RecordedEvent
	from, size := eventstore.End, firstSummaryPage
	for {
		page, err := r.store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{
			Direction: eventstore.Backwards, From: from, Limit: size})
		if err != nil {
			return nil, err
		}
		for i, rec := range page {
			if rec.Type == r.summaryType {
				newestFirst = append(newestFirst, page[:i+1]...)
				slices.Reverse(newestFirst)
				return newestFirst, nil
			}
		}
		newestFirst = append(newestFirst, page...)
		if len(page) < size || page[len(page)-1].Revision == 0 {
			slices.Reverse(newestFirst)
			return newestFirst, nil
		}
		from, size = page[len(page)-1].Revision-1, min(2*size, maxSummaryPage)
	}
}

// Last reads only the last event of stream: the event, decoded, and the
// stream's version (its number of events). A stream with no event gives a
// nil event and version 0. It is for aggregates that can resume from their
// last event (session.Resume) instead of folding the whole stream.
func (r *Repository[A]) Last(ctx context.Context, stream string) (events.Event, int, error) {
	e, rev, err := r.one(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
	if e == nil || err != nil {
		return nil, 0, err
	}
	return e, int(rev) + 1, nil
}

// one reads the single event opts selects, decoded, with its revision; a
// nil event when the stream has none.
func (r *Repository[A]) one(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) (events.Event, uint64, error) {
	recs, err := r.store.ReadStream(ctx, stream, opts)
	switch {
	case errors.Is(err, eventstore.ErrStreamNotFound):
		return nil, 0, nil
	case err != nil:
		return nil, 0, fmt.Errorf("commands: read %s: %w", stream, err)
	case len(recs) == 0:
		return nil, 0, nil
	}
	rec := recs[0]
	e, err := r.registry.Decode(rec.Type, rec.Data)
	if err != nil {
		return nil, 0, fmt.Errorf("commands: decode %s@%d: %w", stream, rec.Revision, err)
	}
	return e, rec.Revision, nil
}

// First reads only the first event of stream, decoded; nil for a stream
// with no event. It is for a stream whose first event holds what a command
// needs (a session's Started names its user and its device digest).
func (r *Repository[A]) First(ctx context.Context, stream string) (events.Event, error) {
	e, _, err := r.one(ctx, stream, eventstore.ReadStreamOptions{Limit: 1})
	return e, err
}

// Update loads stream, calls decide on the aggregate, and appends what it
// recorded at the revision it was loaded at. On a conflict it reloads and
// calls decide again; decide must therefore be free of side effects other
// than recording on the aggregate. An error from decide is returned as is,
// with nothing appended. When decide records nothing, Update appends
// nothing and returns a zero AppendResult.
func (r *Repository[A]) Update(ctx context.Context, stream string, meta Meta, decide func(A) error) (eventstore.AppendResult, error) {
	attempts := r.MaxAttempts
	if attempts <= 0 {
		attempts = 5
	}
	for range attempts {
		a, err := r.Load(ctx, stream)
		if err != nil {
			return eventstore.AppendResult{}, err
		}
		version := a.Version()
		if err := decide(a); err != nil {
			return eventstore.AppendResult{}, err
		}
		res, err := r.Append(ctx, stream, version, meta, a.Changes())
		if errors.Is(err, eventstore.ErrWrongExpectedVersion) {
			continue
		}
		return res, err
	}
	return eventstore.AppendResult{}, fmt.Errorf("%w: %s", ErrConflict, stream)
}

// Append writes changes to stream expecting it to hold exactly version
// events (NoStream for 0). It returns eventstore.ErrWrongExpectedVersion
// (wrapped) when another writer got there first.
func (r *Repository[A]) Append(ctx context.Context, stream string, version int, meta Meta, changes []events.Event) (eventstore.AppendResult, error) {
	if len(changes) == 0 {
		return eventstore.AppendResult{}, nil
	}
	data, err := EncodeEvents(changes, meta, r.now())
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	return r.store.Append(ctx, stream, ExpectedFor(version), data...)
}

func (r *Repository[A]) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// ExpectedFor maps an aggregate version (events folded) to the expected
// revision of the next append: NoStream for 0, else Revision(version-1).
func ExpectedFor(version int) eventstore.ExpectedRevision {
	if version <= 0 {
		return eventstore.NoStream{}
	}
	return eventstore.Revision(uint64(version - 1))
}

// EncodeEvents turns domain events into EventData with fresh ids, each
// carrying its metadata JSON.
func EncodeEvents(changes []events.Event, meta Meta, now time.Time) ([]eventstore.EventData, error) {
	out := make([]eventstore.EventData, 0, len(changes))
	for _, e := range changes {
		name, data, err := events.Encode(e)
		if err != nil {
			return nil, err
		}
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("commands: event id: %w", err)
		}
		md, err := events.EncodeMetadata(events.Metadata{
			EventID:       id,
			OccurredAt:    now.UTC(),
			CorrelationID: meta.CorrelationID,
			CausationID:   meta.CausationID,
			Actor:         meta.Actor,
			ClientIP:      meta.ClientIP,
			UserAgent:     meta.UserAgent,
		})
		if err != nil {
			return nil, fmt.Errorf("commands: metadata: %w", err)
		}
		out = append(out, eventstore.EventData{ID: id, Type: name, Data: data, Metadata: md})
	}
	return out, nil
}

// Store is the event store the repository appends to.
func (r *Repository[A]) Store() eventstore.Store { return r.store }
