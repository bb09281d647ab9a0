package pg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/migrations"
	"github.com/authledger/authledger/test/pgtest"
)

func openTestStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	url := pgtest.NewDatabase(t)
	if err := migrations.Migrate(t.Context(), url); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	cfg.ConnString = url
	s, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func event(typ string) eventstore.EventData {
	return eventstore.EventData{ID: uuid.New(), Type: typ, Data: json.RawMessage(`{}`)}
}

func req(t *testing.T, stream string, x eventstore.ExpectedRevision, events ...eventstore.EventData) *appendReq {
	t.Helper()
	r, err := newAppendReq(stream, x, events)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// One statement carries appends whose outcomes differ; each gets its own.
func TestAppendsInOneStatementKeepTheirOwnOutcomes(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, Config{AppendBatch: 1})
	ctx := t.Context()
	for _, st := range []string{"b-wrong", "b-gone", "b-exists"} {
		if _, err := s.Append(ctx, st, eventstore.NoStream{}, event("t.v1"), event("t.v1")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Tombstone(ctx, "b-gone", eventstore.Any{}); err != nil {
		t.Fatal(err)
	}
	reqs := []*appendReq{
		req(t, "b-new", eventstore.NoStream{}, event("t.v1"), event("t.v1")),
		req(t, "b-wrong", eventstore.Revision(0), event("t.v1")),
		req(t, "b-gone", eventstore.Any{}, event("t.v1")),
		req(t, "b-exists", eventstore.StreamExists{}, event("t.v1")),
		req(t, "b-none", eventstore.StreamExists{}, event("t.v1")),
	}
	out, err := execAppends(ctx, s.pool, reqs)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		verdict string
		current int64
		next    uint64
	}{{"ok", -1, 1}, {"wrong", 1, 0}, {"deleted", 2, 0}, {"ok", 1, 2}, {"wrong", -1, 0}}
	for i, w := range want {
		o := out[i]
		if o.verdict != w.verdict || o.current != w.current || (o.inserted && o.res.NextRevision != w.next) || o.inserted != (w.verdict == "ok") {
			t.Errorf("append %d (%s): %+v, want verdict %s, current %d, next %d", i, reqs[i].stream, o, w.verdict, w.current, w.next)
		}
	}
	if out[0].res.Position.Commit != out[3].res.Position.Commit {
		t.Errorf("the appends of one statement were written by different transactions: %v, %v", out[0].res.Position, out[3].res.Position)
	}
	if out[0].res.Position.Compare(out[3].res.Position) >= 0 {
		t.Errorf("positions %v and %v are not in call order", out[0].res.Position, out[3].res.Position)
	}
}

// The batcher's choice: in call order, one append per stream and none of a
// stream being written, within the limits; calls given up are dropped, the
// rest stays queued in order.
func TestPickKeepsOneAppendPerStreamInOrder(t *testing.T) {
	b := &batcher{s: &Store{cfg: Config{AppendBatch: 3, AppendBatchEvents: 4}}}
	mk := func(stream string, n int) *pending {
		evs := make([]eventstore.EventData, n)
		for i := range evs {
			evs[i] = event("t.v1")
		}
		return &pending{req: &appendReq{stream: stream, events: evs}}
	}
	q := []*pending{mk("a", 1), mk("a", 1), mk("b", 1), mk("gone", 1), mk("c", 1), mk("d", 1)}
	q[3].state.Store(pendingAbandoned)
	batch, rest := b.pick(q)
	if got := names(batch); got != "a b c" {
		t.Errorf("batch = %s, want a b c", got)
	}
	if got := names(rest); got != "a d" {
		t.Errorf("rest = %s, want a d (the second a waits for the next batch)", got)
	}
	for _, p := range batch {
		if p.state.Load() != pendingTaken {
			t.Errorf("%s not marked taken", p.req.stream)
		}
	}
	// The event cap: a large append goes alone, and nothing overtakes a
	// deferred call of the same stream.
	batch, rest = b.pick([]*pending{mk("big", 9), mk("x", 1), mk("big", 1)})
	if names(batch) != "big" || names(rest) != "x big" {
		t.Errorf("batch %q, rest %q; want big alone, then x big", names(batch), names(rest))
	}
	// A stream whose batch is still being written on another connection
	// waits, and so does every later call of it.
	b.writing = map[string]bool{"w": true}
	batch, rest = b.pick([]*pending{mk("w", 1), mk("y", 1), mk("w", 1)})
	if names(batch) != "y" || names(rest) != "w w" {
		t.Errorf("batch %q, rest %q; want y, then w w", names(batch), names(rest))
	}
}

// When a batch may start on a free connection while another is being
// written: at once for few writers, after the batch being written for
// many, unless enough calls wait to be worth a connection.
func TestMayStartGroupsUnderLoad(t *testing.T) {
	queued := func(n int) []*pending { return make([]*pending, n) }
	for _, c := range []struct {
		name   string
		b      *batcher
		starts bool
	}{
		{"nothing being written", &batcher{size: 4}, true},
		{"few calls per batch", &batcher{busy: 1, size: 1.2}, true},
		{"many calls per batch, few queued", &batcher{busy: 1, size: 3, queue: queued(spreadQueue - 1)}, false},
		{"many calls per batch, enough queued", &batcher{busy: 1, size: 3, queue: queued(spreadQueue)}, true},
		{"every connection busy", &batcher{busy: 2, size: 1, queue: queued(10)}, false},
		{"closing", &batcher{closed: true}, false},
	} {
		c.b.s = &Store{cfg: Config{AppendBatchers: 2}}
		if got := c.b.mayStart(); got != c.starts {
			t.Errorf("%s: mayStart = %v, want %v", c.name, got, c.starts)
		}
	}
}

func names(ps []*pending) string {
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += " "
		}
		s += p.req.stream
	}
	return s
}

