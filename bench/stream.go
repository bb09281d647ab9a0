package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/bench/loadgen"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/publicevents"
	"github.com/authledger/authledger/stream"
	"github.com/authledger/authledger/stream/jetstream"
)

// streamLagRate is the steady append rate of the lag row, per second.
const streamLagRate = 500

// Stream measures the analytics stream against the nats-server at
// cfg.NATSURL: the log's append rate (8 writers) beside the rate at which
// the publisher (stream.New over JetStream) publishes from its checkpoint
// a log of cfg.StreamEvents more events than the append row left, a plain synchronous JetStream
// publish of the same messages without the log (the baseline), and the
// lag from an append to the event's arrival at a JetStream subscriber at
// streamLagRate appends per second.
func Stream(ctx context.Context, w io.Writer, store *pg.Store, cfg Config) (err error) {
	cfg = cfg.withDefaults()
	if cfg.NATSURL == "" {
		return errors.New("bench: the stream section needs a nats-server (-nats, or AUTHLEDGER_TEST_NATS_URL: `make bench` starts one)")
	}
	run := strings.ReplaceAll(uuid.NewString(), "-", "")[:8]
	jcfg := jetstream.Config{URL: cfg.NATSURL, Stream: "BENCH_" + run, SubjectPrefix: "bench" + run}
	mapper, err := publicevents.NewMapper("https://bench.example.test")
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\n## Analytics stream (NATS JetStream)")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "row\tevents\tevents/s\tp50\tp99\t")

	appendRate, err := loadgen.Run(ctx, 8, cfg.RowDuration, func(ctx context.Context, _, _ int) error {
		_, err := appendTaskCreated(ctx, store)
		return err
	})
	if err != nil {
		return fmt.Errorf("bench: stream: append: %w", err)
	}
	fmt.Fprintf(tw, "log append, task.created.v1 (8 writers)\t%d\t%.0f\t%s\t%s\t\n", appendRate.Ops, appendRate.PerSecond(), ms(appendRate.P50), ms(appendRate.P99))

	// The catch-up row publishes the whole log: what was appended above
	// plus cfg.StreamEvents more.
	var head eventstore.Position
	for range cfg.StreamEvents {
		if head, err = appendTaskCreated(ctx, store); err != nil {
			return fmt.Errorf("bench: stream: fill: %w", err)
		}
	}
	total := appendRate.Ops + cfg.StreamEvents
	pub, err := jetstream.NewPublisher(jcfg)
	if err != nil {
		return err
	}
	defer pub.Close()
	policy, err := stream.New(stream.Config{Publisher: pub, Mapper: mapper})
	if err != nil {
		return err
	}
	r, err := projector.NewRunner(projector.Config{Store: store, Pool: store.Pool(), Projections: []projector.Projection{policy}})
	if err != nil {
		return err
	}
	rctx, stopRunner := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- r.Run(rctx) }()
	defer func() {
		stopRunner()
		if runErr := <-done; runErr != nil && err == nil {
			err = fmt.Errorf("bench: stream: runner: %w", runErr)
		}
	}()
	waiter := projector.NewWaiter(store.Pool(), r, 0)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Minute)
	err = waiter.WaitFor(wctx, head, stream.Name)
	wcancel()
	if err != nil {
		return fmt.Errorf("bench: stream: publisher catch-up: %w", err)
	}
	elapsed := time.Since(start)
	fmt.Fprintf(tw, "publisher catch-up from its checkpoint\t%d\t%.0f\t\t\t\n", total, float64(total)/elapsed.Seconds())

	base, err := baselinePublish(ctx, jcfg, mapper, cfg.RowDuration)
	if err != nil {
		return err
	}
	fmt.Fprintf(tw, "plain JetStream publish, 1 publisher (baseline)\t%d\t%.0f\t%s\t%s\t\n", base.Ops, base.PerSecond(), ms(base.P50), ms(base.P99))

	lag, err := publisherLag(ctx, store, jcfg, cfg.RowDuration)
	if err != nil {
		return err
	}
	fmt.Fprintf(tw, "lag append → subscriber at %d appends/s\t%d\t\t%s\t%s\t\n", streamLagRate, lag.Ops, ms(lag.P50), ms(lag.P99))
	return tw.Flush()
}

