// Package taskstest builds task streams for tests of the task read side:
// real task events (domain/task types, real metadata) appended to the real
// event store, one Builder per task.
package taskstest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projtest"
)

// Builder appends one task's lifecycle, event by event, each at the task's
// current revision (as the commands would).
type Builder struct {
	t     testing.TB
	ctx   context.Context
	store eventstore.Store
	ID    uuid.UUID
	Owner uuid.UUID
	// Files are the files attached at creation.
	Files []task.FileAttached
	// At is the time the next event says it happened; each event moves it
	// on by a second.
	At      time.Time
	attempt int
	next    eventstore.ExpectedRevision
	// Last is the log position of the last append.
	Last eventstore.Position
}

// Blob is the SHA-256 name of a file's content in tests.
func Blob(content string) string {
	s := sha256.Sum256([]byte(content))
	return hex.EncodeToString(s[:])
}

func (b *Builder) append(evs ...events.Event) *Builder {
	b.t.Helper()
	data := make([]eventstore.EventData, 0, len(evs))
	for _, e := range evs {
		data = append(data, projtest.Event(e.EventName(), e, b.Owner.String()))
	}
	res, err := b.store.Append(b.ctx, task.StreamName(b.ID), b.next, data...)
	if err != nil {
		b.t.Fatalf("append %s to %s: %v", evs[0].EventName(), task.StreamName(b.ID), err)
	}
	b.next = eventstore.Revision(res.NextRevision)
	b.Last = res.Position
	return b
}

func (b *Builder) tick() time.Time {
	t := b.At
	b.At = b.At.Add(time.Second)
	return t
}

// Create appends task.created.v1 with one task.file_attached.v1 per name
// (content "content of <name>", so equal names share a blob), in one append.
func Create(t testing.TB, ctx context.Context, store eventstore.Store, owner uuid.UUID, at time.Time, names ...string) *Builder {
	t.Helper()
	b := &Builder{t: t, ctx: ctx, store: store, ID: uuid.New(), Owner: owner, At: at, next: eventstore.NoStream{}}
	created := b.tick()
	evs := []events.Event{task.Created{TaskID: b.ID, OwnerID: owner, MaxAttempts: task.DefaultMaxAttempts, CreatedAt: created}}
	for i, n := range names {
		f := task.FileAttached{TaskID: b.ID, OwnerID: owner, FileID: uuid.New(), Name: n, ContentType: "image/png",
			Size: int64(100 * (i + 1)), SHA256: Blob("content of " + n)}
		b.Files = append(b.Files, f)
		evs = append(evs, f)
	}
	return b.append(evs...)
}

// Claim appends task.claimed.v1 with a lease of lease from now (the
// builder's clock).
func (b *Builder) Claim(worker string, lease time.Duration) *Builder {
	b.attempt++
	now := b.tick()
	return b.append(task.Claimed{TaskID: b.ID, OwnerID: b.Owner, WorkerID: worker, Attempt: b.attempt, LeaseUntil: now.Add(lease), ClaimedAt: now})
}

// Renew appends task.claim_renewed.v1.
func (b *Builder) Renew(worker string, until time.Time) *Builder {
	return b.append(task.ClaimRenewed{TaskID: b.ID, OwnerID: b.Owner, WorkerID: worker, LeaseUntil: until, RenewedAt: b.tick()})
}

// Release appends task.claim_released.v1.
func (b *Builder) Release(worker string) *Builder {
	return b.append(task.ClaimReleased{TaskID: b.ID, OwnerID: b.Owner, WorkerID: worker, Reason: task.ReleaseReasonLeaseExpired, ReleasedAt: b.tick()})
}

// Complete appends task.completed.v1.
func (b *Builder) Complete(worker, result string, ms int64) *Builder {
	return b.append(task.Completed{TaskID: b.ID, OwnerID: b.Owner, WorkerID: worker, Result: result, ProcessingMS: ms, CompletedAt: b.tick()})
}

// Fail appends task.failed.v1.
func (b *Builder) Fail(worker, msg string, ms int64, final bool) *Builder {
	return b.append(task.Failed{TaskID: b.ID, OwnerID: b.Owner, WorkerID: worker, Error: msg, Attempt: b.attempt,
		ProcessingMS: ms, Final: final, FailedAt: b.tick()})
}

// Retry appends task.retried.v1.
func (b *Builder) Retry() *Builder {
	return b.append(task.Retried{TaskID: b.ID, OwnerID: b.Owner, RetriedAt: b.tick()})
}

// Cancel appends task.cancelled.v1.
func (b *Builder) Cancel() *Builder {
	return b.append(task.Cancelled{TaskID: b.ID, OwnerID: b.Owner, By: b.Owner, CancelledAt: b.tick()})
}

// Delete appends task.deleted.v1 by the owner.
func (b *Builder) Delete() *Builder {
	return b.append(task.Deleted{TaskID: b.ID, OwnerID: b.Owner, By: b.Owner, DeletedAt: b.tick()})
}

// Expire appends task.expired.v1.
func (b *Builder) Expire() *Builder {
	return b.append(task.Expired{TaskID: b.ID, OwnerID: b.Owner, ExpiredAt: b.tick()})
}
