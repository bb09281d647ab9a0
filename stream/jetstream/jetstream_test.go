package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/publicevents"
	"github.com/authledger/authledger/publicevents/publiceventstest"
	"github.com/authledger/authledger/stream"
	"github.com/authledger/authledger/stream/jetstream"
	"github.com/authledger/authledger/test/natstest"
)

func mapper(t *testing.T) *publicevents.Mapper {
	t.Helper()
	m, err := publicevents.NewMapper("https://id.example.test")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// config is a stream and subjects of this test's own on the server at url.
func config(t *testing.T, url string) jetstream.Config {
	t.Helper()
	name, prefix := natstest.Names(t)
	return jetstream.Config{URL: url, Stream: name, SubjectPrefix: prefix, Timeout: 2 * time.Second}
}

func newPublisher(t *testing.T, cfg jetstream.Config) *jetstream.Publisher {
	t.Helper()
	p, err := jetstream.NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func policy(t *testing.T, p stream.Publisher) projector.Projection {
	t.Helper()
	pol, err := stream.New(stream.Config{Publisher: p, Mapper: mapper(t)})
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// published lists the log's published events in log order.
func published(t *testing.T, ctx context.Context, store eventstore.Store) []eventstore.RecordedEvent {
	t.Helper()
	evs, err := store.ReadAll(ctx, eventstore.ReadAllOptions{Limit: 100000, Filter: publicevents.Filter()})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// readStream reads the whole stream as a consumer would, once it holds
// want messages.
func readStream(t *testing.T, ctx context.Context, cfg jetstream.Config, want int) []jetstream.Received {
	t.Helper()
	waitMessages(t, ctx, cfg, want)
	var got []jetstream.Received
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err := jetstream.Tail(rctx, cfg, jetstream.TailOptions{FromStart: true}, func(r jetstream.Received) error {
		got = append(got, r)
		if len(got) == want {
			cancel()
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	return got
}

// waitMessages waits until the stream holds want messages and fails if it
// holds more.
func waitMessages(t *testing.T, ctx context.Context, cfg jetstream.Config, want int) {
	t.Helper()
	nc, err := nats.Connect(cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	j, err := js.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for ctx.Err() == nil {
		if s, err := j.Stream(ctx, cfg.Stream); err == nil {
			if info, err := s.Info(ctx); err == nil {
				last = info.State.Msgs
				if last > uint64(want) {
					t.Fatalf("stream %s holds %d messages, want %d", cfg.Stream, last, want)
				}
				if last == uint64(want) {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("stream %s holds %d messages, want %d", cfg.Stream, last, want)
}

// checkStream compares the stream with the log: the same events, in log
// order, each on its type's subject with its id as Nats-Msg-Id.
func checkStream(t *testing.T, cfg jetstream.Config, log []eventstore.RecordedEvent, got []jetstream.Received) {
	t.Helper()
	if len(got) != len(log) {
		t.Fatalf("stream holds %d events, log %d", len(got), len(log))
	}
	for i, ev := range log {
		r := got[i]
		if r.Event.ID() != ev.ID.String() || r.MsgID != ev.ID.String() || r.Event.Type() != publicevents.Type(ev.Type) ||
			r.Subject != cfg.SubjectPrefix+"."+ev.Type || r.Sequence != uint64(i+1) {
			t.Fatalf("stream message %d: seq %d subject %s id %s msg-id %s type %s; log event %s %s",
				i, r.Sequence, r.Subject, r.Event.ID(), r.MsgID, r.Event.Type(), ev.ID, ev.Type)
		}
	}
}

// producedAndPublishing writes every published type with the real
// commands and runs the publisher to a stream of the test's own; it
// returns that stream and the published events of the log.
func producedAndPublishing(t *testing.T, ctx context.Context) (jetstream.Config, []eventstore.RecordedEvent) {
	t.Helper()
	pe := projtest.New(t)
	publiceventstest.Produce(t, ctx, pe.Store, pe.Pool)
	cfg := config(t, natstest.URL(t))
	pe.Run(t, policy(t, newPublisher(t, cfg)))
	return cfg, published(t, ctx, pe.Store)
}

// Events real commands write reach JetStream in log order, each on its
// type's subject, with the event id as the CloudEvent's id and as the
// de-duplication id.
func TestPublishesInLogOrderWithTheEventIDAsDedupID(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, log := producedAndPublishing(t, ctx)
	checkStream(t, cfg, log, readStream(t, ctx, cfg, len(log)))
}

// expired is a public event of a fresh id, published without the log.
func expired(t *testing.T) ce.Event {
	t.Helper()
	e := ce.New()
	e.SetID(uuid.NewString())
	e.SetSource("https://id.example.test")
	e.SetType(publicevents.Type(task.EventExpired))
	e.SetSubject(uuid.NewString())
	e.SetTime(time.Now())
	if err := e.SetData(ce.ApplicationJSON, map[string]string{"task_id": e.Subject()}); err != nil {
		t.Fatal(err)
	}
	return e
}

// A second publish of the same event (the same Nats-Msg-Id) within the
// window is dropped by JetStream.
func TestTheSameEventPublishedTwiceIsStoredOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := config(t, natstest.URL(t))
	p := newPublisher(t, cfg)
	e := expired(t)
	for range 3 {
		if err := p.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got := readStream(t, ctx, cfg, 1)
	if got[0].Event.ID() != e.ID() {
		t.Fatalf("stored %s, published %s", got[0].Event.ID(), e.ID())
	}
}

// killing is a publisher that kills its runner (cancels it mid-batch,
// the effect of a crash: the open batch and its checkpoint are lost)
// when it is asked for its killAt-th publish.
type killing struct {
	stream.Publisher
	calls  *atomic.Int64
	killAt int64
	kill   context.CancelFunc
}

func (k killing) Publish(ctx context.Context, evs ...ce.Event) error {
	if k.calls.Add(1) == k.killAt && k.kill != nil {
		k.kill()
		return context.Canceled
	}
	return k.Publisher.Publish(ctx, evs...)
}

func appendTasks(t *testing.T, ctx context.Context, store eventstore.Store, n int) eventstore.Position {
	t.Helper()
	var last eventstore.Position
	for i := range n {
		id := uuid.New()
		res, err := store.Append(ctx, task.StreamName(id), eventstore.NoStream{},
			projtest.Event(task.EventCreated, task.Created{TaskID: id, OwnerID: uuid.New(), MaxAttempts: 3, CreatedAt: time.Now().UTC()}, fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		last = res.Position
	}
	return last
}

// The publisher killed mid-batch and started again leaves no gap: it
// republishes from its checkpoint, JetStream drops the duplicates by
// their id, and a consumer reads every event once, in log order.
func TestAKilledPublisherResumesWithoutAGap(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pe := projtest.New(t)
	const n = 200
	last := appendTasks(t, ctx, pe.Store, n)
	cfg := config(t, natstest.URL(t))
	calls := &atomic.Int64{}

	// The first publisher catches up in batches of 50 and dies at its
	// 120th publish: the batch it was in (events 101 to 119 published)
	// never commits its checkpoint.
	runCtx, kill := context.WithCancel(ctx)
	rcfg := pe.Config(policy(t, killing{Publisher: newPublisher(t, cfg), calls: calls, killAt: 120, kill: kill}))
	rcfg.BatchSize = 50
	r1, err := projector.NewRunner(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = r1.Run(runCtx) })
	wg.Wait()
	if calls.Load() < 120 {
		t.Fatalf("the first publisher stopped after %d publishes", calls.Load())
	}
	st, err := projector.Status(ctx, pe.Admin, pe.Store, stream.Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	if st[0].EventsApplied >= 119 || st[0].LagEvents == 0 {
		t.Fatalf("the killed publisher checkpointed everything it published (applied %d, lag %d): the test shows no republication",
			st[0].EventsApplied, st[0].LagEvents)
	}

	// The second resumes from the checkpoint.
	pe.Run(t, policy(t, killing{Publisher: newPublisher(t, cfg), calls: calls}))
	pe.WaitCaughtUp(t, ctx, last, stream.Name)
	if republished := calls.Load() - 1 - n; republished <= 0 {
		t.Fatalf("%d publishes for %d events: nothing was republished", calls.Load()-1, n)
	} else {
		t.Logf("%d events republished after the kill, all dropped by JetStream", republished)
	}
	log := published(t, ctx, pe.Store)
	checkStream(t, cfg, log, readStream(t, ctx, cfg, n))
}

// While NATS is down the publisher's lag grows in `projections status`
// (projector.Status, which the command prints); once it is back the
// publisher catches up and the lag is gone.
func TestLagShowsWhileNATSIsDown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := natstest.Start(t)
	srv.Stop()
	pe := projtest.New(t)
	cfg := config(t, srv.URL)
	pe.Run(t, policy(t, newPublisher(t, cfg)))
	last := appendTasks(t, ctx, pe.Store, 20)
	for {
		st, err := projector.Status(ctx, pe.Admin, pe.Store, stream.Descriptor())
		if err != nil {
			t.Fatal(err)
		}
		if st[0].Name == stream.Name && st[0].LagEvents == 20 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("status never showed the lag: %+v", st[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv.Restart()
	pe.WaitCaughtUp(t, ctx, last, stream.Name)
	st, err := projector.Status(ctx, pe.Admin, pe.Store, stream.Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	if st[0].LagEvents != 0 || st[0].State != projector.StateRunning {
		t.Errorf("after NATS came back: %+v", st[0])
	}
	checkStream(t, cfg, published(t, ctx, pe.Store), readStream(t, ctx, cfg, 20))
}

// Tail filters by type on the server (one type) and here (several).
func TestTailFiltersByType(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, log := producedAndPublishing(t, ctx)
	waitMessages(t, ctx, cfg, len(log))
	for _, types := range [][]string{
		{publicevents.Type("session.started.v1")},
		{publicevents.Type("session.started.v1"), publicevents.Type("task.completed.v1")},
	} {
		var want []string
		for _, ev := range log {
			for _, typ := range types {
				if publicevents.Type(ev.Type) == typ {
					want = append(want, ev.ID.String())
				}
			}
		}
		var got []string
		rctx, stop := context.WithTimeout(ctx, 3*time.Second)
		err := jetstream.Tail(rctx, cfg, jetstream.TailOptions{Types: types, FromStart: true}, func(r jetstream.Received) error {
			got = append(got, r.Event.ID())
			if len(got) == len(want) {
				stop()
			}
			return nil
		})
		stop()
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("tail %v: got %v, want %v", types, got, want)
		}
	}
	if err := jetstream.Tail(ctx, cfg, jetstream.TailOptions{Types: []string{"authledger.session.refreshed.v1"}}, nil); err == nil {
		t.Error("tail of an internal-only type was accepted")
	}
}

// Config reports every problem at once; the subject of a type is the
// prefix and the internal name.
func TestConfigAndSubjects(t *testing.T) {
	t.Parallel()
	err := jetstream.Config{Stream: "A.B", SubjectPrefix: "x.>"}.Validate()
	if err == nil || !containsAll(err.Error(), "URL", "stream name", "subject prefix") {
		t.Errorf("validate: %v", err)
	}
	if err := (jetstream.Config{URL: "nats://127.0.0.1:4222"}).Validate(); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
	if s := jetstream.Subject("authledger", "authledger.session.started.v1"); s != "authledger.session.started.v1" {
		t.Errorf("subject %q", s)
	}
	if s := jetstream.Subject("acme.id", "authledger.task.failed.v1"); s != "acme.id.task.failed.v1" {
		t.Errorf("subject %q", s)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// An existing stream is left as the operator configured it, unless it
// does not capture our subjects: then the publish fails, saying so.
func TestAnExistingStreamIsKeptOrRefused(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc, err := nats.Connect(natstest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	j, err := js.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	e := expired(t)

	kept := config(t, natstest.URL(t))
	if _, err := j.CreateStream(ctx, js.StreamConfig{Name: kept.Stream, Subjects: []string{kept.SubjectPrefix + ".>"}, MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := newPublisher(t, kept).Publish(ctx, e); err != nil {
		t.Fatal(err)
	}
	s, err := j.Stream(ctx, kept.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if s.CachedInfo().Config.MaxAge != time.Hour {
		t.Errorf("the operator's max_age was changed to %s", s.CachedInfo().Config.MaxAge)
	}

	other := config(t, natstest.URL(t))
	if _, err := j.CreateStream(ctx, js.StreamConfig{Name: other.Stream, Subjects: []string{"elsewhere." + other.Stream}}); err != nil {
		t.Fatal(err)
	}
	if err := newPublisher(t, other).Publish(ctx, e); err == nil || !strings.Contains(err.Error(), "does not capture") {
		t.Errorf("publish to a stream of other subjects: %v", err)
	}
}
