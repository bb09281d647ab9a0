package eventstoretest

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/authledger/authledger/eventstore"
)

// sentinel appends one event to a stream of its own (matching prefix and
// type when given) and returns it, so that a test can wait for it and then
// know that everything before it was delivered.
func (e *env) sentinel(prefix, typ string) eventstore.EventData {
	e.t.Helper()
	d := ev(typ, -1)
	e.appendOK(stream(prefix), eventstore.NoStream{}, d)
	return d
}

// checkCheckpoints checks that every checkpoint a subscription reported
// was non-decreasing and that every matching event at or before it had
// already been delivered.
func checkCheckpoints(e *env, sub *subscription, f eventstore.Filter, all []eventstore.RecordedEvent) {
	e.t.Helper()
	sub.mu.Lock()
	cps := append([]checkpointSeen(nil), sub.checkpoints...)
	sub.mu.Unlock()
	var prev eventstore.Position
	for _, c := range cps {
		if c.pos.Compare(prev) < 0 {
			e.t.Errorf("OnCheckpoint went backwards: %v after %v", c.pos, prev)
		}
		prev = c.pos
		n := 0
		for _, r := range all {
			if r.Position.Compare(c.pos) <= 0 && f.Matches(r.Stream, r.Type) {
				n++
			}
		}
		if n > c.delivered {
			e.t.Errorf("OnCheckpoint(%v) with %d events delivered, but %d matching events lie at or before it", c.pos, c.delivered, n)
		}
	}
}

