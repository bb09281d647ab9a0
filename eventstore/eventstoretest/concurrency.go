package eventstoretest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/eventstore"
)

// ConcurrencyConfig shapes a concurrency run. Zero fields take the
// defaults of DefaultConcurrencyConfig.
type ConcurrencyConfig struct {
	// Writers is the number of concurrent writers (at least 16 by default).
	Writers int
	// SharedStreams are written by every writer; each writer also has
	// OwnStreams of its own.
	SharedStreams, OwnStreams int
	// Duration bounds the writing phase; MaxEvents bounds the events
	// attempted. Writing stops at whichever comes first.
	Duration  time.Duration
	MaxEvents int
	// MaxDelay bounds the random delay before each commit (or, without
	// transactions, between appends).
	MaxDelay time.Duration
	// RollbackPercent of transactions are rolled back on purpose;
	// TouchPercent write the unrelated table before appending;
	// PlainPercent use Store.Append instead of a held transaction.
	RollbackPercent, TouchPercent, PlainPercent int
	// HoldOpen is how long one transaction stays open while the others
	// commit; it starts HoldAfter into the run.
	HoldOpen, HoldAfter time.Duration
	// RestartMin and RestartMax bound the random time between kills of
	// the restarted subscriber.
	RestartMin, RestartMax time.Duration
	// CatchUpTimeout bounds the wait, after writing, for subscribers to
	// deliver the whole log (a failure guard, not a speed requirement).
	CatchUpTimeout time.Duration
	// Seed makes the writers' choices reproducible; 0 picks one at random.
	// The report states the seed used.
	Seed uint64
}

// DefaultConcurrencyConfig is the run Run performs: bounded to about ten
// seconds and a few thousand events, so it passes under -race on two cores.
func DefaultConcurrencyConfig() ConcurrencyConfig {
	return ConcurrencyConfig{
		Writers:         16,
		SharedStreams:   4,
		OwnStreams:      3,
		Duration:        8 * time.Second,
		MaxEvents:       4000,
		MaxDelay:        20 * time.Millisecond,
		RollbackPercent: 10,
		TouchPercent:    25,
		PlainPercent:    20,
		HoldOpen:        3 * time.Second,
		HoldAfter:       time.Second,
		RestartMin:      200 * time.Millisecond,
		RestartMax:      time.Second,
		CatchUpTimeout:  60 * time.Second,
	}
}

func (c ConcurrencyConfig) withDefaults() ConcurrencyConfig {
	d := DefaultConcurrencyConfig()
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setD := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	set(&c.Writers, d.Writers)
	set(&c.SharedStreams, d.SharedStreams)
	set(&c.OwnStreams, d.OwnStreams)
	set(&c.MaxEvents, d.MaxEvents)
	set(&c.RollbackPercent, d.RollbackPercent)
	set(&c.TouchPercent, d.TouchPercent)
	set(&c.PlainPercent, d.PlainPercent)
	setD(&c.Duration, d.Duration)
	setD(&c.MaxDelay, d.MaxDelay)
	setD(&c.HoldOpen, d.HoldOpen)
	setD(&c.HoldAfter, d.HoldAfter)
	setD(&c.RestartMin, d.RestartMin)
	setD(&c.RestartMax, d.RestartMax)
	setD(&c.CatchUpTimeout, d.CatchUpTimeout)
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	return c
}

