package eventstoretest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/eventstore"
)

// guard bounds every wait of the suite. It is a failure guard, never a
// speed requirement: a correct adapter on a loaded machine finishes far
// sooner.
const guard = 10 * time.Second

// testTimeout bounds one subtest's context so that a hung adapter fails the
// subtest instead of the whole binary.
const testTimeout = 2 * time.Minute

// env is what one subtest works with: a fresh fixture and a context that
// ends with the subtest.
type env struct {
	t   *testing.T
	f   Fixture
	s   eventstore.Store
	ctx context.Context
}

// setup opens a fresh fixture for t and arranges for its store to be closed
// when t ends (after every cleanup registered later, such as subscriptions).
func setup(t *testing.T, newFixture func(t *testing.T) Fixture) *env {
	t.Helper()
	f := newFixture(t)
	if f.Store == nil {
		t.Fatalf("fixture has no Store")
	}
	t.Cleanup(func() {
		if err := f.Store.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return &env{t: t, f: f, s: f.Store, ctx: ctx}
}

// stream returns a stream name unique to this run, starting with prefix.
func stream(prefix string) string {
	return prefix + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
}

// ev builds an event with a fresh id, the given type and a small JSON body.
func ev(typ string, n int) eventstore.EventData {
	return eventstore.EventData{
		ID:       uuid.New(),
		Type:     typ,
		Data:     json.RawMessage(fmt.Sprintf(`{"n":%d,"note":"event %d"}`, n, n)),
		Metadata: json.RawMessage(fmt.Sprintf(`{"correlationId":"c-%d"}`, n)),
	}
}

// evs builds n events of one type.
func evs(typ string, n int) []eventstore.EventData {
	out := make([]eventstore.EventData, n)
	for i := range out {
		out[i] = ev(typ, i)
	}
	return out
}

// appendOK appends and fails the test on error.
func (e *env) appendOK(stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) eventstore.AppendResult {
	e.t.Helper()
	res, err := e.s.Append(e.ctx, stream, expected, events...)
	if err != nil {
		e.t.Fatalf("Append(%q, %s, %d events): %v", stream, eventstore.DescribeExpected(expected), len(events), err)
	}
	return res
}

// readStream reads a stream and fails the test on error.
func (e *env) readStream(stream string, opts eventstore.ReadStreamOptions) []eventstore.RecordedEvent {
	e.t.Helper()
	got, err := e.s.ReadStream(e.ctx, stream, opts)
	if err != nil {
		e.t.Fatalf("ReadStream(%q, %+v): %v", stream, opts, err)
	}
	return got
}

// readAll reads the log and fails the test on error.
func (e *env) readAll(opts eventstore.ReadAllOptions) []eventstore.RecordedEvent {
	e.t.Helper()
	got, err := e.s.ReadAll(e.ctx, opts)
	if err != nil {
		e.t.Fatalf("ReadAll(%+v): %v", opts, err)
	}
	return got
}

// head returns Head and fails the test on error.
func (e *env) head() eventstore.Position {
	e.t.Helper()
	p, err := e.s.Head(e.ctx)
	if err != nil {
		e.t.Fatalf("Head: %v", err)
	}
	return p
}

// wantWrongVersion checks that err is a *WrongExpectedVersionError for
// stream with the given current state and expected revision.
func wantWrongVersion(t testing.TB, err error, stream string, expected eventstore.ExpectedRevision, exists bool, current uint64) {
	t.Helper()
	if err == nil {
		t.Fatalf("append to %q with expected %s succeeded, want wrong expected version", stream, eventstore.DescribeExpected(expected))
	}
	if !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		t.Fatalf("error %v (%T): errors.Is(err, ErrWrongExpectedVersion) is false", err, err)
	}
	var w *eventstore.WrongExpectedVersionError
	if !errors.As(err, &w) {
		t.Fatalf("error %v (%T) is not a *WrongExpectedVersionError", err, err)
	}
	if w.Stream != stream {
		t.Errorf("WrongExpectedVersionError.Stream = %q, want %q", w.Stream, stream)
	}
	if !reflect.DeepEqual(w.Expected, expected) {
		t.Errorf("WrongExpectedVersionError.Expected = %s, want %s", eventstore.DescribeExpected(w.Expected), eventstore.DescribeExpected(expected))
	}
	if w.CurrentExists != exists {
		t.Errorf("WrongExpectedVersionError.CurrentExists = %v, want %v", w.CurrentExists, exists)
	}
	if exists && w.Current != current {
		t.Errorf("WrongExpectedVersionError.Current = %d, want %d", w.Current, current)
	}
	if !exists && w.Current != 0 {
		t.Errorf("WrongExpectedVersionError.Current = %d for a missing stream, want 0", w.Current)
	}
}

// wantErrIs checks errors.Is(err, target).
func wantErrIs(t testing.TB, err, target error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %v", what, target)
	}
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v (%T), want errors.Is(err, %v)", what, err, err, target)
	}
}

