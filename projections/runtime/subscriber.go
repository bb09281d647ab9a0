package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/outage"
)

// Subscriber is a Watermill message.Subscriber over the event store: the
// topic is a projection name, and subscribing to it runs one event store
// subscription from that projection's checkpoint. Each message carries one
// event and, in its context, the projection's open transaction (see
// DeliveryFrom). The subscriber sends the next message only after the
// previous one was acked; an ack adds the event to the open batch, which
// commits with the checkpoint; a nack rolls the batch back (see the package
// documentation for the failure policy).
//
// It is not a general-purpose subscriber: messages must be handled by the
// projection router built by Runner (or Rebuild), one at a time.
type Subscriber struct {
	common   *engine
	mu       sync.Mutex
	bindings map[string]*binding
	closed   chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

var _ message.Subscriber = (*Subscriber)(nil)

func newSubscriber(e *engine) *Subscriber {
	return &Subscriber{common: e, bindings: map[string]*binding{}, closed: make(chan struct{})}
}

func (s *Subscriber) bind(topic string, b *binding) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bindings[topic] = b
}

// Subscribe implements message.Subscriber. The returned channel closes when
// ctx is done, the subscriber is closed, or the projection stops (failed,
// or a rebuild caught up).
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	b, ok := s.bindings[topic]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("projections: no projection %q", topic)
	}
	select {
	case <-s.closed:
		return nil, errors.New("projections: subscriber closed")
	default:
	}
	out := make(chan *message.Message)
	ctx, cancel := context.WithCancel(ctx)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	go func() {
		defer s.wg.Done()
		defer cancel()
		defer close(out)
		b.supervise(ctx, out)
	}()
	return out, nil
}

// Close implements message.Subscriber: it stops every subscription (rolling
// back open batches) and waits for them.
func (s *Subscriber) Close() error {
	s.once.Do(func() { close(s.closed) })
	s.wg.Wait()
	return nil
}

// engine is what the live runner and rebuilds share.
type engine struct {
	store   eventstore.Store
	pool    *pgxpool.Pool
	cfg     Config
	logger  *slog.Logger
	metrics *metrics
}

// binding is one projection's subscription: where its checkpoint lives and
// what to do around commits.
type binding struct {
	e    *engine
	p    Projection
	sink sink
	// live bindings hold the projection's advisory lock and report state;
	// a rebuild binding stops once caught up (done receives the outcome).
	live bool
	// stopAt (rebuilds): the rebuild has caught up once its checkpoint
	// reaches this position (the head when it started).
	stopAt   eventstore.Position
	onCommit func(cp checkpoint, n int)
	// onScanned (live bindings) hears of progress through filtered-out
	// events before it is written (see Config.CheckpointInterval).
	onScanned func(p eventstore.Position)
	onState   func(state string, f *failure)
	done      chan error
}

// item is what the store subscription hands to the batch loop: an event, or
// (ev == nil) a position the checkpoint may advance to.
type item struct {
	ev       *eventstore.RecordedEvent
	pos      eventstore.Position
	prepared any
}

// applyFailure is an event that a handler refused (error, nack, panic).
type applyFailure struct {
	ev  eventstore.RecordedEvent
	err error
}

func (f *applyFailure) Error() string {
	return fmt.Sprintf("apply %s (%s) at %s: %v", f.ev.ID, f.ev.Type, f.ev.Position, f.err)
}
func (f *applyFailure) Unwrap() error { return f.err }

// batchFailure is a failure of a multi-event batch at flush or commit time
// that cannot be attributed to one event: the retry applies one event per
// transaction up to last, which finds the event.
type batchFailure struct {
	last eventstore.Position
	err  error
}

func (f *batchFailure) Error() string { return fmt.Sprintf("commit batch up to %s: %v", f.last, f.err) }
func (f *batchFailure) Unwrap() error { return f.err }

var (
	errDone   = errors.New("projections: caught up")
	errNacked = errors.New("handler nacked the event")
)

// isTransient tells infrastructure failures (connection dropped, server
// shutting down, timeouts, deadlocks: outage.Retryable) from failures to
// apply an event: only the latter count towards MaxAttempts; the former
// are retried forever.
func isTransient(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, errStale) || outage.Retryable(err)
}

