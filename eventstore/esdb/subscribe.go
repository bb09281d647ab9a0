package esdb

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/authledger/authledger/eventstore"
)

// handlerError marks an error returned by the caller's handler or
// checkpoint callback: it ends the subscription, it is never retried.
type handlerError struct{ err error }

func (e handlerError) Error() string { return e.err.Error() }
func (e handlerError) Unwrap() error { return e.err }

// Subscribe implements eventstore.Store with SubscribeToAll, always from
// the checkpoint (esdb.Start{} for the zero Position, never the client's
// default of the end of the log).
//
// A dropped subscription (the server closed the stream, a node restarted,
// the network failed) is resumed after the last event delivered or
// checkpoint reached, with exponential backoff, so every event is delivered
// exactly once and in order. It gives up only on ctx, on a handler error and
// on errors that a retry cannot cure (authentication, access denied).
//
// Filters: EventStoreDB filters a subscription on event type or on stream
// name, not both. Event types go to the server (an anchored regular
// expression), stream prefixes go to the server when there are no event
// types; whatever is left is checked here. The server's checkpoints, and
// events filtered out here, advance the position passed to
// opts.OnCheckpoint.
func (s *Store) Subscribe(ctx context.Context, opts eventstore.SubscribeOptions, handle eventstore.Handler) error {
	sub := subscription{s: s, opts: opts, handle: handle, last: opts.After, reported: opts.After}
	sub.filter = s.serverFilter(opts.Filter)
	backoff := s.cfg.ResubscribeMinBackoff
	for {
		progressed, err := sub.run(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var he handlerError
		if errors.As(err, &he) {
			return he.err
		}
		if permanent(err) {
			return fmt.Errorf("esdb: subscription to $all: %w", err)
		}
		if progressed {
			backoff = s.cfg.ResubscribeMinBackoff
		}
		s.cfg.Logger.Warn("esdb: subscription to $all dropped; resubscribing",
			"after", sub.last.String(), "backoff", backoff, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, s.cfg.ResubscribeMaxBackoff)
	}
}

// permanent reports whether resubscribing cannot help.
func permanent(err error) bool {
	if errors.Is(err, errClosed) {
		return true
	}
	var e *client.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() {
	case client.ErrorCodeUnauthenticated, client.ErrorCodeAccessDenied, client.ErrorCodeUnsupportedFeature, client.ErrorCodeParsing:
		return true
	}
	return false
}

// serverFilter chooses the part of f that EventStoreDB evaluates. Without
// any filter it still excludes system events on the server, which also
// makes the server send checkpoints.
func (s *Store) serverFilter(f eventstore.Filter) *client.SubscriptionFilter {
	switch {
	case len(f.EventTypes) > 0:
		quoted := make([]string, len(f.EventTypes))
		for i, t := range f.EventTypes {
			quoted[i] = regexp.QuoteMeta(t)
		}
		return &client.SubscriptionFilter{Type: client.EventFilterType, Regex: "^(" + strings.Join(quoted, "|") + ")$"}
	case len(f.StreamPrefixes) > 0:
		prefixes := make([]string, len(f.StreamPrefixes))
		for i, p := range f.StreamPrefixes {
			prefixes[i] = s.cfg.StreamPrefix + p
		}
		return &client.SubscriptionFilter{Type: client.StreamFilterType, Prefixes: prefixes}
	case s.cfg.StreamPrefix != "":
		return &client.SubscriptionFilter{Type: client.StreamFilterType, Prefixes: []string{s.cfg.StreamPrefix}}
	}
	return client.ExcludeSystemEventsFilter()
}

type subscription struct {
	s      *Store
	opts   eventstore.SubscribeOptions
	handle eventstore.Handler
	filter *client.SubscriptionFilter
	// last is the position up to which every event has been delivered or
	// filtered out: the next attempt resumes strictly after it.
	last eventstore.Position
	// reported is the last position passed to OnCheckpoint or delivered.
	reported eventstore.Position
}

// run is one attempt: subscribe after sub.last and deliver until the
// subscription drops. progressed tells whether it got past the
// confirmation, which resets the backoff.
func (sub *subscription) run(ctx context.Context) (progressed bool, err error) {
	s := sub.s
	c, err := s.conn()
	if err != nil {
		return false, err
	}
	var from client.AllPosition = client.Start{}
	if !sub.last.IsZero() {
		from = client.Position{Commit: sub.last.Commit, Prepare: sub.last.Prepare}
	}
	es, err := c.SubscribeToAll(ctx, client.SubscribeToAllOptions{
		From:               from,
		Filter:             sub.filter,
		MaxSearchWindow:    s.cfg.MaxSearchWindow,
		CheckpointInterval: s.cfg.CheckpointInterval,
	})
	if err != nil {
		s.renewIfClosed(c, err)
		return false, err
	}
	defer es.Close()
	for {
		msg := es.Recv()
		switch {
		case msg.SubscriptionDropped != nil:
			err := msg.SubscriptionDropped.Error
			if err == nil {
				err = errors.New("dropped by the server")
			}
			return true, err
		case msg.EventAppeared != nil:
			if err := sub.deliver(ctx, msg.EventAppeared.OriginalEvent()); err != nil {
				return true, err
			}
		case msg.CheckPointReached != nil:
			p := eventstore.Position{Commit: msg.CheckPointReached.Commit, Prepare: msg.CheckPointReached.Prepare}
			if p.Compare(sub.last) > 0 {
				sub.last = p
			}
			if err := sub.report(ctx); err != nil {
				return true, err
			}
		}
	}
}

func (sub *subscription) deliver(ctx context.Context, ev *client.RecordedEvent) error {
	if ev == nil {
		return nil
	}
	p := eventstore.Position{Commit: ev.Position.Commit, Prepare: ev.Position.Prepare}
	if p.Compare(sub.last) <= 0 {
		return nil // at or before the checkpoint: already delivered or filtered out
	}
	stream, ok := sub.s.ours(ev)
	if !ok || !sub.opts.Filter.Matches(stream, ev.EventType) {
		sub.last = p
		return nil
	}
	if err := sub.handle(ctx, sub.s.toRecorded(stream, ev)); err != nil {
		return handlerError{err}
	}
	sub.last, sub.reported = p, p
	return nil
}

func (sub *subscription) report(ctx context.Context) error {
	if sub.opts.OnCheckpoint == nil || sub.last.Compare(sub.reported) <= 0 {
		return nil
	}
	if err := sub.opts.OnCheckpoint(ctx, sub.last); err != nil {
		return handlerError{err}
	}
	sub.reported = sub.last
	return nil
}