// jsonEqual reports whether a and b hold the same JSON value (key order and
// whitespace aside, as a jsonb column or a server may change them).
func jsonEqual(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// ids lists the ids of recorded events.
func ids(rs []eventstore.RecordedEvent) []uuid.UUID {
	out := make([]uuid.UUID, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// dataIDs lists the ids of events to append.
func dataIDs(ds []eventstore.EventData) []uuid.UUID {
	out := make([]uuid.UUID, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

// describe renders recorded events compactly for failure messages.
func describe(rs []eventstore.RecordedEvent) string {
	var b strings.Builder
	b.WriteString("[")
	for i, r := range rs {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s@%d(%s)", r.Stream, r.Revision, r.ID.String()[:8])
	}
	b.WriteString("]")
	return b.String()
}

// wantIDs checks that got holds exactly the events with ids want, in order.
func wantIDs(t testing.TB, what string, got []eventstore.RecordedEvent, want ...uuid.UUID) {
	t.Helper()
	g := ids(got)
	if len(g) != len(want) {
		t.Fatalf("%s: got %d events %s, want %d", what, len(g), describe(got), len(want))
	}
	for i := range g {
		if g[i] != want[i] {
			t.Fatalf("%s: event %d is %s, want %s; got %s", what, i, g[i], want[i], describe(got))
		}
	}
}

// wantRevisions checks the stream revisions of got, in order.
func wantRevisions(t testing.TB, what string, got []eventstore.RecordedEvent, want ...uint64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events %s, want revisions %v", what, len(got), describe(got), want)
	}
	for i := range got {
		if got[i].Revision != want[i] {
			t.Fatalf("%s: event %d has revision %d, want %d; got %s", what, i, got[i].Revision, want[i], describe(got))
		}
	}
}

// sameRecorded checks that two reads of the same events agree on every
// field the store assigns or keeps.
func sameRecorded(t testing.TB, what string, a, b []eventstore.RecordedEvent) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d events %s vs %d events %s", what, len(a), describe(a), len(b), describe(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.ID != y.ID || x.Stream != y.Stream || x.Revision != y.Revision || x.Position != y.Position || x.Type != y.Type {
			t.Fatalf("%s: event %d differs: %+v vs %+v", what, i, brief(x), brief(y))
		}
		if !jsonEqual(x.Data, y.Data) || !jsonEqual(x.Metadata, y.Metadata) {
			t.Fatalf("%s: event %d body differs: %s/%s vs %s/%s", what, i, x.Data, x.Metadata, y.Data, y.Metadata)
		}
		if !x.RecordedAt.Equal(y.RecordedAt) {
			t.Errorf("%s: event %d RecordedAt %v vs %v", what, i, x.RecordedAt, y.RecordedAt)
		}
	}
}

type briefEvent struct {
	ID       string
	Stream   string
	Revision uint64
	Position string
	Type     string
}

func brief(r eventstore.RecordedEvent) briefEvent {
	return briefEvent{r.ID.String(), r.Stream, r.Revision, r.Position.String(), r.Type}
}

// eventually polls cond until it holds or the guard expires.
func eventually(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v", what, guard)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// subscription runs Subscribe in the background and collects what it
// delivers. It checks on the way that the handler is never called
// concurrently nor after Subscribe has returned.
type subscription struct {
	t      testing.TB
	cancel context.CancelFunc
	done   chan struct{}

	mu          sync.Mutex
	events      []eventstore.RecordedEvent
	checkpoints []checkpointSeen
	returned    bool
	err         error
	misuse      []string
	inflight    int
	failAt      int // deliver this many, then fail with errHandler; 0 = never
}

type checkpointSeen struct {
	pos       eventstore.Position
	delivered int // events delivered when the checkpoint was reported
}

var errHandler = errors.New("eventstoretest: handler failure")

// subscribe starts a subscription on s; it is stopped when t ends.
func subscribe(t testing.TB, ctx context.Context, s eventstore.Store, opts eventstore.SubscribeOptions) *subscription {
	return subscribeFailing(t, ctx, s, opts, 0)
}

// subscribeFailing is subscribe whose handler fails on event number
// failAt+1 (counting from 1) when failAt > 0.
func subscribeFailing(t testing.TB, ctx context.Context, s eventstore.Store, opts eventstore.SubscribeOptions, failAt int) *subscription {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	sub := &subscription{t: t, cancel: cancel, done: make(chan struct{}), failAt: failAt}
	if opts.OnCheckpoint == nil {
		opts.OnCheckpoint = func(ctx context.Context, p eventstore.Position) error {
			sub.mu.Lock()
			defer sub.mu.Unlock()
			if sub.returned {
				sub.misuse = append(sub.misuse, "OnCheckpoint called after Subscribe returned")
			}
			sub.checkpoints = append(sub.checkpoints, checkpointSeen{p, len(sub.events)})
			return nil
		}
	}
	go func() {
		defer close(sub.done)
		err := s.Subscribe(ctx, opts, sub.handle)
		sub.mu.Lock()
		sub.returned = true
		sub.err = err
		sub.mu.Unlock()
	}()
	t.Cleanup(func() { sub.cancel(); <-sub.done })
	return sub
}

func (s *subscription) handle(ctx context.Context, e eventstore.RecordedEvent) error {
	s.mu.Lock()
	if s.returned {
		s.misuse = append(s.misuse, fmt.Sprintf("handler called after Subscribe returned (event %s)", e.ID))
	}
	s.inflight++
	if s.inflight > 1 {
		s.misuse = append(s.misuse, "handler called concurrently")
	}
	fail := s.failAt > 0 && len(s.events) == s.failAt
	if !fail {
		s.events = append(s.events, e)
	}
	s.mu.Unlock()
	// Give a concurrent second call the chance to show itself.
	time.Sleep(50 * time.Microsecond)
	s.mu.Lock()
	s.inflight--
	s.mu.Unlock()
	if fail {
		return fmt.Errorf("handling %s: %w", e.ID, errHandler)
	}
	return nil
}

// delivered returns a copy of what was delivered so far.
func (s *subscription) delivered() []eventstore.RecordedEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]eventstore.RecordedEvent(nil), s.events...)
}

