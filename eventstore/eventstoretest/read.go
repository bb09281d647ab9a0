package eventstoretest

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/eventstore"
)

// fiveEvents appends revisions 0..4 to a new stream in two appends, with an
// event of another stream in between, and returns the stream and ids.
func (e *env) fiveEvents() (string, []uuid.UUID) {
	e.t.Helper()
	s := stream("read")
	a, b := evs("test.read.v1", 3), evs("test.read.v1", 2)
	e.appendOK(s, eventstore.NoStream{}, a...)
	e.appendOK(stream("noise"), eventstore.NoStream{}, evs("test.noise.v1", 1)...)
	e.appendOK(s, eventstore.Revision(2), b...)
	return s, append(dataIDs(a), dataIDs(b)...)
}

func readStreamTests() []test {
	fw := eventstore.Forwards
	bw := eventstore.Backwards
	return []test{
		{"Forwards", func(e *env) {
			s, id := e.fiveEvents()
			got := e.readStream(s, eventstore.ReadStreamOptions{Direction: fw})
			wantIDs(e.t, "forwards from 0", got, id...)
			wantRevisions(e.t, "forwards from 0", got, 0, 1, 2, 3, 4)
		}},
		{"ForwardsFromInclusive", func(e *env) {
			s, id := e.fiveEvents()
			got := e.readStream(s, eventstore.ReadStreamOptions{Direction: fw, From: 2})
			wantIDs(e.t, "forwards from 2", got, id[2:]...)
			got = e.readStream(s, eventstore.ReadStreamOptions{Direction: fw, From: 4})
			wantIDs(e.t, "forwards from 4", got, id[4])
		}},
		{"ForwardsLimit", func(e *env) {
			s, id := e.fiveEvents()
			got := e.readStream(s, eventstore.ReadStreamOptions{Direction: fw, Limit: 2})
			wantIDs(e.t, "forwards limit 2", got, id[:2]...)
			got = e.readStream(s, eventstore.ReadStreamOptions{Direction: fw, From: 1, Limit: 3})
			wantIDs(e.t, "forwards from 1 limit 3", got, id[1:4]...)
			got = e.readStream(s, eventstore.ReadStreamOptions{Direction: fw, From: 3, Limit: 10})
			wantIDs(e.t, "forwards from 3 limit 10", got, id[3:]...)
		}},
		{"ForwardsPastEnd", func(e *env) {
			s, _ := e.fiveEvents()
			got := e.readStream(s, eventstore.ReadStreamOptions{Direction: fw, From: 5})
			wantIDs(e.t, "forwards from 5 of a 5-event stream", got)
			// Forwards from End is left open: the port says End is the last
			// event (so [last]), EventStoreDB reads nothing.
		}},
		{"BackwardsFromEnd", func(e *env) {
			s, id := e.fiveEvents()
			got := e.readStream(s, eventstore.ReadStreamOptions{Direction: bw, From: eventstore.End})
			wantIDs(e.t, "backwards from End", got, id[4], id[3], id[2], id[1], id[0])
			wantRevisions(e.t, "backwards from End", got, 4, 3, 2, 1, 0)
			got = e.readStream(s, eventstore.ReadStreamOptions{Direction: bw, From: eventstore.End, Limit: 1})
			wantIDs(e.t, "backwards from End limit 1 (the last event)", got, id[4])
		}},
		{"BackwardsFromInclusive", func(e *env) {
			s, id := e.fiveEvents()
			got := e.readStream(s, eventstore.ReadStreamOptions{Direction: bw, From: 2})
			wantIDs(e.t, "backwards from 2", got, id[2], id[1], id[0])
			got = e.readStream(s, eventstore.ReadStreamOptions{Direction: bw, From: 0})
			wantIDs(e.t, "backwards from 0", got, id[0])
			got = e.readStream(s, eventstore.ReadStreamOptions{Direction: bw, From: 3, Limit: 2})
			wantIDs(e.t, "backwards from 3 limit 2", got, id[3], id[2])
			got = e.readStream(s, eventstore.ReadStreamOptions{Direction: bw, From: 100})
			wantIDs(e.t, "backwards from 100 of a 5-event stream", got, id[4], id[3], id[2], id[1], id[0])
		}},
		{"MissingStream", func(e *env) {
			s, _ := e.fiveEvents()
			for _, name := range []string{stream("missing"), s[:len(s)-1], s + "x"} {
				for _, d := range []eventstore.Direction{fw, bw} {
					from := uint64(0)
					if d == bw {
						from = eventstore.End
					}
					_, err := e.s.ReadStream(e.ctx, name, eventstore.ReadStreamOptions{Direction: d, From: from})
					wantErrIs(e.t, err, eventstore.ErrStreamNotFound, "ReadStream of a stream that never had an event")
				}
			}
		}},
		{"RecordedFields", func(e *env) {
			s := stream("fields")
			before := time.Now()
			events := []eventstore.EventData{
				{
					ID:       uuid.New(),
					Type:     "user.registered.v1",
					Data:     json.RawMessage(`{"email":"ada@example.com","name":"Ada Lovelace ✓ \u00e9","age":36,"tags":["a","b"],"nested":{"ok":true,"none":null,"pi":3.25}}`),
					Metadata: json.RawMessage(`{"correlationId":"req-1","actor":{"kind":"user","id":"u-1"},"occurredAt":"2026-01-02T03:04:05Z"}`),
				},
				{
					ID:       uuid.New(),
					Type:     "user.renamed.v2",
					Data:     json.RawMessage(` { "name" : "Ada" } `),
					Metadata: json.RawMessage(`{"causationId":"` + uuid.NewString() + `"}`),
				},
			}
			res := e.appendOK(s, eventstore.NoStream{}, events...)
			after := time.Now()
			got := e.readStream(s, eventstore.ReadStreamOptions{})
			wantIDs(e.t, "ReadStream", got, dataIDs(events)...)
			all := e.readAll(eventstore.ReadAllOptions{})
			sameRecorded(e.t, "ReadStream vs ReadAll", got, all)
			for i, r := range got {
				w := events[i]
				if r.Stream != s {
					e.t.Errorf("event %d: Stream = %q, want %q", i, r.Stream, s)
				}
				if r.Revision != uint64(i) {
					e.t.Errorf("event %d: Revision = %d, want %d", i, r.Revision, i)
				}
				if r.Type != w.Type {
					e.t.Errorf("event %d: Type = %q, want %q", i, r.Type, w.Type)
				}
				if !jsonEqual(r.Data, w.Data) {
					e.t.Errorf("event %d: Data = %s, want %s", i, r.Data, w.Data)
				}
				if !jsonEqual(r.Metadata, w.Metadata) {
					e.t.Errorf("event %d: Metadata = %s, want %s", i, r.Metadata, w.Metadata)
				}
				if r.Position.IsZero() {
					e.t.Errorf("event %d: zero Position", i)
				}
				if r.RecordedAt.IsZero() {
					e.t.Errorf("event %d: zero RecordedAt", i)
				}
				// Clocks of server and test may differ a little; a minute is
				// far beyond that and far below a wrong unit or time zone.
				if r.RecordedAt.Before(before.Add(-time.Minute)) || r.RecordedAt.After(after.Add(time.Minute)) {
					e.t.Errorf("event %d: RecordedAt = %v, want between %v and %v", i, r.RecordedAt, before, after)
				}
			}
			if got[0].Position.Compare(got[1].Position) >= 0 {
				e.t.Errorf("positions within one append are not increasing: %v, %v", got[0].Position, got[1].Position)
			}
			if res.Position != got[1].Position || res.NextRevision != 1 {
				e.t.Errorf("AppendResult = %+v, want NextRevision 1 at %v", res, got[1].Position)
			}
		}},
		{"EmptyMetadata", func(e *env) {
			// Metadata is optional: an event without it is stored and read
			// back without error, with empty or null metadata.
			s := stream("nometa")
			d := eventstore.EventData{ID: uuid.New(), Type: "test.nometa.v1", Data: json.RawMessage(`{"x":1}`)}
			e.appendOK(s, eventstore.NoStream{}, d)
			got := e.readStream(s, eventstore.ReadStreamOptions{})
			wantIDs(e.t, "ReadStream", got, d.ID)
			if m := got[0].Metadata; len(m) != 0 && !jsonEqual(m, []byte("null")) && !jsonEqual(m, []byte("{}")) {
				e.t.Errorf("Metadata = %s for an event appended without metadata, want empty, null or {}", m)
			}
			if !jsonEqual(got[0].Data, d.Data) {
				e.t.Errorf("Data = %s, want %s", got[0].Data, d.Data)
			}
		}},
	}
}