// Concurrency runs many writers against f's store while subscribers read
// the log, and checks that every committed event (and no rolled-back one)
// is stored and delivered exactly once, in the order of a final full
// ReadAll, with each stream's revisions contiguous and increasing.
//
// With f.Begin set, writers hold transactions: random delays before
// commit, some rolled back, some writing an unrelated table first, and one
// held open for cfg.HoldOpen while the others commit. Without it, writers
// use Store.Append with random delays between appends. One subscriber is
// killed and restarted from its checkpoint throughout; one runs steadily;
// one filters and advances its checkpoint through OnCheckpoint.
//
// Violations go into the Report; the error is for a run that could not be
// carried out (an unexpected store error, ctx done).
func Concurrency(ctx context.Context, f Fixture, cfg ConcurrencyConfig) (rep Report, err error) {
	cfg = cfg.withDefaults()
	rep = Report{Seed: cfg.Seed, Writers: cfg.Writers}
	start := time.Now()
	defer func() { rep.Elapsed = time.Since(start) }()

	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	fail := func(err error) { abort(err) }

	run := &concRun{cfg: cfg, f: f, rolledBack: map[uuid.UUID]bool{}, streams: map[string]bool{}}
	for i := 0; i < cfg.SharedStreams; i++ {
		run.shared = append(run.shared, fmt.Sprintf("conc-shared-%d-%s", i, uuid.NewString()[:8]))
	}

	subs := []*concSubscriber{
		{name: "restarted", kill: true},
		{name: "steady"},
		{name: "filtered", filter: eventstore.Filter{StreamPrefixes: []string{"conc-shared-"}, EventTypes: []string{"conc.a.v1"}}, useCheckpoint: true},
	}
	subCtx, stopSubs := context.WithCancel(ctx)
	var subWG sync.WaitGroup
	for _, s := range subs {
		s.store = f.Store
		subWG.Add(1)
		go func() {
			defer subWG.Done()
			if err := s.run(subCtx, cfg, &run.writing); err != nil {
				fail(fmt.Errorf("subscriber %s: %w", s.name, err))
			}
		}()
	}

	// Writers. The run's time limit stops them between appends, never in
	// the middle of one: an append cancelled in flight has an unknown
	// outcome (EventStoreDB may have written it), and a deadline raced by
	// the server's copy of it would look like a store failure.
	run.writing.Store(true)
	timeUp, stopWriting := context.WithTimeout(ctx, cfg.Duration)
	var wg sync.WaitGroup
	for w := 0; w < cfg.Writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run.writer(ctx, timeUp, w); err != nil {
				fail(fmt.Errorf("writer %d: %w", w, err))
			}
		}()
	}
	if f.Begin != nil {
		run.holding.Store(true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer run.holding.Store(false)
			if err := run.held(ctx); err != nil {
				fail(fmt.Errorf("held transaction: %w", err))
			}
		}()
	}
	wg.Wait()
	stopWriting()
	run.writing.Store(false)
	// Count what was written before anything can fail, so that a failed
	// run's report still says how far the writers got.
	rep.Transactions = int(run.transactions.Load())
	rep.Conflicts = int(run.conflicts.Load())
	rep.NewTxRetries = int(run.newTx.Load())
	rep.HeldCommitted = run.heldCommitted.Load()
	for _, a := range run.committed {
		rep.Committed += len(a.ids)
	}
	rep.RolledBack = len(run.rolledBack)

	finish := func(err error) (Report, error) {
		stopSubs()
		subWG.Wait()
		return rep, err
	}
	if err := context.Cause(ctx); err != nil {
		return finish(err)
	}

	final, err := readWholeLog(ctx, f.Store)
	if err != nil {
		return finish(fmt.Errorf("final ReadAll: %w", err))
	}
	// Wait until each subscriber has delivered the last event it should.
	deadline := time.Now().Add(cfg.CatchUpTimeout)
	for _, s := range subs {
		var target *eventstore.RecordedEvent
		for i := len(final) - 1; i >= 0; i-- {
			if s.filter.Matches(final[i].Stream, final[i].Type) {
				target = &final[i]
				break
			}
		}
		for target != nil && !s.reached(target.Position) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	stopSubs()
	subWG.Wait()
	if err := context.Cause(ctx); err != nil {
		return rep, err
	}

	var deliveries []delivery
	for _, s := range subs {
		d := delivery{name: s.name, filter: s.filter, events: s.events, misuse: s.misuse}
		deliveries = append(deliveries, d)
		n := 0
		for _, e := range final {
			if s.filter.Matches(e.Stream, e.Type) {
				n++
			}
		}
		rep.Subscribers = append(rep.Subscribers, SubscriberReport{Name: s.name, Filter: s.filter, Delivered: len(s.events), Expected: n, Restarts: s.restarts})
		if s.kill {
			rep.Restarts = s.restarts
		}
	}
	verify(&rep, final, run.committed, run.rolledBack, deliveries)
	// Each stream read on its own agrees with the log.
	byStream := map[string][]uuid.UUID{}
	for _, e := range final {
		byStream[e.Stream] = append(byStream[e.Stream], e.ID)
	}
	for s, want := range byStream {
		got, err := f.Store.ReadStream(ctx, s, eventstore.ReadStreamOptions{})
		if err != nil {
			return rep, fmt.Errorf("final ReadStream(%q): %w", s, err)
		}
		for i, e := range got {
			if i >= len(want) || e.ID != want[i] || e.Revision != uint64(i) {
				rep.add(Violation{Kind: Mismatch, Event: e.ID, Detail: fmt.Sprintf("ReadStream(%s) disagrees with ReadAll at revision %d", s, i)})
				break
			}
		}
		if len(got) != len(want) {
			rep.add(Violation{Kind: Mismatch, Detail: fmt.Sprintf("ReadStream(%s) has %d events, ReadAll %d", s, len(got), len(want))})
		}
	}
	return rep, nil
}

