package projector

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/eventstore"
)

// pass is one subscription of a binding, from a loaded checkpoint until
// an error ends it (errDone: a rebuild that caught up). It reads batches
// from its feed, applies each in one transaction, commits it with the
// checkpoint, and reports the commit. All of it runs on the goroutine
// that owns the transaction; only the store subscription (and Prepare)
// reads ahead on its own.
type pass struct {
	b    *binding
	rs   *retryState
	feed *feed
	// cp is the last committed checkpoint: where the next batch starts,
	// and what its checkpoint write expects to find (sink.save).
	cp checkpoint
}

// txBatch is one transaction of a pass: the events applied in it and the
// checkpoint it writes when it commits.
type txBatch struct {
	tx      pgx.Tx
	batch   Batch
	tables  Tables
	cp      checkpoint
	n       int // events applied in it
	first   eventstore.RecordedEvent
	started time.Time
	// delivery is what Apply finds in its context (DeliveryFrom), one per
	// batch, set for each event.
	delivery *Delivery
	ctx      context.Context
}

// run subscribes from cp and applies batches until an error. An open
// batch is rolled back on return.
func (b *binding) run(ctx context.Context, cp checkpoint, rs *retryState) error {
	if b.reached(cp) {
		return errDone
	}
	p := &pass{b: b, rs: rs, cp: cp, feed: b.subscribe(ctx, cp.Position)}
	defer p.feed.close()
	for {
		start, err := p.feed.next(ctx, p.cp.Position)
		if err != nil {
			return err
		}
		if err := p.batch(ctx, start); err != nil {
			return err
		}
	}
}

// reached reports whether a rebuild's checkpoint is where it was to stop.
func (b *binding) reached(cp checkpoint) bool {
	return !b.live && !b.stopAt.IsZero() && cp.Position.Compare(b.stopAt) >= 0
}

// batch applies start and whatever is pending after it in one transaction
// (up to BatchSize events, for up to BatchTimeout), then commits it with
// the checkpoint. While single-stepping, an event past the first goes to
// a transaction of its own.
func (p *pass) batch(ctx context.Context, start item) error {
	bt, err := p.open(ctx, start.ev)
	if err != nil {
		return err
	}
	defer bt.rollback(ctx)
	for it, ok := start, true; ok; it, ok = p.feed.more() {
		if bt.n > 0 && it.ev != nil && p.rs.singleStep(it.ev.Position) {
			p.feed.putBack(it)
			break
		}
		if err := p.add(ctx, bt, it); err != nil {
			return err
		}
		if p.full(bt, it) {
			break
		}
	}
	return p.commit(ctx, bt)
}

// open begins a batch's transaction; first is the event it starts with
// (nil for a checkpoint alone), blamed when the projection cannot begin.
func (p *pass) open(ctx context.Context, first *eventstore.RecordedEvent) (*txBatch, error) {
	tx, err := p.b.e.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	bt := &txBatch{tx: tx, tables: Tables{Generation: p.cp.Generation}, cp: p.cp, started: time.Now()}
	// A batch commits without waiting for its WAL flush. The read model
	// and its checkpoint are one transaction, so a crash that loses the
	// last commits (at most a few hundred milliseconds) loses both, and
	// the runner applies those events again from the log: nothing is lost
	// or applied twice, and the commit no longer waits for the disk (nor
	// queues with the appends for it).
	if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
		bt.rollback(ctx)
		return nil, fmt.Errorf("begin: %w", err)
	}
	if bt.batch, err = p.b.p.Begin(ctx, tx, bt.tables); err != nil {
		bt.rollback(ctx)
		if first != nil && !isTransient(err) {
			return nil, &applyFailure{ev: *first, err: fmt.Errorf("begin batch: %w", err)}
		}
		return nil, fmt.Errorf("begin batch: %w", err)
	}
	bt.delivery = &Delivery{Tx: tx, Tables: bt.tables, Batch: bt.batch}
	bt.ctx = context.WithValue(ctx, deliveryKey{}, bt.delivery)
	return bt, nil
}

// add applies one item to the open batch: an event, or a position the
// checkpoint advances to without one.
func (p *pass) add(ctx context.Context, bt *txBatch, it item) error {
	if it.ev == nil {
		if it.pos.Compare(bt.cp.Position) > 0 {
			bt.cp.Position = it.pos
		}
		return nil
	}
	ev := *it.ev
	if err := bt.apply(ev, it.prepared); err != nil {
		return &applyFailure{ev: ev, err: err}
	}
	if bt.n == 0 {
		bt.first = ev
	}
	bt.n++
	bt.cp.Position = ev.Position
	bt.cp.EventsApplied++
	id, at := ev.ID, ev.RecordedAt
	bt.cp.LastEventID, bt.cp.LastRecordedAt = &id, &at
	return nil
}

// full reports whether the batch commits after it: BatchSize events,
// BatchTimeout, or an event applied alone while single-stepping.
func (p *pass) full(bt *txBatch, last item) bool {
	cfg := p.b.e.cfg
	if time.Since(bt.started) >= cfg.BatchTimeout {
		return true
	}
	return last.ev != nil && (bt.n >= cfg.BatchSize || p.rs.singleStep(last.ev.Position))
}

// commit writes what the batch buffered and its checkpoint, and commits
// them together (rule 5: exactly-once in effect).
func (p *pass) commit(ctx context.Context, bt *txBatch) error {
	if bt.n > 0 {
		if err := bt.batch.Flush(ctx); err != nil {
			return bt.fail(err)
		}
	}
	if err := p.b.sink.save(ctx, bt.tx, p.cp, bt.cp); err != nil {
		return bt.fail(err)
	}
	err := bt.tx.Commit(ctx)
	bt.tx = nil
	if err != nil {
		return bt.fail(fmt.Errorf("commit: %w", err))
	}
	p.cp = bt.cp
	p.report(bt.n, time.Since(bt.started))
	if p.b.reached(p.cp) {
		return errDone
	}
	return nil
}

// report tells of a commit of n events, open for d: the feed
// (CommitInterval), the retry state (past the failing event, through the
// outage), the binding's state and its listeners (metrics, waiters, a
// rebuild's progress).
func (p *pass) report(n int, d time.Duration) {
	p.feed.committed()
	p.rs.committed(p.cp.Position)
	if p.b.onState != nil && p.rs.attempts == 0 {
		p.b.onState(StateRunning, nil)
	}
	if p.b.onCommit != nil {
		p.b.onCommit(p.cp, n, d)
	}
}

// apply hands one event to the projection's batch. The projection finds
// the transaction and its Prepare result in Apply's context
// (DeliveryFrom). A panic fails the event like an error: the batch rolls
// back and the event is retried, never skipped.
func (bt *txBatch) apply(ev eventstore.RecordedEvent, prepared any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	bt.delivery.Event, bt.delivery.Prepared = ev, prepared
	return bt.batch.Apply(bt.ctx, ev)
}

// fail attributes a failure to flush or commit: to the batch's one event,
// or to the batch (which the retry single-steps to find the event); a
// transient failure or one without events is returned as it is.
func (bt *txBatch) fail(err error) error {
	switch {
	case isTransient(err), bt.n == 0:
		return err
	case bt.n == 1:
		return &applyFailure{ev: bt.first, err: err}
	default:
		return &batchFailure{last: bt.cp.Position, err: err}
	}
}

// rollback ends the transaction if it is still open, even when ctx is
// done.
func (bt *txBatch) rollback(ctx context.Context) {
	if bt.tx == nil {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = bt.tx.Rollback(rctx)
	bt.tx = nil
}
