package esdb_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/eventstore/esdb"
	"github.com/authledger/authledger/test/esdbserver"
)

// startServer starts an in-process EventStoreDB double, closed when t ends.
func startServer(t *testing.T) *esdbserver.Server {
	t.Helper()
	srv, err := esdbserver.Start()
	if err != nil {
		t.Fatalf("esdbserver.Start: %v", err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// open opens a store on url, closed when t ends.
func open(t *testing.T, cfg esdb.Config) *esdb.Store {
	t.Helper()
	s, err := esdb.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func event(typ string, n int) eventstore.EventData {
	return eventstore.EventData{
		ID:       uuid.New(),
		Type:     typ,
		Data:     json.RawMessage(fmt.Sprintf(`{"n":%d}`, n)),
		Metadata: json.RawMessage(fmt.Sprintf(`{"correlationId":"c-%d"}`, n)),
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	err := esdb.Config{StreamPrefix: "$x", ReadBatchSize: -1, ResubscribeMinBackoff: time.Second, ResubscribeMaxBackoff: time.Millisecond}.Validate()
	if err == nil {
		t.Fatal("Validate succeeded")
	}
	for _, want := range []string{"URL is required", "StreamPrefix", "ReadBatchSize", "backoff"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, want it to mention %q", err, want)
		}
	}
	if err := (esdb.Config{URL: "postgres://x"}).Validate(); err == nil || !strings.Contains(err.Error(), "esdb://") {
		t.Errorf("Validate(postgres URL) = %v, want a scheme error", err)
	}
	if err := (esdb.Config{URL: "esdb://127.0.0.1:2113?tls=false"}).Validate(); err != nil {
		t.Errorf("Validate(valid) = %v", err)
	}
}

func TestOpenFailsClearlyWhenUnreachable(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	url := srv.URL()
	srv.Close() // nothing listens on that port any more
	start := time.Now()
	_, err := esdb.Open(t.Context(), esdb.Config{URL: url, ConnectTimeout: 5 * time.Second})
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
	if !strings.Contains(err.Error(), "unreachable") || !strings.Contains(err.Error(), srv.Addr()) {
		t.Errorf("Open error = %q, want it to say the server at %s is unreachable", err, srv.Addr())
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Open took %v", d)
	}
}

func TestAppendReadAndErrors(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	s := open(t, esdb.Config{URL: srv.URL()})
	ctx := t.Context()

	a, b := event("t.a.v1", 1), event("t.b.v1", 2)
	res, err := s.Append(ctx, "order-1", eventstore.NoStream{}, a, b)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if res.NextRevision != 1 || res.Position.IsZero() {
		t.Fatalf("Append = %+v, want revision 1 and a position", res)
	}

	// Idempotent: same ids, same expectation → same result, nothing written.
	again, err := s.Append(ctx, "order-1", eventstore.NoStream{}, a, b)
	if err != nil || again != res {
		t.Fatalf("re-Append = %+v, %v; want %+v", again, err, res)
	}

	_, err = s.Append(ctx, "order-1", eventstore.NoStream{}, event("t.c.v1", 3))
	var w *eventstore.WrongExpectedVersionError
	if !errors.As(err, &w) || !w.CurrentExists || w.Current != 1 || w.Stream != "order-1" {
		t.Fatalf("Append(NoStream) on existing = %v, want wrong version with current 1", err)
	}
	_, err = s.Append(ctx, "nothing", eventstore.StreamExists{}, event("t.c.v1", 3))
	if !errors.As(err, &w) || w.CurrentExists {
		t.Fatalf("Append(StreamExists) on missing = %v, want wrong version with no stream", err)
	}
	_, err = s.Append(ctx, "order-1", eventstore.Revision(5), event("t.c.v1", 3))
	if !errors.As(err, &w) || !w.CurrentExists || w.Current != 1 {
		t.Fatalf("Append(Revision 5) = %v, want wrong version with current 1", err)
	}

	got, err := s.ReadStream(ctx, "order-1", eventstore.ReadStreamOptions{})
	if err != nil || len(got) != 2 || got[0].ID != a.ID || got[1].Revision != 1 || got[1].Position != res.Position {
		t.Fatalf("ReadStream = %+v, %v", got, err)
	}
	if string(got[0].Metadata) != string(a.Metadata) || string(got[0].Data) != string(a.Data) || got[0].RecordedAt.IsZero() {
		t.Errorf("ReadStream event 0 = %+v", got[0])
	}
	back, err := s.ReadStream(ctx, "order-1", eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
	if err != nil || len(back) != 1 || back[0].ID != b.ID {
		t.Fatalf("ReadStream backwards = %+v, %v", back, err)
	}

	if _, err := s.ReadStream(ctx, "nothing", eventstore.ReadStreamOptions{}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatalf("ReadStream(missing) = %v, want ErrStreamNotFound", err)
	}

	err = s.Tombstone(ctx, "order-1", eventstore.Revision(0))
	if !errors.As(err, &w) || !w.CurrentExists || w.Current != 1 {
		t.Fatalf("Tombstone(Revision 0) = %v, want wrong version with current 1", err)
	}
	if err := s.Tombstone(ctx, "order-1", eventstore.Revision(1)); err != nil {
		t.Fatalf("Tombstone: %v", err)
	}
	if _, err := s.ReadStream(ctx, "order-1", eventstore.ReadStreamOptions{}); !errors.Is(err, eventstore.ErrStreamDeleted) {
		t.Fatalf("ReadStream(tombstoned) = %v, want ErrStreamDeleted", err)
	}
	if _, err := s.Append(ctx, "order-1", eventstore.Any{}, event("t.c.v1", 3)); !errors.Is(err, eventstore.ErrStreamDeleted) {
		t.Fatalf("Append(tombstoned) = %v, want ErrStreamDeleted", err)
	}

	// $all keeps the events, hides the tombstone record; Head is the last event.
	c, err := s.Append(ctx, "order-2", eventstore.NoStream{}, event("t.c.v1", 3))
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.ReadAll(ctx, eventstore.ReadAllOptions{})
	if err != nil || len(all) != 3 || all[2].Stream != "order-2" {
		t.Fatalf("ReadAll = %+v, %v", all, err)
	}
	after, err := s.ReadAll(ctx, eventstore.ReadAllOptions{After: all[0].Position})
	if err != nil || len(after) != 2 || after[0].ID != b.ID {
		t.Fatalf("ReadAll(after first) = %+v, %v", after, err)
	}
	lim, err := s.ReadAll(ctx, eventstore.ReadAllOptions{Limit: 1, Filter: eventstore.Filter{StreamPrefixes: []string{"order-2"}}})
	if err != nil || len(lim) != 1 || lim[0].Position != c.Position {
		t.Fatalf("ReadAll(filter) = %+v, %v", lim, err)
	}
	if h, err := s.Head(ctx); err != nil || h != c.Position {
		t.Fatalf("Head = %v, %v; want %v", h, err, c.Position)
	}
}

func TestHeadOfEmptyLogIsZero(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	s := open(t, esdb.Config{URL: srv.URL()})
	if h, err := s.Head(t.Context()); err != nil || !h.IsZero() {
		t.Fatalf("Head = %v, %v; want zero", h, err)
	}
}

func TestReadAllPagesThroughBatches(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	s := open(t, esdb.Config{URL: srv.URL(), ReadBatchSize: 3})
	ctx := t.Context()
	var want []uuid.UUID
	for i := range 10 {
		e := event("t.v1", i)
		want = append(want, e.ID)
		if _, err := s.Append(ctx, fmt.Sprintf("s-%d", i%3), eventstore.Any{}, e); err != nil {
			t.Fatal(err)
		}
		if i == 4 {
			if err := s.Tombstone(ctx, "gone", eventstore.Any{}); err != nil { // a system record in the middle
				t.Fatal(err)
			}
		}
	}
	all, err := s.ReadAll(ctx, eventstore.ReadAllOptions{})
	if err != nil || len(all) != 10 {
		t.Fatalf("ReadAll = %d events, %v", len(all), err)
	}
	for i := range all {
		if all[i].ID != want[i] {
			t.Fatalf("event %d = %s, want %s", i, all[i].ID, want[i])
		}
	}
	some, err := s.ReadAll(ctx, eventstore.ReadAllOptions{After: all[3].Position, Limit: 4})
	if err != nil || len(some) != 4 || some[0].ID != want[4] || some[3].ID != want[7] {
		t.Fatalf("ReadAll(after 3, limit 4) = %d events, %v", len(some), err)
	}
}

// collector is a handler that records deliveries.
type collector struct {
	mu     sync.Mutex
	events []eventstore.RecordedEvent
	cps    []eventstore.Position
}

func (c *collector) handle(_ context.Context, e eventstore.RecordedEvent) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, e)
	return nil
}

func (c *collector) checkpoint(_ context.Context, p eventstore.Position) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cps = append(c.cps, p)
	return nil
}

func (c *collector) snapshot() ([]eventstore.RecordedEvent, []eventstore.Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]eventstore.RecordedEvent(nil), c.events...), append([]eventstore.Position(nil), c.cps...)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// subscribeBG runs Subscribe until the returned stop is called.
func subscribeBG(t *testing.T, s eventstore.Store, opts eventstore.SubscribeOptions, c *collector) (stop func() error) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Subscribe(ctx, opts, c.handle) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestSubscribeResubscribesAfterDrop(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	s := open(t, esdb.Config{URL: srv.URL(), ResubscribeMinBackoff: 10 * time.Millisecond})
	ctx := t.Context()

	var want []uuid.UUID
	appendN := func(n int) {
		for range n {
			e := event("t.v1", len(want))
			want = append(want, e.ID)
			if _, err := s.Append(ctx, fmt.Sprintf("s-%d", len(want)%4), eventstore.Any{}, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN(5) // before the subscription: catch-up

	c := &collector{}
	stop := subscribeBG(t, s, eventstore.SubscribeOptions{}, c)
	waitUntil(t, "catch-up", func() bool { ev, _ := c.snapshot(); return len(ev) == 5 })

	for round := range 3 {
		waitUntil(t, "a live subscription", func() bool { return srv.ActiveSubscriptions() == 1 })
		appendN(3) // live, before the drop
		if n := srv.DropSubscriptions(); n != 1 {
			t.Fatalf("round %d: dropped %d subscriptions, want 1", round, n)
		}
		appendN(4) // while the adapter resubscribes
		waitUntil(t, "resubscription", func() bool { return srv.ActiveSubscriptions() == 1 })
		appendN(2) // after it
		waitUntil(t, fmt.Sprintf("round %d delivery", round), func() bool { ev, _ := c.snapshot(); return len(ev) >= len(want) })
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe returned %v, want context.Canceled", err)
	}
	got, _ := c.snapshot()
	if len(got) != len(want) {
		t.Fatalf("delivered %d events, want %d (each exactly once)", len(got), len(want))
	}
	for i := range got {
		if got[i].ID != want[i] {
			t.Fatalf("event %d = %s, want %s: out of order or duplicated", i, got[i].ID, want[i])
		}
	}
}

func TestSubscribeFiltersAndCheckpoints(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	s := open(t, esdb.Config{URL: srv.URL(), MaxSearchWindow: 2})
	ctx := t.Context()

	var wantIDs []uuid.UUID
	var last eventstore.Position
	for i := range 20 {
		typ, stream := "noise.v1", "other-1"
		switch {
		case i%5 == 0:
			typ, stream = "wanted.v1", "user-1"
		case i%5 == 1:
			typ, stream = "wanted.v1", "other-1" // right type, wrong stream
		}
		e := event(typ, i)
		res, err := s.Append(ctx, stream, eventstore.Any{}, e)
		if err != nil {
			t.Fatal(err)
		}
		if typ == "wanted.v1" && stream == "user-1" {
			wantIDs = append(wantIDs, e.ID)
		}
		last = res.Position
	}
	c := &collector{}
	stop := subscribeBG(t, s, eventstore.SubscribeOptions{
		Filter:       eventstore.Filter{EventTypes: []string{"wanted.v1", "a.b*c"}, StreamPrefixes: []string{"user-"}},
		OnCheckpoint: c.checkpoint,
	}, c)
	waitUntil(t, "a checkpoint at the last event", func() bool {
		_, cps := c.snapshot()
		return len(cps) > 0 && cps[len(cps)-1] == last
	})
	_ = stop()
	got, cps := c.snapshot()
	if len(got) != len(wantIDs) {
		t.Fatalf("delivered %d events, want %d", len(got), len(wantIDs))
	}
	for i := range got {
		if got[i].ID != wantIDs[i] {
			t.Fatalf("event %d = %s, want %s", i, got[i].ID, wantIDs[i])
		}
	}
	for i := 1; i < len(cps); i++ {
		if cps[i].Compare(cps[i-1]) <= 0 {
			t.Fatalf("checkpoints not increasing: %v", cps)
		}
	}

	// Resuming from a checkpoint delivers only what follows it.
	e := event("wanted.v1", 99)
	if _, err := s.Append(ctx, "user-2", eventstore.Any{}, e); err != nil {
		t.Fatal(err)
	}
	c2 := &collector{}
	stop2 := subscribeBG(t, s, eventstore.SubscribeOptions{After: last, Filter: eventstore.Filter{EventTypes: []string{"wanted.v1"}}}, c2)
	waitUntil(t, "the event after the checkpoint", func() bool { ev, _ := c2.snapshot(); return len(ev) == 1 })
	_ = stop2()
	if ev, _ := c2.snapshot(); len(ev) != 1 || ev[0].ID != e.ID {
		t.Fatalf("resumed delivery = %+v, want only %s", ev, e.ID)
	}
}

func TestSubscribeHandlerErrorEndsSubscription(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	s := open(t, esdb.Config{URL: srv.URL()})
	if _, err := s.Append(t.Context(), "x", eventstore.Any{}, event("t.v1", 0)); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := s.Subscribe(t.Context(), eventstore.SubscribeOptions{}, func(context.Context, eventstore.RecordedEvent) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Subscribe = %v, want the handler's error", err)
	}
}

func TestStreamPrefixIsolatesLogs(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	a := open(t, esdb.Config{URL: srv.URL(), StreamPrefix: "a/"})
	b := open(t, esdb.Config{URL: srv.URL(), StreamPrefix: "b/"})
	ctx := t.Context()
	ra, err := a.Append(ctx, "user-1", eventstore.NoStream{}, event("t.v1", 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(ctx, "user-1", eventstore.NoStream{}, event("t.v1", 2)); err != nil {
		t.Fatalf("the same stream name in another prefix: %v", err)
	}
	all, err := a.ReadAll(ctx, eventstore.ReadAllOptions{})
	if err != nil || len(all) != 1 || all[0].Stream != "user-1" {
		t.Fatalf("ReadAll(a) = %+v, %v", all, err)
	}
	if h, err := a.Head(ctx); err != nil || h != ra.Position {
		t.Fatalf("Head(a) = %v, %v; want %v", h, err, ra.Position)
	}
}

func TestSubscribeEndsWhenStoreCloses(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	s, err := esdb.Open(t.Context(), esdb.Config{URL: srv.URL(), ResubscribeMinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- s.Subscribe(t.Context(), eventstore.SubscribeOptions{}, func(context.Context, eventstore.RecordedEvent) error { return nil })
	}()
	waitUntil(t, "the subscription", func() bool { return srv.ActiveSubscriptions() == 1 })
	_ = s.Close()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Fatalf("Subscribe = %v after Close, want the closed-store error", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Subscribe did not return after Close")
	}
}