// retryState follows the failing event across attempts.
type retryState struct {
	failingID  uuid.UUID
	failingPos eventstore.Position
	attempts   int
	// singleStepUntil: commit every event on its own up to this position,
	// so that a failure is attributed to one event and the events before it
	// are kept.
	singleStepUntil eventstore.Position
}

func (r *retryState) singleStep(p eventstore.Position) bool {
	return !r.singleStepUntil.IsZero() && p.Compare(r.singleStepUntil) <= 0
}

func (r *retryState) committed(p eventstore.Position) {
	if r.attempts > 0 && p.Compare(r.failingPos) >= 0 {
		r.attempts = 0
		r.failingID = uuid.Nil
	}
	if !r.singleStepUntil.IsZero() && p.Compare(r.singleStepUntil) >= 0 {
		r.singleStepUntil = eventstore.Position{}
	}
}

// supervise runs the projection until ctx is done, it fails for good, or
// (rebuild) it has caught up. Live bindings first take the projection's
// advisory lock, so that one instance at a time runs a projection.
func (b *binding) supervise(ctx context.Context, out chan<- *message.Message) {
	name := b.p.Name()
	log := b.e.logger.With("projection", name)
	rs := &retryState{}
	transientFails := 0
	for ctx.Err() == nil {
		runCtx, release, err := b.acquire(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			log.Warn("projection lock unavailable", "error", err)
			sleep(ctx, b.e.cfg.MaxBackoff)
			continue
		}
		stop := false
		for runCtx.Err() == nil && !stop {
			cp, err := b.sink.load(runCtx, b.e.pool)
			if err == nil {
				if b.onState != nil && rs.attempts == 0 {
					// The checkpoint loaded: the database answers again
					// after an outage (the state is recorded on change).
					b.onState(StateRunning, nil)
				}
				err = b.runOnce(runCtx, cp, out, rs, &transientFails)
			}
			var af *applyFailure
			var bf *batchFailure
			switch {
			case runCtx.Err() != nil:
			case errors.Is(err, errDone):
				b.finish(nil)
				stop = true
			case errors.Is(err, errStale):
				log.Info("checkpoint moved (rebuild swap or another instance); reloading")
			case errors.As(err, &af) && !isTransient(af.err):
				if af.ev.ID != rs.failingID {
					rs.failingID, rs.failingPos, rs.attempts = af.ev.ID, af.ev.Position, 0
				}
				rs.attempts++
				rs.singleStepUntil = af.ev.Position
				b.e.metricFailure(name)
				f := &failure{EventID: af.ev.ID, EventType: af.ev.Type, Position: af.ev.Position, Err: af.err}
				if rs.attempts >= b.e.cfg.MaxAttempts {
					log.Error("projection stopped: cannot apply event; fix the cause and restart the runner (the event is not skipped)",
						"event_id", af.ev.ID, "event_type", af.ev.Type, "stream", af.ev.Stream,
						"position", af.ev.Position.String(), "attempts", rs.attempts, "error", af.err)
					if b.onState != nil {
						b.onState(StateFailed, f)
					}
					b.finish(af)
					stop = true
					break
				}
				log.Warn("cannot apply event; retrying", "event_id", af.ev.ID, "event_type", af.ev.Type,
					"attempt", rs.attempts, "max_attempts", b.e.cfg.MaxAttempts, "error", af.err)
				if b.onState != nil {
					b.onState(StateRetrying, f)
				}
				sleep(runCtx, backoff(b.e.cfg.RetryBackoff, b.e.cfg.MaxBackoff, rs.attempts))
			case errors.As(err, &bf) && !isTransient(bf.err):
				b.e.metricFailure(name)
				log.Warn("batch failed; retrying one event per transaction", "up_to", bf.last.String(), "error", bf.err)
				rs.singleStepUntil = bf.last
				sleep(runCtx, b.e.cfg.RetryBackoff)
			default:
				transientFails++
				log.Warn("projection interrupted; resuming from the checkpoint", "error", err, "retry", transientFails)
				if b.onState != nil && rs.attempts == 0 {
					b.onState(StateRetrying, &failure{Err: err})
				}
				sleep(runCtx, backoff(b.e.cfg.RetryBackoff, b.e.cfg.MaxBackoff, transientFails))
			}
		}
		release()
		if stop {
			return
		}
	}
	b.finish(ctx.Err())
}