// A batch that fails as a whole (here: invalid JSON in one append) tells
// every caller to append alone; only the bad one then fails.
func TestFailedBatchFallsBackToSingleAppends(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, Config{})
	good := &pending{req: req(t, "fb-good", eventstore.NoStream{}, event("t.v1")), done: make(chan batchReply, 1)}
	bad := eventstore.EventData{ID: uuid.New(), Type: "t.v1", Data: json.RawMessage(`{not json`)}
	badP := &pending{req: req(t, "fb-bad", eventstore.NoStream{}, bad), done: make(chan batchReply, 1)}
	b := s.batcher
	b.write(t.Context(), []*pending{good, badP})
	for _, p := range []*pending{good, badP} {
		if rep := <-p.done; !errors.Is(rep.err, errBatchFailed) {
			t.Fatalf("%s: reply %+v, want errBatchFailed", p.req.stream, rep)
		}
	}
	if _, err := s.Append(t.Context(), "fb-good", eventstore.NoStream{}, good.req.events...); err != nil {
		t.Errorf("good append alone: %v", err)
	}
	if _, err := s.Append(t.Context(), "fb-bad", eventstore.NoStream{}, bad); err == nil {
		t.Error("bad append alone succeeded")
	}
}

// Concurrent appends with exact expected revisions through the batchers:
// every stream ends with contiguous revisions and every call that
// succeeded is in it, at the revision it was told.
func TestConcurrentExpectedRevisionAppendsThroughBatchers(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, Config{AppendBatchers: 2})
	ctx := t.Context()
	const writers, perWriter, streams = 16, 40, 4
	type written struct {
		id  uuid.UUID
		rev uint64
	}
	var mu sync.Mutex
	got := map[string][]written{}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				st := fmt.Sprintf("cx-%d", (w+i)%streams)
				for {
					cur, err := s.ReadStream(ctx, st, eventstore.ReadStreamOptions{From: eventstore.End, Direction: eventstore.Backwards, Limit: 1})
					var x eventstore.ExpectedRevision = eventstore.NoStream{}
					if err == nil {
						x = eventstore.Revision(cur[0].Revision)
					} else if !errors.Is(err, eventstore.ErrStreamNotFound) {
						errs <- err
						return
					}
					e := event("t.v1")
					res, err := s.Append(ctx, st, x, e)
					var we *eventstore.WrongExpectedVersionError
					if errors.As(err, &we) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					got[st] = append(got[st], written{e.ID, res.NextRevision})
					mu.Unlock()
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for st, ws := range got {
		evs, err := s.ReadStream(ctx, st, eventstore.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != len(ws) {
			t.Errorf("%s: %d events, %d successful appends", st, len(evs), len(ws))
		}
		for _, w := range ws {
			if w.rev >= uint64(len(evs)) || evs[w.rev].ID != w.id {
				t.Errorf("%s: append told revision %d, which holds another event", st, w.rev)
			}
		}
		total += len(ws)
	}
	if total != writers*perWriter {
		t.Errorf("%d appends succeeded, want %d", total, writers*perWriter)
	}
}

// A call given up while queued is never written.
func TestAbandonedCallIsNotWritten(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, Config{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Append(ctx, "ab-1", eventstore.NoStream{}, event("t.v1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled context: %v", err)
	}
	if _, err := s.ReadStream(t.Context(), "ab-1", eventstore.ReadStreamOptions{}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatalf("stream after an abandoned append: %v, want not found", err)
	}
}
