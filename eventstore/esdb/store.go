// Package esdb is the EventStoreDB adapter of the eventstore port, built on
// the official client (github.com/EventStore/EventStore-Client-Go/v4/esdb).
//
// Mapping, and its hazards:
//   - Positions are EventStoreDB's $all (commit, prepare) positions, as is.
//   - EventStoreDB reads $all from a position inclusively and subscribes
//     from it exclusively; the adapter makes both strictly after, and never
//     lets a subscription start from the client's default (the end of the
//     log): the zero Position is esdb.Start{}.
//   - System events (types starting with "$": tombstones, stream metadata,
//     the node's own bookkeeping) are not part of our log: ReadAll,
//     Subscribe and Head skip them.
//   - Event data and our metadata are JSON (content type application/json);
//     our metadata is the event's custom metadata.
//   - EventStoreDB has no client-side transactions, so the conformance
//     fixture's Begin is nil for this adapter.
package esdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/authledger/authledger/eventstore"
)

// Store is an eventstore.Store on EventStoreDB. It is safe for concurrent
// use.
type Store struct {
	cfg Config

	mu     sync.Mutex
	client *client.Client // replaced when the client gives up reconnecting
	closed bool
}

var _ eventstore.Store = (*Store)(nil)

// errClosed is returned by every method called after Close.
var errClosed = errors.New("esdb: store is closed")

// Open connects to EventStoreDB and checks, within cfg.ConnectTimeout, that
// the node answers a read: an unreachable server fails here, with the URL
// (password redacted) in the error, not at the first command.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Store{cfg: cfg}
	c, err := s.newClient()
	if err != nil {
		return nil, err
	}
	s.client = c

	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	// The client's discovery takes no context and may outlive the
	// timeout: ping in a goroutine and abandon it (closing the client) if
	// it is late.
	done := make(chan error, 1)
	go func() {
		stream, err := c.ReadAll(ctx, client.ReadAllOptions{Direction: client.Backwards, From: client.End{}}, 1)
		if err == nil {
			_, err = stream.Recv()
			stream.Close()
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("esdb: EventStoreDB at %s is unreachable: %w", redact(cfg.URL), err)
	}
	return s, nil
}

func (s *Store) newClient() (*client.Client, error) {
	conf, err := client.ParseConnectionString(s.cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("esdb: URL %q: %w", redact(s.cfg.URL), err)
	}
	log := s.cfg.Logger
	conf.Logger = func(level client.LogLevel, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		switch level {
		case client.LogError, client.LogWarn:
			// The client logs every dropped subscription and closed read
			// as an error; Subscribe reports what matters itself.
			log.Debug("esdb client: "+msg, "level", level)
		}
	}
	c, err := client.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("esdb: client: %w", err)
	}
	return c, nil
}

// conn is the current client. The official client closes itself for good
// when its reconnection (discovery) fails; renew replaces it then.
func (s *Store) conn() (*client.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	return s.client, nil
}

// renewIfClosed replaces c with a new client when err says the client has
// closed itself (not when the Store was closed).
func (s *Store) renewIfClosed(c *client.Client, err error) {
	var e *client.Error
	if !errors.As(err, &e) || e.Code() != client.ErrorCodeConnectionClosed {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.client != c {
		return
	}
	if nc, err := s.newClient(); err == nil {
		_ = c.Close()
		s.client = nc
	}
}

// Close closes the client. Subscriptions in progress end with an error.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.client.Close()
}

func (s *Store) streamName(stream string) string { return s.cfg.StreamPrefix + stream }

// ours reports whether an event read from $all belongs to this store's log,
// and its stream name without the prefix.
func (s *Store) ours(ev *client.RecordedEvent) (string, bool) {
	if strings.HasPrefix(ev.EventType, "$") || !strings.HasPrefix(ev.StreamID, s.cfg.StreamPrefix) {
		return "", false
	}
	return strings.TrimPrefix(ev.StreamID, s.cfg.StreamPrefix), true
}