func (b *binding) finish(err error) {
	if b.done == nil {
		return
	}
	select {
	case b.done <- err:
	default:
	}
}

// acquire takes the projection's advisory lock on a dedicated connection
// (live bindings) or the rebuild lock, waiting while another instance holds
// it. The returned context is cancelled if the lock connection is lost;
// release unlocks and closes it.
func (b *binding) acquire(ctx context.Context) (context.Context, func(), error) {
	if !b.live {
		// A rebuild holds its lock in Rebuild, around the whole run.
		return ctx, func() {}, nil
	}
	kind := "live"
	conn, err := pgx.ConnectConfig(ctx, b.e.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, nil, fmt.Errorf("lock connection: %w", err)
	}
	standby := false
	for {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock("+lockKeySQL+")", b.p.Name(), kind).Scan(&ok); err != nil {
			conn.Close(context.Background())
			return nil, nil, fmt.Errorf("advisory lock: %w", err)
		}
		if ok {
			break
		}
		if !standby && b.onState != nil {
			b.e.logger.Info("projection runs in another instance; standing by", "projection", b.p.Name())
			b.onState(StateStandby, nil)
			standby = true
		}
		if !sleep(ctx, b.e.cfg.LockPollInterval) {
			conn.Close(context.Background())
			return nil, nil, ctx.Err()
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(b.e.cfg.HeartbeatInterval)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				hctx, hcancel := context.WithTimeout(runCtx, b.e.cfg.HeartbeatInterval*3)
				err := conn.Ping(hctx)
				hcancel()
				if err != nil && runCtx.Err() == nil {
					b.e.logger.Warn("lost the projection lock connection; stopping and re-acquiring", "projection", b.p.Name(), "error", err)
					cancel()
					return
				}
			}
		}
	}()
	release := func() {
		cancel()
		<-stopped
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		if !conn.IsClosed() {
			_, _ = conn.Exec(cctx, "SELECT pg_advisory_unlock("+lockKeySQL+")", b.p.Name(), kind)
		}
		_ = conn.Close(cctx)
	}
	return runCtx, release, nil
}

// openBatch is a transaction in progress.
type openBatch struct {
	tx      pgx.Tx
	batch   Batch
	cp      checkpoint // checkpoint to write at commit
	n       int        // events applied in it
	first   eventstore.RecordedEvent
	started time.Time
}

