package pg

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/eventstore"
)

// Group commit. Every append pays a round trip, a statement and a commit
// (a WAL flush) whatever it writes; under concurrency those fixed costs,
// not the rows, bound throughput. Appends therefore share statements and
// commits: up to AppendBatchers batches are written at once, each on its
// own connection. A call that may start a batch (see mayStart) and finds
// no call waiting writes itself, alone, on its own goroutine: it then
// costs neither a wait nor a hand-over to another goroutine. Other calls
// queue, and the next batch writes all of them in one statement and one
// commit.
//
// A batch holds at most one append per stream, and an append waits while
// another append of its stream is being written (it goes in a later
// batch), so the appends of one stream are written in call order and
// never race each other. Each append keeps its own outcome: a wrong
// expected revision in one does not affect the others. A statement error
// (a concurrent writer of another process took a revision, invalid JSON, a
// lost connection) fails the whole batch; its appends are then retried one
// by one, which is safe because an append already written is recognised
// as a re-append.

// openAppendPool opens the batcher's connections, one per batch written at
// once. They run appendSQL only, with generic plans: its plan is the same
// for every batch (index probes per stream, checked on an empty log too),
// while custom plans would make PostgreSQL plan it anew on every call,
// because a generic estimate of unnest's rows looks dearer, and planning
// costs about as much as executing.
func openAppendPool(ctx context.Context, pc *pgxpool.Config, n int) (*pgxpool.Pool, error) {
	return openSidePool(ctx, pc, "append", int32(n), //nolint:gosec // validated: at most 64
		map[string]string{"plan_cache_mode": "force_generic_plan"})
}

// errBatchFailed tells a caller to append on its own.
var errBatchFailed = errors.New("pg: batch failed")

const (
	pendingWaiting int32 = iota
	pendingTaken
	pendingAbandoned
)

// pending is one Append call given to the batcher.
type pending struct {
	req   *appendReq
	state atomic.Int32
	done  chan batchReply // buffered: the batcher never blocks on it
}

type batchReply struct {
	out appendOutcome
	err error
}

type batcher struct {
	s *Store

	mu      sync.Mutex
	queue   []*pending      // calls waiting for a connection, in call order
	writing map[string]bool // streams of the batches being written
	busy    int             // connections writing a batch
	size    float64         // calls per batch, a moving average
	closed  bool            // the store is closing: start nothing more
}

// Whether a call that finds a connection free while another batch is
// being written goes at once or waits for that batch to end, so as to go
// with the calls that arrive meanwhile. Going at once saves the wait; waiting
// saves PostgreSQL a statement and a commit per call it groups. On two
// cores, refreshes at 8 clients went in batches of 2.2 calls and cost
// 0.33-0.43 ms of PostgreSQL CPU each when every call went at once, and in
// batches of 3.6 calls at 0.24-0.32 ms when calls waited; at 2 clients
// waiting cost each append most of another's commit.
//
// So calls go at once while recent batches held few calls (fewer writers
// than connections: there is no one to group with). Otherwise they wait
// until no batch is being written, unless spreadQueue calls are waiting
// (worth a connection of their own).
const (
	fewPerBatch = 1.5
	spreadQueue = 4
	// sizeWeight is the weight of the newest batch in the moving average.
	sizeWeight = 0.1
)

func newBatcher(s *Store) *batcher {
	return &batcher{s: s, writing: map[string]bool{}, size: 1}
}

// submit writes r in a batch and waits for its outcome: at once, alone, on
// the caller's goroutine when no call waits and a batch may start, or
// queued for a later batch.
func (s *Store) submit(ctx context.Context, r *appendReq) (appendOutcome, error) {
	if err := ctx.Err(); err != nil {
		return appendOutcome{}, err
	}
	b := s.batcher
	p := &pending{req: r, done: make(chan batchReply, 1)}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return appendOutcome{}, errStoreClosed
	}
	if len(b.queue) == 0 && b.mayStart() && !b.writing[r.stream] {
		p.state.Store(pendingTaken)
		alone := []*pending{p}
		b.begin(alone)
		b.mu.Unlock()
		b.write(ctx, alone)
		b.end(alone)
		rep := <-p.done
		return rep.out, rep.err
	}
	b.queue = append(b.queue, p)
	b.startQueued()
	b.mu.Unlock()
	select {
	case rep := <-p.done:
		return rep.out, rep.err
	case <-ctx.Done():
		// Not yet taken: it never will be. Taken: the outcome is unknown
		// to the caller, as for any append cancelled in flight.
		p.state.CompareAndSwap(pendingWaiting, pendingAbandoned)
		return appendOutcome{}, ctx.Err()
	case <-s.bg.Done():
		return appendOutcome{}, errStoreClosed
	}
}