// readWholeLog reads the log in pages, so that a store with a page limit
// of its own is read completely.
func readWholeLog(ctx context.Context, s eventstore.Store) ([]eventstore.RecordedEvent, error) {
	var all []eventstore.RecordedEvent
	var after eventstore.Position
	for {
		page, err := s.ReadAll(ctx, eventstore.ReadAllOptions{After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return all, nil
		}
		all = append(all, page...)
		after = page[len(page)-1].Position
	}
}

// concRun is the shared state of the writers.
type concRun struct {
	cfg    ConcurrencyConfig
	f      Fixture
	shared []string

	writing       atomic.Bool
	holding       atomic.Bool // the held transaction has not finished yet
	attempted     atomic.Int64
	transactions  atomic.Int64
	conflicts     atomic.Int64
	newTx         atomic.Int64
	heldCommitted atomic.Bool

	mu         sync.Mutex
	committed  []appendRecord
	rolledBack map[uuid.UUID]bool
	streams    map[string]bool
}

func (r *concRun) record(a appendRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.committed = append(r.committed, a)
	r.streams[a.stream] = true
}

func (r *concRun) recordRollback(ids []uuid.UUID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		r.rolledBack[id] = true
	}
}

// writer appends until timeUp is done or the event budget is spent. Its
// appends run on ctx, so that each one's outcome is known; the delays it
// sleeps end early when time is up.
func (r *concRun) writer(ctx, timeUp context.Context, w int) error {
	rng := rand.New(rand.NewPCG(r.cfg.Seed, uint64(w)))
	own := make([]string, r.cfg.OwnStreams)
	for i := range own {
		own[i] = fmt.Sprintf("conc-w%d-%d-%s", w, i, uuid.NewString()[:8])
	}
	// known: the writer's belief about each stream's last revision.
	known := map[string]int64{} // -1: missing; absent: unknown (treated as missing)
	for seq := 0; timeUp.Err() == nil && ctx.Err() == nil; seq++ {
		n := 1 + rng.IntN(3)
		// The budget ends writing only once the held transaction is done,
		// so that others always commit while it is open.
		if r.attempted.Add(int64(n)) > int64(r.cfg.MaxEvents) && !r.holding.Load() {
			return nil
		}
		s := own[rng.IntN(len(own))]
		if rng.IntN(100) < 40 {
			s = r.shared[rng.IntN(len(r.shared))]
		}
		events := make([]eventstore.EventData, n)
		for i := range events {
			typ := "conc.a.v1"
			if rng.IntN(2) == 0 {
				typ = "conc.b.v1"
			}
			events[i] = eventstore.EventData{
				ID:       uuid.New(),
				Type:     typ,
				Data:     []byte(fmt.Sprintf(`{"writer":%d,"seq":%d,"i":%d}`, w, seq, i)),
				Metadata: []byte(`{"actor":"conc"}`),
			}
		}
		rollback := r.f.Begin != nil && rng.IntN(100) < r.cfg.RollbackPercent
		plain := r.f.Begin == nil || (!rollback && rng.IntN(100) < r.cfg.PlainPercent)
		touch := rng.IntN(100) < r.cfg.TouchPercent
		for attempt := 0; ; attempt++ {
			if attempt > 1000 {
				return fmt.Errorf("append to %s starved after %d attempts", s, attempt)
			}
			expected := r.expected(rng, known, s)
			var res eventstore.AppendResult
			var err error
			if plain {
				if r.f.Begin == nil {
					sleep(timeUp, rng, r.cfg.MaxDelay)
				}
				res, err = r.f.Store.Append(ctx, s, expected, events...)
			} else {
				res, err = r.inTx(ctx, timeUp, rng, s, expected, events, touch, rollback)
			}
			var wev *eventstore.WrongExpectedVersionError
			switch {
			case err == nil && rollback:
				r.recordRollback(dataIDs(events))
			case err == nil:
				r.transactions.Add(1)
				r.record(appendRecord{stream: s, expected: expected, ids: dataIDs(events), result: res, resultKnown: true})
				known[s] = int64(res.NextRevision)
			case errors.As(err, &wev):
				if rollback {
					r.recordRollback(dataIDs(events))
					break
				}
				r.conflicts.Add(1)
				if err := r.reread(ctx, known, s); err != nil {
					return err
				}
				continue
			case errors.Is(err, eventstore.ErrRetryInNewTransaction) && !plain:
				r.newTx.Add(1)
				if err := r.reread(ctx, known, s); err != nil {
					return err
				}
				continue
			case ctx.Err() != nil:
				return nil
			default:
				return fmt.Errorf("append to %s with %s: %w", s, eventstore.DescribeExpected(expected), err)
			}
			break
		}
	}
	return nil
}