func tombstoneTests() []test {
	return []test{
		{"ReadsAndAppendsFail", func(e *env) {
			s, id := e.fiveEvents()
			if err := e.s.Tombstone(e.ctx, s, eventstore.Revision(4)); err != nil {
				e.t.Fatalf("Tombstone at the right revision: %v", err)
			}
			_, err := e.s.ReadStream(e.ctx, s, eventstore.ReadStreamOptions{})
			wantErrIs(e.t, err, eventstore.ErrStreamDeleted, "ReadStream forwards of a tombstoned stream")
			_, err = e.s.ReadStream(e.ctx, s, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.End})
			wantErrIs(e.t, err, eventstore.ErrStreamDeleted, "ReadStream backwards of a tombstoned stream")
			for _, x := range []eventstore.ExpectedRevision{eventstore.Any{}, eventstore.NoStream{}, eventstore.StreamExists{}, eventstore.Revision(4)} {
				_, err = e.s.Append(e.ctx, s, x, evs("test.late.v1", 1)...)
				wantErrIs(e.t, err, eventstore.ErrStreamDeleted, "Append with "+eventstore.DescribeExpected(x)+" to a tombstoned stream")
			}
			err = e.s.Tombstone(e.ctx, s, eventstore.Any{})
			wantErrIs(e.t, err, eventstore.ErrStreamDeleted, "Tombstone of a tombstoned stream")
			// The log is never rewritten: the events stay in $all.
			var inAll []uuid.UUID
			for _, r := range e.readAll(eventstore.ReadAllOptions{}) {
				if r.Stream == s {
					inAll = append(inAll, r.ID)
				}
			}
			if len(inAll) != len(id) {
				e.t.Fatalf("ReadAll has %d events of the tombstoned stream, want its %d events", len(inAll), len(id))
			}
			for i := range id {
				if inAll[i] != id[i] {
					e.t.Fatalf("ReadAll changed the tombstoned stream's events")
				}
			}
		}},
		{"WrongExpectedRevision", func(e *env) {
			s, id := e.fiveEvents()
			for _, x := range []eventstore.ExpectedRevision{eventstore.Revision(3), eventstore.Revision(5), eventstore.NoStream{}} {
				err := e.s.Tombstone(e.ctx, s, x)
				wantWrongVersion(e.t, err, s, x, true, 4)
			}
			missing := stream("missing")
			err := e.s.Tombstone(e.ctx, missing, eventstore.StreamExists{})
			wantWrongVersion(e.t, err, missing, eventstore.StreamExists{}, false, 0)
			// Nothing was deleted.
			wantIDs(e.t, "ReadStream after failed tombstones", e.readStream(s, eventstore.ReadStreamOptions{}), id...)
			e.appendOK(s, eventstore.Revision(4), evs("test.more.v1", 1)...)
			e.appendOK(missing, eventstore.NoStream{}, evs("test.more.v1", 1)...)
		}},
		{"AnyAndStreamExists", func(e *env) {
			a := e.prepared("tomb", 2)
			if err := e.s.Tombstone(e.ctx, a, eventstore.Any{}); err != nil {
				e.t.Fatalf("Tombstone with Any: %v", err)
			}
			b := e.prepared("tomb", 1)
			if err := e.s.Tombstone(e.ctx, b, eventstore.StreamExists{}); err != nil {
				e.t.Fatalf("Tombstone with StreamExists: %v", err)
			}
			for _, s := range []string{a, b} {
				_, err := e.s.ReadStream(e.ctx, s, eventstore.ReadStreamOptions{})
				wantErrIs(e.t, err, eventstore.ErrStreamDeleted, "ReadStream of a tombstoned stream")
			}
		}},
		{"MissingStream", func(e *env) {
			// As in EventStoreDB, a name can be tombstoned before it is used,
			// so that it never can be.
			s := stream("never")
			if err := e.s.Tombstone(e.ctx, s, eventstore.NoStream{}); err != nil {
				e.t.Fatalf("Tombstone of a missing stream with NoStream: %v", err)
			}
			_, err := e.s.ReadStream(e.ctx, s, eventstore.ReadStreamOptions{})
			wantErrIs(e.t, err, eventstore.ErrStreamDeleted, "ReadStream of a tombstoned never-used stream")
			_, err = e.s.Append(e.ctx, s, eventstore.NoStream{}, evs("test.late.v1", 1)...)
			wantErrIs(e.t, err, eventstore.ErrStreamDeleted, "Append to a tombstoned never-used stream")
		}},
		{"OtherStreamsUnaffected", func(e *env) {
			s, _ := e.fiveEvents()
			longer := s + "-child"
			e.appendOK(longer, eventstore.NoStream{}, evs("test.child.v1", 2)...)
			if err := e.s.Tombstone(e.ctx, s, eventstore.Any{}); err != nil {
				e.t.Fatalf("Tombstone: %v", err)
			}
			got := e.readStream(longer, eventstore.ReadStreamOptions{})
			wantRevisions(e.t, "stream whose name extends the tombstoned one", got, 0, 1)
			e.appendOK(longer, eventstore.Revision(1), evs("test.child.v1", 1)...)
		}},
	}
}