func appendTaskCreated(ctx context.Context, store *pg.Store) (eventstore.Position, error) {
	id := uuid.New()
	name, data, err := events.Encode(task.Created{TaskID: id, OwnerID: id, MaxAttempts: 3, CreatedAt: time.Now().UTC()})
	if err != nil {
		return eventstore.Position{}, err
	}
	res, err := store.Append(ctx, task.StreamName(id), eventstore.NoStream{}, eventstore.EventData{ID: id, Type: name, Data: data, Metadata: payload})
	return res.Position, err
}

// baselinePublish publishes mapped task.created events with the same
// publisher, without the log or the runner in between.
func baselinePublish(ctx context.Context, jcfg jetstream.Config, mapper *publicevents.Mapper, d time.Duration) (result, error) {
	pub, err := jetstream.NewPublisher(jcfg)
	if err != nil {
		return result{}, err
	}
	defer pub.Close()
	id := uuid.New()
	_, data, err := events.Encode(task.Created{TaskID: id, OwnerID: id, MaxAttempts: 3, CreatedAt: time.Now().UTC()})
	if err != nil {
		return result{}, err
	}
	return loadgen.Run(ctx, 1, d, func(ctx context.Context, _, _ int) error {
		e, _, err := mapper.Map(eventstore.RecordedEvent{ID: uuid.New(), Type: task.EventCreated, Data: data, RecordedAt: time.Now()})
		if err != nil {
			return err
		}
		return pub.Publish(ctx, e)
	})
}

// publisherLag appends at streamLagRate per second for d while the
// publisher runs (the caller's runner) and a subscriber tails the stream;
// each event's lag is from the start of its append to its arrival.
func publisherLag(ctx context.Context, store *pg.Store, jcfg jetstream.Config, d time.Duration) (result, error) {
	var mu sync.Mutex
	started := map[string]time.Time{}
	var lags []time.Duration
	tctx, stopTail := context.WithCancel(ctx)
	tailDone := make(chan error, 1)
	go func() {
		tailDone <- jetstream.Tail(tctx, jcfg, jetstream.TailOptions{}, func(r jetstream.Received) error {
			now := time.Now()
			mu.Lock()
			if s, ok := started[r.Event.ID()]; ok {
				lags = append(lags, now.Sub(s))
				delete(started, r.Event.ID())
			}
			mu.Unlock()
			return nil
		})
	}()
	// The ordered consumer delivers new messages from its creation on:
	// give it a moment to exist before the first append (a probe message
	// would have to be published to the stream itself).
	time.Sleep(500 * time.Millisecond)
	var failures atomic.Int64
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / streamLagRate)
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		<-tick.C
		wg.Go(func() {
			id := uuid.New()
			name, data, err := events.Encode(task.Created{TaskID: id, OwnerID: id, MaxAttempts: 3, CreatedAt: time.Now().UTC()})
			if err != nil {
				failures.Add(1)
				return
			}
			mu.Lock()
			started[id.String()] = time.Now()
			mu.Unlock()
			if _, err := store.Append(ctx, task.StreamName(id), eventstore.NoStream{}, eventstore.EventData{ID: id, Type: name, Data: data, Metadata: payload}); err != nil {
				failures.Add(1)
			}
		})
	}
	tick.Stop()
	wg.Wait()
	// Wait for the stragglers (bounded).
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		left := len(started)
		mu.Unlock()
		if left == 0 {
			break
		}
	}
	stopTail()
	if err := <-tailDone; err != nil && !errors.Is(err, context.Canceled) {
		return result{}, fmt.Errorf("bench: stream: tail: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if f := failures.Load(); f > 0 || len(started) > 0 {
		return result{}, fmt.Errorf("bench: stream: %d appends failed, %d events never arrived", f, len(started))
	}
	return loadgen.Summarise(lags, d), nil
}
