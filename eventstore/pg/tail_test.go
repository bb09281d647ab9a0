package pg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/test/pgtest"
)

// collector is a subscription's record of what it was given.
type collector struct {
	mu          sync.Mutex
	events      []eventstore.RecordedEvent
	checkpoints []eventstore.Position
	changed     chan struct{}
}

func newCollector() *collector { return &collector{changed: make(chan struct{}, 1)} }

func (c *collector) handle(_ context.Context, e eventstore.RecordedEvent) error {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return nil
}

func (c *collector) checkpoint(_ context.Context, p eventstore.Position) error {
	c.mu.Lock()
	c.checkpoints = append(c.checkpoints, p)
	c.mu.Unlock()
	return nil
}

// waitFor waits until the collector holds n events (the test's deadline
// bounds it) and returns them.
func (c *collector) waitFor(t *testing.T, ctx context.Context, n int) []eventstore.RecordedEvent {
	t.Helper()
	for {
		c.mu.Lock()
		got := append([]eventstore.RecordedEvent(nil), c.events...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-ctx.Done():
			t.Fatalf("got %d events, want %d", len(got), n)
		case <-c.changed:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// subscribe runs a subscription until the test ends and reports its end.
func subscribe(t *testing.T, ctx context.Context, s *Store, opts eventstore.SubscribeOptions, c *collector) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	opts.OnCheckpoint = c.checkpoint
	go func() { done <- s.Subscribe(ctx, opts, c.handle) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("subscription ended with %v", err)
		}
	})
	return done
}

