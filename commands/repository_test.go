package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/migrations"
	"github.com/authledger/authledger/test/pgtest"
)

const testHash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNo"

func newRepo(t testing.TB) (*commands.Repository[*user.User], eventstore.Store) {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	if err := migrations.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	store, err := pg.Open(ctx, pg.Config{ConnString: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	reg := events.NewRegistry()
	if err := user.RegisterEvents(reg); err != nil {
		t.Fatal(err)
	}
	repo, err := commands.NewRepository(store, reg, user.FromHistory)
	if err != nil {
		t.Fatal(err)
	}
	return repo, store
}

func TestRepositoryRetriesConflictsAndCarriesMetadata(t *testing.T) {
	t.Parallel()
	repo, store := newRepo(t)
	ctx := context.Background()
	id := uuid.New()
	u, err := user.Register(id, "alice@example.com", "Alice", testHash, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	meta := commands.Meta{CorrelationID: "req-1", Actor: events.Actor{Kind: events.ActorAnonymous}}
	if _, err := repo.Append(ctx, user.StreamName(id), 0, meta, u.Changes()); err != nil {
		t.Fatal(err)
	}
	// A second create at version 0 conflicts.
	if _, err := repo.Append(ctx, user.StreamName(id), 0, meta, u.Changes()); !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		t.Fatalf("want wrong expected version, got %v", err)
	}
	policy := user.DefaultThrottlePolicy()
	policy.MaxFailures, policy.AccountMaxFailures = 100, 100
	// Concurrent updates all land: each conflict reloads and decides again.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			_, err := repo.Update(ctx, user.StreamName(id), meta, func(u *user.User) error {
				return u.RecordLoginFailure(user.LoginAttempt{Source: "192.0.2.1"}, time.Now(), policy)
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	recs, err := store.ReadStream(ctx, user.StreamName(id), eventstore.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) < 5 {
		t.Fatalf("want registration + 4 failures, got %d events", len(recs))
	}
	var md events.Metadata
	if err := json.Unmarshal(recs[len(recs)-1].Metadata, &md); err != nil {
		t.Fatal(err)
	}
	if md.CorrelationID != "req-1" || md.EventID != recs[len(recs)-1].ID || md.OccurredAt.IsZero() {
		t.Fatalf("metadata %+v", md)
	}
}

// A summarized repository folds from the stream's last summary, however
// many pages back it is, and the whole stream when there is none.
func TestSummarizedRepositoryLoadsFromTheLastSummary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, store := newRepo(t)
	reg := events.NewRegistry()
	if err := task.RegisterEvents(reg); err != nil {
		t.Fatal(err)
	}
	type call struct{ base, n int }
	var calls []call
	repo, err := commands.NewSummarizedRepository(store, reg, task.EventQuotaSummarized,
		func(base int, history []events.Event) (*task.Quota, error) {
			calls = append(calls, call{base, len(history)})
			return task.QuotaFrom(base, history)
		})
	if err != nil {
		t.Fatal(err)
	}
	owner := uuid.New()
	stream := task.QuotaStream(owner)
	meta := commands.Meta{Actor: events.Actor{Kind: events.ActorService, ID: "test"}}
	version := 0
	appendAll := func(evs ...events.Event) {
		t.Helper()
		for len(evs) > 0 {
			n := min(len(evs), 100)
			if _, err := repo.Append(ctx, stream, version, meta, evs[:n]); err != nil {
				t.Fatal(err)
			}
			version += n
			evs = evs[n:]
		}
	}
	churn := func(n int) []events.Event {
		var out []events.Event
		for i := range n / 2 {
			id := uuid.New()
			out = append(out, task.QuotaReserved{OwnerID: owner, TaskID: id, Bytes: int64(i), ReservedAt: time.Now()},
				task.QuotaReleased{OwnerID: owner, TaskID: id, Bytes: int64(i), Active: true, ReleasedAt: time.Now()})
		}
		return out
	}
	load := func(wantBase, wantN int) *task.Quota {
		t.Helper()
		calls = nil
		q, err := repo.Load(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		if len(calls) != 1 || calls[0] != (call{wantBase, wantN}) || q.Version() != version {
			t.Fatalf("folded %+v to version %d; want from %d, %d events, version %d", calls, q.Version(), wantBase, wantN, version)
		}
		return q
	}

	load(0, 0)
	appendAll(churn(600)...)
	before := load(0, 600)
	kept := task.QuotaHeld{TaskID: uuid.New(), Bytes: 9, Active: true, Stored: true, ReservedAt: time.Now().UTC()}
	appendAll(task.QuotaSummarized{OwnerID: owner, Held: []task.QuotaHeld{kept}, SummarizedAt: time.Now()})
	load(600, 1)
	appendAll(churn(300)...)
	q := load(600, 301)
	// The churn releases only activity: its bytes stay stored.
	if before.ActiveTasks() != 0 || before.StoredBytes() != 299*300/2 {
		t.Fatalf("the whole stream: %d active, %d bytes", before.ActiveTasks(), before.StoredBytes())
	}
	if q.ActiveTasks() != 1 || q.StoredBytes() != 9+149*150/2 {
		t.Fatalf("from the summary: %d active, %d bytes", q.ActiveTasks(), q.StoredBytes())
	}
}
