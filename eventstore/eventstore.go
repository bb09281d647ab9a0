// Package eventstore is the port every event store adapter implements: an
// append-only log of streams, read per stream or as one totally ordered log
// ($all), and subscribed to from a checkpoint.
//
// The semantics follow EventStoreDB so that the PostgreSQL adapter (the
// embedded default) and the EventStoreDB adapter are interchangeable. The
// conformance suite in eventstore/eventstoretest holds both to them.
package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Store is the event store port. Every method takes ctx first and honours
// its cancellation.
type Store interface {
	// Append writes events to the end of stream, atomically, if the stream's
	// current revision matches expected. Re-appending the same event ids at
	// the same expected revision is an idempotent success that returns the
	// original result and writes nothing.
	Append(ctx context.Context, stream string, expected ExpectedRevision, events ...EventData) (AppendResult, error)

	// ReadStream reads one stream. It fails with ErrStreamNotFound for a
	// stream that never had an event and ErrStreamDeleted for a tombstoned one.
	ReadStream(ctx context.Context, stream string, opts ReadStreamOptions) ([]RecordedEvent, error)

	// ReadAll reads the whole log forwards, strictly after opts.After, in
	// log order. It returns at most opts.Limit events (0 means no limit).
	ReadAll(ctx context.Context, opts ReadAllOptions) ([]RecordedEvent, error)

	// Subscribe delivers every event strictly after opts.After (catch-up),
	// then every new event as it is committed (live), in log order, each
	// exactly once. It blocks until ctx is done (returning ctx.Err()) or
	// handle fails (returning that error). An event is never delivered
	// before every event that precedes it in log order is visible.
	Subscribe(ctx context.Context, opts SubscribeOptions, handle Handler) error

	// Tombstone deletes a stream for good: reads and appends fail with
	// ErrStreamDeleted afterwards. Its events stay in $all (the log is never
	// rewritten).
	Tombstone(ctx context.Context, stream string, expected ExpectedRevision) error

	// Head is the position of the last event in the log that subscribers can
	// see, or the zero Position when the log is empty. It measures lag.
	Head(ctx context.Context) (Position, error)

	// Close releases the store's resources.
	Close() error
}

// Handler receives one event of a subscription. Returning an error ends the
// subscription with that error; the event counts as not handled. The
// event's Data and Metadata are read-only: an adapter may share them
// between subscriptions.
type Handler func(ctx context.Context, event RecordedEvent) error

// EventData is an event to append. ID is chosen by the caller before the
// first attempt so that a retry is idempotent.
type EventData struct {
	ID       uuid.UUID
	Type     string
	Data     json.RawMessage
	Metadata json.RawMessage
}

// RecordedEvent is an event as stored in the log.
type RecordedEvent struct {
	ID         uuid.UUID
	Stream     string
	Revision   uint64
	Position   Position
	Type       string
	Data       json.RawMessage
	Metadata   json.RawMessage
	RecordedAt time.Time
	// Logged is set by a reader that opened personal data sealed in Data
	// or Metadata (eventstore/sealed): it holds both as the log stores
	// them. Nil when Data and Metadata are the log's bytes. Whatever must
	// see the log's own bytes (the audit trail's chain) reads AsLogged.
	Logged *LoggedBytes
}

// LoggedBytes are an event's data and metadata as the log stores them.
type LoggedBytes struct {
	Data     json.RawMessage
	Metadata json.RawMessage
}

// AsLogged returns e with Data and Metadata as the log stores them
// (sealed personal data still sealed).
func (e RecordedEvent) AsLogged() RecordedEvent {
	if e.Logged != nil {
		e.Data, e.Metadata, e.Logged = e.Logged.Data, e.Logged.Metadata, nil
	}
	return e
}

// AppendResult tells where an append landed.
type AppendResult struct {
	// NextRevision is the revision of the last event written, the value to
	// pass as Revision(n) for the next append to this stream.
	NextRevision uint64
	// Position is the log position of the last event written.
	Position Position
}

// ExpectedRevision is one of Any, NoStream, StreamExists or Revision.
type ExpectedRevision interface{ expectedRevision() }

// Any accepts the stream in whatever state it is.
type Any struct{}

// NoStream requires that the stream has no event yet.
type NoStream struct{}

// StreamExists requires that the stream has at least one event.
type StreamExists struct{}

// Revision requires that the stream's last event has exactly this revision
// (revisions start at 0).
type Revision uint64

func (Any) expectedRevision()          {}
func (NoStream) expectedRevision()     {}
func (StreamExists) expectedRevision() {}
func (Revision) expectedRevision()     {}

// Direction of a stream read.
type Direction int

const (
	// Forwards reads from lower to higher revisions.
	Forwards Direction = iota
	// Backwards reads from higher to lower revisions.
	Backwards
)

// End, as ReadStreamOptions.From, starts a backwards read at the last event.
const End uint64 = math.MaxUint64

// ReadStreamOptions selects a slice of one stream.
type ReadStreamOptions struct {
	Direction Direction
	// From is the first revision returned (inclusive). End means the last
	// event of the stream (useful backwards).
	From uint64
	// Limit caps the number of events; 0 means no limit.
	Limit int
}

// ReadAllOptions selects a slice of the log.
type ReadAllOptions struct {
	// After is exclusive; the zero Position reads from the start.
	After Position
	// Limit caps the number of events; 0 means no limit.
	Limit  int
	Filter Filter
}

