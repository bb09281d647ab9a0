package projector

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/authledger/authledger/eventstore"
)

// item is what the store subscription hands to the batch loop: an event, or
// (ev == nil) a position the checkpoint may advance to.
type item struct {
	ev       *eventstore.RecordedEvent
	pos      eventstore.Position
	prepared any
	// due: a live binding's progress through filtered-out events, to be
	// written now (CheckpointInterval has passed); never from the store.
	due bool
}

// feed is the read side of one pass of a binding: the store subscription
// from the checkpoint, read ahead on its own goroutine into a buffer of
// Config.BufferSize items (and prepared there, for a Preparer), and the
// rules that say what starts a batch and what joins it: CommitInterval
// gathering, lazily written progress (CheckpointInterval), a rebuild's
// end once idle (RebuildIdle). It opens no transaction.
type feed struct {
	cfg   Config
	live  bool
	items chan item
	ended chan error
	stop  func()

	// queued holds items taken from items that no batch has yet: the
	// events gathered before a batch opens, or one put back for the next.
	queued []item
	// lastCommit spaces a live binding's commits by CommitInterval while
	// events keep coming (gather).
	lastCommit  time.Time
	gatherTimer *time.Timer

	// scanned is a live binding's progress through filtered-out events not
	// written yet; flush fires when it is due.
	scanned    eventstore.Position
	onScanned  func(eventstore.Position)
	flush      <-chan time.Time
	flushTimer *time.Timer

	// idle (rebuilds) fires when the pass has waited RebuildIdle for the
	// subscription to deliver anything; caughtUp then asks the log whether
	// the rebuild has indeed caught up.
	idle     *time.Timer
	caughtUp func(ctx context.Context, cp eventstore.Position) (bool, error)
}

