package eventstoretest

import (
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/eventstore"
)

// interleaved appends to three streams in turn, one or more events at a
// time, and returns the ids in append order.
func (e *env) interleaved() (streams [3]string, order []uuid.UUID) {
	e.t.Helper()
	streams = [3]string{stream("alpha"), stream("beta"), stream("gamma")}
	next := map[string]eventstore.ExpectedRevision{}
	for _, s := range streams {
		next[s] = eventstore.NoStream{}
	}
	for round := 0; round < 3; round++ {
		for i, s := range streams {
			batch := evs("test.all.v1", 1+(round+i)%2)
			res := e.appendOK(s, next[s], batch...)
			next[s] = eventstore.Revision(res.NextRevision)
			order = append(order, dataIDs(batch)...)
		}
	}
	return streams, order
}

// checkPositions checks that positions along rs are non-zero and strictly
// increasing, and that their strings round-trip and sort the same way.
func checkPositions(e *env, what string, rs []eventstore.RecordedEvent) {
	e.t.Helper()
	for i, r := range rs {
		if r.Position.IsZero() {
			e.t.Fatalf("%s: event %d has the zero position", what, i)
		}
		if r.Position.Compare(eventstore.Position{}) <= 0 {
			e.t.Fatalf("%s: event %d position %v is not after the zero position", what, i, r.Position)
		}
		p, err := eventstore.ParsePosition(r.Position.String())
		if err != nil || p != r.Position {
			e.t.Fatalf("%s: position %v does not round-trip through %q: %v, %v", what, r.Position, r.Position.String(), p, err)
		}
		if i == 0 {
			continue
		}
		prev := rs[i-1].Position
		if prev.Compare(r.Position) >= 0 {
			e.t.Fatalf("%s: positions not strictly increasing at %d: %v then %v", what, i, prev, r.Position)
		}
		if prev.String() >= r.Position.String() {
			e.t.Fatalf("%s: position strings do not sort as positions at %d", what, i)
		}
	}
}

