package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/eventstore"
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

// supervise runs the projection until ctx is done, it fails for good, or
// (rebuild) it has caught up. Live bindings first take the projection's
// advisory lock, so that one instance at a time runs a projection.
func (b *binding) supervise(ctx context.Context, out chan<- *message.Message) {
	rs := &retryState{}
	for ctx.Err() == nil {
		runCtx, release, err := b.acquire(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			b.log().Warn("projection lock unavailable", "error", err)
			sleep(ctx, b.e.cfg.MaxBackoff)
			continue
		}
		stop := b.runLocked(runCtx, out, rs)
		release()
		if stop {
			return
		}
	}
	b.finish(ctx.Err())
}

// runLocked runs passes while ctx (the lock) holds, each from the
// checkpoint, until one ends the binding (it reports whether one did).
func (b *binding) runLocked(ctx context.Context, out chan<- *message.Message, rs *retryState) (stop bool) {
	for ctx.Err() == nil && !stop {
		stop = b.resolve(ctx, b.runFromCheckpoint(ctx, out, rs), rs)
	}
	return stop
}

// runFromCheckpoint loads the checkpoint and runs a pass from it.
func (b *binding) runFromCheckpoint(ctx context.Context, out chan<- *message.Message, rs *retryState) error {
	cp, err := b.sink.load(ctx, b.e.pool)
	if err != nil {
		return err
	}
	if rs.attempts == 0 {
		// The checkpoint loaded: the database answers again after an
		// outage (the state is recorded on change).
		b.state(StateRunning, nil)
	}
	return b.run(ctx, cp, out, rs)
}

// resolve decides what follows a pass that ended with err, and reports
// whether the binding stops: a rebuild that caught up, or an event tried
// MaxAttempts times. Anything else resumes from the checkpoint after a
// backoff: a failed event or batch counts towards MaxAttempts (and
// single-steps), an outage is retried forever.
func (b *binding) resolve(ctx context.Context, err error, rs *retryState) (stop bool) {
	var af *applyFailure
	var bf *batchFailure
	switch {
	case ctx.Err() != nil:
		return false
	case errors.Is(err, errDone):
		b.finish(nil)
		return true
	case errors.Is(err, errStale):
		b.log().Info("checkpoint moved (rebuild swap or another instance); reloading")
		return false
	case errors.As(err, &af) && !isTransient(af.err):
		return b.eventFailed(ctx, af, rs)
	case errors.As(err, &bf) && !isTransient(bf.err):
		b.e.metricFailure(b.p.Name())
		b.log().Warn("batch failed; retrying one event per transaction", "up_to", bf.last.String(), "error", bf.err)
		rs.singleStepUntil = bf.last
		sleep(ctx, b.e.cfg.RetryBackoff)
		return false
	default:
		rs.interruptions++
		b.log().Warn("projection interrupted; resuming from the checkpoint", "error", err, "retry", rs.interruptions)
		if rs.attempts == 0 {
			b.state(StateRetrying, &failure{Err: err})
		}
		sleep(ctx, backoff(b.e.cfg.RetryBackoff, b.e.cfg.MaxBackoff, rs.interruptions))
		return false
	}
}

// eventFailed counts a failed attempt at an event: the projection retries
// it, single-stepping, or stops as failed after MaxAttempts (the event is
// never skipped).
func (b *binding) eventFailed(ctx context.Context, af *applyFailure, rs *retryState) (stop bool) {
	cfg := b.e.cfg
	attempts := rs.failed(af)
	b.e.metricFailure(b.p.Name())
	f := &failure{EventID: af.ev.ID, EventType: af.ev.Type, Position: af.ev.Position, Err: af.err}
	if attempts >= cfg.MaxAttempts {
		b.log().Error("projection stopped: cannot apply event; fix the cause and restart the runner (the event is not skipped)",
			"event_id", af.ev.ID, "event_type", af.ev.Type, "stream", af.ev.Stream,
			"position", af.ev.Position.String(), "attempts", attempts, "error", af.err)
		b.state(StateFailed, f)
		b.finish(af)
		return true
	}
	b.log().Warn("cannot apply event; retrying", "event_id", af.ev.ID, "event_type", af.ev.Type,
		"attempt", attempts, "max_attempts", cfg.MaxAttempts, "error", af.err)
	b.state(StateRetrying, f)
	sleep(ctx, backoff(cfg.RetryBackoff, cfg.MaxBackoff, attempts))
	return false
}

// state reports the binding's state (live bindings).
func (b *binding) state(s string, f *failure) {
	if b.onState != nil {
		b.onState(s, f)
	}
}

func (b *binding) log() *slog.Logger { return b.e.logger.With("projection", b.p.Name()) }

func (b *binding) finish(err error) {
	if b.done == nil {
		return
	}
	select {
	case b.done <- err:
	default:
	}
}

// deliver sends one event to the router and waits for the handler's ack or
// nack. It waits even when ctx is done: the handler uses the transaction,
// which must not be rolled back under it (the handler's queries see ctx
// cancelled and return promptly).
func deliver(ctx context.Context, out chan<- *message.Message, bt *txBatch, it item) error {
	ev := *it.ev
	d := &Delivery{Event: ev, Tx: bt.tx, Tables: bt.tables, Batch: bt.batch, Prepared: it.prepared}
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