// expected picks an expected revision from what the writer believes:
// mostly the exact revision, sometimes Any or StreamExists.
func (r *concRun) expected(rng *rand.Rand, known map[string]int64, s string) eventstore.ExpectedRevision {
	rev, ok := known[s]
	if !ok || rev < 0 {
		if rng.IntN(100) < 15 {
			return eventstore.Any{}
		}
		return eventstore.NoStream{}
	}
	switch p := rng.IntN(100); {
	case p < 10:
		return eventstore.Any{}
	case p < 20:
		return eventstore.StreamExists{}
	}
	return eventstore.Revision(uint64(rev))
}

// reread refreshes the writer's belief about s from the store.
func (r *concRun) reread(ctx context.Context, known map[string]int64, s string) error {
	got, err := r.f.Store.ReadStream(ctx, s, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
	switch {
	case errors.Is(err, eventstore.ErrStreamNotFound):
		known[s] = -1
	case err != nil:
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("re-read %s: %w", s, err)
	case len(got) != 1:
		return fmt.Errorf("re-read %s: backwards read of limit 1 returned %d events", s, len(got))
	default:
		known[s] = int64(got[0].Revision)
	}
	return nil
}

// inTx appends in a held transaction, with a random delay (cut short when
// time is up) before the commit (or the deliberate rollback).
func (r *concRun) inTx(ctx, timeUp context.Context, rng *rand.Rand, s string, expected eventstore.ExpectedRevision, events []eventstore.EventData, touch, rollback bool) (eventstore.AppendResult, error) {
	tx, err := r.f.Begin(ctx)
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("begin: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if touch {
		if err := tx.TouchUnrelated(ctx); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("touch unrelated: %w", err)
		}
		sleep(timeUp, rng, r.cfg.MaxDelay/4)
	}
	res, err := tx.Append(ctx, s, expected, events...)
	if err != nil {
		return res, err
	}
	sleep(timeUp, rng, r.cfg.MaxDelay)
	done = true
	if rollback {
		if err := tx.Rollback(ctx); err != nil {
			return res, fmt.Errorf("rollback: %w", err)
		}
		return res, nil
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("commit: %w", err)
	}
	return res, nil
}

// held opens one transaction that takes its place in the log early,
// appends, and stays open while the others commit.
func (r *concRun) held(ctx context.Context) error {
	select {
	case <-time.After(r.cfg.HoldAfter):
	case <-ctx.Done():
		return nil
	}
	tx, err := r.f.Begin(ctx)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err := tx.TouchUnrelated(ctx); err != nil {
		return err
	}
	s := "conc-held-" + uuid.NewString()[:8]
	events := []eventstore.EventData{
		{ID: uuid.New(), Type: "conc.a.v1", Data: []byte(`{"held":1}`)},
		{ID: uuid.New(), Type: "conc.b.v1", Data: []byte(`{"held":2}`)},
	}
	res, err := tx.Append(ctx, s, eventstore.NoStream{}, events...)
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}
	select {
	case <-time.After(r.cfg.HoldOpen):
	case <-ctx.Done():
		return nil
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit after %v open: %w", r.cfg.HoldOpen, err)
	}
	committed = true
	r.heldCommitted.Store(true)
	r.transactions.Add(1)
	r.record(appendRecord{stream: s, expected: eventstore.NoStream{}, ids: dataIDs(events), result: res, resultKnown: true})
	return nil
}

