package eventstoretest

import (
	"errors"
	"time"

	"github.com/authledger/authledger/eventstore"
)

// begin opens a test-held transaction, skipping the test for backends
// without one (EventStoreDB).
func (e *env) begin() Tx {
	e.t.Helper()
	if e.f.Begin == nil {
		e.t.Skip("the fixture has no Begin hook (no client-side transactions)")
	}
	tx, err := e.f.Begin(e.ctx)
	if err != nil {
		e.t.Fatalf("Begin: %v", err)
	}
	e.t.Cleanup(func() { _ = tx.Rollback(e.ctx) })
	return tx
}

func txTests() []test {
	return []test{
		{"CommitMakesVisible", func(e *env) {
			tx := e.begin()
			s := stream("tx")
			events := evs("test.tx.v1", 2)
			res, err := tx.Append(e.ctx, s, eventstore.NoStream{}, events...)
			if err != nil {
				e.t.Fatalf("Tx.Append: %v", err)
			}
			if err := tx.Commit(e.ctx); err != nil {
				e.t.Fatalf("Commit: %v", err)
			}
			e.appended(s, res, 0, events)
		}},
		{"RollbackWritesNothing", func(e *env) {
			tx := e.begin()
			s := stream("tx")
			if err := tx.TouchUnrelated(e.ctx); err != nil {
				e.t.Fatalf("TouchUnrelated: %v", err)
			}
			if _, err := tx.Append(e.ctx, s, eventstore.NoStream{}, evs("test.tx.v1", 2)...); err != nil {
				e.t.Fatalf("Tx.Append: %v", err)
			}
			if err := tx.Rollback(e.ctx); err != nil {
				e.t.Fatalf("Rollback: %v", err)
			}
			e.unchanged(s, 0, 0)
			events := evs("test.tx.v1", 1)
			e.appended(s, e.appendOK(s, eventstore.NoStream{}, events...), 0, events)
		}},
		{"WrongExpectedVersion", func(e *env) {
			s := e.prepared("tx", 2)
			tx := e.begin()
			_, err := tx.Append(e.ctx, s, eventstore.Revision(0), evs("test.tx.v1", 1)...)
			wantWrongVersion(e.t, err, s, eventstore.Revision(0), true, 1)
			_ = tx.Rollback(e.ctx)
			e.unchanged(s, 2, 2)
		}},
		{"OpenTransactionHoldsBackSubscribers", func(e *env) {
			// T1 takes its place in the log (it writes first) but commits
			// after a later append: no subscriber may see the later event
			// before T1's, and the final order puts T1's event first.
			tx := e.begin()
			sub := subscribe(e.t, e.ctx, e.s, eventstore.SubscribeOptions{})
			if err := tx.TouchUnrelated(e.ctx); err != nil {
				e.t.Fatalf("TouchUnrelated: %v", err)
			}
			early := ev("test.early.v1", 0)
			if _, err := tx.Append(e.ctx, stream("early"), eventstore.NoStream{}, early); err != nil {
				e.t.Fatalf("Tx.Append: %v", err)
			}
			late := ev("test.late.v1", 1)
			lateRes := e.appendOK(stream("late"), eventstore.NoStream{}, late)
			if h := e.head(); h.Compare(lateRes.Position) >= 0 {
				e.t.Errorf("Head = %v while an earlier transaction is open, but subscribers cannot see the event at %v yet", h, lateRes.Position)
			}
			// Leave the wrong adapter time to deliver too early.
			time.Sleep(500 * time.Millisecond)
			if got := sub.delivered(); len(got) != 0 {
				e.t.Errorf("delivered %s while an earlier transaction was open", describe(got))
			}
			if err := tx.Commit(e.ctx); err != nil {
				e.t.Fatalf("Commit: %v", err)
			}
			end := e.sentinel("end", "test.end.v1")
			sub.waitFor(e.ctx, end.ID)
			got := sub.stop()
			all := e.readAll(eventstore.ReadAllOptions{})
			sameRecorded(e.t, "delivered vs ReadAll", got, all)
			wantIDs(e.t, "ReadAll", all, early.ID, late.ID, end.ID)
		}},
		{"StreamGuard", func(e *env) {
			// T1 holds an older place in the log; T2 writes the stream and
			// commits; T1 then appends to the stream at the right revision.
			// Committing T1 would put revision 1 before revision 0 in $all, so
			// the append must ask for a new transaction (or, if it succeeds,
			// the log must still hold the revisions in order).
			s := stream("guard")
			t1 := e.begin()
			if err := t1.TouchUnrelated(e.ctx); err != nil {
				e.t.Fatalf("TouchUnrelated: %v", err)
			}
			e.appendOK(s, eventstore.NoStream{}, evs("test.guard.v1", 1)...)
			second := evs("test.guard.v1", 1)
			_, err := t1.Append(e.ctx, s, eventstore.Revision(0), second...)
			switch {
			case errors.Is(err, eventstore.ErrRetryInNewTransaction):
				_ = t1.Rollback(e.ctx)
				t2 := e.begin()
				res, err := t2.Append(e.ctx, s, eventstore.Revision(0), second...)
				if err != nil {
					e.t.Fatalf("Tx.Append in a new transaction: %v", err)
				}
				if err := t2.Commit(e.ctx); err != nil {
					e.t.Fatalf("Commit: %v", err)
				}
				e.appended(s, res, 1, second)
			case err == nil:
				if err := t1.Commit(e.ctx); err != nil {
					e.t.Fatalf("Commit: %v", err)
				}
			default:
				e.t.Fatalf("Tx.Append behind a later writer of the stream: %v, want success or ErrRetryInNewTransaction", err)
			}
			var revs []uint64
			for _, r := range e.readAll(eventstore.ReadAllOptions{}) {
				if r.Stream == s {
					revs = append(revs, r.Revision)
				}
			}
			if len(revs) != 2 || revs[0] != 0 || revs[1] != 1 {
				e.t.Fatalf("ReadAll holds the stream's revisions as %v, want [0 1]", revs)
			}
		}},
	}
}