// runOnce subscribes from cp and applies events until an error (which
// includes errDone for a rebuild that caught up). The open batch, if any, is
// rolled back on return.
func (b *binding) runOnce(ctx context.Context, cp checkpoint, out chan<- *message.Message, rs *retryState, transientFails *int) (err error) {
	cfg := b.e.cfg
	items := make(chan item, cfg.BufferSize)
	subCtx, cancel := context.WithCancel(ctx)
	subErr := make(chan error, 1)
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		opts := eventstore.SubscribeOptions{
			After:  cp.Position,
			Filter: b.p.Filter(),
			OnCheckpoint: func(ctx context.Context, p eventstore.Position) error {
				select {
				case items <- item{pos: p}:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			},
		}
		prep, _ := b.p.(Preparer)
		subErr <- b.e.store.Subscribe(subCtx, opts, func(ctx context.Context, ev eventstore.RecordedEvent) error {
			it := item{ev: &ev, pos: ev.Position}
			if prep != nil {
				it.prepared = prep.Prepare(ev)
			}
			select {
			case items <- it:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()

	var bt *openBatch
	defer func() {
		cancel()
		<-subDone
		if bt != nil {
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = bt.tx.Rollback(rctx)
			rcancel()
		}
	}()

	tables := Tables{Generation: cp.Generation}
	// lastCommit spaces a live binding's commits by CommitInterval while
	// events keep coming (see gather).
	var lastCommit time.Time
	open := func(first *eventstore.RecordedEvent) error {
		tx, err := b.e.pool.Begin(ctx)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		// A batch commits without waiting for its WAL flush. The read
		// model and its checkpoint are one transaction, so a crash that
		// loses the last commits (at most a few hundred milliseconds)
		// loses both, and the runner applies those events again from the
		// log: nothing is lost or applied twice, and the commit no longer
		// waits for the disk (nor queues with the appends for it).
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			_ = tx.Rollback(ctx)
			return fmt.Errorf("begin: %w", err)
		}
		nb := &openBatch{tx: tx, cp: cp, started: time.Now()}
		bt = nb
		pb, err := b.p.Begin(ctx, tx, tables)
		if err != nil {
			if first != nil && !isTransient(err) {
				return &applyFailure{ev: *first, err: fmt.Errorf("begin batch: %w", err)}
			}
			return fmt.Errorf("begin batch: %w", err)
		}
		nb.batch = pb
		return nil
	}
	commit := func() error {
		c := bt
		fail := func(err error) error {
			if isTransient(err) {
				return err
			}
			if c.n == 1 {
				return &applyFailure{ev: c.first, err: err}
			}
			if c.n == 0 {
				return err
			}
			return &batchFailure{last: c.cp.Position, err: err}
		}
		if c.n > 0 {
			if err := c.batch.Flush(ctx); err != nil {
				return fail(err)
			}
		}
		if err := b.sink.save(ctx, c.tx, cp, c.cp); err != nil {
			return fail(err)
		}
		if err := c.tx.Commit(ctx); err != nil {
			bt = nil
			return fail(fmt.Errorf("commit: %w", err))
		}
		bt = nil
		lastCommit = time.Now()
		cp = c.cp
		rs.committed(cp.Position)
		*transientFails = 0
		if b.onState != nil && rs.attempts == 0 {
			// Past the failing event, or through the outage.
			b.onState(StateRunning, nil)
		}
		if b.onCommit != nil {
			b.onCommit(cp, c.n)
		}
		if !b.live && !b.stopAt.IsZero() && cp.Position.Compare(b.stopAt) >= 0 {
			return errDone
		}
		return nil
	}
	if !b.live && !b.stopAt.IsZero() && cp.Position.Compare(b.stopAt) >= 0 {
		return errDone
	}

	// scanned is a live binding's progress through filtered-out events not
	// written yet; flush fires when it is due.
	var scanned eventstore.Position
	var flush <-chan time.Time
	flushTimer := time.NewTimer(time.Hour)
	flushTimer.Stop()
	defer flushTimer.Stop()

	var idle <-chan time.Time
	var idleTimer *time.Timer
	if !b.live {
		// A rebuild is caught up when the subscription has had nothing to
		// deliver for a while; it then stops and swaps.
		idleTimer = time.NewTimer(cfg.RebuildIdle)
		defer idleTimer.Stop()
		idle = idleTimer.C
	}

	// queued holds events gathered before a batch opens (gather).
	var queued []item
	gatherTimer := time.NewTimer(time.Hour)
	gatherTimer.Stop()
	defer gatherTimer.Stop()
	// gather waits up to wait for more events after first, without a
	// transaction: a batch that had written rows would hold every reader
	// of the log back at its transaction id (the store's horizon), this
	// binding's own subscription included.
	gather := func(first item, wait time.Duration) error {
		queued = append(queued[:0], first)
		gatherTimer.Reset(wait)
		defer gatherTimer.Stop()
		for len(queued) < cfg.BatchSize {
			select {
			case it := <-items:
				queued = append(queued, it)
			case <-gatherTimer.C:
				return nil
			case err := <-subErr:
				return fmt.Errorf("subscription ended: %w", err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}

	for {
		var it item
		if len(queued) > 0 {
			it, queued = queued[0], queued[1:]
		} else if bt == nil {
			select {
			case it = <-items:
				// A live binding that committed less than CommitInterval
				// ago gathers what follows into the same batch.
				if wait := cfg.CommitInterval - time.Since(lastCommit); b.live && it.ev != nil && wait > 0 {
					if err := gather(it, wait); err != nil {
						return err
					}
					it, queued = queued[0], queued[1:]
				}
			case <-flush:
				flush = nil
				if scanned.Compare(cp.Position) <= 0 {
					continue // a batch has written past it meanwhile
				}
				// Write the progress alone: the loop commits it at once,
				// nothing being pending.
				if err := open(nil); err != nil {
					return err
				}
				bt.cp.Position = scanned
				continue
			case err := <-subErr:
				return fmt.Errorf("subscription ended: %w", err)
			case <-idle:
				return errDone
			case <-ctx.Done():
				return ctx.Err()
			}
		} else {
			if time.Since(bt.started) >= cfg.BatchTimeout {
				if err := commit(); err != nil {
					return err
				}
				continue
			}
			select {
			case it = <-items:
			default:
				// Nothing pending: commit now so that live latency stays low.
				if err := commit(); err != nil {
					return err
				}
				continue
			}
		}
		if idleTimer != nil {
			if !idleTimer.Stop() {
				select {
				case <-idleTimer.C:
				default:
				}
			}
			idleTimer.Reset(cfg.RebuildIdle)
		}

		if it.ev == nil {
			// The store says every event up to it.pos was delivered or
			// filtered out: move the checkpoint without an event.
			if it.pos.Compare(cp.Position) <= 0 || (bt != nil && it.pos.Compare(bt.cp.Position) <= 0) {
				continue
			}
			if bt == nil && b.live {
				if it.pos.Compare(scanned) > 0 {
					scanned = it.pos
					if b.onScanned != nil {
						b.onScanned(scanned)
					}
				}
				if flush == nil {
					flushTimer.Reset(cfg.CheckpointInterval)
					flush = flushTimer.C
				}
				continue
			}
			if bt == nil {
				if err := open(nil); err != nil {
					return err
				}
			}
			bt.cp.Position = it.pos
			continue
		}
		ev := *it.ev
		if bt != nil && bt.n > 0 && rs.singleStep(ev.Position) {
			if err := commit(); err != nil {
				return err
			}
		}
		if bt == nil {
			if err := open(&ev); err != nil {
				return err
			}
		}
		if err := b.deliver(ctx, out, bt, tables, ev, it.prepared); err != nil {
			return err
		}
		if bt.n == 0 {
			bt.first = ev
		}
		bt.n++
		bt.cp.Position = ev.Position
		bt.cp.EventsApplied++
		id, at := ev.ID, ev.RecordedAt
		bt.cp.LastEventID, bt.cp.LastRecordedAt = &id, &at
		if rs.singleStep(ev.Position) || bt.n >= cfg.BatchSize || time.Since(bt.started) >= cfg.BatchTimeout {
			if err := commit(); err != nil {
				return err
			}
		}
	}
}

// deliver sends one event to the router and waits for the handler's ack or
// nack. It waits even when ctx is done: the handler uses the transaction,
// which must not be rolled back under it (the handler's queries see ctx
// cancelled and return promptly).
func (b *binding) deliver(ctx context.Context, out chan<- *message.Message, bt *openBatch, t Tables, ev eventstore.RecordedEvent, prepared any) error {
	d := &Delivery{Event: ev, Tx: bt.tx, Tables: t, Batch: bt.batch, Prepared: prepared}
	msg := message.NewMessage(ev.ID.String(), message.Payload(ev.Data))
	msg.Metadata.Set("event_type", ev.Type)
	msg.Metadata.Set("stream", ev.Stream)
	msg.Metadata.Set("position", ev.Position.String())
	msg.SetContext(context.WithValue(ctx, deliveryKey{}, d))
	select {
	case out <- msg:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-msg.Acked():
		return nil
	case <-msg.Nacked():
		err := d.err
		if err == nil {
			err = errNacked
		}
		return &applyFailure{ev: ev, err: err}
	}
}

// handlerFunc is the Watermill handler of a projection: it applies the
// message's event to the projection's open batch.
func handlerFunc(msg *message.Message) (err error) {
	d, ok := DeliveryFrom(msg.Context())
	if !ok {
		return errors.New("projections: message without a delivery (not from the projection subscriber)")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
		d.err = err
	}()
	return d.Batch.Apply(msg.Context(), d.Event)
}

func backoff(base, max time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

// sleep waits d or until ctx is done; it reports whether it slept fully.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
