package pg

import (
	"context"
	"errors"
	"hash/fnv"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/eventstore"
)

// Group commit. Every append pays a round trip, a statement and a commit
// (a WAL flush) whatever it writes; under concurrency those fixed costs,
// not the rows, bound throughput. Append therefore hands its request to a
// batcher: while a batch is being written, the calls that arrive queue up
// and the next batch writes all of them in one statement and one commit.
// An idle store writes a lone call at once, so grouping adds no wait; it
// only changes who shares a transaction.
//
// Streams are spread over the batchers by hash, and a batch holds at most
// one append per stream (later ones wait for the next batch), so the
// appends of one stream are written in call order and never race each
// other. Each append keeps its own outcome: a wrong expected revision in
// one does not affect the others. A statement error (a concurrent writer of
// another process took a revision, invalid JSON, a lost connection) fails
// the whole batch; its appends are then retried one by one, which is safe
// because an append already written is recognised as a re-append.

// openAppendPool opens the batchers' own connections, one each. They run
// appendSQL only, with generic plans: its plan is the same for every batch
// (index probes per stream, checked on an empty log too), while custom
// plans would make PostgreSQL plan it anew on every call, because a generic
// estimate of unnest's rows looks dearer, and planning costs about as much
// as executing.
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

// pending is one Append call waiting in a batcher.
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
	s    *Store
	reqs chan *pending
}

// submit queues r on the batcher of its stream and waits for its outcome.
func (s *Store) submit(ctx context.Context, r *appendReq) (appendOutcome, error) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(r.stream))
	b := s.batchers[h.Sum32()%uint32(len(s.batchers))] //nolint:gosec // the batcher count is small and positive
	if err := ctx.Err(); err != nil {
		return appendOutcome{}, err
	}
	p := &pending{req: r, done: make(chan batchReply, 1)}
	select {
	case b.reqs <- p:
	case <-ctx.Done():
		return appendOutcome{}, ctx.Err()
	case <-s.bg.Done():
		return appendOutcome{}, errStoreClosed
	}
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

// run writes batches until the store closes.
func (b *batcher) run() {
	defer b.s.wg.Done()
	var queue []*pending
	for {
		if len(queue) == 0 {
			select {
			case <-b.s.bg.Done():
				return
			case p := <-b.reqs:
				queue = append(queue, p)
			}
		}
		// Take what has arrived meanwhile, without waiting for more.
	drain:
		for len(queue) < 4*b.s.cfg.AppendBatch {
			select {
			case p := <-b.reqs:
				queue = append(queue, p)
			default:
				break drain
			}
		}
		var batch []*pending
		batch, queue = b.pick(queue)
		if len(batch) > 0 {
			b.write(batch)
		}
	}
}

// pick takes, in order, the first waiting call of each stream up to the
// batch limits; the rest stays queued in order.
func (b *batcher) pick(queue []*pending) (batch, rest []*pending) {
	seen := make(map[string]bool, len(queue))
	events := 0
	for _, p := range queue {
		full := len(batch) >= b.s.cfg.AppendBatch ||
			(len(batch) > 0 && events+len(p.req.events) > b.s.cfg.AppendBatchEvents)
		if seen[p.req.stream] || full {
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

func (b *batcher) write(batch []*pending) {
	reqs := make([]*appendReq, len(batch))
	for i, p := range batch {
		reqs[i] = p.req
	}
	order := sortByStream(reqs)
	sorted := make([]*appendReq, len(reqs))
	for i, j := range order {
		sorted[i] = reqs[j]
	}
	out, err := execAppends(b.s.bg, b.s.appendPool, sorted)
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

// appendOnce is one attempt of Append: through a batcher, or alone when
// grouping is off or the batch failed.
func (s *Store) appendOnce(ctx context.Context, r *appendReq) (eventstore.AppendResult, error) {
	if len(s.batchers) > 0 {
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