// subscribe starts the binding's store subscription after the position.
// The feed must be closed.
func (b *binding) subscribe(ctx context.Context, after eventstore.Position) *feed {
	cfg := b.e.cfg
	f := &feed{
		cfg: cfg, live: b.live, onScanned: b.onScanned,
		items: make(chan item, cfg.BufferSize), ended: make(chan error, 1),
		gatherTimer: stoppedTimer(), flushTimer: stoppedTimer(),
	}
	if !b.live {
		f.idle, f.caughtUp = stoppedTimer(), b.caughtUp
	}
	send := func(ctx context.Context, it item) error {
		select {
		case f.items <- it:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	prep, _ := b.p.(Preparer)
	opts := eventstore.SubscribeOptions{
		After:  after,
		Filter: b.p.Filter(),
		OnCheckpoint: func(ctx context.Context, p eventstore.Position) error {
			return send(ctx, item{pos: p})
		},
	}
	subCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.ended <- b.e.store.Subscribe(subCtx, opts, func(ctx context.Context, ev eventstore.RecordedEvent) error {
			it := item{ev: &ev, pos: ev.Position}
			if prep != nil {
				it.prepared = prep.Prepare(ev)
			}
			return send(ctx, it)
		})
	}()
	f.stop = func() {
		cancel()
		<-done
	}
	return f
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// close ends the subscription and waits for it.
func (f *feed) close() {
	f.stop()
	f.gatherTimer.Stop()
	f.flushTimer.Stop()
	if f.idle != nil {
		f.idle.Stop()
	}
}

// next waits for what starts the next batch: an event, or a position past
// cp to write without one (a rebuild's progress through filtered-out
// events; a live binding's once it is due). A live binding announces its
// progress through filtered-out events at once (onScanned) and keeps it
// for later: one checkpoint transaction per event it does not read would
// cost more than its own events.
func (f *feed) next(ctx context.Context, cp eventstore.Position) (item, error) {
	for {
		it, err := f.wait(ctx)
		switch {
		case errors.Is(err, errIdle):
			if done, err := f.caughtUp(ctx, cp); done || err != nil {
				return item{}, cmp.Or(err, errDone)
			}
		case err != nil:
			return item{}, err
		case it.ev != nil:
			return it, nil
		case it.pos.Compare(cp) <= 0:
			// A batch has written past it meanwhile.
		case f.live && !it.due:
			f.scan(it.pos)
		default:
			return it, nil
		}
	}
}

// wait returns the next item, waiting for one; after a recent commit, a
// live binding gathers the events that follow first (gather).
func (f *feed) wait(ctx context.Context) (item, error) {
	if it, ok := f.pop(); ok {
		return it, nil
	}
	var idle <-chan time.Time
	if f.idle != nil {
		// Idle is time spent waiting here, not applying: a batch that
		// took longer than RebuildIdle finds the next events waiting.
		f.idle.Reset(f.cfg.RebuildIdle)
		defer f.idle.Stop()
		idle = f.idle.C
	}
	select {
	case it := <-f.items:
		return f.gatherAfter(ctx, it)
	case <-f.flush:
		f.flush = nil
		return item{pos: f.scanned, due: true}, nil
	case err := <-f.ended:
		return item{}, fmt.Errorf("subscription ended: %w", err)
	case <-idle:
		return item{}, errIdle
	case <-ctx.Done():
		return item{}, ctx.Err()
	}
}

// gatherAfter returns it, or, when a live binding committed less than
// CommitInterval ago, the first of it and the events that follow it
// until the interval has passed (gather): under load a transaction then
// carries many events instead of one or two.
func (f *feed) gatherAfter(ctx context.Context, it item) (item, error) {
	wait := f.cfg.CommitInterval - time.Since(f.lastCommit)
	if !f.live || it.ev == nil || wait <= 0 {
		return it, nil
	}
	if err := f.gather(ctx, it, wait); err != nil {
		return item{}, err
	}
	it, _ = f.pop()
	return it, nil
}

// gather queues first and what follows it for up to wait (or until
// BatchSize items are queued), without a transaction: a batch that had
// written rows would hold every reader of the log back at its transaction
// id (the store's horizon), this binding's own subscription included.
func (f *feed) gather(ctx context.Context, first item, wait time.Duration) error {
	f.queued = append(f.queued[:0], first)
	f.gatherTimer.Reset(wait)
	defer f.gatherTimer.Stop()
	for len(f.queued) < f.cfg.BatchSize {
		select {
		case it := <-f.items:
			f.queued = append(f.queued, it)
		case <-f.gatherTimer.C:
			return nil
		case err := <-f.ended:
			return fmt.Errorf("subscription ended: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// more returns the next item if one is pending, without waiting: a batch
// takes what is pending and commits as soon as nothing is, so that live
// latency stays low.
func (f *feed) more() (item, bool) {
	if it, ok := f.pop(); ok {
		return it, true
	}
	select {
	case it := <-f.items:
		return it, true
	default:
		return item{}, false
	}
}

// putBack returns an item taken by more to the front of the queue, for
// the next batch.
func (f *feed) putBack(it item) { f.queued = slices.Insert(f.queued, 0, it) }

func (f *feed) pop() (item, bool) {
	if len(f.queued) == 0 {
		return item{}, false
	}
	it := f.queued[0]
	f.queued = f.queued[1:]
	return it, true
}

// errIdle: a rebuild's subscription delivered nothing for RebuildIdle.
var errIdle = errors.New("projections: subscription idle")

// caughtUp reports whether an idle rebuild is done: no event of its filter
// lies between its checkpoint and the head it set out to reach. A
// subscription merely slow to deliver (a loaded database) is waited for.
// The filter's last events may be past stopAt without the checkpoint ever
// reaching it (nothing reports the filtered-out tail): idle is what ends
// such a rebuild.
func (b *binding) caughtUp(ctx context.Context, cp eventstore.Position) (bool, error) {
	evs, err := b.e.store.ReadAll(ctx, eventstore.ReadAllOptions{After: cp, Limit: 1, Filter: b.p.Filter()})
	if err != nil {
		return false, fmt.Errorf("projections: is the rebuild caught up: %w", err)
	}
	return len(evs) == 0 || evs[0].Position.Compare(b.stopAt) > 0, nil
}

// scan keeps a live binding's progress through filtered-out events, and
// announces it, until it is written: with the next batch, or on its own
// once CheckpointInterval has passed.
func (f *feed) scan(p eventstore.Position) {
	if p.Compare(f.scanned) > 0 {
		f.scanned = p
		if f.onScanned != nil {
			f.onScanned(p)
		}
	}
	if f.flush == nil {
		f.flushTimer.Reset(f.cfg.CheckpointInterval)
		f.flush = f.flushTimer.C
	}
}

// committed notes a commit: it starts the CommitInterval before the next.
func (f *feed) committed() { f.lastCommit = time.Now() }
