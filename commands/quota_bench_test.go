package commands_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/events"
)

// BenchmarkQuotaLoad loads the quota stream of a user with a long task
// history (10,000 tasks created and deleted, 100 still stored: 30,202
// events) as a creation does, folding the whole stream and folding from
// its last summary, 100 events back (ADR 0003):
//
//	scripts/pg.sh with-temp go test ./commands -run '^$' -bench QuotaLoad
func BenchmarkQuotaLoad(b *testing.B) {
	ctx := context.Background()
	_, store := newRepo(b)
	reg := events.NewRegistry()
	if err := task.RegisterEvents(reg); err != nil {
		b.Fatal(err)
	}
	whole, err := commands.NewRepository(store, reg, task.QuotaFromHistory)
	if err != nil {
		b.Fatal(err)
	}
	summarized, err := commands.NewSummarizedRepository(store, reg, task.EventQuotaSummarized, task.QuotaFrom)
	if err != nil {
		b.Fatal(err)
	}
	owner := uuid.New()
	stream := task.QuotaStream(owner)
	meta := commands.Meta{Actor: events.Actor{Kind: events.ActorService, ID: "bench"}}
	now := time.Now()
	var evs []events.Event
	for range 100 {
		evs = append(evs, task.QuotaReserved{OwnerID: owner, TaskID: uuid.New(), Bytes: 1000, ReservedAt: now})
	}
	for range 10_000 {
		id := uuid.New()
		evs = append(evs, task.QuotaReserved{OwnerID: owner, TaskID: id, Bytes: 1000, ReservedAt: now},
			task.QuotaReleased{OwnerID: owner, TaskID: id, Bytes: 1000, Active: true, ReleasedAt: now},
			task.QuotaReleased{OwnerID: owner, TaskID: id, Bytes: 1000, Stored: true, ReleasedAt: now})
	}
	// A summary as a creation records it, then 100 more events.
	all, err := task.QuotaFromHistory(evs)
	if err != nil {
		b.Fatal(err)
	}
	if err := all.Reserve(owner, uuid.New(), 1000, task.Limits{MaxActiveTasks: 1000, MaxStoredBytes: 1 << 40}, now); err != nil {
		b.Fatal(err)
	}
	if len(all.Changes()) != 2 {
		b.Fatalf("the creation recorded %d events, not a reservation and a summary", len(all.Changes()))
	}
	evs = append(evs, all.Changes()...)
	for range 50 {
		id := uuid.New()
		evs = append(evs, task.QuotaReserved{OwnerID: owner, TaskID: id, ReservedAt: now},
			task.QuotaReleased{OwnerID: owner, TaskID: id, Active: true, Stored: true, ReleasedAt: now})
	}
	for version := 0; version < len(evs); version += 500 {
		if _, err := whole.Append(ctx, stream, version, meta, evs[version:min(version+500, len(evs))]); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		repo *commands.Repository[*task.Quota]
	}{{"whole-stream", whole}, {"from-summary", summarized}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				q, err := c.repo.Load(ctx, stream)
				if err != nil {
					b.Fatal(err)
				}
				if q.Version() != len(evs) || q.StoredBytes() != 101*1000 {
					b.Fatalf("loaded version %d, %d bytes", q.Version(), q.StoredBytes())
				}
			}
		})
	}
}