func (s *Store) toRecorded(stream string, ev *client.RecordedEvent) eventstore.RecordedEvent {
	r := eventstore.RecordedEvent{
		ID:         ev.EventID,
		Stream:     stream,
		Revision:   ev.EventNumber,
		Position:   eventstore.Position{Commit: ev.Position.Commit, Prepare: ev.Position.Prepare},
		Type:       ev.EventType,
		RecordedAt: ev.CreatedDate,
	}
	if len(ev.Data) > 0 {
		r.Data = json.RawMessage(ev.Data)
	}
	if len(ev.UserMetadata) > 0 {
		r.Metadata = json.RawMessage(ev.UserMetadata)
	}
	return r
}

func toExpected(x eventstore.ExpectedRevision) (client.ExpectedRevision, error) {
	switch v := x.(type) {
	case eventstore.Any:
		return client.Any{}, nil
	case eventstore.NoStream:
		return client.NoStream{}, nil
	case eventstore.StreamExists:
		return client.StreamExists{}, nil
	case eventstore.Revision:
		return client.Revision(uint64(v)), nil
	}
	return nil, fmt.Errorf("esdb: unknown expected revision %s", eventstore.DescribeExpected(x))
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if stream == "" {
		return eventstore.AppendResult{}, errors.New("esdb: append: empty stream name")
	}
	if len(events) == 0 {
		return eventstore.AppendResult{}, fmt.Errorf("esdb: append to %q: no events", stream)
	}
	exp, err := toExpected(expected)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	data := make([]client.EventData, len(events))
	for i, e := range events {
		if e.Type == "" {
			return eventstore.AppendResult{}, fmt.Errorf("esdb: append to %q: event %d has no type", stream, i)
		}
		data[i] = client.EventData{
			EventID:     e.ID,
			EventType:   e.Type,
			ContentType: client.ContentTypeJson,
			Data:        e.Data,
			Metadata:    e.Metadata,
		}
	}
	c, err := s.conn()
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	res, err := c.AppendToStream(ctx, s.streamName(stream), client.AppendToStreamOptions{ExpectedRevision: exp}, data...)
	if err != nil {
		s.renewIfClosed(c, err)
		return eventstore.AppendResult{}, s.mapError(ctx, "append to", stream, expected, err)
	}
	out := eventstore.AppendResult{
		NextRevision: res.NextExpectedVersion,
		Position:     eventstore.Position{Commit: res.CommitPosition, Prepare: res.PreparePosition},
	}
	if out.Position.IsZero() {
		// An idempotent re-append: EventStoreDB answers the original
		// revision without a position. Read the position back.
		evs, err := s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{From: out.NextRevision, Limit: 1})
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("esdb: append to %q: position of an idempotent re-append: %w", stream, err)
		}
		if len(evs) != 1 {
			return eventstore.AppendResult{}, fmt.Errorf("esdb: append to %q: revision %d of an idempotent re-append is not readable", stream, out.NextRevision)
		}
		out.Position = evs[0].Position
	}
	return out, nil
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	ro := client.ReadStreamOptions{Direction: client.Forwards}
	if opts.Direction == eventstore.Backwards {
		ro.Direction = client.Backwards
	}
	if opts.From == eventstore.End {
		ro.From = client.End{}
	} else {
		ro.From = client.Revision(opts.From)
	}
	count := uint64(math.MaxInt64)
	if opts.Limit > 0 {
		count = uint64(opts.Limit)
	}
	c, err := s.conn()
	if err != nil {
		return nil, err
	}
	rs, err := c.ReadStream(ctx, s.streamName(stream), ro, count)
	if err != nil {
		s.renewIfClosed(c, err)
		return nil, s.mapError(ctx, "read", stream, nil, err)
	}
	defer rs.Close()
	var out []eventstore.RecordedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, s.mapError(ctx, "read", stream, nil, err)
		}
		out = append(out, s.toRecorded(stream, ev.OriginalEvent()))
	}
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) ([]eventstore.RecordedEvent, error) {
	var out []eventstore.RecordedEvent
	err := s.scanAll(ctx, opts.After, func(stream string, ev *client.RecordedEvent) bool {
		if !opts.Filter.Matches(stream, ev.EventType) {
			return true
		}
		out = append(out, s.toRecorded(stream, ev))
		return opts.Limit <= 0 || len(out) < opts.Limit
	})
	return out, err
}