// SubscribeOptions configures a subscription to the whole log.
type SubscribeOptions struct {
	// After is the checkpoint: delivery resumes strictly after it. The zero
	// Position delivers from the start of the log.
	After  Position
	Filter Filter
	// OnCheckpoint, if set, may be called with a position up to which every
	// event has been delivered or filtered out, so that a filtered
	// subscriber can advance its checkpoint through events it never sees.
	OnCheckpoint func(ctx context.Context, p Position) error
}

// Filter narrows a read or subscription. An empty filter matches all events.
// Both parts must match when both are given.
type Filter struct {
	// EventTypes matches events whose type equals one of these names.
	EventTypes []string
	// StreamPrefixes matches events whose stream name starts with one of these.
	StreamPrefixes []string
}

// IsEmpty reports whether the filter matches every event.
func (f Filter) IsEmpty() bool { return len(f.EventTypes) == 0 && len(f.StreamPrefixes) == 0 }

// Matches reports whether e passes the filter. Adapters that filter on the
// server use it only to check themselves.
func (f Filter) Matches(stream, eventType string) bool {
	if len(f.EventTypes) > 0 {
		ok := false
		for _, t := range f.EventTypes {
			if t == eventType {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(f.StreamPrefixes) > 0 {
		for _, p := range f.StreamPrefixes {
			if len(stream) >= len(p) && stream[:len(p)] == p {
				return true
			}
		}
		return false
	}
	return true
}

// Position is a point in the log. Positions are totally ordered by (Commit,
// Prepare). What the two numbers mean belongs to the adapter: EventStoreDB's
// commit and prepare positions, or PostgreSQL's transaction id and sequence
// number. The zero Position lies before every event.
type Position struct {
	Commit  uint64
	Prepare uint64
}

// IsZero reports whether p is the start of the log.
func (p Position) IsZero() bool { return p == Position{} }

// Compare returns -1, 0 or +1 as p is before, at or after q.
func (p Position) Compare(q Position) int {
	switch {
	case p.Commit < q.Commit:
		return -1
	case p.Commit > q.Commit:
		return 1
	case p.Prepare < q.Prepare:
		return -1
	case p.Prepare > q.Prepare:
		return 1
	}
	return 0
}

// String serialises p as 32 hex digits, so that the strings sort as the
// positions do. It is the consistency token clients send back.
func (p Position) String() string { return fmt.Sprintf("%016x%016x", p.Commit, p.Prepare) }

// ErrInvalidPosition is returned by ParsePosition for a malformed token.
var ErrInvalidPosition = errors.New("eventstore: invalid position")

// ParsePosition reverses Position.String.
func ParsePosition(s string) (Position, error) {
	if len(s) != 32 {
		return Position{}, ErrInvalidPosition
	}
	c, err := strconv.ParseUint(s[:16], 16, 64)
	if err != nil {
		return Position{}, ErrInvalidPosition
	}
	p, err := strconv.ParseUint(s[16:], 16, 64)
	if err != nil {
		return Position{}, ErrInvalidPosition
	}
	return Position{Commit: c, Prepare: p}, nil
}

// MarshalText implements encoding.TextMarshaler.
func (p Position) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Position) UnmarshalText(b []byte) error {
	q, err := ParsePosition(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

var (
	// ErrWrongExpectedVersion is matched (errors.Is) by every
	// *WrongExpectedVersionError.
	ErrWrongExpectedVersion = errors.New("eventstore: wrong expected version")
	// ErrStreamNotFound: the stream has no event.
	ErrStreamNotFound = errors.New("eventstore: stream not found")
	// ErrStreamDeleted: the stream was tombstoned.
	ErrStreamDeleted = errors.New("eventstore: stream deleted")
	// ErrRetryInNewTransaction: an append inside a caller-held transaction
	// could not keep the stream's revisions in log order (a later
	// transaction wrote the stream first). Roll back and retry in a new
	// transaction. Store.Append retries by itself and never returns it.
	ErrRetryInNewTransaction = errors.New("eventstore: retry the append in a new transaction")
)

// WrongExpectedVersionError is returned by Append and Tombstone when the
// stream is not in the expected state. It carries the current revision so
// that a caller can reload and retry.
type WrongExpectedVersionError struct {
	Stream   string
	Expected ExpectedRevision
	// CurrentExists is false when the stream has no event; Current is then 0.
	CurrentExists bool
	Current       uint64
}

func (e *WrongExpectedVersionError) Error() string {
	cur := "no stream"
	if e.CurrentExists {
		cur = strconv.FormatUint(e.Current, 10)
	}
	return fmt.Sprintf("eventstore: wrong expected version on %q: expected %s, current %s", e.Stream, DescribeExpected(e.Expected), cur)
}

// Is makes errors.Is(err, ErrWrongExpectedVersion) true.
func (e *WrongExpectedVersionError) Is(target error) bool { return target == ErrWrongExpectedVersion }

// DescribeExpected names an expected revision for messages and logs.
func DescribeExpected(x ExpectedRevision) string {
	switch v := x.(type) {
	case Any:
		return "any"
	case NoStream:
		return "no stream"
	case StreamExists:
		return "stream exists"
	case Revision:
		return strconv.FormatUint(uint64(v), 10)
	case nil:
		return "nil"
	}
	return fmt.Sprintf("%T", x)
}