var errStoreClosed = errors.New("pg: store closed")

// begin takes a connection for batch. Called with b.mu held.
func (b *batcher) begin(batch []*pending) {
	b.busy++
	b.size += sizeWeight * (float64(len(batch)) - b.size)
	for _, p := range batch {
		b.writing[p.req.stream] = true
	}
}

// end gives back batch's connection and starts what queued meanwhile.
func (b *batcher) end(batch []*pending) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.busy--
	for _, p := range batch {
		delete(b.writing, p.req.stream)
	}
	b.startQueued()
}

// mayStart tells whether a batch may start now: a connection is free, and
// nothing is being written, recent batches held few calls, or spreadQueue
// calls wait. Called with b.mu held.
func (b *batcher) mayStart() bool {
	return !b.closed && b.busy < b.s.cfg.AppendBatchers &&
		(b.busy == 0 || b.size < fewPerBatch || len(b.queue) >= spreadQueue)
}

// startQueued writes queued calls while mayStart allows, each batch on a
// goroutine of its own (their callers are waiting on theirs). Called with
// b.mu held.
func (b *batcher) startQueued() {
	for len(b.queue) > 0 && b.mayStart() {
		var batch []*pending
		batch, b.queue = b.pick(b.queue)
		if len(batch) == 0 {
			return
		}
		b.begin(batch)
		b.s.wg.Add(1)
		go func() {
			defer b.s.wg.Done()
			b.write(b.s.bg, batch)
			b.end(batch)
		}()
	}
}

// close makes the batcher start no more batches; Store.Close calls it
// before waiting for the ones running.
func (b *batcher) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
}

// pick takes, in order, the first waiting call of each stream that is not
// being written, up to the batch limits; the rest stays queued in order.
func (b *batcher) pick(queue []*pending) (batch, rest []*pending) {
	seen := make(map[string]bool, len(queue))
	events := 0
	for _, p := range queue {
		full := len(batch) >= b.s.cfg.AppendBatch ||
			(len(batch) > 0 && events+len(p.req.events) > b.s.cfg.AppendBatchEvents)
		if seen[p.req.stream] || b.writing[p.req.stream] || full {
			seen[p.req.stream] = true
			rest = append(rest, p)
			continue
		}
		if !p.state.CompareAndSwap(pendingWaiting, pendingTaken) {
			continue // its caller gave up before it was written
		}
		seen[p.req.stream] = true
		events += len(p.req.events)
		batch = append(batch, p)
	}
	return batch, rest
}

// write writes batch and answers each of its calls.
func (b *batcher) write(ctx context.Context, batch []*pending) {
	reqs := make([]*appendReq, len(batch))
	for i, p := range batch {
		reqs[i] = p.req
	}
	order := sortByStream(reqs)
	sorted := make([]*appendReq, len(reqs))
	for i, j := range order {
		sorted[i] = reqs[j]
	}
	out, err := execAppends(ctx, b.s.appendPool, sorted)
	if err != nil {
		for _, p := range batch {
			p.done <- batchReply{err: errBatchFailed}
		}
		return
	}
	// Wake subscribers before answering, so that a caller's own
	// subscribers are on their way when its Append returns.
	for _, o := range out {
		if o.inserted {
			b.s.Wake()
			break
		}
	}
	for i, j := range order {
		batch[j].done <- batchReply{out: out[i]}
	}
}

// appendOnce is one attempt of Append: through the batcher, or alone when
// grouping is off or the batch failed.
func (s *Store) appendOnce(ctx context.Context, r *appendReq) (eventstore.AppendResult, error) {
	if s.batcher != nil {
		out, err := s.submit(ctx, r)
		if !errors.Is(err, errBatchFailed) {
			if err != nil {
				return eventstore.AppendResult{}, err
			}
			return settle(ctx, s.pool, r, out)
		}
	}
	res, err := appendSolo(ctx, s.pool, r)
	if err == nil && len(r.events) > 0 {
		s.Wake()
	}
	return res, err
}