func readAllTests() []test {
	return []test{
		{"EmptyLog", func(e *env) {
			wantIDs(e.t, "ReadAll of an empty log", e.readAll(eventstore.ReadAllOptions{}))
			if h := e.head(); !h.IsZero() {
				e.t.Fatalf("Head of an empty log = %v, want the zero position", h)
			}
		}},
		{"AppendOrderAcrossStreams", func(e *env) {
			_, order := e.interleaved()
			all := e.readAll(eventstore.ReadAllOptions{})
			wantIDs(e.t, "ReadAll", all, order...)
			checkPositions(e, "ReadAll", all)
			// Each stream's events appear with their stream revisions.
			next := map[string]uint64{}
			for _, r := range all {
				if r.Revision != next[r.Stream] {
					e.t.Fatalf("ReadAll: %s has revision %d where %d was due", r.Stream, r.Revision, next[r.Stream])
				}
				next[r.Stream]++
			}
		}},
		{"SeesCompletedAppends", func(e *env) {
			// ReadAll reads the whole log: an event whose Append returned
			// before the call is in the result, even while an unrelated
			// transaction that started earlier is still running. (An adapter
			// may wait for that transaction to end, to return a stable
			// prefix; it may not leave the event out.)
			var tx Tx
			if e.f.Begin != nil {
				var err error
				if tx, err = e.f.Begin(e.ctx); err != nil {
					e.t.Fatalf("Begin: %v", err)
				}
				if err := tx.TouchUnrelated(e.ctx); err != nil {
					e.t.Fatalf("TouchUnrelated: %v", err)
				}
			}
			d := ev("test.seen.v1", 0)
			e.appendOK(stream("seen"), eventstore.NoStream{}, d)
			committed := make(chan error, 1)
			if tx != nil {
				go func() {
					time.Sleep(500 * time.Millisecond)
					committed <- tx.Commit(e.ctx)
				}()
			}
			got := e.readAll(eventstore.ReadAllOptions{})
			wantIDs(e.t, "ReadAll right after an append", got, d.ID)
			if tx != nil {
				if err := <-committed; err != nil {
					e.t.Fatalf("Commit: %v", err)
				}
			}
		}},
		{"StrictlyAfter", func(e *env) {
			_, order := e.interleaved()
			all := e.readAll(eventstore.ReadAllOptions{})
			for _, k := range []int{0, 1, 4, len(all) - 2, len(all) - 1} {
				got := e.readAll(eventstore.ReadAllOptions{After: all[k].Position})
				wantIDs(e.t, "ReadAll after event "+strconv.Itoa(k), got, order[k+1:]...)
			}
		}},
		{"AfterInsideAnAppend", func(e *env) {
			// A checkpoint may fall between events written together.
			s := stream("batch")
			batch := evs("test.batch.v1", 4)
			e.appendOK(s, eventstore.NoStream{}, batch...)
			tail := evs("test.batch.v1", 1)
			e.appendOK(s, eventstore.Revision(3), tail...)
			all := e.readAll(eventstore.ReadAllOptions{})
			got := e.readAll(eventstore.ReadAllOptions{After: all[1].Position})
			wantIDs(e.t, "ReadAll after the 2nd event of a 4-event append", got, batch[2].ID, batch[3].ID, tail[0].ID)
		}},
		{"Limit", func(e *env) {
			_, order := e.interleaved()
			got := e.readAll(eventstore.ReadAllOptions{Limit: 3})
			wantIDs(e.t, "ReadAll limit 3", got, order[:3]...)
			got = e.readAll(eventstore.ReadAllOptions{After: got[2].Position, Limit: 2})
			wantIDs(e.t, "ReadAll after the 3rd limit 2", got, order[3:5]...)
			got = e.readAll(eventstore.ReadAllOptions{Limit: len(order) + 10})
			wantIDs(e.t, "ReadAll limit beyond the log", got, order...)
		}},
		{"Paging", func(e *env) {
			_, order := e.interleaved()
			var got []eventstore.RecordedEvent
			var after eventstore.Position
			for pages := 0; ; pages++ {
				if pages > len(order)+1 {
					e.t.Fatalf("paging does not end")
				}
				page := e.readAll(eventstore.ReadAllOptions{After: after, Limit: 2})
				if len(page) > 2 {
					e.t.Fatalf("page of %d events with limit 2", len(page))
				}
				if len(page) == 0 {
					break
				}
				got = append(got, page...)
				after = page[len(page)-1].Position
			}
			wantIDs(e.t, "ReadAll in pages of 2", got, order...)
		}},
		{"FilterEventTypes", func(e *env) {
			// Types match exactly: not as prefixes, not as patterns.
			s := stream("types")
			batch := []eventstore.EventData{
				ev("user.registered.v1", 0), ev("user.registered.v10", 1), ev("user.registered", 2),
				ev("user.renamed.v1", 3), ev("user_registered.v1", 4), ev("user.registered.v1", 5), ev("USER.REGISTERED.V1", 6),
			}
			e.appendOK(s, eventstore.NoStream{}, batch...)
			e.appendOK(stream("other"), eventstore.NoStream{}, ev("user.renamed.v1", 7))
			f := eventstore.Filter{EventTypes: []string{"user.registered.v1"}}
			got := e.readAll(eventstore.ReadAllOptions{Filter: f})
			wantIDs(e.t, "ReadAll of type user.registered.v1", got, batch[0].ID, batch[5].ID)
			f = eventstore.Filter{EventTypes: []string{"user.renamed.v1", "user.registered"}}
			got = e.readAll(eventstore.ReadAllOptions{Filter: f})
			all := e.readAll(eventstore.ReadAllOptions{})
			wantIDs(e.t, "ReadAll of two types", got, batch[2].ID, batch[3].ID, all[len(all)-1].ID)
			// Limit counts matching events.
			got = e.readAll(eventstore.ReadAllOptions{Filter: f, Limit: 2})
			wantIDs(e.t, "ReadAll of two types limit 2", got, batch[2].ID, batch[3].ID)
			got = e.readAll(eventstore.ReadAllOptions{Filter: f, After: got[1].Position})
			wantIDs(e.t, "ReadAll of two types after the 2nd match", got, all[len(all)-1].ID)
		}},
		{"FilterStreamPrefixes", func(e *env) {
			// Prefixes are literal: '_' and '%' are not wildcards.
			names := []string{"user_1-" + stream("a"), "userX1-" + stream("b"), "user_10-" + stream("c"), "50%-" + stream("d"), "500-" + stream("e"), "task-" + stream("f")}
			byName := map[string]uuid.UUID{}
			for _, n := range names {
				d := ev("test.prefix.v1", 0)
				e.appendOK(n, eventstore.NoStream{}, d)
				byName[n] = d.ID
			}
			got := e.readAll(eventstore.ReadAllOptions{Filter: eventstore.Filter{StreamPrefixes: []string{"user_1-"}}})
			wantIDs(e.t, "ReadAll of prefix user_1-", got, byName[names[0]])
			got = e.readAll(eventstore.ReadAllOptions{Filter: eventstore.Filter{StreamPrefixes: []string{"user_1"}}})
			wantIDs(e.t, "ReadAll of prefix user_1", got, byName[names[0]], byName[names[2]])
			got = e.readAll(eventstore.ReadAllOptions{Filter: eventstore.Filter{StreamPrefixes: []string{"50%", "task-"}}})
			wantIDs(e.t, "ReadAll of prefixes 50% and task-", got, byName[names[3]], byName[names[5]])
		}},
		{"FilterBoth", func(e *env) {
			// Both parts must match.
			a, b := stream("acct"), stream("task")
			ea := []eventstore.EventData{ev("x.created.v1", 0), ev("x.closed.v1", 1)}
			eb := []eventstore.EventData{ev("x.created.v1", 2), ev("x.closed.v1", 3)}
			e.appendOK(a, eventstore.NoStream{}, ea...)
			e.appendOK(b, eventstore.NoStream{}, eb...)
			f := eventstore.Filter{EventTypes: []string{"x.closed.v1"}, StreamPrefixes: []string{"acct-"}}
			got := e.readAll(eventstore.ReadAllOptions{Filter: f})
			wantIDs(e.t, "ReadAll of type x.closed.v1 in acct-", got, ea[1].ID)
		}},
		{"Head", func(e *env) {
			// Head is what subscribers can see: it may trail an append for a
			// moment (an unrelated transaction still running), but it reaches
			// the last event and never passes it.
			headReaches := func(want eventstore.Position) eventstore.Position {
				e.t.Helper()
				var h eventstore.Position
				eventually(e.t, e.ctx, "Head reaching "+want.String(), func() bool {
					h = e.head()
					if h.Compare(want) > 0 {
						e.t.Fatalf("Head = %v, past the last event %v", h, want)
					}
					return h == want
				})
				return h
			}
			a := stream("head")
			res := e.appendOK(a, eventstore.NoStream{}, evs("test.head.v1", 2)...)
			headReaches(res.Position)
			res = e.appendOK(stream("head"), eventstore.NoStream{}, evs("test.head.v1", 1)...)
			all := e.readAll(eventstore.ReadAllOptions{})
			if all[len(all)-1].Position != res.Position {
				e.t.Fatalf("the last event of ReadAll is at %v, the last append at %v", all[len(all)-1].Position, res.Position)
			}
			h := headReaches(res.Position)
			if got := e.readAll(eventstore.ReadAllOptions{After: h}); len(got) != 0 {
				e.t.Fatalf("ReadAll after Head returned %d events", len(got))
			}
		}},
	}
}