// scanAll reads $all forwards, strictly after after, in batches, and calls
// yield with every event of this store's log until yield returns false.
func (s *Store) scanAll(ctx context.Context, after eventstore.Position, yield func(stream string, ev *client.RecordedEvent) bool) error {
	var from client.AllPosition = client.Start{}
	if !after.IsZero() {
		from = client.Position{Commit: after.Commit, Prepare: after.Prepare}
	}
	last := after
	batch := uint64(s.cfg.ReadBatchSize)
	for {
		c, err := s.conn()
		if err != nil {
			return err
		}
		rs, err := c.ReadAll(ctx, client.ReadAllOptions{Direction: client.Forwards, From: from}, batch)
		if err != nil {
			s.renewIfClosed(c, err)
			return s.mapError(ctx, "read", "$all", nil, err)
		}
		n, stop, err := func() (uint64, bool, error) {
			defer rs.Close()
			var n uint64
			for {
				re, err := rs.Recv()
				if errors.Is(err, io.EOF) {
					return n, false, nil
				}
				if err != nil {
					return n, false, s.mapError(ctx, "read", "$all", nil, err)
				}
				n++
				ev := re.OriginalEvent()
				p := eventstore.Position{Commit: ev.Position.Commit, Prepare: ev.Position.Prepare}
				if p.Compare(last) <= 0 { // the read is inclusive of from
					continue
				}
				last = p
				if stream, ok := s.ours(ev); ok && !yield(stream, ev) {
					return n, true, nil
				}
			}
		}()
		if err != nil || stop || n < batch {
			return err
		}
		from = client.Position{Commit: last.Commit, Prepare: last.Prepare}
	}
}

// Tombstone implements eventstore.Store.
func (s *Store) Tombstone(ctx context.Context, stream string, expected eventstore.ExpectedRevision) error {
	exp, err := toExpected(expected)
	if err != nil {
		return err
	}
	c, err := s.conn()
	if err != nil {
		return err
	}
	_, err = c.TombstoneStream(ctx, s.streamName(stream), client.TombstoneStreamOptions{ExpectedRevision: exp})
	if err != nil {
		s.renewIfClosed(c, err)
		return s.mapError(ctx, "tombstone", stream, expected, err)
	}
	return nil
}

// Head implements eventstore.Store: it reads $all backwards to the last
// event of this store's log.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	var from client.AllPosition = client.End{}
	batch := uint64(64)
	for {
		c, err := s.conn()
		if err != nil {
			return eventstore.Position{}, err
		}
		rs, err := c.ReadAll(ctx, client.ReadAllOptions{Direction: client.Backwards, From: from}, batch)
		if err != nil {
			s.renewIfClosed(c, err)
			return eventstore.Position{}, s.mapError(ctx, "read", "$all", nil, err)
		}
		var (
			n     uint64
			found *eventstore.Position
			low   *client.Position
		)
		for {
			re, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rs.Close()
				return eventstore.Position{}, s.mapError(ctx, "read", "$all", nil, err)
			}
			n++
			ev := re.OriginalEvent()
			if low != nil && ev.Position.Commit == low.Commit && ev.Position.Prepare == low.Prepare {
				continue // a backwards read is exclusive, but do not rely on it
			}
			p := ev.Position
			low = &p
			if _, ok := s.ours(ev); ok {
				found = &eventstore.Position{Commit: p.Commit, Prepare: p.Prepare}
				break
			}
		}
		rs.Close()
		if found != nil {
			return *found, nil
		}
		if n < batch || low == nil {
			return eventstore.Position{}, nil
		}
		from = *low
		if batch < 4096 {
			batch *= 2
		}
	}
}