func sleep(ctx context.Context, rng *rand.Rand, max time.Duration) {
	if max <= 0 {
		return
	}
	d := time.Duration(rng.Int64N(int64(max)))
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// concSubscriber is one subscriber of the run. Its events are what its
// handler accepted, across restarts.
type concSubscriber struct {
	name          string
	store         eventstore.Store
	filter        eventstore.Filter
	kill          bool // killed and restarted while writers run
	useCheckpoint bool // advance the checkpoint through OnCheckpoint

	mu         sync.Mutex
	events     []eventstore.RecordedEvent
	checkpoint eventstore.Position
	misuse     []string
	restarts   int
}

var errStopped = errors.New("eventstoretest: subscriber stopped by its handler")

func (s *concSubscriber) reached(p eventstore.Position) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.events)
	return n > 0 && s.events[n-1].Position.Compare(p) >= 0
}

// run subscribes until ctx is done; a killed subscriber is restarted from
// its checkpoint, sometimes after a cancel, sometimes after its handler
// failed.
func (s *concSubscriber) run(ctx context.Context, cfg ConcurrencyConfig, writing *atomic.Bool) error {
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(len(s.name))+1000))
	for session := 0; ctx.Err() == nil; session++ {
		sctx, cancel := context.WithCancel(ctx)
		var closed atomic.Bool
		var inflight atomic.Int32
		failAfter := -1 // handler fails after this many events in the session
		if s.kill && session%3 == 2 {
			failAfter = 1 + rng.IntN(200)
		}
		handled := 0
		s.mu.Lock()
		after := s.checkpoint
		s.mu.Unlock()
		opts := eventstore.SubscribeOptions{After: after, Filter: s.filter}
		if s.useCheckpoint {
			opts.OnCheckpoint = func(_ context.Context, p eventstore.Position) error {
				s.mu.Lock()
				defer s.mu.Unlock()
				if closed.Load() {
					s.misuse = append(s.misuse, "OnCheckpoint called after Subscribe returned")
				}
				if p.Compare(s.checkpoint) > 0 {
					s.checkpoint = p
				}
				return nil
			}
		}
		handle := func(_ context.Context, e eventstore.RecordedEvent) error {
			if inflight.Add(1) > 1 {
				s.addMisuse("handler called concurrently")
			}
			defer inflight.Add(-1)
			if closed.Load() {
				s.addMisuse("handler called after Subscribe returned")
			}
			if failAfter >= 0 && handled >= failAfter {
				return errStopped
			}
			handled++
			s.mu.Lock()
			s.events = append(s.events, e)
			if e.Position.Compare(s.checkpoint) > 0 {
				s.checkpoint = e.Position
			}
			s.mu.Unlock()
			return nil
		}
		done := make(chan error, 1)
		go func() { done <- s.store.Subscribe(sctx, opts, handle) }()
		var killed bool
		var timer <-chan time.Time
		if s.kill {
			timer = time.After(cfg.RestartMin + time.Duration(rng.Int64N(int64(cfg.RestartMax-cfg.RestartMin)+1)))
		}
		var err error
	wait:
		for {
			select {
			case err = <-done:
				break wait
			case <-timer:
				if writing.Load() {
					killed = true
					cancel()
				} else {
					timer = nil
				}
			}
		}
		closed.Store(true)
		cancel()
		switch {
		case errors.Is(err, errStopped):
		case ctx.Err() != nil || killed:
			if !errors.Is(err, context.Canceled) {
				s.addMisuse(fmt.Sprintf("Subscribe returned %v after its context was cancelled, want context.Canceled", err))
			}
		case err == nil:
			return errors.New("subscribe returned nil before its context was done")
		default:
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		s.mu.Lock()
		s.restarts++
		s.mu.Unlock()
	}
	return nil
}

func (s *concSubscriber) addMisuse(m string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.misuse) < 20 {
		s.misuse = append(s.misuse, m)
	}
}