func subscribeTests() []test {
	return []test{
		{"CatchUpFromStart", func(e *env) {
			e.interleaved()
			sub := subscribe(e.t, e.ctx, e.s, eventstore.SubscribeOptions{})
			end := e.sentinel("end", "test.end.v1")
			sub.waitFor(e.ctx, end.ID)
			got := sub.stop()
			sameRecorded(e.t, "delivered vs ReadAll", got, e.readAll(eventstore.ReadAllOptions{}))
		}},
		{"CatchUpFromCheckpoint", func(e *env) {
			e.interleaved()
			all := e.readAll(eventstore.ReadAllOptions{})
			for _, k := range []int{0, 3, len(all) - 2} {
				sub := subscribe(e.t, e.ctx, e.s, eventstore.SubscribeOptions{After: all[k].Position})
				got := sub.waitFor(e.ctx, all[len(all)-1].ID)
				sub.stop()
				sameRecorded(e.t, "delivered after event "+strconv.Itoa(k), got, all[k+1:])
			}
		}},
		{"CheckpointInsideAnAppend", func(e *env) {
			s := stream("batch")
			batch := evs("test.batch.v1", 3)
			e.appendOK(s, eventstore.NoStream{}, batch...)
			all := e.readAll(eventstore.ReadAllOptions{})
			sub := subscribe(e.t, e.ctx, e.s, eventstore.SubscribeOptions{After: all[1].Position})
			end := e.sentinel("end", "test.end.v1")
			sub.waitFor(e.ctx, end.ID)
			got := sub.stop()
			wantIDs(e.t, "delivered after the 2nd event of a 3-event append", got, batch[2].ID, end.ID)
		}},
		{"CheckpointAtHead", func(e *env) {
			// Resuming from the last event delivers nothing old, then the new.
			e.interleaved()
			h := e.head()
			sub := subscribe(e.t, e.ctx, e.s, eventstore.SubscribeOptions{After: h})
			end := e.sentinel("end", "test.end.v1")
			sub.waitFor(e.ctx, end.ID)
			wantIDs(e.t, "delivered after Head", sub.stop(), end.ID)
		}},
		{"Live", func(e *env) {
			// Subscribed to an empty log: everything arrives live.
			sub := subscribe(e.t, e.ctx, e.s, eventstore.SubscribeOptions{})
			s := stream("live")
			var want []eventstore.EventData
			next := eventstore.ExpectedRevision(eventstore.NoStream{})
			for i := 0; i < 4; i++ {
				batch := evs("test.live.v1", 1+i%3)
				res := e.appendOK(s, next, batch...)
				next = eventstore.Revision(res.NextRevision)
				want = append(want, batch...)
				got := sub.waitFor(e.ctx, batch[len(batch)-1].ID)
				wantIDs(e.t, "delivered live", got, dataIDs(want)...)
			}
			sameRecorded(e.t, "delivered vs ReadAll", sub.stop(), e.readAll(eventstore.ReadAllOptions{}))
		}},
		{"CatchUpThenLive", func(e *env) {
			e.interleaved()
			sub := subscribe(e.t, e.ctx, e.s, eventstore.SubscribeOptions{})
			all := e.readAll(eventstore.ReadAllOptions{})
			sub.waitFor(e.ctx, all[len(all)-1].ID)
			e.interleaved()
			end := e.sentinel("end", "test.end.v1")
			sub.waitFor(e.ctx, end.ID)
			sameRecorded(e.t, "delivered vs ReadAll", sub.stop(), e.readAll(eventstore.ReadAllOptions{}))
		}},
		{"FilterEventTypes", func(e *env) {
			f := eventstore.Filter{EventTypes: []string{"test.wanted.v1", "test.end.v1"}}
			mixed := func() {
				s := stream("mixed")
				e.appendOK(s, eventstore.NoStream{}, ev("test.wanted.v1", 0), ev("test.unwanted.v1", 1), ev("test.wanted.v10", 2))
				e.appendOK(s, eventstore.Revision(2), ev("test.unwanted.v1", 3), ev("test.wanted.v1", 4))
				e.appendOK(stream("noise"), eventstore.NoStream{}, evs("test.unwanted.v1", 3)...)
			}
			mixed()
			sub := subscribe(e.t, e.ctx, e.s, eventstore.SubscribeOptions{Filter: f})
			mixed() // possibly live
			end := e.sentinel("end", "test.end.v1")
			sub.waitFor(e.ctx, end.ID)
			got := sub.stop()
			want := e.readAll(eventstore.ReadAllOptions{Filter: f})
			sameRecorded(e.t, "delivered vs ReadAll with the filter", got, want)
			if len(want) != 5 {
				e.t.Fatalf("filtered ReadAll has %d events, want 5", len(want))
			}
			checkCheckpoints(e, sub, f, e.readAll(eventstore.ReadAllOptions{}))
		}},
		{"FilterStreamPrefixes", func(e *env) {
			f := eventstore.Filter{StreamPrefixes: []string{"acct_", "end-"}}
			mixed := func() {
				e.appendOK("acct_"+stream("x"), eventstore.NoStream{}, evs("test.a.v1", 2)...)
				e.appendOK("acctX"+stream("x"), eventstore.NoStream{}, evs("test.a.v1", 1)...)
				e.appendOK(stream("task"), eventstore.NoStream{}, evs("test.a.v1", 2)...)
			}
			mixed()
			sub := subscribe(e.t, e.ctx, e.s, eventstore.SubscribeOptions{Filter: f})
			mixed()
			end := e.sentinel("end", "test.end.v1")
			sub.waitFor(e.ctx, end.ID)
			got := sub.stop()
			want := e.readAll(eventstore.ReadAllOptions{Filter: f})
			sameRecorded(e.t, "delivered vs ReadAll with the filter", got, want)
			if len(want) != 5 {
				e.t.Fatalf("filtered ReadAll has %d events, want 5", len(want))
			}
			checkCheckpoints(e, sub, f, e.readAll(eventstore.ReadAllOptions{}))
		}},
		{"HandlerErrorEndsSubscription", func(e *env) {
			e.interleaved()
			all := e.readAll(eventstore.ReadAllOptions{})
			sub := subscribeFailing(e.t, e.ctx, e.s, eventstore.SubscribeOptions{}, 3)
			err := sub.wait()
			if !errors.Is(err, errHandler) {
				e.t.Fatalf("Subscribe returned %v after the handler failed, want the handler's error", err)
			}
			got := sub.delivered()
			sameRecorded(e.t, "handled before the failure", got, all[:3])
			// The failed event counts as not handled: resuming from the last
			// handled one delivers it again.
			again := subscribe(e.t, e.ctx, e.s, eventstore.SubscribeOptions{After: got[2].Position})
			again.waitFor(e.ctx, all[len(all)-1].ID)
			sameRecorded(e.t, "resumed after the failure", again.stop(), all[3:])
		}},
		{"CancelReturnsPromptly", func(e *env) {
			e.interleaved()
			all := e.readAll(eventstore.ReadAllOptions{})
			sub := subscribe(e.t, e.ctx, e.s, eventstore.SubscribeOptions{})
			sub.waitFor(e.ctx, all[len(all)-1].ID)
			// Idle and live now: stop must still return within the guard.
			sub.stop()
			// A context that is already done ends Subscribe at once.
			ctx, cancel := context.WithCancel(e.ctx)
			cancel()
			done := make(chan error, 1)
			go func() {
				done <- e.s.Subscribe(ctx, eventstore.SubscribeOptions{}, func(context.Context, eventstore.RecordedEvent) error { return nil })
			}()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					e.t.Fatalf("Subscribe with a cancelled context returned %v, want context.Canceled", err)
				}
			case <-time.After(guard):
				e.t.Fatalf("Subscribe with a cancelled context did not return within %v", guard)
			}
		}},
		{"CrossInstance", func(e *env) {
			if e.f.Reopen == nil {
				e.t.Skip("the fixture has no Reopen hook")
			}
			other := e.f.Reopen(e.t)
			// Each side subscribes, catches up, and then must see what the
			// other side appends.
			first := e.sentinel("start", "test.start.v1")
			subA := subscribe(e.t, e.ctx, e.s, eventstore.SubscribeOptions{})
			subB := subscribe(e.t, e.ctx, other, eventstore.SubscribeOptions{})
			subA.waitFor(e.ctx, first.ID)
			subB.waitFor(e.ctx, first.ID)
			// Give both time to go idle, so the next events arrive live.
			time.Sleep(200 * time.Millisecond)
			viaB := ev("test.cross.v1", 1)
			if _, err := other.Append(e.ctx, stream("cross"), eventstore.NoStream{}, viaB); err != nil {
				e.t.Fatalf("Append through the second instance: %v", err)
			}
			subA.waitFor(e.ctx, viaB.ID)
			time.Sleep(200 * time.Millisecond)
			viaA := e.sentinel("cross", "test.cross.v1")
			subB.waitFor(e.ctx, viaA.ID)
			// Delivery, not which instance is first: an instance's own
			// append may reach its subscriber after the other's NOTIFY.
			subA.waitFor(e.ctx, viaA.ID)
			all := e.readAll(eventstore.ReadAllOptions{})
			sameRecorded(e.t, "delivered on the first instance", subA.stop(), all)
			sameRecorded(e.t, "delivered on the second instance", subB.stop(), all)
			allB, err := other.ReadAll(e.ctx, eventstore.ReadAllOptions{})
			if err != nil {
				e.t.Fatalf("ReadAll through the second instance: %v", err)
			}
			sameRecorded(e.t, "ReadAll on both instances", allB, all)
		}},
	}
}