// waitFor waits until the event with id has been delivered and returns
// everything delivered up to then.
func (s *subscription) waitFor(ctx context.Context, id uuid.UUID) []eventstore.RecordedEvent {
	s.t.Helper()
	var got []eventstore.RecordedEvent
	eventually(s.t, ctx, fmt.Sprintf("delivery of event %s", id), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.returned {
			s.t.Fatalf("Subscribe returned %v before delivering event %s; delivered %s", s.err, id, describe(s.events))
		}
		for _, e := range s.events {
			if e.ID == id {
				got = append([]eventstore.RecordedEvent(nil), s.events...)
				return true
			}
		}
		return false
	})
	return got
}

// stop cancels the subscription, waits for Subscribe to return (within the
// guard), checks it returned the context's error and that the handler was
// used correctly, and returns everything delivered.
func (s *subscription) stop() []eventstore.RecordedEvent {
	s.t.Helper()
	s.cancel()
	err := s.wait()
	if !errors.Is(err, context.Canceled) {
		s.t.Errorf("Subscribe returned %v after its context was cancelled, want context.Canceled", err)
	}
	return s.delivered()
}

// wait waits (within the guard) for Subscribe to return and returns its
// error; it reports misuse of the handler.
func (s *subscription) wait() error {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(guard):
		s.t.Fatalf("Subscribe did not return within %v", guard)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.misuse {
		s.t.Errorf("subscription: %s", m)
	}
	return s.err
}