// checkDelivery fails unless got is want's events of the log, in log order,
// each once.
func checkDelivery(t *testing.T, name string, got []eventstore.RecordedEvent, want map[string]bool) {
	t.Helper()
	seen := map[string]bool{}
	for i, e := range got {
		if i > 0 && got[i-1].Position.Compare(e.Position) >= 0 {
			t.Fatalf("%s: event %d at %s does not follow %s", name, i, e.Position, got[i-1].Position)
		}
		key := fmt.Sprintf("%s@%d", e.Stream, e.Revision)
		if seen[key] {
			t.Fatalf("%s: %s delivered twice", name, key)
		}
		seen[key] = true
		if !want[key] {
			t.Fatalf("%s: %s (%s) was not asked for", name, key, e.Type)
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("%s: got %d events, want %d", name, len(seen), len(want))
	}
}

// appendMany appends n events over writers goroutines: event i goes to
// stream "<prefix(i)>-<i%7>" with type "<prefix(i)>.v1", where prefix
// alternates a and b. It returns the keys stream@revision by prefix.
func appendMany(t *testing.T, ctx context.Context, s *Store, n, writers int) map[string]map[string]bool {
	t.Helper()
	var mu sync.Mutex
	keys := map[string]map[string]bool{"a": {}, "b": {}}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				prefix := []string{"a", "b"}[i%2]
				stream := fmt.Sprintf("%s-%d-%d", prefix, w, i%7)
				res, err := s.Append(ctx, stream, eventstore.Any{}, event(prefix+".v1"))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				keys[prefix][fmt.Sprintf("%s@%d", stream, res.NextRevision)] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return keys
}

func union(a, b map[string]bool) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// Live subscriptions with different filters follow one tail: each gets
// exactly its events in log order, and a filtered one is told how far it
// has read through events it does not want.
func TestSubscriptionsFollowTheTailWithTheirFilters(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, Config{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	all, byPrefix, byType := newCollector(), newCollector(), newCollector()
	subscribe(t, ctx, s, eventstore.SubscribeOptions{}, all)
	subscribe(t, ctx, s, eventstore.SubscribeOptions{Filter: eventstore.Filter{StreamPrefixes: []string{"a-"}}}, byPrefix)
	subscribe(t, ctx, s, eventstore.SubscribeOptions{Filter: eventstore.Filter{EventTypes: []string{"b.v1"}}}, byType)

	keys := appendMany(t, ctx, s, 300, 4)
	checkDelivery(t, "unfiltered", all.waitFor(t, ctx, 300), union(keys["a"], keys["b"]))
	checkDelivery(t, "stream prefix a-", byPrefix.waitFor(t, ctx, 150), keys["a"])
	checkDelivery(t, "event type b.v1", byType.waitFor(t, ctx, 150), keys["b"])

	// The last event of the log is a b: the a- subscription must be told
	// it has read past it.
	last := all.waitFor(t, ctx, 300)[299]
	if last.Type != "b.v1" {
		if _, err := s.Append(ctx, "b-last", eventstore.Any{}, event("b.v1")); err != nil {
			t.Fatal(err)
		}
		last = all.waitFor(t, ctx, 301)[300]
	}
	waitCheckpoint(t, ctx, byPrefix, last.Position)
	s.tail.mu.Lock()
	started := s.tail.latest != nil
	s.tail.mu.Unlock()
	if !started {
		t.Fatal("no subscription followed the tail")
	}
}

// A subscription whose handler stalls while the log runs on lets go of the
// tail and reads on its own; nothing is lost or repeated.
func TestSubscriptionThatFallsBehindReadsOnItsOwn(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, Config{})
	s.tail.maxLag = 5
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	gate := make(chan struct{})
	slow := newCollector()
	done := make(chan error, 1)
	go func() {
		done <- s.Subscribe(ctx, eventstore.SubscribeOptions{}, func(ctx context.Context, e eventstore.RecordedEvent) error {
			if e.Stream == "stall" {
				select {
				case <-gate:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return slow.handle(ctx, e)
		})
	}()
	fast := newCollector()
	subscribe(t, ctx, s, eventstore.SubscribeOptions{}, fast)
	// Both follow the tail once it has published something.
	want := map[string]bool{}
	res, err := s.Append(ctx, "first", eventstore.Any{}, event("t.v1"))
	if err != nil {
		t.Fatal(err)
	}
	want[fmt.Sprintf("first@%d", res.NextRevision)] = true
	fast.waitFor(t, ctx, 1)
	slow.waitFor(t, ctx, 1)
	if _, err := s.Append(ctx, "stall", eventstore.Any{}, event("t.v1")); err != nil {
		t.Fatal(err)
	}
	want["stall@0"] = true
	for i := range 40 {
		stream := fmt.Sprintf("after-%d", i)
		if _, err := s.Append(ctx, stream, eventstore.Any{}, event("t.v1")); err != nil {
			t.Fatal(err)
		}
		want[stream+"@0"] = true
	}
	fast.waitFor(t, ctx, len(want))
	if !s.tail.behind(&segment{}) {
		t.Fatal("the tail is not past maxLag; the test does not stall its subscription long enough")
	}
	close(gate)
	checkDelivery(t, "stalled", slow.waitFor(t, ctx, len(want)), want)
	checkDelivery(t, "fast", fast.waitFor(t, ctx, len(want)), want)
	// And it follows again: later events arrive too.
	if _, err := s.Append(ctx, "later", eventstore.Any{}, event("t.v1")); err != nil {
		t.Fatal(err)
	}
	want["later@0"] = true
	checkDelivery(t, "stalled, later", slow.waitFor(t, ctx, len(want)), want)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("subscription ended with %v", err)
	}
}

// A subscription that starts while the log is being written, when the tail
// already holds less than it needs, catches up on its own and attaches.
func TestSubscriptionJoinsARunningTail(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, Config{BatchSize: 16})
	s.tail.keep = 3
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	early := newCollector()
	subscribe(t, ctx, s, eventstore.SubscribeOptions{}, early)
	first := appendMany(t, ctx, s, 100, 2)
	early.waitFor(t, ctx, 100)

	// The late one subscribes while the log is being written.
	secondC := make(chan map[string]map[string]bool, 1)
	go func() { secondC <- appendMany(t, ctx, s, 400, 3) }()
	early.waitFor(t, ctx, 150)
	late := newCollector()
	subscribe(t, ctx, s, eventstore.SubscribeOptions{Filter: eventstore.Filter{StreamPrefixes: []string{"a-"}}}, late)
	second := <-secondC
	total := 500
	want := union(first["a"], second["a"])
	checkDelivery(t, "early", early.waitFor(t, ctx, total), union(union(first["a"], first["b"]), union(second["a"], second["b"])))
	checkDelivery(t, "late, a- only", late.waitFor(t, ctx, len(want)), want)

	// One that wants nothing is told, from its own read, how far it got.
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	none := newCollector()
	subscribe(t, ctx, s, eventstore.SubscribeOptions{Filter: eventstore.Filter{StreamPrefixes: []string{"c-"}}}, none)
	waitCheckpoint(t, ctx, none, head)
	if len(none.events) > 0 {
		t.Fatalf("the c- subscription got %d events", len(none.events))
	}
}

// waitCheckpoint waits until c was given a checkpoint at or after p.
func waitCheckpoint(t *testing.T, ctx context.Context, c *collector, p eventstore.Position) {
	t.Helper()
	for {
		c.mu.Lock()
		cps := append([]eventstore.Position(nil), c.checkpoints...)
		c.mu.Unlock()
		if len(cps) > 0 && cps[len(cps)-1].Compare(p) >= 0 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("checkpoints %v never reached %s", cps, p)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// attach hands out the held segment that covers a position, the newest for
// one past it, and nothing for one older than the tail holds.
func TestTailAttachWindow(t *testing.T) {
	t.Parallel()
	pos := func(n uint64) eventstore.Position { return eventstore.Position{Commit: n, Prepare: n} }
	s := &Store{}
	s.bg = t.Context()
	tl := newTail(s)
	tl.keep = 4
	tl.latest = &segment{from: pos(10), to: pos(10), ready: make(chan struct{})}
	tl.oldest = tl.latest
	for i := uint64(1); i <= 5; i++ {
		// Two events per segment: 10 < 11,12 <= 12 < 13,14 <= 14 ...
		tl.publish([]eventstore.RecordedEvent{{Position: pos(8 + 2*i + 1)}, {Position: pos(8 + 2*i + 2)}}, pos(8+2*i+2), nil)
	}
	// Held: keep events plus the oldest segment: (14,16], (16,18], (18,20].
	if got := tl.oldest.from; got != pos(14) {
		t.Fatalf("the tail holds from %s, want 14", got)
	}
	for _, c := range []struct {
		covered uint64
		from    uint64 // 0: nil
	}{{12, 0}, {13, 0}, {14, 14}, {15, 14}, {16, 14}, {17, 16}, {18, 16}, {19, 18}, {20, 18}, {25, 18}} {
		seg, since := tl.attach(pos(c.covered))
		if seg != nil && since != tl.latest.seq {
			t.Errorf("attach(%d): since = %d, want the newest segment's %d", c.covered, since, tl.latest.seq)
		}
		switch {
		case c.from == 0 && seg != nil:
			t.Errorf("attach(%d) = segment from %s, want none", c.covered, seg.from)
		case c.from != 0 && (seg == nil || seg.from != pos(c.from)):
			t.Errorf("attach(%d) = %v, want the segment from %d", c.covered, seg, c.from)
		}
	}
	// 10 events published: a follower at the start is behind only when
	// that is more than maxLag.
	if tl.behind(&segment{}) {
		t.Errorf("behind by 10 events with maxLag %d", tl.maxLag)
	}
	tl.maxLag = 9
	if !tl.behind(&segment{}) {
		t.Errorf("not behind by 10 events with maxLag %d", tl.maxLag)
	}
}

// Closing the Store ends the subscriptions that follow its tail.
func TestClosingTheStoreEndsFollowers(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, Config{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c := newCollector()
	done := make(chan error, 1)
	go func() { done <- s.Subscribe(ctx, eventstore.SubscribeOptions{}, c.handle) }()
	if _, err := s.Append(ctx, "x", eventstore.Any{}, event("t.v1")); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, ctx, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || ctx.Err() != nil {
			t.Fatalf("subscription ended with %v, want the store's closing", err)
		}
	case <-ctx.Done():
		t.Fatal("the subscription did not end when its store closed")
	}
}

// A subscription that starts while committed events wait behind a running
// transaction follows the tail, which re-reads until they are visible: it
// gets them all, in log order, once the transaction commits.
func TestSubscriptionStartsWhileEventsArePending(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, Config{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := s.AppendTx(ctx, tx, "held", eventstore.NoStream{}, event("t.v1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "after", eventstore.NoStream{}, event("t.v1")); err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	subscribe(t, ctx, s, eventstore.SubscribeOptions{}, c)
	// Nothing is visible while the older transaction runs; commit it
	// without Wake: the tail's backoff finds the events.
	time.Sleep(20 * time.Millisecond)
	if n := len(c.waitFor(t, ctx, 0)); n != 0 {
		t.Fatalf("%d events delivered past a running transaction", n)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := c.waitFor(t, ctx, 2)
	checkDelivery(t, "pending", got, map[string]bool{"held@0": true, "after@0": true})
	if got[0].Stream != "held" {
		t.Fatalf("delivered %s before held", got[0].Stream)
	}
}

// When the tail cannot read the log, the subscriptions that follow it end
// with the error (their owners resubscribe, as after a failed read of their
// own), and a new subscription works again once reads do.
func TestATailReadFailureEndsItsFollowers(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, Config{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c := newCollector()
	done := make(chan error, 1)
	go func() { done <- s.Subscribe(ctx, eventstore.SubscribeOptions{}, c.handle) }()
	if _, err := s.Append(ctx, "one", eventstore.NoStream{}, event("t.v1")); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, ctx, 1)
	// Reads of $all select recorded_at; appends leave it to its default.
	if _, err := s.Pool().Exec(ctx, `ALTER TABLE events RENAME COLUMN recorded_at TO recorded_at_away`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "two", eventstore.NoStream{}, event("t.v1")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "pg: subscribe") {
			t.Fatalf("subscription ended with %v, want the tail's read error", err)
		}
	case <-ctx.Done():
		t.Fatal("the subscription did not end when the tail could not read")
	}
	if _, err := s.Pool().Exec(ctx, `ALTER TABLE events RENAME COLUMN recorded_at_away TO recorded_at`); err != nil {
		t.Fatal(err)
	}
	// Once the tail reads again (a read begun before the rename may still
	// fail, and would end a subscription that followed it by then)...
	for {
		s.tail.mu.Lock()
		ok := s.tail.latest.err == nil && s.tail.latest.seq > 0
		s.tail.mu.Unlock()
		if ok {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the tail never read again")
		}
		s.Wake()
		time.Sleep(5 * time.Millisecond)
	}
	again := newCollector()
	subscribe(t, ctx, s, eventstore.SubscribeOptions{}, again)
	if _, err := s.Append(ctx, "three", eventstore.NoStream{}, event("t.v1")); err != nil {
		t.Fatal(err)
	}
	checkDelivery(t, "after the failure", again.waitFor(t, ctx, 3), map[string]bool{"one@0": true, "two@0": true, "three@0": true})
}

// A transaction of another database in the cluster holds back the
// snapshot's xmin, which the tail reads below; it must not hold back this
// log's subscribers (tests and tenants share clusters). Once it has held
// the tail for a moment, the tail looks past it.
func TestATransactionOfAnotherDatabaseDoesNotHoldTheTail(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, Config{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	other, err := pgx.Connect(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Close(context.WithoutCancel(ctx)) }()
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var xid int64
	if err := tx.QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&xid); err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	subscribe(t, ctx, s, eventstore.SubscribeOptions{}, c)
	for i, name := range []string{"one", "two", "three"} {
		r, err := s.Append(ctx, name, eventstore.NoStream{}, event("t.v1"))
		if err != nil {
			t.Fatal(err)
		}
		if r.Position.Commit <= uint64(xid) {
			t.Fatalf("append of %s got transaction %d, not after the other database's %d", name, r.Position.Commit, xid)
		}
		// Each one is delivered while the other transaction still runs.
		c.waitFor(t, ctx, i+1)
	}
	checkDelivery(t, "past another database's transaction", c.waitFor(t, ctx, 3),
		map[string]bool{"one@0": true, "two@0": true, "three@0": true})
}

// Reads of $all run on connections whose one plan is the ordered walk of
// the primary key, even when the generic plan is made on an empty log
// (where PostgreSQL would otherwise pick a bitmap scan and a sort of the
// whole range after the position, and keep it as the log grows).
func TestReadsOfAllWalkThePrimaryKeyOnAnEmptyLog(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, Config{})
	ctx := t.Context()
	conn, err := s.allPool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, withHead := range []bool{false, true} {
		for _, hk := range []horizonKind{snapshotHorizon, preciseHorizon} {
			name := fmt.Sprintf("page_%t_%d", withHead, hk)
			if _, err := conn.Exec(ctx, "PREPARE "+name+"(bigint, bigint, bigint, text[], text[], bigint) AS "+pageSQL(withHead, hk)); err != nil {
				t.Fatal(err)
			}
			for _, args := range []string{"0, 0, 512, NULL, NULL, 0", "0, 0, 512, '{t.v1}', '{task-}', 0"} {
				rows, err := conn.Query(ctx, "EXPLAIN (COSTS OFF) EXECUTE "+name+"("+args+")", pgx.QueryExecModeSimpleProtocol)
				if err != nil {
					t.Fatal(err)
				}
				lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					t.Fatal(err)
				}
				plan := strings.Join(lines, "\n")
				if !strings.Contains(plan, "Index Scan using events_pkey") ||
					strings.Contains(plan, "Sort") || strings.Contains(plan, "Bitmap") || strings.Contains(plan, "Seq Scan") {
					t.Fatalf("%s(%s) on an empty log:\n%s", name, args, plan)
				}
			}
		}
	}
}
